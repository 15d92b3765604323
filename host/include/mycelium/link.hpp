#pragma once
/// Links: the host's Unix and TCP stream server (docs/wire-protocol.md, docs/architecture.md).
///
/// A LinkServer listens on any number of endpoints (`unix:PATH`, `tcp:HOST:PORT`) and
/// attaches every accepted connection to a Bus:
///
/// - Handshake: the client's first bytes are `u16 LE digest length (32), digest`; they
///   must arrive within ServerOptions::handshake_timeout and match the registry's digest.
/// - Then TLV frames (codec::FrameDecoder with the registry's sizes and the payload
///   limit). Application frames are published on the bus under an Origin naming the
///   connection, so they are never echoed back to it.
/// - A legacy client (Mycelium's Python SDK: only the handshake) receives every
///   application frame published on the node except its own. A client that sends HELLO
///   (link_protocol.hpp) receives only what it SUBSCRIBEs to; a HELLO with role=peer
///   also never receives frames that came from another peer.
/// - Bad input (wrong digest, digest length not 32, slow or truncated handshake, oversize
///   length, garbage, unknown type id, wrong payload size, malformed control frame)
///   closes only that connection: an ERROR frame where possible, a warning with the
///   peer's address on the "link" logger, a counter in LinkStats.
/// - Each connection has a bounded send queue; a reader that falls behind is
///   disconnected as a slow consumer (or loses its oldest frames, if so configured).
///   Queued frames leave in one large write whenever the socket is busy.
/// - Peers (node-to-node links, docs/topology.md): a connection that says HELLO
///   role=peer, or one the server dials itself (connect_peer()), is symmetric: each side
///   sends SUBSCRIBE/UNSUBSCRIBE for its own bus's interest (Bus::watch_interest) and
///   forwards only what the other side declared, never a frame that itself came from a
///   peer. A peer's own subscriptions do not count as interest of this node.
///
/// Asio is an implementation detail (host/src/transport/): nothing here includes it.
/// Threads: the server runs its own io threads; bus subscribers of a connection are
/// inline and only copy the frame into its send queue. Nothing here touches Python.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mycelium/bus.hpp"
#include "mycelium/endpoint.hpp"
#include "mycelium/link_counters.hpp"
#include "mycelium/link_protocol.hpp"
#include "mycelium/metrics_report.hpp"
#include "mycelium/schema.hpp"
#include "mycelium/topology/policies.hpp"

namespace mycelium::link {

// ---------------------------------------------------------------------------------------
// Origin of a publish
// ---------------------------------------------------------------------------------------

/// Where the message being published on the current thread came from: a link
/// connection, or (link_id 0) local code. Bus subscribers that forward to a link read it
/// to skip echoes (same link) and relays between peers (peer -> peer).
///
/// The origin applies only to the messages published from the link, whose payloads start
/// at `payload` .. `last_payload` (one message: the same address; a batch: the first and
/// the last of a run read from one buffer, in address order): an inline subscriber that
/// publishes a reply from inside its callback runs under the same thread-local origin,
/// and its reply (a different buffer) must still reach the link the request came from.
/// Use describes() to test a MessageView.
/// Thread safety: a value type.
struct Origin {
    /// The connection's process-unique id (never reused in a process); 0 = local.
    std::uint64_t link_id = 0;
    /// The connection's role (Client for legacy clients).
    Role role = Role::Client;
    /// The first byte of the (first) payload being published from the link.
    const std::byte* payload = nullptr;
    /// The first byte of the last payload of the batch (== payload for one message).
    const std::byte* last_payload = nullptr;

