// Mesh: a topology node = a LinkServer on the node's endpoints + a dialer per peer it
// dials. The protocol work (interest, forwarding, redials) is in session.cpp and
// peer_dialer.cpp; this file only turns the topology into listen() and connect_peer().

#include "mycelium/mesh.hpp"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "mycelium/log.hpp"

namespace mycelium::mesh {

namespace {

const topology::Node& node_named(const topology::Spec& spec, std::string_view name) {
    const topology::Node* node = topology::find_node(spec, name);
    if (node == nullptr) throw std::out_of_range("no node '" + std::string(name) + "' in '" + spec.source_name + "'");
    return *node;
}

bool has_route(const topology::Spec& spec, std::string_view from, std::string_view to) {
    try {
        (void)topology::route_between(spec, from, to);
        return true;
    } catch (const std::invalid_argument&) {
        return false;
    }
}

}  // namespace

bool dials(const topology::Spec& spec, std::string_view a, std::string_view b) {
    const topology::Node& na = node_named(spec, a);
    const topology::Node& nb = node_named(spec, b);
    if (&na == &nb) return false;
    const bool a_first = na.name < nb.name;
    const std::string_view first = a_first ? na.name : nb.name;
    const std::string_view second = a_first ? nb.name : na.name;
    // The rule must give the same answer on both nodes: it depends on the spec only.
    const std::string_view dialer = has_route(spec, first, second) ? first
                                    : has_route(spec, second, first) ? second
                                                                     : std::string_view{};
    return dialer == na.name;
}

link::Endpoint dial_endpoint(const topology::Spec& spec, std::string_view from, std::string_view to) {
    const topology::Route route = topology::route_between(spec, from, to);
    link::Endpoint ep;
    switch (route.kind) {
        case topology::RouteKind::InProcess:
            throw std::invalid_argument("node '" + std::string(from) + "' does not dial itself");
        case topology::RouteKind::Shm:  // shared memory is set up over the Unix socket
        case topology::RouteKind::Unix:
            ep.scheme = "unix";
            ep.path = route.socket_path.string();
            break;
        case topology::RouteKind::Tcp:
            ep.scheme = "tcp";
            ep.host = route.host;
            ep.port = route.port;
            break;
    }
    return ep;
}

Mesh::Mesh(Bus& bus, const schema::Registry& registry, const topology::Spec& spec, std::string_view self_node,
           MeshOptions options)
    : self_(self_node) {
    const topology::Node* self = topology::find_node(spec, self_node);
    if (self == nullptr)
        throw std::invalid_argument("node '" + self_ + "' is not defined in '" + spec.source_name + "'");

    link::ServerOptions so = options.server;
    so.max_payload = std::min(so.max_payload, spec.limits.max_payload);  // the contracts may allow less
    so.handshake_timeout = spec.limits.handshake_timeout;
    so.max_connections = spec.limits.max_connections;
    so.max_connections_per_listener = spec.limits.max_connections_per_listener;
    so.max_connections_per_client = spec.limits.max_connections_per_client;
    so.idle_timeout = spec.limits.idle_timeout;
    so.max_metrics_bytes = spec.limits.max_metrics_bytes;
    so.max_metrics_series = spec.limits.max_metrics_series;
    so.socket_mode = self->socket_mode;
    so.send_queue_frames = self->queues.link_capacity;
    so.slow_consumer = {.legacy = self->slow_consumer.legacy,
                        .client = self->slow_consumer.client,
                        .peer = self->slow_consumer.peer};
    so.slow_consumer_wait = self->slow_consumer.wait;
    so.legacy_layout = self->legacy_layout;
    so.trust_payloads = self->trust_payloads;
    // Shared memory is offered to same-host clients and peers when this node enables it.
    so.shm_enabled = self->shm.enabled;
    so.shm_ring_bytes = self->shm.ring_bytes;
    so.shm_spin = self->shm.spin;

    for (const auto& [name, ep] : options.peer_endpoints) {
        if (topology::find_node(spec, name) == nullptr || name == self_)
            throw std::invalid_argument("a peer endpoint is given for '" + name + "', which is not another node of '" +
                                        spec.source_name + "'");
    }
    // Work out every dial before anything listens, so a bad topology throws cleanly.
    for (const topology::Node& other : spec.nodes) {
        if (other.name == self_ || !dials(spec, self_, other.name)) continue;
        link::Endpoint ep;
        if (auto it = options.peer_endpoints.find(other.name); it != options.peer_endpoints.end()) {
            ep = it->second;
        } else {
            ep = dial_endpoint(spec, self_, other.name);
        }
        if (ep.scheme == "tcp" && ep.port == 0)
            throw std::invalid_argument("node '" + self_ + "' cannot dial node '" + other.name +
                                        "': its TCP port is 0 (give the address it bound with --peer NAME=ENDPOINT)");
        dialing_.emplace_back(other.name, std::move(ep));
    }

    // Only the nodes that dial this one may say HELLO role=peer here.
    so.accepted_peers.clear();
    for (const topology::Node& other : spec.nodes)
        if (other.name != self_ && dials(spec, other.name, self_)) so.accepted_peers.push_back(other.name);

    server_ = std::make_unique<link::LinkServer>(bus, registry, so);
    try {
        const std::filesystem::path path = topology::socket_path(spec, *self);
        if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
        link::Endpoint unix_ep;
        unix_ep.scheme = "unix";
        unix_ep.path = path.string();
        server_->listen(unix_ep);
        if (self->bind) {
            link::Endpoint tcp_ep;
            tcp_ep.scheme = "tcp";
            tcp_ep.host = self->bind->host;
            tcp_ep.port = self->bind->port;
            server_->listen(tcp_ep);
        }
        for (const auto& [name, ep] : dialing_) {
            link::PeerOptions po;
            po.self_name = self_;
            po.backoff_initial = options.backoff_initial;
            po.backoff_max = options.backoff_max;
            po.connect_timeout = options.connect_timeout;
            // Both nodes enable shared memory on this host: the route is Shm, set up over
            // the Unix socket (the far node refuses if it thinks otherwise).
            po.shm = has_route(spec, self_, name) && topology::route_between(spec, self_, name).kind == topology::RouteKind::Shm;
            po.shm_ring_bytes = static_cast<std::uint32_t>(std::min(self->shm.ring_bytes, wire::MAX_RING_CAPACITY));
            server_->connect_peer(name, ep, po);
        }
    } catch (...) {
        server_->stop();
        throw;
    }
    mycelium::log::get("mesh")->info("node '{}': {} peer(s) in the topology, dialing {}", self_, spec.nodes.size() - 1,
                                     dialing_.size());
}

Mesh::~Mesh() { stop(); }

std::vector<link::Endpoint> Mesh::endpoints() const { return server_->endpoints(); }

std::vector<link::PeerStatus> Mesh::peers() const { return server_->peers(); }

link::LinkStats Mesh::stats() const noexcept { return server_->stats(); }

void Mesh::stop_intake() noexcept {
    if (server_) server_->stop_intake();
}

link::LinkServer::Unsent Mesh::stop_after_flush(std::chrono::steady_clock::time_point deadline) noexcept {
    return server_ ? server_->stop_after_flush(deadline) : link::LinkServer::Unsent{};
}

void Mesh::stop() noexcept {
    if (server_) server_->stop();
}

}  // namespace mycelium::mesh
