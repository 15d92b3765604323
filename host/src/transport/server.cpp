// LinkServer: io threads, listeners (one per endpoint, made by its transport), orderly stop.

#include <asio/post.hpp>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "mycelium/codec.hpp"
#include "mycelium/link.hpp"
#include "mycelium/link_protocol.hpp"
#include "peer_dialer.hpp"
#include "session.hpp"
#include "transport.hpp"

namespace mycelium::link {

// ---------------------------------------------------------------------------------------
// LinkServer
// ---------------------------------------------------------------------------------------

LinkServer::LinkServer(Bus& bus, const schema::Registry& registry, ServerOptions options)
    : state_(std::make_shared<detail::ServerState>(bus, registry, options)) {
    auto& s = *state_;
    s.work.emplace(asio::make_work_guard(s.io));
    try {
        for (std::size_t i = 0; i < s.options.threads; ++i) {
            s.threads.emplace_back([&s] {
                detail::mark_link_io_thread();  // never waits for room in a ring (io_thread.hpp)
                // Handlers catch their own exceptions; this is the last line of defence so
                // that one escaping handler does not stop the io thread.
                for (;;) {
                    try {
                        s.io.run();
                        return;
                    } catch (const std::exception& e) {
                        s.log->error("io thread: unhandled exception: {}", e.what());
                    }
                }
            });
        }
    } catch (...) {
        stop();
        throw;
    }
}

LinkServer::~LinkServer() {
    stop();
    if (!state_) return;
    // A cork (PublishBatch) on some thread may still hold one of our sessions; it must be
    // dropped while the io_context it belongs to exists. Ours go now, others' at their end.
    detail::release_thread_batch_holds(*state_);
    for (int waited_ms = 1; state_->batch_holds.load(std::memory_order_acquire) != 0; ++waited_ms) {
        if (waited_ms % 1000 == 0)
            state_->log->warn("stopping the link server: waiting for {} link(s) held by an open PublishBatch",
                              state_->batch_holds.load(std::memory_order_relaxed));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

namespace {

// What a listener writes to a connection it can only refuse (ListenContext).
std::vector<std::byte> out_of_descriptors_reply() {
    std::vector<std::byte> frame;
    (void)codec::append_frame(frame, control::ERROR,
                              encode_error(ErrorCode::TooManyConnections, "the host is out of file descriptors"));
    return frame;
}

}  // namespace

Endpoint LinkServer::listen(std::string_view endpoint) { return listen(parse_endpoint(endpoint)); }

Endpoint LinkServer::listen(const Endpoint& endpoint) {
    auto& s = *state_;
    {
        std::lock_guard lock(s.mutex);
        if (s.stopped) throw std::logic_error("LinkServer::listen after stop()");
    }
    const detail::Transport& transport = detail::transport_of(endpoint);
    const std::size_t slot = s.add_listener_slot();
    detail::ListenContext context{
        s.io,
        *s.log,
        s.options.socket_mode,
        [&s, slot, fds = transport.passes_descriptors](detail::Pipe pipe, detail::AcceptedPeer peer) {
            s.accept(std::move(pipe), std::move(peer), slot, fds);
        },
        s.options.log_interval,
        out_of_descriptors_reply(),
        [&s] { detail::Counters::add(s.counters.rejected_out_of_descriptors); }};
    Endpoint bound = endpoint;
    std::unique_ptr<detail::Listener> listener = transport.listen(context, bound);
    s.log->info("listening on {}", to_string(bound));
    listener->start();
    std::lock_guard lock(s.mutex);
    s.endpoints.push_back(bound);
    s.listeners.push_back(std::move(listener));
    return bound;
}

std::vector<Endpoint> LinkServer::endpoints() const {
    std::lock_guard lock(state_->mutex);
    return state_->endpoints;
}

namespace {

std::vector<std::shared_ptr<detail::Session>> live_sessions(detail::ServerState& s) {
    std::vector<std::shared_ptr<detail::Session>> sessions;
    std::lock_guard lock(s.mutex);
    for (auto& [id, weak] : s.sessions) {
        if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
    return sessions;
}

/// Closes every listener on an io thread, where their acceptors run.
void close_listeners_later(detail::ServerState& s) {
    asio::post(s.io, [&s] {
        std::lock_guard listeners_lock(s.mutex);
        for (auto& listener : s.listeners) listener->close();
    });
}

}  // namespace

void LinkServer::stop_intake() noexcept {
    if (!state_) return;
    auto& s = *state_;
    std::vector<std::shared_ptr<detail::PeerDialer>> dialers;
    {
        std::lock_guard lock(s.mutex);
        if (s.stopped || s.intake_stopped.exchange(true)) return;
        dialers = s.dialers;
    }
    for (auto& dialer : dialers) dialer->close();
    try {
        close_listeners_later(s);
        // A session lives as long as a handler of it is pending; one that reads nothing
        // more may have none, so the server holds it until it closes.
        auto sessions = live_sessions(s);
        for (auto& session : sessions) session->stop_intake();
        std::lock_guard lock(s.mutex);
        s.held_at_stop = std::move(sessions);
    } catch (const std::exception& e) {
        s.log->error("stopping intake: {}", e.what());
    }
}

LinkServer::Unsent LinkServer::stop_after_flush(std::chrono::steady_clock::time_point deadline) noexcept {
    if (!state_) return {};
    auto& s = *state_;
    stop_intake();
    try {
        const auto left = std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                     deadline - std::chrono::steady_clock::now()));
        for (auto& session : live_sessions(s)) session->shut_down_after_flush(left);
        std::unique_lock lock(s.mutex);
        s.sessions_changed.wait_until(lock, deadline, [&] { return s.sessions.empty(); });
    } catch (const std::exception& e) {
        s.log->error("flushing the connections: {}", e.what());
    }
    // Whoever is still open had until the deadline: close them now, counting what they hold.
    stop_within(std::chrono::milliseconds(100));
    std::lock_guard lock(s.mutex);
    return s.unsent;
}

void LinkServer::stop() noexcept {
    if (state_) stop_within(state_->options.close_linger + std::chrono::milliseconds(500));
}

void LinkServer::stop_within(std::chrono::milliseconds linger) noexcept {
    auto& s = *state_;
    std::vector<std::shared_ptr<detail::Session>> sessions;
    std::vector<std::shared_ptr<detail::PeerDialer>> dialers;
    {
        std::lock_guard lock(s.mutex);
        if (s.stopped && s.threads.empty()) return;
        s.stopped = true;
        dialers = s.dialers;
    }
    // Dialers first, so that no link is redialed while the sessions close.
    for (auto& dialer : dialers) dialer->close();
    try {
        close_listeners_later(s);
        for (auto& session : live_sessions(s)) session->shut_down();
        std::unique_lock lock(s.mutex);
        s.sessions_changed.wait_for(lock, linger, [&] { return s.sessions.empty(); });
    } catch (const std::exception& e) {
        s.log->error("stopping the link server: {}", e.what());
    }
    s.work.reset();
    s.io.stop();
    for (auto& thread : s.threads) {
        if (thread.joinable()) thread.join();
    }
    s.threads.clear();
    // No io thread runs any more: finish the sessions that did not close in time here, so
    // their bus callbacks stop before the state goes away.
    sessions = live_sessions(s);
    for (auto& session : sessions) session->finish();
    sessions.clear();
    {
        std::lock_guard lock(s.mutex);
        sessions = std::move(s.held_at_stop);
    }
    sessions.clear();
    for (auto& dialer : dialers) dialer->close_now();
    for (auto& listener : s.listeners) listener->close();
}

void LinkServer::connect_peer(std::string peer_name, const Endpoint& endpoint, PeerOptions options) {
    auto& s = *state_;
    if (peer_name.empty()) throw std::invalid_argument("connect_peer: empty peer name");
    if (const auto why = detail::transport_of(endpoint).cannot_dial; why != nullptr) {
        if (const auto reason = why(endpoint)) throw std::invalid_argument("connect_peer: " + *reason + " for peer '" + peer_name + "'");
    }
    (void)encode_hello(Hello{control::PROTOCOL_VERSION, Role::Peer, options.self_name});  // validates the name
    std::shared_ptr<detail::PeerDialer> dialer;
    {
        std::lock_guard lock(s.mutex);
        if (s.stopped) throw std::logic_error("LinkServer::connect_peer after stop()");
        auto& record = s.peers[peer_name];
        if (record && record->dialed) throw std::invalid_argument("connect_peer: peer '" + peer_name + "' is already dialed");
        // A record created by an earlier inbound link of that peer is replaced: from now on
        // this server dials it.
        record = std::make_shared<detail::PeerRecord>(peer_name, true);
        record->endpoint = to_string(endpoint);
        dialer = std::make_shared<detail::PeerDialer>(s, record, endpoint, std::move(options));
        s.dialers.push_back(dialer);
    }
    s.mesh_log->info("peer '{}': dialing {}", peer_name, to_string(endpoint));
    dialer->start();
}

std::uint64_t LinkServer::queued_frames() const {
    std::vector<std::shared_ptr<detail::Session>> sessions;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [id, weak] : state_->sessions)
            if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
    std::uint64_t total = 0;
    for (const auto& session : sessions) total += session->queued_frames();
    return total;
}

std::vector<std::pair<std::string, std::vector<ReportedFamily>>> LinkServer::client_metrics() const {
    std::vector<std::shared_ptr<detail::Session>> sessions;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [id, weak] : state_->sessions)
            if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
    std::vector<std::pair<std::string, std::vector<ReportedFamily>>> out;
    for (const auto& session : sessions) {
        auto [client, snapshot] = session->reported_metrics();
        if (snapshot) out.emplace_back(std::move(client), *snapshot);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
}

std::vector<ClientDrops> LinkServer::client_drops() const {
    std::vector<std::shared_ptr<detail::Session>> sessions;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [id, weak] : state_->sessions)
            if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
    std::vector<ClientDrops> out;
    for (const auto& session : sessions) {
        ClientDrops bad = session->drops();
        if (bad.unknown_type != 0 || bad.size_mismatch != 0 || bad.invalid_payload != 0 || bad.slow_consumer != 0)
            out.push_back(std::move(bad));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.client < b.client; });
    return out;
}

