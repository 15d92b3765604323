#pragma once
// Small Linux synchronisation helpers shared by the bus sources (private header).

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>

namespace mycelium::detail {

#if defined(__SANITIZE_THREAD__)
#define MYC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MYC_TSAN 1
#endif
#endif

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

// A full store-load barrier. TSan does not model atomic_thread_fence (gcc warns), so
// under TSan an seq_cst RMW on a private word stands in for it.
inline void fence_seq_cst() noexcept {
#ifdef MYC_TSAN
    static std::atomic<std::uint32_t> dummy{0};
    dummy.fetch_add(0, std::memory_order_seq_cst);
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) noexcept {
    if (timeout <= std::chrono::nanoseconds::zero()) return;
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(secs.count());
    ts.tv_nsec = static_cast<long>((timeout - secs).count());
    // Spurious returns (EINTR, EAGAIN) are fine: every caller re-checks its condition.
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, &ts,
            nullptr, 0);
}

inline void futex_wake(std::atomic<std::uint32_t>* word, int count) noexcept {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, count, nullptr,
            nullptr, 0);
}

// A point on the steady clock; `after(d)` saturates instead of overflowing.
struct Deadline {
    std::chrono::steady_clock::time_point at{};

    static Deadline after(std::chrono::nanoseconds d) noexcept {
        const auto now = std::chrono::steady_clock::now();
        if (d > std::chrono::hours(24 * 365)) d = std::chrono::hours(24 * 365);
        return Deadline{now + d};
    }
    bool passed() const noexcept { return std::chrono::steady_clock::now() >= at; }
    std::chrono::nanoseconds remaining() const noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(at -
                                                                    std::chrono::steady_clock::now());
    }
};

}  // namespace mycelium::detail
