// Control-frame payloads (docs/wire-protocol.md, "Control frames"). Input is untrusted:
// every length is checked before it is read.

#include "mycelium/link_protocol.hpp"

#include <cstring>
#include <stdexcept>

#include "mycelium/codec.hpp"
#include "mycelium/utf8.hpp"

namespace mycelium::link {

namespace {

bool valid_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > control::MAX_NAME_BYTES) return false;
    for (const char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) return false;  // keeps log lines one line
    }
    // It goes into /metrics labels and JSON log lines, which must stay valid UTF-8.
    return utf8::is_valid(name);
}

// Cuts at most `limit` bytes without splitting a UTF-8 sequence.
std::string_view cut_utf8(std::string_view text, std::size_t limit) noexcept {
    if (text.size() <= limit) return text;
    std::size_t end = limit;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0u) == 0x80u) --end;
    return text.substr(0, end);
}

}  // namespace

std::string_view to_string(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::BadDigestLength: return "bad_digest_length";
        case ErrorCode::DigestMismatch: return "digest_mismatch";
        case ErrorCode::HandshakeTimeout: return "handshake_timeout";
        case ErrorCode::Oversize: return "oversize";
        case ErrorCode::UnknownType: return "unknown_type";
        case ErrorCode::SizeMismatch: return "size_mismatch";
        case ErrorCode::ProtocolViolation: return "protocol_violation";
        case ErrorCode::TooManyConnections: return "too_many_connections";
        case ErrorCode::SlowConsumer: return "slow_consumer";
        case ErrorCode::ShuttingDown: return "shutting_down";
        case ErrorCode::UnsupportedVersion: return "unsupported_version";
        case ErrorCode::ShmCorrupt: return "shm_corrupt";
        case ErrorCode::LimitExceeded: return "limit_exceeded";
        case ErrorCode::InvalidPayload: return "invalid_payload";
        case ErrorCode::IdleTimeout: return "idle_timeout";
    }
    return "unknown";
}

std::string_view to_string(ShmRefusal reason) noexcept {
    switch (reason) {
        case ShmRefusal::Disabled: return "disabled";
        case ShmRefusal::NotLocal: return "not_local";
        case ShmRefusal::NoMemory: return "no_memory";
        case ShmRefusal::UnsupportedVersion: return "unsupported_version";
        case ShmRefusal::AlreadyActive: return "already_active";
        case ShmRefusal::BadOffer: return "bad_offer";
    }
    return "unknown";
}

std::string_view to_string(Role role) noexcept { return role == Role::Peer ? "peer" : "client"; }

std::string_view to_string(ControlError error) noexcept {
    return error == ControlError::BadLength ? "bad_length" : "bad_value";
}

std::vector<std::byte> encode_error(ErrorCode code, std::string_view reason) {
    const std::string_view text = cut_utf8(reason, control::MAX_REASON_BYTES);
    std::vector<std::byte> out(2 + text.size());
    store_le16(out.data(), static_cast<std::uint16_t>(code));
    for (std::size_t i = 0; i < text.size(); ++i) out[2 + i] = static_cast<std::byte>(text[i]);
    return out;
}

std::vector<std::byte> encode_handshake(std::span<const std::uint8_t> digest) {
    std::vector<std::byte> out(2 + digest.size());
    store_le16(out.data(), static_cast<std::uint16_t>(digest.size()));
    std::memcpy(out.data() + 2, digest.data(), digest.size());
    return out;
}

std::vector<std::byte> encode_hello(const Hello& hello) {
    if (!valid_name(hello.name)) {
        throw std::invalid_argument("bad HELLO name '" + hello.name + "': 1-255 bytes without control characters");
    }
    std::vector<std::byte> out(4 + hello.name.size());
    out[0] = static_cast<std::byte>(hello.version);
    out[1] = static_cast<std::byte>(hello.role);
    store_le16(out.data() + 2, static_cast<std::uint16_t>(hello.name.size()));
    for (std::size_t i = 0; i < hello.name.size(); ++i) out[4 + i] = static_cast<std::byte>(hello.name[i]);
    return out;
}

std::vector<std::byte> encode_type_list(std::span<const std::uint16_t> type_ids) {
    std::vector<std::byte> out(2 * type_ids.size());
    for (std::size_t i = 0; i < type_ids.size(); ++i) store_le16(out.data() + 2 * i, type_ids[i]);
    return out;
}

std::vector<std::byte> encode_nonce(std::uint64_t nonce) {
    std::vector<std::byte> out(8);
    for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((nonce >> (8 * i)) & 0xffu);
    return out;
}

