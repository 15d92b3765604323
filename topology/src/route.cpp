#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "mycelium/topology/topology.hpp"

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

bool same_host(const Node& a, const Node& b) noexcept {
    if (a.is_local() || b.is_local()) return a.is_local() && b.is_local();
    return iequals(a.host, b.host);
}

Route route_between(const Spec& spec, std::string_view from, std::string_view to) {
    const Node& source = resolve(spec, from);
    const Node& target = resolve(spec, to);
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
