// The default command: `mycelium-host --script model.py [...]` runs scripts in the
// embedded interpreter on the host's bus, optionally fed by the built-in market feed.

#include <fmt/format.h>

#include <bit>
#include <cstdio>
#include <iterator>
#include <optional>

#include "commands.hpp"
#include "mycelium/demo.hpp"
#include "mycelium/endpoint.hpp"
#include "mycelium/host.hpp"
#include "mycelium/link.hpp"
#include "mycelium/log.hpp"
#include "mycelium/mesh.hpp"
#include "mycelium/supervisor.hpp"
#include "mycelium/metrics.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::app {

namespace {

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
    std::string slow_consumer;  // empty: each kind's default
    long slow_consumer_wait_ms = 1000;
    std::string legacy_layout = "packed";
    bool shm = false;                       // offer shared memory on --listen unix:PATH
    std::size_t shm_ring_bytes = 1u << 20;  // per direction
    std::vector<std::string> workers;  // NAME=SCRIPT[:ARG,...] (supervised workers)
};

/// mycelium_worker_{up,ready,restarts_total,given_up} per supervised worker.
std::vector<prometheus::MetricFamily> worker_metrics(const supervisor::Supervisor& workers) {
    using prometheus::MetricType;
    auto up = metrics::family("mycelium_worker_up", "1 while the worker process runs", MetricType::Gauge);
    auto ready = metrics::family("mycelium_worker_ready", "1 once the worker has connected under its name",
                                 MetricType::Gauge);
    auto restarts = metrics::family("mycelium_worker_restarts_total", "Restarts of the worker", MetricType::Counter);
    auto given_up = metrics::family("mycelium_worker_given_up",
                                    "1 when the worker hit its crash-loop limit and stays down", MetricType::Gauge);
    for (const auto& status : workers.status()) {
        metrics::add_sample(up, status.up ? 1 : 0, {{"worker", status.name}});
        metrics::add_sample(ready, status.ready ? 1 : 0, {{"worker", status.name}});
        metrics::add_sample(restarts, static_cast<double>(status.restarts), {{"worker", status.name}});
        metrics::add_sample(given_up, status.given_up ? 1 : 0, {{"worker", status.name}});
    }
    return {std::move(up), std::move(ready), std::move(restarts), std::move(given_up)};
}

void print_summary(const Host& host, const demo::MarketFeed* feed, const demo::SignalSink* sink, double seconds) {
    const auto stats = host.stats();
    const auto& latency = host.callback_latency();
    std::string text = fmt::format("mycelium-host summary ({:.1f} s)\n", seconds);
    if (feed != nullptr) {
        const auto ticks = host.bus().counters(demo::TYPE_TRADE_TICK);
        text += fmt::format("  feed ticks published      {:>12}  ({:.0f}/s; bus delivered {}, dropped {})\n",
                            feed->published(), static_cast<double>(feed->published()) / seconds, ticks.delivered,
                            ticks.dropped);
    }
    text += fmt::format("  python callbacks          {:>12}  (errors {}, decode errors {})\n", stats.python_delivered,
                        stats.python_errors, stats.decode_errors);
    if (sink != nullptr) text += fmt::format("  signals to the C++ sink   {:>12}\n", sink->received());
    text += fmt::format("  callback latency          p50 {:.2f} us, p99 {:.2f} us, max {:.2f} us\n",
                        static_cast<double>(latency.percentile(0.5)) / 1e3,
                        static_cast<double>(latency.percentile(0.99)) / 1e3,
                        static_cast<double>(latency.max()) / 1e3);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

}  // namespace

