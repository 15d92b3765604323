#pragma once
// Internal to host/src/transport: one connection (Session); what it shares with its
// server is server_state.hpp. Asio stays inside this folder: public headers never include it.

#include <asio/executor_work_guard.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include "handshake.hpp"
#include "held_frames.hpp"
#include "server_state.hpp"
#include "transport.hpp"
#include "mycelium/log_limiter.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/link.hpp"
#include "mycelium/mailbox.hpp"
#include "mycelium/metrics_report.hpp"
#include "mycelium/packed_layout.hpp"
#include "mycelium/schema.hpp"
#include "mycelium/shm_ring.hpp"

namespace mycelium::link::detail {

/// What a session the server dialed itself (PeerDialer) carries besides the socket.
struct Outbound {
    std::string self_name;                 // sent in HELLO
    std::shared_ptr<PeerRecord> record;    // the peer it reaches
    std::function<void()> on_closed;       // called once from finish()
    bool request_shm = false;              // ask for shared-memory rings (Unix socket only)
    std::uint32_t shm_capacity = 0;        // per direction, 0 = the far node's default
};

/// The shared-memory side of one connection (docs/wire-protocol.md, "Shared-memory
/// setup"), from this session's point of view: on an accepted connection the host made
/// the rings; on a dialed peer link this side received them in SHM_OFFER. Owned by the
/// Session and freed with it (unmapped, descriptors closed): the memory goes with the
/// last fd.
struct ShmLink {
    shm::MappedRing in_ring;     // this side consumes
    shm::MappedRing out_ring;    // this side produces
    shm::EventFd own_bell;       // rung by the other side: data in in_ring
    shm::EventFd peer_bell;      // rung by this side: data in out_ring (room in in_ring)
    std::optional<shm::RingConsumer> consumer;  // strand only
    std::optional<shm::RingProducer> producer;  // under Session::send_mutex_
    std::size_t publish_bytes = 0;              // staged bytes that make enqueue publish at once
    std::optional<asio::posix::stream_descriptor> bell_wait;  // a dup of own_bell; strand only
};

/// Whether the calling thread is an io thread of some LinkServer in this process (set for
/// the life of each io thread). Such a thread must never wait for a ring to have room:
/// the reader that would make room may be itself or another session on it.
bool on_link_io_thread() noexcept;
/// Marks the calling thread as a LinkServer io thread (server.cpp, at thread start).
void mark_link_io_thread() noexcept;

/// One accepted connection: handshake, frame decoding, bus subscriptions, send queue.
///
/// Threading: everything except on_bus_messages() and enqueue*() runs on the session's
/// strand. Bus callbacks (any publishing thread) only append to the send queue under
/// send_mutex_ and post a write to the strand; after the shared-memory switch they stage
/// the frame in the ring under send_mutex_ and publish it, or leave it to the thread's
/// cork (Cork).
class Session : public std::enable_shared_from_this<Session> {
public:
    using Socket = Pipe;

    /// What a thread's cork leaves to publish (session.cpp, "Corks").
    struct Cork {
        const ServerState* state = nullptr;  // a read batch: only this server's sessions; nullptr: any
        Session* reader = nullptr;           // the session whose read batch this is
        bool more = true;                    // frames of the batch follow the one being handled
        bool reader_staged = false;
        Cork* outer = nullptr;
        std::vector<std::shared_ptr<Session>> others;  // sessions with staged frames, each holding its server
    };
    /// Installs a cork on the calling thread for its lifetime: frames the thread sends
    /// into shared-memory rings are staged and published together (session.cpp, "Corks").
    /// Thread safety: made, used and destroyed on one thread; nests.
    class CorkScope {
    public:
        /// An io thread's read batch of `reader`: corks `reader`'s server's sessions only.
        explicit CorkScope(Session& reader) noexcept;
        /// A PublishBatch: corks every session.
        CorkScope() noexcept;
        ~CorkScope();
        CorkScope(const CorkScope&) = delete;
        CorkScope& operator=(const CorkScope&) = delete;
        /// Publishes what is staged so far and keeps corking.
        void publish() noexcept;
        /// Publishes and uninstalls (idempotent; the destructor calls it).
        void end() noexcept;
        /// Whether frames of the read batch follow the one about to be handled.
        void set_more(bool more) noexcept { cork_.more = more; }

