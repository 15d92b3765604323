// The default command: `mycelium-host --script model.py [...]` runs scripts in the
// embedded interpreter on the host's bus, optionally fed by the built-in market feed.

#include <fmt/format.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <iterator>
#include <optional>
#include <stdexcept>

#include "commands.hpp"
#include "descriptor_limit.hpp"
#include "seconds_flag.hpp"
#include "run_plan.hpp"
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

/// Client series on a /metrics page above which the next scrape calls malloc_trim.
constexpr std::size_t TRIM_AFTER_REPORTED_SERIES = 10'000;

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
        // A tick the bus refused (a Fail queue was full, or it was shutting down) was not published.
        if (feed->refused() != 0) text += fmt::format("  feed ticks refused        {:>12}\n", feed->refused());
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

/// What a run owns. Member order is the order of construction: each part outlives what
/// refers to it. At a stop, the producers stop first (host->on_stopping: the workers,
/// the links' intake, the feed), then, once Python has drained, the links deliver what is
/// queued and close, and /metrics last (host->on_drained).
struct Running {
    std::optional<Host> host;
    // Before the listeners, whose client observer calls it; stopped first, while workers can
    // still talk.
    std::optional<supervisor::Supervisor> workers;
    std::optional<mesh::Mesh> node_mesh;
    std::optional<link::LinkServer> server;
    // After everything its collectors read, so it stops first.
    std::optional<metrics::Server> metrics_server;
    std::optional<demo::MarketFeed> feed;
    std::optional<demo::SignalSink> sink;
    std::vector<std::string> bound;  // every endpoint listened on, as text
};

/// Bad input found while starting (a port in use, a node that cannot start): exit 2.
struct StartError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// What a link server could not send at shutdown counts as not delivered.
void count_unsent(Host& host, const link::LinkServer::Unsent& unsent) {
    for (const auto& [type_id, n] : unsent) host.count_undelivered(type_id, n);
}

void start_links(Running& r, const RunPlan& plan) {
    link::ServerOptions server_options = plan.server;
    server_options.max_payload = std::min(server_options.max_payload, r.host->registry().max_payload());
    if (plan.spec) {
        mesh::MeshOptions mesh_options;
        mesh_options.server = server_options;  // the mesh adds the node's settings
        mesh_options.peer_endpoints = plan.peer_endpoints;
        try {
            r.node_mesh.emplace(r.host->bus(), r.host->registry(), *plan.spec, plan.node, mesh_options);
        } catch (const std::exception& e) {
            throw StartError(fmt::format("node {} cannot start: {}", plan.node, e.what()));
        }
        for (const auto& endpoint : r.node_mesh->endpoints()) r.bound.push_back(link::to_string(endpoint));
        r.host->on_stopping([&r] { r.node_mesh->stop_intake(); });
        r.host->on_drained([&r](auto deadline) { count_unsent(*r.host, r.node_mesh->stop_after_flush(deadline)); });
    }
    if (plan.listen.empty()) return;
    r.server.emplace(r.host->bus(), r.host->registry(), server_options);
    for (const auto& endpoint : plan.listen) {
        try {
            r.bound.push_back(link::to_string(r.server->listen(endpoint)));
        } catch (const std::exception& e) {
            throw StartError(fmt::format("cannot listen on {}: {}", link::to_string(endpoint), e.what()));
        }
    }
    r.host->on_stopping([&r] { r.server->stop_intake(); });
    r.host->on_drained([&r](auto deadline) { count_unsent(*r.host, r.server->stop_after_flush(deadline)); });
}

