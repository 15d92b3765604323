// LinkClient: blocking POSIX sockets with poll() timeouts, deliberately not Asio's
// asynchronous ones: a tool or a test wants one connection and plain blocking calls. The
// endpoint's transport makes the connected socket (Transport::connect); the public header
// stays free of Asio.

#include "mycelium/link_client.hpp"

#include "mycelium/shm_ring.hpp"
#include "transport.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace mycelium::link {

namespace detail {

/// The client's side of a shared-memory link: it produces into send_ring and consumes
/// receive_ring; `bell` is its doorbell (data in receive_ring, room in send_ring: one
/// thread waits for both, and every wake-up is re-checked), `host_bell` the host's.
struct ClientShm {
    shm::MappedRing send_ring;
    shm::MappedRing receive_ring;
    shm::EventFd bell;
    shm::EventFd host_bell;
    std::optional<shm::RingProducer> producer;
    std::optional<shm::RingConsumer> consumer;
    bool switched = false;  // SHM_SWITCH seen: the host's frames come from receive_ring
    bool failed = false;    // a ring broke its rules: the connection is unusable
};

}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    return left > 1'000'000 ? 1'000'000 : static_cast<int>(left);
}

}  // namespace

LinkClient::LinkClient() noexcept = default;

LinkClient::LinkClient(int fd) noexcept : fd_(fd) {}

LinkClient::~LinkClient() { close(); }

LinkClient::LinkClient(LinkClient&& other) noexcept
    : fd_(other.fd_),
      decoder_(std::move(other.decoder_)),
      ready_(std::move(other.ready_)),
      eof_(other.eof_),
      next_nonce_(other.next_nonce_),
      send_timeout_(other.send_timeout_),
      shm_spin_(other.shm_spin_),
      digest_(other.digest_),
      expect_fds_(other.expect_fds_),
      received_fds_(std::move(other.received_fds_)),
      shm_refusal_(std::move(other.shm_refusal_)),
      shm_(std::move(other.shm_)) {
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
        shm_spin_ = other.shm_spin_;
        digest_ = other.digest_;
        expect_fds_ = other.expect_fds_;
        received_fds_ = std::move(other.received_fds_);
        shm_refusal_ = std::move(other.shm_refusal_);
        shm_ = std::move(other.shm_);
    }
    return *this;
}

LinkClient LinkClient::open(const Endpoint& endpoint, std::chrono::milliseconds timeout) {
    return LinkClient(detail::transport_of(endpoint).connect(endpoint, Clock::now() + timeout));
}

LinkClient LinkClient::connect(const Endpoint& endpoint, std::span<const std::uint8_t> digest,
                               std::chrono::milliseconds timeout) {
    LinkClient client = open(endpoint, timeout);
    if (!client.send_raw(encode_handshake(digest))) {
        throw std::system_error(ECONNRESET, std::generic_category(), "cannot send the handshake to " + to_string(endpoint));
    }
    if (digest.size() == control::DIGEST_SIZE) {
        std::array<std::uint8_t, control::DIGEST_SIZE> d{};
        std::memcpy(d.data(), digest.data(), d.size());
        client.digest_ = d;
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
    if (shm_) return send_shm(type_id, payload);
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
    if (shm_ && shm_->switched) return fill_shm(deadline);
    return fill_socket(deadline);
}

Result<void, ReceiveError> LinkClient::fill_socket(Clock::time_point deadline) {
    if (fd_ < 0 || eof_) return Err{ReceiveError::Closed};
    if (decoder_.poisoned()) return Err{ReceiveError::Malformed};
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno != EINTR) return Err{ReceiveError::Closed};
    if (ready <= 0) return Err{ReceiveError::Timeout};
    std::array<std::byte, 64 * 1024> buffer;
    // recvmsg, not recv: a SHM_OFFER's descriptors ride on its first byte.
    shm::ReadWithFds read = shm::read_with_fds(fd_, buffer, shm::MAX_PASSED_FDS);
    const long n = read.result;
    if (n < 0 && (read.error == EAGAIN || read.error == EINTR)) return {};
    for (shm::UniqueFd& owned : read.fds)  // closed unless an offer is expected
        if (expect_fds_ && received_fds_.size() < shm::MAX_PASSED_FDS) received_fds_.push_back(std::move(owned));
    if (read.truncated) received_fds_.clear();  // the offer will be refused
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
        // A fill may succeed without a whole frame (part of one on the socket; a ring
        // whose header says there is more than it yields): the deadline still holds.
        if (ready_.empty() && Clock::now() >= deadline) return Err{ReceiveError::Timeout};
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
    shm_.reset();
    received_fds_.clear();
}

}  // namespace mycelium::link

