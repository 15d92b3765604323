#pragma once
// Internal to host/src/transport: flow control per connection. A link's io thread serves
// many connections, so it must never wait for a full queue: when the bus has no room for
// a client's frames in a Block-policy queue (the scripts' queue behind a slow callback),
// the connection holds the frames it has already read, in order, and stops reading that
// client. The client's frames then wait in its socket buffer or its ring, and it waits in
// turn (TCP flow control, or the ring's producer wait): nothing is lost and no one else
// waits. Every millisecond the connection offers the held frames again, and reads on once
// they are all published. A PING read after held frames is held with them: its PONG still
// proves that everything before it reached the bus.

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <span>
#include <utility>

#include "held_frames.hpp"
#include "mycelium/bus.hpp"

namespace mycelium::link::detail {

/// The pause of one connection: the frames it holds, which of its readers stopped, and
/// the timer that offers the frames again.
///
/// Thread safety: none; the connection's strand.
class InboundPause {
public:
    /// How often a paused connection offers its held frames again.
    static constexpr auto RESUME_POLL = std::chrono::milliseconds(1);

    /// Which of the connection's inputs stopped for the pause (resume() hands them back).
    struct Stopped {
        bool socket = false;         // the socket read loop
        bool ring = false;           // the ring reader
        bool end_of_stream = false;  // the client closed while frames were held
    };

    explicit InboundPause(asio::any_io_executor executor) : timer_(std::move(executor)) {}

    bool paused() const noexcept { return paused_; }
    /// Pauses, holding `run` after whatever is held already.
    void hold(std::span<const MessageView> run);
    /// Holds one frame (a control frame, in order with the held ones).
    void hold(std::uint16_t type_id, std::span<const std::byte> payload) { held_.push(type_id, payload); }
    /// The frames held, oldest first.
    HeldFrames& held() noexcept { return held_; }
    /// The socket's read loop (`ring` false) or the ring reader stops until resume();
    /// `on_poll` runs on the strand after RESUME_POLL (armed once however many stop).
    template <class Handler>
    void stop(bool ring, Handler&& on_poll) {
        (ring ? stopped_.ring : stopped_.socket) = true;
        arm(std::forward<Handler>(on_poll));
    }
    /// Polls again after RESUME_POLL, unless a poll is armed already.
    template <class Handler>
    void arm(Handler&& on_poll) {
        if (std::exchange(armed_, true)) return;
        timer_.expires_after(RESUME_POLL);
        timer_.async_wait([this, on_poll = std::forward<Handler>(on_poll)](const asio::error_code& ec) mutable {
            armed_ = false;
            if (ec != asio::error::operation_aborted) on_poll();
        });
    }
    /// The client closed while frames were held: the end waits for them.
    void hold_end_of_stream() noexcept { stopped_.end_of_stream = true; }
    /// Ends the pause: forgets what is held and says what to start again.
    Stopped resume() noexcept;
    /// Forgets everything and stops polling (the connection is finishing).
    void cancel() noexcept;

private:
    asio::steady_timer timer_;
    HeldFrames held_;
    bool paused_ = false;
    bool armed_ = false;
    Stopped stopped_;
};

}  // namespace mycelium::link::detail
