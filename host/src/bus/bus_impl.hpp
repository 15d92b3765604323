#pragma once
// What a Bus is made of (bus.cpp): its subscription records, the subscriber lists
// publishers read, the per-thread counters and the interest set. Private header of
// host/src/bus/.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>

#include "bus_counters.hpp"
#include "consumer_thread.hpp"
#include "interest_tracker.hpp"
#include "mycelium/bus.hpp"
#include "subscriber_table.hpp"

namespace mycelium::detail {

/// One subscription: its entry in the subscriber lists and what the entry points to.
struct Record {
    std::uint64_t id = 0;
    bool interest = true;  // counts as interest for its type
    Entry entry;
    std::unique_ptr<CallbackHolder> holder;    // inline callable
    std::shared_ptr<Mailbox> mailbox;          // queued (owned consumer's or external)
    std::shared_ptr<ConsumerThread> consumer;  // owned consumer thread
};

/// Logs the exception being handled, thrown by a subscriber of `type_id`.
void report_callback_exception(std::uint16_t type_id);

/// Thread safety: as Bus. `mu` guards `next_id`, `records` and the subscriber table's
/// writes.
struct BusImpl {
    explicit BusImpl(BusOptions o) : options(o) { init_membarrier(); }
    ~BusImpl();

    Result<void, PublishError> publish(std::uint16_t type_id, std::span<const std::byte> payload);
    Result<void, PublishError> publish_batch(std::span<const MessageView> messages);
    Result<std::size_t, PublishError> publish_batch_if_room(std::span<const MessageView> messages);
    /// Delivers one run of messages of `type_id`. With `no_room`, delivers nothing and
    /// sets it when a Block queue subscribed to the type has no room for the run (see
    /// Bus::publish_batch_if_room).
    Result<void, PublishError> deliver(std::uint16_t type_id, std::span<const MessageView> run,
                                       bool* no_room = nullptr);

    /// Adds a subscription; returns its id, or 0 when the bus is closed.
    std::uint64_t add(std::shared_ptr<Record> rec);
    /// Closes a subscription (Subscription::close's guarantees).
    void remove(std::uint64_t id) noexcept;
    bool has(std::uint64_t id) const;
    void shutdown() noexcept;

    void count_dropped(std::uint16_t type_id) { counters.count_dropped(type_id); }
    static void on_evicted(void* self, std::uint16_t type_id, std::uint64_t) {
        static_cast<BusImpl*>(self)->count_dropped(type_id);
    }

    BusOptions options;
    std::atomic<const WaitPolicy*> wait_policy{nullptr};  ///< Bus::set_wait_policy
    std::atomic<bool> closed{false};
    SubscriberTable subscribers;
    BusCounters counters;
    InterestTracker interest;

    mutable std::mutex mu;
    std::uint64_t next_id = 1;
    std::unordered_map<std::uint64_t, std::shared_ptr<Record>> records;

private:
    std::uint64_t add_locked(std::shared_ptr<Record> rec);
    /// Waits until no thread but this one is inside `e`'s callback (or push).
    static void wait_until_unused(const Entry* e) noexcept;
};

}  // namespace mycelium::detail
