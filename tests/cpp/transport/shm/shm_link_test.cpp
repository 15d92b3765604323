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
#include <optional>
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
#include "transport/link_conformance.hpp"

using namespace mycelium;
using namespace mycelium::link;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::uint16_t TEXT = 1001;
constexpr std::uint16_t COUNTER = 1002;  // 16 bytes, 24 in a ring

const schema::Registry& registry() {
    static const schema::Registry r =
        schema::Registry::load_string(test_support::TEXT_AND_COUNTER_CONTRACTS, "shm_link_test.yaml");
    return r;
}

struct TempDir : test_support::TempDir {
    TempDir() : test_support::TempDir("myc-shml") {}
};

using test_support::counter;
using test_support::counter_id;
using link_conformance::expect_counter;
using link_conformance::expect_error_then_close;

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

/// A client on shared memory subscribed to `types` only.
LinkClient subscriber(const Endpoint& ep, const std::string& name, std::span<const std::uint16_t> types) {
    LinkClient c = LinkClient::connect(ep, registry().digest());
    REQUIRE(c.hello(Role::Client, name));
    REQUIRE(c.subscribe(types));
    REQUIRE(c.request_shm());
    REQUIRE(c.shm_active());
    REQUIRE(c.sync());
    return c;
}

/// Encodes one frame as the wire carries it (header, payload).
void append_frame(std::vector<std::byte>& out, std::uint16_t type_id, std::span<const std::byte> payload) {
    const std::size_t at = out.size();
    out.resize(at + codec::HEADER_SIZE + payload.size());
    codec::encode_header(type_id, static_cast<std::uint32_t>(payload.size()),
                         std::span<std::byte, codec::HEADER_SIZE>(out.data() + at, codec::HEADER_SIZE));
    std::memcpy(out.data() + at + codec::HEADER_SIZE, payload.data(), payload.size());
}

/// Receives counters 1..n in order (false at the first gap, wrong frame or timeout).
bool receive_counters(LinkClient& c, std::uint32_t first, std::uint32_t n, std::chrono::milliseconds each = 5s) {
    for (std::uint32_t i = first; i < first + n; ++i) {
        auto f = c.receive_message(each);
        if (!f || f->type_id != COUNTER || counter_id(*f) != i) {
            MESSAGE("expected counter " << i << ", got "
                                        << (f ? "type " + std::to_string(f->type_id) + " id " +
                                                    std::to_string(f->type_id == COUNTER ? counter_id(*f) : 0)
                                              : "error " + std::to_string(static_cast<int>(f.error()))));
            return false;
        }
    }
    return true;
}

