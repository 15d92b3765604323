// LinkClient: blocking POSIX sockets with poll() timeouts. Deliberately not Asio: a tool
// or a test wants one connection and plain blocking calls, and the header stays free of
// Asio (STYLE.md section 1).

#include "mycelium/link_client.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace mycelium::link {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    return left > 1'000'000 ? 1'000'000 : static_cast<int>(left);
}

// Non-blocking connect with a deadline; returns the connected (blocking) socket.
int connect_with_timeout(int family, const sockaddr* addr, socklen_t length, Clock::time_point deadline,
                         const std::string& what) {
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
    if (family != AF_UNIX) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

}  // namespace

LinkClient::LinkClient(int fd) noexcept : fd_(fd) {}

LinkClient::~LinkClient() { close(); }

LinkClient::LinkClient(LinkClient&& other) noexcept
    : fd_(other.fd_),
      decoder_(std::move(other.decoder_)),
      ready_(std::move(other.ready_)),
      eof_(other.eof_),
      next_nonce_(other.next_nonce_),
      send_timeout_(other.send_timeout_) {
    other.fd_ = -1;
}

LinkClient& LinkClient::operator=(LinkClient&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = other.fd_;
        other.fd_ = -1;
        decoder_ = std::move(other.decoder_);
        ready_ = std::move(other.ready_);
        eof_ = other.eof_;
        next_nonce_ = other.next_nonce_;
        send_timeout_ = other.send_timeout_;
    }
    return *this;
}

LinkClient LinkClient::open(const Endpoint& endpoint, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    const std::string what = to_string(endpoint);
    if (endpoint.kind == Endpoint::Kind::Unix) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (endpoint.path.size() >= sizeof addr.sun_path) throw std::invalid_argument("socket path too long: " + what);
        std::memcpy(addr.sun_path, endpoint.path.data(), endpoint.path.size());
        return LinkClient(connect_with_timeout(AF_UNIX, reinterpret_cast<const sockaddr*>(&addr), sizeof addr,
                                               deadline, what));
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(endpoint.port);
    if (const int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
        throw std::invalid_argument("cannot resolve " + what + ": " + ::gai_strerror(rc));
    }
    std::system_error last(ECONNREFUSED, std::generic_category(), "cannot connect to " + what);
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
        try {
            const int fd = connect_with_timeout(a->ai_family, a->ai_addr, a->ai_addrlen, deadline, what);
            ::freeaddrinfo(found);
            return LinkClient(fd);
        } catch (const std::system_error& e) {
            last = e;
        }
    }
    ::freeaddrinfo(found);
    throw last;
}

LinkClient LinkClient::connect(const Endpoint& endpoint, std::span<const std::uint8_t> digest,
                               std::chrono::milliseconds timeout) {
    LinkClient client = open(endpoint, timeout);
    std::vector<std::byte> handshake(2 + digest.size());
    codec::detail::store_le16(handshake.data(), static_cast<std::uint16_t>(digest.size()));
    std::memcpy(handshake.data() + 2, digest.data(), digest.size());
    if (!client.send_raw(handshake)) {
        throw std::system_error(ECONNRESET, std::generic_category(), "cannot send the handshake to " + to_string(endpoint));
    }
    return client;
}

Result<void, SendError> LinkClient::hello(Role role, std::string_view name) {
    const auto payload = encode_hello(Hello{control::PROTOCOL_VERSION, role, std::string(name)});
    return send(control::HELLO, payload);
}

Result<void, SendError> LinkClient::subscribe(std::span<const std::uint16_t> type_ids) {
    return send(control::SUBSCRIBE, encode_type_list(type_ids));
}

Result<void, SendError> LinkClient::unsubscribe(std::span<const std::uint16_t> type_ids) {
    return send(control::UNSUBSCRIBE, encode_type_list(type_ids));
}

Result<void, ReceiveError> LinkClient::sync(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    const std::uint64_t nonce = next_nonce_++;
    if (!send(control::PING, encode_nonce(nonce))) return Err{ReceiveError::Closed};
    // Frames received before the PONG stay queued for receive(), in order.
    std::size_t scanned = 0;
    for (;;) {
        for (; scanned < ready_.size(); ++scanned) {
            const Frame& f = ready_[scanned];
            if (f.type_id != control::PONG) continue;
            const auto got = decode_nonce(f.payload);
            if (got && *got == nonce) {
                ready_.erase(ready_.begin() + static_cast<std::ptrdiff_t>(scanned));
                return {};
            }
        }
        if (auto filled = fill(deadline); !filled) return filled;
    }
}

Result<void, SendError> LinkClient::send(std::uint16_t type_id, std::span<const std::byte> payload) {
    if (type_id == codec::RESERVED_TYPE_ID || payload.size() > schema::DEFAULT_MAX_PAYLOAD) return Err{SendError::Invalid};
    std::array<std::byte, codec::HEADER_SIZE> header{};
    codec::encode_header(type_id, static_cast<std::uint32_t>(payload.size()), header);
    if (auto sent = send_raw(header); !sent) return sent;
    return send_raw(payload);
}

Result<void, SendError> LinkClient::send_raw(std::span<const std::byte> bytes) {
    if (fd_ < 0) return Err{SendError::Closed};
    const auto deadline = Clock::now() + send_timeout_;
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            bytes = bytes.subspan(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{fd_, POLLOUT, 0};
            const int wait = remaining_ms(deadline);
            if (wait == 0 || ::poll(&p, 1, wait) == 0) return Err{SendError::Timeout};
            continue;
        }
        return Err{SendError::Closed};
    }
    return {};
}

Result<void, ReceiveError> LinkClient::fill(Clock::time_point deadline) {
    if (fd_ < 0 || eof_) return Err{ReceiveError::Closed};
    if (decoder_.poisoned()) return Err{ReceiveError::Malformed};
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno != EINTR) return Err{ReceiveError::Closed};
    if (ready <= 0) return Err{ReceiveError::Timeout};
    std::array<std::byte, 64 * 1024> buffer;
    const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return {};
    if (n <= 0) {
        eof_ = true;
        return Err{ReceiveError::Closed};
    }
    const auto fed = decoder_.feed(std::span<const std::byte>(buffer.data(), static_cast<std::size_t>(n)),
                                   [this](std::uint16_t type_id, std::span<const std::byte> payload) {
                                       ready_.push_back(Frame{type_id, std::vector<std::byte>(payload.begin(), payload.end())});
                                   });
    if (!fed) return Err{ReceiveError::Malformed};
    return {};
}

Result<Frame, ReceiveError> LinkClient::receive(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        while (!ready_.empty()) {
            Frame f = std::move(ready_.front());
            ready_.pop_front();
            if (f.type_id == control::PING) {
                (void)send(control::PONG, f.payload);
                continue;
            }
            return f;
        }
        if (auto filled = fill(deadline); !filled) return Err{filled.error()};
    }
}

Result<Frame, ReceiveError> LinkClient::receive_message(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        auto f = receive(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
        if (!f) return f;
        if (f->type_id >= schema::MIN_APP_TYPE_ID || f->type_id == control::ERROR) return f;
    }
}

void LinkClient::shutdown_send() noexcept {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void LinkClient::close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

}  // namespace mycelium::link