void start_workers(Running& r, const RunPlan& plan, const std::string& pymodules_dir) {
    if (plan.workers.empty()) return;
    supervisor::SupervisorOptions options;
    const auto unix_endpoint =
        std::find_if(r.bound.begin(), r.bound.end(), [](const std::string& e) { return e.rfind("unix:", 0) == 0; });
    if (unix_endpoint != r.bound.end()) options.socket = *unix_endpoint;
    options.schema_digest = r.host->registry().digest_hex();
    if (plan.host.topology) options.topology = std::filesystem::absolute(*plan.host.topology);
    options.python_path.emplace_back(pymodules_dir);
    try {
        r.workers.emplace(plan.workers, options);
    } catch (const std::invalid_argument& e) {
        throw StartError(e.what());
    }
    const auto observe = [&r](std::string_view name, bool connected) { r.workers->client_connected(name, connected); };
    if (r.node_mesh) r.node_mesh->server().set_client_observer(observe);
    if (r.server) r.server->set_client_observer(observe);
    r.host->on_started([&r] { r.workers->start(); });
}

void start_metrics(Running& r, const RunPlan& plan) {
    if (plan.metrics.empty()) return;
    try {
        r.metrics_server.emplace(plan.metrics);
    } catch (const std::exception& e) {
        throw StartError(fmt::format("--metrics: {}", e.what()));
    }
    // One collector, so that a name appears once on the page even when a client reports a
    // metric a script also defines.
    std::vector<metrics::Listener> listeners;
    if (r.node_mesh) listeners.emplace_back(&r.node_mesh->server(), "node");
    if (r.server) listeners.emplace_back(&*r.server, "listen");
    std::vector<std::shared_ptr<prometheus::Collectable>> parts{r.host->metrics()};
    if (!listeners.empty()) parts.push_back(metrics::link_collector(listeners));
    if (r.workers) parts.push_back(metrics::from_function([&r] { return worker_metrics(*r.workers); }));
    // Pages with many client series are many small allocations whose pages glibc keeps
    // after they are freed; the scrape after such a page hands them back to the system.
    auto previous_series = std::make_shared<std::atomic<std::size_t>>(0);
    r.metrics_server->add(metrics::from_function([parts, listeners, previous_series] {
        if (previous_series->load() > TRIM_AFTER_REPORTED_SERIES) malloc_trim(0);
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
        std::size_t series = 0;
        for (const auto& report : reports)
            for (const auto& family : report.second) series += family.series.size();
        previous_series->store(series);
        return out;
    }));
    r.host->on_started([url = r.metrics_server->url()] {
        std::printf("metrics on %s\n", url.c_str());
        std::fflush(stdout);
    });
    r.host->on_drained([&r](auto) { r.metrics_server->stop(); });
}

void start_demo(Running& r, const RunPlan& plan) {
    if (plan.demo_feed <= 0) return;
    if (!demo::registry_matches_demo(r.host->registry())) {
        throw StartError(fmt::format("--demo-feed needs TradeTick and Signal as in the bundled contracts, and {} "
                                     "lays them out differently",
                                     r.host->registry().source_name()));
    }
    r.sink.emplace(r.host->bus());
    r.feed.emplace(r.host->bus(), demo::FeedOptions{plan.demo_feed});
    r.host->on_started([&r] { r.feed->start(); });
    r.host->on_stopping([&r] { r.feed->stop(); });
}

int run(const RunPlan& plan, const std::string& pymodules_dir) {
    const std::size_t max_connections =
        plan.spec ? std::max<std::size_t>(plan.server.max_connections, plan.spec->limits.max_connections)
                  : plan.server.max_connections;
    raise_descriptor_limit(descriptors_for(max_connections));
    Running r;
    try {
        r.host.emplace(plan.host);
    } catch (const schema::SchemaError& e) {
        std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
        return EXIT_BAD_INPUT;
    }
    // Workers stop first, while their connections still take what they publish as they stop.
    r.host->on_stopping([&r] {
        if (r.workers) r.workers->stop();
    });
    try {
        start_links(r, plan);
        start_workers(r, plan, pymodules_dir);
        start_metrics(r, plan);
        start_demo(r, plan);
    } catch (const StartError& e) {
        std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
        return EXIT_BAD_INPUT;
    }
    // One line per endpoint, flushed, once the scripts have subscribed: a client that
    // waits for the line finds the node ready.
    r.host->on_started([bound = r.bound] {
        for (const auto& endpoint : bound) std::printf("listening on %s\n", endpoint.c_str());
        std::fflush(stdout);
    });
    const auto start = std::chrono::steady_clock::now();
    const int code = r.host->run();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r.feed) r.feed->stop();
    if (r.sink) r.sink->close();
    print_summary(*r.host, r.feed ? &*r.feed : nullptr, r.sink ? &*r.sink : nullptr, seconds);
    return code;
}

