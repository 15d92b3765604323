// Shared-memory ring benchmarks (issue 5; targets in docs/benchmarks.md):
//   shm.ring_one_way_32B      ns one way, ping-pong halved, consumers spinning    floor: bare SPSC ring ping-pong
//   shm.ring_stream_32B       M msg/s, one producer, one consumer                 floor: bare SPSC ring, 32-byte slots
//   shm.ring_parked_wake_32B  ns from publish to the parked consumer holding it   floor: bare eventfd write -> poll
// The rings are real memfd mappings (MappedRing, 1 MiB, the default) with eventfd
// doorbells configured on both sides, as a link will use them: every publish pays the
// fence and the sleeping-flag load, every release of consumed frames pays the fence and
// the producer-waiting load. Producer (and ping side) on CPU 0, consumer (and echo side)
// on CPU 1, pinned. Floor and ring repetitions are interleaved so that machine noise hits
// both alike. Extra figures (no doorbells, publishing every frame) go to stderr.

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "mycelium/shm_ring.hpp"
#include "spsc_ring.hpp"

using namespace mycelium;
using namespace mycelium::shm;
using bench::Clock;

namespace {

constexpr std::uint16_t PING = 1000;
constexpr std::uint16_t PONG = 1001;
constexpr int PUB_CPU = 0;
constexpr int SUB_CPU = 1;
constexpr auto SPIN_FOREVER = std::chrono::seconds(10);  // spinning sides never park here

struct Msg32 {
    std::uint64_t seq;
    std::uint64_t a, b, c;
};
static_assert(sizeof(Msg32) == 32);

std::span<const std::byte> bytes_of(const Msg32& m) { return {reinterpret_cast<const std::byte*>(&m), sizeof m}; }

schema::Digest digest() {
    schema::Digest d{};
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::uint8_t>(i);
    return d;
}

// Which doorbells a direction has: both (a link whose producer parks when the ring is
// full), only the consumer's (the producer polls for room), or none (both sides spin).
enum class Bells { Both, DataOnly, None };

// One direction of a link: the ring and the two doorbells (the consumer's, rung on
// publish; the producer's, rung when it waits for room).
struct Direction {
    explicit Direction(Bells bells, std::size_t capacity = DEFAULT_RING_CAPACITY)
        : ring(MappedRing::create(capacity, digest(), "bench-shm")) {
        if (bells != Bells::None) consumer_bell = EventFd::create();
        if (bells == Bells::Both) producer_bell = EventFd::create();
    }
    ProducerOptions producer_options() const {
        return ProducerOptions{.notify_fd = consumer_bell.fd(), .wait_fd = producer_bell.fd(), .spin = SPIN_FOREVER};
    }
    ConsumerOptions consumer_options(std::chrono::nanoseconds spin = SPIN_FOREVER) const {
        ConsumerOptions o;
        o.wait_fd = consumer_bell.fd();
        o.notify_fd = producer_bell.fd();
        o.spin = spin;
        return o;
    }
    MappedRing ring;
    EventFd consumer_bell;
    EventFd producer_bell;
};

// --- (1) one-way latency, ping-pong halved -----------------------------------------------

// Each sample is the mean one-way time of BATCH round trips (one round trip is close to
// the clock's own cost).
constexpr int BATCH = 100;
constexpr int WARMUP = 10;

std::vector<double> ring_pingpong(int samples, Bells bells) {
    Direction ping(bells), pong(bells);
    std::atomic<bool> stop{false};
    std::thread echo([&] {
        bench::pin_this_thread(SUB_CPU);
        RingConsumer in(ping.ring.region(), ping.consumer_options());
        RingProducer out(pong.ring.region(), pong.producer_options());
        while (!stop.load(std::memory_order_relaxed)) {
            auto r = in.peek();
            if (r && *r) {
                while (!out.try_write(PONG, (*r)->payload)) {
                }
                in.consume();
            }
        }
    });
    RingProducer out(ping.ring.region(), ping.producer_options());
    RingConsumer in(pong.ring.region(), pong.consumer_options());
    std::vector<double> result;
    Msg32 m{0, 1, 2, 3};
    std::uint64_t sum = 0;
    for (int s = 0; s < samples + WARMUP; ++s) {
        const auto t0 = Clock::now();
        for (int i = 0; i < BATCH; ++i) {
            m.seq++;
            while (!out.try_write(PING, bytes_of(m))) {
            }
            for (;;) {
                auto r = in.peek();
                if (r && *r) {
                    sum += std::to_integer<std::uint64_t>((*r)->payload[0]);
                    in.consume();
                    break;
                }
            }
        }
        if (s >= WARMUP) result.push_back(bench::ns_since(t0) / (2.0 * BATCH));
    }
    bench::do_not_optimize(sum);
    stop = true;
    echo.join();
    return result;
}

bench::Entry one_way_latency(const bench::Args& args) {
    bench::pin_this_thread(PUB_CPU);
    const int rounds = args.quick ? 3 : 10;
    const int per_round = args.quick ? 300 : 1000;
    bench::Entry e{"shm.ring_one_way_32B", "ns", bench::Better::Lower, {},
                   "bare SPSC ring ping-pong / 2, consumer spinning", {}, "<= 400"};
    std::vector<double> data_only, none;
    for (int r = 0; r < rounds; ++r) {
        auto f = bench::ring_pingpong_one_way(per_round, SUB_CPU, BATCH, WARMUP);
        e.floor_samples.insert(e.floor_samples.end(), f.begin(), f.end());
        auto s = ring_pingpong(per_round, Bells::Both);
        e.samples.insert(e.samples.end(), s.begin(), s.end());
        auto d = ring_pingpong(per_round / 3, Bells::DataOnly);
        data_only.insert(data_only.end(), d.begin(), d.end());
        auto b = ring_pingpong(per_round / 3, Bells::None);
        none.insert(none.end(), b.begin(), b.end());
    }
    std::fprintf(stderr,
                 "shm.ring_one_way_32B: ring %.1f ns (p99 %.1f) with both doorbells, %.1f with the consumer's only, "
                 "%.1f without doorbells; floor %.1f ns\n",
                 bench::percentile(e.samples, 50), bench::percentile(e.samples, 99), bench::percentile(data_only, 50),
                 bench::percentile(none, 50), bench::percentile(e.floor_samples, 50));
    return e;
}

// --- (2) one-way stream --------------------------------------------------------------------

double floor_stream(std::uint64_t n) {
    bench::SpscRing<32> ring(4096);
    std::atomic<bool> ready{false};
    std::atomic<std::uint64_t> consumed{0};
    std::thread consumer([&] {
        bench::pin_this_thread(SUB_CPU);
        struct alignas(64) {
            Msg32 m{};
            std::uint64_t seen = 0, sum = 0;
        } st;
        ready = true;
        while (st.seen < n)
            if (ring.try_pop(&st.m)) {
                st.sum += st.m.seq;
                ++st.seen;
            }
        bench::do_not_optimize(st.sum);
        consumed.store(st.seen, std::memory_order_release);
    });
    while (!ready.load()) {
    }
    alignas(64) Msg32 m{0, 1, 2, 3};
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

// `batch`: frames staged per publish (1 = try_write of every frame).
double ring_stream(std::uint64_t n, std::uint64_t batch, Bells bells = Bells::Both) {
    Direction dir(bells);
    std::atomic<bool> ready{false};
    std::atomic<std::uint64_t> consumed{0};
    std::thread consumer([&] {
        bench::pin_this_thread(SUB_CPU);
        RingConsumer c(dir.ring.region(), dir.consumer_options());
        struct alignas(64) {
            std::uint64_t seen = 0, sum = 0;
        } st;
        ready = true;
        while (st.seen < n) {
            auto r = c.read_batch([&](const FrameView& v) {
                std::uint64_t s;
                std::memcpy(&s, v.payload.data(), sizeof s);
                st.sum += s;
                ++st.seen;
            });
            if (!r) {
                std::fprintf(stderr, "bench_shm: ring error %s\n", std::string(to_string(r.error())).c_str());
                std::abort();
            }
            if (*r == 0) detail::cpu_relax();
        }
        bench::do_not_optimize(st.sum);
        consumed.store(st.seen, std::memory_order_release);
    });
    RingProducer p(dir.ring.region(), dir.producer_options());
    while (!ready.load()) {
    }
    alignas(64) Msg32 m{0, 1, 2, 3};
    std::uint64_t staged = 0;
    const auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
        m.seq = i;
        while (!p.try_stage(PING, bytes_of(m))) {
            p.publish();  // full: let the consumer see what is staged, then retry
            staged = 0;
            detail::cpu_relax();
        }
        if (++staged == batch) {
            p.publish();
            staged = 0;
        }
    }
    p.publish();
    while (consumed.load(std::memory_order_acquire) < n) {
    }
    const double ns = bench::ns_since(t0);
    consumer.join();
    return static_cast<double>(n) / ns * 1e3;
}

constexpr std::uint64_t STREAM_BATCH = 64;

bench::Entry stream(const bench::Args& args) {
    bench::pin_this_thread(PUB_CPU);
    const int reps = args.quick ? 5 : 15;
    const std::uint64_t n = args.quick ? 2'000'000 : 10'000'000;
    bench::Entry e{"shm.ring_stream_32B", "M msg/s", bench::Better::Higher, {},
                   "bare SPSC ring, 32-byte slots, same threads and pinning", {}, ">= 100"};
    std::vector<double> unbatched, unbatched_none;
    for (int r = 0; r < reps; ++r) {
        e.floor_samples.push_back(floor_stream(n));
        e.samples.push_back(ring_stream(n, STREAM_BATCH));
        if (r % 3 == 0) {
            unbatched.push_back(ring_stream(n / 4, 1));
            unbatched_none.push_back(ring_stream(n / 4, 1, Bells::None));
        }
    }
    std::fprintf(stderr,
                 "shm.ring_stream_32B: ring %.1f M msg/s publishing every %llu frames; publishing every frame %.1f "
                 "(%.1f without doorbells); floor %.1f\n",
                 bench::percentile(e.samples, 50), static_cast<unsigned long long>(STREAM_BATCH),
                 bench::percentile(unbatched, 50), bench::percentile(unbatched_none, 50),
                 bench::percentile(e.floor_samples, 50));
    return e;
}

// --- (3) wake-up of a parked consumer -----------------------------------------------------

// The producer publishes one frame every GAP carrying its steady_clock time; the consumer
// (spin 0: it parks at once) records now - sent when it holds the frame.
constexpr auto GAP = std::chrono::microseconds(300);

std::int64_t now_ns() { return Clock::now().time_since_epoch().count(); }

std::vector<double> ring_parked_wake(int count) {
    Direction dir(Bells::Both, 64 * 1024);
    std::vector<double> out;
    out.reserve(static_cast<std::size_t>(count));
    std::atomic<bool> ready{false};
    std::thread consumer([&] {
        bench::pin_this_thread(SUB_CPU);
        RingConsumer c(dir.ring.region(), dir.consumer_options(std::chrono::nanoseconds(0)));
        ready = true;
        for (int got = 0; got < count;) {
            if (c.wait(std::chrono::seconds(2)) != RingWait::Ready) break;
            auto r = c.peek();
            if (!r || !*r) continue;
            std::int64_t sent;
            std::memcpy(&sent, (*r)->payload.data(), sizeof sent);
            out.push_back(static_cast<double>(now_ns() - sent));
            c.consume();
            ++got;
        }
    });
    RingProducer p(dir.ring.region(), dir.producer_options());
    while (!ready.load()) {
    }
    Msg32 m{};
    for (int i = 0; i < count; ++i) {
        std::this_thread::sleep_for(GAP);  // the consumer is parked again by now
        const std::int64_t t = now_ns();
        std::memcpy(&m.seq, &t, sizeof t);
        while (!p.try_write(PING, bytes_of(m))) {
        }
    }
    consumer.join();
    return out;
}

std::vector<double> floor_eventfd_wake(int count) {
    EventFd bell = EventFd::create();
    std::atomic<std::int64_t> sent{0};
    std::vector<double> out;
    out.reserve(static_cast<std::size_t>(count));
    std::atomic<bool> ready{false};
    std::thread consumer([&] {
        bench::pin_this_thread(SUB_CPU);
        ready = true;
        for (int got = 0; got < count; ++got) {
            if (!bell.wait(std::chrono::seconds(2))) break;
            const std::int64_t t = sent.load(std::memory_order_acquire);
            out.push_back(static_cast<double>(now_ns() - t));
            bell.drain();
        }
    });
    while (!ready.load()) {
    }
    for (int i = 0; i < count; ++i) {
        std::this_thread::sleep_for(GAP);
        sent.store(now_ns(), std::memory_order_release);
        bell.notify();
    }
    consumer.join();
    return out;
}

bench::Entry parked_wake(const bench::Args& args) {
    bench::pin_this_thread(PUB_CPU);
    const int rounds = args.quick ? 2 : 6;
    const int per_round = args.quick ? 200 : 400;
    bench::Entry e{"shm.ring_parked_wake_32B", "ns", bench::Better::Lower, {},
                   "bare eventfd: write -> poll wake on the other core", {}, "report (wake 20-40 us here)"};
    for (int r = 0; r < rounds; ++r) {
        auto f = floor_eventfd_wake(per_round);
        e.floor_samples.insert(e.floor_samples.end(), f.begin(), f.end());
        auto s = ring_parked_wake(per_round);
        e.samples.insert(e.samples.end(), s.begin(), s.end());
    }
    std::fprintf(stderr,
                 "shm.ring_parked_wake_32B: ring %.0f ns (p90 %.0f, p99 %.0f), floor %.0f ns (p90 %.0f, p99 %.0f)\n",
                 bench::percentile(e.samples, 50), bench::percentile(e.samples, 90), bench::percentile(e.samples, 99),
                 bench::percentile(e.floor_samples, 50), bench::percentile(e.floor_samples, 90),
                 bench::percentile(e.floor_samples, 99));
    return e;
}

}  // namespace

int main(int argc, char** argv) {
    const auto args = bench::parse_args(argc, argv);
    std::vector<bench::Entry> entries;
    try {
        entries.push_back(one_way_latency(args));
        entries.push_back(stream(args));
        entries.push_back(parked_wake(args));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_shm: %s\n", e.what());
        return 1;
    }
    bench::print_json(entries);
    return 0;
}