std::vector<PeerStatus> LinkServer::peers() const {
    std::vector<std::shared_ptr<detail::PeerRecord>> records;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [name, record] : state_->peers) records.push_back(record);
    }
    std::vector<PeerStatus> out;
    out.reserve(records.size());
    const auto get = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
    for (const auto& r : records) {
        PeerStatus p;
        p.name = r->name;
        p.dialed = r->dialed;
        {
            std::lock_guard lock(r->mutex);
            p.endpoint = r->endpoint;
        }
        p.connected = r->connected.load(std::memory_order_relaxed);
        p.connects = get(r->connects);
        p.reconnects = p.connects > 0 ? p.connects - 1 : 0;
        p.connect_failures = get(r->connect_failures);
        p.frames_in = get(r->frames_in);
        p.frames_out = get(r->frames_out);
        p.bytes_in = get(r->bytes_in);
        p.bytes_out = get(r->bytes_out);
        out.push_back(std::move(p));
    }
    return out;
}

void LinkServer::set_client_observer(ClientObserver observer) {
    std::lock_guard lock(state_->client_observer_mutex);
    state_->client_observer = std::move(observer);
}

LinkStats LinkServer::stats() const noexcept {
    const auto& c = state_->counters;
    LinkStats out;
#define MYCELIUM_LINK_COUNTER_COPY(field, family, label, doc) out.field = c.field.load(std::memory_order_relaxed);
    MYCELIUM_LINK_COUNTERS(MYCELIUM_LINK_COUNTER_COPY)
#undef MYCELIUM_LINK_COUNTER_COPY
    std::lock_guard lock(state_->mutex);
    out.active = state_->active;
    return out;
}

}  // namespace mycelium::link
