#pragma once
/// Bounded logs: a LogLimiter lets one line through per interval and counts the lines it
/// held back, so that a client repeating a mistake a million times costs a few lines,
/// each saying how many it stands for. One limiter per thing that can repeat (a client
/// and a reason); the owner decides the interval (10 s by default).

#include <chrono>
#include <cstdint>
#include <optional>

namespace mycelium::log {

/// Thread safety: none; one owner (a session's strand, one thread).
class LogLimiter {
public:
    static constexpr std::chrono::milliseconds DEFAULT_INTERVAL{10'000};

    explicit LogLimiter(std::chrono::steady_clock::duration interval = DEFAULT_INTERVAL) noexcept
        : interval_(interval) {}

    /// Whether a line may be logged now: the number of lines suppressed since the last
    /// one that was (0 for the first), or nullopt to suppress this one (counted).
    std::optional<std::uint64_t> admit(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) noexcept {
        if (logged_once_ && now - last_ < interval_) {
            ++suppressed_;
            return std::nullopt;
        }
        logged_once_ = true;
        last_ = now;
        const std::uint64_t held_back = suppressed_;
        suppressed_ = 0;
        return held_back;
    }

private:
    std::chrono::steady_clock::duration interval_;
    std::chrono::steady_clock::time_point last_{};
    std::uint64_t suppressed_ = 0;
    bool logged_once_ = false;
};

}  // namespace mycelium::log
