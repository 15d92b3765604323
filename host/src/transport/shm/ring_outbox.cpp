#include "ring_outbox.hpp"

#include <algorithm>
#include <utility>

namespace mycelium::link::detail {

namespace {

// Publish once this many frames are staged, even while the reader is still busy
// (docs/benchmarks.md, "Shared-memory ring": every 64 frames reaches ~120 M msg/s on the
// bare ring), or once the staged bytes reach a quarter of the ring, at most this many.
constexpr std::size_t SHM_PUBLISH_FRAMES = 64;
constexpr std::size_t SHM_PUBLISH_MAX_BYTES = 64u * 1024u;
// A publisher waiting for room looks at the abort flag this often, so that closing the
// session never waits longer for it.
constexpr std::chrono::milliseconds SHM_WAIT_SLICE{5};

shm::ProducerOptions producer_options(std::size_t max_payload, int peer_bell) noexcept {
    shm::ProducerOptions options;
    options.max_payload = max_payload;
    options.notify_fd = peer_bell;
    options.wait_fd = -1;  // never the own doorbell: the io thread parks on it
    return options;
}

}  // namespace

RingOutbox::RingOutbox(shm::RingRegion region, std::size_t max_payload, int peer_bell) noexcept
    : producer_(region, producer_options(max_payload, peer_bell)),
      publish_bytes_(std::min(region.capacity() / 4, SHM_PUBLISH_MAX_BYTES)) {}

Result<void, shm::WriteError> RingOutbox::try_stage(std::uint16_t type_id, std::span<const std::byte> payload) noexcept {
    auto staged = producer_.try_stage(type_id, payload);
    if (staged) ++staged_frames_;
    return staged;
}

Result<void, shm::WriteError> RingOutbox::wait_and_stage(std::uint16_t type_id, std::span<const std::byte> payload,
                                                         std::chrono::steady_clock::time_point deadline,
                                                         std::chrono::nanoseconds spin,
                                                         const std::atomic<bool>& abort) noexcept {
    for (;;) {
        if (abort.load(std::memory_order_acquire)) return Err{shm::WriteError::Closed};
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) return Err{shm::WriteError::Full};
        const auto slice = std::min<std::chrono::nanoseconds>(left, SHM_WAIT_SLICE);
        // Spins at the start of the wait only; publishes what is staged before it waits.
        const shm::RingWait wait = producer_.wait_for_space(payload.size(), slice, std::exchange(spin, {}));
        if (wait == shm::RingWait::Closed) return Err{shm::WriteError::PeerClosed};
        if (wait == shm::RingWait::Timeout) continue;
        auto staged = try_stage(type_id, payload);
        // Still Full: only the wrap marker fitted (try_stage wrote it); wait for the rest.
        if (staged || staged.error() != shm::WriteError::Full) return staged;
    }
}

bool RingOutbox::publish_due() const noexcept {
    return staged_frames_ >= SHM_PUBLISH_FRAMES || producer_.staged_bytes() >= publish_bytes_;
}

std::size_t RingOutbox::publish() noexcept {
    producer_.publish();
    return std::exchange(staged_frames_, 0);
}

std::string RingOutbox::failure() const {
    const shm::RingFailure* failure = producer_.failure();
    return failure != nullptr ? shm::to_string(*failure) : std::string("bad consumer index");
}

std::size_t RingOutbox::close() noexcept {
    const std::size_t published = publish();  // close() would publish them too, uncounted
    producer_.close();
    return published;
}

}  // namespace mycelium::link::detail
