#pragma once
/// mycelium::Host: a bus, the schema registry and the embedded Python interpreter in
/// one object, for mycelium-host and for a user's own main():
///
///     mycelium::Host host({.scripts = {"model.py"}});
///     auto sub = host.bus().subscribe<Signal>([](const Signal& s) { ... });
///     return host.run();   // until SIGINT/SIGTERM, --duration or mycelium_native.stop()
///
/// One Host per process (CPython has one interpreter per process here). The thread that
/// calls run() becomes the Python thread. No Python header is included here.
/// Thread safety: stop() from any thread; everything else from the thread that created it.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <prometheus/collectable.h>

#include "mycelium/bus.hpp"
#include "mycelium/latency_histogram.hpp"
#include "mycelium/schema.hpp"

namespace mycelium {

struct HostOptions {
    /// contracts.yaml to load; empty: the demo contracts compiled into the binary.
    std::optional<std::filesystem::path> contracts;
    /// Unknown keys in the contracts are errors, not warnings (`--strict`).
    bool strict_contracts = false;
    /// Scripts run in order, each as __main__.
    std::vector<std::filesystem::path> scripts;
    /// Stop after this long; empty: run until stopped.
    std::optional<std::chrono::duration<double>> duration;
    /// A callback exception stops the host with exit code 1.
    bool fail_fast = false;
    /// Longest silence between two log lines about the same repeated failure: a
    /// callback's exception of one type, a message type that does not decode
    /// (`--log-interval`; docs/reliability.md, "Logs are bounded").
    std::chrono::milliseconds log_interval{10'000};
    /// Longest time from a stop request to run() returning; a stuck callback is
    /// interrupted (KeyboardInterrupt) halfway through it.
    std::chrono::milliseconds shutdown_timeout{5000};
    /// Messages waiting for Python, across all Python subscriptions.
    std::size_t python_queue_capacity = 4096;
    /// How long waits spin before they park (zero allowed).
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);
    /// SIGINT and SIGTERM stop the host during run().
    bool handle_signals = true;
    /// The topology file and node this host runs as (`--topology --node`): a script's
    /// Runtime(topology_path=..., service_name=...) is checked against them.
    std::optional<std::filesystem::path> topology;
    std::string node;
    /// Folders put on sys.path after each script's own folder (the bundled pymodules/).
    std::vector<std::filesystem::path> python_path;
};

/// Why run() returned, as a process exit code.
enum HostExit : int {
    HOST_EXIT_OK = 0,       ///< stopped normally
    HOST_EXIT_FAILURE = 1,  ///< a script failed at import, or --fail-fast tripped
};

/// Why Host::publish did not publish a message to everyone.
struct PublishRefusal {
    /// Set when the message broke a rule of the contracts, or its type is not in them:
    /// nothing was published.
    std::optional<schema::ValidationFailure> invalid;
    /// Otherwise the bus's error (QueueFull: a Fail queue refused it, the others got it).
    PublishError bus_error = PublishError::Closed;

    /// One sentence: the rule's "Order.qty: min: value 0 is below 1", or the bus's error.
    std::string text() const;
};

/// Counters for the summary printed at exit.
struct HostStats {
    std::uint64_t python_delivered = 0;
    std::uint64_t python_errors = 0;
    std::uint64_t decode_errors = 0;
};

class Host {
public:
    /// Loads the contracts (throws schema::SchemaError) and starts the interpreter.
    explicit Host(HostOptions options = {});
    /// Finalizes the interpreter; every Python object dies before it.
    ~Host();
    Host(const Host&) = delete;
    Host& operator=(const Host&) = delete;

    Bus& bus() noexcept;
    const Bus& bus() const noexcept;
    const schema::Registry& registry() const noexcept;

    /// Publishes a generated struct after checking it against the contracts' rules, as
    /// every publish from Python is checked. bus().publish() skips the check: use it where
    /// the values are known good and the nanoseconds matter.
    template <TypedMessage T>
    Result<void, PublishRefusal> publish(const T& message) {
        return publish(T::TYPE_ID, std::span<const std::byte>(reinterpret_cast<const std::byte*>(&message),
                                                              sizeof(T)));
    }
    /// The same for a payload already encoded (a type id in the contracts, its bytes).
    Result<void, PublishRefusal> publish(std::uint16_t type_id, std::span<const std::byte> payload);

    /// Runs once the scripts have loaded and their on_start hooks ran, on the Python
    /// thread: start your producers here so scripts see every message from the first.
    void on_started(std::function<void()> fn);

    /// Runs first at shutdown, before the Python queue drains: stop taking messages in
    /// here (a feed's stop(), a link server's stop_intake()) so that the drain ends.
    void on_stopping(std::function<void()> fn);

    /// Runs once the Python queue has drained and the on_stop hooks ran: deliver what is
    /// queued for the outside by `deadline`, close it, and report what could not be
    /// delivered with count_undelivered(). In the order registered.
    void on_drained(std::function<void(std::chrono::steady_clock::time_point deadline)> fn);

    /// Counts `n` accepted messages of `type_id` that the shutdown could not deliver:
    /// run() then logs them, per type, and returns HOST_EXIT_FAILURE. From on_drained.
    void count_undelivered(std::uint16_t type_id, std::uint64_t n);

    /// Runs the scripts, then delivers messages to Python until stopped; drains, runs
    /// on_stop hooks. Returns a HostExit code. Call once, on the thread that owns Python.
    int run();

    /// Requests a stop; run() returns within the shutdown timeout. Any thread.
    void stop(int exit_code = HOST_EXIT_OK) noexcept;

    HostStats stats() const noexcept;
    /// Durations of Python callbacks.
    const LatencyHistogram& callback_latency() const noexcept;
    /// The host's Prometheus metrics: the bus's per-type counters, the Python
    /// dispatcher's (per-type callbacks, exceptions, sampled durations, queue depth, GIL
    /// wait) and the scripts' own (mycelium_native.metrics). Serve it with
    /// metrics::Server::add; the Host must outlive the server. Thread safety: collected
    /// from any thread.
    std::shared_ptr<prometheus::Collectable> metrics() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The demo contracts compiled into the binary (scripts/contracts.yaml).
std::string_view bundled_contracts() noexcept;

}  // namespace mycelium
