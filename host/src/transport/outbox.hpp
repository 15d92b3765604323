#pragma once
// Internal to host/src/transport: what a link sends, from the moment a bus callback hands
// it a frame until the strand writes it: the socket's send queue, or after the switch the
// shared-memory ring, and the slow-consumer policy when either is full
// (docs/wire-protocol.md, "Slow consumers").

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "send_queue.hpp"
#include "server_state.hpp"
#include "shm/ring_outbox.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/link.hpp"

namespace mycelium::link::detail {

/// A link's outgoing frames, in order, behind one lock.
///
/// - Before the switch frames go into the SendQueue; the strand takes them all at once
///   (take) and writes them. enqueue_run says when a write must be started.
/// - After switch_to_ring, frames are staged in the RingOutbox and published at once, or
///   left staged for this thread's cork (cork.hpp), which publishes them with
///   publish_staged. The frame that announced the switch is the last on the socket, so
///   the reader, which reads the socket up to it and then the ring, sees every frame in
///   order. Only a closing ERROR goes on the socket after it.
/// - A full queue or ring follows the policy: DropOldest drops (the oldest queued frame,
///   or the new frame for a ring: unread frames are never overwritten), Disconnect gives
///   up on the consumer, Block makes a publisher on its own thread wait for room (at most
///   slow_consumer_wait). No io thread ever waits: the reader that would make room may be
///   behind it. An io thread meeting a publisher that holds the lock while it waits for
///   ring room gives up on the consumer instead.
///
/// Thread safety: enqueue_run, publish_staged, has_room_for and the accessors from any
/// thread; the rest from the link's strand (take, the switch, closing).
class Outbox {
public:
    /// What the caller does once enqueue_run has returned, outside the lock.
    enum class After : std::uint8_t {
        Nothing,
        Write,         // the queue was empty: start a write on the strand
        SlowConsumer,  // the queue or the ring is full: apply the policy (on_slow_consumer)
        Corrupt,       // the ring's reader index is invalid (ring_failure says how)
    };

    Outbox(Bus& bus, const ServerOptions& options, Counters& counters, SlowConsumerPolicy policy);

    /// Queues `frames`. `corked`: ring frames may stay staged, a cork publishes them.
    /// Any thread; waits only under Block, never on an io thread.
    After enqueue_run(std::span<const MessageView> frames, bool corked);
    /// One frame.
    After enqueue(std::uint16_t type_id, std::span<const std::byte> payload, bool corked = false);
    /// Publishes frames left staged in the ring (a cork's flush). Any thread; never waits
    /// behind a publisher waiting for room (that one publishes them).
    void publish_staged() noexcept;
    /// SubscribeOptions::has_room of a Block consumer: whether the queue or the ring has
    /// room for `frames` more, or has been full for slow_consumer_wait already (the frames
    /// then pass and the full queue disconnects it). Any thread.
    bool has_room_for(std::size_t frames) noexcept;
    static bool room_probe(const void* self, std::size_t frames) noexcept;

    /// Moves what is queued into `out`; 0 (and no write in flight any more) when nothing
    /// is. Wakes publishers waiting for room. Strand.
    std::size_t take(std::vector<std::byte>& out);
    /// Marks a write as scheduled; true when none was, and the caller must start it.
    /// False once closed. Strand.
    bool schedule_write();
    /// Queues `last` as the last frame for the socket and sends everything after it
    /// through a RingOutbox writing `region` (ringing `peer_bell`). True when the caller must start a write. Strand.
    bool switch_to_ring(shm::RingRegion region, int peer_bell, std::uint16_t last);
    /// Queues `last` (a closing ERROR) and nothing after it: in place of what is queued,
    /// or after it with `keep_queued` (a shutdown sends what was accepted for this link
    /// first). True when the caller must start a write. Strand.
    bool close_with(std::uint16_t last, std::span<const std::byte> payload, bool keep_queued = false);
    /// Calls `visit(type_id)` for every frame still queued for the socket. Strand.
    template <class Visit>
    void for_each_queued_type(Visit&& visit) const {
        std::lock_guard lock(mutex_);
        queue_.for_each_type(visit);
    }
    /// Ends any publisher's wait for room now (the link is closing). Any thread.
    void abort_waits() noexcept;
    /// Queues nothing more and gives the memory back; publishes and closes the ring.
    void close() noexcept;

