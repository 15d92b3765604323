#pragma once
/// Mailbox: a bounded multi-producer, single-consumer queue of messages
/// {type id, subscription token, payload bytes}, drained by one thread that the bus does
/// not own (the embedded-Python dispatcher drains all its subscriptions from one Mailbox;
/// the bus's own queued subscribers are built on it too).
///
/// Memory: `capacity` cells allocated once. A cell carries up to `inline_bytes` of payload
/// in place; a larger payload (up to `max_payload`) is copied into a heap buffer ("spill")
/// and the total spilled bytes in the queue never exceed `spill_budget` (a message that
/// does not fit is treated exactly like a full queue). So the memory held is bounded by
/// capacity * cell size + spill_budget.
///
/// Waiting: the consumer spins for `spin` (bounded, zero allowed), then parks on a futex
/// doorbell; a producer rings the doorbell only when the consumer said it sleeps, so a
/// busy consumer costs producers one plain load. A blocked producer (QueuePolicy::Block)
/// spins for `spin` too, then parks in slices of at most 1 ms, never busy-loops forever.
///
/// Thread safety: push() from any number of threads; the consumer side (try_pop,
/// pop_batch, drain, wait) from one thread at a time; wake(), close() and the observers
/// from any thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "mycelium/result.hpp"
#include "mycelium/topology/policies.hpp"
#include "mycelium/wire_limits.hpp"

namespace mycelium {

/// What a bounded queue does when it is full; chosen per subscription. One type with the
/// topology's `[nodes.queues] policy` (mycelium/topology/policies.hpp).
using QueuePolicy = topology::QueuePolicy;

/// Why Mailbox::push did not enqueue a message.
enum class MailboxError : std::uint8_t {
    /// The queue (or its spill budget) is full and the policy is Fail.
    Full,
    /// The payload is larger than the mailbox's max_payload.
    TooLarge,
    /// close() was called; nothing more is accepted.
    Closed,
    /// The caller's `keep_going` flag turned false while a Block push waited for room.
    Cancelled,
};

/// What Mailbox::wait observed.
enum class WaitStatus : std::uint8_t {
    /// At least one message is ready (or about to be: a producer has claimed a cell).
    Ready,
    /// wake() was called; the queue may be empty.
    Woken,
    /// The timeout passed with nothing queued.
    Timeout,
    /// The mailbox is closed and empty.
    Closed,
};

/// Sizing and waiting knobs of a Mailbox.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct MailboxOptions {
    /// Number of cells; rounded up to a power of two, at least 2.
    std::size_t capacity = 1024;
    /// Payload bytes stored in the cell itself; larger payloads spill to the heap.
    /// The cell is rounded up to whole 64-byte cache lines (32 -> 64-byte cells).
    std::size_t inline_bytes = 32;
    /// Largest payload accepted (matches the schema's default payload limit, 4 MiB).
    std::size_t max_payload = wire::MAX_PAYLOAD;
    /// Bound on the bytes held in spilled payloads; raised to max_payload if lower.
    std::size_t spill_budget = 64u * 1024u * 1024u;
    /// How long the consumer (in wait) and a blocked producer spin before parking.
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);
};

/// A message copied out of a Mailbox (try_pop / pop_batch). Reusing one keeps its buffer.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct MailboxMessage {
    /// The message's type id.
    std::uint16_t type_id = 0;
    /// The token given to Bus::subscribe_mailbox (identifies the subscription).
    std::uint64_t token = 0;
    /// The payload bytes.
    std::vector<std::byte> payload;
};

/// A message seen in place by Mailbox::drain; valid only during the visit.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct MailboxView {
    /// The message's type id.
    std::uint16_t type_id = 0;
    /// The token given to Bus::subscribe_mailbox (identifies the subscription).
    std::uint64_t token = 0;
    /// The payload bytes, inside the queue's cell or spill buffer.
    std::span<const std::byte> payload;
};

/// What a wait policy tells a Block push that found the mailbox full.
enum class FullAction : std::uint8_t {
    /// Park until there is room (the default without a policy).
    Park,
    /// The hook made room (the caller drained the mailbox itself): try again at once.
    Retry,
    /// Waiting would deadlock: refuse the message (push returns Full).
    Refuse,
};

class Mailbox;

/// How a publisher waits on one bus, set by the runtime that embeds the bus
/// (Bus::set_wait_policy; the embedded Python host installs one): a thread that is
/// itself the consumer of a full mailbox must drain it rather than wait for itself, and
/// a thread holding the GIL must release it while it parks. Without a policy a full
/// Block push simply parks. The functions run on the publishing thread.
struct WaitPolicy {
    /// Called when a Block push finds `mailbox` full after spinning.
    FullAction (*on_full)(Mailbox& mailbox, void* context) = nullptr;
    /// Called before each park; the result is passed to after_park.
    void* (*before_park)(void* context) = nullptr;
    /// Called after each park.
    void (*after_park)(void* context, void* token) = nullptr;
    void* context = nullptr;
};

/// Called by push for every message it evicts (DropOldest): (context, type id, token).
using MailboxDropFn = void (*)(void* context, std::uint16_t type_id, std::uint64_t token);