    /// True when `view` is a message this origin describes (not a nested publish).
    bool describes(const MessageView& view) const noexcept {
        const auto at = reinterpret_cast<std::uintptr_t>(view.payload.data());
        return link_id != 0 && at >= reinterpret_cast<std::uintptr_t>(payload) &&
               at <= reinterpret_cast<std::uintptr_t>(last_payload);
    }
};

/// The origin of the publish running on this thread (link_id 0 outside any OriginScope).
/// Thread safety: reads a thread-local; any thread.
Origin current_origin() noexcept;

/// Sets this thread's current origin for the scope's lifetime and restores the previous
/// one after: wrap a bus.publish() of a frame that came from a link in it.
/// Thread safety: affects only the constructing thread; must be destroyed on that thread.
class OriginScope {
public:
    /// Makes `origin` current on this thread.
    explicit OriginScope(Origin origin) noexcept;
    /// Restores the origin that was current before.
    ~OriginScope();
    OriginScope(const OriginScope&) = delete;
    OriginScope& operator=(const OriginScope&) = delete;

private:
    Origin saved_;
};

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// What a full per-connection send queue (or shared-memory ring) does with one more
/// frame: the slow-consumer policy. One type with the topology's `[nodes.slow_consumer]`
/// (mycelium/topology/policies.hpp, where each policy is described).
using SlowConsumerPolicy = topology::SlowConsumer;
using topology::to_string;
/// The policy named `text` ("drop_oldest", "disconnect", "block"); nullopt for others.
inline std::optional<SlowConsumerPolicy> parse_slow_consumer_policy(std::string_view text) noexcept {
    return topology::parse_slow_consumer(text);
}

/// The slow-consumer policy for each kind of connection a server serves.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct SlowConsumerPolicies {
    /// Handshake only, no HELLO (Mycelium's SDK): it lags and skips, as with Mycelium.
    SlowConsumerPolicy legacy = SlowConsumerPolicy::DropOldest;
    /// HELLO role=client.
    SlowConsumerPolicy client = SlowConsumerPolicy::Disconnect;
    /// Another node (HELLO role=peer, and the links this node dials).
    SlowConsumerPolicy peer = SlowConsumerPolicy::Disconnect;

    /// One policy for every kind (`--slow-consumer`).
    static constexpr SlowConsumerPolicies all(SlowConsumerPolicy policy) noexcept { return {policy, policy, policy}; }
};

/// How a legacy client (handshake only, no HELLO) gets the types whose C layout has
/// padding: one type with the topology's `legacy_layout` (mycelium/topology/policies.hpp).
using LegacyLayout = topology::LegacyLayout;
using topology::parse_legacy_layout;

/// Whose application payloads a server relays without validating them against the
/// contracts: one type with the topology's `trust_payloads` (mycelium/topology/policies.hpp).
using TrustPayloads = topology::TrustPayloads;
using topology::parse_trust_payloads;

/// How long a slow consumer being disconnected may take to accept its ERROR frame.
inline constexpr std::chrono::milliseconds SLOW_CONSUMER_LINGER{100};

/// Whether this build sets up shared-memory rings over Unix links (the CMake option
/// MYCELIUM_TRANSPORT_SHM). Without it a host refuses every SHM_REQUEST and never asks.
bool shared_memory_built() noexcept;

