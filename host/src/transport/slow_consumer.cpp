// What a connection that falls behind gets: its slow-consumer policy (docs/wire-protocol.md,
// "Slow consumers"). Its send queue, or its shared-memory ring, is full:
// - drop_oldest keeps it connected and drops frames meant for it (enqueue_run, counted per
//   client);
// - disconnect discards its queue, writes ERROR slow_consumer if the socket takes it within
//   SLOW_CONSUMER_LINGER, and closes;
// - block pauses its producers for at most slow_consumer_wait, then disconnects it. A
//   producer on its own thread waits here for room (wait_for_room_locked); a producer
//   that is another connection is held by that connection's flow control (the bus asks
//   has_room_for first, inbound_pause.cpp), so no io thread ever waits on a consumer.

#include "session.hpp"

#include "mycelium/log.hpp"

namespace mycelium::link::detail {

namespace {

/// How long a waiting publisher sleeps before it looks at the queue again, should a
/// wake-up be missed (take_pending and closing notify it).
constexpr auto ROOM_WAIT_SLICE = std::chrono::milliseconds(10);

std::int64_t steady_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

void Session::set_slow_policy(SlowConsumerPolicy policy) noexcept {
    slow_policy_.store(policy, std::memory_order_relaxed);
}

bool Session::room_probe(const void* self, std::size_t frames) noexcept {
    return static_cast<Session*>(const_cast<void*>(self))->has_room_for(frames);
}

bool Session::has_room_for(std::size_t frames) noexcept {
    bool room = true;
    {
        std::unique_lock lock(send_mutex_, std::try_to_lock);
        if (!lock.owns_lock()) {
            // Held for a copy or a swap, or by a publisher waiting for room in the ring.
            room = !shm_waiting_.load(std::memory_order_acquire);
        } else if (send_closed_) {
            return true;  // nothing more is queued: let the frames pass (and be skipped)
        } else if (room_waiters_ != 0) {
            room = false;  // publishers wait for room already: they go first
        } else if (shm_out_) {
            // Frame sizes are not known here: a quarter of the ring free is room.
            room = shm_->producer->free_bytes() >= shm_->producer->capacity() / 4;
        } else {
            // An eighth kept free, as for the scripts' queue: producers racing each other
            // past this check still find room.
            const std::size_t max_frames = state_.options.send_queue_frames;
            const std::size_t max_bytes = state_.options.send_queue_bytes;
            const std::size_t wanted = std::min(frames, max_frames / 2) + max_frames / 8;
            room = pending_frames_ + wanted <= max_frames && pending_.size() - pending_head_ <= max_bytes - max_bytes / 8;
        }
    }
    if (room) {
        full_since_ns_.store(0, std::memory_order_relaxed);
        return true;
    }
    const std::int64_t now = steady_ns();
    std::int64_t since = 0;
    if (full_since_ns_.compare_exchange_strong(since, now, std::memory_order_relaxed)) since = now;
    // Waited long enough: let the frames through; the full queue then disconnects it.
    const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(state_.options.slow_consumer_wait);
    return now - since >= wait.count();
}

void Session::park_publisher(Parked& parked) noexcept {
    if (parked.hooks != nullptr) return;
    if (const WaitPolicy* hooks = state_.bus.wait_policy(); hooks != nullptr && hooks->before_park != nullptr) {
        parked.token = hooks->before_park(hooks->context);
        parked.hooks = hooks;
    }
}

bool Session::wait_for_room_locked(std::unique_lock<std::mutex>& lock, const std::function<bool()>& full,
                                   Parked& parked) {
    const auto deadline = std::chrono::steady_clock::now() + state_.options.slow_consumer_wait;
    park_publisher(parked);  // an embedded Python publisher lets go of the GIL meanwhile
    ++room_waiters_;
    for (;;) {
        if (send_closed_ || shm_wait_abort_.load(std::memory_order_acquire)) break;
        if (!full()) break;
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        room_cv_.wait_until(lock, std::min(deadline, now + ROOM_WAIT_SLICE));
    }
    --room_waiters_;
    return !send_closed_ && !shm_wait_abort_.load(std::memory_order_acquire) && !full();
}

void Session::wake_room_waiters() noexcept {
    room_cv_.notify_all();
}

void Session::on_slow_consumer() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (finished_ || closing_) return;
        Counters::add(state_.counters.slow_consumers);
        const SlowConsumerPolicy policy = slow_policy();
        const std::string after =
            policy == SlowConsumerPolicy::Block
                ? fmt::format(" after pausing its producers for {} ms", state_.options.slow_consumer_wait.count())
                : std::string();
        std::string reason;
        if (shm_state_ == ShmState::Active) {
            reason = fmt::format("its {}-byte shared-memory ring is full{}", shm_->out_ring.capacity(), after);
        } else {
            reason = fmt::format("its send queue is full ({} frames / {} bytes){}", state_.options.send_queue_frames,
                                 state_.options.send_queue_bytes, after);
        }
        state_.log->warn("{}: slow consumer disconnected ({}): {}", peer_, to_string(policy), reason);
        // The queue is discarded; the ERROR goes out if the socket takes it soon.
        close_with_error(ErrorCode::SlowConsumer, reason, SLOW_CONSUMER_LINGER);
    } catch (...) {
        finish();
    }
}

}  // namespace mycelium::link::detail
