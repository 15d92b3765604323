#pragma once
// Internal to host/src/transport: what a LinkServer shares with its connections and its
// dialers: the bus and the contracts, the options, the lifetime counters, the registry of
// sessions and peers, the io threads and the listeners.

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <condition_variable>
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

#include "mycelium/bus.hpp"
#include "mycelium/link.hpp"
#include "mycelium/link_counters.hpp"
#include "mycelium/log_limiter.hpp"
#include "mycelium/packed_layout.hpp"
#include "mycelium/schema.hpp"
#include "limited_log.hpp"
#include "transport.hpp"

namespace mycelium::link::detail {

class Session;
class PeerDialer;

/// One peer node's link record, shared by the dialer (if any) and by whichever session
/// currently carries the link. Counters are relaxed atomics; `mutex` guards the rest.
struct PeerRecord {
    PeerRecord(std::string n, bool d) : name(std::move(n)), dialed(d) {}

    const std::string name;
    const bool dialed;
    std::atomic<bool> connected{false};
    std::atomic<std::uint64_t> connects{0}, connect_failures{0}, frames_in{0}, frames_out{0}, bytes_in{0},
        bytes_out{0};

    std::mutex mutex;
    std::string endpoint;
    std::weak_ptr<Session> current;  // the session carrying the link now
};

/// Lifetime counters behind LinkStats; relaxed atomics (they are statistics).
struct Counters {
#define MYCELIUM_LINK_COUNTER_ATOMIC(field, family, label, doc) std::atomic<std::uint64_t> field{0};
    MYCELIUM_LINK_COUNTERS(MYCELIUM_LINK_COUNTER_ATOMIC)
#undef MYCELIUM_LINK_COUNTER_ATOMIC

    static void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
        c.fetch_add(n, std::memory_order_relaxed);
    }
    /// Adds one and returns the value before.
    static std::uint64_t bump(std::atomic<std::uint64_t>& c) noexcept {
        return c.fetch_add(1, std::memory_order_relaxed);
    }
};

/// What an accepted connection counts against besides max_connections.
struct ConnectionSlot {
    std::size_t listener = 0;  // ServerState::listener_active's index
    std::string identity;      // AcceptedPeer::identity
};

/// Whether an accepted connection is served, or which limit refuses it.
enum class Admission : std::uint8_t {
    Admitted,
    Stopped,             // the server stops: closed without a word
    TooManyConnections,  // max_connections
    TooManyOnListener,   // max_connections_per_listener
    TooManyFromClient,   // max_connections_per_client
    OutOfDescriptors,    // too close to RLIMIT_NOFILE (DESCRIPTOR_HEADROOM)
};

/// Descriptors below RLIMIT_NOFILE that connections never take: the host's own files,
/// /metrics, logs and the shared-memory setup of clients already served keep working
/// when clients exhaust the rest.
inline constexpr int DESCRIPTOR_HEADROOM = 32;

/// What LinkServer shares with its sessions. Sessions refer to it by reference: stop()
/// finishes every session before the state can go away.
/// Member order matters: `listeners` and then `io` are destroyed first, so that handlers
/// (and the sessions they own) die while everything else is still alive.
struct ServerState {
    ServerState(Bus& b, const schema::Registry& r, ServerOptions o);

    Bus& bus;
    const schema::Registry& registry;
    const schema::PackedLayouts packed_layouts;  // the registry's padded types
    ServerOptions options;
    std::shared_ptr<spdlog::logger> log;
    std::shared_ptr<spdlog::logger> mesh_log;  // peer links' state changes
    /// Lines that outside input can repeat, once per reason and options.log_interval
    /// (limited_log.hpp says why by reason, not by peer).
    log::KeyedLogLimiter log_limits;
    /// A `log` warning or error about outside input, through `log_limits` (log_limited()).
    template <class... Args>
    void warn_limited(std::string_view reason, fmt::format_string<Args...> format, Args&&... args) noexcept {
        log_limited(*log, log_limits, spdlog::level::warn, reason, 0, format, std::forward<Args>(args)...);
    }
    template <class... Args>
    void error_limited(std::string_view reason, fmt::format_string<Args...> format, Args&&... args) noexcept {
        log_limited(*log, log_limits, spdlog::level::err, reason, 0, format, std::forward<Args>(args)...);
    }
    Counters counters;
    std::atomic<std::uint64_t> next_id{1};

