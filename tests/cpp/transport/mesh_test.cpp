// Meshes of real nodes in one process: each node is a Bus and a mesh::Mesh, linked over
// real Unix and TCP sockets in its own temp dir; every wait has a timeout.

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mycelium/bus.hpp"
#include "mycelium/mesh.hpp"
#include "mycelium/schema.hpp"
#include "mycelium/topology/topology.hpp"
#include "test_support.hpp"

using namespace mycelium;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::uint16_t TEXT = 1001;
constexpr std::uint16_t COUNTER = 1002;

const schema::Registry& registry() {
    static const schema::Registry r = schema::Registry::load_string(R"(
messages:
  TextMessage:
    tlv_type: 1001
    fields:
      content: {type: String, max_length: 32}
  CounterUpdate:
    tlv_type: 1002
    fields:
      counter_id: u32
      value: u64
)",
                                                                    "mesh_test.yaml");
    return r;
}

struct TempDir : test_support::TempDir {
    TempDir() : test_support::TempDir("myc-mesh") {}
};

topology::Spec local_nodes(const TempDir& dir, std::initializer_list<const char*> names) {
    std::string text = "socket_dir = \"" + dir.path.string() + "\"\n";
    for (const char* name : names)
        text += std::string("[[nodes]]\nname = \"") + name + "\"\nservices = [\"" + name + "-svc\"]\n";
    return topology::load_string(text, "mesh_test.toml");
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    return test_support::wait_until(done, timeout);
}

using test_support::counter;

/// Every CounterUpdate a node's bus delivers, by counter id, in arrival order.
struct Seen {
    std::mutex mutex;
    std::map<std::uint32_t, std::vector<std::uint64_t>> values;

    Subscription subscribe(Bus& bus) {
        return bus.subscribe(COUNTER, [this](const MessageView& view) {
            // A test publishes malformed (short) CounterUpdates on purpose: not ours to read.
            if (view.payload.size() != 16) return;
            std::uint32_t id = 0;
            std::uint64_t value = 0;
            std::memcpy(&id, view.payload.data(), 4);
            std::memcpy(&value, view.payload.data() + 8, 8);
            std::lock_guard lock(mutex);
            values[id].push_back(value);
        });
    }
    std::vector<std::uint64_t> of(std::uint32_t id) {
        std::lock_guard lock(mutex);
        return values[id];
    }
};

/// One node: its bus, what it saw, and its mesh.
struct Node {
    Bus bus;
    Seen seen;
    Subscription sub;
    std::unique_ptr<mesh::Mesh> mesh;

    Node(const topology::Spec& spec, const char* name, mesh::MeshOptions options = {}) {
        sub = seen.subscribe(bus);
        mesh = std::make_unique<mesh::Mesh>(bus, registry(), spec, name, std::move(options));
    }
    ~Node() {
        mesh.reset();
        sub.close();
    }
    bool linked_to(const std::string& peer) const {
        for (const auto& status : mesh->peers())
            if (status.name == peer && status.connected) return true;
        return false;
    }
    /// Publishes `counter(id, 0)` until `receiver` has seen one: the link is up and the
    /// interest has crossed it. The warm-up value 0 is not part of any sequence.
    bool warm_up(Node& receiver, std::uint32_t id) {
        return wait_until([&] {
            (void)bus.publish(COUNTER, counter(id, 0));
            std::this_thread::sleep_for(5ms);
            return !receiver.seen.of(id).empty();
        });
    }
    void publish_sequence(std::uint32_t id, std::uint64_t count) {
        for (std::uint64_t v = 1; v <= count; ++v) REQUIRE(bus.publish(COUNTER, counter(id, v)).has_value());
    }
};

std::vector<std::uint64_t> without_warm_up(std::vector<std::uint64_t> values) {
    std::erase(values, 0u);
    return values;
}

std::vector<std::uint64_t> one_to(std::uint64_t n) {
    std::vector<std::uint64_t> out;
    for (std::uint64_t v = 1; v <= n; ++v) out.push_back(v);
    return out;
}

}  // namespace