// ---------------------------------------------------------------------------------------
// Shared memory (docs/wire-protocol.md, "Shared-memory setup")
// ---------------------------------------------------------------------------------------

namespace mycelium::link {

bool LinkClient::shm_active() const noexcept { return shm_ != nullptr && !shm_->failed; }

ShmDiagnostics LinkClient::shm_diagnostics() const noexcept {
    if (!shm_) return {};
    return ShmDiagnostics{shm_->send_ring.bytes(), shm_->receive_ring.bytes(), shm_->host_bell.fd()};
}

Result<Frame, ReceiveError> LinkClient::await_control(std::uint16_t a, std::uint16_t b, Clock::time_point deadline) {
    std::size_t scanned = 0;
    for (;;) {
        for (; scanned < ready_.size(); ++scanned) {
            const std::uint16_t t = ready_[scanned].type_id;
            if (t != a && t != b && t != control::ERROR) continue;
            if (t == control::ERROR) return Err{ReceiveError::Closed};  // left for receive()
            Frame f = std::move(ready_[scanned]);
            ready_.erase(ready_.begin() + static_cast<std::ptrdiff_t>(scanned));
            return f;
        }
        if (auto filled = fill(deadline); !filled) return Err{filled.error()};
    }
}

namespace {

ShmSetupError setup_error(ReceiveError e) noexcept {
    switch (e) {
        case ReceiveError::Timeout: return ShmSetupError::Timeout;
        case ReceiveError::Closed: return ShmSetupError::Closed;
        case ReceiveError::Malformed: return ShmSetupError::Malformed;
    }
    return ShmSetupError::Closed;
}

}  // namespace

Result<void, ShmSetupError> LinkClient::request_shm(std::uint32_t capacity, std::chrono::milliseconds timeout) {
    if (shm_) return {};
    if (fd_ < 0 || eof_) return Err{ShmSetupError::Closed};
    const auto deadline = Clock::now() + timeout;
    shm_refusal_.reset();
    received_fds_.clear();
    expect_fds_ = true;
    if (!send(control::SHM_REQUEST, encode_shm_request(ShmRequest{control::SHM_VERSION, 0, capacity}))) {
        expect_fds_ = false;
        return Err{ShmSetupError::Closed};
    }
    auto answer = await_control(control::SHM_OFFER, control::SHM_REFUSE, deadline);
    expect_fds_ = false;
    if (!answer) {
        received_fds_.clear();
        return Err{setup_error(answer.error())};
    }
    if (answer->type_id == control::SHM_REFUSE) {
        received_fds_.clear();
        const auto refuse = decode_shm_refuse(answer->payload);
        if (!refuse) return Err{ShmSetupError::Malformed};
        shm_refusal_ = *refuse;
        return Err{ShmSetupError::Refused};
    }
    if (auto accepted = accept_offer(*answer); !accepted) return accepted;
    // SHM_READY is our last frame on the socket; from now on send() writes the ring.
    auto link = std::move(shm_);
    if (!send(control::SHM_READY, {})) return Err{ShmSetupError::Closed};
    shm_ = std::move(link);
    auto sw = await_control(control::SHM_SWITCH, control::SHM_SWITCH, deadline);
    if (!sw) {
        shm_.reset();
        return Err{setup_error(sw.error())};
    }
    shm_->switched = true;
    return {};
}

Result<void, ShmSetupError> LinkClient::accept_offer(const Frame& offer_frame) {
    std::vector<shm::UniqueFd> fds = std::move(received_fds_);
    received_fds_.clear();
    const auto refuse = [&](const std::string& why) -> Result<void, ShmSetupError> {
        fds.clear();
        if (!send(control::SHM_REFUSE, encode_shm_refuse(ShmRefusal::BadOffer, why))) return Err{ShmSetupError::Closed};
        return Err{ShmSetupError::BadOffer};
    };
    const auto offer = decode_shm_offer(offer_frame.payload);
    if (!offer) return refuse("malformed SHM_OFFER");
    if (offer->version != control::SHM_VERSION) return refuse("unsupported shared-memory version");
    if (offer->fd_count != control::SHM_OFFER_FDS || fds.size() != control::SHM_OFFER_FDS)
        return refuse("SHM_OFFER came with " + std::to_string(fds.size()) + " descriptors, expected 4");
    if (!digest_) return refuse("this client does not know the schema digest (use connect())");
    if (!shm::valid_ring_capacity(offer->client_to_host) || !shm::valid_ring_capacity(offer->host_to_client))
        return refuse("invalid ring capacity");
    auto link = std::make_unique<detail::ClientShm>();
    try {
        link->send_ring = shm::MappedRing::attach(std::move(fds[0]), *digest_, offer->client_to_host);
        link->receive_ring = shm::MappedRing::attach(std::move(fds[1]), *digest_, offer->host_to_client);
        link->bell = shm::EventFd::adopt(std::move(fds[2]));
        link->host_bell = shm::EventFd::adopt(std::move(fds[3]));
    } catch (const std::exception& e) {
        return refuse(e.what());
    }
    shm::ProducerOptions po;
    po.notify_fd = link->host_bell.fd();
    po.wait_fd = link->bell.fd();
    po.spin = shm_spin_;
    link->producer.emplace(link->send_ring.region(), po);
    shm::ConsumerOptions co;
    co.wait_fd = link->bell.fd();
    co.spin = shm_spin_;
    link->consumer.emplace(link->receive_ring.region(), co);
    shm_ = std::move(link);
    return {};
}

Result<void, SendError> LinkClient::send_shm(std::uint16_t type_id, std::span<const std::byte> payload) {
    if (fd_ < 0 || eof_ || shm_->failed) return Err{SendError::Closed};
    auto& producer = *shm_->producer;
    const auto deadline = Clock::now() + send_timeout_;
    for (;;) {
        const auto written = producer.try_write(type_id, payload);
        if (written) return {};
        switch (written.error()) {
            case shm::WriteError::Full:
                break;
            case shm::WriteError::TooLarge:
            case shm::WriteError::InvalidType:
                return Err{SendError::Invalid};
            case shm::WriteError::PeerClosed:
            case shm::WriteError::Closed:
                return Err{SendError::Closed};
            case shm::WriteError::Corrupt:
                shm_->failed = true;
                return Err{SendError::Closed};
        }
        // Wait for room in short slices, watching the socket: a host that went away must
        // not keep us waiting for the whole send timeout.
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0) return Err{SendError::Closed};
        const auto left = deadline - Clock::now();
        if (left <= Clock::duration::zero()) return Err{SendError::Timeout};
        const auto slice = std::min<Clock::duration>(left, std::chrono::milliseconds(10));
        if (producer.wait_for_space(payload.size(), slice) == shm::RingWait::Closed) return Err{SendError::Closed};
    }
}

