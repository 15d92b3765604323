// Metrics must not slow the hot path (issue 7): the bus benchmarks with a metrics server
// serving the bus's counters and being scraped, against the same code without one,
// interleaved in one run.
//   metrics.bus_publish_inline_32B   ns per inline publish, scraped   floor: no metrics
//   metrics.bus_throughput_32B       M msg/s through a queue, scraped floor: no metrics
// The scraper fetches /metrics every 100 ms (Prometheus's default is every 15 s), so the
// figure includes the scrapes' own CPU time on this 2-core machine.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/metrics.hpp"
#include "mycelium/schema.hpp"

using namespace mycelium;
using bench::Clock;

namespace {

constexpr std::uint16_t PING = 1000;
constexpr int PUB_CPU = 0;
constexpr int SUB_CPU = 1;

const schema::Registry& registry() {
    static const schema::Registry r = schema::Registry::load_string(R"(
messages:
  Ping:
    tlv_type: 1000
    fields: {seq: u64, a: u64, b: u64, c: u64}
)",
                                                                    "bench_metrics.yaml");
    return r;
}

/// Fetches http://127.0.0.1:port/metrics; returns the bytes read (0 on failure).
std::size_t fetch(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::size_t total = 0;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        const char request[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if (::send(fd, request, sizeof request - 1, 0) == static_cast<ssize_t>(sizeof request - 1)) {
            char buf[16384];
            ssize_t n;
            while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) total += static_cast<std::size_t>(n);
        }
    }
    ::close(fd);
    return total;
}

/// A metrics server over `bus` and a thread scraping it every 100 ms, while alive.
class ScrapedMetrics {
public:
    explicit ScrapedMetrics(const Bus& bus) : server_("127.0.0.1:0") {
        server_.add(metrics::bus_collector(bus, registry()));
        const auto port = static_cast<std::uint16_t>(std::stoi(server_.address().substr(server_.address().rfind(':') + 1)));
        scraper_ = std::thread([this, port] {
            while (!stop_.load()) {
                if (fetch(port) > 0) scrapes_.fetch_add(1);
                for (int i = 0; i < 10 && !stop_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        });
    }
    ~ScrapedMetrics() {
        stop_.store(true);
        scraper_.join();
    }
    std::uint64_t scrapes() const { return scrapes_.load(); }

private:
    metrics::Server server_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> scrapes_{0};
    std::thread scraper_;
};

std::uint64_t g_sink = 0;

/// Mean ns per inline publish over `ops`, with or without metrics being scraped.
double inline_publish_ns(bool scraped, int ops) {
    Bus bus;
    auto sub = bus.subscribe(PING, [](const MessageView& m) {
        std::uint64_t v;
        std::memcpy(&v, m.payload.data(), sizeof v);
        g_sink += v;
    });
    std::optional<ScrapedMetrics> metrics;
    if (scraped) metrics.emplace(bus);
    std::uint64_t msg[4] = {0, 1, 2, 3};
    const std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(msg), sizeof msg);
    const auto t0 = Clock::now();
    for (int i = 0; i < ops; ++i) {
        msg[0] = static_cast<std::uint64_t>(i);
        (void)bus.publish(PING, payload);
        bench::do_not_optimize(msg);
    }
    return bench::ns_since(t0) / ops;
}

/// M msg/s from one publisher to one queued consumer, with or without metrics.
double throughput(bool scraped, std::uint64_t n) {
    Bus bus;
    std::atomic<std::uint64_t> consumed{0};
    struct alignas(64) ConsumerState {
        std::uint64_t seen = 0;
    } state;
    QueueOptions qo;
    qo.capacity = 4096;
    qo.spin = std::chrono::seconds(2);
    qo.cpu = SUB_CPU;
    auto sub = bus.subscribe_queued(
        PING,
        [&](const MessageView&) {
            if (++state.seen == n) consumed.store(state.seen, std::memory_order_release);
        },
        qo);
    std::optional<ScrapedMetrics> metrics;
    if (scraped) metrics.emplace(bus);
    alignas(64) std::uint64_t msg[4] = {0, 1, 2, 3};
    const std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(msg), sizeof msg);
    const auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
        msg[0] = i;
        (void)bus.publish(PING, payload);
    }
    while (consumed.load(std::memory_order_acquire) < n) {
    }
    return static_cast<double>(n) / bench::ns_since(t0) * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
    const auto args = bench::parse_args(argc, argv);
    bench::pin_this_thread(PUB_CPU);
    std::vector<bench::Entry> entries;

    bench::Entry inline_entry{"metrics.bus_publish_inline_32B", "ns", bench::Better::Lower, {},
                              "the same bus without a metrics server", {}, "<= 1.10 x floor"};
    const int reps = args.quick ? 7 : 21;
    const int ops = args.quick ? 2'000'000 : 5'000'000;  // ~50 ms: several scrapes land in each
    (void)inline_publish_ns(false, ops);                  // warm-up
    for (int r = 0; r < reps; ++r) {
        inline_entry.floor_samples.push_back(inline_publish_ns(false, ops));
        inline_entry.samples.push_back(inline_publish_ns(true, ops));
    }
    entries.push_back(inline_entry);

    bench::Entry throughput_entry{"metrics.bus_throughput_32B", "M msg/s", bench::Better::Higher, {},
                                  "the same bus without a metrics server", {}, ">= 0.90 x floor"};
    const int t_reps = args.quick ? 5 : 15;
    const std::uint64_t n = args.quick ? 2'000'000 : 8'000'000;
    for (int r = 0; r < t_reps; ++r) {
        throughput_entry.floor_samples.push_back(throughput(false, n));
        throughput_entry.samples.push_back(throughput(true, n));
    }
    entries.push_back(throughput_entry);

    bench::do_not_optimize(g_sink);
    bench::print_json(entries);
    return 0;
}