TEST_SUITE("transport.mesh") {

TEST_CASE("of each pair the node whose name sorts first dials, unless it has no route") {
    TempDir dir;
    const auto spec = local_nodes(dir, {"beta", "alpha"});
    CHECK(mesh::dials(spec, "alpha", "beta"));
    CHECK_FALSE(mesh::dials(spec, "beta", "alpha"));
    CHECK_FALSE(mesh::dials(spec, "alpha", "alpha"));
    CHECK_THROWS_AS(mesh::dials(spec, "alpha", "gamma"), std::out_of_range);
    const auto ep = mesh::dial_endpoint(spec, "alpha", "beta");
    CHECK(ep.scheme == "unix");
    CHECK(ep.path == (dir.path / "beta.sock").string());

    // "a" is on another host and cannot reach "b" (no host, so only reachable locally):
    // "b" dials "a" over TCP.
    const auto remote = topology::load_string(R"(
[[nodes]]
name = "a"
services = ["x"]
host = "10.1.2.3"
port = 9000
[[nodes]]
name = "b"
services = ["y"]
)",
                                              "remote.toml");
    CHECK_FALSE(mesh::dials(remote, "a", "b"));
    CHECK(mesh::dials(remote, "b", "a"));
    const auto tcp = mesh::dial_endpoint(remote, "b", "a");
    CHECK(tcp.scheme == "tcp");
    CHECK(tcp.host == "10.1.2.3");
    CHECK(tcp.port == 9000);
}

TEST_CASE("a message published on one node reaches the subscriber of the other, once and in order") {
    TempDir dir;
    const auto spec = local_nodes(dir, {"alpha", "beta"});
    Node beta(spec, "beta");
    Node alpha(spec, "alpha");
    REQUIRE(alpha.mesh->dialing().size() == 1);
    CHECK(beta.mesh->dialing().empty());
    REQUIRE(alpha.warm_up(beta, 7));
    REQUIRE(beta.warm_up(alpha, 8));  // the same link carries the other direction

    alpha.publish_sequence(7, 2000);
    beta.publish_sequence(8, 2000);
    REQUIRE(wait_until([&] { return beta.seen.of(7).size() >= 2000 && alpha.seen.of(8).size() >= 2000; }));
    std::this_thread::sleep_for(50ms);  // a duplicate would arrive now
    CHECK(without_warm_up(beta.seen.of(7)) == one_to(2000));
    CHECK(without_warm_up(alpha.seen.of(8)) == one_to(2000));
    // Each node also delivered its own messages locally, exactly once.
    CHECK(without_warm_up(alpha.seen.of(7)) == one_to(2000));

    const auto peers = alpha.mesh->peers();
    REQUIRE(peers.size() == 1);
    CHECK(peers[0].name == "beta");
    CHECK(peers[0].dialed);
    CHECK(peers[0].connected);
    CHECK(peers[0].connects == 1);
}

TEST_CASE("only the types the far node wants cross the link") {
    TempDir dir;
    const auto spec = local_nodes(dir, {"alpha", "beta"});
    Node beta(spec, "beta");  // subscribes to CounterUpdate only
    Node alpha(spec, "alpha");
    REQUIRE(alpha.warm_up(beta, 1));
    const auto before = alpha.mesh->peers().at(0).frames_out;
    const std::vector<std::byte> text(registry().find(TEXT)->size, std::byte{0});
    for (int i = 0; i < 100; ++i) REQUIRE(alpha.bus.publish(TEXT, text).has_value());
    alpha.publish_sequence(1, 1);
    REQUIRE(wait_until([&] { return without_warm_up(beta.seen.of(1)) == one_to(1); }));
    REQUIRE(wait_until([&] { return alpha.mesh->peers().at(0).frames_out >= before + 1; }));
    std::this_thread::sleep_for(20ms);
    CHECK(alpha.mesh->peers().at(0).frames_out == before + 1);

    // A subscriber that comes and goes on beta turns TextMessage on and off at alpha.
    std::atomic<int> texts{0};
    auto sub = beta.bus.subscribe(TEXT, [&](const MessageView&) { texts.fetch_add(1); });
    REQUIRE(wait_until([&] {
        (void)alpha.bus.publish(TEXT, text);
        std::this_thread::sleep_for(5ms);
        return texts.load() > 0;
    }));
    sub.close();
    std::this_thread::sleep_for(50ms);  // the UNSUBSCRIBE crosses
    const auto out = alpha.mesh->peers().at(0).frames_out;
    for (int i = 0; i < 100; ++i) REQUIRE(alpha.bus.publish(TEXT, text).has_value());
    std::this_thread::sleep_for(50ms);
    CHECK(alpha.mesh->peers().at(0).frames_out == out);
}

TEST_CASE("a local frame whose size does not match its type is not sent and the link stays up") {
    TempDir dir;
    const auto spec = local_nodes(dir, {"alpha", "beta"});
    Node beta(spec, "beta");
    Node alpha(spec, "alpha");
    REQUIRE(alpha.warm_up(beta, 4));
    const std::vector<std::byte> short_counter(12);
    for (int i = 0; i < 10; ++i) REQUIRE(alpha.bus.publish(COUNTER, short_counter).has_value());
    alpha.publish_sequence(4, 10);
    REQUIRE(wait_until([&] { return without_warm_up(beta.seen.of(4)).size() >= 10; }));
    CHECK(without_warm_up(beta.seen.of(4)) == one_to(10));
    CHECK(alpha.mesh->stats().unsendable == 10);
    CHECK(alpha.mesh->peers().at(0).connects == 1);
    CHECK(beta.mesh->stats().size_mismatch == 0);
}

