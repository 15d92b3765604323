#pragma once
// The floor for cross-thread hand-off: a bare single-producer single-consumer ring of
// fixed-size slots with cached indices (what a hand-written queue between two threads
// costs here, with no bus, no policy, no counters). Benchmarks only.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

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

}  // namespace bench