    private:
        Cork cork_;
    };
    /// Publishes and drops what the calling thread's corks hold for `state`'s sessions
    /// (~LinkServer, before it waits for the other threads' holds).
    static void release_thread_batch_holds(ServerState& state) noexcept;

    /// An accepted connection (`outbound` empty) or one the server dialed to a peer, over
    /// a transport whose pipes do or do not pass descriptors (Transport::passes_descriptors).
    Session(ServerState& state, Socket socket, std::string peer, std::uint64_t id, bool passes_descriptors,
            std::optional<Outbound> outbound = std::nullopt);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    /// The strand every handler of this session runs on.
    Socket::executor_type socket_executor() { return socket_.get_executor(); }
    /// Starts the handshake timer and reading. Strand.
    void start();
    /// Sends ERROR TooManyConnections and closes. Strand.
    void reject_max_connections();
    /// Closes with ERROR ShuttingDown and `reason` (posts to the strand). Any thread.
    void shut_down(std::string reason = "the host is shutting down");
    /// Closes at once, without ERROR. Strand, or any thread once the io threads stopped.
    void finish() noexcept;

    /// Inline batch subscriber of the bus: forwards a run of published messages of one
    /// type, except those that came from this connection (or from a peer, when this
    /// connection is a peer) and those whose size is not the contracts'. Any thread.
    void on_bus_messages(std::span<const MessageView> run);

    /// Frames waiting in the send queue now. Any thread.
    std::size_t queued_frames() const;
    /// The client's name and its last METRICS snapshot (null before the first). Any thread.
    std::pair<std::string, std::shared_ptr<const std::vector<ReportedFamily>>> reported_metrics() const;
    /// What was dropped on this connection (bad frames it sent, frames to it evicted),
    /// under its name. Any thread.
    ClientDrops drops() const;

private:
    enum class Phase : std::uint8_t { Handshake, Undecided, Legacy, Hello };
    /// Shared memory: none; on a dialed link SHM_REQUEST sent, then SHM_READY sent;
    /// on an accepted one SHM_OFFER sent; then in use.
    enum class ShmState : std::uint8_t { None, Requested, Offered, Readied, Active };

