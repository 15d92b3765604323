#pragma once
// Internal to host/src/transport/tcp: who owns the other end of a loopback TCP
// connection. Over loopback both ends are sockets of this machine, so the kernel can say
// which uid opened the far one (NETLINK_SOCK_DIAG, as `ss -e` does): a local user's TCP
// connections then count against the same per-client limit as its Unix ones.

#include <sys/types.h>

#include <optional>

namespace mycelium::link::detail {

/// The uid owning the far end of the connected TCP socket `fd`, when that end is on this
/// machine's loopback (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) and the kernel answers;
/// nullopt otherwise. One netlink request and answer, a few microseconds; never blocks
/// on anything but the kernel.
std::optional<uid_t> loopback_peer_uid(int fd) noexcept;

}  // namespace mycelium::link::detail