/// A node whose rings are 4096 bytes (about 170 CounterUpdates) under `policy`.
ServerOptions small_ring(SlowConsumerPolicy policy, std::chrono::milliseconds wait = 1000ms) {
    ServerOptions o = shm_options();
    o.shm_ring_bytes = 4096;
    o.slow_consumer = SlowConsumerPolicies::all(policy);
    o.slow_consumer_wait = wait;
    return o;
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

/// /dev/shm's entries, but the folders the SDK's tests make there at the same time
/// (`myc-test-*`, Mycelium's call shape): ctest runs the suites side by side.
std::set<std::string> dev_shm() {
    std::set<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/dev/shm", ec)) {
        std::string name = e.path().filename().string();
        if (!name.starts_with("myc-test-")) names.insert(std::move(name));
    }
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

    TEST_CASE("a frame of an unknown type in the ring is dropped, as on the socket, and the link goes on") {
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
        auto f = bad.receive(5s);
        REQUIRE(f);
        REQUIRE(f->type_id == control::ERROR);
        const auto e = decode_error(f->payload);
        REQUIRE(e);
        CHECK(e->code == ErrorCode::UnknownType);
        CHECK(wait_until([&] { return node.server.stats().unknown_type == 1; }));
        // The link is still up. (Its own ring was written behind the client's back, so
        // the host's direction shows it.)
        REQUIRE(node.bus.publish(COUNTER, counter(4, 4)));
        expect_counter(bad, 4);
        CHECK(node.server.stats().active == 1);
    }

    TEST_CASE("a payload in the ring that breaks its contract is dropped and told, as on the socket, unless trusted") {
        for (const bool trusted : {false, true}) {
            CAPTURE(trusted);
            ServerOptions options = shm_options();
            if (trusted) options.trust_payloads = TrustPayloads::All;
            Node node(options);
            const std::uint16_t text_only[] = {TEXT};
            LinkClient reader = subscriber(node.ep, "reader", text_only);
            LinkClient writer = client(node.ep, "writer");  // on the rings
            REQUIRE(writer.send(TEXT, test_support::text_message("before")));
            REQUIRE(writer.send(TEXT, test_support::text_message("\xff\xfe")));
            REQUIRE(writer.send(TEXT, test_support::text_message(std::string(32, 'x'), 33)));
            REQUIRE(writer.send(TEXT, test_support::text_message("after")));
            REQUIRE(writer.sync());
            std::vector<std::string> senders = {"before", "after"};
            if (trusted) senders = {"before", "\xff\xfe", std::string(32, 'x'), "after"};
            for (const std::string& sender : senders) {
                auto f = reader.receive_message(5s);
                REQUIRE(f);
                REQUIRE(f->type_id == TEXT);
                CHECK(test_support::text_sender(f->payload) == sender);
            }
            CHECK(node.server.stats().invalid_payload == (trusted ? 0u : 2u));
            if (!trusted) {
                for (int i = 0; i < 2; ++i) {
                    auto f = writer.receive(5s);
                    REQUIRE(f);
                    REQUIRE(f->type_id == control::ERROR);
                    const auto e = decode_error(f->payload);
                    REQUIRE(e);
                    CHECK(e->code == ErrorCode::InvalidPayload);
                }
            }
            // The link is up and still on the rings.
            CHECK(writer.shm_active());
            REQUIRE(node.bus.publish(COUNTER, counter(5, 5)));
            expect_counter(writer, 5);
            CHECK(node.server.stats().active == 2);
            // The ring reader adds its count after its turn: the frames came that way.
            CHECK(wait_until([&] { return node.server.stats().shm_frames_received >= 4; }));
        }
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
        o.slow_consumer = SlowConsumerPolicies::all(SlowConsumerPolicy::DropOldest);
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

    TEST_CASE("frames relayed in one read batch are published together and none is left behind") {
        // One socket write of 357 CounterUpdates (5 x 64 + 37) and a TextMessage: the host
        // reads them in a few batches and stages the counters for `counters` while more
        // frames of the batch follow. The batch that ends with the TextMessage (which goes
        // to `texts` only) leaves the counters before it staged: only the end of the batch
        // publishes them. A missing flush leaves that tail in the ring, unseen.
        Node node;
        const std::uint16_t counter_type[] = {COUNTER};
        const std::uint16_t text_type[] = {TEXT};
        LinkClient counters = subscriber(node.ep, "counters", counter_type);
        LinkClient texts = subscriber(node.ep, "texts", text_type);
        LinkClient source = client(node.ep, "source", false);
        const std::size_t text_size = registry().find(TEXT)->size;
        const std::vector<std::byte> text(text_size);
        constexpr std::uint32_t N = 5 * 64 + 37;
        for (std::uint32_t round = 0; round < 3; ++round) {
            std::vector<std::byte> burst;
            for (std::uint32_t i = 1; i <= N; ++i) append_frame(burst, COUNTER, counter(round * N + i, i));
            append_frame(burst, TEXT, text);
            REQUIRE(source.send_raw(burst));
            CHECK(receive_counters(counters, round * N + 1, N));
            auto t = texts.receive_message(5s);
            REQUIRE(t);
            CHECK(t->type_id == TEXT);
        }
        // Nothing more: every counter was delivered exactly once.
        CHECK_FALSE(counters.receive_message(50ms));
        REQUIRE(counters.sync());
        const LinkStats s = node.server.stats();
        CHECK(s.shm_frames_sent >= 3 * (N + 1));
        CHECK(s.slow_consumers == 0);
        CHECK(s.dropped_frames == 0);
    }

    TEST_CASE("Bus::publish_batch sends a run in order and skips only a frame of the wrong size") {
        Node node;
        bool over_shm = true;
        SUBCASE("over shared memory") {}
        SUBCASE("over the socket") { over_shm = false; }
        LinkClient a = client(node.ep, "a", over_shm);
        // 150 counters in one batch (several rings' publishes' worth), the 100th 4 bytes short.
        std::vector<std::vector<std::byte>> payloads;
        for (std::uint32_t i = 1; i <= 150; ++i) payloads.push_back(counter(i, i));
        payloads[99].resize(payloads[99].size() - 4);
        std::vector<MessageView> run;
        for (const auto& p : payloads) run.push_back(MessageView{COUNTER, p});
        REQUIRE(node.bus.publish_batch(run));
        CHECK(receive_counters(a, 1, 99));
        CHECK(receive_counters(a, 101, 50));
        CHECK_FALSE(a.receive_message(50ms));
        CHECK(node.server.stats().unsendable == 1);
    }

    TEST_CASE("frames read from a ring in runs keep their order around control frames and are not echoed") {
        // The source's 4096-byte ring wraps every ~170 counters: the host reader's runs end
        // at each wrap, at each control frame (SUBSCRIBE/UNSUBSCRIBE, every 7th frame) and
        // at 64 frames. The sink's 64 KiB ring holds all N counters: it is never a slow
        // consumer, however late its reader thread runs.
        Node node;
        LinkClient sink = client(node.ep, "sink");
        LinkClient source = LinkClient::connect(node.ep, registry().digest());
        REQUIRE(source.hello(Role::Client, "source"));
        const std::uint16_t counter_type[] = {COUNTER};
        REQUIRE(source.subscribe(counter_type));  // so its own counters would come back if echoed
        REQUIRE(source.request_shm(4096));
        REQUIRE(source.shm_active());
        REQUIRE(source.sync());
        constexpr std::uint32_t N = 2000;
        std::atomic<bool> ok{false};
        std::thread reader([&] { ok = receive_counters(sink, 1, N); });
        const std::uint16_t text_type[] = {TEXT};
        for (std::uint32_t i = 1; i <= N; ++i) {
            const bool sent = source.send(COUNTER, counter(i, i)) &&
                              (i % 7 != 0 || (i % 14 == 0 ? bool(source.unsubscribe(text_type))
                                                          : bool(source.subscribe(text_type))));
            if (!sent) {  // not REQUIRE: the reader thread must be joined
                FAIL_CHECK("sending frame " << i << " failed");
                break;
            }
        }
        reader.join();
        CHECK(ok);
        REQUIRE(source.sync());
        CHECK_FALSE(source.receive_message(50ms));  // its own counters never come back
        CHECK_FALSE(sink.receive_message(50ms));
        const LinkStats s = node.server.stats();
        CHECK(s.shm_frames_received >= N);
        CHECK(s.protocol_errors == 0);
    }

    TEST_CASE("a PublishBatch makes its frames visible when it ends, in order, with an odd tail") {
        Node node;
        LinkClient a = client(node.ep, "a");
        SUBCASE("nothing reaches the reader before the batch publishes") {
            {
                PublishBatch batch;
                for (std::uint32_t i = 1; i <= 10; ++i) REQUIRE(node.bus.publish(COUNTER, counter(i, i)));
                auto early = a.receive_message(100ms);
                REQUIRE_FALSE(early);
                CHECK(early.error() == ReceiveError::Timeout);
                batch.flush();  // the first 10 go now, the batch goes on
                CHECK(receive_counters(a, 1, 10, 1s));
                for (std::uint32_t i = 11; i <= 13; ++i) REQUIRE(node.bus.publish(COUNTER, counter(i, i)));
                CHECK_FALSE(a.receive_message(50ms));
            }
            CHECK(receive_counters(a, 11, 3, 1s));
        }
        SUBCASE("a burst of several batches' worth arrives whole") {
            constexpr std::uint32_t N = 7 * 64 + 37;
            std::atomic<bool> ok{false};
            std::thread reader([&] { ok = receive_counters(a, 1, N); });
            {
                PublishBatch batch;
                for (std::uint32_t i = 1; i <= N; ++i) REQUIRE(node.bus.publish(COUNTER, counter(i, i)));
            }
            reader.join();
            CHECK(ok);
            CHECK_FALSE(a.receive_message(50ms));
            CHECK(node.server.stats().shm_frames_sent >= N);
        }
        SUBCASE("a server destroyed inside a batch publishes and lets go of its links first") {
            auto owned = std::make_unique<Node>();
            LinkClient b = client(owned->ep, "b");
            PublishBatch batch;
            for (std::uint32_t i = 1; i <= 5; ++i) REQUIRE(owned->bus.publish(COUNTER, counter(i, i)));
            owned.reset();  // must neither hang nor leave the batch a dangling session
            batch.flush();
        }
        SUBCASE("a server waits for another thread's batch that holds one of its links") {
            TempDir dir;
            Bus bus;
            std::optional<LinkServer> server(std::in_place, bus, registry(), shm_options());
            LinkClient b = client(server->listen(dir.socket()), "b");
            std::atomic<bool> staged{false};
            std::thread batcher([&] {
                PublishBatch batch;
                for (std::uint32_t i = 1; i <= 5; ++i) (void)bus.publish(COUNTER, counter(i, i));
                staged = true;
                std::this_thread::sleep_for(300ms);
            });  // the batch ends here: it flushes into a finished session and lets it go
            REQUIRE(wait_until([&] { return staged.load(); }));
            const auto t0 = std::chrono::steady_clock::now();
            server.reset();  // waits for the batch: its session must not outlive the io_context
            const auto took = std::chrono::steady_clock::now() - t0;
            batcher.join();
            CHECK(took >= 100ms);
            CHECK(took < 5s);
        }
    }

    TEST_CASE("block: a publisher waits for a stalled reader and nothing is lost") {
        Node node(small_ring(SlowConsumerPolicy::Block, 5'000ms));  // far above the 300 ms stall
        LinkClient slow = client(node.ep, "slow");
        constexpr std::uint32_t N = 2000;  // about 12 rings' worth
        std::atomic<bool> ok{false};
        std::thread reader([&] {
            std::this_thread::sleep_for(300ms);  // the ring fills and the publisher waits
            ok = receive_counters(slow, 1, N);
        });
        const auto t0 = std::chrono::steady_clock::now();
        for (std::uint32_t i = 1; i <= N; ++i) REQUIRE(node.bus.publish(COUNTER, counter(i, i)));
        const auto took = std::chrono::steady_clock::now() - t0;
        reader.join();
        CHECK(ok);
        CHECK(took >= 200ms);  // it did wait for the reader
        const LinkStats s = node.server.stats();
        CHECK(s.slow_consumers == 0);
        CHECK(s.dropped_frames == 0);
        CHECK(s.active == 1);
        REQUIRE(node.bus.publish(COUNTER, counter(N + 1, 1)));
        expect_counter(slow, N + 1);
    }

    TEST_CASE("block: a reader stalled for longer than wait_ms is disconnected as a slow consumer") {
        Node node(small_ring(SlowConsumerPolicy::Block, 100ms));
        LinkClient slow = client(node.ep, "slow");
        const auto t0 = std::chrono::steady_clock::now();
        for (std::uint32_t i = 1; i <= 2000; ++i) REQUIRE(node.bus.publish(COUNTER, counter(i, i)));
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took >= 90ms);  // one wait of wait_ms, then no more waiting
        CHECK(took < 2s);
        REQUIRE(wait_until([&] { return node.server.stats().slow_consumers == 1; }));
        REQUIRE(wait_until([&] { return node.server.stats().active == 0; }));
        CHECK(node.server.stats().dropped_frames == 0);
        // What the ring held is still read, in order, then the ERROR on the socket, then the end.
        std::uint32_t expected = 1;
        bool told = false;
        for (;;) {
            auto f = slow.receive_message(1s);
            if (!f) {
                CHECK(f.error() == ReceiveError::Closed);
                break;
            }
            if (f->type_id == control::ERROR) {
                const auto e = decode_error(f->payload);
                REQUIRE(e);
                CHECK(e->code == ErrorCode::SlowConsumer);
                told = true;
                continue;
            }
            CHECK(counter_id(*f) == expected);
            ++expected;
        }
        CHECK(expected > 100);  // about a ring's worth
        CHECK(told);
    }

    TEST_CASE("block: a second publisher lets the wait policy release its lock while the first waits for room") {
        // As an embedded script's GIL: a publisher that has to wait behind another one
        // (which holds the connection while it waits for ring room) parks through the bus's
        // wait policy first, so that the rest of Python is not frozen for the whole wait.
        struct Parks {
            std::mutex mutex;
            std::vector<std::thread::id> by;
        } parks;
        WaitPolicy policy;
        policy.context = &parks;
        policy.before_park = [](void* context) -> void* {
            auto& p = *static_cast<Parks*>(context);
            std::lock_guard lock(p.mutex);
            p.by.push_back(std::this_thread::get_id());
            return nullptr;
        };
        policy.after_park = [](void*, void*) {};
        // The first waits 2 s: room enough for the second to park under ASan on a loaded
        // machine (800 ms, with 600 ms to park, failed one CI run there).
        Node node(small_ring(SlowConsumerPolicy::Block, 2000ms));
        node.bus.set_wait_policy(&policy);
        LinkClient stalled = client(node.ep, "stalled");  // never reads
        const auto parked_by = [&](std::thread::id id) {
            std::lock_guard lock(parks.mutex);
            return std::count(parks.by.begin(), parks.by.end(), id) != 0;
        };
        std::atomic<bool> first_done{false};
        std::thread first([&] {
            // Fills the ring, then waits for room (holding the connection) until the 2 s wait ends.
            for (std::uint32_t i = 1; i <= 400; ++i) (void)node.bus.publish(COUNTER, counter(i, i));
            first_done = true;
        });
        REQUIRE(wait_until([&] { return parked_by(first.get_id()); }));  // it is waiting for room now
        std::atomic<bool> second_done{false};
        std::thread second([&] {
            (void)node.bus.publish(COUNTER, counter(1000, 1));
            second_done = true;
        });
        // It parks while the first still waits: before it could take the connection.
        CHECK(wait_until([&] { return parked_by(second.get_id()); }, 1500ms));
        CHECK_FALSE(first_done.load());
        first.join();
        second.join();
        node.bus.set_wait_policy(nullptr);
        // The stalled reader, after its wait (counted on its strand, posted by the publisher).
        CHECK(wait_until([&] { return node.server.stats().slow_consumers == 1; }));
    }

    TEST_CASE("block: a waiting publisher lets go at once when its reader goes away") {
        Node node(small_ring(SlowConsumerPolicy::Block, 10'000ms));
        auto slow = std::make_unique<LinkClient>(client(node.ep, "slow"));
        std::thread closer([&] {
            std::this_thread::sleep_for(200ms);
            slow->close();
        });
        const auto t0 = std::chrono::steady_clock::now();
        for (std::uint32_t i = 1; i <= 2000; ++i) (void)node.bus.publish(COUNTER, counter(i, i));
        const auto took = std::chrono::steady_clock::now() - t0;
        closer.join();
        CHECK(took >= 150ms);
        CHECK(took < 3s);  // not the 10 s wait
        REQUIRE(wait_until([&] { return node.server.stats().active == 0; }));
        CHECK(node.server.stats().slow_consumers == 0);
    }

    TEST_CASE("block: frames relayed from another client pause that client, not the io thread, for wait_ms") {
        Node node(small_ring(SlowConsumerPolicy::Block, 3'000ms));
        LinkClient slow = client(node.ep, "slow");
        LinkClient fast = client(node.ep, "fast", false);
        LinkClient other = client(node.ep, "other", false);
        constexpr std::uint32_t N = 2000;
        std::atomic<std::uint32_t> sent{0};
        std::thread feeder([&] {
            for (std::uint32_t i = 1; i <= N; ++i) {
                if (!fast.send(COUNTER, counter(i, i))) break;
                sent = i;
            }
        });
        // The slow reader's ring fills; the host holds fast's frames and stops reading it.
        REQUIRE(wait_until([&] { return node.server.stats().flow_pauses > 0; }));
        // Meanwhile the io thread serves everyone else: a round trip, before wait_ms is up.
        REQUIRE(other.sync());
        CHECK(node.server.stats().slow_consumers == 0);
        // After wait_ms the slow reader goes and fast is read on.
        REQUIRE(wait_until([&] { return node.server.stats().slow_consumers == 1; }, 10s));
        feeder.join();
        CHECK(sent.load() == N);
        REQUIRE(fast.sync());
        REQUIRE(wait_until([&] { return node.server.stats().active == 2; }));
    }

    TEST_CASE("drop_oldest on a small ring: an application publisher drops and counts, the link stays up") {
        Node node(small_ring(SlowConsumerPolicy::DropOldest));
        LinkClient slow = client(node.ep, "slow");
        constexpr std::uint32_t N = 2000;
        for (std::uint32_t i = 1; i <= N; ++i) REQUIRE(node.bus.publish(COUNTER, counter(i, i)));
        REQUIRE(node.server.stats().dropped_frames > 0);
        std::uint32_t expected = 1;
        for (;;) {
            auto f = slow.receive_message(200ms);
            if (!f) break;
            CHECK(counter_id(*f) == expected);  // a prefix, in order: nothing overwritten
            ++expected;
        }
        const LinkStats s = node.server.stats();
        CHECK(expected - 1 + s.dropped_frames == N);
        CHECK(s.slow_consumers == 0);
        REQUIRE(node.bus.publish(COUNTER, counter(N + 1, 1)));
        expect_counter(slow, N + 1);
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
