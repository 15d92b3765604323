#include "run_plan.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "mycelium/supervisor.hpp"

namespace mycelium::app {

namespace {

std::chrono::milliseconds milliseconds(double seconds) {
    return std::chrono::milliseconds(static_cast<long>(seconds * 1000));
}

/// Node mode: loads the topology and takes the node's scripts and contracts.
void plan_node(RunFlags& flags, RunPlan& plan) {
    if (!flags.peers.empty() && flags.topology.empty()) throw PlanError("--peer needs --topology and --node");
    if (flags.topology.empty() && flags.node.empty()) return;
    if (flags.topology.empty() || flags.node.empty()) throw PlanError("--topology and --node go together");
    try {
        plan.spec = topology::load_file(flags.topology, {.strict = flags.strict_contracts});
    } catch (const topology::TopologyError& e) {
        throw PlanError(e.what());
    }
    for (const topology::TopologyWarning& warning : plan.spec->warnings) plan.warnings.push_back(warning.text());
    const topology::Node* node = topology::find_node(*plan.spec, flags.node);
    if (node == nullptr) {
        std::string names;
        for (const auto& n : plan.spec->nodes) names += (names.empty() ? "" : ", ") + n.name;
        throw PlanError(fmt::format("--node {}: {} has no such node (it has: {})", flags.node, flags.topology, names));
    }
    plan.node = node->name;
    for (const auto& script : node->scripts) {
        // --script is checked by its flag; a node's scripts are checked here, before
        // anything starts, so that a wrong path is bad input (exit 2) with one line.
        std::error_code ec;
        if (!std::filesystem::is_regular_file(script, ec))
            throw PlanError(fmt::format("{}: node '{}': script {} does not exist", flags.topology, node->name,
                                        script.string()));
        flags.scripts.push_back(script.string());
    }
    if (flags.contracts.empty()) {
        if (node->contracts) flags.contracts = node->contracts->string();
        else if (plan.spec->contracts) flags.contracts = plan.spec->contracts->string();
    }
    if (node->metrics && flags.metrics.empty()) flags.metrics = topology::to_string(*node->metrics);
    for (const auto& text : flags.peers) {
        const auto eq = text.find('=');
        try {
            plan.peer_endpoints[text.substr(0, eq)] = link::parse_endpoint(text.substr(eq + 1));
        } catch (const std::invalid_argument& e) {
            throw PlanError(fmt::format("--peer {}: {}", text, e.what()));
        }
    }
    plan.workers = node->workers;
}

/// Supervised workers: the node's [[nodes.workers]] and --worker, checked before anything
/// starts (a missing script is bad input, like a bad flag).
void plan_workers(RunFlags& flags, RunPlan& plan, bool unix_listener) {
    for (const auto& text : flags.workers) {
        try {
            plan.workers.push_back(supervisor::parse_worker_flag(text));
        } catch (const std::invalid_argument& e) {
            throw PlanError(e.what());
        }
    }
    if (!flags.workers.empty() && !plan.spec && !unix_listener) {
        throw PlanError(fmt::format("--worker needs a Unix listener to give its workers as MYCELIUM_SOCKET: add "
                                    "--listen unix:PATH{}",
                                    flags.listen.empty() ? " (there is no --listen)" : " (--listen has only TCP addresses)"));
    }
    try {
        supervisor::check_workers(plan.workers);
    } catch (const std::invalid_argument& e) {
        throw PlanError(e.what());
    }
    // The host's shutdown watchdog must leave room for a worker's SIGTERM grace.
    for (const auto& w : plan.workers) {
        const double grace = std::chrono::duration<double>(w.stop_grace).count();
        flags.shutdown_timeout = std::max(flags.shutdown_timeout, grace * 4 / 3 + 2);
    }
}

HostOptions host_options(const RunFlags& flags, const RunPlan& plan, const std::string& pymodules_dir) {
    HostOptions options;
    if (!flags.contracts.empty()) options.contracts = flags.contracts;
    if (plan.spec) {
        options.topology = flags.topology;
        options.node = plan.node;
    }
    options.strict_contracts = flags.strict_contracts;
    for (const auto& s : flags.scripts) options.scripts.emplace_back(s);
    if (flags.duration > 0) options.duration = std::chrono::duration<double>(flags.duration);
    options.fail_fast = flags.fail_fast;
    options.log_interval = milliseconds(flags.log_interval);
    options.shutdown_timeout = milliseconds(flags.shutdown_timeout);
    options.python_queue_capacity = flags.queue_capacity;
    options.spin = std::chrono::nanoseconds(static_cast<long>(flags.spin_us * 1000));
    options.python_path.emplace_back(pymodules_dir);
    return options;
}

link::ServerOptions server_options(const RunFlags& flags) {
    link::ServerOptions options;
    options.handshake_timeout = milliseconds(flags.handshake_timeout);
    options.log_interval = milliseconds(flags.log_interval);
    options.max_connections = flags.max_connections;
    options.max_connections_per_listener = flags.max_connections_per_listener;
    options.max_connections_per_client = flags.max_connections_per_client;
    options.idle_timeout = milliseconds(flags.idle_timeout);
    options.max_metrics_bytes = flags.max_metrics_bytes;
    options.max_metrics_series = flags.max_metrics_series;
    if (!flags.slow_consumer.empty()) {
        const auto policy = link::parse_slow_consumer_policy(flags.slow_consumer);
        if (!policy) throw PlanError("--slow-consumer: bad policy '" + flags.slow_consumer + "'");
        options.slow_consumer = link::SlowConsumerPolicies::all(*policy);
    }
    options.slow_consumer_wait = std::chrono::milliseconds(flags.slow_consumer_wait_ms);
    const auto layout = link::parse_legacy_layout(flags.legacy_layout);
    if (!layout) throw PlanError("--legacy-layout: bad layout '" + flags.legacy_layout + "'");
    options.legacy_layout = *layout;
    if (flags.trust_payloads) options.trust_payloads = link::TrustPayloads::All;
    options.shm_enabled = flags.shm;
    options.shm_ring_bytes = flags.shm_ring_bytes;
    options.shm_spin = std::chrono::microseconds(static_cast<long>(flags.spin_us));
    return options;
}

}  // namespace

RunPlan plan_run(RunFlags flags, const std::string& pymodules_dir) {
    RunPlan plan;
    plan_node(flags, plan);
    for (const auto& text : flags.listen) {
        try {
            plan.listen.push_back(link::parse_endpoint(text));
        } catch (const std::invalid_argument& e) {
            throw PlanError(fmt::format("--listen {}: {}", text, e.what()));
        }
    }
    // Workers get MYCELIUM_SOCKET and --shm needs descriptors: both want a Unix listener.
    const bool unix_listener = std::any_of(plan.listen.begin(), plan.listen.end(),
                                           [](const link::Endpoint& e) { return e.scheme == "unix"; });
    plan_workers(flags, plan, unix_listener);
    if (flags.shm && !link::shared_memory_built())
        throw PlanError("--shm: this build has no shared-memory transport (it was built with MYCELIUM_TRANSPORT_SHM=OFF)");
    if (flags.shm && !unix_listener) {
        throw PlanError(fmt::format("--shm offers shared memory to the clients of a Unix listener: add --listen "
                                    "unix:PATH{}",
                                    plan.spec ? " (a node of a topology takes [nodes.shm] from the topology)" : ""));
    }
    if (flags.scripts.empty() && flags.demo_feed <= 0 && flags.listen.empty() && !plan.spec) {
        throw PlanError("nothing to run: give --script FILE, --demo-feed RATE and/or --listen ENDPOINT (see --help)");
    }
    plan.host = host_options(flags, plan, pymodules_dir);
    plan.server = server_options(flags);
    plan.metrics = flags.metrics;
    plan.demo_feed = flags.demo_feed;
    return plan;
}

}  // namespace mycelium::app
