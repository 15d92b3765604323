// `mycelium-host check --topology FILE`: load and validate a topology, then print each
// node, where it listens and how it is reached, and the route chosen between every pair
// of nodes. Exit 0 when the topology is usable, 2 with the TopologyError otherwise.

#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::app {

namespace {

namespace topo = mycelium::topology;

struct CheckFlags {
    std::string topology;
    bool strict = false;
};

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out.empty() ? "(none)" : out;
}


// What a connection of each kind gets when it falls behind ([nodes.slow_consumer];
// host/src/transport/mesh.cpp maps it).
std::string slow_consumer_rule(const topo::Node& node) {
    const topo::SlowConsumerConfig& s = node.slow_consumer;
    std::string out = fmt::format("legacy {}, client {}, peer {}", topo::to_string(s.legacy),
                                  topo::to_string(s.client), topo::to_string(s.peer));
    const auto blocks = [](topo::SlowConsumer p) { return p == topo::SlowConsumer::Block; };
    if (blocks(s.legacy) || blocks(s.client) || blocks(s.peer))
        out += fmt::format(" (block: pause producers up to {} ms, then disconnect)", s.wait.count());
    return out;
}

std::string describe_node(const topo::Spec& spec, const topo::Node& node) {
    std::string out = fmt::format("node {}\n", node.name);
    out += fmt::format("  services: {}\n", join(node.services));
    out += fmt::format("  host:     {}\n", node.host.empty() ? "(this host)" : node.host);
    out += fmt::format("  unix:     {} (mode {:04o})\n", topo::socket_path(spec, node).string(), node.socket_mode);
    if (node.bind) out += fmt::format("  tcp:      {} (listen)\n", topo::to_string(*node.bind));
    if (node.endpoint && node.endpoint->kind == topo::EndpointKind::Tcp) {
        out += fmt::format("  endpoint: tcp {}\n", topo::to_string(node.endpoint->address));
    } else if (node.port && !node.bind) {
        out += fmt::format("  port:     {}\n", *node.port);
    }
    if (node.shm.enabled) {
        out += fmt::format("  shm:      enabled, {}-byte rings, spin {} us\n", node.shm.ring_bytes,
                           node.shm.spin.count());
    }
    out += fmt::format("  slow:     {}\n", slow_consumer_rule(node));
    return out;
}

std::string describe_route(const topo::Route& route) {
    switch (route.kind) {
        case topo::RouteKind::InProcess:
            return "in_process";
        case topo::RouteKind::Shm:
            return fmt::format("shm via {}", route.socket_path.string());
        case topo::RouteKind::Unix:
            return fmt::format("unix {}", route.socket_path.string());
        case topo::RouteKind::Tcp:
            return fmt::format("tcp {}", topo::to_string(topo::SocketAddress{route.host, route.port}));
    }
    return "?";
}

// Routes between every ordered pair. One direction may be unreachable (a remote node
// cannot dial a local node that has no address): the link is then dialled from the
// other side. A pair that cannot reach each other at all makes the topology unusable.
std::string describe_routes(const topo::Spec& spec) {
    std::string out = "routes\n";
    const auto& nodes = spec.nodes;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        for (std::size_t j = 0; j < nodes.size(); ++j) {
            if (i == j) continue;
            try {
                out += fmt::format("  {} -> {}: {}\n", nodes[i].name, nodes[j].name,
                                   describe_route(topo::route_between(spec, nodes[i].name, nodes[j].name)));
            } catch (const std::invalid_argument& e) {
                try {
                    (void)topo::route_between(spec, nodes[j].name, nodes[i].name);
                } catch (const std::invalid_argument&) {
                    throw topo::TopologyError(fmt::format("nodes '{}' and '{}' cannot reach each other: {}",
                                                          nodes[i].name, nodes[j].name, e.what()),
                                              nodes[j].source);
                }
                out += fmt::format("  {} -> {}: unreachable ({}); {} dials instead\n", nodes[i].name, nodes[j].name,
                                   e.what(), nodes[j].name);
            }
        }
    }
    return out;
}

}  // namespace

Command add_check_command(CLI::App& app) {
    auto flags = std::make_shared<CheckFlags>();
    CLI::App* cmd = app.add_subcommand("check", "Validate a topology and print its nodes and routes");
    cmd->add_option("--topology", flags->topology, "topology.toml to check")->required();
    cmd->add_flag("--strict", flags->strict, "Unknown keys in the topology are errors, not warnings");
    return [flags]() {
        try {
            const topo::Spec spec = topo::load_file(flags->topology, {.strict = flags->strict});
            for (const topo::TopologyWarning& warning : spec.warnings)
                std::fprintf(stderr, "mycelium-host: warning: %s\n", warning.text().c_str());
            std::string out = fmt::format("topology {}: {} node{}\n", spec.source_name, spec.nodes.size(),
                                          spec.nodes.size() == 1 ? "" : "s");
            for (const auto& node : spec.nodes) out += "\n" + describe_node(spec, node);
            out += "\n" + describe_routes(spec);
            std::fwrite(out.data(), 1, out.size(), stdout);
            return EXIT_OK;
        } catch (const topo::TopologyError& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_BAD_INPUT;
        }
    };
}

}  // namespace mycelium::app
