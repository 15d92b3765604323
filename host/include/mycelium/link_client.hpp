#pragma once
/// LinkClient: a small blocking client of the link protocol (docs/wire-protocol.md) for
/// tests and tools (`tap`, `pub`): connect to `unix:PATH` or `tcp:HOST:PORT`, send the
/// digest handshake, optionally HELLO / SUBSCRIBE, then send and receive TLV frames.
///
/// It uses plain POSIX sockets and poll(); every wait has a timeout. PING frames from the
/// host are answered automatically while receiving.
///
/// Over a Unix socket, request_shm() moves the connection's frames to shared-memory
/// rings (docs/wire-protocol.md, "Shared-memory setup"): from then on send() writes into
/// the client->host ring and receive() reads the host->client ring, spinning for a
/// bounded time before it parks on its doorbell; the socket stays open for liveness (the
/// host closing it is seen at once) and a final ERROR.
///
/// Thread safety: distinct objects safe; one object must be used by one thread at a time.
/// No GIL needed (blocking calls must not be made while holding it).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "mycelium/codec.hpp"
#include "mycelium/endpoint.hpp"
#include "mycelium/link_protocol.hpp"
#include "mycelium/result.hpp"
#include "mycelium/shm_os.hpp"

namespace mycelium::link {

/// One received frame, owning its payload.
/// Thread safety: a value type.
struct Frame {
    /// The frame's type id (control frames included).
    std::uint16_t type_id = 0;
    /// The payload bytes.
    std::vector<std::byte> payload;
};

/// Why LinkClient::receive returned no frame.
enum class ReceiveError : std::uint8_t {
    /// Nothing arrived within the timeout; the connection is still usable.
    Timeout,
    /// The host closed the connection (or reset it); nothing more will arrive.
    Closed,
    /// The host sent bytes that are not a valid frame stream; the connection is unusable.
    Malformed,
};

/// Why LinkClient::send failed.
enum class SendError : std::uint8_t {
    /// The frame could not be encoded (type id 0, payload above 4 MiB).
    Invalid,
    /// The host closed the connection or the socket failed.
    Closed,
    /// The socket did not accept the bytes within the send timeout.
    Timeout,
};

/// Why LinkClient::request_shm left the connection on the socket.
enum class ShmSetupError : std::uint8_t {
    /// The host answered SHM_REFUSE (shm_refusal() says why). Still usable, on the socket.
    Refused,
    /// The offer failed the checks (descriptors, seals, sizes, ring headers); the client
    /// answered SHM_REFUSE bad_offer. Still usable, on the socket.
    BadOffer,
    /// No answer within the timeout. The connection's state is unknown: close it.
    Timeout,
    /// The host closed the connection (or sent ERROR), or it was not open.
    Closed,
    /// The host sent bytes that are not a valid frame stream.
    Malformed,
};

/// What the rings of a LinkClient look like, for tests and diagnostics (a test corrupts
/// a ring through these spans to check that only its link is closed).
struct ShmDiagnostics {
    /// The client->host ring's mapping (header and data area).
    std::span<std::byte> send_ring;
    /// The host->client ring's mapping.
    std::span<std::byte> receive_ring;
    /// The host's doorbell (an eventfd), to wake a host that sleeps on the send ring.
    int host_doorbell = -1;
};

namespace detail {
struct ClientShm;
}  // namespace detail

/// A blocking connection to a LinkServer (or to any Mycelium bridge).
/// Thread safety: distinct objects safe; shared objects unsafe.
class LinkClient {
public:
    /// Connects without sending anything: for tests that write their own handshake.
    /// Throws std::system_error when the connection fails or takes longer than `timeout`,
    /// std::invalid_argument for a host that does not resolve.
    static LinkClient open(const Endpoint& endpoint,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5));