Command add_run_options(CLI::App& app, std::string pymodules_dir) {
    auto flags = std::make_shared<RunFlags>();
    app.add_option("--script", flags->scripts, "Python script to run in the host (repeatable)")
        ->check(CLI::ExistingFile);
    app.add_option("--contracts", flags->contracts, "contracts.yaml (default: the bundled demo contracts)")
        ->check(CLI::ExistingFile);
    app.add_flag("--strict", flags->strict_contracts,
                 "Unknown keys in the contracts and the topology are errors, not warnings");
    app.add_option("--duration", flags->duration, "Stop after this many seconds")->check(CLI::PositiveNumber);
    app.add_flag("--fail-fast", flags->fail_fast, "Stop with exit 1 when a Python callback raises");
    app.add_option("--demo-feed", flags->demo_feed, "Run the built-in market feed at RATE ticks/s")
        ->check(CLI::PositiveNumber);
    app.add_option("--shutdown-timeout", flags->shutdown_timeout, "Seconds a shutdown may take")
        ->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--queue-capacity", flags->queue_capacity, "Messages waiting for Python")
        ->capture_default_str()->check(CLI::Range(2, 1 << 24));
    app.add_option("--spin-us", flags->spin_us, "Microseconds a waiting thread spins before it parks")
        ->capture_default_str()->check(CLI::Range(0.0, 10000.0));
    app.add_option("--listen", flags->listen,
                   "Accept clients on unix:PATH or tcp:HOST:PORT (repeatable; port 0 picks a free port)")
        ->check([](const std::string& text) {
            try {
                link::parse_endpoint(text);
                return std::string();
            } catch (const std::invalid_argument& e) {
                return std::string(e.what());
            }
        });
    app.add_option("--topology", flags->topology, "topology.toml: run as one of its nodes (with --node)")
        ->check(CLI::ExistingFile);
    app.add_option("--node", flags->node, "The node of --topology this process is");
    app.add_option("--peer", flags->peers,
                   "NAME=ENDPOINT: dial peer node NAME there instead of its topology address "
                   "(repeatable; for NAT, or a peer that listens on port 0)")
        ->check([](const std::string& text) {
            const auto eq = text.find('=');
            if (eq == 0 || eq == std::string::npos) return std::string("expected NAME=ENDPOINT, got '" + text + "'");
            try {
                link::parse_endpoint(text.substr(eq + 1));
                return std::string();
            } catch (const std::invalid_argument& e) {
                return std::string(e.what());
            }
        });
    app.add_option("--metrics", flags->metrics,
                   "Serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks a free port; "
                   "default: the node's `metrics` in the topology, else off)")
        ->check([](const std::string& text) {
            return topology::parse_socket_address(text) ? std::string()
                                                        : "bad address '" + text + "': expected HOST:PORT, e.g. 127.0.0.1:9100";
        });
    app.add_option("--handshake-timeout", flags->handshake_timeout, "Seconds a client has to send its handshake")
        ->check(CLI::PositiveNumber);
    app.add_option("--log-interval", flags->log_interval,
                   "Seconds between two log lines about the same repeated bad input of one client (default 10)")
        ->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--slow-consumer", flags->slow_consumer,
                   "What a --listen client that falls behind gets: drop_oldest, disconnect or block (default: "
                   "drop_oldest for legacy clients, disconnect for HELLO clients and peers)")
        ->check([](const std::string& text) {
            return link::parse_slow_consumer_policy(text)
                       ? std::string()
                       : "bad slow-consumer policy '" + text + "': expected drop_oldest, disconnect or block";
        });
    app.add_option("--slow-consumer-wait-ms", flags->slow_consumer_wait_ms,
                   "block: milliseconds a full client may pause its producers before it is disconnected")
        ->capture_default_str()->check(CLI::Range(0L, 600'000L));
    app.add_option("--legacy-layout", flags->legacy_layout,
                   "How --listen legacy clients (no HELLO) get types with C padding: packed, as Mycelium's "
                   "Python SDK reads them, or c; a legacy client that sends one at its C size gets c")
        ->capture_default_str()
        ->check([](const std::string& text) {
            return link::parse_legacy_layout(text) ? std::string()
                                                   : "bad legacy layout '" + text + "': expected packed or c";
        });
    app.add_option("--max-connections", flags->max_connections, "Clients served at once")
        ->capture_default_str()->check(CLI::Range(1, 1 << 20));
    app.add_flag("--shm", flags->shm,
                 "Offer shared-memory rings to clients of --listen unix:PATH that ask for them "
                 "(SHM_REQUEST; their reader spins --spin-us before it parks)");
    app.add_option("--shm-ring-bytes", flags->shm_ring_bytes, "Bytes per direction of each client's rings (--shm)")
        ->capture_default_str()
        ->check([](const std::string& text) {
            std::size_t bytes = 0;
            try {
                bytes = std::stoull(text);
            } catch (const std::exception&) {
                return "'" + text + "' is not a number of bytes";
            }
            // The topology's `[nodes.shm] ring_bytes` rule.
            if (bytes < topology::MIN_RING_BYTES || bytes > topology::MAX_RING_BYTES || !std::has_single_bit(bytes))
                return fmt::format("must be a power of two from {} to {}, got {}", topology::MIN_RING_BYTES,
                                   topology::MAX_RING_BYTES, text);
            return std::string();
        });
    // --- supervised workers (issue 7; docs/workers.md) ---
    app.add_option("--worker", flags->workers,
                   "NAME=SCRIPT[:ARG,ARG...]: run SCRIPT as a supervised child process named NAME, connected to "
                   "the first --listen unix:PATH (repeatable; arguments split on commas)")
        ->check([](const std::string& text) {
            try {
                supervisor::parse_worker_flag(text);
                return std::string();
            } catch (const std::invalid_argument& e) {
                return std::string(e.what());
            }
        });
    // --- end supervised workers ---

    return [flags, pymodules_dir]() {
        // Node mode: the topology names this node's scripts, contracts and endpoints.
        std::optional<topology::Spec> spec;
        const topology::Node* node = nullptr;
        if (!flags->peers.empty() && flags->topology.empty()) {
            std::fprintf(stderr, "mycelium-host: error: --peer needs --topology and --node\n");
            return EXIT_BAD_INPUT;
        }
        if (!flags->topology.empty() || !flags->node.empty()) {
            if (flags->topology.empty() || flags->node.empty()) {
                std::fprintf(stderr, "mycelium-host: error: --topology and --node go together\n");
                return EXIT_BAD_INPUT;
            }
            try {
                spec = topology::load_file(flags->topology, {.strict = flags->strict_contracts});
                for (const topology::TopologyWarning& warning : spec->warnings)
                    std::fprintf(stderr, "mycelium-host: warning: %s\n", warning.text().c_str());
            } catch (const topology::TopologyError& e) {
                std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
                return EXIT_BAD_INPUT;
            }
            node = topology::find_node(*spec, flags->node);
            if (node == nullptr) {
                std::string names;
                for (const auto& n : spec->nodes) names += (names.empty() ? "" : ", ") + n.name;
                std::fprintf(stderr, "mycelium-host: error: --node %s: %s has no such node (it has: %s)\n",
                             flags->node.c_str(), flags->topology.c_str(), names.c_str());
                return EXIT_BAD_INPUT;
            }
            for (const auto& script : node->scripts) flags->scripts.push_back(script.string());
            if (flags->contracts.empty()) {
                if (node->contracts) flags->contracts = node->contracts->string();
                else if (spec->contracts) flags->contracts = spec->contracts->string();
            }
        }
        // --- supervised workers (issue 7): the node's [[nodes.workers]] and --worker, checked
        // before anything starts: a missing script is bad input (exit 2), like a bad flag.
        std::vector<topology::Worker> worker_specs;
        if (node != nullptr) worker_specs = node->workers;
        for (const auto& text : flags->workers) worker_specs.push_back(supervisor::parse_worker_flag(text));
        const bool unix_listener = std::any_of(flags->listen.begin(), flags->listen.end(),
                                               [](const std::string& l) { return l.rfind("unix:", 0) == 0; });
        if (!flags->workers.empty() && node == nullptr && !unix_listener) {
            std::fprintf(stderr, "mycelium-host: error: --worker needs a Unix listener to give its workers as "
                                 "MYCELIUM_SOCKET: add --listen unix:PATH%s\n",
                         flags->listen.empty() ? " (there is no --listen)" : " (--listen has only TCP addresses)");
            return EXIT_BAD_INPUT;
        }
        if (flags->shm && !unix_listener) {
            std::fprintf(stderr, "mycelium-host: error: --shm offers shared memory to the clients of a Unix "
                                 "listener: add --listen unix:PATH%s\n",
                         node != nullptr ? " (a node of a topology takes [nodes.shm] from the topology)" : "");
            return EXIT_BAD_INPUT;
        }
        try {
            supervisor::check_workers(worker_specs);
        } catch (const std::invalid_argument& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_BAD_INPUT;
        }
        // The host's shutdown watchdog must leave room for a worker's SIGTERM grace.
        for (const auto& w : worker_specs) {
            const double grace = std::chrono::duration<double>(w.stop_grace).count();
            flags->shutdown_timeout = std::max(flags->shutdown_timeout, grace * 4 / 3 + 2);
        }
        // --- end supervised workers ---
        if (flags->scripts.empty() && flags->demo_feed <= 0 && flags->listen.empty() && !node) {
            std::fprintf(stderr, "mycelium-host: error: nothing to run: give --script FILE, --demo-feed RATE "
                                 "and/or --listen ENDPOINT (see --help)\n");
            return EXIT_BAD_INPUT;
        }
        HostOptions options;
        if (!flags->contracts.empty()) options.contracts = flags->contracts;
        if (node != nullptr) {
            options.topology = flags->topology;
            options.node = node->name;
        }
        options.strict_contracts = flags->strict_contracts;
        for (const auto& s : flags->scripts) options.scripts.emplace_back(s);
        if (flags->duration > 0) options.duration = std::chrono::duration<double>(flags->duration);
        options.fail_fast = flags->fail_fast;
        options.shutdown_timeout = std::chrono::milliseconds(static_cast<long>(flags->shutdown_timeout * 1000));
        options.python_queue_capacity = flags->queue_capacity;
        options.spin = std::chrono::nanoseconds(static_cast<long>(flags->spin_us * 1000));
        options.python_path.emplace_back(pymodules_dir);

        std::optional<Host> host;
        try {
            host.emplace(options);
        } catch (const schema::SchemaError& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_BAD_INPUT;
        }

        link::ServerOptions server_options;
        server_options.max_payload = host->registry().max_payload();
        server_options.handshake_timeout = std::chrono::milliseconds(static_cast<long>(flags->handshake_timeout * 1000));
        server_options.log_interval = std::chrono::milliseconds(static_cast<long>(flags->log_interval * 1000));
        server_options.max_connections = flags->max_connections;
        if (!flags->slow_consumer.empty())
            server_options.slow_consumer = link::SlowConsumerPolicies::all(*link::parse_slow_consumer_policy(flags->slow_consumer));
        server_options.slow_consumer_wait = std::chrono::milliseconds(flags->slow_consumer_wait_ms);
        server_options.legacy_layout = *link::parse_legacy_layout(flags->legacy_layout);
        server_options.shm_enabled = flags->shm;
        server_options.shm_ring_bytes = flags->shm_ring_bytes;
        server_options.shm_spin = std::chrono::microseconds(static_cast<long>(flags->spin_us));
        std::vector<std::string> bound;
        // --- supervised workers (issue 7): declared before the listeners, whose client
        // observer calls it, so it outlives them; stopped first, while workers can still talk.
        std::optional<supervisor::Supervisor> workers;
        host->on_stopping([&workers] {
            if (workers) workers->stop();
        });
        // --- end supervised workers ---

        std::optional<mesh::Mesh> node_mesh;
        if (node != nullptr) {
            // The topology's limits apply unless the command line set them.
            server_options.max_payload = std::min(server_options.max_payload, spec->limits.max_payload);
            server_options.handshake_timeout = spec->limits.handshake_timeout;
            server_options.max_connections = spec->limits.max_connections;
            server_options.socket_mode = node->socket_mode;
            mesh::MeshOptions mesh_options;
            mesh_options.server = server_options;
            for (const auto& text : flags->peers) {
                const auto eq = text.find('=');
                mesh_options.peer_endpoints[text.substr(0, eq)] = link::parse_endpoint(text.substr(eq + 1));
            }
            try {
                node_mesh.emplace(host->bus(), host->registry(), *spec, node->name, mesh_options);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "mycelium-host: error: node %s cannot start: %s\n", node->name.c_str(), e.what());
                return EXIT_BAD_INPUT;
            }
            for (const auto& endpoint : node_mesh->endpoints()) bound.push_back(link::to_string(endpoint));
            host->on_stopping([&node_mesh] { node_mesh->stop(); });
        }

        std::optional<link::LinkServer> server;
        if (!flags->listen.empty()) {
            server.emplace(host->bus(), host->registry(), server_options);
            for (const auto& text : flags->listen) {
                try {
                    bound.push_back(link::to_string(server->listen(text)));
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "mycelium-host: error: cannot listen on %s: %s\n", text.c_str(), e.what());
                    return EXIT_BAD_INPUT;
                }
            }
            host->on_stopping([&server] { server->stop(); });
        }
        // --- supervised workers (issue 7): started with the node; ready once connected ---
        if (!worker_specs.empty()) {
            supervisor::SupervisorOptions worker_options;
            const auto unix_endpoint = std::find_if(bound.begin(), bound.end(), [](const std::string& e) {
                return e.rfind("unix:", 0) == 0;
            });
            if (unix_endpoint != bound.end()) worker_options.socket = *unix_endpoint;
            worker_options.schema_digest = host->registry().digest_hex();
            if (spec) worker_options.topology = std::filesystem::absolute(flags->topology);
            worker_options.python_path.emplace_back(pymodules_dir);
            try {
                workers.emplace(worker_specs, worker_options);
            } catch (const std::invalid_argument& e) {
                std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
                return EXIT_BAD_INPUT;
            }
            const auto observe = [&workers](std::string_view name, bool connected) {
                workers->client_connected(name, connected);
            };
            if (node_mesh) node_mesh->server().set_client_observer(observe);
            if (server) server->set_client_observer(observe);
            host->on_started([&workers] { workers->start(); });
        }
        // --- end supervised workers ---
        // One line per endpoint, flushed, once the scripts have subscribed: a client that
        // waits for the line finds the node ready.
        host->on_started([bound] {
            for (const auto& endpoint : bound) std::printf("listening on %s\n", endpoint.c_str());
            std::fflush(stdout);
        });

        // Metrics: declared after everything its collectors read, so it stops first.
        std::optional<metrics::Server> metrics_server;
        std::string metrics_address = flags->metrics;
        if (metrics_address.empty() && node != nullptr && node->metrics)
            metrics_address = topology::to_string(*node->metrics);
        if (!metrics_address.empty()) {
            try {
                metrics_server.emplace(metrics_address);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "mycelium-host: error: --metrics: %s\n", e.what());
                return EXIT_BAD_INPUT;
            }
            // One collector, so that a name appears once on the page even when a client
            // reports a metric a script also defines.
            std::vector<metrics::Listener> listeners;
            if (node_mesh) listeners.emplace_back(&node_mesh->server(), "node");
            if (server) listeners.emplace_back(&*server, "listen");
            std::vector<std::shared_ptr<prometheus::Collectable>> parts{host->metrics()};
            if (!listeners.empty()) parts.push_back(metrics::link_collector(listeners));
            if (workers) parts.push_back(metrics::from_function([&workers] { return worker_metrics(*workers); }));
            metrics_server->add(metrics::from_function([parts, listeners] {
                std::vector<prometheus::MetricFamily> out;
                for (const auto& part : parts) {
                    auto families = part->Collect();
                    std::move(families.begin(), families.end(), std::back_inserter(out));
                }
                std::vector<metrics::ClientReport> reports;
                for (const auto& [link_server, name] : listeners) {
                    auto reported = link_server->client_metrics();
                    std::move(reported.begin(), reported.end(), std::back_inserter(reports));
                }
                metrics::append_reported(out, reports);
                return out;
            }));
            host->on_started([url = metrics_server->url()] {
                std::printf("metrics on %s\n", url.c_str());
                std::fflush(stdout);
            });
            host->on_stopping([&metrics_server] { metrics_server->stop(); });
        }

        std::optional<demo::MarketFeed> feed;
        std::optional<demo::SignalSink> sink;
        if (flags->demo_feed > 0) {
            if (!demo::registry_matches_demo(host->registry())) {
                std::fprintf(stderr, "mycelium-host: error: --demo-feed needs TradeTick and Signal as in the bundled "
                                     "contracts, and %s lays them out differently\n",
                             host->registry().source_name().c_str());
                return EXIT_BAD_INPUT;
            }
            sink.emplace(host->bus());
            feed.emplace(host->bus(), demo::FeedOptions{flags->demo_feed});
            host->on_started([&feed] { feed->start(); });
            host->on_stopping([&feed] { feed->stop(); });
        }
        const auto start = std::chrono::steady_clock::now();
        const int code = host->run();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (feed) feed->stop();
        if (sink) sink->close();
        print_summary(*host, feed ? &*feed : nullptr, sink ? &*sink : nullptr, seconds);
        return code;
    };
}

}  // namespace mycelium::app
