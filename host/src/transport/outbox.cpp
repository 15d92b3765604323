// A link's outgoing frames (outbox.hpp). Publishing threads reach this through bus
// callbacks, so everything here is short: copy a frame in, say whether a write must
// start. Only SlowConsumerPolicy::Block, on a thread that is not an io thread, ever waits
// (for room in the ring or the send queue, bounded by slow_consumer_wait).

#include "outbox.hpp"

#include <fmt/format.h>

#include <thread>

#include "io_thread.hpp"
#include "mycelium/shm_os.hpp"

namespace mycelium::link::detail {

namespace {

/// How long a waiting publisher sleeps before it looks at the queue again, should a
/// wake-up be missed (take and closing notify it).
constexpr auto ROOM_WAIT_SLICE = std::chrono::milliseconds(10);

std::int64_t steady_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

struct Outbox::Parked {
    const WaitPolicy* policy = nullptr;
    void* token = nullptr;
    ~Parked() {
        if (policy != nullptr && policy->after_park != nullptr) policy->after_park(policy->context, token);
    }
};

Outbox::Outbox(Bus& bus, const ServerOptions& options, Counters& counters, SlowConsumerPolicy policy)
    : bus_(bus),
      options_(options),
      counters_(counters),
      policy_(policy),
      queue_(SendQueue::Limits{options.send_queue_frames, options.send_queue_bytes}) {}

Outbox::After Outbox::enqueue(std::uint16_t type_id, std::span<const std::byte> payload, bool corked) {
    const MessageView frame{type_id, payload};
    return enqueue_run(std::span<const MessageView>(&frame, 1), corked);
}

Outbox::After Outbox::enqueue_run(std::span<const MessageView> frames, bool corked) {
    // Only Block ever waits, and never on an io thread: the reader that would make room
    // (or the link's own strand) may be stuck behind this very thread.
    const bool block = policy() == SlowConsumerPolicy::Block;
    const bool io_thread = block && on_link_io_thread();
    Parked parked;  // declared before the lock: handed back after the lock is released
    std::unique_lock lock(mutex_, std::defer_lock);
    if (!io_thread) {
        // The holder may be a publisher waiting for ring room: wait for it without what
        // the bus's wait policy releases (an embedded script's GIL), so that the rest of
        // Python runs meanwhile.
        if (!lock.try_lock()) {
            park(parked);
            lock.lock();
        }
    } else if (!lock_without_waiting(lock)) {
        // An io thread cannot wait: Block falls back to Disconnect, and the waiter's wait
        // ends too (unless the link is closing already, which set the flag first).
        return abort_waits_.exchange(true, std::memory_order_acq_rel) ? After::Nothing : After::SlowConsumer;
    }
    return enqueue_locked(lock, frames, corked, block && !io_thread, parked);
}

Outbox::After Outbox::enqueue_locked(std::unique_lock<std::mutex>& lock, std::span<const MessageView> frames,
                                     bool corked, bool may_wait, Parked& parked) {
    if (closed_) return After::Nothing;
    if (ring_) {
        After after = After::Nothing;
        for (std::size_t i = 0; i < frames.size() && after == After::Nothing; ++i)
            after = stage_locked(frames[i], may_wait, parked);
        // The run's last frame decides for all of them: now, or when the cork is flushed.
        if (!corked && ring_->staged_frames() != 0) publish_locked();
        return after;
    }
    bool write = false;
    for (const MessageView& frame : frames) {
        if (const After after = queue_locked(lock, frame, may_wait, parked); after != After::Nothing) {
            if (after == After::SlowConsumer) return after;
            write = true;
        }
        if (closed_) return After::Nothing;  // closed while it waited
    }
    return write ? After::Write : After::Nothing;
}

// After the switch every frame goes through the ring, in order: staged, then published
// at once, or later by the cork installed on this thread.
Outbox::After Outbox::stage_locked(const MessageView& frame, bool may_wait, Parked& parked) {
    bool waited = false;
    auto staged = ring_->try_stage(frame.type_id, frame.payload);
    if (!staged && staged.error() == shm::WriteError::Full) [[unlikely]] {
        // The reader cannot release room for frames it has not been shown.
        if (ring_->staged_frames() != 0) publish_locked();
        if (may_wait) {
            // The wait holds the lock: other publishers to this link wait behind it (that
            // is backpressure), io threads do not (lock_without_waiting).
            park(parked);
            ring_waiting_.store(true, std::memory_order_seq_cst);
            staged = ring_->wait_and_stage(frame.type_id, frame.payload,
                                           std::chrono::steady_clock::now() + options_.slow_consumer_wait,
                                           options_.shm_spin, abort_waits_);
            ring_waiting_.store(false, std::memory_order_release);
            waited = true;
        }
    }
    if (!staged) [[unlikely]] {
        switch (staged.error()) {
            case shm::WriteError::Full:
                // Never overwrite unread frames: drop this one, or give up on the consumer.
                if (policy() == SlowConsumerPolicy::DropOldest) {
                    count_dropped();
                    return After::Nothing;
                }
                closed_ = true;
                return After::SlowConsumer;
            case shm::WriteError::TooLarge:
            case shm::WriteError::InvalidType:
                Counters::add(counters_.unsendable);
                return After::Nothing;
            case shm::WriteError::PeerClosed:
            case shm::WriteError::Closed:
                return After::Nothing;  // the reader reads no more; its socket's end closes the link
            case shm::WriteError::Corrupt:
                closed_ = true;
                return After::Corrupt;
        }
    }
    // After a wait the reader has just made room: publish at once, so that nothing is
    // left staged when a waiter lets go of the lock (publish_staged relies on it).
    if (waited || ring_->publish_due()) publish_locked();
    return After::Nothing;
}

Outbox::After Outbox::queue_locked(std::unique_lock<std::mutex>& lock, const MessageView& frame, bool may_wait,
                                   Parked& parked) {
    const std::size_t size = frame.payload.size();
    const auto full = [&] { return !queue_.fits(size); };
    if (full()) {
        if (policy() == SlowConsumerPolicy::DropOldest) {
            while (full() && queue_.drop_oldest()) count_dropped();
        } else if (!(may_wait && wait_for_room_locked(lock, full, parked))) {
            if (closed_) return After::Nothing;
            closed_ = true;
            return After::SlowConsumer;
        }
    }
    queue_.push(frame.type_id, frame.payload);
    return std::exchange(write_scheduled_, true) ? After::Nothing : After::Write;
}

void Outbox::publish_staged() noexcept {
    std::unique_lock lock(mutex_, std::defer_lock);
    // A publisher waiting for room has published what was staged (before it waited) and
    // publishes its own frame at once: nothing is left for us then.
    if (!lock_without_waiting(lock)) return;
    if (ring_ && ring_->staged_frames() != 0) publish_locked();
}

bool Outbox::has_room_for(std::size_t frames) noexcept {
    bool room = true;
    {
        std::unique_lock lock(mutex_, std::try_to_lock);
        if (!lock.owns_lock()) {
            // Held for a copy or a swap, or by a publisher waiting for room in the ring.
            room = !ring_waiting_.load(std::memory_order_acquire);
        } else if (closed_) {
            return true;  // nothing more is queued: let the frames pass (and be skipped)
        } else if (room_waiters_ != 0) {
            room = false;  // publishers wait for room already: they go first
        } else {
            room = ring_ ? ring_->has_room() : queue_.has_room_for(frames);
        }
    }
    if (room) {
        full_since_ns_.store(0, std::memory_order_relaxed);
        return true;
    }
    const std::int64_t now = steady_ns();
    std::int64_t since = 0;
    if (full_since_ns_.compare_exchange_strong(since, now, std::memory_order_relaxed)) since = now;
    const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.slow_consumer_wait);
    return now - since >= wait.count();
}

bool Outbox::room_probe(const void* self, std::size_t frames) noexcept {
    return static_cast<Outbox*>(const_cast<void*>(self))->has_room_for(frames);
}

std::size_t Outbox::take(std::vector<std::byte>& out) {
    std::lock_guard lock(mutex_);
    const std::size_t frames = queue_.take(out);
    if (frames == 0) {
        write_scheduled_ = false;
    } else if (room_waiters_ != 0) {
        room_cv_.notify_all();
    }
    return frames;
}

bool Outbox::schedule_write() {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    return !std::exchange(write_scheduled_, true);
}

bool Outbox::switch_to_ring(shm::RingRegion region, int peer_bell, std::uint16_t last) {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    ring_.emplace(region, options_.max_payload, peer_bell);
    ring_active_.store(true, std::memory_order_relaxed);
    queue_.push(last, {});
    return !std::exchange(write_scheduled_, true);
}

bool Outbox::close_with(std::uint16_t last, std::span<const std::byte> payload, bool keep_queued) {
    std::lock_guard lock(mutex_);
    // Otherwise frames still queued for a consumer being thrown out are not worth sending.
    if (!keep_queued) queue_.clear();
    queue_.push(last, payload);
    closed_ = true;
    return !std::exchange(write_scheduled_, true);
}

void Outbox::abort_waits() noexcept {
    abort_waits_.store(true, std::memory_order_release);
    room_cv_.notify_all();
}

void Outbox::close() noexcept {
    std::lock_guard lock(mutex_);
    closed_ = true;
    queue_.clear(true);
    if (ring_) {
        const std::size_t published = ring_->close();
        if (published != 0) count_sent(published);
    }
}

std::string Outbox::ring_failure() {
    std::lock_guard lock(mutex_);
    return ring_ ? ring_->failure() : std::string("bad consumer index");
}

std::string Outbox::overflow_reason() const {
    const std::string after =
        policy() == SlowConsumerPolicy::Block
            ? fmt::format(" after pausing its producers for {} ms", options_.slow_consumer_wait.count())
            : std::string();
    std::lock_guard lock(mutex_);
    if (ring_) return fmt::format("its {}-byte shared-memory ring is full{}", ring_->capacity(), after);
    return fmt::format("its send queue is full ({} frames / {} bytes){}", options_.send_queue_frames,
                       options_.send_queue_bytes, after);
}

std::size_t Outbox::queued_frames() const {
    std::lock_guard lock(mutex_);
    return queue_.frames();
}

bool Outbox::lock_without_waiting(std::unique_lock<std::mutex>& lock) noexcept {
    // The lock is otherwise held for the copy of one frame or the swap of a buffer: spin
    // (then yield: the holder may have been preempted on this 2-core class of machine).
    for (unsigned spins = 0; !lock.try_lock(); ++spins) {
        if (ring_waiting_.load(std::memory_order_acquire)) return false;
        if (spins < 64) {
            shm::detail::cpu_relax();
        } else {
            std::this_thread::yield();
        }
    }
    return true;
}

bool Outbox::wait_for_room_locked(std::unique_lock<std::mutex>& lock, const std::function<bool()>& full,
                                  Parked& parked) {
    const auto deadline = std::chrono::steady_clock::now() + options_.slow_consumer_wait;
    park(parked);  // an embedded Python publisher lets go of the GIL meanwhile
    ++room_waiters_;
    const auto aborted = [&] { return closed_ || abort_waits_.load(std::memory_order_acquire); };
    for (;;) {
        if (aborted() || !full()) break;
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        room_cv_.wait_until(lock, std::min(deadline, now + ROOM_WAIT_SLICE));
    }
    --room_waiters_;
    return !aborted() && !full();
}

void Outbox::park(Parked& parked) noexcept {
    if (parked.policy != nullptr) return;
    if (const WaitPolicy* policy = bus_.wait_policy(); policy != nullptr && policy->before_park != nullptr) {
        parked.token = policy->before_park(policy->context);
        parked.policy = policy;
    }
}

void Outbox::publish_locked() noexcept {
    if (const std::size_t published = ring_->publish(); published != 0) count_sent(published);
}

void Outbox::count_sent(std::size_t frames) noexcept {
    Counters::add(counters_.frames_sent, frames);
    Counters::add(counters_.shm_frames_sent, frames);
    if (peer_ != nullptr) Counters::add(peer_->frames_out, frames);
}

void Outbox::count_dropped() noexcept {
    Counters::add(counters_.dropped_frames);
    dropped_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace mycelium::link::detail
