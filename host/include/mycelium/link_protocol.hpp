#pragma once
/// Control frames of the link protocol: type ids 1-999 of the TLV stream, used by this
/// project's clients and peers after the Mycelium digest handshake (DESIGN.md section 6;
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
/// First id reserved for shared-memory setup (the shm issue); not served yet.
inline constexpr std::uint16_t SHM_FIRST = 16;
/// Last id reserved for shared-memory setup.
inline constexpr std::uint16_t SHM_LAST = 31;
/// Version carried by HELLO.
inline constexpr std::uint8_t PROTOCOL_VERSION = 1;
/// Longest client name in a HELLO, in bytes.
inline constexpr std::size_t MAX_NAME_BYTES = 255;
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
};

/// A stable lower-case name of an error code ("digest_mismatch", ...), or "unknown".
std::string_view to_string(ErrorCode code) noexcept;
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
    /// 1-255 bytes, no ASCII control characters (it goes into log lines).
    std::string name;
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
/// control::MAX_NAME_BYTES or one with control characters.
std::vector<std::byte> encode_hello(const Hello& hello);
/// SUBSCRIBE / UNSUBSCRIBE payload: the ids as consecutive u16 LE. May throw std::bad_alloc.
std::vector<std::byte> encode_type_list(std::span<const std::uint16_t> type_ids);
/// PING / PONG payload: the nonce as u64 LE.
std::vector<std::byte> encode_nonce(std::uint64_t nonce);

/// Parses an ERROR payload. Errors: BadLength (fewer than 2 bytes).
Result<ErrorFrame, ControlError> decode_error(std::span<const std::byte> payload);
/// Parses a HELLO payload. Errors: BadLength (shorter than 4 + name length), BadValue
/// (role not 0/1, empty name, control characters in the name). Trailing bytes after the
/// name are reserved for later versions and ignored. The version is returned, not checked.
Result<Hello, ControlError> decode_hello(std::span<const std::byte> payload);
/// Parses a SUBSCRIBE / UNSUBSCRIBE payload. Errors: BadLength (odd length).
Result<std::vector<std::uint16_t>, ControlError> decode_type_list(std::span<const std::byte> payload);
/// Parses a PING / PONG payload. Errors: BadLength (not exactly 8 bytes).
Result<std::uint64_t, ControlError> decode_nonce(std::span<const std::byte> payload);

}  // namespace mycelium::link
