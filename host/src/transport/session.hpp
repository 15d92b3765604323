#pragma once
// Internal to host/src/transport: one connection (Session); what it shares with its
// server is server_state.hpp. Asio stays inside this folder: public headers never include it.

#include <asio/generic/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "client_report.hpp"
#include "control_frames.hpp"
#include "cork.hpp"
#include "frame_filter.hpp"
#include "handshake_gate.hpp"
#include "idle_watch.hpp"
#include "inbound_pause.hpp"
#include "io_thread.hpp"
#include "link_traffic.hpp"
#include "outbox.hpp"
#include "server_state.hpp"
#include "shm/ring_inbound.hpp"
#include "shm/shm_setup.hpp"
#include "socket_reader.hpp"
#include "socket_writer.hpp"
#include "subscriptions.hpp"
#include "transport.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/link.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::link::detail {

/// What a session the server dialed itself (PeerDialer) carries besides the socket.
struct Outbound {
    std::string self_name;                 // sent in HELLO
    std::shared_ptr<PeerRecord> record;    // the peer it reaches
    std::function<void()> on_closed;       // called once from finish()
    bool request_shm = false;              // ask for shared-memory rings (Unix socket only)
    std::uint32_t shm_capacity = 0;        // per direction, 0 = the far node's default
};