TEST_CASE("three nodes: every message crosses one link, no duplicates, no loops") {
    TempDir dir;
    const auto spec = local_nodes(dir, {"a", "b", "c"});
    Node c(spec, "c");
    Node b(spec, "b");
    Node a(spec, "a");
    REQUIRE(a.warm_up(b, 1));
    REQUIRE(a.warm_up(c, 1));
    REQUIRE(b.warm_up(a, 2));
    REQUIRE(b.warm_up(c, 2));
    REQUIRE(c.warm_up(a, 3));
    REQUIRE(c.warm_up(b, 3));

    a.publish_sequence(1, 500);
    b.publish_sequence(2, 500);
    c.publish_sequence(3, 500);
    Node* nodes[] = {&a, &b, &c};
    REQUIRE(wait_until([&] {
        for (Node* node : nodes)
            for (std::uint32_t id = 1; id <= 3; ++id)
                if (without_warm_up(node->seen.of(id)).size() < 500) return false;
        return true;
    }));
    std::this_thread::sleep_for(100ms);  // a relayed copy would arrive now
    for (Node* node : nodes)
        for (std::uint32_t id = 1; id <= 3; ++id) CHECK(without_warm_up(node->seen.of(id)) == one_to(500));
    for (Node* node : nodes) CHECK(node->mesh->peers().size() == 2);
}

TEST_CASE("a dialer redials with backoff after the far node stops, and traffic flows again") {
    TempDir dir;
    const auto spec = local_nodes(dir, {"alpha", "beta"});
    mesh::MeshOptions fast;
    fast.backoff_initial = 10ms;
    fast.backoff_max = 50ms;
    Node alpha(spec, "alpha", fast);
    auto beta = std::make_unique<Node>(spec, "beta");
    REQUIRE(alpha.warm_up(*beta, 5));
    beta.reset();
    REQUIRE(wait_until([&] { return !alpha.linked_to("beta"); }));
    std::this_thread::sleep_for(100ms);  // a few failed dials
    CHECK(alpha.mesh->peers().at(0).connect_failures >= 1);

    beta = std::make_unique<Node>(spec, "beta");
    REQUIRE(alpha.warm_up(*beta, 5));
    alpha.publish_sequence(5, 100);
    REQUIRE(wait_until([&] { return without_warm_up(beta->seen.of(5)).size() >= 100; }));
    CHECK(without_warm_up(beta->seen.of(5)) == one_to(100));
    const auto status = alpha.mesh->peers().at(0);
    CHECK(status.connects == 2);
    CHECK(status.reconnects == 1);
}

TEST_CASE("two nodes over TCP, with the dialed address given for a port-0 listener") {
    TempDir dir;
    const auto spec = topology::load_string("socket_dir = \"" + dir.path.string() + R"("
[[nodes]]
name = "alpha"
services = ["a"]
[[nodes]]
name = "beta"
services = ["b"]
host = "127.0.0.2"
endpoint = { kind = "tcp", addr = "127.0.0.2:0" }
)",
                                            "tcp.toml");
    // beta's host is another address of this machine (127/8 is loopback): to alpha it is
    // another host, so the link is TCP; on one host it would be the Unix socket.
    CHECK_THROWS_WITH_AS(Node(spec, "alpha"), doctest::Contains("its TCP port is 0"), std::invalid_argument);
    Node beta(spec, "beta");
    const auto endpoints = beta.mesh->endpoints();
    REQUIRE(endpoints.size() == 2);
    REQUIRE(endpoints[1].scheme == "tcp");
    CHECK(endpoints[1].port != 0);
    mesh::MeshOptions options;
    options.peer_endpoints["beta"] = endpoints[1];
    Node alpha(spec, "alpha", options);
    REQUIRE(alpha.warm_up(beta, 9));
    alpha.publish_sequence(9, 1000);
    REQUIRE(wait_until([&] { return without_warm_up(beta.seen.of(9)).size() >= 1000; }));
    CHECK(without_warm_up(beta.seen.of(9)) == one_to(1000));

    mesh::MeshOptions wrong;
    wrong.peer_endpoints["gamma"] = endpoints[1];
    CHECK_THROWS_WITH_AS(Node(spec, "alpha", wrong), doctest::Contains("'gamma', which is not another node"),
                         std::invalid_argument);
}

}  // TEST_SUITE
