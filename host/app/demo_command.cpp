// `mycelium-host demo`: the bus without Python. A synthetic feed publishes TradeTicks,
// a C++ EMA model (inline subscriber) turns crossovers into Signals, and a queued sink
// on its own thread counts them. Prints a summary at the end.

#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "commands.hpp"
#include "seconds_flag.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/demo.hpp"

namespace mycelium::app {

namespace {

struct DemoFlags {
    double duration = 5.0;
    double rate = 100'000;
};

std::atomic<bool> interrupted{false};

extern "C" void on_signal(int) { interrupted.store(true); }

}  // namespace

Command add_demo_command(CLI::App& app) {
    auto flags = std::make_shared<DemoFlags>();
    CLI::App* cmd = app.add_subcommand("demo", "Run the C++ bus demo: feed -> EMA model -> sink");
    cmd->add_option("--duration", flags->duration, "Seconds to run")->capture_default_str()->check(seconds_up_to(MAX_RUN_SECONDS));
    cmd->add_option("--rate", flags->rate, "Ticks per second")->capture_default_str()->check(CLI::PositiveNumber);
    return [flags]() {
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);

        Bus bus;
        demo::EmaModel model(bus);
        demo::SignalSink sink(bus);
        demo::MarketFeed feed(bus, {flags->rate});
        const auto start = std::chrono::steady_clock::now();
        feed.start();
        const auto deadline = start + std::chrono::duration<double>(flags->duration);
        while (!interrupted.load() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        feed.stop();
        // Let the sink drain what is queued: block policy, so nothing was dropped.
        const auto drain_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (sink.received() < model.signals() && std::chrono::steady_clock::now() < drain_deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        sink.close();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

        const auto& latency = sink.latency();
        const auto ticks = bus.counters(demo::TYPE_TRADE_TICK);
        const auto signals = bus.counters(demo::TYPE_SIGNAL);
        fmt::print(
            "mycelium demo summary ({:.1f} s)\n"
            "  ticks published    {:>12}  ({:.0f}/s)\n"
            "  ticks delivered    {:>12}\n"
            "  signals published  {:>12}\n"
            "  signals received   {:>12}  (dropped {})\n"
            "  tick->sink latency p50 {:.1f} us, p99 {:.1f} us, max {:.1f} us\n",
            seconds, ticks.published, static_cast<double>(ticks.published) / seconds, ticks.delivered,
            signals.published, sink.received(), signals.dropped, latency.percentile(0.5) / 1e3,
            latency.percentile(0.99) / 1e3, static_cast<double>(latency.max()) / 1e3);
        std::fflush(stdout);
        return sink.received() == model.signals() ? EXIT_OK : EXIT_FAILURE_RUNTIME;
    };
}

}  // namespace mycelium::app
