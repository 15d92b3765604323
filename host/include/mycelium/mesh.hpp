#pragma once
/// The mesh: one node of a topology, linked to every other node (docs/topology.md,
/// docs/topology.md "How nodes link", docs/wire-protocol.md "Node-to-node links").
///
/// A Mesh is what `mycelium-host --topology FILE --node NAME` runs besides its scripts:
/// - a link::LinkServer listening on the node's own endpoints: its Unix socket
///   (topology::socket_path, with the node's socket_mode) and, when the node has `port`
///   or `bind`, its TCP address; clients (tools, Mycelium's SDK) and peers connect there;
/// - one dialer per peer this node dials: of each pair of nodes, the one whose name
///   sorts first dials the other (if it has no route to it, the other one dials), over
///   topology::route_between (the Unix socket on the same host, moved to shared-memory
///   rings with SHM_REQUEST when the route is Shm, and TCP to another host). Dialers
///   redial with exponential backoff and jitter. The node offers rings to same-host
///   clients and peers when its `[nodes.shm]` enables them (ServerOptions::shm_*).
///
/// Every link between two nodes is symmetric: each side declares its node's interest
/// (Bus::watch_interest) with SUBSCRIBE/UNSUBSCRIBE and forwards only the types the other
/// side declared, never a frame that itself came from a peer, so a frame crosses at most
/// one node-to-node link. Frames from a peer are published on the local bus like any
/// publish (under a link::OriginScope with role Peer).
///
/// Asio stays in host/src/transport/; this header does not include it.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mycelium/bus.hpp"
#include "mycelium/endpoint.hpp"
#include "mycelium/link.hpp"
#include "mycelium/schema.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::mesh {

/// Construction options of a Mesh.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct MeshOptions {
    /// Server knobs. max_payload, handshake_timeout and max_connections are taken from
    /// the topology's `[limits]`, socket_mode from the node, send_queue_frames from its
    /// `queues.link_capacity`, slow_consumer and slow_consumer_wait from
    /// `[nodes.slow_consumer]`, legacy_layout from the node's `legacy_layout`, shm_enabled, shm_ring_bytes and shm_spin from
    /// `[nodes.shm]`; the other fields are used as given.
    link::ServerOptions server;
    /// First redial delay (doubles per failure, with jitter).
    std::chrono::milliseconds backoff_initial{100};
    /// Longest redial delay.
    std::chrono::milliseconds backoff_max{5'000};
    /// A dial that takes longer is abandoned and retried.
    std::chrono::milliseconds connect_timeout{5'000};
    /// Where to dial a peer instead of its topology route, by node name: for tests whose
    /// nodes listen on TCP port 0, and for addresses rewritten by NAT.
    std::map<std::string, link::Endpoint, std::less<>> peer_endpoints;
};

/// Whether node `a` dials node `b` in `spec` (false for a == b): the node whose name
/// sorts first dials, unless topology::route_between has no route from it to the other
/// (a local node without `host` seen from a remote one); then the other one dials; with no
/// route either way, nobody does. Throws std::out_of_range for an unknown node.
/// Thread safety: reentrant; safe on a shared const Spec.
bool dials(const topology::Spec& spec, std::string_view a, std::string_view b);

/// Where `from` dials `to`: the route of topology::route_between as an endpoint
/// (`unix:` for Unix and Shm routes, `tcp:` for Tcp). Throws std::out_of_range for an
/// unknown node, std::invalid_argument when there is no route or it is in-process.
/// Thread safety: reentrant; safe on a shared const Spec.
link::Endpoint dial_endpoint(const topology::Spec& spec, std::string_view from, std::string_view to);

/// One running node of a topology: its link server and its peer dialers.
///
/// Lifetime: the bus, the registry and the spec must outlive the Mesh; the destructor
/// calls stop(). Thread safety: every member function may be called from any thread
/// concurrently, except the destructor; none from inside a bus callback.
class Mesh {
public:
    /// Listens on the node's endpoints (creating socket_dir if needed) and starts dialing
    /// the peers this node dials. Throws std::invalid_argument when `self_node` is not in
    /// `spec` or a dial endpoint is unusable (a TCP peer with port 0 and no
    /// MeshOptions::peer_endpoints entry), std::system_error when a listener cannot bind
    /// (a live socket at the path, a port in use), std::filesystem::filesystem_error when
    /// socket_dir cannot be created.
    Mesh(Bus& bus, const schema::Registry& registry, const topology::Spec& spec, std::string_view self_node,
         MeshOptions options = {});
    /// stop(), then frees everything.
    ~Mesh();
    Mesh(const Mesh&) = delete;
    Mesh& operator=(const Mesh&) = delete;

    /// This node's name.
    const std::string& node() const noexcept { return self_; }
    /// The bound listeners, Unix first (a TCP port 0 replaced by the chosen port).
    std::vector<link::Endpoint> endpoints() const;
    /// The peers this node dials, by name, with where it dials them.
    const std::vector<std::pair<std::string, link::Endpoint>>& dialing() const noexcept { return dialing_; }
    /// Status of every peer link, dialed or accepted (link::LinkServer::peers()).
    std::vector<link::PeerStatus> peers() const;
    /// The server's counters (clients and peers together).
    link::LinkStats stats() const noexcept;
    /// The underlying server, for what this class does not wrap.
    link::LinkServer& server() noexcept { return *server_; }

    /// link::LinkServer::stop_intake(): nothing more is taken in; what is queued still leaves.
    void stop_intake() noexcept;
    /// link::LinkServer::stop_after_flush(): closes every link once its queue has left.
    link::LinkServer::Unsent stop_after_flush(std::chrono::steady_clock::time_point deadline) noexcept;
    /// Stops dialing, closes every link and client connection (ERROR shutting_down),
    /// removes the Unix socket file and joins the io threads. Idempotent.
    void stop() noexcept;

private:
    std::string self_;
    std::unique_ptr<link::LinkServer> server_;
    std::vector<std::pair<std::string, link::Endpoint>> dialing_;
};

}  // namespace mycelium::mesh