    void do_read();
    /// Reads with recvmsg, keeping descriptors that come with the bytes (SHM_OFFER).
    void read_with_fds();
    void on_read(const asio::error_code& ec, std::size_t n);
    void on_end_of_stream();
    /// Whether the bytes after the handshake begin with a HELLO (or are too few to tell).
    static bool starts_with_hello(std::span<const std::byte> bytes);
    std::span<const std::byte> consume_handshake(std::span<const std::byte> bytes);
    void feed(std::span<const std::byte> bytes);
    void on_frame(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Publishes application frames read from this connection on the bus, under this
    /// connection's origin. `run`'s payloads are in address order in one buffer.
    void publish_from_link(std::span<const MessageView> run);
    void on_control(std::uint16_t type_id, std::span<const std::byte> payload);
    void on_hello(std::span<const std::byte> payload);
    void on_metrics(std::span<const std::byte> payload);
    void on_type_list(bool subscribe, std::span<const std::byte> payload);
    void become_legacy();
    void become_peer();
    void start_outbound();
    void declare_interest(std::uint16_t type_id, bool interested);
    void subscribe_type(std::uint16_t type_id);

    // Shared memory (strand).
    void on_shm_request(std::span<const std::byte> payload);
    void refuse_shm(ShmRefusal reason, const std::string& text);
    void on_shm_ready(std::span<const std::byte> payload);
    void on_shm_refuse(std::span<const std::byte> payload);
    void on_shm_offer(std::span<const std::byte> payload);
    void on_shm_switch(std::span<const std::byte> payload);
    /// Makes the consumer, the producer and the doorbell watch of shm_.
    bool start_shm_ends();
    /// Queues `last` as the last frame on the socket and sends everything after it
    /// through the ring.
    void switch_output_to_ring(std::uint16_t last);
    std::size_t shm_capacity(std::uint32_t requested) const;
    /// Sends the SHM_OFFER with its descriptors (sendmsg); only when no write is in flight.
    void send_offer();
    /// Reads the client->host ring: batches, a bounded spin, then parks on the doorbell.
    void drain_shm();
    /// Counts this session in (or out of) the server's spinning ring readers. Strand.
    void count_spinning(bool spinning) noexcept;
    /// Reads what the ring holds now, without waiting (before closing on end of stream).
    void drain_shm_now();
    /// Visits up to `max` ring frames; false when the ring failed (the session is closing).
    bool read_ring(std::size_t max, std::size_t& visited);
    void on_ring_failure(const shm::RingFailure& failure);
    void on_shm_send_corrupt();
    void close_shm() noexcept;

    void enqueue(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Queues several frames under one lock: into the ring (published once, by the last
    /// frame's rule, or every SHM_PUBLISH_FRAMES) or into the socket's send queue.
    void enqueue_run(std::span<const MessageView> frames);
    /// Logs (once) and counts a frame not sent because its size is not the contracts'.
    void warn_unsendable(const MessageView& view, const schema::MessageSchema* message);
    /// What enqueue_shm_locked leaves its caller to do once send_mutex_ is released.
    enum class ShmAfter : std::uint8_t { Nothing, SlowConsumer, Corrupt };
    /// A waiting publisher's GIL (or whatever the bus's wait policy releases to park),
    /// handed back only once send_mutex_ is released: taking the GIL while holding the
    /// lock would deadlock against a Python thread that holds the GIL and wants the lock.
    struct Parked {
        const WaitPolicy* hooks = nullptr;
        void* token = nullptr;
        ~Parked() {
            if (hooks != nullptr && hooks->after_park != nullptr) hooks->after_park(hooks->context, token);
        }
    };
    /// Stages a frame in the ring and publishes it now or leaves it to this thread's cork
    /// (`run_continues`: to the frames of the run that follow it); a full ring follows the
    /// slow-consumer policy (`may_wait`: Block may wait here, holding the lock).
    /// send_mutex_ held.
    ShmAfter enqueue_shm_locked(std::uint16_t type_id, std::span<const std::byte> payload, bool may_wait,
                                Parked& parked, bool run_continues = false);
    /// SlowConsumerPolicy::Block: waits (spin, then sleep slices) for room and stages the
    /// frame; Full after shm_wait. Releases what the blocking hooks release into `parked`.
    /// send_mutex_ held.
    Result<void, shm::WriteError> wait_and_stage_locked(std::uint16_t type_id, std::span<const std::byte> payload,
                                                        Parked& parked);
    /// Publishes what the ring holds staged. send_mutex_ held.
    void publish_staged_locked() noexcept;
    /// Publishes staged frames (a cork's flush). Any thread; never waits behind a
    /// publisher waiting for room (that one publishes them).
    void flush_shm() noexcept;
    /// Takes send_mutex_ without ever waiting behind a publisher that holds it while it
    /// waits for room (Block): false (and not locked) when one does. For io threads.
    bool lock_without_waiting(std::unique_lock<std::mutex>& lock) noexcept;
    /// Whether the calling thread is running one of this session's handlers now.
    bool on_own_strand() noexcept;
    void start_write();
    /// Moves the queued frames into inflight_; false (after a FIN when closing) if none.
    bool take_pending();
    /// Counts a completed write of inflight_ and empties it.
    void count_written(std::size_t n);
    void on_write_failed(const asio::error_code& ec);
    void on_written(const asio::error_code& ec, std::size_t n);
    // Slow consumers (slow_consumer.cpp).
    SlowConsumerPolicy slow_policy() const noexcept { return slow_policy_.load(std::memory_order_relaxed); }
    void set_slow_policy(SlowConsumerPolicy policy) noexcept;
    /// SubscribeOptions::has_room of a Block consumer: whether its queue or ring has room
    /// for `frames` more, or it has been full for slow_consumer_wait already. Any thread.
    static bool room_probe(const void* self, std::size_t frames) noexcept;
    bool has_room_for(std::size_t frames) noexcept;
    /// Releases what the bus's wait policy releases (the GIL) into `parked`.
    void park_publisher(Parked& parked) noexcept;
    /// Block, a publisher on its own thread: waits (releasing `lock`) while `full()`, at
    /// most slow_consumer_wait; true when there is room now. send_mutex_ held.
    bool wait_for_room_locked(std::unique_lock<std::mutex>& lock, const std::function<bool()>& full, Parked& parked);
    void wake_room_waiters() noexcept;
    /// Applies Disconnect to a consumer whose queue overflowed (Block after its wait).
    void on_slow_consumer();

    // Flow control (inbound_pause.cpp): an io thread never waits for a full queue.
    /// Holds `run` (and, while paused, every later frame) and pauses reading.
    void hold_run(std::span<const MessageView> run);
    /// Where reading would go on: false when paused, after arming the resume.
    bool keep_reading(bool from_ring);
    void schedule_resume();
    void on_resume();
    /// Offers the held frames again, in order; true once none is left.
    bool publish_held();

    // Legacy clients and padded types (legacy_layout.cpp).
    /// An application frame from a legacy client: a padded type's packed encoding is
    /// converted to C and published; its C size switches the connection to C.
    void on_legacy_frame(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Queues `run` (one padded type, C layout) packed for a legacy client.
    void enqueue_packed_run(std::span<const MessageView> run, const schema::PackedLayout& layout);

    /// Whether an application frame is one of the contracts' types at its size; a bad one
    /// is dropped (bad_frame) and the connection goes on.
    bool acceptable(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Drops one bad frame: counts it, logs it (rate-limited), answers ERROR to a client
    /// that speaks control frames. The connection stays open.
    void bad_frame(ErrorCode code, const std::string& reason);

    void fail(ErrorCode code, const std::string& reason);
    void close_with_error(ErrorCode code, const std::string& reason);
    /// As above, giving the ERROR `linger` to leave instead of ServerOptions::close_linger.
    void close_with_error(ErrorCode code, const std::string& reason, std::chrono::milliseconds linger);
    void drop_oldest_locked() noexcept;

    ServerState& state_;
    Socket socket_;
    const std::string peer_;
    const std::uint64_t id_;
    asio::steady_timer handshake_timer_;
    asio::steady_timer linger_timer_;
    asio::steady_timer resume_timer_;

    // Strand-only state.
    Phase phase_ = Phase::Handshake;
    HandshakeReader handshake_;
    codec::FrameDecoder decoder_;
    std::vector<std::byte> read_buf_;
    std::map<std::uint16_t, Subscription> subs_;
    std::string name_;
    mutable std::mutex metrics_mutex_;  // guards the two below (read by scrapes)
    std::string metrics_client_;
    std::shared_ptr<const std::vector<ReportedFamily>> metrics_;
    std::string client_label_;  // its HELLO name, else its address (for drops())
    bool frames_seen_ = false;    // a frame arrived after the handshake (HELLO must be first)
    bool closing_ = false;        // an ERROR is being flushed; input is discarded
    bool close_after_flush_ = false;
    bool finished_ = false;
    bool counted_ = false;
    bool client_announced_ = false;  // the client observer was told of this HELLO
    std::vector<std::byte> inflight_;  // the buffer of the write in progress
    std::size_t inflight_frames_ = 0;
    std::optional<Outbound> outbound_;       // set for sessions the server dialed
    std::shared_ptr<PeerRecord> peer_record_;  // set once the link is a peer link
    InterestWatch interest_;                 // a peer link: declares this node's interest
    const bool passes_descriptors_;          // the transport's: shared memory can be set up
    ShmState shm_state_ = ShmState::None;
    std::unique_ptr<ShmLink> shm_;           // set from SHM_OFFER on
    // drain_shm() looks for frames until then before it parks (strand only).
    std::chrono::steady_clock::time_point shm_spin_until_{};
    bool counted_spinning_ = false;          // counted in state_.ring_spinners (strand only)
    std::vector<std::byte> offer_frame_;     // the SHM_OFFER waiting for send_offer()
    bool reading_ring_ = false;              // on_frame is fed from the ring now
    std::vector<shm::UniqueFd> received_fds_;  // descriptors read with the socket's bytes
    // Bad frames this connection sent (read by scrapes) and their log limiters (strand).
    std::atomic<std::uint64_t> bad_unknown_type_{0};
    std::atomic<std::uint64_t> bad_size_mismatch_{0};
    std::uint16_t accepted_type_ = 0;  // the last frame acceptable() passed (none yet)
    std::size_t accepted_size_ = 0;
    log::LogLimiter unknown_type_log_;
    log::LogLimiter size_mismatch_log_;
    // Flow control (strand only): paused while held_ has frames the bus had no room for.
    HeldFrames held_;
    bool paused_ = false;
    bool resume_armed_ = false;
    bool resume_socket_ = false;     // the socket read loop stopped for the pause
    bool resume_ring_ = false;       // the ring reader stopped for the pause
    bool end_of_stream_held_ = false;  // the client closed while frames were held

    // Read by bus callbacks on any thread.
    std::atomic<Role> role_{Role::Client};
    // Whether padded types go out packed: set for a legacy client only (become_legacy),
    // cleared when it shows it speaks C or says HELLO after all (on_hello).
    std::atomic<bool> send_packed_{false};
    std::vector<std::byte> unpacked_;  // a packed frame converted to C (strand only)

    // The send queue, shared with publishing threads. Frames are appended encoded into
    // `pending_`; bytes before `pending_head_` were evicted (DropOldest). start_write()
    // swaps the whole buffer out, so everything queued while a write was in flight goes
    // out in one write.
    mutable std::mutex send_mutex_;
    std::vector<std::byte> pending_;
    std::size_t pending_head_ = 0;
    std::size_t pending_frames_ = 0;
    bool write_scheduled_ = false;  // a start_write is posted or a write is in flight
    bool send_closed_ = false;      // nothing more is queued (closing or slow)
    bool shm_out_ = false;          // frames go into shm_->producer, not pending_
    std::size_t shm_staged_frames_ = 0;  // staged in the ring by a cork, not yet published
    // A publisher is waiting for room in the ring while holding send_mutex_ (Block).
    std::atomic<bool> shm_waiting_{false};
    // Ends such a wait early: the session is finishing, or an io thread gave up on it.
    std::atomic<bool> shm_wait_abort_{false};
    // Slow consumers (slow_consumer.cpp). The policy of this kind of connection, set once
    // the kind is known (legacy, HELLO client, peer); read by publishing threads.
    std::atomic<SlowConsumerPolicy> slow_policy_;
    // Frames meant for this connection dropped under DropOldest (read by scrapes).
    std::atomic<std::uint64_t> slow_dropped_{0};
    // Block: since when (steady ns) a held producer has found it full; 0 while it is not.
    std::atomic<std::int64_t> full_since_ns_{0};
    // Block: publishers on their own threads waiting for room in pending_.
    std::condition_variable room_cv_;
    std::size_t room_waiters_ = 0;  // under send_mutex_
};

}  // namespace mycelium::link::detail
