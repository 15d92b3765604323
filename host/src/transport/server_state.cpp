// ServerState: admitting and releasing sessions, peer records, the client observer.

#include "server_state.hpp"

#include <asio/post.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <climits>

#include "mycelium/codec.hpp"
#include "mycelium/log.hpp"
#include "session.hpp"

namespace mycelium::link::detail {

ServerState::ServerState(Bus& b, const schema::Registry& r, ServerOptions o)
    : bus(b),
      registry(r),
      packed_layouts(r),
      options(o),
      log(mycelium::log::get("link")),
      mesh_log(mycelium::log::get("mesh")),
      log_limits(options.log_interval) {
    options.max_payload = std::min({options.max_payload, schema::DEFAULT_MAX_PAYLOAD, bus.max_payload()});
    options.threads = std::max<std::size_t>(options.threads, 1);
    options.send_queue_frames = std::max<std::size_t>(options.send_queue_frames, 1);
    options.send_queue_bytes =
        std::max(options.send_queue_bytes, codec::frame_size(options.max_payload));
}

void ServerState::accept(Pipe pipe, AcceptedPeer peer, std::size_t listener, bool passes_descriptors) noexcept {
    try {
        Counters::add(counters.accepted);
        const std::uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
        auto session = std::make_shared<Session>(*this, std::move(pipe), std::move(peer.description), id,
                                                 passes_descriptors, std::nullopt,
                                                 ConnectionSlot{listener, std::move(peer.identity)});
        asio::post(session->socket_executor(), [session] { session->start(); });
    } catch (const std::exception& e) {
        error_limited("cannot take a connection", "cannot take a connection from {}: {}", peer.description, e.what());
    }
}

std::size_t ServerState::add_listener_slot() {
    std::lock_guard lock(mutex);
    listener_active.push_back(0);
    return listener_active.size() - 1;
}

namespace {

// Descriptors are allocated lowest first, so a new one at or above this number means
// that nearly every one below the limit is in use.
int descriptor_ceiling() noexcept {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return INT_MAX;
    const auto soft = static_cast<long long>(std::min<rlim_t>(limit.rlim_cur, INT_MAX));
    return static_cast<int>(std::max<long long>(soft - DESCRIPTOR_HEADROOM, 0));
}

}  // namespace

Admission ServerState::admit(const std::shared_ptr<Session>& session, std::uint64_t id, const ConnectionSlot& slot,
                             int descriptor) {
    const bool out_of_descriptors = descriptor >= descriptor_ceiling();
    std::lock_guard lock(mutex);
    if (stopped || intake_stopped.load(std::memory_order_relaxed)) return Admission::Stopped;
    sessions.emplace(id, session);
    if (out_of_descriptors) return Admission::OutOfDescriptors;
    if (active >= options.max_connections) return Admission::TooManyConnections;
    std::size_t& on_listener = listener_active.at(slot.listener);
    if (options.max_connections_per_listener != 0 && on_listener >= options.max_connections_per_listener)
        return Admission::TooManyOnListener;
    const auto client = client_active.find(slot.identity);
    if (options.max_connections_per_client != 0 && client != client_active.end() &&
        client->second >= options.max_connections_per_client)
        return Admission::TooManyFromClient;
    ++active;
    ++on_listener;
    ++client_active[slot.identity];
    return Admission::Admitted;
}

bool ServerState::admit_outbound(const std::shared_ptr<Session>& session, std::uint64_t id) {
    std::lock_guard lock(mutex);
    if (stopped || intake_stopped.load(std::memory_order_relaxed)) return false;
    sessions.emplace(id, session);
    return true;
}

std::shared_ptr<PeerRecord> ServerState::peer_record(const std::string& name, bool dialed) {
    std::lock_guard lock(mutex);
    auto& record = peers[name];
    if (!record) record = std::make_shared<PeerRecord>(name, dialed);
    return record;
}

void ServerState::release(std::uint64_t id, const ConnectionSlot* slot) noexcept {
    {
        std::lock_guard lock(mutex);
        sessions.erase(id);
        if (slot != nullptr) {
            --active;
            --listener_active[slot->listener];
            if (const auto client = client_active.find(slot->identity); client != client_active.end() &&
                                                                        --client->second == 0)
                client_active.erase(client);
        }
    }
    sessions_changed.notify_all();
}

void ServerState::notify_client(const std::string& name, bool connected) noexcept {
    try {
        std::lock_guard lock(client_observer_mutex);
        if (client_observer) client_observer(name, connected);
    } catch (const std::exception& e) {
        error_limited("client observer failed", "client observer failed for '{}': {}", name, e.what());
    } catch (...) {
        error_limited("client observer failed", "client observer failed for '{}'", name);
    }
}

}  // namespace mycelium::link::detail
