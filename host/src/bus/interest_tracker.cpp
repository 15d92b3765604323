// A bus's interest set and its listeners (interest_tracker.hpp).

#include "interest_tracker.hpp"

#include <algorithm>
#include <exception>
#include <utility>

#include <spdlog/spdlog.h>

namespace mycelium::detail {

void InterestTracker::count(std::uint16_t type_id) {
    std::lock_guard lock(mu_);
    if (++counts_[type_id] == 1) events_.push_back({seq_++, type_id, true});
}

void InterestTracker::uncount(std::uint16_t type_id) {
    std::lock_guard lock(mu_);
    auto it = counts_.find(type_id);
    if (it == counts_.end()) return;
    if (--it->second == 0) {
        counts_.erase(it);
        events_.push_back({seq_++, type_id, false});
    }
}

void InterestTracker::deliver_events() noexcept {
    std::unique_lock lock(mu_);
    if (delivering_) return;  // the delivering thread picks our events up
    delivering_ = true;
    deliverer_ = std::this_thread::get_id();
    std::vector<Event> events;
    std::vector<std::pair<std::shared_ptr<ListenerState>, std::vector<std::uint16_t>>> initials;
    std::vector<std::shared_ptr<ListenerState>> targets;
    for (;;) {
        events.clear();
        initials.clear();
        events.swap(events_);
        for (auto& l : listeners_) {
            if (l->initial.empty()) continue;
            initials.emplace_back(l, std::move(l->initial));
            l->initial.clear();
        }
        if (events.empty() && initials.empty()) break;
        targets = listeners_;
        lock.unlock();
        const auto call = [](ListenerState& l, std::uint16_t type_id, bool on) {
            if (!l.alive.load(std::memory_order_acquire)) return;
            try {
                l.fn(type_id, on);
            } catch (const std::exception& e) {
                spdlog::error("bus: interest listener threw: {}", e.what());
            } catch (...) {
                spdlog::error("bus: interest listener threw a non-standard exception");
            }
        };
        // A listener's initial set comes before the events that followed its creation.
        for (auto& [l, types] : initials)
            for (const std::uint16_t t : types) call(*l, t, true);
        for (const auto& ev : events)
            for (auto& l : targets)
                if (ev.seq >= l->from_seq) call(*l, ev.type_id, ev.interested);
        targets.clear();
        initials.clear();
        lock.lock();
    }
    delivering_ = false;
    deliverer_ = {};
    lock.unlock();
    delivered_cv_.notify_all();
}

std::uint64_t InterestTracker::add_listener(Listener fn) {
    auto l = std::make_shared<ListenerState>();
    l->fn = std::move(fn);
    {
        std::lock_guard lock(mu_);
        l->id = next_listener_id_++;
        l->from_seq = seq_;
        l->initial.reserve(counts_.size());
        for (const auto& [type_id, count] : counts_) l->initial.push_back(type_id);
        std::sort(l->initial.begin(), l->initial.end());
        listeners_.push_back(l);
    }
    deliver_events();
    return l->id;
}

void InterestTracker::remove_listener(std::uint64_t id) noexcept {
    std::unique_lock lock(mu_);
    auto it = std::find_if(listeners_.begin(), listeners_.end(), [&](const auto& l) { return l->id == id; });
    if (it == listeners_.end()) return;
    (*it)->alive.store(false, std::memory_order_release);
    listeners_.erase(it);
    // The delivering thread may be calling it right now; wait for that round to end,
    // unless we are that thread (closing from inside a listener).
    if (delivering_ && deliverer_ != std::this_thread::get_id())
        delivered_cv_.wait(lock, [&] { return !delivering_; });
}

bool InterestTracker::interested(std::uint16_t type_id) const {
    std::lock_guard lock(mu_);
    return counts_.count(type_id) != 0;
}

std::vector<std::uint16_t> InterestTracker::interested_types() const {
    std::vector<std::uint16_t> out;
    {
        std::lock_guard lock(mu_);
        out.reserve(counts_.size());
        for (const auto& [type_id, count] : counts_) out.push_back(type_id);
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace mycelium::detail
