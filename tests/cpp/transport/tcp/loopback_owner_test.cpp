// loopback_peer_uid against real sockets: the kernel names the uid that owns the far end
// of a loopback TCP connection, over IPv4 and IPv6, and nothing for a non-TCP socket.

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <utility>

#include "tcp/loopback_owner.hpp"

using mycelium::link::detail::loopback_peer_uid;

namespace {

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

// A connected pair over loopback: (the accepted end, the dialing end).
std::optional<std::pair<int, int>> loopback_pair(int family, Fd& listener, Fd& dialer) {
    sockaddr_storage addr{};
    socklen_t length = 0;
    if (family == AF_INET) {
        auto& in = reinterpret_cast<sockaddr_in&>(addr);
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        length = sizeof in;
    } else {
        auto& in6 = reinterpret_cast<sockaddr_in6&>(addr);
        in6.sin6_family = AF_INET6;
        in6.sin6_addr = in6addr_loopback;
        length = sizeof in6;
    }
    if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), length) != 0 || ::listen(listener.fd, 1) != 0)
        return std::nullopt;
    if (::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) return std::nullopt;
    if (::connect(dialer.fd, reinterpret_cast<sockaddr*>(&addr), length) != 0) return std::nullopt;
    const int accepted = ::accept(listener.fd, nullptr, nullptr);
    if (accepted < 0) return std::nullopt;
    return std::pair{accepted, dialer.fd};
}

}  // namespace

TEST_CASE("the owner of a loopback TCP peer is the uid that opened its socket") {
    for (const int family : {AF_INET, AF_INET6}) {
        CAPTURE(family);
        Fd listener(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        Fd dialer(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(listener.fd >= 0);
        REQUIRE(dialer.fd >= 0);
        const auto pair = loopback_pair(family, listener, dialer);
        if (!pair && family == AF_INET6) continue;  // a machine without IPv6 loopback
        REQUIRE(pair);
        Fd accepted(pair->first);
        CHECK(loopback_peer_uid(accepted.fd) == ::getuid());
        CHECK(loopback_peer_uid(dialer.fd) == ::getuid());  // either end
    }
}

TEST_CASE("a socket that is not TCP has no loopback owner") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    Fd a(fds[0]), b(fds[1]);
    CHECK_FALSE(loopback_peer_uid(a.fd).has_value());
    CHECK_FALSE(loopback_peer_uid(-1).has_value());
}