/// Bounded MPSC queue with spin-then-park waiting on both sides; see the file comment.
/// Thread safety: push/wake/close/observers from any thread; consumer calls from one thread.
class Mailbox {
public:
    /// Allocates all cells. Throws std::bad_alloc if it cannot.
    explicit Mailbox(MailboxOptions options = {});
    /// Frees queued messages (including spilled payloads). No thread may still use it.
    ~Mailbox();
    Mailbox(const Mailbox&) = delete;
    Mailbox& operator=(const Mailbox&) = delete;

    /// Enqueues a copy of `payload` under `policy`. Block waits for room until there is
    /// room, the mailbox closes (Closed) or `*keep_going` becomes false (Cancelled).
    /// DropOldest evicts the oldest messages, calling `on_drop` for each. A full Block
    /// push consults `wait` (its bus's wait policy) before it parks.
    /// Errors: Full (Fail policy), TooLarge, Closed, Cancelled. Allocates only for a
    /// payload larger than inline_bytes. Thread safety: any thread.
    Result<void, MailboxError> push(std::uint16_t type_id, std::uint64_t token,
                                    std::span<const std::byte> payload,
                                    QueuePolicy policy = QueuePolicy::Block,
                                    const std::atomic<bool>* keep_going = nullptr,
                                    MailboxDropFn on_drop = nullptr,
                                    void* drop_context = nullptr,
                                    const WaitPolicy* wait = nullptr);

    /// Moves the oldest message into `out` (reusing its buffer); false if none is ready.
    /// Consumer thread only.
    bool try_pop(MailboxMessage& out);

    /// Appends up to `max` ready messages to `out`; returns how many. Consumer thread only.
    std::size_t pop_batch(std::vector<MailboxMessage>& out, std::size_t max);

    /// Visits up to `max` ready messages in place, oldest first, and frees their cells;
    /// returns how many were visited. No copy, no allocation. If `visit` throws, the
    /// message being visited and the rest of the claimed batch are discarded and the
    /// exception propagates. Consumer thread only.
    template <class F>
    std::size_t drain(F&& visit, std::size_t max = SIZE_MAX) {
        return drain_raw(
            [](void* f, const MailboxView& v) { (*static_cast<std::remove_reference_t<F>*>(f))(v); },
            &visit, max);
    }

    /// drain() without a template: `visit(context, view)` for each message.
    std::size_t drain_raw(void (*visit)(void*, const MailboxView&), void* context,
                          std::size_t max);

    /// Waits until a message is ready, wake() is called, the mailbox is closed and empty,
    /// or `timeout` passes: spins for min(spin, timeout), then parks on the doorbell.
    /// Consumer thread only.
    WaitStatus wait(std::chrono::nanoseconds timeout);

    /// Makes the consumer's current or next wait() return Woken (a doorbell for timers,
    /// stop requests and the like). Thread safety: any thread.
    void wake() noexcept;

    /// Refuses further pushes (Closed), releases blocked producers and wakes the
    /// consumer. Queued messages stay poppable. Thread safety: any thread.
    void close() noexcept;

    /// Whether close() was called. Thread safety: any thread.
    bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

    /// Wakes producers parked in a Block push so they re-check their keep_going flag.
    /// Thread safety: any thread.
    void notify_producers() noexcept;

    /// Messages queued or being written, approximate under concurrency. Any thread.
    std::size_t size_approx() const noexcept;
    /// Number of cells. Any thread.
    std::size_t capacity() const noexcept { return mask_ + 1; }
    /// Messages this mailbox refused (Fail) or evicted (DropOldest). Any thread.
    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    /// The options in effect (after rounding). Any thread.
    const MailboxOptions& options() const noexcept { return options_; }

private:
    void ring_doorbell() noexcept;
    struct Cell;
    Cell* cell_at(std::uint64_t pos) const noexcept;
    bool reserve_spill(std::size_t bytes) noexcept;
    void release_cell(Cell* cell, std::uint64_t pos) noexcept;
    void after_release() noexcept;
    void publish_released(std::uint64_t end) noexcept;
    bool discard_oldest(MailboxDropFn on_drop, void* drop_context) noexcept;
    bool queue_full_at_tail() const noexcept;
    void wait_for_space(std::uint32_t observed, const WaitPolicy* wait) noexcept;
    bool nonempty() const noexcept;
    bool head_ready() const noexcept;
    bool take_wake_request() noexcept;

    MailboxOptions options_;
    std::size_t mask_ = 0;
    std::size_t cell_size_ = 0;
    std::byte* cells_ = nullptr;

    alignas(64) std::atomic<std::uint64_t> tail_{0};  // producers claim here
    std::atomic<std::uint64_t> limit_cache_{0};       // producers' copy of released_ + capacity
    alignas(64) std::atomic<std::uint64_t> head_{0};  // consumer (and evicting producers)
    std::atomic<std::uint32_t> evicting_{0};          // DropOldest evictions in flight
    alignas(64) std::atomic<std::uint64_t> released_{0};  // every cell below is free
    alignas(64) std::atomic<std::uint32_t> sleeping_{0};     // consumer parked or parking
    std::atomic<std::uint32_t> doorbell_{0};                 // futex word for the consumer
    std::atomic<bool> wake_requested_{false};
    alignas(64) std::atomic<std::uint32_t> waiting_producers_{0};
    std::atomic<std::uint32_t> space_word_{0};               // futex word for producers
    std::atomic<std::size_t> spill_bytes_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<bool> closed_{false};
};

}  // namespace mycelium
