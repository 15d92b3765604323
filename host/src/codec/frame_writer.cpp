// Frame writers. The checks mirror FrameDecoder's: a frame the peer is bound to reject
// (type id 0, a payload over the protocol maximum) is refused here, where the bug is,
// rather than closing the connection at the other end.

#include "mycelium/codec.hpp"

namespace mycelium::codec {

namespace {

std::optional<EncodeError> check_frame(std::uint16_t type_id, std::size_t payload_size) noexcept {
    if (type_id == RESERVED_TYPE_ID) return EncodeError::InvalidType;
    if (payload_size > schema::DEFAULT_MAX_PAYLOAD) return EncodeError::Oversize;
    return std::nullopt;
}

}  // namespace

Result<void, EncodeError> append_frame(std::vector<std::byte>& out, std::uint16_t type_id,
                                       std::span<const std::byte> payload) {
    if (const auto error = check_frame(type_id, payload.size())) return Err{*error};
    std::array<std::byte, HEADER_SIZE> header;
    encode_header(type_id, static_cast<std::uint32_t>(payload.size()), header);
    // One growth for header and payload; if it throws, `out` is unchanged.
    out.reserve(out.size() + frame_size(payload.size()));
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), payload.begin(), payload.end());
    return {};
}

Result<std::size_t, EncodeError> write_frame(std::span<std::byte> out, std::uint16_t type_id,
                                             std::span<const std::byte> payload) noexcept {
    if (const auto error = check_frame(type_id, payload.size())) return Err{*error};
    const std::size_t size = frame_size(payload.size());
    if (out.size() < size) return Err{EncodeError::BufferTooSmall};
    encode_header(type_id, static_cast<std::uint32_t>(payload.size()), out.first<HEADER_SIZE>());
    if (!payload.empty()) std::memcpy(out.data() + HEADER_SIZE, payload.data(), payload.size());
    return size;
}

}  // namespace mycelium::codec
