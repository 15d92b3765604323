#pragma once
// A bus's interest: which type ids have at least one subscriber that counts as interest,
// and the listeners told when that changes (the file comment of bus.cpp, "Interest";
// Bus::watch_interest). Nothing of it is on the publish path. Private header of
// host/src/bus/.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mycelium::detail {

/// Thread safety: every member from any thread. count() and uncount() are called under
/// the bus's subscription lock, so that the events are in the order of the subscription
/// changes (the bus's lock is always taken before this one); deliver_events() and the
/// listeners run under neither.
class InterestTracker {
public:
    using Listener = std::function<void(std::uint16_t type_id, bool interested)>;

    /// One more subscriber of `type_id` counts as interest; the first queues an event.
    void count(std::uint16_t type_id);
    /// One fewer; the last queues an event.
    void uncount(std::uint16_t type_id);
    /// Calls the listeners with the queued events, unless another thread is doing so
    /// (it then picks them up). Listeners may subscribe, close, add or remove listeners.
    void deliver_events() noexcept;

    /// Adds a listener, first told the current set, and returns its id.
    std::uint64_t add_listener(Listener fn);
    /// Removes a listener; waits for a round of calls in progress on another thread.
    void remove_listener(std::uint64_t id) noexcept;

    bool interested(std::uint16_t type_id) const;
    /// Ascending.
    std::vector<std::uint16_t> interested_types() const;

private:
    struct Event {
        std::uint64_t seq;
        std::uint16_t type_id;
        bool interested;
    };
    struct ListenerState {
        std::uint64_t id = 0;
        Listener fn;
        std::atomic<bool> alive{true};
        std::uint64_t from_seq = 0;          // events before it are covered by `initial`
        std::vector<std::uint16_t> initial;  // the set when it was added, not yet delivered
    };

    mutable std::mutex mu_;
    std::unordered_map<std::uint16_t, std::uint32_t> counts_;  // type -> counting subscribers
    std::vector<Event> events_;
    std::uint64_t seq_ = 0;
    std::vector<std::shared_ptr<ListenerState>> listeners_;
    std::uint64_t next_listener_id_ = 1;
    bool delivering_ = false;
    std::thread::id deliverer_;
    std::condition_variable delivered_cv_;
};

}  // namespace mycelium::detail
