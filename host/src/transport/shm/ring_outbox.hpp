#pragma once
// Internal to host/src/transport: the producer end of a link's outgoing shared-memory
// ring, once frames go through it (after SHM_SWITCH or SHM_READY). Outbox owns it and
// says when it is used.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "mycelium/result.hpp"
#include "mycelium/shm_ring.hpp"

namespace mycelium::link::detail {

/// Frames are staged, then published together: a publish is a full barrier that waits
/// for the index's cache line while the reader polls it, so a burst pays it once. Staged
/// frames are published at once when SHM_PUBLISH_FRAMES are staged or a quarter of the
/// ring (at most SHM_PUBLISH_MAX_BYTES): large frames are never held back.
///
/// Thread safety: none; the caller holds the Outbox's lock.
class RingOutbox {
public:
    /// Writes into `region`, ringing `peer_bell` when the reader sleeps. It never waits on
    /// a doorbell of its own (its io thread parks on the one it has): wait_and_stage
    /// sleeps in slices instead, so the reader never has to ring for room.
    RingOutbox(shm::RingRegion region, std::size_t max_payload, int peer_bell) noexcept;

    /// Stages one frame, invisible until publish(). Full when it does not fit now.
    Result<void, shm::WriteError> try_stage(std::uint16_t type_id, std::span<const std::byte> payload) noexcept;
    /// Waits for room and stages the frame: spins for `spin`, then sleeps in slices until
    /// `deadline` (Full after it), or until `abort` is set (Closed). The caller has
    /// published what was staged: the reader cannot make room from frames it was not shown.
    Result<void, shm::WriteError> wait_and_stage(std::uint16_t type_id, std::span<const std::byte> payload,
                                                 std::chrono::steady_clock::time_point deadline,
                                                 std::chrono::nanoseconds spin, const std::atomic<bool>& abort) noexcept;
    /// Whether what is staged must be published now rather than left to a cork.
    bool publish_due() const noexcept;
    /// Makes the staged frames visible; returns how many there were (for the counters).
    std::size_t publish() noexcept;
    std::size_t staged_frames() const noexcept { return staged_frames_; }
    /// Whether a quarter of the ring is free (the room probe: frame sizes are unknown there).
    bool has_room() noexcept { return producer_.free_bytes() >= producer_.capacity() / 4; }
    std::size_t capacity() const noexcept { return producer_.capacity(); }
    /// What broke the ring, when a write found the reader's index invalid.
    std::string failure() const;
    /// Publishes what is staged and tells the reader no more will come. Returns the
    /// frames published.
    std::size_t close() noexcept;

private:
    shm::RingProducer producer_;
    std::size_t publish_bytes_;
    std::size_t staged_frames_ = 0;
};

}  // namespace mycelium::link::detail
