#pragma once
// Internal to host/src/transport: the consumer end of a link's incoming shared-memory
// ring: when to read again, when to let the io thread's other handlers run, and when to
// park on the doorbell. What the frames mean is the link's.

#include <asio/posix/stream_descriptor.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "mycelium/shm_ring.hpp"

namespace mycelium::link::detail {

/// A reader spins for a while after the last frame (a reply comes soon after a request),
/// in slices, so that the other sessions of its io thread (their rings, their sockets)
/// run in between, then parks with an asynchronous wait on its doorbell: never a
/// blocking call on the io thread.
///
/// Thread safety: none; the link's strand.
class RingReader {
public:
    /// What to do after a batch of frames.
    enum class Next : std::uint8_t {
        Again,  // read again now (frames came, or the spin goes on)
        Yield,  // post another turn: other handlers first
        Park,   // the spin is over: park on the doorbell
    };

    /// Reads `ring`; `bell` (owned; a dup of the doorbell the other side rings) is watched
    /// on the link's strand. `spinners` counts the readers of a server that spin now.
    RingReader(shm::RingRegion ring, const shm::ConsumerOptions& options, asio::posix::stream_descriptor bell,
               std::atomic<std::uint32_t>& spinners) noexcept;
    ~RingReader() { stop_spinning(); }
    RingReader(const RingReader&) = delete;
    RingReader& operator=(const RingReader&) = delete;

    shm::RingConsumer& consumer() noexcept { return consumer_; }
    /// Starts a turn of reading; counts this reader as spinning.
    void begin_turn() noexcept;
    /// After a batch that visited `visited` frames of at most `batch`.
    Next after_batch(std::size_t visited, std::size_t batch) noexcept;
    /// Parks: `on_bell(error_code)` runs on the strand when the other side rings. False
    /// (and not parked) when a frame came meanwhile: read again.
    template <class Handler>
    bool park(Handler&& on_bell) {
        if (!consumer_.begin_park()) return false;
        stop_spinning();
        bell_.async_wait(asio::posix::stream_descriptor::wait_read, std::forward<Handler>(on_bell));
        return true;
    }
    /// The doorbell rang: the spin starts again.
    void woke() noexcept;
    void stop_spinning() noexcept;
    /// Stops watching the doorbell and tells the writer no more is read.
    void close() noexcept;

private:
    shm::RingConsumer consumer_;
    asio::posix::stream_descriptor bell_;
    std::atomic<std::uint32_t>& spinners_;
    const std::chrono::nanoseconds spin_;
    std::chrono::steady_clock::time_point spin_until_{};  // read again until then
    std::chrono::steady_clock::time_point slice_end_{};   // then let other handlers run
    bool spinning_ = false;                               // counted in spinners_
};

}  // namespace mycelium::link::detail
