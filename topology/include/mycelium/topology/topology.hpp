#pragma once
/// The topology model: which nodes exist, which services each one hosts, where each one
/// listens, and how a frame travels between two of them (docs/topology.md).
///
/// `load_file` / `load_string` parse a `topology.toml` (Mycelium's shape plus this
/// project's sections, docs/topology.md) into a plain `Spec` and validate all of it;
/// `route_between` picks the transport between two nodes. Nothing here opens a socket,
/// starts a process or touches Python: the only I/O is reading the topology file.
///
/// Thread safety: a loaded Spec is an immutable value; concurrent reads are safe. Every
/// free function is reentrant.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mycelium/topology/policies.hpp"
#include "mycelium/wire_limits.hpp"

namespace mycelium::topology {

/// `socket_dir` when the file gives none (Mycelium's default).
inline constexpr std::string_view DEFAULT_SOCKET_DIR = "/tmp/mycelium";
/// Permissions of a node's Unix socket when `socket_mode` is absent: owner and group.
inline constexpr std::uint32_t DEFAULT_SOCKET_MODE = 0660;
/// Host a node binds its TCP listener to when `bind` gives none and the node is local.
inline constexpr std::string_view DEFAULT_BIND_HOST = "127.0.0.1";
/// Largest payload the wire protocol allows; `[limits] max_payload` may only lower it.
inline constexpr std::size_t MAX_PAYLOAD_LIMIT = wire::MAX_PAYLOAD;
/// Smallest shared-memory ring a node may ask for (one page).
inline constexpr std::size_t MIN_RING_BYTES = wire::MIN_CONFIGURED_RING_BYTES;
/// Largest shared-memory ring (1 GiB).
inline constexpr std::size_t MAX_RING_BYTES = wire::MAX_RING_CAPACITY;
/// Longest bounded spin before a shm consumer parks (10 ms): longer spins starve a 2-core host.
inline constexpr std::chrono::microseconds MAX_SPIN{10'000};
/// Longest wait for room in a full shared-memory ring (`[nodes.shm] wait_ms`): 60 s.
inline constexpr std::chrono::milliseconds MAX_SHM_WAIT{60'000};
/// Largest queue capacity, in frames.
inline constexpr std::size_t MAX_QUEUE_CAPACITY = std::size_t{1} << 24;
/// Longest Unix socket path: sockaddr_un::sun_path holds 108 bytes including the NUL.
inline constexpr std::size_t MAX_UNIX_PATH = 107;

/// A place in a topology file. `line` and `column` are 1-based; 0 means "no position"
/// (a file that cannot be read, a Spec built in code).
struct SourceLocation {
    std::string file;  ///< the path as given to load_file, or load_string's source_name
    int line = 0;      ///< 1-based; 0 = no position
    int column = 0;    ///< 1-based; 0 = no position
};

/// A topology that cannot be loaded. Modelled on toml++'s `parse_error`: a description
/// plus a position. what() reads
/// `unknown key 'sokcet_dir', did you mean 'socket_dir'? (at line 1, column 1 of 'mesh.toml')`,
/// or `description (in 'mesh.toml')` when there is no line.
/// Thread safety: distinct objects safe; shared objects safe for const use.
class TopologyError : public std::runtime_error {
public:
    /// Builds the error and its what() text from a description and a position.
    TopologyError(std::string description, SourceLocation where);

    /// The problem without the position: `duplicate node name 'trading' ...`.
    const std::string& description() const noexcept { return description_; }
    /// The topology file's path or source name.
    const std::string& file() const noexcept { return where_.file; }
    /// 1-based line, or 0 when the error has no position.
    int line() const noexcept { return where_.line; }
    /// 1-based column, or 0 when the error has no position.
    int column() const noexcept { return where_.column; }
    /// File, line and column together.
    const SourceLocation& where() const noexcept { return where_; }

private:
    std::string description_;
    SourceLocation where_;
};

/// A problem that does not stop the load: an unknown key (a typo, or a key of a newer
/// version), ignored. text() reads like TopologyError::what():
/// `unknown key 'sokcet_dir', did you mean 'socket_dir'? (at line 1, column 1 of 'mesh.toml')`.
struct TopologyWarning {
    std::string description;
    SourceLocation where;

    /// The description and the position, as one line.
    std::string text() const;
};

/// How a topology file is loaded.
struct LoadOptions {
    /// Unknown keys are errors instead of warnings (`--strict`, `Topology.load(strict=True)`).
    bool strict = false;
};

/// A host and a port: `127.0.0.1:9000`, `[::1]:9000`, `db.internal:9100`.
struct SocketAddress {
    std::string host;        ///< without IPv6 brackets
    std::uint16_t port = 0;  ///< 0 = any free port (listeners only)

    /// Member-wise equality.
    friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
};

/// Parses `host:port` (IPv6 hosts in brackets). Returns nullopt when the text is not an
/// address, the host is empty or malformed, or the port is missing or outside 0-65535.
/// Thread safety: reentrant.
std::optional<SocketAddress> parse_socket_address(std::string_view text);
/// Formats an address back to `host:port`, bracketing IPv6 hosts.
/// Thread safety: reentrant.
std::string to_string(const SocketAddress& address);
/// True for the spellings of "this host": empty, `localhost`, `127.0.0.1`, `::1`.
/// Thread safety: reentrant.
bool is_local_host(std::string_view host) noexcept;

/// How a node's explicit `endpoint` is reached.
enum class EndpointKind : std::uint8_t {
    Unix,  ///< `addr` is a Unix socket path
    Tcp,   ///< `addr` is `host:port`
};

/// `endpoint = { kind = "unix"|"tcp", addr = "..." }`: where peers connect to a node,
/// overriding `socket_dir/<node>.sock` (unix) or `host`/`port` (tcp).
struct Endpoint {
    EndpointKind kind = EndpointKind::Unix;  ///< `kind`
    std::string addr;            ///< as written
    std::filesystem::path path;  ///< Unix: the socket path, relative paths resolved; empty without `addr` (socket_dir/<node>.sock)
    SocketAddress address;       ///< Tcp: `addr` parsed
};

/// `[nodes.queues]`: bounds of a node's subscriber queues and of its per-link send queues.
struct QueueConfig {
    std::size_t capacity = 1024;       ///< frames per subscriber queue
    /// Links' slow-consumer policy for clients and peers when `[nodes.slow_consumer]`
    /// does not say (the old way; "fail" reads as disconnect, with a warning).
    QueuePolicy policy = QueuePolicy::Block;
    std::size_t link_capacity = 65536;  ///< frames per node-to-node (or client) send queue
};

/// `[nodes.shm]`: shared-memory rings to same-host peers (docs/topology.md).
struct ShmConfig {
    bool enabled = false;                  ///< used only when both sides enable it
    std::size_t ring_bytes = 1u << 20;     ///< per direction; a power of two, >= 4096
    std::chrono::microseconds spin{50};    ///< bounded spin before parking; 0 = park at once
    /// The old name of `[nodes.slow_consumer] wait_ms`, which wins when both are given.
    std::chrono::milliseconds wait{1'000};
};

/// `[nodes.slow_consumer]`: the slow-consumer policy per kind of connection (docs/topology.md).
struct SlowConsumerConfig {
    SlowConsumer legacy = SlowConsumer::DropOldest;  ///< handshake only, no HELLO (Mycelium's SDK)
    SlowConsumer client = SlowConsumer::Disconnect;  ///< HELLO role=client
    SlowConsumer peer = SlowConsumer::Disconnect;    ///< other nodes
    /// `wait_ms`: how long `block` pauses producers (`[nodes.shm] wait_ms` when absent).
    std::chrono::milliseconds wait{1'000};
};

/// When the supervisor restarts a worker process.
enum class RestartPolicy : std::uint8_t {
    Always,     ///< after any exit
    OnFailure,  ///< after a non-zero exit status or a signal
    Never,
};

/// `[[nodes.workers]]`: a Python script the node runs and supervises as a child process
/// (docs/workers.md).
struct Worker {
    std::string name;                  ///< unique within its node; names its logger
    std::filesystem::path script;      ///< relative paths resolved against the topology folder
    std::vector<std::string> args;     ///< command-line arguments after the script
    RestartPolicy restart = RestartPolicy::OnFailure;  ///< `restart`
    std::chrono::milliseconds backoff_initial{100};    ///< first restart delay
    std::chrono::milliseconds backoff_max{30'000};     ///< delay cap, >= backoff_initial
    double backoff_multiplier = 2.0;   ///< >= 1.0
    std::uint32_t max_restarts = 5;    ///< restarts allowed within one restart_window
    std::chrono::seconds restart_window{60};        ///< `restart_window_s`
    std::chrono::milliseconds stop_grace{5'000};  ///< SIGTERM, then SIGKILL after this
    SourceLocation source;             ///< the `[[nodes.workers]]` header
};

/// `[limits]`: wire-protocol limits shared by every node of the topology.
struct Limits {
    std::size_t max_payload = MAX_PAYLOAD_LIMIT;         ///< bytes, 1 .. 4 MiB
    std::chrono::milliseconds handshake_timeout{5'000};  ///< to receive the client's digest
    std::uint32_t max_connections = 1024;                ///< per node
    std::uint32_t max_connections_per_listener = 0;      ///< per endpoint of a node; 0: none
    std::uint32_t max_connections_per_client = 256;      ///< per uid or remote address; 0: none
    std::chrono::milliseconds idle_timeout{60'000};      ///< HELLO clients and peers; 0: never
    std::size_t max_metrics_bytes = 256 * 1024;          ///< one client's METRICS frame
    std::size_t max_metrics_series = 5'000;              ///< series in one client's METRICS frame
};

/// One `[[nodes]]` entry: a host process with its services, listeners and workers.
struct Node {
    std::string name;                   ///< unique; letters, digits, '_', '-', '.'
    std::vector<std::string> services;  ///< each service is on exactly one node
    std::string host;                   ///< as written; empty when absent
    std::optional<std::uint16_t> port;  ///< TCP port peers connect to
    std::optional<Endpoint> endpoint;   ///< explicit endpoint, overrides socket path / host:port
    /// TCP listener: present when `port` or `bind` is given. Host defaults to 127.0.0.1
    /// for a local node and to `host` for a remote one; port defaults to `port`.
    std::optional<SocketAddress> bind;
    std::uint32_t socket_mode = DEFAULT_SOCKET_MODE;  ///< permissions of the Unix socket
    std::vector<std::filesystem::path> scripts;       ///< in-process Python scripts
    std::optional<std::filesystem::path> contracts;   ///< the node's own, else the top level's
    std::optional<SocketAddress> metrics;             ///< Prometheus `/metrics` listener
    QueueConfig queues;                 ///< `[nodes.queues]`
    ShmConfig shm;                      ///< `[nodes.shm]`
    SlowConsumerConfig slow_consumer;   ///< `[nodes.slow_consumer]` (and `queues.policy`)
    LegacyLayout legacy_layout = LegacyLayout::Packed;  ///< `legacy_layout`
    TrustPayloads trust_payloads = TrustPayloads::None;  ///< `trust_payloads`
    std::vector<Worker> workers;        ///< `[[nodes.workers]]`, in file order
    SourceLocation source;              ///< the `[[nodes]]` header

    /// True when the node runs on this host (`host` absent, localhost or a loopback address).
    bool is_local() const noexcept { return is_local_host(host); }
    /// True when `service` is one of this node's services.
    bool has_service(std::string_view service) const noexcept;
};

/// A whole topology file, validated.
struct Spec {
    std::string source_name;                                 ///< file path or source name
    std::filesystem::path base_dir;                          ///< relative paths resolve here
    std::filesystem::path socket_dir{DEFAULT_SOCKET_DIR};
    std::optional<std::filesystem::path> contracts;          ///< top-level `contracts`
    std::uint32_t socket_mode = DEFAULT_SOCKET_MODE;         ///< top-level default
    Limits limits;                                           ///< `[limits]`
    std::vector<Node> nodes;                                 ///< in file order, at least one
    std::vector<TopologyWarning> warnings;                   ///< unknown keys, in file order (none when strict)
};

/// Reads and validates a topology file. Relative paths inside it resolve against the
/// file's folder (made absolute). Throws TopologyError on an unreadable file, a TOML
/// syntax error (with toml++'s position) or any validation failure (docs/topology.md).
/// An unknown key is a warning in Spec::warnings, or an error with `options.strict`.
/// Thread safety: reentrant.
Spec load_file(const std::filesystem::path& path, const LoadOptions& options = {});

/// Parses and validates topology text. `source_name` stands for the file in errors;
/// relative paths resolve against `base_dir` (left relative when it is empty).
/// Throws TopologyError like load_file.
/// Thread safety: reentrant.
Spec load_string(std::string_view toml, std::string source_name,
                 std::filesystem::path base_dir = {}, const LoadOptions& options = {});

/// The node called `name`, or nullptr. The pointer lives as long as `spec`.
/// Thread safety: reentrant; safe on a shared const Spec.
const Node* find_node(const Spec& spec, std::string_view name) noexcept;
/// The node that hosts `service`, or nullptr.
/// Thread safety: reentrant; safe on a shared const Spec.
const Node* node_of_service(const Spec& spec, std::string_view service) noexcept;

/// The Unix socket a node listens on: its unix `endpoint` path if it has one, else
/// `socket_dir/<name>.sock`.
/// Thread safety: reentrant.
std::filesystem::path socket_path(const Spec& spec, const Node& node);
/// Same, by node name. Throws std::out_of_range when no node has that name.
std::filesystem::path socket_path(const Spec& spec, std::string_view node_name);

/// True when two nodes run on the same machine: both local, or the same `host` text
/// (compared case-insensitively).
/// Thread safety: reentrant.
bool same_host(const Node& a, const Node& b) noexcept;

/// The transport a frame takes from one node to another.
enum class RouteKind : std::uint8_t {
    InProcess,  ///< same node: the bus
    Shm,        ///< same host, both sides enable shm: rings set up over `socket_path`
    Unix,       ///< same host: the destination's Unix socket
    Tcp,        ///< another host: `host`:`port`
};

/// Where and how to reach a destination node.
struct Route {
    RouteKind kind = RouteKind::InProcess;
    std::string node;                   ///< the destination node's name
    std::filesystem::path socket_path;  ///< Shm and Unix
    std::string host;                   ///< Tcp
    std::uint16_t port = 0;             ///< Tcp

    /// Member-wise equality.
    friend bool operator==(const Route&, const Route&) = default;
};

/// Chooses the route from `from` to `to`, each a node name or, failing that, a service
/// name. Routes follow `host`, as in Mycelium (a node's `endpoint` is where clients
/// connect): same node: InProcess; same host: Shm when both nodes enable shm, else Unix
/// (the destination's unix endpoint, else socket_dir/<node>.sock); another host: Tcp to
/// the destination's `host` and `port` (its tcp endpoint when it gives no port).
/// Throws std::out_of_range for an unknown node or service, and std::invalid_argument
/// when the destination is on another host but has no address reachable from there (a
/// local node without an explicit `host`).
/// Thread safety: reentrant; safe on a shared const Spec.
Route route_between(const Spec& spec, std::string_view from, std::string_view to);

/// Same, between two nodes of `spec` given by reference: no lookup by name, so a caller
/// that walks every pair pays O(1) per pair, not O(nodes). Throws std::invalid_argument
/// like the overload above.
/// Thread safety: reentrant; safe on a shared const Spec.
Route route_between(const Spec& spec, const Node& from, const Node& to);

/// How many ordered pairs of distinct nodes take each route: what route_between gives
/// over every pair, counted per host instead of per pair (O(nodes log hosts)), so a
/// topology of thousands of nodes is summarised without walking its millions of pairs.
struct RouteCounts {
    std::size_t pairs = 0;     ///< ordered pairs of distinct nodes: n * (n - 1)
    std::size_t shm = 0;       ///< RouteKind::Shm
    std::size_t unix_socket = 0;  ///< RouteKind::Unix (`unix` is a macro under GNU C++)
    std::size_t tcp = 0;       ///< RouteKind::Tcp
    /// Pairs whose destination is a local node without an address and whose source is on
    /// another host: route_between throws; the link is dialled from the other side. The
    /// other direction of such a pair is always a Tcp route (the source has a host and a
    /// port), so no pair is unreachable both ways.
    std::size_t one_way = 0;

    /// Member-wise equality.
    friend bool operator==(const RouteCounts&, const RouteCounts&) = default;
};

/// The RouteCounts of `spec` (see there).
/// Thread safety: reentrant; safe on a shared const Spec.
RouteCounts count_routes(const Spec& spec);

/// `"unix"` / `"tcp"`.
std::string_view to_string(EndpointKind kind) noexcept;
/// `"always"` / `"on-failure"` / `"never"`.
std::string_view to_string(RestartPolicy policy) noexcept;
/// `"in_process"` / `"shm"` / `"unix"` / `"tcp"`.
std::string_view to_string(RouteKind kind) noexcept;

}  // namespace mycelium::topology
