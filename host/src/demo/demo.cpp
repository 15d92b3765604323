// The demo's feed, model and sink. The feed paces itself in 1 ms slices rather than
// sleeping per tick: at 100 k ticks/s a per-tick sleep would cost more than the tick.

#include "mycelium/demo.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "demo_messages.hpp"

static_assert(mycelium::demo::TYPE_TRADE_TICK == mycelium::demo::TradeTick::TYPE_ID);
static_assert(mycelium::demo::TYPE_SIGNAL == mycelium::demo::Signal::TYPE_ID);

namespace mycelium::demo {

std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

bool registry_matches_demo(const schema::Registry& registry) {
    if (registry.digest() == SCHEMA_DIGEST) return true;
    const auto* tick = registry.find(TradeTick::TYPE_ID);
    const auto* signal = registry.find(Signal::TYPE_ID);
    const auto field_at = [](const schema::MessageSchema* m, const char* name, std::size_t offset) {
        const auto* f = m->find_field(name);
        return f != nullptr && f->offset == offset;
    };
    return tick != nullptr && signal != nullptr && tick->size == sizeof(TradeTick) &&
           signal->size == sizeof(Signal) && field_at(tick, "price", offsetof(TradeTick, price)) &&
           field_at(tick, "ts_ns", offsetof(TradeTick, ts_ns)) &&
           field_at(signal, "direction", offsetof(Signal, direction)) &&
           field_at(signal, "ts_ns", offsetof(Signal, ts_ns));
}

MarketFeed::MarketFeed(Bus& bus, FeedOptions options) : bus_(bus), options_(options) {
    if (options_.symbols == 0 || options_.symbols > 64) options_.symbols = 8;
}

MarketFeed::~MarketFeed() { stop(); }

void MarketFeed::start() {
    if (running_.exchange(true)) return;
    thread_ = std::thread([this] { run(); });
}

void MarketFeed::stop() noexcept {
    running_.store(false);
    if (thread_.joinable()) thread_.join();
}

void MarketFeed::run() {
    std::uint64_t rng = options_.seed | 1;
    const auto next_random = [&rng] {  // xorshift64
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
    };
    double prices[64];
    char names[64][8];
    for (std::uint32_t i = 0; i < options_.symbols; ++i) {
        prices[i] = 100.0 + 10.0 * i;
        std::snprintf(names[i], sizeof names[i], "SYM%u", i);
    }

    const auto start = std::chrono::steady_clock::now();
    std::uint64_t seq = 0;
    auto slice_end = start;
    while (running_.load(std::memory_order_relaxed)) {
        slice_end += std::chrono::milliseconds(1);
        const double elapsed = std::chrono::duration<double>(slice_end - start).count();
        const auto due = static_cast<std::uint64_t>(elapsed * options_.rate);
        while (seq < due && running_.load(std::memory_order_relaxed)) {
            const std::uint32_t s = static_cast<std::uint32_t>(seq % options_.symbols);
            // A random walk of ±0.05% per tick.
            const double step = (static_cast<double>(next_random() % 2001) - 1000.0) / 2'000'000.0;
            prices[s] *= 1.0 + step;
            TradeTick tick{};
            tick.symbol.assign(names[s]);
            tick.price = prices[s];
            tick.size = static_cast<double>(1 + next_random() % 100);
            tick.seq = seq;
            tick.ts_ns = now_ns();
            if (bus_.publish(tick)) {
                published_.fetch_add(1, std::memory_order_relaxed);
            } else {
                refused_.fetch_add(1, std::memory_order_relaxed);
            }
            ++seq;
        }
        std::this_thread::sleep_until(slice_end);
    }
}

EmaModel::EmaModel(Bus& bus) : bus_(bus) {
    subscription_ = bus.subscribe<TradeTick>([this](const TradeTick& tick) {
        const std::string_view name = tick.symbol.view();
        // SYM<n>: the feed's symbols index the state table directly.
        unsigned index = 0;
        for (char c : name.substr(name.size() > 3 ? 3 : name.size())) index = index * 10 + static_cast<unsigned>(c - '0');
        SymbolState& s = state_[index % 64];
        if (!s.seeded) {
            s.fast = s.slow = tick.price;
            s.seeded = true;
            return;
        }
        s.fast += (tick.price - s.fast) * (2.0 / (5 + 1));
        s.slow += (tick.price - s.slow) * (2.0 / (20 + 1));
        const std::int8_t direction = s.fast > s.slow ? 1 : (s.fast < s.slow ? -1 : 0);
        if (direction == s.direction || direction == 0) return;
        s.direction = direction;
        Signal signal{};
        signal.symbol = tick.symbol;
        signal.fast_ema = s.fast;
        signal.slow_ema = s.slow;
        signal.direction = direction;
        signal.tick_seq = tick.seq;
        signal.ts_ns = tick.ts_ns;
        if (bus_.publish(signal)) signals_.fetch_add(1, std::memory_order_relaxed);
    });
}

SignalSink::SignalSink(Bus& bus, QueueOptions options) {
    subscription_ = bus.subscribe_queued<Signal>(
        [this](const Signal& signal) {
            latency_.record(now_ns() - signal.ts_ns);
            received_.fetch_add(1, std::memory_order_relaxed);
        },
        options);
}

}  // namespace mycelium::demo
