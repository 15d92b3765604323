#include "cork.hpp"

#include <algorithm>
#include <new>
#include <utility>

#include "mycelium/link.hpp"

namespace mycelium::link::detail {

namespace {

// A cork holds at most this many other links' frames (more in one read batch is unusual:
// they publish per frame then).
constexpr std::size_t CORK_LINKS = 8;

thread_local CorkScope::Cork* t_cork = nullptr;

}  // namespace

CorkScope::CorkScope(Corkable& reader, const ServerState& server) noexcept : CorkScope() {
    cork_.server = &server;
    cork_.reader = &reader;
}

CorkScope::CorkScope() noexcept {
    cork_.outer = t_cork;
    t_cork = &cork_;
}

CorkScope::~CorkScope() { end(); }

void CorkScope::end() noexcept {
    if (t_cork != &cork_) return;
    t_cork = cork_.outer;
    publish();
}

void CorkScope::publish() noexcept {
    if (std::exchange(cork_.reader_staged, false)) cork_.reader->publish_staged();
    for (auto& other : cork_.others) {
        other.link->publish_staged();
        other.link.reset();  // may destroy the link: its server is held until the next line
        other.server->batch_holds.fetch_sub(1, std::memory_order_release);
    }
    cork_.others.clear();
}

bool cork_will_publish(Corkable& link, ServerState& server) noexcept {
    CorkScope::Cork* const cork = t_cork;
    if (cork == nullptr || (cork->server != nullptr && cork->server != &server)) [[likely]] return false;
    if (cork->reader == &link) {
        cork->reader_staged = cork->more;  // the batch's last frame publishes at once
        return cork->more;
    }
    if (!cork->more) return false;
    const auto held = std::find_if(cork->others.begin(), cork->others.end(),
                                   [&](const CorkScope::Cork::Held& other) { return other.link.get() == &link; });
    if (held != cork->others.end()) return true;
    if (cork->others.size() >= CORK_LINKS) return false;
    try {
        auto ref = link.corkable_ref();
        if (!ref) return false;
        cork->others.reserve(CORK_LINKS);
        server.batch_holds.fetch_add(1, std::memory_order_relaxed);
        cork->others.push_back({std::move(ref), &server});  // cannot throw: reserved
        return true;
    } catch (const std::bad_alloc&) {
        return false;
    }
}

void release_thread_batch_holds(ServerState& server) noexcept {
    for (CorkScope::Cork* cork = t_cork; cork != nullptr; cork = cork->outer) {
        auto& others = cork->others;
        for (auto it = others.begin(); it != others.end();) {
            if (it->server != &server) {
                ++it;
                continue;
            }
            it->link->publish_staged();
            it = others.erase(it);
            server.batch_holds.fetch_sub(1, std::memory_order_release);
        }
    }
}

}  // namespace mycelium::link::detail

namespace mycelium::link {

struct PublishBatch::Impl {
    detail::CorkScope scope;
};

PublishBatch::PublishBatch() : impl_(std::make_unique<Impl>()) {}

PublishBatch::~PublishBatch() = default;  // the scope publishes and uninstalls

void PublishBatch::flush() noexcept { impl_->scope.publish(); }

}  // namespace mycelium::link
