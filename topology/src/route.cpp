#include <algorithm>
#include <cctype>
#include <map>
#include <stdexcept>

#include "mycelium/topology/topology.hpp"
#include "detail.hpp"

namespace mycelium::topology {
namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// A node name wins over a service of the same name: names are what the command line uses.
const Node& resolve(const Spec& spec, std::string_view name_or_service) {
    if (const Node* node = find_node(spec, name_or_service)) return *node;
    if (const Node* node = node_of_service(spec, name_or_service)) return *node;
    throw std::out_of_range("topology '" + spec.source_name + "' has no node or service '" +
                            std::string(name_or_service) + "'");
}

}  // namespace

bool Node::has_service(std::string_view service) const noexcept {
    return std::find(services.begin(), services.end(), service) != services.end();
}

const Node* find_node(const Spec& spec, std::string_view name) noexcept {
    const auto it = std::find_if(spec.nodes.begin(), spec.nodes.end(),
                                 [&](const Node& n) { return n.name == name; });
    return it == spec.nodes.end() ? nullptr : &*it;
}

const Node* node_of_service(const Spec& spec, std::string_view service) noexcept {
    const auto it = std::find_if(spec.nodes.begin(), spec.nodes.end(),
                                 [&](const Node& n) { return n.has_service(service); });
    return it == spec.nodes.end() ? nullptr : &*it;
}

std::filesystem::path socket_path(const Spec& spec, const Node& node) {
    if (node.endpoint && node.endpoint->kind == EndpointKind::Unix && !node.endpoint->path.empty())
        return node.endpoint->path;
    return spec.socket_dir / (node.name + ".sock");
}

std::filesystem::path socket_path(const Spec& spec, std::string_view node_name) {
    const Node* node = find_node(spec, node_name);
    if (node == nullptr)
        throw std::out_of_range("topology '" + spec.source_name + "' has no node '" +
                                std::string(node_name) + "'");
    return socket_path(spec, *node);
}

std::string detail::host_key(const Node& node) {
    if (node.is_local()) return {};
    std::string key = node.host;
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return key;
}

bool same_host(const Node& a, const Node& b) noexcept {
    if (a.is_local() || b.is_local()) return a.is_local() && b.is_local();
    return iequals(a.host, b.host);
}

Route route_between(const Spec& spec, std::string_view from, std::string_view to) {
    return route_between(spec, resolve(spec, from), resolve(spec, to));
}

Route route_between(const Spec& spec, const Node& source, const Node& target) {
    Route route;
    route.node = target.name;
    if (&source == &target) {
        route.kind = RouteKind::InProcess;
        return route;
    }
    // As in Mycelium, `endpoint` is where clients connect; nodes follow `host`.
    if (same_host(source, target)) {
        route.kind = source.shm.enabled && target.shm.enabled ? RouteKind::Shm : RouteKind::Unix;
        route.socket_path = socket_path(spec, target);
        return route;
    }
    // A local node's host is "this host" only from this host's point of view: a peer on
    // another machine cannot use it.
    if (target.is_local())
        throw std::invalid_argument("node '" + target.name + "' has no host and port that node '" +
                                    source.name + "' on host '" + source.host +
                                    "' can reach; give it 'host' and 'port'");
    route.kind = RouteKind::Tcp;
    if (target.port) {
        route.host = target.host;
        route.port = *target.port;
    } else {  // the parser lets a remote node give a tcp endpoint instead of a port
        route.host = target.endpoint->address.host;
        route.port = target.endpoint->address.port;
    }
    return route;
}

// route_between depends on the source only through its host and its shm flag, so the
// nodes of one host (same_host's classes: every local node, else `host` compared without
// case) take the same routes: per host, Shm between its shm nodes, Unix between the
// others; to another host, Tcp unless the destination is local (then one way only).
RouteCounts count_routes(const Spec& spec) {
    struct Host {
        std::size_t nodes = 0;
        std::size_t shm = 0;
    };
    std::map<std::string, Host, std::less<>> hosts;  // "" = this host: no remote host is empty
    for (const Node& node : spec.nodes) {
        Host& host = hosts[detail::host_key(node)];
        ++host.nodes;
        if (node.shm.enabled) ++host.shm;
    }
    const std::size_t n = spec.nodes.size();
    RouteCounts counts;
    counts.pairs = n * (n - 1);  // 0 when n is 0 (a Spec built in code)
    for (const auto& [key, host] : hosts) {
        // Unsigned: 0 * (0 - 1) is still 0.
        counts.shm += host.shm * (host.shm - 1);
        counts.unix_socket += host.nodes * (host.nodes - 1) - host.shm * (host.shm - 1);
        const std::size_t from_elsewhere = host.nodes * (n - host.nodes);
        (key.empty() ? counts.one_way : counts.tcp) += from_elsewhere;
    }
    return counts;
}

std::string_view to_string(EndpointKind kind) noexcept {
    return kind == EndpointKind::Unix ? "unix" : "tcp";
}

std::string_view to_string(QueuePolicy policy) noexcept {
    switch (policy) {
        case QueuePolicy::Block:
            return "block";
        case QueuePolicy::DropOldest:
            return "drop_oldest";
        case QueuePolicy::Fail:
            return "fail";
    }
    return "?";
}

std::string_view to_string(SlowConsumer policy) noexcept {
    switch (policy) {
        case SlowConsumer::DropOldest:
            return "drop_oldest";
        case SlowConsumer::Disconnect:
            return "disconnect";
        case SlowConsumer::Block:
            return "block";
    }
    return "?";
}

std::optional<SlowConsumer> parse_slow_consumer(std::string_view text) noexcept {
    for (const SlowConsumer p : {SlowConsumer::DropOldest, SlowConsumer::Disconnect, SlowConsumer::Block}) {
        if (text == to_string(p)) return p;
    }
    return std::nullopt;
}

std::string_view to_string(LegacyLayout layout) noexcept { return layout == LegacyLayout::Packed ? "packed" : "c"; }

std::optional<LegacyLayout> parse_legacy_layout(std::string_view text) noexcept {
    if (text == "packed") return LegacyLayout::Packed;
    if (text == "c") return LegacyLayout::C;
    return std::nullopt;
}

std::string_view to_string(TrustPayloads trust) noexcept {
    switch (trust) {
        case TrustPayloads::None:
            return "none";
        case TrustPayloads::Peers:
            return "peers";
        case TrustPayloads::All:
            return "all";
    }
    return "?";
}

std::optional<TrustPayloads> parse_trust_payloads(std::string_view text) noexcept {
    for (const TrustPayloads t : {TrustPayloads::None, TrustPayloads::Peers, TrustPayloads::All}) {
        if (text == to_string(t)) return t;
    }
    return std::nullopt;
}

std::string_view to_string(RestartPolicy policy) noexcept {
    switch (policy) {
        case RestartPolicy::Always:
            return "always";
        case RestartPolicy::OnFailure:
            return "on-failure";
        case RestartPolicy::Never:
            return "never";
    }
    return "?";
}

std::string_view to_string(RouteKind kind) noexcept {
    switch (kind) {
        case RouteKind::InProcess:
            return "in_process";
        case RouteKind::Shm:
            return "shm";
        case RouteKind::Unix:
            return "unix";
        case RouteKind::Tcp:
            return "tcp";
    }
    return "?";
}

}  // namespace mycelium::topology
