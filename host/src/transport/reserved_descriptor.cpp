#include "reserved_descriptor.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mycelium::link::detail {

namespace {

int open_reserve() noexcept { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

}  // namespace

ReservedDescriptor::ReservedDescriptor() noexcept : fd_(open_reserve()) {}

ReservedDescriptor::~ReservedDescriptor() {
    if (fd_ >= 0) ::close(fd_);
}

bool ReservedDescriptor::refuse_one(int listening_fd, std::span<const std::byte> reply) noexcept {
    if (fd_ < 0 && (fd_ = open_reserve()) < 0) return false;  // still out of descriptors
    ::close(fd_);
    fd_ = -1;
    const int client = ::accept4(listening_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client >= 0) {
        (void)::send(client, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        // Read what the client already sent (its handshake): closing a socket with unread
        // input resets it, and the reset can destroy the reply before the client reads it.
        char discard[4096];
        for (int i = 0; i < 16 && ::recv(client, discard, sizeof discard, MSG_DONTWAIT) > 0; ++i) {
        }
        ::shutdown(client, SHUT_WR);
        ::close(client);
    }
    fd_ = open_reserve();
    return client >= 0;
}

}  // namespace mycelium::link::detail
