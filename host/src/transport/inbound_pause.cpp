// Flow control per connection. A link's io thread serves many connections, so it must
// never wait for a full queue: when the bus has no room for a client's frames in a
// Block-policy queue (the scripts' queue behind a slow callback), the session holds the
// frames it has already read, in order, and stops reading that client. The client's
// frames then wait in its socket buffer or its ring, and it waits in turn (TCP flow
// control, or the ring's producer wait): nothing is lost and no one else waits. Every
// millisecond the session offers the held frames again, and reads on once they are all
// published. A PING read after held frames is held with them: its PONG still proves
// that everything before it reached the bus.

#include "session.hpp"

#include "mycelium/log.hpp"

namespace mycelium::link::detail {

namespace {

/// How often a paused session offers its held frames again.
constexpr auto RESUME_POLL = std::chrono::milliseconds(1);

}  // namespace

void Session::hold_run(std::span<const MessageView> run) {
    paused_ = true;
    for (const MessageView& frame : run) held_.push(frame.type_id, frame.payload);
}

bool Session::keep_reading(bool from_ring) {
    if (!paused_ || closing_) return true;
    (from_ring ? resume_ring_ : resume_socket_) = true;
    schedule_resume();
    return false;
}

void Session::schedule_resume() {
    if (std::exchange(resume_armed_, true)) return;
    resume_timer_.expires_after(RESUME_POLL);
    resume_timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
        self->resume_armed_ = false;
        if (ec != asio::error::operation_aborted) self->on_resume();
    });
}

void Session::on_resume() {
    const log::ScopedFields log_fields{{"peer", peer_}};
    try {
        if (finished_) return;
        if (!closing_ && !publish_held()) return schedule_resume();
        paused_ = false;
        held_.clear();
        if (finished_) return;
        if (std::exchange(end_of_stream_held_, false)) return on_end_of_stream();
        if (std::exchange(resume_ring_, false)) drain_shm();
        if (std::exchange(resume_socket_, false) && !finished_) do_read();
    } catch (const std::exception& e) {
        state_.log->error("{}: closing after an internal error: {}", peer_, e.what());
        finish();
    }
}

bool Session::publish_held() {
    while (!held_.empty()) {
        const HeldFrames::Frame frame = held_.front();
        if (frame.type_id < schema::MIN_APP_TYPE_ID) {
            on_control(frame.type_id, frame.payload);
            if (finished_) return true;
            held_.pop_front();
            continue;
        }
        const MessageView message{frame.type_id, frame.payload};
        const OriginScope origin(Origin{id_, role_.load(std::memory_order_relaxed), frame.payload.data(),
                                        frame.payload.data()});
        const auto published = state_.bus.publish_batch_if_room(std::span<const MessageView>(&message, 1));
        if (!published) {
            if (published.error() == PublishError::Closed) {
                close_with_error(ErrorCode::ShuttingDown, "the bus is shut down");
                return true;
            }
        } else if (*published == 0) {
            return false;  // still no room
        }
        held_.pop_front();
    }
    return true;
}

}  // namespace mycelium::link::detail
