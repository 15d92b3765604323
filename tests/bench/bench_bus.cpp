// Bus benchmarks (issue targets in docs/benchmarks.md):
//   bus.publish_inline_32B      ns per publish to one inline subscriber   floor: std::function call
//   bus.queued_one_way_32B      ns one way to a spinning queued consumer  floor: bare SPSC ring
//   bus.queued_throughput_32B   M msg/s, one publisher, one consumer      floor: bare SPSC ring
// The publisher runs on CPU 0 and the consumer on CPU 1 (pinned): on a 2-vCPU VM an
// unpinned spinning pair sometimes lands on one core and measures the scheduler instead.
// Floor and bus repetitions are interleaved so machine noise hits both alike.

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "mycelium/bus.hpp"
#include "spsc_ring.hpp"

using namespace mycelium;
using bench::Clock;

namespace {

constexpr std::uint16_t PING = 1000;
constexpr std::uint16_t PONG = 1001;
constexpr int PUB_CPU = 0;
constexpr int SUB_CPU = 1;
constexpr auto SPIN = std::chrono::seconds(2);  // consumers spin for the whole run

struct Msg32 {
    static constexpr std::uint16_t TYPE_ID = PING;
    std::uint64_t seq;
    std::uint64_t a, b, c;
};
static_assert(sizeof(Msg32) == 32);

std::span<const std::byte> bytes_of(const Msg32& m) {
    return {reinterpret_cast<const std::byte*>(&m), sizeof m};
}

// --- (1) inline publish ------------------------------------------------------------------

std::uint64_t g_sink = 0;

bench::Entry inline_publish(const bench::Args& args) {
    const int reps = args.quick ? 9 : 31;
    const int ops = args.quick ? 200000 : 1000000;
    bench::pin_this_thread(PUB_CPU);

    auto callback = [](const MessageView& m) {
        std::uint64_t v;
        std::memcpy(&v, m.payload.data(), sizeof v);
        g_sink += v;
    };
    Bus bus;
    auto sub = bus.subscribe(PING, callback);
    std::function<void(const MessageView&)> direct = callback;

    bench::Entry e{"bus.publish_inline_32B", "ns", bench::Better::Lower, {},
                   "std::function call of the same callback", {}, "<= 20"};
    Msg32 m{0, 1, 2, 3};
    for (int r = 0; r < reps + 1; ++r) {  // repetition 0 warms up
        auto t0 = Clock::now();
        for (int i = 0; i < ops; ++i) {
            m.seq = static_cast<std::uint64_t>(i);
            direct(MessageView{PING, bytes_of(m)});
            bench::do_not_optimize(m);
        }
        const double floor_ns = bench::ns_since(t0) / ops;
        t0 = Clock::now();
        for (int i = 0; i < ops; ++i) {
            m.seq = static_cast<std::uint64_t>(i);
            (void)bus.publish(PING, bytes_of(m));
            bench::do_not_optimize(m);
        }
        const double bus_ns = bench::ns_since(t0) / ops;
        if (r == 0) continue;
        e.floor_samples.push_back(floor_ns);
        e.samples.push_back(bus_ns);
    }
    bench::do_not_optimize(g_sink);
    return e;
}

// --- (2) one-way latency, ping-pong halved -----------------------------------------------

// Each sample is the mean one-way time of BATCH round trips (a single round trip is close
// to the clock's own cost).
constexpr int BATCH = 100;

std::vector<double> bus_pingpong(int samples) {
    Bus bus;
    // The echo: a queued subscriber with its own (spinning, pinned) thread that publishes
    // the message back; the pong goes into a mailbox this thread drains while spinning.
    QueueOptions qo;
    qo.spin = SPIN;
    qo.cpu = SUB_CPU;
    auto echo = bus.subscribe_queued(
        PING, [&bus](const MessageView& m) { (void)bus.publish(PONG, m.payload); }, qo);
    auto back = std::make_shared<Mailbox>(MailboxOptions{.capacity = 1024, .spin = SPIN});
    auto pong = bus.subscribe_mailbox(PONG, back, 1);

    std::vector<double> out;
    Msg32 m{0, 1, 2, 3};
    std::uint64_t got = 0;
    auto count = [&got](const MailboxView&) { ++got; };
    for (int s = 0; s < samples + 10; ++s) {
        const auto t0 = Clock::now();
        for (int i = 0; i < BATCH; ++i) {
            m.seq++;
            (void)bus.publish(PING, bytes_of(m));
            const std::uint64_t want = got + 1;
            while (got < want) back->drain(count, 1);
        }
        if (s >= 10) out.push_back(bench::ns_since(t0) / (2.0 * BATCH));
    }
    return out;
}

bench::Entry one_way_latency(const bench::Args& args) {
    bench::pin_this_thread(PUB_CPU);
    const int rounds = args.quick ? 3 : 10;
    const int per_round = args.quick ? 300 : 1000;
    bench::Entry e{"bus.queued_one_way_32B", "ns", bench::Better::Lower, {},
                   "bare SPSC ring ping-pong / 2, consumer spinning", {}, "<= 400"};
    for (int r = 0; r < rounds; ++r) {
        auto f = bench::ring_pingpong_one_way(per_round, SUB_CPU, BATCH);
        e.floor_samples.insert(e.floor_samples.end(), f.begin(), f.end());
        auto b = bus_pingpong(per_round);
        e.samples.insert(e.samples.end(), b.begin(), b.end());
    }
    return e;
}

// --- (3) throughput ----------------------------------------------------------------------

double ring_throughput(std::uint64_t n) {
    bench::SpscRing<32> ring(4096);
    std::atomic<bool> ready{false};
    std::atomic<std::uint64_t> consumed{0};
    std::thread consumer([&] {
        bench::pin_this_thread(SUB_CPU);
        Msg32 m{};
        std::uint64_t seen = 0, sum = 0;
        ready = true;
        while (seen < n)
            if (ring.try_pop(&m)) {
                sum += m.seq;
                ++seen;
            }
        bench::do_not_optimize(sum);
        consumed.store(seen, std::memory_order_release);
    });
    while (!ready.load()) {
    }
    Msg32 m{0, 1, 2, 3};
    const auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
        m.seq = i;
        while (!ring.try_push(&m)) {
        }
    }
    while (consumed.load(std::memory_order_acquire) < n) {
    }
    const double ns = bench::ns_since(t0);
    consumer.join();
    return static_cast<double>(n) / ns * 1e3;  // M msg/s
}

