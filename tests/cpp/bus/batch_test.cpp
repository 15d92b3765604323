// Bus::publish_batch and Bus::subscribe_batch: a batch is delivered as the same messages
// published one by one would be (order, every kind of subscriber, counters, errors), and
// a batch subscriber sees each run of one type in one call.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "mycelium/bus.hpp"

using namespace mycelium;

namespace {

struct Quote {
    static constexpr std::uint16_t TYPE_ID = 1200;
    std::uint64_t seq;
    double bid, ask, size;
};
static_assert(sizeof(Quote) == 32);

std::uint64_t seq_of(const MessageView& view) {
    std::uint64_t seq = 0;
    REQUIRE(view.payload.size() >= sizeof seq);
    std::memcpy(&seq, view.payload.data(), sizeof seq);
    return seq;
}

/// Messages of one type whose payloads are 8-byte sequence numbers, with the storage the
/// views point into (a moved vector keeps its buffer).
struct Batch {
    std::vector<std::uint64_t> seqs;
    std::vector<MessageView> views;
};

Batch batch_of(std::uint16_t type_id, std::vector<std::uint64_t> seqs) {
    Batch b{std::move(seqs), {}};
    for (const auto& s : b.seqs) b.views.push_back({type_id, std::as_bytes(std::span<const std::uint64_t>(&s, 1))});
    return b;
}

}  // namespace

TEST_SUITE("bus") {

TEST_CASE("a batch reaches per-message, batch and queued subscribers in order" * doctest::timeout(10)) {
    Bus bus;
    std::vector<std::uint64_t> inline_seen, batch_seen;
    std::vector<std::size_t> run_sizes;
    auto one = bus.subscribe(1000, [&](const MessageView& v) { inline_seen.push_back(seq_of(v)); });
    auto runs = bus.subscribe_batch(1000, [&](std::span<const MessageView> run) {
        run_sizes.push_back(run.size());
        for (const auto& v : run) {
            CHECK(v.type_id == 1000);
            batch_seen.push_back(seq_of(v));
        }
    });
    auto mailbox = std::make_shared<Mailbox>(MailboxOptions{.capacity = 64});
    auto queued = bus.subscribe_mailbox(1000, mailbox, 7);

    const std::vector<std::uint64_t> seqs{10, 11, 12, 13, 14};
    const Batch batch = batch_of(1000, seqs);
    REQUIRE(bus.publish_batch(batch.views).has_value());

    CHECK(inline_seen == seqs);
    CHECK(batch_seen == seqs);
    CHECK(run_sizes == std::vector<std::size_t>{5});  // one call for the run
    for (const auto s : seqs) {
        MailboxMessage m;
        REQUIRE(mailbox->try_pop(m));
        CHECK(m.token == 7);
        std::uint64_t got = 0;
        std::memcpy(&got, m.payload.data(), sizeof got);
        CHECK(got == s);
    }
    const auto c = bus.counters(1000);
    CHECK(c.published == 5);
    CHECK(c.delivered == 15);
    CHECK(c.dropped == 0);
}

TEST_CASE("a batch of several types is delivered in runs, in order" * doctest::timeout(10)) {
    Bus bus;
    std::vector<std::pair<std::uint16_t, std::uint64_t>> order;  // across both types
    std::vector<std::size_t> runs_a;
    auto a = bus.subscribe_batch(1000, [&](std::span<const MessageView> run) {
        runs_a.push_back(run.size());
        for (const auto& v : run) order.emplace_back(v.type_id, seq_of(v));
    });
    auto b = bus.subscribe(1001, [&](const MessageView& v) { order.emplace_back(v.type_id, seq_of(v)); });

    Batch batch = batch_of(1000, {1, 2, 3, 4, 5, 6});
    batch.views[2].type_id = 1001;  // 1000 1000 | 1001 | 1000 1000 1000
    REQUIRE(bus.publish_batch(batch.views).has_value());

    CHECK(order == std::vector<std::pair<std::uint16_t, std::uint64_t>>{
                       {1000, 1}, {1000, 2}, {1001, 3}, {1000, 4}, {1000, 5}, {1000, 6}});
    CHECK(runs_a == std::vector<std::size_t>{2, 3});
    CHECK(bus.counters(1000).published == 5);
    CHECK(bus.counters(1001).published == 1);
}

TEST_CASE("a batch subscriber gets a plain publish as a run of one" * doctest::timeout(10)) {
    Bus bus;
    std::vector<std::size_t> run_sizes;
    auto sub = bus.subscribe_batch(Quote::TYPE_ID, [&](std::span<const MessageView> run) { run_sizes.push_back(run.size()); });
    REQUIRE(bus.publish(Quote{1, 2.0, 3.0, 4.0}).has_value());
    REQUIRE(bus.publish(Quote{2, 2.0, 3.0, 4.0}).has_value());
    CHECK(run_sizes == std::vector<std::size_t>{1, 1});
}

TEST_CASE("typed publish_batch hands the structs over in runs of PUBLISH_BATCH_RUN" * doctest::timeout(10)) {
    Bus bus;
    std::vector<std::size_t> run_sizes;
    std::vector<std::uint64_t> seen;
    auto sub = bus.subscribe_batch(Quote::TYPE_ID, [&](std::span<const MessageView> run) {
        run_sizes.push_back(run.size());
        for (const auto& v : run) {
            CHECK(v.payload.size() == sizeof(Quote));
            seen.push_back(seq_of(v));
        }
    });
    std::vector<Quote> quotes;
    for (std::uint64_t i = 0; i < Bus::PUBLISH_BATCH_RUN + 10; ++i) quotes.push_back(Quote{i, 1.0, 2.0, 3.0});
    REQUIRE(bus.publish_batch(std::span<const Quote>(quotes)).has_value());
    CHECK(run_sizes == std::vector<std::size_t>{Bus::PUBLISH_BATCH_RUN, 10});
    REQUIRE(seen.size() == quotes.size());
    for (std::uint64_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == i);
}

TEST_CASE("a batch with an oversized payload delivers nothing" * doctest::timeout(10)) {
    Bus bus(BusOptions{.max_payload = 16});
    int calls = 0;
    auto sub = bus.subscribe(1000, [&](const MessageView&) { ++calls; });
    std::vector<std::byte> big(17);
    const std::uint64_t small = 1;
    const std::vector<MessageView> views{{1000, std::as_bytes(std::span<const std::uint64_t>(&small, 1))},
                                         {1000, big}};
    const auto r = bus.publish_batch(views);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == PublishError::TooLarge);
    CHECK(calls == 0);
    CHECK(bus.counters(1000).published == 0);
}

