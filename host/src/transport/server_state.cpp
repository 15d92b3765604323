// ServerState: admitting and releasing sessions, peer records, the client observer.

#include "server_state.hpp"

#include <asio/post.hpp>

#include <algorithm>

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

void ServerState::accept(Pipe pipe, std::string peer, bool passes_descriptors) noexcept {
    try {
        Counters::add(counters.accepted);
        const std::uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
        auto session = std::make_shared<Session>(*this, std::move(pipe), peer, id, passes_descriptors);
        asio::post(session->socket_executor(), [session] { session->start(); });
    } catch (const std::exception& e) {
        error_limited("cannot take a connection", "cannot take a connection from {}: {}", peer, e.what());
    }
}

bool ServerState::admit(const std::shared_ptr<Session>& session, std::uint64_t id, bool& counted) {
    std::lock_guard lock(mutex);
    if (stopped || intake_stopped.load(std::memory_order_relaxed)) return false;
    sessions.emplace(id, session);
    counted = active < options.max_connections;
    if (counted) ++active;
    return true;
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

void ServerState::release(std::uint64_t id, bool counted) noexcept {
    {
        std::lock_guard lock(mutex);
        sessions.erase(id);
        if (counted) --active;
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
