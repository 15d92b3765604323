#include "send_queue.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "mycelium/codec.hpp"

namespace mycelium::link::detail {

namespace {

// The dead prefix is reclaimed once it is this large and at least half the buffer.
constexpr std::size_t COMPACT_AFTER_BYTES = 64u * 1024u;

}  // namespace

bool SendQueue::fits(std::size_t payload_size) const noexcept {
    return frames_ + 1 <= limits_.frames && bytes() + codec::frame_size(payload_size) <= limits_.bytes;
}

bool SendQueue::has_room_for(std::size_t frames) const noexcept {
    const std::size_t wanted = std::min(frames, limits_.frames / 2) + limits_.frames / 8;
    return frames_ + wanted <= limits_.frames && bytes() <= limits_.bytes - limits_.bytes / 8;
}

void SendQueue::push(std::uint16_t type_id, std::span<const std::byte> payload) {
    compact();
    const std::size_t at = bytes_.size();
    bytes_.resize(at + codec::frame_size(payload.size()));
    codec::encode_header(type_id, static_cast<std::uint32_t>(payload.size()),
                         std::span<std::byte, codec::HEADER_SIZE>(bytes_.data() + at, codec::HEADER_SIZE));
    if (!payload.empty()) std::memcpy(bytes_.data() + at + codec::HEADER_SIZE, payload.data(), payload.size());
    ++frames_;
}

bool SendQueue::drop_oldest() noexcept {
    if (frames_ == 0) return false;
    const codec::FrameHeader header = codec::detail::read_header(bytes_.data() + head_);
    head_ += codec::frame_size(header.payload_length);
    --frames_;
    return true;
}

std::size_t SendQueue::take(std::vector<std::byte>& out) {
    out.clear();
    if (frames_ == 0) {
        clear();
        return 0;
    }
    out.swap(bytes_);  // bytes_ takes out's old (empty) buffer and its capacity
    if (head_ != 0) out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
    return std::exchange(frames_, 0);
}

void SendQueue::clear(bool release_memory) noexcept {
    bytes_.clear();
    if (release_memory) bytes_.shrink_to_fit();
    head_ = 0;
    frames_ = 0;
}

void SendQueue::compact() noexcept {
    if (head_ == bytes_.size()) {
        bytes_.clear();
        head_ = 0;
    } else if (head_ >= COMPACT_AFTER_BYTES && head_ * 2 >= bytes_.size()) {
        bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
    }
}

}  // namespace mycelium::link::detail