/// The host itself and its scripts: contracts, duration, queues, shutdown.
void add_script_options(CLI::App& app, RunFlags& flags) {
    app.add_option("--script", flags.scripts, "Python script to run in the host (repeatable)")
        ->check(CLI::ExistingFile);
    app.add_option("--contracts", flags.contracts, "contracts.yaml (default: the bundled demo contracts)")
        ->check(CLI::ExistingFile);
    app.add_flag("--strict", flags.strict_contracts,
                 "Unknown keys in the contracts and the topology are errors, not warnings");
    app.add_option("--duration", flags.duration, "Stop after this many seconds")->check(seconds_up_to(MAX_RUN_SECONDS));
    app.add_flag("--fail-fast", flags.fail_fast, "Stop with exit 1 when a Python callback raises");
    app.add_option("--demo-feed", flags.demo_feed, "Run the built-in market feed at RATE ticks/s")
        ->check(CLI::PositiveNumber);
    app.add_option("--shutdown-timeout", flags.shutdown_timeout, "Seconds a shutdown may take")
        ->capture_default_str()->check(seconds_up_to(MAX_TIMEOUT_SECONDS));
    app.add_option("--queue-capacity", flags.queue_capacity, "Messages waiting for Python")
        ->capture_default_str()->check(CLI::Range(2, 1 << 24));
    app.add_option("--spin-us", flags.spin_us, "Microseconds a waiting thread spins before it parks")
        ->capture_default_str()->check(CLI::Range(0.0, 10000.0));
}

