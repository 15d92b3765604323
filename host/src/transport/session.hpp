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

#include "cork.hpp"
#include "frame_filter.hpp"
#include "handshake.hpp"
#include "inbound_pause.hpp"
#include "io_thread.hpp"
#include "outbox.hpp"
#include "server_state.hpp"
#include "shm/shm_setup.hpp"
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

/// One accepted connection: handshake, frame decoding, bus subscriptions, send queue.
///
/// Threading: everything except on_bus_messages() and enqueue*() runs on the session's
/// strand. Bus callbacks (any publishing thread) hand frames to the Outbox, which queues
/// them for the socket or stages them in the ring, and post a write to the strand when
/// one must start.
class Session final : public std::enable_shared_from_this<Session>, private Corkable, private ShmSetup::Link {
public:
    using Socket = Pipe;

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

    // Shared memory (strand). ShmSetup::Link: what the setup asks of this connection.
    void send_control(std::uint16_t type_id, std::span<const std::byte> payload) override { enqueue(type_id, payload); }
    void protocol_violation(const std::string& reason) override;
    void offer_waiting() override;
    /// Queues `last` as the last frame on the socket and sends everything after it
    /// through the ring.
    void switch_output(std::uint16_t last) override;
    void start_reading_ring() override;
    /// Sends a waiting SHM_OFFER with its descriptors (sendmsg); only when no write is in
    /// flight, so that it goes out in socket order.
    void send_offer();
    /// Reads the client->host ring: batches, a bounded spin, then parks on the doorbell.
    void drain_shm();
    /// Reads what the ring holds now, without waiting (before closing on end of stream).
    void drain_shm_now();
    /// Visits up to `max` ring frames; false when the ring failed (the session is closing).
    bool read_ring(std::size_t max, std::size_t& visited);
    void on_ring_failure(const shm::RingFailure& failure);
    void on_shm_send_corrupt();
    void close_shm() noexcept;

    void enqueue(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Hands frames to the outbox: into the ring (left staged when this thread's cork
    /// publishes them) or into the socket's send queue.
    void enqueue_run(std::span<const MessageView> frames);
    /// Does what the outbox left to do: start a write, or apply the slow-consumer policy.
    void after_enqueue(Outbox::After after);
    // Corkable: the ring's staged frames, published by a cork.
    void publish_staged() noexcept override { outbox_.publish_staged(); }
    std::shared_ptr<Corkable> corkable_ref() noexcept override {
        auto self = weak_from_this().lock();
        return self ? std::shared_ptr<Corkable>(std::move(self), static_cast<Corkable*>(this)) : nullptr;
    }
    /// Logs (once) and counts a frame not sent because its size is not the contracts'.
    void warn_unsendable(const MessageView& view, const schema::MessageSchema* message);
    /// Whether the calling thread is running one of this session's handlers now.
    bool on_own_strand() noexcept;
    void start_write();
    /// Moves the queued frames into inflight_; false (after a FIN when closing) if none.
    bool take_pending();
    /// Counts a completed write of inflight_ and empties it.
    void count_written(std::size_t n);
    void on_write_failed(const asio::error_code& ec);
    void on_written(const asio::error_code& ec, std::size_t n);
    /// Applies Disconnect to a consumer whose queue overflowed (Block after its wait).
    void on_slow_consumer();

    // Flow control (inbound_pause.hpp): an io thread never waits for a full queue.
    /// Where reading would go on: false when paused, after arming the resume.
    bool keep_reading(bool from_ring);
    void on_resume();
    /// Offers the held frames again, in order; true once none is left.
    bool publish_held();

    // Legacy clients and padded types (legacy_layout.cpp).
    /// An application frame from a legacy client: a padded type's packed encoding is
    /// converted to C and published; its C size switches the connection to C.
    void on_legacy_frame(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Queues `run` (one padded type, C layout) packed for a legacy client.
    void enqueue_packed_run(std::span<const MessageView> run, const schema::PackedLayout& layout);

    /// Whether an application frame passes filter_; a bad one is dropped (bad_frame) and
    /// the connection goes on.
    bool acceptable(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Drops one bad frame: counts it, logs it (rate-limited), answers ERROR to a client
    /// that speaks control frames. The connection stays open.
    void bad_frame(ErrorCode code, const std::string& reason);

    void fail(ErrorCode code, const std::string& reason);
    void close_with_error(ErrorCode code, const std::string& reason);
    /// As above, giving the ERROR `linger` to leave instead of ServerOptions::close_linger.
    void close_with_error(ErrorCode code, const std::string& reason, std::chrono::milliseconds linger);

    ServerState& state_;
    Socket socket_;
    const std::string peer_;
    const std::uint64_t id_;
    asio::steady_timer handshake_timer_;
    asio::steady_timer linger_timer_;

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
    ShmSetup shm_;                           // shared memory: its setup and its rings
    bool reading_ring_ = false;              // on_frame is fed from the ring now
    FrameFilter filter_;  // which application frames pass, and the count of those that did not
    InboundPause pause_;  // flow control: paused while it holds frames the bus had no room for

    // Read by bus callbacks on any thread.
    std::atomic<Role> role_{Role::Client};
    // Whether padded types go out packed: set for a legacy client only (become_legacy),
    // cleared when it shows it speaks C or says HELLO after all (on_hello).
    std::atomic<bool> send_packed_{false};
    std::vector<std::byte> unpacked_;  // a packed frame converted to C (strand only)

    // What this link sends, shared with publishing threads. After shm_: it writes into
    // shm_'s out_ring, and must go first.
    Outbox outbox_;
};

}  // namespace mycelium::link::detail