namespace {

void store_le(std::byte* out, std::uint64_t v, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((v >> (8 * i)) & 0xffu);
}

std::uint64_t load_le(const std::byte* in, std::size_t n) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::to_integer<std::uint64_t>(in[i]) << (8 * i);
    return v;
}

}  // namespace

std::vector<std::byte> encode_shm_request(const ShmRequest& request) {
    std::vector<std::byte> out(6);
    out[0] = static_cast<std::byte>(request.version);
    out[1] = static_cast<std::byte>(request.flags);
    store_le(out.data() + 2, request.capacity, 4);
    return out;
}

std::vector<std::byte> encode_shm_offer(const ShmOffer& offer) {
    std::vector<std::byte> out(20);
    out[0] = static_cast<std::byte>(offer.version);
    out[1] = static_cast<std::byte>(offer.flags);
    out[2] = static_cast<std::byte>(offer.fd_count);
    out[3] = std::byte{0};
    store_le(out.data() + 4, offer.client_to_host, 8);
    store_le(out.data() + 12, offer.host_to_client, 8);
    return out;
}

std::vector<std::byte> encode_shm_refuse(ShmRefusal reason, std::string_view text) {
    // Same layout as ERROR: a u16 code and the cut text.
    return encode_error(static_cast<ErrorCode>(reason), text);
}

Result<ShmRequest, ControlError> decode_shm_request(std::span<const std::byte> payload) {
    if (payload.size() < 6) return Err{ControlError::BadLength};
    ShmRequest r;
    r.version = std::to_integer<std::uint8_t>(payload[0]);
    r.flags = std::to_integer<std::uint8_t>(payload[1]);
    r.capacity = static_cast<std::uint32_t>(load_le(payload.data() + 2, 4));
    return r;
}

Result<ShmOffer, ControlError> decode_shm_offer(std::span<const std::byte> payload) {
    if (payload.size() < 20) return Err{ControlError::BadLength};
    ShmOffer o;
    o.version = std::to_integer<std::uint8_t>(payload[0]);
    o.flags = std::to_integer<std::uint8_t>(payload[1]);
    o.fd_count = std::to_integer<std::uint8_t>(payload[2]);
    o.client_to_host = load_le(payload.data() + 4, 8);
    o.host_to_client = load_le(payload.data() + 12, 8);
    return o;
}

Result<ShmRefuse, ControlError> decode_shm_refuse(std::span<const std::byte> payload) {
    if (payload.size() < 2) return Err{ControlError::BadLength};
    ShmRefuse r;
    r.reason = static_cast<ShmRefusal>(load_le16(payload.data()));
    r.text.assign(reinterpret_cast<const char*>(payload.data() + 2), payload.size() - 2);
    return r;
}

Result<void, ControlError> decode_empty(std::span<const std::byte> payload) {
    if (!payload.empty()) return Err{ControlError::BadLength};
    return {};
}

Result<ErrorFrame, ControlError> decode_error(std::span<const std::byte> payload) {
    if (payload.size() < 2) return Err{ControlError::BadLength};
    ErrorFrame e;
    e.code = static_cast<ErrorCode>(load_le16(payload.data()));
    e.reason.assign(reinterpret_cast<const char*>(payload.data() + 2), payload.size() - 2);
    return e;
}

Result<Hello, ControlError> decode_hello(std::span<const std::byte> payload) {
    if (payload.size() < 4) return Err{ControlError::BadLength};
    Hello h;
    h.version = std::to_integer<std::uint8_t>(payload[0]);
    const auto role = std::to_integer<std::uint8_t>(payload[1]);
    if (role > 1) return Err{ControlError::BadValue};
    h.role = static_cast<Role>(role);
    const std::size_t name_length = load_le16(payload.data() + 2);
    if (payload.size() - 4 < name_length) return Err{ControlError::BadLength};
    h.name.assign(reinterpret_cast<const char*>(payload.data() + 4), name_length);
    if (!valid_name(h.name)) return Err{ControlError::BadValue};
    return h;
}

Result<std::vector<std::uint16_t>, ControlError> decode_type_list(std::span<const std::byte> payload) {
    if (payload.size() % 2 != 0) return Err{ControlError::BadLength};
    std::vector<std::uint16_t> ids(payload.size() / 2);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = load_le16(payload.data() + 2 * i);
    return ids;
}

Result<std::uint64_t, ControlError> decode_nonce(std::span<const std::byte> payload) {
    if (payload.size() != 8) return Err{ControlError::BadLength};
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) v |= std::to_integer<std::uint64_t>(payload[i]) << (8 * i);
    return v;
}

}  // namespace mycelium::link