    /// Why the ring to the other side is corrupt (After::Corrupt). Any thread.
    std::string ring_failure();
    /// What overflowed, for the slow consumer's log line and ERROR: the ring or the send
    /// queue, its size, and Block's wait.
    std::string overflow_reason() const;
    /// Whether frames go into the ring now (they do for good once they do). Any thread.
    bool ring_active() const noexcept { return ring_active_.load(std::memory_order_relaxed); }
    SlowConsumerPolicy policy() const noexcept { return policy_.load(std::memory_order_relaxed); }
    /// Set once the kind of connection is known (legacy, HELLO client, peer). Strand.
    void set_policy(SlowConsumerPolicy policy) noexcept { policy_.store(policy, std::memory_order_relaxed); }
    /// Where frames sent are also counted, for a peer link. Strand, before anything of
    /// the peer's is enqueued (its subscriptions and interest come after).
    void set_peer(PeerRecord* peer) noexcept { peer_ = peer; }
    std::size_t queued_frames() const;
    /// Frames meant for this link dropped under DropOldest.
    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

private:
    /// What the bus's wait policy released for a waiting publisher (an embedded script's
    /// GIL), handed back only once the lock is released: taking the GIL while holding the
    /// lock would deadlock against a Python thread that holds the GIL and wants the lock.
    struct Parked;

    After enqueue_locked(std::unique_lock<std::mutex>& lock, std::span<const MessageView> frames, bool corked,
                         bool may_wait, Parked& parked);
    After stage_locked(const MessageView& frame, bool may_wait, Parked& parked);
    After queue_locked(std::unique_lock<std::mutex>& lock, const MessageView& frame, bool may_wait, Parked& parked);
    /// Takes the lock without waiting behind a publisher that holds it while it waits for
    /// ring room: false (and not locked) when one does. For io threads.
    bool lock_without_waiting(std::unique_lock<std::mutex>& lock) noexcept;
    /// Block: waits (releasing `lock`) while `full()`, at most slow_consumer_wait; true
    /// when there is room now.
    bool wait_for_room_locked(std::unique_lock<std::mutex>& lock, const std::function<bool()>& full, Parked& parked);
    void park(Parked& parked) noexcept;
    void publish_locked() noexcept;
    void count_sent(std::size_t frames) noexcept;
    void count_dropped() noexcept;

    Bus& bus_;
    const ServerOptions& options_;
    Counters& counters_;
    PeerRecord* peer_ = nullptr;
    std::atomic<SlowConsumerPolicy> policy_;
    std::atomic<std::uint64_t> dropped_{0};
    // Block: since when (steady ns) a held producer has found it full; 0 while it is not.
    std::atomic<std::int64_t> full_since_ns_{0};
    // A publisher waits for ring room holding mutex_; and what ends that wait early.
    std::atomic<bool> ring_waiting_{false};
    std::atomic<bool> abort_waits_{false};
    std::atomic<bool> ring_active_{false};  // ring_ is set

    mutable std::mutex mutex_;  // guards everything below
    SendQueue queue_;
    std::optional<RingOutbox> ring_;  // set from the switch on: frames go there
    bool write_scheduled_ = false;    // a write is posted or in flight
    bool closed_ = false;             // nothing more is queued (closing or slow)
    std::condition_variable room_cv_;  // Block publishers waiting for room in queue_
    std::size_t room_waiters_ = 0;
};

}  // namespace mycelium::link::detail