/// One connection. It ties together parts that each do one job (the table in
/// docs/architecture.md): the handshake, the socket's reader and writer, the frame
/// filter, control frames, flow control, the outbox, shared memory and its ring reader,
/// and the traffic counts. What it does itself: decide what a read's bytes are (the
/// handshake, frames, a legacy client), publish frames on the bus under its origin,
/// hand the bus's runs to the outbox, and close.
///
/// Threading: everything except on_bus_messages() and enqueue*() runs on the session's
/// strand. Bus callbacks (any publishing thread) hand frames to the Outbox, which queues
/// them for the socket or stages them in the ring, and post a write to the strand when
/// one must start.
class Session final : public std::enable_shared_from_this<Session>,
                      private Corkable,
                      private ShmSetup::Link,
                      private ControlFrames::Link,
                      private HandshakeGate::Link,
                      private IdleWatch::Link,
                      private SocketReader::Link,
                      private SocketWriter::Link,
                      private RingInbound::Link,
                      private Subscriptions::Sink {
public:
    using Socket = Pipe;

    /// An accepted connection (`outbound` empty) or one the server dialed to a peer, over
    /// a transport whose pipes do or do not pass descriptors (Transport::passes_descriptors).
    /// `slot` is what an accepted connection counts against (its listener, its client).
    Session(ServerState& state, Socket socket, std::string peer, std::uint64_t id, bool passes_descriptors,
            std::optional<Outbound> outbound = std::nullopt, ConnectionSlot slot = {});
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    /// The strand every handler of this session runs on.
    Socket::executor_type socket_executor() { return socket_.get_executor(); }
    /// Starts the handshake timer and reading. Strand.
    void start();
    /// Closes with ERROR ShuttingDown and `reason` (posts to the strand). Any thread.
    void shut_down(std::string reason = "the host is shutting down");
    /// Stops taking anything in: the socket and the ring are no longer read, and what was
    /// read but not yet published (held by flow control) is not published. What is
    /// queued for the other side still leaves. Posts to the strand. Any thread.
    void stop_intake();
    /// Closes with ERROR ShuttingDown after everything already queued has left, within
    /// `linger` (a shutdown; frames still queued when it closes are counted in
    /// ServerState::unsent). Posts to the strand. Any thread.
    void shut_down_after_flush(std::chrono::milliseconds linger);
    /// Closes at once, without ERROR. Strand, or any thread once the io threads stopped.
    void finish() noexcept override;

    /// Frames waiting in the send queue now. Any thread.
    std::size_t queued_frames() const { return outbox_.queued_frames(); }
    /// The client's name and its last METRICS snapshot (null before the first). Any thread.
    std::pair<std::string, ClientReport::Snapshot> reported_metrics() const { return control_.report().metrics(); }
    /// What was dropped on this connection (bad frames it sent, frames to it evicted),
    /// under its name. Any thread.
    ClientDrops drops() const;

private:
    using Phase = ControlFrames::Phase;

    void start_outbound();
    /// Sends ERROR TooManyConnections naming the limit that refused it, and closes. Strand.
    void refuse(Admission why);

    // Reading (strand).
    // SocketReader::Link.
    void on_read(const asio::error_code& ec, std::span<const std::byte> bytes) override;
    /// Takes the bytes just read: the handshake first, then frames.
    void take_bytes(std::span<const std::byte> bytes);
    void on_end_of_stream();
    /// Whether the bytes after the handshake begin with a HELLO (or are too few to tell).
    static bool starts_with_hello(std::span<const std::byte> bytes);
    void feed(std::span<const std::byte> bytes);
    /// Closes on a frame that breaks the stream (codec::FrameDecoder's failure).
    void on_decode_failure(const codec::DecodeFailure& failure);
    // RingInbound::Link: the ring reader hands frames here too.
    void on_frame(std::uint16_t type_id, std::span<const std::byte> payload) override;
    /// Whether an application frame passes filter_; a bad one is dropped (bad_frame) and
    /// the connection goes on.
    bool acceptable(std::uint16_t type_id, std::span<const std::byte> payload) override;
    /// Publishes application frames read from this connection on the bus, under this
    /// connection's origin. `run`'s payloads are in address order in one buffer.
    void publish_from_link(std::span<const MessageView> run) override;
    bool closing() const noexcept override { return closing_ || finished_; }
    // IdleWatch::Link.
    bool answers_ping() const noexcept override { return control_.phase() == Phase::Hello; }
    bool input_held() const noexcept override { return pause_.paused() || intake_stopped_; }

    // Flow control (inbound_pause.hpp): an io thread never waits for a full queue.
    /// Where reading would go on: false when paused, after arming the resume.
    bool keep_reading(bool from_ring) override;
    void on_resume();
    /// Offers the held frames again, in order; true once none is left.
    bool publish_held();

    // ControlFrames::Link and ShmSetup::Link: what the control frames and the
    // shared-memory setup ask of this connection (strand).
    void send_control(std::uint16_t type_id, std::span<const std::byte> payload) override { enqueue(type_id, payload); }
    void protocol_violation(const std::string& reason) override;
    void fail(ErrorCode code, const std::string& reason) override;
    /// Drops one bad frame: counts it, logs it (rate-limited), answers ERROR to a client
    /// that speaks control frames. The connection stays open.
    void bad_frame(ErrorCode code, const std::string& reason) override;
    void become_peer() override;
    void offer_waiting() override;
    /// Queues `last` as the last frame on the socket and sends everything after it
    /// through the ring.
    void switch_output(std::uint16_t last) override;
    void start_reading_ring() override;

    void on_shm_send_corrupt();

    // Writing. Subscriptions::Sink: inline batch subscriber of the bus; forwards a run of
    // published messages of one type, except those that came from this connection (or
    // from a peer, when this connection is a peer) and those whose size is not the
    // contracts'. Any thread.
    void on_bus_messages(std::span<const MessageView> run) override;
    void enqueue(std::uint16_t type_id, std::span<const std::byte> payload);
    /// Hands frames to the outbox: into the ring (left staged when this thread's cork
    /// publishes them) or into the socket's send queue.
    void enqueue_run(std::span<const MessageView> frames);
    /// Does what the outbox left to do: start a write, or apply the slow-consumer policy.
    void after_enqueue(Outbox::After after);
    /// Starts a write from a bus callback or a handler of this session.
    void write_now(const std::shared_ptr<Session>& self);
    // Corkable: the ring's staged frames, published by a cork.
    void publish_staged() noexcept override { outbox_.publish_staged(); }
    std::shared_ptr<Corkable> corkable_ref() noexcept override;
    // SocketWriter::Link.
    bool finished() const noexcept override { return finished_; }
    std::shared_ptr<void> keep_alive() override { return shared_from_this(); }
    void finish_later() override;
    void sent_fin() override;
    /// Counts what is still queued to send, by type, into ServerState::unsent (shutdown).
    void count_unsent();
    /// Logs (once) and counts a frame not sent because its size is not the contracts'.
    void warn_unsendable(const MessageView& view, const schema::MessageSchema* message);
    /// Whether the calling thread is running one of this session's handlers now.
    bool on_own_strand() noexcept;

    // Closing.
    /// Applies Disconnect to a consumer whose queue overflowed (Block after its wait).
    void on_slow_consumer();
    void close_with_error(ErrorCode code, const std::string& reason) override;
    /// As above, giving the ERROR `linger` to leave instead of ServerOptions::close_linger;
    /// with `send_queued`, what is already queued leaves before it (a shutdown).
    void close_with_error(ErrorCode code, const std::string& reason, std::chrono::milliseconds linger,
                          bool send_queued = false);
    /// Finishes the connection once `linger` has passed (replacing an earlier such wait).
    void finish_after(std::chrono::milliseconds linger);
    /// Unregisters a peer link from its PeerRecord (unless a newer link replaced it).
    void leave_peer_record() noexcept;

    // What it is.
    ServerState& state_;
    Socket socket_;
    const std::string peer_;            // its address, in log lines
    const std::uint64_t id_;
    std::optional<Outbound> outbound_;  // set for sessions the server dialed
    const ConnectionSlot slot_;         // what an accepted one counts against

    // Its state (strand only).
    codec::FrameDecoder decoder_;
    bool closing_ = false;  // an ERROR is being flushed; input is discarded
    bool finished_ = false;
    bool counted_ = false;  // admitted: counted against the connection limits under slot_
    bool intake_stopped_ = false;   // shutdown: nothing more is read or published
    bool reading_stopped_ = false;  // the socket's read loop ended because of it
    bool flushing_close_ = false;   // closing after everything queued (shut_down_after_flush)
    asio::steady_timer linger_timer_;  // how long the closing ERROR may take to leave

    // Its parts.
    HandshakeGate handshake_;
    LinkTraffic traffic_;
    ShmSetup shm_;        // shared memory: its setup and its rings
    FrameFilter filter_;  // which application frames pass, and the count of those that did not
    InboundPause pause_;  // flow control: paused while it holds frames the bus had no room for
    IdleWatch idle_;      // closes it when it goes quiet and answers no PING

    // What this link sends, shared with publishing threads. After shm_: it writes into
    // shm_'s out_ring, and must go first.
    Outbox outbox_;
    SocketReader reader_;
    SocketWriter writer_;
    // After outbox_ (its subscriptions' callbacks use it), and before it in destruction.
    ControlFrames control_;
    RingInbound ring_;  // the incoming ring, once the connection switched to the rings
};

}  // namespace mycelium::link::detail
