#include "posix_connect.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace mycelium::link::detail {

namespace {

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return 0;
    return left > 1'000'000 ? 1'000'000 : static_cast<int>(left);
}

}  // namespace

int connect_with_deadline(int family, const sockaddr* addr, socklen_t length,
                          std::chrono::steady_clock::time_point deadline, const std::string& what) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket() for " + what);
    if (::connect(fd, addr, length) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            const int error = errno;
            ::close(fd);
            throw std::system_error(error, std::generic_category(), "cannot connect to " + what);
        }
        pollfd p{fd, POLLOUT, 0};
        const int ready = ::poll(&p, 1, remaining_ms(deadline));
        int error = ETIMEDOUT;
        if (ready > 0) {
            socklen_t len = sizeof error;
            if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
        }
        if (error != 0) {
            ::close(fd);
            throw std::system_error(error, std::generic_category(), "cannot connect to " + what);
        }
    }
    const int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

}  // namespace mycelium::link::detail
