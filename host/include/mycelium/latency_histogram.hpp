#pragma once
/// LatencyHistogram: fixed-memory latency recording with ~3% relative precision from
/// 1 ns to ~1 hour, for summaries and benchmarks (median, p99, max).
/// Thread safety: record() from one thread at a time; read after that thread is done
/// (or accept a slightly stale view: counters are relaxed atomics).

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace mycelium {

class LatencyHistogram {
public:
    /// Records one duration in nanoseconds.
    void record(std::uint64_t ns) noexcept {
        buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
        count_.fetch_add(1, std::memory_order_relaxed);
        sum_.fetch_add(ns, std::memory_order_relaxed);
        if (ns > max_.load(std::memory_order_relaxed)) max_.store(ns, std::memory_order_relaxed);
    }

    std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
    std::uint64_t max() const noexcept { return max_.load(std::memory_order_relaxed); }
    /// The sum of every recorded duration (wraps after ~584 years of nanoseconds).
    std::uint64_t sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

    /// Durations recorded whose bucket lies at or below `ns` (a cumulative count for a
    /// Prometheus histogram bucket `le`; a bucket that straddles `ns` counts above it,
    /// so the figure is within the histogram's 3% precision).
    std::uint64_t count_at_most(std::uint64_t ns) const noexcept {
        std::uint64_t total = 0;
        for (std::size_t i = 0; i < BUCKETS && upper_edge(i) <= ns; ++i)
            total += buckets_[i].load(std::memory_order_relaxed);
        return total;
    }

    /// The value at quantile q in [0, 1] (upper edge of its bucket), 0 when empty.
    std::uint64_t percentile(double q) const noexcept {
        const std::uint64_t total = count();
        if (total == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < BUCKETS; ++i) {
            seen += buckets_[i].load(std::memory_order_relaxed);
            if (seen >= rank) return std::min(upper_edge(i), max());
        }
        return max();
    }

private:
    // 32 sub-buckets per power of two: values below 32 are exact, above that each
    // bucket spans 1/32 of its octave (≤ 3.1% error).
    static constexpr unsigned SUB_BITS = 5;
    static constexpr std::size_t SUB = 1u << SUB_BITS;
    static constexpr std::size_t BUCKETS = SUB * (64 - SUB_BITS + 1);

    static std::size_t bucket_of(std::uint64_t v) noexcept {
        if (v < SUB) return static_cast<std::size_t>(v);
        const unsigned octave = static_cast<unsigned>(std::bit_width(v)) - SUB_BITS;  // >= 1
        const auto sub = static_cast<std::size_t>((v >> (octave - 1)) & (SUB - 1));
        return octave * SUB + sub;
    }
    static std::uint64_t upper_edge(std::size_t bucket) noexcept {
        if (bucket < SUB) return bucket;
        const std::size_t octave = bucket / SUB;
        const std::size_t sub = bucket % SUB;
        return ((SUB + sub + 1) << (octave - 1)) - 1;
    }

    std::array<std::atomic<std::uint64_t>, BUCKETS> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> max_{0};
    std::atomic<std::uint64_t> sum_{0};
};

}  // namespace mycelium
