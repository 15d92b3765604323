#pragma once
/// The demo's C++ parts: a synthetic market-data feed, an EMA-crossover model and a
/// signal sink. They use the bundled demo contracts (scripts/contracts.yaml), whose
/// generated structs are host/src/demo/demo_messages.hpp.
/// Thread safety: each class is driven by its own thread(s); the observers are safe
/// from any thread.

#include <atomic>
#include <cstdint>
#include <thread>

#include "mycelium/bus.hpp"
#include "mycelium/latency_histogram.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::demo {

/// Type ids of the demo messages in the bundled contracts.
inline constexpr std::uint16_t TYPE_TRADE_TICK = 1100;
inline constexpr std::uint16_t TYPE_SIGNAL = 1200;

/// Nanoseconds on the steady clock; TradeTick.ts_ns and Signal.ts_ns use it.
std::uint64_t now_ns() noexcept;

/// Whether `registry` lays out TradeTick and Signal exactly as the compiled-in demo
/// structs do (same digest as the bundled contracts, or the same layouts).
bool registry_matches_demo(const schema::Registry& registry);

struct FeedOptions {
    double rate = 100'000;      ///< ticks per second across all symbols
    std::uint32_t symbols = 8;  ///< SYM0 ... SYM7
    std::uint64_t seed = 42;
};

/// Publishes TradeTick on its own thread at a steady rate until stopped.
class MarketFeed {
public:
    MarketFeed(Bus& bus, FeedOptions options);
    ~MarketFeed();  ///< stops and joins
    MarketFeed(const MarketFeed&) = delete;
    MarketFeed& operator=(const MarketFeed&) = delete;

    void start();
    void stop() noexcept;
    std::uint64_t published() const noexcept { return published_.load(std::memory_order_relaxed); }
    std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

private:
    void run();

    Bus& bus_;
    FeedOptions options_;
    std::atomic<bool> running_{false};
    std::atomic<std::uint64_t> published_{0};
    std::atomic<std::uint64_t> refused_{0};
    std::thread thread_;
};

/// A C++ signal model: subscribes to TradeTick inline and publishes a Signal whenever
/// a symbol's fast EMA crosses its slow EMA.
class EmaModel {
public:
    explicit EmaModel(Bus& bus);
    std::uint64_t signals() const noexcept { return signals_.load(std::memory_order_relaxed); }

private:
    struct SymbolState {
        double fast = 0;
        double slow = 0;
        std::int8_t direction = 0;
        bool seeded = false;
    };
    Bus& bus_;
    SymbolState state_[64];
    std::atomic<std::uint64_t> signals_{0};
    Subscription subscription_;
};

/// Counts Signals on a queued subscription (its own thread) and records the latency
/// from the tick that caused each signal to its arrival here.
class SignalSink {
public:
    explicit SignalSink(Bus& bus, QueueOptions options = {});
    std::uint64_t received() const noexcept { return received_.load(std::memory_order_relaxed); }
    const LatencyHistogram& latency() const noexcept { return latency_; }
    /// Stops receiving (joins the queue's thread).
    void close() noexcept { subscription_.close(); }

private:
    std::atomic<std::uint64_t> received_{0};
    LatencyHistogram latency_;
    Subscription subscription_;
};

}  // namespace mycelium::demo
