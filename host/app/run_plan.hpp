#pragma once
// The default command in two steps: its flags (RunFlags, as CLI11 fills them) become a
// RunPlan, pure data checked for every mistake a user can make on the command line or in
// the topology; run_command.cpp then runs the plan. plan_run() opens no socket and starts
// nothing, so tests/cpp/app checks it directly.

#include <cstddef>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mycelium/endpoint.hpp"
#include "mycelium/host.hpp"
#include "mycelium/link.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::app {

/// The default command's flags, as given.
struct RunFlags {
    std::vector<std::string> scripts;
    std::string contracts;
    bool strict_contracts = false;
    double duration = 0;
    bool fail_fast = false;
    double demo_feed = 0;
    double shutdown_timeout = 5.0;
    std::size_t queue_capacity = 4096;
    double spin_us = 50;
    std::vector<std::string> listen;
    std::string topology;
    std::string node;
    std::vector<std::string> peers;  // NAME=ENDPOINT
    std::string metrics;             // HOST:PORT
    double handshake_timeout = 5.0;
    double log_interval = 10.0;
    std::size_t max_connections = 1024;
    std::size_t max_connections_per_listener = 0;
    std::size_t max_connections_per_client = 256;
    double idle_timeout = 60.0;
    std::size_t max_metrics_bytes = 256 * 1024;
    std::size_t max_metrics_series = 5'000;
    std::string slow_consumer;  // empty: each kind's default
    long slow_consumer_wait_ms = 1000;
    std::string legacy_layout = "packed";
    bool trust_payloads = false;  // relay --listen clients' payloads unvalidated
    bool shm = false;                       // offer shared memory on --listen unix:PATH
    std::size_t shm_ring_bytes = 1u << 20;  // per direction
    std::vector<std::string> workers;       // NAME=SCRIPT[:ARG,...] (supervised workers)
};

/// What to run: every choice made, every input checked.
struct RunPlan {
    HostOptions host;
    /// The links' options, for --listen and for the node's mesh (which adds the node's
    /// own settings from the topology). max_payload is lowered to the contracts' at run.
    link::ServerOptions server;
    std::vector<link::Endpoint> listen;
    /// Node mode: the topology, this node's name, and the --peer addresses.
    std::optional<topology::Spec> spec;
    std::string node;
    std::map<std::string, link::Endpoint, std::less<>> peer_endpoints;
    std::vector<topology::Worker> workers;
    /// Where /metrics is served (HOST:PORT), or empty.
    std::string metrics;
    double demo_feed = 0;
    /// Warnings to print before running (unknown topology keys).
    std::vector<std::string> warnings;
};

/// Bad input: the message names the flag or the file; the command exits 2.
struct PlanError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Checks the flags (and the topology they name) and decides everything. Throws
/// PlanError. `pymodules_dir` goes on the scripts' sys.path.
RunPlan plan_run(RunFlags flags, const std::string& pymodules_dir);

}  // namespace mycelium::app
