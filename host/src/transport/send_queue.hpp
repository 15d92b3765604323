#pragma once
// Internal to host/src/transport: a connection's queue of encoded frames waiting for its
// socket (the socket outbox's storage; outbox.hpp says who locks it).

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "mycelium/codec.hpp"

namespace mycelium::link::detail {

/// Frames appended encoded (header and payload) into one buffer, so that everything
/// queued while a write is in flight leaves in the next write, whole. Frames dropped from
/// the front (DropOldest) leave a dead prefix that is reclaimed in place.
///
/// Thread safety: none; the caller holds the lock that guards it (Outbox).
class SendQueue {
public:
    /// The most it holds before it is full (ServerOptions::send_queue_frames and _bytes).
    struct Limits {
        std::size_t frames = 0;
        std::size_t bytes = 0;
    };

    explicit SendQueue(Limits limits) noexcept : limits_(limits) {}

    /// Whether one more frame of `payload_size` bytes stays within the limits.
    bool fits(std::size_t payload_size) const noexcept;
    /// Whether `frames` more probably fit, with an eighth of each limit kept free so that
    /// producers racing each other past the check still find room (Block's room probe).
    bool has_room_for(std::size_t frames) const noexcept;
    /// Appends one frame; the caller has checked fits() where the limits apply (a
    /// closing ERROR or the SHM switch frame is queued regardless).
    void push(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Drops the oldest frame; false when there is none.
    bool drop_oldest() noexcept;
    /// Moves every queued frame into `out` (whose old contents are dropped; its buffer is
    /// reused for the next frames) and returns how many there were.
    std::size_t take(std::vector<std::byte>& out);
    /// Calls `visit(type_id)` once for every queued frame, oldest first.
    template <class Visit>
    void for_each_type(Visit&& visit) const {
        for (std::size_t at = head_; at < bytes_.size();) {
            const codec::FrameHeader header = codec::detail::read_header(bytes_.data() + at);
            visit(header.type_id);
            at += codec::frame_size(header.payload_length);
        }
    }
    /// Forgets every frame; `release_memory` gives the buffer back too.
    void clear(bool release_memory = false) noexcept;

    std::size_t frames() const noexcept { return frames_; }
    std::size_t bytes() const noexcept { return bytes_.size() - head_; }
    bool empty() const noexcept { return frames_ == 0; }
    const Limits& limits() const noexcept { return limits_; }

private:
    /// Reclaims the dead prefix once it is large (it grows by every frame published while
    /// a stalled reader keeps the queue from emptying and DropOldest drops from it).
    void compact() noexcept;

    const Limits limits_;
    std::vector<std::byte> bytes_;
    std::size_t head_ = 0;  // bytes before it were dropped
    std::size_t frames_ = 0;
};

}  // namespace mycelium::link::detail
