// Bus::watch_interest: what a node declares to its peers (docs/topology.md, "Running a node").

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "mycelium/bus.hpp"

using namespace mycelium;

namespace {

/// Collects listener calls; safe to read while other threads subscribe.
struct Recorder {
    std::mutex mutex;
    std::vector<std::pair<std::uint16_t, bool>> calls;

    InterestWatch watch(Bus& bus) {
        return bus.watch_interest([this](std::uint16_t type_id, bool interested) {
            std::lock_guard lock(mutex);
            calls.emplace_back(type_id, interested);
        });
    }
    std::vector<std::pair<std::uint16_t, bool>> take() {
        std::lock_guard lock(mutex);
        return std::exchange(calls, {});
    }
};

void ignore(const MessageView&) {}

}  // namespace

TEST_SUITE("bus") {

TEST_CASE("a new listener first hears the types already wanted") {
    Bus bus;
    auto a = bus.subscribe(2001, ignore);
    auto b = bus.subscribe(2000, ignore);
    Recorder recorder;
    auto watch = recorder.watch(bus);
    auto calls = recorder.take();
    std::sort(calls.begin(), calls.end());
    CHECK(calls == std::vector<std::pair<std::uint16_t, bool>>{{2000, true}, {2001, true}});
    CHECK(bus.interested_types() == std::vector<std::uint16_t>{2000, 2001});
}

TEST_CASE("interest follows the first subscriber in and the last one out") {
    Bus bus;
    Recorder recorder;
    auto watch = recorder.watch(bus);
    auto first = bus.subscribe(2000, ignore);
    auto second = bus.subscribe_queued(2000, ignore);
    CHECK(recorder.take() == std::vector<std::pair<std::uint16_t, bool>>{{2000, true}});
    first.close();
    CHECK(recorder.take().empty());
    CHECK(bus.interested(2000));
    second.close();
    CHECK(recorder.take() == std::vector<std::pair<std::uint16_t, bool>>{{2000, false}});
    CHECK_FALSE(bus.interested(2000));
}

TEST_CASE("a subscription that does not count as interest is delivered but not declared") {
    // A peer link's own subscriptions: declaring them to other peers would relay frames
    // between peers.
    Bus bus;
    Recorder recorder;
    auto watch = recorder.watch(bus);
    std::atomic<int> delivered{0};
    auto relay = bus.subscribe(2000, [&](const MessageView&) { delivered.fetch_add(1); },
                               SubscribeOptions{.counts_as_interest = false});
    CHECK(recorder.take().empty());
    CHECK_FALSE(bus.interested(2000));
    const std::byte payload[4]{};
    REQUIRE(bus.publish(2000, payload).has_value());
    CHECK(delivered.load() == 1);
}

TEST_CASE("a closed listener is never called again") {
    Bus bus;
    Recorder recorder;
    auto watch = recorder.watch(bus);
    watch.close();
    CHECK_FALSE(watch.active());
    auto sub = bus.subscribe(2000, ignore);
    CHECK(recorder.take().empty());
}

TEST_CASE("the last call for a type is its state when threads race") {
    Bus bus;
    Recorder recorder;
    auto watch = recorder.watch(bus);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&bus, t] {
            for (int i = 0; i < 500; ++i) {
                auto sub = bus.subscribe(static_cast<std::uint16_t>(2000 + (i + t) % 3), ignore);
            }
        });
    }
    auto kept = bus.subscribe(2001, ignore);
    for (auto& thread : threads) thread.join();
    std::map<std::uint16_t, bool> last;
    for (const auto& [type_id, interested] : recorder.take()) last[type_id] = interested;
    CHECK(last[2000] == false);
    CHECK(last[2001] == true);
    CHECK(last[2002] == false);
}

}  // TEST_SUITE