Result<void, ReceiveError> LinkClient::fill_shm(Clock::time_point deadline) {
    if (fd_ < 0) return Err{ReceiveError::Closed};
    if (shm_->failed) return Err{ReceiveError::Malformed};
    auto& consumer = *shm_->consumer;
    const auto take = [&]() -> Result<std::size_t, ReceiveError> {
        const auto read = consumer.read_batch([this](const shm::FrameView& f) {
            ready_.push_back(Frame{f.type_id, std::vector<std::byte>(f.payload.begin(), f.payload.end())});
        });
        if (!read) {
            shm_->failed = true;
            return Err{ReceiveError::Malformed};
        }
        return *read;
    };
    // 1. The ring. 2. The socket: a final ERROR, or the end of the stream (after which
    // what is left in the ring is still read). 3. Spin. 4. Park on the doorbell and the
    // socket together, so that the host going away wakes us at once.
    auto got = take();
    if (!got) return Err{got.error()};
    if (*got > 0) return {};
    if (!eof_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 0) > 0) {
            auto filled = fill_socket(deadline);
            if (!filled && filled.error() == ReceiveError::Closed) {
                got = take();
                if (got && *got > 0) return {};
            }
            return filled;
        }
    } else {
        return Err{ReceiveError::Closed};
    }
    const auto spin_end = std::min(deadline, Clock::now() + shm_spin_);
    while (Clock::now() < spin_end) {
        auto next = consumer.peek();
        if (!next || *next) return {};  // read_batch reports it (or the error) next round
        shm::detail::cpu_relax();
    }
    if (!consumer.begin_park()) return {};
    pollfd p[2] = {{shm_->bell.fd(), POLLIN, 0}, {fd_, POLLIN, 0}};
    const int wait = remaining_ms(deadline);
    const int ready = wait == 0 ? 0 : ::poll(p, 2, wait);
    consumer.end_park();
    if (ready == 0 && Clock::now() >= deadline) {
        // One last look: a frame may have come with the doorbell just before the timeout.
        auto last = take();
        if (!last) return Err{last.error()};
        return *last > 0 ? Result<void, ReceiveError>{} : Result<void, ReceiveError>{Err{ReceiveError::Timeout}};
    }
    return {};
}

}  // namespace mycelium::link
