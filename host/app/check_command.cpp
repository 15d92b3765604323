// `mycelium-host check --topology FILE [--routes]`: load and validate a topology, then print
// each node, where it listens and how it is reached, and the route chosen between every
// pair of nodes. Above SUMMARY_ABOVE nodes (millions of pairs) it prints a summary instead,
// unless --routes asks for every node and pair. Exit 0 when the topology is usable, 2 with
// the TopologyError otherwise.

#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::app {

namespace {

namespace topo = mycelium::topology;

/// Up to this many nodes, check prints every node and every ordered pair (at most 9,900
/// routes); above it, a summary unless --routes.
constexpr std::size_t SUMMARY_ABOVE = 100;
/// How many names a summary line lists before "and N more".
constexpr std::size_t SUMMARY_NAMES = 10;
/// --routes on a large topology writes as it goes, in pieces of this size, rather than
/// holding hundreds of megabytes of text.
constexpr std::size_t FLUSH_BYTES = std::size_t{1} << 20;

struct CheckFlags {
    std::string topology;
    bool strict = false;
    bool routes = false;
};

/// Text for stdout: kept whole (written at the end, so an error leaves stdout empty), or,
/// when `streaming`, written whenever FLUSH_BYTES have gathered.
struct Output {
    bool streaming = false;
    std::string text;

    void add(std::string_view more) {
        text += more;
        if (streaming && text.size() >= FLUSH_BYTES) flush();
    }
    void flush() {
        std::fwrite(text.data(), 1, text.size(), stdout);
        text.clear();
    }
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
void describe_routes(const topo::Spec& spec, Output& out) {
    out.add("routes\n");
    const auto& nodes = spec.nodes;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        for (std::size_t j = 0; j < nodes.size(); ++j) {
            if (i == j) continue;
            try {
                out.add(fmt::format("  {} -> {}: {}\n", nodes[i].name, nodes[j].name,
                                    describe_route(topo::route_between(spec, nodes[i], nodes[j]))));
            } catch (const std::invalid_argument& e) {
                try {
                    (void)topo::route_between(spec, nodes[j], nodes[i]);
                } catch (const std::invalid_argument&) {
                    throw topo::TopologyError(fmt::format("nodes '{}' and '{}' cannot reach each other: {}",
                                                          nodes[i].name, nodes[j].name, e.what()),
                                              nodes[j].source);
                }
                out.add(fmt::format("  {} -> {}: unreachable ({}); {} dials instead\n", nodes[i].name,
                                    nodes[j].name, e.what(), nodes[j].name));
            }
        }
    }
}

// "a, b, c and 7 more".
std::string some_names(const std::vector<std::string_view>& names) {
    std::string out;
    for (std::size_t k = 0; k < names.size() && k < SUMMARY_NAMES; ++k)
        out += fmt::format("{}{}", k ? ", " : "", names[k]);
    if (names.size() > SUMMARY_NAMES) out += fmt::format(" and {} more", names.size() - SUMMARY_NAMES);
    return out;
}

// A large topology in a few lines: how many nodes on which hosts, the listeners, and how
// many pairs take each route (topo::count_routes, per host rather than per pair).
std::string summarize(const topo::Spec& spec) {
    std::map<std::string, std::size_t> remote_hosts;  // lower-cased, as same_host compares
    std::vector<std::string_view> local_names;
    std::size_t local = 0, shm = 0, tcp = 0, metrics = 0, workers = 0, scripts = 0, services = 0;
    for (const topo::Node& node : spec.nodes) {
        if (node.is_local()) {
            ++local;
            local_names.push_back(node.name);
        } else {
            std::string host = node.host;
            for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            ++remote_hosts[host];
        }
        shm += node.shm.enabled ? 1 : 0;
        tcp += node.bind ? 1 : 0;
        metrics += node.metrics ? 1 : 0;
        workers += node.workers.size();
        scripts += node.scripts.size();
        services += node.services.size();
    }
    const topo::RouteCounts routes = topo::count_routes(spec);
    std::string out = fmt::format("summary ({} nodes, more than {}; --routes prints every node and route)\n",
                                  spec.nodes.size(), SUMMARY_ABOVE);
    out += fmt::format("  hosts:     {} node{} on this host, {} on {} other host{}\n", local, local == 1 ? "" : "s",
                       spec.nodes.size() - local, remote_hosts.size(), remote_hosts.size() == 1 ? "" : "s");
    out += fmt::format("  services:  {}\n", services);
    out += fmt::format("  listeners: {} unix, {} tcp, {} metrics; {} with shm\n", spec.nodes.size(), tcp, metrics, shm);
    out += fmt::format("  run:       {} script{}, {} worker{}\n", scripts, scripts == 1 ? "" : "s", workers,
                       workers == 1 ? "" : "s");
    out += fmt::format("\nroutes: {} ordered pairs\n", routes.pairs);
    out += fmt::format("  shm:         {}\n", routes.shm);
    out += fmt::format("  unix:        {}\n", routes.unix_socket);
    out += fmt::format("  tcp:         {}\n", routes.tcp);
    out += fmt::format("  unreachable: {} one way (the other side dials instead)", routes.one_way);
    if (routes.one_way > 0) {
        // route_between: another host cannot dial a node whose host is "this host".
        out += fmt::format("; the {} node{} on this host ({}) cannot be dialled from the {} on other hosts",
                           local, local == 1 ? "" : "s", some_names(local_names), spec.nodes.size() - local);
    }
    return out + "\n";
}

}  // namespace

Command add_check_command(CLI::App& app) {
    auto flags = std::make_shared<CheckFlags>();
    CLI::App* cmd = app.add_subcommand("check", "Validate a topology and print its nodes and routes");
    cmd->add_option("--topology", flags->topology, "topology.toml to check")->required();
    cmd->add_flag("--strict", flags->strict, "Unknown keys in the topology are errors, not warnings");
    cmd->add_flag("--routes", flags->routes,
                  fmt::format("Print every node and the route of every pair even above {} nodes "
                              "(default there: a summary)",
                              SUMMARY_ABOVE));
    return [flags]() {
        try {
            const topo::Spec spec = topo::load_file(flags->topology, {.strict = flags->strict});
            for (const topo::TopologyWarning& warning : spec.warnings)
                std::fprintf(stderr, "mycelium-host: warning: %s\n", warning.text().c_str());
            const bool large = spec.nodes.size() > SUMMARY_ABOVE;
            Output out;
            out.streaming = large;
            out.add(fmt::format("topology {}: {} node{}\n", spec.source_name, spec.nodes.size(),
                                spec.nodes.size() == 1 ? "" : "s"));
            if (large && !flags->routes) {
                out.add("\n" + summarize(spec));
            } else {
                for (const auto& node : spec.nodes) out.add("\n" + describe_node(spec, node));
                out.add("\n");
                describe_routes(spec, out);
            }
            out.flush();
            return EXIT_OK;
        } catch (const topo::TopologyError& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_BAD_INPUT;
        }
    };
}

}  // namespace mycelium::app
