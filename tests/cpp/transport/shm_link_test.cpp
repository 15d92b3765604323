// Links over shared-memory rings (docs/wire-protocol.md, "Shared-memory setup"): a
// LinkServer with shm enabled and LinkClients that call request_shm(). Every test has
// its own temp dir for the socket, and every wait has a timeout.

#include <doctest/doctest.h>

#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mycelium/bus.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/link.hpp"
#include "mycelium/link_client.hpp"
#include "mycelium/schema.hpp"
#include "mycelium/shm_ring.hpp"
#include "test_support.hpp"

using namespace mycelium;
using namespace mycelium::link;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::uint16_t COUNTER = 1002;  // 16 bytes

const schema::Registry& registry() {
    static const schema::Registry r = schema::Registry::load_string(R"(
messages:
  TextMessage:
    tlv_type: 1001
    fields:
      sender: {type: String, max_length: 32}
      content: {type: String, max_length: 256}
      timestamp: u64
  CounterUpdate:
    tlv_type: 1002
    fields:
      counter_id: u32
      value: u64
)",
                                                                    "shm_link_test.yaml");
    return r;
}

struct TempDir : test_support::TempDir {
    TempDir() : test_support::TempDir("myc-shml") {}
};

using test_support::counter;

std::uint32_t counter_id(const Frame& f) {
    std::uint32_t id = 0;
    std::memcpy(&id, f.payload.data(), 4);
    return id;
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    return test_support::wait_until(done, timeout, 1ms);
}

ServerOptions shm_options() {
    ServerOptions o;
    o.shm_enabled = true;
    o.shm_ring_bytes = 1u << 16;
    return o;
}

struct Node {
    TempDir dir;
    Bus bus;
    LinkServer server;
    Endpoint ep;
    explicit Node(ServerOptions options = shm_options())
        : server(bus, registry(), options), ep(server.listen(dir.socket())) {}
};

/// A client that said HELLO, subscribed to CounterUpdate and (if `shm`) moved to rings.
LinkClient client(const Endpoint& ep, const std::string& name, bool shm = true) {
    LinkClient c = LinkClient::connect(ep, registry().digest());
    REQUIRE(c.hello(Role::Client, name));
    const std::uint16_t ids[] = {COUNTER};
    REQUIRE(c.subscribe(ids));
    if (shm) {
        const auto set_up = c.request_shm();
        REQUIRE_MESSAGE(set_up, "request_shm failed: " << static_cast<int>(set_up.error()));
        REQUIRE(c.shm_active());
    }
    REQUIRE(c.sync());
    return c;
}

void expect_counter(LinkClient& c, std::uint32_t id) {
    auto f = c.receive_message(5s);
    REQUIRE_MESSAGE(f, "no frame: error " << static_cast<int>(f.error()));
    CHECK(f->type_id == COUNTER);
    CHECK(counter_id(*f) == id);
}

void expect_error_then_close(LinkClient& c, ErrorCode code) {
    for (;;) {
        auto f = c.receive(5s);
        REQUIRE_MESSAGE(f, "no ERROR frame: receive error " << static_cast<int>(f.error()));
        if (f->type_id >= schema::MIN_APP_TYPE_ID) continue;
        REQUIRE(f->type_id == control::ERROR);
        const auto e = decode_error(f->payload);
        REQUIRE(e);
        CHECK_MESSAGE(e->code == code, "got " << to_string(e->code) << ": " << e->reason);
        break;
    }
    auto end = c.receive(5s);
    REQUIRE_FALSE(end);
    CHECK(end.error() == ReceiveError::Closed);
}

/// Lines of /proc/self/maps that map one of the links' memfds.
std::size_t link_mappings() {
    std::ifstream maps("/proc/self/maps");
    std::size_t n = 0;
    for (std::string line; std::getline(maps, line);) {
        if (line.find("memfd:mycelium-link") != std::string::npos) ++n;
    }
    return n;
}

std::set<std::string> dev_shm() {
    std::set<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/dev/shm", ec)) names.insert(e.path().filename().string());
    return names;
}

std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

}  // namespace