/// Where the node listens, which topology node it is, its peers and its metrics.
void add_node_options(CLI::App& app, RunFlags& flags) {
    app.add_option("--listen", flags.listen,
                   "Accept clients on unix:PATH or tcp:HOST:PORT (repeatable; port 0 picks a free port)")
        ->check([](const std::string& text) {
            try {
                link::parse_endpoint(text);
                return std::string();
            } catch (const std::invalid_argument& e) {
                return std::string(e.what());
            }
        });
    app.add_option("--topology", flags.topology, "topology.toml: run as one of its nodes (with --node)")
        ->check(CLI::ExistingFile);
    app.add_option("--node", flags.node, "The node of --topology this process is");
    app.add_option("--peer", flags.peers,
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
    app.add_option("--metrics", flags.metrics,
                   "Serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks a free port; "
                   "default: the node's `metrics` in the topology, else off)")
        ->check([](const std::string& text) {
            return topology::parse_socket_address(text) ? std::string()
                                                        : "bad address '" + text + "': expected HOST:PORT, e.g. 127.0.0.1:9100";
        });
}

/// How clients of --listen are served: handshake, bad input, slow consumers, layouts, limits.
void add_client_options(CLI::App& app, RunFlags& flags) {
    app.add_option("--handshake-timeout", flags.handshake_timeout, "Seconds a client has to send its handshake")
        ->check(seconds_up_to(MAX_TIMEOUT_SECONDS));
    app.add_option("--log-interval", flags.log_interval,
                   "Seconds between two log lines about the same repeated failure: a client's bad input, a "
                   "connection closed before its handshake, a callback's exception (default 10)")
        ->capture_default_str()->check(seconds_up_to(MAX_TIMEOUT_SECONDS));
    app.add_option("--slow-consumer", flags.slow_consumer,
                   "What a --listen client that falls behind gets: drop_oldest, disconnect or block (default: "
                   "drop_oldest for legacy clients, disconnect for HELLO clients and peers)")
        ->check([](const std::string& text) {
            return link::parse_slow_consumer_policy(text)
                       ? std::string()
                       : "bad slow-consumer policy '" + text + "': expected drop_oldest, disconnect or block";
        });
    app.add_option("--slow-consumer-wait-ms", flags.slow_consumer_wait_ms,
                   "block: milliseconds a full client may pause its producers before it is disconnected")
        ->capture_default_str()->check(CLI::Range(0L, 600'000L));
    app.add_option("--legacy-layout", flags.legacy_layout,
                   "How --listen legacy clients (no HELLO) get types with C padding: packed, as Mycelium's "
                   "Python SDK reads them, or c; a legacy client that sends one at its C size gets c")
        ->capture_default_str()
        ->check([](const std::string& text) {
            return link::parse_legacy_layout(text) ? std::string()
                                                   : "bad legacy layout '" + text + "': expected packed or c";
        });
    app.add_flag("--trust-payloads", flags.trust_payloads,
                 "Relay --listen clients' application frames without validating their payloads against the "
                 "contracts (trusted clients; the type and the size are still checked). Default: a string that is "
                 "not UTF-8 or above its capacity, a vector above its capacity or a broken rule drops the frame "
                 "(ERROR invalid_payload)");
    app.add_option("--max-connections", flags.max_connections, "Clients served at once")
        ->capture_default_str()->check(CLI::Range(1, 1 << 20));
    app.add_option("--max-connections-per-listener", flags.max_connections_per_listener,
                   "Clients one --listen endpoint serves at once (0: only --max-connections)")
        ->capture_default_str()->check(CLI::Range(0, 1 << 20));
    app.add_option("--max-connections-per-client", flags.max_connections_per_client,
                   "Connections one client holds at once over every endpoint: a local user by uid (Unix "
                   "sockets, loopback TCP), a remote one by address (0: no limit)")
        ->capture_default_str()->check(CLI::Range(0, 1 << 20));
    app.add_option("--idle-timeout", flags.idle_timeout,
                   "Seconds after which a HELLO client or peer that sent nothing is sent a PING, and closed "
                   "if it answers nothing either within as long again (0: never; legacy clients never)")
        ->capture_default_str()->check(seconds_or_zero_up_to(MAX_TIMEOUT_SECONDS));
    app.add_option("--max-metrics-bytes", flags.max_metrics_bytes,
                   "Largest METRICS frame one client may send; a larger one is dropped (ERROR limit_exceeded)")
        ->capture_default_str()->check(CLI::Range(1, 4 << 20));
    app.add_option("--max-metrics-series", flags.max_metrics_series,
                   "Most series one client may report in a METRICS frame; more are dropped (ERROR limit_exceeded)")
        ->capture_default_str()->check(CLI::Range(0, 10'000'000));
}

/// Shared-memory rings for clients of --listen unix:PATH.
void add_shm_options(CLI::App& app, RunFlags& flags) {
    app.add_flag("--shm", flags.shm,
                 "Offer shared-memory rings to clients of --listen unix:PATH that ask for them "
                 "(SHM_REQUEST; their reader spins --spin-us before it parks)");
    app.add_option("--shm-ring-bytes", flags.shm_ring_bytes, "Bytes per direction of each client's rings (--shm)")
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
}

/// Supervised worker processes (issue 7; docs/workers.md).
void add_worker_options(CLI::App& app, RunFlags& flags) {
    app.add_option("--worker", flags.workers,
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
}

}  // namespace

Command add_run_options(CLI::App& app, std::string pymodules_dir) {
    auto flags = std::make_shared<RunFlags>();
    // In this order in --help.
    add_script_options(app, *flags);
    add_node_options(app, *flags);
    add_client_options(app, *flags);
    add_shm_options(app, *flags);
    add_worker_options(app, *flags);

    return [flags, pymodules_dir]() {
        std::optional<RunPlan> plan;
        try {
            plan = plan_run(*flags, pymodules_dir);
        } catch (const PlanError& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_BAD_INPUT;
        }
        for (const auto& warning : plan->warnings) std::fprintf(stderr, "mycelium-host: warning: %s\n", warning.c_str());
        return run(*plan, pymodules_dir);
    };
}

}  // namespace mycelium::app
