// The thread-local origin of the publish in progress. Bus subscribers of links run inline
// on the publishing thread, so a thread-local set around bus.publish() reaches them
// without the bus knowing anything about links.

#include "mycelium/link.hpp"

namespace mycelium::link {

namespace {
thread_local Origin current{};
}  // namespace

Origin current_origin() noexcept { return current; }

OriginScope::OriginScope(Origin origin) noexcept : saved_(current) { current = origin; }

OriginScope::~OriginScope() { current = saved_; }

}  // namespace mycelium::link
