#pragma once
/// Control frames of the link protocol: type ids 1-999 of the TLV stream, used by this
/// project's clients and peers after the Mycelium digest handshake (docs/wire-protocol.md;
/// every byte is documented with hex examples in docs/wire-protocol.md, "Control frames").
///
/// These functions build and parse control-frame *payloads*; codec::append_frame() adds
/// the 6-byte TLV header. Parsers treat their input as untrusted: every length is checked
/// before it is used, and a bad payload is a ControlError, never an exception.
///
/// Thread safety: constants, value types and reentrant free functions. No GIL needed.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mycelium/result.hpp"

namespace mycelium::link {

/// Control frame type ids (payload layouts in docs/wire-protocol.md).
namespace control {
/// Host -> client (or either way between peers): u16 ErrorCode, UTF-8 reason. Sent just
/// before the sender closes the connection.
inline constexpr std::uint16_t ERROR = 1;
/// Client -> host, optional, first frame after the handshake: u8 version, u8 Role,
/// u16 name length, name. A client that sends it is not legacy: it receives only the
/// types it subscribes to.
inline constexpr std::uint16_t HELLO = 2;
/// Client -> host: a list of u16 application type ids to receive (after HELLO).
inline constexpr std::uint16_t SUBSCRIBE = 3;
/// Client -> host: a list of u16 application type ids to stop receiving.
inline constexpr std::uint16_t UNSUBSCRIBE = 4;
/// Either way: u64 nonce; the receiver answers PONG with the same nonce.
inline constexpr std::uint16_t PING = 5;
/// Either way: u64 nonce of the PING being answered.
inline constexpr std::uint16_t PONG = 6;
/// Client -> host, after HELLO: a snapshot of the client's own metrics
/// (mycelium/metrics_report.hpp), served on the host's /metrics with a `client` label.
inline constexpr std::uint16_t METRICS = 7;
/// Client (or dialing peer) -> host over a Unix socket, after HELLO: u8 version, u8 flags
/// (0), u32 capacity wanted per direction (0 = the node's default). Asks for shared-memory
/// rings; the answer is SHM_OFFER or SHM_REFUSE.
inline constexpr std::uint16_t SHM_REQUEST = 16;
/// Host -> client, sent with SCM_RIGHTS carrying 4 descriptors (ring client->host, ring
/// host->client, the client's doorbell, the host's doorbell): u8 version, u8 flags (0),
/// u8 descriptor count (4), u8 reserved (0), u64 capacity client->host, u64 capacity
/// host->client.
inline constexpr std::uint16_t SHM_OFFER = 17;
/// Either way: u16 ShmRefusal, UTF-8 reason. The host declines a SHM_REQUEST, or the
/// client declines a SHM_OFFER it cannot map; the connection stays on the socket.
inline constexpr std::uint16_t SHM_REFUSE = 18;
/// Client -> host, empty: the offer is mapped; every later frame the client sends goes
/// through its ring (the socket carries nothing more from it).
inline constexpr std::uint16_t SHM_READY = 19;
/// Host -> client, empty, the answer to SHM_READY and the host's last frame on the socket
/// (but for a final ERROR): every later frame the host sends goes through its ring.
inline constexpr std::uint16_t SHM_SWITCH = 20;
/// First id reserved for shared-memory setup.
inline constexpr std::uint16_t SHM_FIRST = 16;
/// Last id reserved for shared-memory setup (21-31 are not used yet).
inline constexpr std::uint16_t SHM_LAST = 31;
/// Version carried by SHM_REQUEST and SHM_OFFER.
inline constexpr std::uint8_t SHM_VERSION = 1;
/// Descriptors passed with SHM_OFFER.
inline constexpr std::size_t SHM_OFFER_FDS = 4;
/// Version carried by HELLO.
inline constexpr std::uint8_t PROTOCOL_VERSION = 1;
/// Longest client name in a HELLO, in bytes.
inline constexpr std::size_t MAX_NAME_BYTES = 255;
/// The schema digest a connection opens with: its length (u16 LE) says 32.
inline constexpr std::size_t DIGEST_SIZE = 32;
/// The whole opening handshake: the length and the digest.
inline constexpr std::size_t HANDSHAKE_SIZE = 2 + DIGEST_SIZE;
/// Longest reason a host puts into an ERROR frame, in bytes (longer ones are cut at a
/// UTF-8 character boundary).
inline constexpr std::size_t MAX_REASON_BYTES = 1024;
}  // namespace control

/// What a connection declared itself to be in its HELLO.
enum class Role : std::uint8_t {
    /// An application client (tools, SDKs): gets what it subscribes to.
    Client = 0,
    /// Another node: gets what it subscribes to, except frames that themselves came
    /// from a peer (a frame crosses at most one node-to-node link).
    Peer = 1,
};

/// The u16 code of an ERROR frame: why the sender is closing the connection.
enum class ErrorCode : std::uint16_t {
    /// The handshake's digest length is not 32.
    BadDigestLength = 1,
    /// The handshake's digest differs from the host's schema digest.
    DigestMismatch = 2,
    /// The handshake did not arrive within the handshake timeout.
    HandshakeTimeout = 3,
    /// A frame header declared a payload above the payload limit.
    Oversize = 4,
    /// Type id 0, an application type id the contracts do not define, or a control type
    /// id this host does not serve.
    UnknownType = 5,
    /// An application frame whose payload length is not its message's size.
    SizeMismatch = 6,
    /// A malformed control frame or one that is not allowed at this point (a second
    /// HELLO, SUBSCRIBE of an unknown type, ...).
    ProtocolViolation = 7,
    /// The host already serves its maximum number of connections.
    TooManyConnections = 8,
    /// The connection's send queue overflowed: it did not read fast enough.
    SlowConsumer = 9,
    /// The host is shutting down.
    ShuttingDown = 10,
    /// HELLO carried a protocol version this host does not speak.
    UnsupportedVersion = 11,
    /// A shared-memory ring of the connection broke its rules (a bad index, a frame past
    /// the published bytes, ...): the link is closed.
    ShmCorrupt = 12,
    /// A METRICS frame above the host's limits for one client (--max-metrics-bytes,
    /// --max-metrics-series): the frame is dropped, the client's last snapshot and the
    /// connection stay.
    LimitExceeded = 13,
    /// An application frame whose payload breaks its message's contract (a string that is
    /// not UTF-8 or longer than its capacity, a vector count above its capacity, a rule):
    /// the frame is dropped, the connection stays.
    InvalidPayload = 14,
    /// The connection sent nothing, and answered no PING, within the idle timeout.
    IdleTimeout = 15,
};

/// The u16 code of a SHM_REFUSE frame: why shared memory is not used. In every case the
/// connection goes on over the socket.
enum class ShmRefusal : std::uint16_t {
    /// Shared memory is disabled on this node.
    Disabled = 1,
    /// The connection is not a Unix socket (descriptors cannot be passed).
    NotLocal = 2,
    /// The rings or doorbells could not be allocated (out of memory, memfd limits).
    NoMemory = 3,
    /// SHM_REQUEST / SHM_OFFER carried a version this side does not speak.
    UnsupportedVersion = 4,
    /// Shared memory is already set up, or being set up, on this connection.
    AlreadyActive = 5,
    /// The client could not map the offered rings (bad seals, sizes or headers).
    BadOffer = 6,
};

/// A stable lower-case name of an error code ("digest_mismatch", ...), or "unknown".
std::string_view to_string(ErrorCode code) noexcept;
/// A stable lower-case name of a refusal ("disabled", "not_local", "no_memory",
/// "unsupported_version", "already_active", "bad_offer"), or "unknown".
std::string_view to_string(ShmRefusal reason) noexcept;
/// A stable lower-case name of a role: "client" or "peer".
std::string_view to_string(Role role) noexcept;

/// A parsed ERROR payload.
/// Thread safety: a value type.
struct ErrorFrame {
    /// The code; values this build does not know are kept as they are.
    ErrorCode code = ErrorCode::ProtocolViolation;
    /// The reason text (UTF-8 as sent; not validated).
    std::string reason;
};

/// A parsed HELLO payload.
/// Thread safety: a value type.
struct Hello {
    /// Protocol version (control::PROTOCOL_VERSION).
    std::uint8_t version = control::PROTOCOL_VERSION;
    /// Client or peer.
    Role role = Role::Client;
    /// 1-255 bytes of valid UTF-8, no ASCII control characters (it goes into log lines
    /// and /metrics labels).
    std::string name;
};

/// A parsed SHM_REQUEST payload.
/// Thread safety: a value type.
struct ShmRequest {
    /// control::SHM_VERSION.
    std::uint8_t version = control::SHM_VERSION;
    /// Reserved, 0.
    std::uint8_t flags = 0;
    /// Data-area bytes wanted per direction; 0 = the node's default.
    std::uint32_t capacity = 0;
};

/// A parsed SHM_OFFER payload (the descriptors travel beside it).
/// Thread safety: a value type.
struct ShmOffer {
    /// control::SHM_VERSION.
    std::uint8_t version = control::SHM_VERSION;
    /// Reserved, 0.
    std::uint8_t flags = 0;
    /// Descriptors passed with the frame: control::SHM_OFFER_FDS.
    std::uint8_t fd_count = static_cast<std::uint8_t>(control::SHM_OFFER_FDS);
    /// Data-area bytes of the client->host ring.
    std::uint64_t client_to_host = 0;
    /// Data-area bytes of the host->client ring.
    std::uint64_t host_to_client = 0;
};

/// A parsed SHM_REFUSE payload.
/// Thread safety: a value type.
struct ShmRefuse {
    /// The reason; values this build does not know are kept as they are.
    ShmRefusal reason = ShmRefusal::Disabled;
    /// Text for people (UTF-8 as sent; not validated).
    std::string text;
};

/// Why a control payload could not be parsed.
enum class ControlError : std::uint8_t {
    /// The payload is shorter or longer than its layout says.
    BadLength,
    /// A field holds a value outside its range (role, version, name characters).
    BadValue,
};

/// "bad_length" / "bad_value".
std::string_view to_string(ControlError error) noexcept;

/// ERROR payload: u16 code, then `reason` cut to control::MAX_REASON_BYTES.
/// May throw std::bad_alloc.
std::vector<std::byte> encode_error(ErrorCode code, std::string_view reason);
/// HELLO payload. Throws std::invalid_argument for an empty name, a name longer than
/// control::MAX_NAME_BYTES, one with control characters or one that is not UTF-8.
std::vector<std::byte> encode_hello(const Hello& hello);
/// The opening handshake (Mycelium's): `u16 LE length, digest` (docs/wire-protocol.md,
/// "Handshake"). Any length is encoded as given; a host accepts only DIGEST_SIZE.
std::vector<std::byte> encode_handshake(std::span<const std::uint8_t> digest);
/// SUBSCRIBE / UNSUBSCRIBE payload: the ids as consecutive u16 LE. May throw std::bad_alloc.
std::vector<std::byte> encode_type_list(std::span<const std::uint16_t> type_ids);
/// PING / PONG payload: the nonce as u64 LE.
std::vector<std::byte> encode_nonce(std::uint64_t nonce);

/// SHM_REQUEST payload (6 bytes). May throw std::bad_alloc.
std::vector<std::byte> encode_shm_request(const ShmRequest& request);
/// SHM_OFFER payload (20 bytes). May throw std::bad_alloc.
std::vector<std::byte> encode_shm_offer(const ShmOffer& offer);
/// SHM_REFUSE payload: u16 reason, then `text` cut to control::MAX_REASON_BYTES.
std::vector<std::byte> encode_shm_refuse(ShmRefusal reason, std::string_view text);

/// Parses an ERROR payload. Errors: BadLength (fewer than 2 bytes).
Result<ErrorFrame, ControlError> decode_error(std::span<const std::byte> payload);
/// Parses a HELLO payload. Errors: BadLength (shorter than 4 + name length), BadValue
/// (role not 0/1, empty name, control characters in the name, a name that is not valid
/// UTF-8). Trailing bytes after the
/// name are reserved for later versions and ignored. The version is returned, not checked.
Result<Hello, ControlError> decode_hello(std::span<const std::byte> payload);
/// Parses a SUBSCRIBE / UNSUBSCRIBE payload. Errors: BadLength (odd length).
Result<std::vector<std::uint16_t>, ControlError> decode_type_list(std::span<const std::byte> payload);
/// Parses a PING / PONG payload. Errors: BadLength (not exactly 8 bytes).
Result<std::uint64_t, ControlError> decode_nonce(std::span<const std::byte> payload);
/// Parses a SHM_REQUEST payload. Errors: BadLength (fewer than 6 bytes; bytes after the
/// sixth are reserved and ignored). Version and flags are returned, not checked.
Result<ShmRequest, ControlError> decode_shm_request(std::span<const std::byte> payload);
/// Parses a SHM_OFFER payload. Errors: BadLength (fewer than 20 bytes; later bytes are
/// reserved and ignored). Nothing else is checked here.
Result<ShmOffer, ControlError> decode_shm_offer(std::span<const std::byte> payload);
/// Parses a SHM_REFUSE payload. Errors: BadLength (fewer than 2 bytes).
Result<ShmRefuse, ControlError> decode_shm_refuse(std::span<const std::byte> payload);
/// Parses an empty payload (SHM_READY, SHM_SWITCH). Errors: BadLength (not empty).
Result<void, ControlError> decode_empty(std::span<const std::byte> payload);

}  // namespace mycelium::link
