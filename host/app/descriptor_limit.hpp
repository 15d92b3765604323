#pragma once
// The host's descriptor limit. Most systems start a process with a soft RLIMIT_NOFILE of
// 1,024 (kept low for select()) and a hard one far above; a host serving up to 1,024
// connections, each a socket and, on shared memory, two doorbells, needs more. As Go's
// runtime does, the host raises its soft limit toward the hard one at start, never above.

#include <cstddef>

namespace mycelium::app {

/// Raises the soft RLIMIT_NOFILE to `wanted` (at most the hard limit) if it is lower.
/// Returns the soft limit in force afterwards.
std::size_t raise_descriptor_limit(std::size_t wanted) noexcept;

/// The descriptors a host serving `max_connections` may need: four per connection (a
/// socket, two doorbells and a spare while rings are set up) and 256 of its own.
constexpr std::size_t descriptors_for(std::size_t max_connections) noexcept { return 4 * max_connections + 256; }

}  // namespace mycelium::app