    std::mutex mutex;  // guards the members down to `stopped`
    std::condition_variable sessions_changed;
    std::unordered_map<std::uint64_t, std::weak_ptr<Session>> sessions;
    std::uint64_t active = 0;
    std::vector<std::size_t> listener_active;  // by ConnectionSlot::listener
    // By ConnectionSlot::identity; an entry lives while its identity holds a connection,
    // so there are never more than max_connections.
    std::unordered_map<std::string, std::size_t> client_active;
    std::vector<Endpoint> endpoints;
    bool stopped = false;
    std::map<std::string, std::shared_ptr<PeerRecord>> peers;  // by peer name
    /// Application frames still queued when their connection closed during a shutdown,
    /// by type (LinkServer::stop_after_flush).
    std::map<std::uint16_t, std::uint64_t> unsent;
    /// Every session open at stop_intake(), kept alive until stop() (a session that reads
    /// nothing more may have no handler pending to own it).
    std::vector<std::shared_ptr<Session>> held_at_stop;

    /// Set by LinkServer::stop_intake(): no new connection is admitted, and a closing
    /// connection counts what it did not send.
    std::atomic<bool> intake_stopped{false};

    // Sessions of this server referenced by a cork on some thread (a PublishBatch, or a
    // read batch on an io thread). ~LinkServer waits for 0 before the io_context goes.
    std::atomic<std::uint64_t> batch_holds{0};
    // Sessions whose ring reader is in its spin (not parked): with more than one, each
    // spins in shorter slices (transport/shm/ring_reader.cpp, SHARED_SPIN_SLICE).
    std::atomic<std::uint32_t> ring_spinners{0};

    std::vector<std::thread> threads;
    asio::io_context io;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::vector<std::unique_ptr<Listener>> listeners;
    // Destroyed before `io` (their timers and sockets belong to it), after every io
    // thread has been joined; handlers capture them by raw pointer.
    std::vector<std::shared_ptr<PeerDialer>> dialers;

    /// Takes a connection listener `listener` accepted: counts it and starts its Session.
    /// An io thread; never throws (a failure is logged and the connection closed).
    void accept(Pipe pipe, AcceptedPeer peer, std::size_t listener, bool passes_descriptors) noexcept;
    /// A new listener's index for ConnectionSlot::listener.
    std::size_t add_listener_slot();
    /// Registers a session (unless Stopped) and, if Admitted, counts it against every
    /// limit; otherwise the session is only told which limit refused it and closed.
    /// `descriptor` is its socket's: a number near RLIMIT_NOFILE means the process is
    /// nearly out.
    Admission admit(const std::shared_ptr<Session>& session, std::uint64_t id, const ConnectionSlot& slot,
                    int descriptor);
    /// Registers a session the server dialed (not counted against max_connections);
    /// false once stopped.
    bool admit_outbound(const std::shared_ptr<Session>& session, std::uint64_t id);
    /// Forgets a session (from Session::finish); `slot` when it was Admitted.
    void release(std::uint64_t id, const ConnectionSlot* slot) noexcept;
    /// The record of peer `name`, created (as accepted, `dialed` false) if new.
    std::shared_ptr<PeerRecord> peer_record(const std::string& name, bool dialed);

    // LinkServer::set_client_observer(). Its own mutex, held while the observer runs, so
    // that replacing the observer waits for a call in progress.
    std::mutex client_observer_mutex;
    LinkServer::ClientObserver client_observer;
    /// Tells the observer, if any, that client `name` connected or disconnected.
    void notify_client(const std::string& name, bool connected) noexcept;
};

}  // namespace mycelium::link::detail
