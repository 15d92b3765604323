// ReservedDescriptor on a real listening socket: a pending client is accepted into the
// reserve, reads the reply and then the end of the stream; with none pending nothing
// happens; the reserve is taken back each time.

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <string>

#include "reserved_descriptor.hpp"

using mycelium::link::detail::ReservedDescriptor;

namespace {

int unix_listener(sockaddr_un& addr) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    addr = {};
    addr.sun_family = AF_UNIX;
    // An abstract name, unique to this process: nothing left on disk.
    const std::string name = "mycelium-reserve-test-" + std::to_string(::getpid());
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), length) != 0 || ::listen(fd, 4) != 0) return -1;
    return fd;
}

}  // namespace

TEST_CASE("a refused connection is accepted into the reserve, told, and closed") {
    sockaddr_un addr{};
    const int listener = unix_listener(addr);
    REQUIRE(listener >= 0);
    ReservedDescriptor reserve;
    const std::array reply{std::byte{1}, std::byte{0}, std::byte{2}, std::byte{0}};

    CHECK_FALSE(reserve.refuse_one(listener, reply));  // nobody waiting

    const int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const std::string name = "mycelium-reserve-test-" + std::to_string(::getpid());
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    REQUIRE(::connect(client, reinterpret_cast<sockaddr*>(&addr), length) == 0);
    REQUIRE(::send(client, "handshake", 9, 0) == 9);  // unread input must not lose the reply

    CHECK(reserve.refuse_one(listener, reply));
    std::array<std::byte, 16> got{};
    CHECK(::recv(client, got.data(), got.size(), 0) == 4);
    CHECK(std::memcmp(got.data(), reply.data(), reply.size()) == 0);
    CHECK(::recv(client, got.data(), got.size(), 0) == 0);  // then the end of the stream

    // The reserve was taken back: a second client is refused the same way.
    const int second = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(second, reinterpret_cast<sockaddr*>(&addr), length) == 0);
    CHECK(reserve.refuse_one(listener, reply));
    CHECK(::recv(second, got.data(), got.size(), 0) == 4);
    ::close(second);
    ::close(client);
    ::close(listener);
}
