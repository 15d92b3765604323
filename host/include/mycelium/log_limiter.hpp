#pragma once
/// Bounded logs: a LogLimiter lets one line through per interval and counts the lines it
/// held back, so that a client repeating a mistake a million times costs a few lines,
/// each saying how many it stands for. One limiter per thing that can repeat (a client
/// and a reason); the owner decides the interval (10 s by default, `--log-interval`).
///
/// A KeyedLogLimiter does the same for many things at once, one LogLimiter per key (a
/// reason, a callback and its exception type), in a table of at most `max_keys` keys: the
/// limiter's own memory stays bounded whatever keys hostile input makes up, and so does
/// the log (at most max_keys + 1 lines per interval). docs/reliability.md, "Logs are
/// bounded".

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mycelium::log {

/// " (and N more like it since the last line)", or nothing for N = 0: what a line that a
/// limiter let through appends, in every component's words alike.
std::string held_back_note(std::uint64_t held_back);

/// Thread safety: none; one owner (a session's strand, one thread).
class LogLimiter {
public:
    static constexpr std::chrono::milliseconds DEFAULT_INTERVAL{10'000};

    explicit LogLimiter(std::chrono::steady_clock::duration interval = DEFAULT_INTERVAL) noexcept
        : interval_(interval) {}

    /// Whether a line may be logged now: the number of lines suppressed since the last
    /// one that was (0 for the first), or nullopt to suppress this one (counted).
    std::optional<std::uint64_t> admit(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) noexcept {
        return admit(now, 0);
    }
    /// As admit(now), for a line that already stands for `held_back_before` lines a finer
    /// limiter held back (a connection's own): they are added to the count, whether this
    /// line is logged (returned with the rest) or suppressed (reported by the next line).
    std::optional<std::uint64_t> admit(std::chrono::steady_clock::time_point now,
                                       std::uint64_t held_back_before) noexcept {
        if (logged_once_ && now - last_ < interval_) {
            suppressed_ += 1 + held_back_before;
            return std::nullopt;
        }
        logged_once_ = true;
        last_ = now;
        const std::uint64_t held_back = suppressed_ + held_back_before;
        suppressed_ = 0;
        return held_back;
    }
    /// Adds `n` lines to those the next admitted line reports (a KeyedLogLimiter's
    /// evicted key).
    void hold_back(std::uint64_t n) noexcept { suppressed_ += n; }
    /// Lines held back since the last admitted one.
    std::uint64_t held_back() const noexcept { return suppressed_; }
    /// When the last line was let through; nullopt before the first.
    std::optional<std::chrono::steady_clock::time_point> last_line() const noexcept {
        return logged_once_ ? std::optional(last_) : std::nullopt;
    }

private:
    std::chrono::steady_clock::duration interval_;
    std::chrono::steady_clock::time_point last_{};
    std::uint64_t suppressed_ = 0;
    bool logged_once_ = false;
};

/// One LogLimiter per key, for lines of one kind whose keys outside input chooses (a
/// reason, a callback and its exception type). The table holds at most `max_keys` keys,
/// each cut to MAX_KEY_BYTES. A new key takes a free slot, or the slot of the key seen
/// longest ago if that one has been quiet for an interval (whose held-back count then
/// goes to the overflow limiter); otherwise it shares the overflow limiter with every
/// other key without a slot. So memory is bounded by max_keys, and so is the log: each
/// interval, at most one line per slot and one for the overflow.
///
/// Thread safety: safe (one mutex; only the lines being limited take it).
class KeyedLogLimiter {
public:
    static constexpr std::size_t DEFAULT_MAX_KEYS = 256;
    static constexpr std::size_t MAX_KEY_BYTES = 256;

    explicit KeyedLogLimiter(std::chrono::steady_clock::duration interval = LogLimiter::DEFAULT_INTERVAL,
                             std::size_t max_keys = DEFAULT_MAX_KEYS);

    /// LogLimiter::admit for the line of `key`: the lines held back since that key's last
    /// line (plus `held_back_before`, see LogLimiter), or nullopt to suppress this one.
    /// Allocates only for a key not in the table.
    std::optional<std::uint64_t> admit(std::string_view key, std::uint64_t held_back_before = 0,
                                       std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

    /// Keys in the table now (at most max_keys; the overflow is not one).
    std::size_t keys() const;

private:
    struct Entry {
        std::string key;
        LogLimiter limiter;
        std::chrono::steady_clock::time_point last_seen;
    };
    using Entries = std::list<Entry>;  // most recently seen first

    /// The slot for a key not in the table, or nullptr for the overflow. Holds mutex_.
    Entry* make_room(const std::string& key, std::chrono::steady_clock::time_point now);

    const std::chrono::steady_clock::duration interval_;
    const std::size_t max_keys_;
    mutable std::mutex mutex_;
    Entries entries_;
    std::unordered_map<std::string, Entries::iterator> index_;
    LogLimiter overflow_;
};

}  // namespace mycelium::log
