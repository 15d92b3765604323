#pragma once
// Internal to host/src/transport: the descriptor a listener keeps in reserve for the
// moment the process runs out (accept() failing with EMFILE). Without it a refused client
// would wait in the backlog, untold, while the listener retried; with it the listener
// frees the reserve, accepts the connection into it, says why, and closes it (the way
// libuv and nginx shed connections at EMFILE).

#include <cstddef>
#include <span>

namespace mycelium::link::detail {

class ReservedDescriptor {
public:
    ReservedDescriptor() noexcept;  // holds /dev/null open
    ~ReservedDescriptor();
    ReservedDescriptor(const ReservedDescriptor&) = delete;
    ReservedDescriptor& operator=(const ReservedDescriptor&) = delete;

    /// Accepts one pending connection of `listening_fd` (non-blocking) with the reserved
    /// descriptor, writes `reply` if the socket takes it at once, and closes it. True if
    /// a connection was refused so; false if there was no reserve (it could not be taken
    /// back after the last refusal) or no connection pending. Takes the reserve back.
    bool refuse_one(int listening_fd, std::span<const std::byte> reply) noexcept;

private:
    int fd_ = -1;
};

}  // namespace mycelium::link::detail
