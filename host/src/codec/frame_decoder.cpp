// The slow paths of FrameDecoder: frames split across chunks, errors, end of stream.
// The per-frame fast path is inline in codec.hpp; everything here runs at most once per
// chunk (plus once per error), so it is kept out of line.

#include <spdlog/spdlog.h>

#include <algorithm>

#include "mycelium/codec.hpp"

namespace mycelium::codec {

FrameDecoder::FrameDecoder(DecoderOptions options)
    : max_payload_(std::min(options.max_payload, schema::DEFAULT_MAX_PAYLOAD)),
      type_sizes_(options.type_sizes) {}

bool FrameDecoder::fail(DecodeFailure failure) {
    // The connection owner logs the warning with the peer's address; this is the
    // debug-level trace of where the error was created.
    spdlog::debug("codec: {}", to_string(failure));
    failure_ = failure;
    return false;
}

FrameDecoder::Absorbed FrameDecoder::absorb(const std::byte* first, const std::byte* last) {
    const std::byte* p = first;
    if (header_have_ < HEADER_SIZE) {
        const std::size_t take =
            std::min(HEADER_SIZE - header_have_, static_cast<std::size_t>(last - p));
        if (take == 0) return {p, std::nullopt};  // memcpy from a null span is undefined
        std::memcpy(header_buf_.data() + header_have_, p, take);
        header_have_ += take;
        p += take;
        if (header_have_ < HEADER_SIZE) return {p, std::nullopt};

        pending_ = decode_header(header_buf_);
        if (!header_ok(pending_)) return {p, std::nullopt};
        // Only the header was split: the payload may still lie whole in this chunk.
        if (static_cast<std::size_t>(last - p) >= pending_.payload_length) {
            return {p + pending_.payload_length,
                    SplitFrame{pending_.type_id, std::span<const std::byte>(p, pending_.payload_length)}};
        }
        // Checked against the limit above, so this reserves at most max_payload_ bytes.
        // reserve + insert, not resize: no zero-filling of bytes about to be overwritten.
        payload_buf_.reserve(pending_.payload_length);
    }

    const std::size_t take =
        std::min(pending_.payload_length - payload_buf_.size(), static_cast<std::size_t>(last - p));
    payload_buf_.insert(payload_buf_.end(), p, p + take);
    p += take;
    if (payload_buf_.size() < pending_.payload_length) return {p, std::nullopt};
    return {p, SplitFrame{pending_.type_id, std::span<const std::byte>(payload_buf_)}};
}

void FrameDecoder::end_split_frame() noexcept {
    header_have_ = 0;
    pending_ = {};
    if (payload_buf_.capacity() > RETAINED_BUFFER_CAPACITY) {
        std::vector<std::byte>().swap(payload_buf_);
    } else {
        payload_buf_.clear();
    }
}

Result<void, DecodeError> FrameDecoder::finish() {
    if (failure_) return Err{failure_->error};
    if (!in_split_frame()) return {};
    const bool header_complete = header_have_ == HEADER_SIZE;
    fail({DecodeError::Truncated, header_complete ? pending_.type_id : std::uint16_t{0},
          header_complete ? pending_.payload_length : 0u, max_payload_, 0, buffered_bytes()});
    return Err{DecodeError::Truncated};
}

void FrameDecoder::reset() noexcept {
    failure_.reset();
    end_split_frame();
}

}  // namespace mycelium::codec