double bus_throughput(std::uint64_t n) {
    Bus bus;
    std::atomic<std::uint64_t> consumed{0};
    // Consumer-only state on its own cache line: next to the publisher's message on the
    // stack it would be false-shared and cost ~30 ns per message.
    struct alignas(64) ConsumerState {
        std::uint64_t seen = 0, sum = 0;
    } state;
    auto& seen = state.seen;
    auto& sum = state.sum;
    QueueOptions qo;
    qo.capacity = 4096;
    qo.spin = SPIN;
    qo.cpu = SUB_CPU;
    auto sub = bus.subscribe_queued(
        PING,
        [&](const MessageView& v) {
            std::uint64_t s;
            std::memcpy(&s, v.payload.data(), sizeof s);
            sum += s;
            if (++seen == n + 1) consumed.store(seen, std::memory_order_release);
        },
        qo);
    alignas(64) Msg32 m{0, 1, 2, 3};
    (void)bus.publish(m);  // warm the path; the consumer is idle-spinning after it
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
        m.seq = i;
        (void)bus.publish(m);
    }
    while (consumed.load(std::memory_order_acquire) < n + 1) {
    }
    const double ns = bench::ns_since(t0);
    bench::do_not_optimize(sum);
    return static_cast<double>(n) / ns * 1e3;
}

bench::Entry throughput(const bench::Args& args) {
    bench::pin_this_thread(PUB_CPU);
    const int reps = args.quick ? 5 : 15;
    const std::uint64_t n = args.quick ? 1'000'000 : 4'000'000;
    bench::Entry e{"bus.queued_throughput_32B", "M msg/s", bench::Better::Higher, {},
                   "bare SPSC ring, 32-byte slots", {}, ">= 20"};
    for (int r = 0; r < reps; ++r) {
        e.floor_samples.push_back(ring_throughput(n));
        e.samples.push_back(bus_throughput(n));
    }
    return e;
}

}  // namespace

int main(int argc, char** argv) {
    const auto args = bench::parse_args(argc, argv);
    std::vector<bench::Entry> entries;
    entries.push_back(inline_publish(args));
    entries.push_back(one_way_latency(args));
    entries.push_back(throughput(args));
    bench::print_json(entries);
    return 0;
}