/// Limits and knobs of a LinkServer.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct ServerOptions {
    /// Largest frame payload accepted (lowered to the protocol's 4 MiB and to the bus's
    /// max_payload if above either).
    std::size_t max_payload = schema::DEFAULT_MAX_PAYLOAD;
    /// Time allowed from accept to the complete digest handshake.
    std::chrono::milliseconds handshake_timeout{5'000};
    /// Connections served at once (handshaking ones included); further ones get an
    /// ERROR TooManyConnections and are closed.
    std::size_t max_connections = 1024;
    /// Connections one listener serves at once (0: only max_connections applies), so that
    /// one endpoint (a TCP port open to a network) cannot take every slot from another.
    std::size_t max_connections_per_listener = 0;
    /// Connections one client identity holds at once (0: no such limit), over every
    /// listener: a local user by uid (SO_PEERCRED on a Unix socket, the socket's owner on
    /// loopback TCP), a remote one by address. Further ones get ERROR TooManyConnections.
    std::size_t max_connections_per_client = 256;
    /// A connection that said HELLO (a client or a peer) and sent nothing for half of this
    /// is sent a PING; one that then sends nothing for the other half either is closed
    /// with ERROR IdleTimeout. Never while the host itself holds its input (flow control),
    /// and never a legacy client, which cannot answer a PING. 0: never.
    std::chrono::milliseconds idle_timeout{60'000};
    /// Largest METRICS frame a client may send, and most series it may report in one
    /// (docs/wire-protocol.md "METRICS"): each client's snapshot is kept until the next
    /// and served on /metrics, so both are bounded per client. A frame above either is
    /// dropped with ERROR limit_exceeded; the connection stays.
    std::size_t max_metrics_bytes = 256u * 1024u;
    std::size_t max_metrics_series = 5'000;
    /// Frames a connection's send queue holds before SlowConsumerPolicy applies.
    std::size_t send_queue_frames = 65536;
    /// Bytes (headers included) a send queue holds before SlowConsumerPolicy applies;
    /// raised to one frame of max_payload if lower.
    std::size_t send_queue_bytes = 8u * 1024u * 1024u;
    /// What a full send queue does, per kind of connection.
    SlowConsumerPolicies slow_consumer;
    /// How legacy clients get padded types, until one shows it speaks C.
    LegacyLayout legacy_layout = LegacyLayout::Packed;
    /// Permissions of the Unix sockets the server creates.
    std::uint32_t socket_mode = 0660;
    /// Io threads (at least 1). Connections are served on strands, so any number works.
    std::size_t threads = 1;
    /// How long a connection being closed with an ERROR frame may take to flush it.
    std::chrono::milliseconds close_linger{1'000};
    /// Whether a client or peer on a Unix socket may move its frames to shared-memory
    /// rings (SHM_REQUEST, docs/wire-protocol.md "Shared-memory setup"); when false every
    /// request gets SHM_REFUSE disabled and the connection stays on the socket.
    bool shm_enabled = false;
    /// Data-area bytes per direction of a ring (a power of two; raised to hold two frames
    /// of the largest message in the contracts). A request for less is honoured (at least
    /// that floor), a request for more is lowered to this.
    std::size_t shm_ring_bytes = std::size_t{1} << 20;
    /// How long the host's ring reader spins on an empty ring before it parks on its
    /// doorbell (it spins on an io thread: keep it short; 0 = park at once).
    std::chrono::microseconds shm_spin{50};
    /// Which connections' application payloads are relayed without Registry::validate
    /// (docs/wire-protocol.md "Bad frames"): by default every client's and peer's are
    /// checked, and a frame that breaks its contract is dropped with ERROR invalid_payload
    /// (the connection stays). The type and the size are checked on every link.
    TrustPayloads trust_payloads = TrustPayloads::None;
    /// Bad input a connection repeats (a frame of an unknown type, of the wrong size, with
    /// an invalid payload) is logged at most once per connection, reason and interval,
    /// with a count of the lines held back.
    std::chrono::milliseconds log_interval{10'000};
    /// SlowConsumerPolicy::Block: how long a consumer's full send queue or ring may pause
    /// its producers before it is disconnected as a slow consumer (0: at once).
    std::chrono::milliseconds slow_consumer_wait{1'000};
    /// The node names that may connect as peers (HELLO role=peer); anyone else claiming to
    /// be a peer is refused (protocol_violation), so a client can neither receive a node's
    /// traffic as a peer nor displace a real peer's link. Empty: no peers (a host serving
    /// only clients). A Mesh sets it to the nodes of its topology that dial this one.
    std::vector<std::string> accepted_peers;
};

/// Frames the host dropped on one open connection without closing it: bad input it sent
/// (an unknown type, the wrong size, a payload that breaks the contracts) and frames to it evicted as it fell behind.
struct ClientDrops {
    std::string client;              ///< its HELLO name, else its address
    std::uint64_t unknown_type = 0;  ///< sent by it, dropped
    std::uint64_t size_mismatch = 0; ///< sent by it, dropped
    std::uint64_t invalid_payload = 0; ///< sent by it, dropped (its payload broke the contracts)
    std::uint64_t slow_consumer = 0; ///< meant for it, dropped under DropOldest
};

/// Counters of a LinkServer, summed over its lifetime (`active` is current).
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct LinkStats {
    /// Connections open now.
    std::uint64_t active = 0;
    // Each lifetime counter of mycelium/link_counters.hpp, where each is documented.
#define MYCELIUM_LINK_STATS_FIELD(field, family, label, doc) std::uint64_t field = 0;
    MYCELIUM_LINK_COUNTERS(MYCELIUM_LINK_STATS_FIELD)
#undef MYCELIUM_LINK_STATS_FIELD
};

/// How a LinkServer dials and redials one peer (connect_peer()).
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct PeerOptions {
    /// This node's name, sent in HELLO (1-255 bytes, no control characters).
    std::string self_name;
    /// First delay before a redial; doubles after each failure up to backoff_max.
    std::chrono::milliseconds backoff_initial{100};
    /// Longest delay between two dials.
    std::chrono::milliseconds backoff_max{5'000};
    /// A link that stayed up this long resets the delay to backoff_initial when it drops.
    std::chrono::milliseconds stable_after{1'000};
    /// A connect (resolve included) that takes longer is abandoned and retried.
    std::chrono::milliseconds connect_timeout{5'000};
    /// Over a Unix socket, ask the peer for shared-memory rings after HELLO (SHM_REQUEST);
    /// when it refuses, the link stays on the socket.
    bool shm = false;
    /// Data-area bytes per direction asked for (0 = the peer's default).
    std::uint32_t shm_ring_bytes = 0;
};

/// The state of one peer link, dialed or accepted, as LinkServer::peers() reports it.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct PeerStatus {
    /// The peer node's name (from connect_peer(), or from the peer's HELLO).
    std::string name;
    /// True when this server dials the peer, false when the peer dialed in.
    bool dialed = false;
    /// Where it is dialed (`unix:PATH` / `tcp:HOST:PORT`), or the accepted peer's address.
    std::string endpoint;
    /// Whether a link to the peer is up now.
    bool connected = false;
    /// Links established over the server's lifetime.
    std::uint64_t connects = 0;
    /// Links established after the first one (connects - 1, or 0).
    std::uint64_t reconnects = 0;
    /// Dial attempts that failed (refused, unreachable, timed out).
    std::uint64_t connect_failures = 0;
    /// Frames received from the peer (application and control).
    std::uint64_t frames_in = 0;
    /// Frames written to the peer.
    std::uint64_t frames_out = 0;
    /// Bytes received from the peer.
    std::uint64_t bytes_in = 0;
    /// Bytes written to the peer (the handshake included).
    std::uint64_t bytes_out = 0;
};

namespace detail {
struct ServerState;
}  // namespace detail

/// The Unix/TCP link server of a node; see the file comment for the protocol.
///
/// Lifetime: the bus and the registry must outlive the server. The destructor calls
/// stop(). Thread safety: every member function may be called from any thread
/// concurrently, except the destructor; none may be called from inside a bus callback.
class LinkServer {
public:
    /// Starts the io threads; listens nowhere yet. Throws std::system_error if a thread
    /// cannot be started.
    LinkServer(Bus& bus, const schema::Registry& registry, ServerOptions options = {});
    /// stop(), then frees everything.
    ~LinkServer();
    LinkServer(const LinkServer&) = delete;
    LinkServer& operator=(const LinkServer&) = delete;

    /// Listens on `endpoint` and returns the bound address (a TCP port 0 replaced by the
    /// port the kernel chose), to print or connect to. A Unix socket gets
    /// ServerOptions::socket_mode; an existing file at its path is replaced only if it
    /// is a socket nobody answers on (a stale one).
    /// Throws std::system_error (address in use, permission denied, a live socket at the
    /// path, a path that is not a socket, an unresolvable host) or std::logic_error after
    /// stop(). Configuration errors: call it at start-up.
    Endpoint listen(const Endpoint& endpoint);
    /// listen(parse_endpoint(text)); also throws std::invalid_argument for bad text.
    Endpoint listen(std::string_view endpoint);

    /// The bound addresses of every listen() so far, in call order.
    std::vector<Endpoint> endpoints() const;

    /// The first step of a shutdown that loses nothing it accepted: stops accepting
    /// connections and dialing peers, and stops reading every connection (socket and
    /// ring), so nothing more is taken in. What was read but not yet published (held by
    /// flow control) is dropped: no PONG covered it. Connections stay open, and what is
    /// published to them still goes out. Idempotent; returns at once.
    void stop_intake() noexcept;
    /// What stop_after_flush() could not send, by application type id.
    using Unsent = std::map<std::uint16_t, std::uint64_t>;
    /// stop_intake(), then closes every connection with ERROR ShuttingDown once what is
    /// queued for it has left, waiting until `deadline` at most, then stop(). Returns the
    /// application frames still queued (or in a write) when their connection closed.
    /// Frames already in a shared-memory ring count as sent: they are in the client's memory.
    Unsent stop_after_flush(std::chrono::steady_clock::time_point deadline) noexcept;

    /// Stops accepting, closes every connection (sending ERROR ShuttingDown where the
    /// socket has room), removes the Unix socket files it created, joins the io threads.
    /// Idempotent; blocks for at most about close_linger plus a little.
    void stop() noexcept;

    /// A snapshot of the counters (exact once the server is quiet).
    LinkStats stats() const noexcept;

    /// Starts dialing the peer node `peer_name` at `endpoint` and keeps one link to it:
    /// digest handshake, HELLO role=peer with options.self_name, then the symmetric peer
    /// protocol (see the file comment). A failed dial or a lost link is retried after
    /// options' exponential backoff with jitter (a delay drawn from [d/2, d]), until
    /// stop(). State changes are logged on the "mesh" logger. Returns at once; progress
    /// shows in peers(). Throws std::invalid_argument for a bad self_name or a TCP
    /// endpoint with port 0, std::logic_error after stop().
    void connect_peer(std::string peer_name, const Endpoint& endpoint, PeerOptions options);

    /// The status of every peer seen so far (dialed ones, and accepted connections that
    /// said HELLO role=peer), ordered by name.
    std::vector<PeerStatus> peers() const;

    /// Frames waiting in the send queues of every connection now (not counting those in
    /// a write in progress or in a shared-memory ring).
    std::uint64_t queued_frames() const;

    /// The last METRICS snapshot of every open client connection that sent one, with
    /// the client's HELLO name (docs/wire-protocol.md "METRICS"; metrics::append_reported
    /// turns them into Prometheus families).
    std::vector<std::pair<std::string, std::vector<ReportedFamily>>> client_metrics() const;
    /// What was dropped on each open connection that has dropped anything (ClientDrops),
    /// by client. Any thread.
    std::vector<ClientDrops> client_drops() const;

    /// Told when a client connection says HELLO role=client (`connected` true) and when
    /// that connection closes (false): once each per connection, with the HELLO's name.
    /// Legacy clients (no HELLO) and peers are not reported. The worker supervisor uses it
    /// to tell when a worker has connected under its service name.
    using ClientObserver = std::function<void(std::string_view name, bool connected)>;
    /// Installs `observer` in place of the previous one (an empty function removes it).
    /// When this returns, the previous observer is not running and will not be called
    /// again. The observer runs on an io thread: it must be short and must not call
    /// set_client_observer() (that would deadlock); what it throws is logged and ignored.
    void set_client_observer(ClientObserver observer);

private:
    /// stop(), giving the connections `linger` to close.
    void stop_within(std::chrono::milliseconds linger) noexcept;

    std::shared_ptr<detail::ServerState> state_;
};

/// Sends a burst of messages through shared-memory links in one go (issue 5). While a
/// PublishBatch lives on a thread, each frame the thread's Bus::publish calls hand to a
/// link that moved to shared memory is staged in the ring, and each ring is published
/// (made visible to its reader, which is rung if it sleeps) once: when the batch ends or
/// flush() is called, and whenever 64 frames (or a quarter of the ring) are staged in it.
/// A publish is a full barrier that waits for the cache line the reader polls, so a dense
/// stream published frame by frame from an application thread tops out several times
/// below a batched one (docs/benchmarks.md, "Shared-memory links"). Frames the host relays
/// from one connection to another are batched this way already, per read batch. When the
/// messages are at hand together, Bus::publish_batch does more with less: one bus pass
/// and one lock of each link per run, and each ring published once per run (or 64 frames).
///
/// Without a batch every frame is published at once: a lone message is never delayed.
/// Inside one, nothing reaches the reader before the batch publishes it: keep a batch
/// around a loop that publishes a burst, never around a wait for an answer to it. Links
/// over sockets are not affected (their send queues coalesce writes already), and the
/// order of frames on every link is the order of the publishes, as without a batch. A
/// publish that finds a ring full publishes that ring's staged frames before the
/// slow-consumer policy applies; under Block the batch's other rings wait with it.
///
/// A batch holds the links it staged frames for until it publishes them; ~LinkServer
/// waits for the batches of other threads that hold its links (and publishes the calling
/// thread's own). Nothing here allocates per frame. Thread safety: made, used and
/// destroyed on one thread; batches nest (an inner one publishes its own frames at its
/// end). No GIL.
class PublishBatch {
public:
    /// Starts corking the calling thread's shared-memory sends.
    PublishBatch();
    /// Publishes what is staged and stops corking.
    ~PublishBatch();
    PublishBatch(const PublishBatch&) = delete;
    PublishBatch& operator=(const PublishBatch&) = delete;

    /// Publishes what is staged so far; the batch goes on.
    void flush() noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace mycelium::link