TEST_CASE("a full Fail queue drops its share of a batch and the others still get all of it" * doctest::timeout(10)) {
    Bus bus;
    auto mailbox = std::make_shared<Mailbox>(MailboxOptions{.capacity = 2});
    auto queued = bus.subscribe_mailbox(1000, mailbox, 1, QueuePolicy::Fail);
    int calls = 0;
    auto other = bus.subscribe(1000, [&](const MessageView&) { ++calls; });
    const Batch batch = batch_of(1000, {1, 2, 3, 4});
    const auto r = bus.publish_batch(batch.views);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == PublishError::QueueFull);
    CHECK(calls == 4);
    const auto c = bus.counters(1000);
    CHECK(c.dropped == 2);
    CHECK(c.delivered == 2 + 4);
}

TEST_CASE("a throwing batch subscriber loses its run, counted, and the others run" * doctest::timeout(10)) {
    Bus bus;
    auto thrower = bus.subscribe_batch(1000, [](std::span<const MessageView>) { throw std::runtime_error("boom"); });
    int calls = 0;
    auto other = bus.subscribe(1000, [&](const MessageView&) { ++calls; });
    const Batch batch = batch_of(1000, {1, 2, 3});
    REQUIRE(bus.publish_batch(batch.views).has_value());
    CHECK(calls == 3);
    const auto c = bus.counters(1000);
    CHECK(c.dropped == 3);
    CHECK(c.delivered == 3);
}

TEST_CASE("publish_batch after shutdown is refused, and an empty batch is a no-op" * doctest::timeout(10)) {
    Bus bus;
    CHECK(bus.publish_batch(std::span<const MessageView>{}).has_value());
    bus.shutdown();
    const Batch batch = batch_of(1000, {1});
    const auto r = bus.publish_batch(batch.views);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == PublishError::Closed);
}

TEST_CASE("a batch subscriber closed from another thread never runs after close returns" * doctest::timeout(30)) {
    Bus bus;
    std::atomic<bool> closed{false};
    std::atomic<int> late{0};
    auto sub = bus.subscribe_batch(1000, [&](std::span<const MessageView>) {
        if (closed.load()) late.fetch_add(1);
    });
    std::atomic<bool> stop{false};
    std::thread publisher([&] {
        const Batch batch = batch_of(1000, {1, 2, 3, 4, 5, 6, 7, 8});
        while (!stop.load()) (void)bus.publish_batch(batch.views);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    sub.close();
    closed.store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop.store(true);
    publisher.join();
    CHECK(late.load() == 0);
}

}  // TEST_SUITE
