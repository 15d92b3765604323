// The default command: `mycelium-host --script model.py [...]` runs scripts in the
// embedded interpreter on the host's bus, optionally fed by the built-in market feed.

#include <fmt/format.h>

#include <cstdio>
#include <optional>

#include "commands.hpp"
#include "mycelium/demo.hpp"
#include "mycelium/endpoint.hpp"
#include "mycelium/host.hpp"
#include "mycelium/link.hpp"
#include "mycelium/log.hpp"

namespace mycelium::app {

namespace {

struct RunFlags {
    std::vector<std::string> scripts;
    std::string contracts;
    double duration = 0;
    bool fail_fast = false;
    double demo_feed = 0;
    double shutdown_timeout = 5.0;
    std::size_t queue_capacity = 4096;
    double spin_us = 50;
    std::vector<std::string> listen;
    double handshake_timeout = 5.0;
    std::size_t max_connections = 1024;
};

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
    app.add_option("--handshake-timeout", flags->handshake_timeout, "Seconds a client has to send its handshake")
        ->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--max-connections", flags->max_connections, "Clients served at once")
        ->capture_default_str()->check(CLI::Range(1, 1 << 20));

    return [flags, pymodules_dir]() {
        if (flags->scripts.empty() && flags->demo_feed <= 0 && flags->listen.empty()) {
            std::fprintf(stderr, "mycelium-host: error: nothing to run: give --script FILE, --demo-feed RATE "
                                 "and/or --listen ENDPOINT (see --help)\n");
            return EXIT_BAD_INPUT;
        }
        HostOptions options;
        if (!flags->contracts.empty()) options.contracts = flags->contracts;
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

        std::optional<link::LinkServer> server;
        if (!flags->listen.empty()) {
            link::ServerOptions server_options;
            server_options.max_payload = host->registry().max_payload();
            server_options.handshake_timeout =
                std::chrono::milliseconds(static_cast<long>(flags->handshake_timeout * 1000));
            server_options.max_connections = flags->max_connections;
            server.emplace(host->bus(), host->registry(), server_options);
            std::vector<std::string> bound;
            for (const auto& text : flags->listen) {
                try {
                    bound.push_back(link::to_string(server->listen(text)));
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "mycelium-host: error: cannot listen on %s: %s\n", text.c_str(), e.what());
                    return EXIT_BAD_INPUT;
                }
            }
            // One line per endpoint, flushed, once the scripts have subscribed: a client
            // that waits for the line finds the node ready.
            host->on_started([bound] {
                for (const auto& endpoint : bound) std::printf("listening on %s\n", endpoint.c_str());
                std::fflush(stdout);
            });
            host->on_stopping([&server] { server->stop(); });
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
