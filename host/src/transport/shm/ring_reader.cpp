#include "ring_reader.hpp"

namespace mycelium::link::detail {

namespace {

// The longest a reader spins before the io thread's other handlers run; shorter while
// other readers of the server spin too: their frames wait for the slice to end (two
// Python clients ping-ponging through one io thread: 5.3 us one way with 2 us slices for
// both, 4.9 with 0.5 us; docs/benchmarks.md, "Python SDK").
constexpr std::chrono::nanoseconds SPIN_SLICE{2000};
constexpr std::chrono::nanoseconds SHARED_SPIN_SLICE{500};

}  // namespace

RingReader::RingReader(shm::RingRegion ring, const shm::ConsumerOptions& options,
                       asio::posix::stream_descriptor bell, std::atomic<std::uint32_t>& spinners) noexcept
    : consumer_(ring, options), bell_(std::move(bell)), spinners_(spinners), spin_(options.spin) {}

void RingReader::begin_turn() noexcept {
    if (!std::exchange(spinning_, true)) spinners_.fetch_add(1, std::memory_order_relaxed);
    const bool shared = spinners_.load(std::memory_order_relaxed) > 1;
    slice_end_ = std::chrono::steady_clock::now() + (shared ? SHARED_SPIN_SLICE : SPIN_SLICE);
}

RingReader::Next RingReader::after_batch(std::size_t visited, std::size_t batch) noexcept {
    if (visited == batch) return Next::Yield;  // more may be waiting: the socket first
    const auto now = std::chrono::steady_clock::now();
    if (visited > 0) {
        spin_until_ = now + spin_;
        return Next::Again;
    }
    if (now >= spin_until_) return Next::Park;
    if (now >= slice_end_) return Next::Yield;
    shm::detail::cpu_relax();
    return Next::Again;
}

void RingReader::woke() noexcept {
    consumer_.end_park();
    spin_until_ = std::chrono::steady_clock::now() + spin_;
}

void RingReader::stop_spinning() noexcept {
    if (std::exchange(spinning_, false)) spinners_.fetch_sub(1, std::memory_order_relaxed);
}

void RingReader::close() noexcept {
    stop_spinning();
    asio::error_code ignored;
    bell_.close(ignored);
    consumer_.close();
}

}  // namespace mycelium::link::detail