TEST_SUITE("transport.shm") {
    TEST_CASE("frames make a round trip over shared memory, in order, beside a socket client") {
        ServerOptions o = shm_options();
        o.shm_ring_bytes = 1u << 20;  // 43690 frames of 24 bytes: the burst wraps both rings
        Node node(o);
        LinkClient a = client(node.ep, "a");
        LinkClient b = client(node.ep, "b");
        LinkClient plain = client(node.ep, "plain", false);
        constexpr std::uint32_t N = 50000;  // 1.2 MB: both 1 MiB rings wrap
        std::atomic<std::uint32_t> in_order{0};
        std::thread reader([&] {
            for (std::uint32_t i = 1; i <= N; ++i) {
                auto f = b.receive_message(10s);
                if (!f || f->type_id != COUNTER || counter_id(*f) != i) return;
                in_order = i;
            }
        });
        const auto give_up = std::chrono::steady_clock::now() + 30s;
        for (std::uint32_t i = 1; i <= N; ++i) {
            REQUIRE(a.send(COUNTER, counter(i, i)));
            // Stay within half a ring of b's reader: a full ring would (rightly) disconnect
            // b as a slow consumer when this test shares the machine with others.
            while (i - in_order.load() > 20000 && std::chrono::steady_clock::now() < give_up)
                std::this_thread::sleep_for(1ms);
        }
        reader.join();
        CHECK(in_order == N);
        for (std::uint32_t i = 1; i <= N; ++i) expect_counter(plain, i);
        REQUIRE(b.send(COUNTER, counter(77, 1)));
        expect_counter(a, 77);
        expect_counter(plain, 77);
        REQUIRE(plain.send(COUNTER, counter(88, 1)));
        expect_counter(a, 88);
        expect_counter(b, 88);
        REQUIRE(a.sync());  // PING and PONG go through the rings too
        const LinkStats s = node.server.stats();
        CHECK(s.shm_links == 2);
        CHECK(s.shm_corrupt == 0);
        CHECK(s.shm_frames_received >= N + 1);
        CHECK(s.shm_frames_sent >= N + 2);
    }

    TEST_CASE("a host with shared memory disabled refuses and the client stays on the socket") {
        Node node(ServerOptions{});
        LinkClient a = LinkClient::connect(node.ep, registry().digest());
        REQUIRE(a.hello(Role::Client, "a"));
        const std::uint16_t ids[] = {COUNTER};
        REQUIRE(a.subscribe(ids));
        const auto set_up = a.request_shm();
        REQUIRE_FALSE(set_up);
        CHECK(set_up.error() == ShmSetupError::Refused);
        REQUIRE(a.shm_refusal());
        CHECK(a.shm_refusal()->reason == ShmRefusal::Disabled);
        CHECK_FALSE(a.shm_active());
        LinkClient b = client(node.ep, "b", false);
        REQUIRE(a.send(COUNTER, counter(5, 5)));
        expect_counter(b, 5);
        REQUIRE(b.send(COUNTER, counter(6, 6)));
        expect_counter(a, 6);
        CHECK(node.server.stats().shm_refused == 1);
    }

    TEST_CASE("shared memory over TCP is refused as not local") {
        Bus bus;
        LinkServer server(bus, registry(), shm_options());
        const Endpoint ep = server.listen("tcp:127.0.0.1:0");
        LinkClient a = LinkClient::connect(ep, registry().digest());
        REQUIRE(a.hello(Role::Client, "a"));
        const auto set_up = a.request_shm();
        REQUIRE_FALSE(set_up);
        CHECK(set_up.error() == ShmSetupError::Refused);
        CHECK(a.shm_refusal()->reason == ShmRefusal::NotLocal);
        REQUIRE(a.sync());
    }

    TEST_CASE("a corrupted ring closes only that link") {
        Node node;
        LinkClient bad = client(node.ep, "bad");
        LinkClient a = client(node.ep, "a");
        LinkClient b = client(node.ep, "b", false);
        REQUIRE(bad.send(COUNTER, counter(1, 1)));
        expect_counter(a, 1);
        expect_counter(b, 1);
        // Scribble a producer index that is not a multiple of 8 and wake the host.
        const ShmDiagnostics d = bad.shm_diagnostics();
        REQUIRE(d.send_ring.size() > shm::RING_HEADER_SIZE);
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(d.send_ring.data() +
                                                                         shm::offsets::PRODUCER_INDEX))
            .store(12345, std::memory_order_seq_cst);
        shm::EventFd::notify_fd(d.host_doorbell);
        expect_error_then_close(bad, ErrorCode::ShmCorrupt);
        CHECK(wait_until([&] { return node.server.stats().shm_corrupt == 1; }));
        REQUIRE(a.send(COUNTER, counter(2, 2)));
        expect_counter(b, 2);
        REQUIRE(b.send(COUNTER, counter(3, 3)));
        expect_counter(a, 3);
    }

    TEST_CASE("a garbage frame header in the ring is rejected like one on the socket") {
        Node node;
        LinkClient bad = client(node.ep, "bad");
        const ShmDiagnostics d = bad.shm_diagnostics();
        std::byte* data = d.send_ring.data() + shm::RING_HEADER_SIZE;
        const std::uint64_t p = std::atomic_ref<std::uint64_t>(
                                    *reinterpret_cast<std::uint64_t*>(d.send_ring.data() + shm::offsets::PRODUCER_INDEX))
                                    .load();
        const std::uint64_t cap = d.send_ring.size() - shm::RING_HEADER_SIZE;
        // Type 4000 (not in the contracts), 16 bytes, published by hand.
        const std::uint64_t word = 4000u | (std::uint64_t{16} << 16);
        std::memcpy(data + (p & (cap - 1)), &word, 8);
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(d.send_ring.data() + shm::offsets::PRODUCER_INDEX))
            .store(p + 24, std::memory_order_seq_cst);
        shm::EventFd::notify_fd(d.host_doorbell);
        expect_error_then_close(bad, ErrorCode::UnknownType);
        CHECK(wait_until([&] { return node.server.stats().unknown_type == 1; }));
    }

    TEST_CASE("the far side closing is noticed within 100 ms") {
        SUBCASE("the host sees the client go") {
            Node node;
            LinkClient a = client(node.ep, "a");
            std::this_thread::sleep_for(20ms);  // the host's reader parks
            REQUIRE(node.server.stats().active == 1);
            const auto t0 = std::chrono::steady_clock::now();
            a.close();
            REQUIRE(wait_until([&] { return node.server.stats().active == 0; }, 1s));
            CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
        }
        SUBCASE("a parked client sees the host go") {
            auto node = std::make_unique<Node>();
            LinkClient a = client(node->ep, "a");
            a.set_shm_spin(std::chrono::microseconds(10));
            std::atomic<std::int64_t> stopped_at{0};
            std::thread stopper([&] {
                std::this_thread::sleep_for(50ms);  // the client is parked by now
                stopped_at = std::chrono::steady_clock::now().time_since_epoch().count();
                node->server.stop();
            });
            auto f = a.receive(5s);
            const auto t1 = std::chrono::steady_clock::now().time_since_epoch().count();
            stopper.join();
            // ERROR shutting_down on the socket, then the end of the stream.
            if (f) {
                CHECK(f->type_id == control::ERROR);
                f = a.receive(5s);
            }
            REQUIRE_FALSE(f);
            CHECK(f.error() == ReceiveError::Closed);
            CHECK(std::chrono::nanoseconds(t1 - stopped_at.load()) < 100ms);
        }
    }

    TEST_CASE("a full ring drops new frames under drop_oldest and never overwrites unread ones") {
        ServerOptions o = shm_options();
        o.slow_consumer = SlowConsumerPolicy::DropOldest;
        Node node(o);
        LinkClient slow = client(node.ep, "slow");
        LinkClient fast = client(node.ep, "fast", false);
        constexpr std::uint32_t N = 20000;  // far more than a 64 KiB ring holds (24 B each)
        for (std::uint32_t i = 1; i <= N; ++i) REQUIRE(fast.send(COUNTER, counter(i, i)));
        REQUIRE(fast.sync());
        REQUIRE(wait_until([&] { return node.server.stats().dropped_frames > 0; }));
        // What arrives is a prefix 1..k, in order: nothing was overwritten.
        std::uint32_t expected = 1;
        for (;;) {
            auto f = slow.receive_message(200ms);
            if (!f) break;
            CHECK(counter_id(*f) == expected);
            ++expected;
        }
        const LinkStats s = node.server.stats();
        CHECK(expected - 1 + s.dropped_frames == N);
        CHECK(s.slow_consumers == 0);
        // Still connected: new frames flow again.
        REQUIRE(fast.send(COUNTER, counter(N + 1, 1)));
        expect_counter(slow, N + 1);
    }

    TEST_CASE("a full ring disconnects a slow consumer by default") {
        Node node;
        LinkClient slow = client(node.ep, "slow");
        LinkClient fast = client(node.ep, "fast", false);
        for (std::uint32_t i = 1; i <= 20000; ++i) REQUIRE(fast.send(COUNTER, counter(i, i)));
        REQUIRE(wait_until([&] { return node.server.stats().slow_consumers == 1; }));
        REQUIRE(wait_until([&] { return node.server.stats().active == 1; }));
    }

    TEST_CASE("a reconnecting client gets fresh rings and nothing is left behind") {
        const auto shm_before = dev_shm();
        const std::size_t fds_before = open_fds();
        {
            Node node;
            {
                LinkClient a = client(node.ep, "a");
                LinkClient b = client(node.ep, "b");
                for (std::uint32_t i = 1; i <= 100; ++i) REQUIRE(a.send(COUNTER, counter(i, i)));
                for (std::uint32_t i = 1; i <= 100; ++i) expect_counter(b, i);
            }
            REQUIRE(wait_until([&] { return node.server.stats().active == 0; }));
            LinkClient a = client(node.ep, "a");
            const ShmDiagnostics d = a.shm_diagnostics();
            // A fresh ring: its producer index starts again from 0 (sync's PING is 16 bytes).
            const std::uint64_t p = std::atomic_ref<std::uint64_t>(
                                        *reinterpret_cast<std::uint64_t*>(d.send_ring.data() + shm::offsets::PRODUCER_INDEX))
                                        .load();
            CHECK(p == 16);
            LinkClient b = client(node.ep, "b");
            REQUIRE(a.send(COUNTER, counter(9, 9)));
            expect_counter(b, 9);
            CHECK(node.server.stats().shm_links == 4);
        }
        CHECK(link_mappings() == 0);
        CHECK(open_fds() == fds_before);
        CHECK(dev_shm() == shm_before);
    }
}
