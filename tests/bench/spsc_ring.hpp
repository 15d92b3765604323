#pragma once
// The floor for cross-thread hand-off: a bare single-producer single-consumer ring of
// fixed-size slots with cached indices (what a hand-written queue between two threads
// costs here, with no bus, no policy, no counters). Benchmarks only.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace bench {

template <std::size_t SlotBytes>
class SpscRing {
public:
    explicit SpscRing(std::size_t capacity_pow2)
        : mask_(capacity_pow2 - 1), slots_(new Slot[capacity_pow2]) {}

    bool try_push(const void* data) noexcept {
        const std::uint64_t t = tail_.load(std::memory_order_relaxed);
        if (t - head_cache_ > mask_) {
            head_cache_ = head_.load(std::memory_order_acquire);
            if (t - head_cache_ > mask_) return false;
        }
        std::memcpy(slots_[t & mask_].bytes, data, SlotBytes);
        tail_.store(t + 1, std::memory_order_release);
        return true;
    }

    bool try_pop(void* out) noexcept {
        const std::uint64_t h = head_.load(std::memory_order_relaxed);
        if (h == tail_cache_) {
            tail_cache_ = tail_.load(std::memory_order_acquire);
            if (h == tail_cache_) return false;
        }
        std::memcpy(out, slots_[h & mask_].bytes, SlotBytes);
        head_.store(h + 1, std::memory_order_release);
        return true;
    }

private:
    struct Slot {
        std::byte bytes[SlotBytes];
    };
    const std::uint64_t mask_;
    std::unique_ptr<Slot[]> slots_;
    alignas(64) std::atomic<std::uint64_t> tail_{0};
    std::uint64_t head_cache_ = 0;  // producer's copy
    alignas(64) std::atomic<std::uint64_t> head_{0};
    std::uint64_t tail_cache_ = 0;  // consumer's copy
};

/// The one-way floor of a ping-pong: two bare rings of 32-byte slots, an echo thread on
/// `echo_cpu` spinning on the first and answering on the second. Each sample is the mean
/// one-way time of `batch` round trips (one round trip is close to the clock's own
/// cost); the first `warmup` samples are dropped.
inline std::vector<double> ring_pingpong_one_way(int samples, int echo_cpu, int batch = 100, int warmup = 10) {
    struct Slot {
        std::uint64_t seq, a, b, c;
    };
    SpscRing<32> ping(1024), pong(1024);
    std::atomic<bool> stop{false};
    std::thread echo([&] {
        pin_this_thread(echo_cpu);
        Slot m{};
        while (!stop.load(std::memory_order_relaxed))
            if (ping.try_pop(&m))
                while (!pong.try_push(&m)) {
                }
    });
    std::vector<double> out;
    Slot m{0, 1, 2, 3}, back{};
    for (int s = 0; s < samples + warmup; ++s) {
        const auto t0 = Clock::now();
        for (int i = 0; i < batch; ++i) {
            m.seq++;
            while (!ping.try_push(&m)) {
            }
            while (!pong.try_pop(&back)) {
            }
        }
        if (s >= warmup) out.push_back(ns_since(t0) / (2.0 * batch));
    }
    stop = true;
    echo.join();
    return out;
}

}  // namespace bench
