#pragma once
// Internal to host/src/transport: a connection's control frames (docs/wire-protocol.md),
// and the modes they put it in: a HELLO client, a peer link, or a legacy client.

#include <atomic>
#include <cstdint>
#include <span>
#include <string>

#include "client_report.hpp"
#include "frame_filter.hpp"
#include "legacy_frames.hpp"
#include "outbox.hpp"
#include "server_state.hpp"
#include "shm/shm_setup.hpp"
#include "subscriptions.hpp"
#include "mycelium/link.hpp"
#include "mycelium/log_limiter.hpp"

namespace mycelium::link::detail {

/// Answers the control frames a connection reads (HELLO, SUBSCRIBE, UNSUBSCRIBE, PING,
/// PONG, ERROR, METRICS; the shared-memory setup's go to ShmSetup) and keeps what they
/// decide: the phase, the name and role the other side gave, its subscriptions, the
/// interest declared to a peer, the layout of a legacy client and its reported metrics.
///
/// Threading: the connection's strand, except role() and legacy(), which bus callbacks
/// read on publishing threads.
class ControlFrames {
public:
    enum class Phase : std::uint8_t { Handshake, Undecided, Legacy, Hello };

    /// What the control frames ask of their connection.
    class Link {
    public:
        /// Queues a control frame to the other side.
        virtual void send_control(std::uint16_t type_id, std::span<const std::byte> payload) = 0;
        /// Counts a protocol error and closes with ERROR ProtocolViolation.
        virtual void protocol_violation(const std::string& reason) = 0;
        /// Closes with ERROR `code`.
        virtual void fail(ErrorCode code, const std::string& reason) = 0;
        /// Drops one bad frame and goes on (frame_filter.hpp).
        virtual void bad_frame(ErrorCode code, const std::string& reason) = 0;
        /// Closes at once, without ERROR.
        virtual void finish() noexcept = 0;
        /// Makes this connection the link of the peer named name() (PeerRecord).
        virtual void become_peer() = 0;

    protected:
        ~Link() = default;
    };

    /// Everything but `link` belongs to the same connection or its server and outlives
    /// this object.
    ControlFrames(Link& link, ServerState& state, Outbox& outbox, ShmSetup& shm, FrameFilter& filter,
                  Subscriptions::Sink& sink, const std::string& peer, std::uint64_t id);

    /// Handles one control frame (type id below schema::MIN_APP_TYPE_ID).
    void on_control(std::uint16_t type_id, std::span<const std::byte> payload);
    /// The digest handshake is done: the connection is a HELLO client or a legacy one.
    void handshake_done() noexcept { phase_ = Phase::Undecided; }
    /// No HELLO came with the handshake: the client receives every application type.
    void become_legacy();
    /// A link this node dialed to peer `name` (its HELLO has been sent already).
    void start_as_peer(const std::string& name);
    /// An application frame arrived: a HELLO after it is a protocol violation.
    void saw_frame() noexcept { frames_seen_ = true; }
    /// Ends the subscriptions and the interest watch (the connection is closing).
    void close() noexcept { subscriptions_.close(); }
    /// Tells the server's client observer that a client it was told of has gone.
    void announce_closed() noexcept;

    Phase phase() const noexcept { return phase_; }
    Role role() const noexcept { return role_.load(std::memory_order_relaxed); }
    const std::string& name() const noexcept { return name_; }
    LegacyFrames& legacy() noexcept { return legacy_; }
    const ClientReport& report() const noexcept { return report_; }
    ClientReport& report() noexcept { return report_; }

private:
    void dispatch(std::uint16_t type_id, std::span<const std::byte> payload);
    void on_hello(std::span<const std::byte> payload);
    void on_type_list(bool subscribe, std::span<const std::byte> payload);
    void on_metrics(std::span<const std::byte> payload);
    void on_ping(std::span<const std::byte> payload);
    void on_error(std::span<const std::byte> payload);
    void on_unknown(std::uint16_t type_id);
    /// Drops a METRICS frame above the limits: counted, logged (rate-limited), ERROR
    /// limit_exceeded to the client; its last snapshot stays.
    void refuse_metrics(const std::string& reason);
    /// The other side is `name`, a client or a peer: the phase after HELLO.
    void take_identity(const std::string& name, Role role);
    /// This connection becomes the peer's link and declares this node's interest to it.
    void join_as_peer();
    /// Tells the peer what this node wants: the current set, then each change.
    void declare_interest();

    Link& link_;
    ServerState& state_;
    Outbox& outbox_;
    ShmSetup& shm_;
    FrameFilter& filter_;
    const std::string& peer_;
    const std::uint64_t id_;

    Phase phase_ = Phase::Handshake;
    std::string name_;
    std::atomic<Role> role_{Role::Client};  // read by bus callbacks on any thread
    bool frames_seen_ = false;              // a frame arrived after the handshake (HELLO must be first)
    bool client_announced_ = false;         // the client observer was told of this HELLO
    Subscriptions subscriptions_;
    LegacyFrames legacy_;
    ClientReport report_;
    log::LogLimiter metrics_log_;
};

}  // namespace mycelium::link::detail
