// KeyedLogLimiter: a bounded table of LogLimiters (host/include/mycelium/log_limiter.hpp).

#include "mycelium/log_limiter.hpp"

#include <algorithm>

namespace mycelium::log {

std::string held_back_note(std::uint64_t held_back) {
    if (held_back == 0) return {};
    return " (and " + std::to_string(held_back) + " more like it since the last line)";
}

KeyedLogLimiter::KeyedLogLimiter(std::chrono::steady_clock::duration interval, std::size_t max_keys)
    : interval_(interval), max_keys_(std::max<std::size_t>(max_keys, 1)), overflow_(interval) {
    index_.reserve(max_keys_);
}

std::optional<std::uint64_t> KeyedLogLimiter::admit(std::string_view key, std::uint64_t held_back_before,
                                                    std::chrono::steady_clock::time_point now) {
    // Cut before the look-up, so that two keys alike in their first MAX_KEY_BYTES are one.
    std::string cut(key.substr(0, MAX_KEY_BYTES));
    std::lock_guard lock(mutex_);
    Entry* entry = nullptr;
    if (const auto found = index_.find(cut); found != index_.end()) {
        entries_.splice(entries_.begin(), entries_, found->second);  // most recently seen
        entry = &*found->second;
    } else {
        entry = make_room(cut, now);
    }
    if (entry == nullptr) return overflow_.admit(now, held_back_before);
    entry->last_seen = now;
    return entry->limiter.admit(now, held_back_before);
}

KeyedLogLimiter::Entry* KeyedLogLimiter::make_room(const std::string& key, std::chrono::steady_clock::time_point now) {
    if (entries_.size() >= max_keys_) {
        // Only a key quiet for an interval gives up its slot: a slot taken and lost within
        // an interval would let each new key log a line, and the log would grow with them.
        Entry& oldest = entries_.back();
        if (now - oldest.last_seen < interval_) return nullptr;
        // What it held back is still owed a line: the overflow's next one says it.
        overflow_.hold_back(oldest.limiter.held_back());
        index_.erase(oldest.key);
        entries_.pop_back();
    }
    entries_.push_front(Entry{key, LogLimiter(interval_), now});
    index_.emplace(key, entries_.begin());
    return &entries_.front();
}

std::size_t KeyedLogLimiter::keys() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace mycelium::log
