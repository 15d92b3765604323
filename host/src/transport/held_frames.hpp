#pragma once
// Frames a paused connection has read but not yet published, in arrival order (see
// inbound_pause.hpp). At most one read buffer's worth, or one ring batch's.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace mycelium::link::detail {

/// Thread safety: none; a session's strand only.
class HeldFrames {
public:
    struct Frame {
        std::uint16_t type_id;
        std::span<const std::byte> payload;  ///< valid until the next push or pop
    };

    void push(std::uint16_t type_id, std::span<const std::byte> payload) {
        const std::size_t at = bytes_.size();
        bytes_.resize(at + HEADER + payload.size());
        const std::uint32_t size = static_cast<std::uint32_t>(payload.size());
        std::memcpy(bytes_.data() + at, &type_id, sizeof type_id);
        std::memcpy(bytes_.data() + at + sizeof type_id, &size, sizeof size);
        if (!payload.empty()) std::memcpy(bytes_.data() + at + HEADER, payload.data(), payload.size());
    }

    bool empty() const noexcept { return head_ == bytes_.size(); }

    Frame front() const noexcept {
        std::uint16_t type_id;
        std::uint32_t size;
        std::memcpy(&type_id, bytes_.data() + head_, sizeof type_id);
        std::memcpy(&size, bytes_.data() + head_ + sizeof type_id, sizeof size);
        return Frame{type_id, std::span<const std::byte>(bytes_.data() + head_ + HEADER, size)};
    }

    void pop_front() noexcept {
        head_ += HEADER + front().payload.size();
        if (empty()) clear();
    }

    /// Forgets everything and gives the memory back.
    void clear() noexcept {
        bytes_.clear();
        if (bytes_.capacity() > RETAINED_CAPACITY) bytes_.shrink_to_fit();
        head_ = 0;
    }

private:
    static constexpr std::size_t HEADER = sizeof(std::uint16_t) + sizeof(std::uint32_t);
    static constexpr std::size_t RETAINED_CAPACITY = 64u * 1024u;
    std::vector<std::byte> bytes_;
    std::size_t head_ = 0;
};

}  // namespace mycelium::link::detail