    /// open(), then sends the handshake `u16 LE length, digest`: a legacy client until
    /// hello() is called. Throws like open(), and std::system_error if the handshake
    /// cannot be written.
    static LinkClient connect(const Endpoint& endpoint, std::span<const std::uint8_t> digest,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));

    /// An unconnected client (every call fails with Closed).
    LinkClient() noexcept;
    /// Closes the socket.
    ~LinkClient();
    /// Takes over `other`'s socket; `other` becomes unconnected.
    LinkClient(LinkClient&& other) noexcept;
    /// Closes this socket, then takes over `other`'s.
    LinkClient& operator=(LinkClient&& other) noexcept;
    LinkClient(const LinkClient&) = delete;
    LinkClient& operator=(const LinkClient&) = delete;

    /// Sends HELLO (must directly follow the handshake): from now on the host sends only
    /// subscribed types. Errors as send(); throws std::invalid_argument for a bad name.
    Result<void, SendError> hello(Role role, std::string_view name);
    /// Sends SUBSCRIBE for `type_ids`. Errors as send().
    Result<void, SendError> subscribe(std::span<const std::uint16_t> type_ids);
    /// Sends UNSUBSCRIBE for `type_ids`. Errors as send().
    Result<void, SendError> unsubscribe(std::span<const std::uint16_t> type_ids);

    /// Moves this connection to shared-memory rings: sends SHM_REQUEST (`capacity` per
    /// direction, 0 = the node's default), maps and checks the SHM_OFFER's rings, sends
    /// SHM_READY and waits for SHM_SWITCH. Frames that arrive meanwhile are kept for
    /// receive(), in order. Call it after hello(), on a Unix socket. Returns at once when
    /// already on shared memory. Errors: Refused and BadOffer (the connection stays on the
    /// socket, usable), Timeout, Closed, Malformed.
    Result<void, ShmSetupError> request_shm(std::uint32_t capacity = 0,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(5));
    /// Whether frames travel through shared memory (request_shm() succeeded).
    bool shm_active() const noexcept;
    /// The host's SHM_REFUSE after request_shm() returned Refused.
    const std::optional<ShmRefuse>& shm_refusal() const noexcept { return shm_refusal_; }
    /// How long receive() (and a send() into a full ring) spins before it parks on the
    /// doorbell (default 50 µs; 0 parks at once).
    void set_shm_spin(std::chrono::nanoseconds spin) noexcept { shm_spin_ = spin; }
    /// The rings and the host's doorbell while shm_active(); empty spans otherwise.
    ShmDiagnostics shm_diagnostics() const noexcept;

    /// Sends PING with a fresh nonce and waits for its PONG. Frames that arrive meanwhile
    /// are kept for receive(), in order. Since the host handles a connection's frames in
    /// order, a returned sync() means everything sent before it (SUBSCRIBE included) has
    /// taken effect. Errors: Timeout, Closed, Malformed.
    Result<void, ReceiveError> sync(std::chrono::milliseconds timeout = std::chrono::seconds(5));

    /// Sends one frame (into the ring once shm_active(); a full ring is waited for, up to
    /// send_timeout). Errors: Invalid (also a payload above the ring's limit), Closed,
    /// Timeout (send_timeout).
    Result<void, SendError> send(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Sends raw bytes as they are, always on the socket (handshakes, garbage, partial
    /// frames in tests).
    /// Errors: Closed, Timeout.
    Result<void, SendError> send_raw(std::span<const std::byte> bytes);

    /// The next frame, waiting up to `timeout`. PINGs are answered and not returned.
    /// Errors: Timeout, Closed, Malformed.
    Result<Frame, ReceiveError> receive(std::chrono::milliseconds timeout);
    /// Like receive(), but skips control frames other than ERROR.
    Result<Frame, ReceiveError> receive_message(std::chrono::milliseconds timeout);

    /// Half-closes the sending side (the host sees end of stream).
    void shutdown_send() noexcept;
    /// Closes the socket (and unmaps the rings). Idempotent.
    void close() noexcept;
    /// Whether the socket is open.
    bool is_open() const noexcept { return fd_ >= 0; }
    /// The socket's file descriptor, or -1.
    int native_handle() const noexcept { return fd_; }
    /// How long send() may wait for the socket to accept bytes (default 5 s).
    void set_send_timeout(std::chrono::milliseconds timeout) noexcept { send_timeout_ = timeout; }

private:
    explicit LinkClient(int fd) noexcept;
    Result<void, ReceiveError> fill(std::chrono::steady_clock::time_point deadline);
    Result<void, ReceiveError> fill_socket(std::chrono::steady_clock::time_point deadline);
    Result<void, ReceiveError> fill_shm(std::chrono::steady_clock::time_point deadline);
    Result<void, SendError> send_shm(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Waits for a frame of type `a` or `b` in ready_ and takes it out.
    Result<Frame, ReceiveError> await_control(std::uint16_t a, std::uint16_t b,
                                              std::chrono::steady_clock::time_point deadline);
    Result<void, ShmSetupError> accept_offer(const Frame& offer);

    int fd_ = -1;
    codec::FrameDecoder decoder_{};
    std::deque<Frame> ready_;
    bool eof_ = false;
    std::uint64_t next_nonce_ = 1;
    std::chrono::milliseconds send_timeout_{5'000};
    std::chrono::nanoseconds shm_spin_{std::chrono::microseconds(50)};
    std::optional<std::array<std::uint8_t, 32>> digest_;  // from connect(): ring headers carry it
    bool expect_fds_ = false;                 // a SHM_OFFER may bring descriptors
    std::vector<shm::UniqueFd> received_fds_;  // descriptors that came with the bytes read
    std::optional<ShmRefuse> shm_refusal_;
    std::unique_ptr<detail::ClientShm> shm_;  // set once SHM_READY is sent
};

}  // namespace mycelium::link
