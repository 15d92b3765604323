#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "mycelium/topology/topology.hpp"

using namespace mycelium::topology;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const fs::path FIXTURES = fs::path(MYCELIUM_FIXTURES_DIR) / "topologies";
const fs::path EXAMPLES =
    (fs::path(MYCELIUM_FIXTURES_DIR) / ".." / ".." / "topology" / "examples").lexically_normal();

Spec parsing_should_succeed(const fs::path& path) {
    try {
        return load_file(path);
    } catch (const TopologyError& e) {
        FAIL("unexpected TopologyError: " << e.what());
        throw;
    }
}

/// Each invalid fixture begins with "# error: <message>", {file} standing for its path.
std::string expected_error(const fs::path& path) {
    std::ifstream in(path);
    std::string first;
    std::getline(in, first);
    const std::string prefix = "# error: ";
    REQUIRE_MESSAGE(first.rfind(prefix, 0) == 0, path.string() << " has no '# error:' line");
    std::string message = first.substr(prefix.size());
    const auto at = message.find("{file}");
    if (at != std::string::npos) message.replace(at, 6, path.string());
    return message;
}

TopologyError parsing_should_fail(const fs::path& path) {
    try {
        (void)load_file(path);
    } catch (const TopologyError& e) {
        return e;
    }
    FAIL(path.string() << " loaded, but should have failed");
    throw std::logic_error("unreachable");
}

TopologyError string_should_fail(std::string_view text, const LoadOptions& options = {}) {
    try {
        (void)load_string(text, "mesh.toml", {}, options);
    } catch (const TopologyError& e) {
        return e;
    }
    FAIL("topology loaded, but should have failed:\n" << text);
    throw std::logic_error("unreachable");
}

std::vector<fs::path> toml_files(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().extension() == ".toml") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

/// count_routes the slow way: route_between over every ordered pair.
RouteCounts count_every_pair(const Spec& spec) {
    RouteCounts counts;
    for (const Node& from : spec.nodes) {
        for (const Node& to : spec.nodes) {
            if (&from == &to) continue;
            ++counts.pairs;
            try {
                switch (route_between(spec, from, to).kind) {
                    case RouteKind::Shm: ++counts.shm; break;
                    case RouteKind::Unix: ++counts.unix_socket; break;
                    case RouteKind::Tcp: ++counts.tcp; break;
                    case RouteKind::InProcess: FAIL("in_process between two nodes"); break;
                }
            } catch (const std::invalid_argument&) {
                ++counts.one_way;
            }
        }
    }
    return counts;
}

const Node& node_named(const Spec& spec, std::string_view name) {
    const Node* node = find_node(spec, name);
    REQUIRE_MESSAGE(node != nullptr, "no node " << name);
    return *node;
}

}  // namespace

TEST_SUITE("topology") {
    TEST_CASE("every valid fixture and every example loads") {
        std::vector<fs::path> files = toml_files(FIXTURES / "valid");
        const std::vector<fs::path> examples = toml_files(EXAMPLES);
        files.insert(files.end(), examples.begin(), examples.end());
        CHECK(files.size() >= 5 + 3);
        for (const fs::path& path : files) {
            CAPTURE(path);
            CHECK_NOTHROW((void)load_file(path));
        }
    }

    TEST_CASE("every invalid fixture fails with its exact message and position") {
        const std::vector<fs::path> files = toml_files(FIXTURES / "invalid");
        CHECK(files.size() >= 40);
        for (const fs::path& path : files) {
            CAPTURE(path);
            const TopologyError e = parsing_should_fail(path);
            CHECK(std::string(e.what()) == expected_error(path));
            CHECK(e.file() == path.string());
        }
    }

    TEST_CASE("an unknown key is a warning with its place, and an error with strict") {
        const std::vector<fs::path> files = toml_files(FIXTURES / "strict");
        CHECK(files.size() >= 5);
        for (const fs::path& path : files) {
            CAPTURE(path);
            const Spec spec = parsing_should_succeed(path);
            REQUIRE(spec.warnings.size() == 1);
            CHECK(spec.warnings[0].text() == expected_error(path));
            CHECK(spec.warnings[0].where.file == path.string());
            try {
                (void)load_file(path, LoadOptions{.strict = true});
                FAIL(path.string() << " loaded with strict, but should have failed");
            } catch (const TopologyError& e) {
                CHECK(std::string(e.what()) == expected_error(path));
            }
        }
    }

    TEST_CASE("a unix endpoint without addr is socket_dir/<node>.sock, as in Mycelium") {
        const Spec spec = parsing_should_succeed(FIXTURES / "valid" / "mycelium_unix_endpoint.toml");
        const Node& adapters = node_named(spec, "adapters");
        REQUIRE(adapters.endpoint.has_value());
        CHECK(adapters.endpoint->kind == EndpointKind::Unix);
        CHECK(adapters.endpoint->addr.empty());
        CHECK(socket_path(spec, adapters) == "/tmp/mycelium-unix-endpoint/adapters.sock");
        CHECK(spec.warnings.empty());
        // Node-to-node routes follow `host`: a tcp endpoint is where clients connect.
        const Route to_strategies = route_between(spec, "adapters", "strategies");
        CHECK(to_strategies.kind == RouteKind::Unix);
        CHECK(to_strategies.socket_path == "/tmp/mycelium-unix-endpoint/strategies.sock");
        const Route to_remote = route_between(spec, "strategies", "remote");
        CHECK(to_remote.kind == RouteKind::Tcp);
        CHECK(to_remote.host == "10.0.3.30");
        CHECK(to_remote.port == 9300);
    }

    TEST_CASE("Mycelium's topology shape loads with Mycelium's meaning") {
        const Spec spec = parsing_should_succeed(FIXTURES / "valid" / "mycelium.toml");
        CHECK(spec.socket_dir == "/tmp/mycelium");
        REQUIRE(spec.nodes.size() == 3);

        const Node& trading = spec.nodes[0];
        CHECK(trading.name == "trading");
        CHECK(trading.services == std::vector<std::string>{"market_data", "strategy"});
        CHECK(trading.is_local());
        CHECK_FALSE(trading.port.has_value());
        CHECK_FALSE(trading.bind.has_value());
        CHECK_FALSE(trading.endpoint.has_value());
        CHECK(socket_path(spec, trading) == "/tmp/mycelium/trading.sock");
        CHECK(trading.source.line == 4);

        const Node& execution = spec.nodes[1];
        REQUIRE(execution.endpoint.has_value());
        CHECK(execution.endpoint->kind == EndpointKind::Unix);
        CHECK(execution.endpoint->addr == "/tmp/mycelium/exec.sock");
        CHECK(socket_path(spec, "execution") == "/tmp/mycelium/exec.sock");

        const Node& analytics = spec.nodes[2];
        CHECK_FALSE(analytics.is_local());
        CHECK(analytics.host == "10.0.0.7");
        CHECK(analytics.port == 9000);
        REQUIRE(analytics.bind.has_value());
        CHECK(*analytics.bind == SocketAddress{"10.0.0.7", 9000});
    }

    TEST_CASE("a node with only a name gets every default") {
        const Spec spec = parsing_should_succeed(FIXTURES / "valid" / "minimal.toml");
        CHECK(spec.socket_dir == fs::path(DEFAULT_SOCKET_DIR));
        CHECK_FALSE(spec.contracts.has_value());
        CHECK(spec.limits.max_payload == 4u * 1024u * 1024u);
        CHECK(spec.limits.handshake_timeout == 5000ms);
        CHECK(spec.limits.max_connections == 1024);
        REQUIRE(spec.nodes.size() == 1);
        const Node& node = spec.nodes[0];
        CHECK(node.name == "solo");
        CHECK(node.services.empty());
        CHECK(node.host.empty());
        CHECK(node.is_local());
        CHECK(node.socket_mode == 0660);
        CHECK(node.scripts.empty());
        CHECK_FALSE(node.metrics.has_value());
        CHECK(node.queues.capacity == 1024);
        CHECK(node.queues.policy == QueuePolicy::Block);
        CHECK(node.queues.link_capacity == 65536);
        CHECK_FALSE(node.shm.enabled);
        CHECK(node.shm.ring_bytes == 1u << 20);
        CHECK(node.shm.spin == 50us);
        CHECK(node.shm.wait == 1000ms);
        CHECK(node.workers.empty());
        CHECK(node.trust_payloads == TrustPayloads::None);  // every payload is validated
    }

    TEST_CASE("every key of the full fixture is read") {
        const fs::path dir = FIXTURES / "valid";
        const Spec spec = parsing_should_succeed(dir / "full.toml");
        CHECK(spec.socket_dir == "/run/mycelium");
        CHECK(spec.base_dir == dir.lexically_normal());
        CHECK(spec.contracts == (dir / "contracts.yaml").lexically_normal());
        CHECK(spec.socket_mode == 0600);
        CHECK(spec.limits.max_payload == 65536);
        CHECK(spec.limits.handshake_timeout == 2000ms);
        CHECK(spec.limits.max_connections == 64);
        CHECK(spec.limits.max_connections_per_listener == 48);
        CHECK(spec.limits.max_connections_per_client == 16);
        CHECK(spec.limits.idle_timeout == 30000ms);
        CHECK(spec.limits.max_metrics_bytes == 131072);
        CHECK(spec.limits.max_metrics_series == 2000);
        REQUIRE(spec.nodes.size() == 2);

        const Node& trading = node_named(spec, "trading");
        CHECK(trading.is_local());
        CHECK(trading.port == 9000);
        CHECK(*trading.bind == SocketAddress{"0.0.0.0", 9001});
        CHECK(trading.socket_mode == 0660);
        CHECK(trading.scripts ==
              std::vector<fs::path>{(dir / "model.py").lexically_normal(), "/opt/scripts/risk.py"});
        CHECK(trading.contracts == fs::path("/etc/mycelium/trading.yaml"));
        CHECK(*trading.metrics == SocketAddress{"127.0.0.1", 9100});
        CHECK(trading.queues.capacity == 4096);
        CHECK(trading.queues.policy == QueuePolicy::DropOldest);
        CHECK(trading.queues.link_capacity == 256);
        CHECK(trading.shm.enabled);
        CHECK(trading.shm.ring_bytes == 4194304);
        CHECK(trading.shm.spin == 0us);
        CHECK(trading.shm.wait == 1000ms);  // the default
        // queues.policy gives clients and peers their slow-consumer policy; legacy keeps its own.
        CHECK(trading.slow_consumer.legacy == SlowConsumer::DropOldest);
        CHECK(trading.slow_consumer.client == SlowConsumer::DropOldest);
        CHECK(trading.slow_consumer.peer == SlowConsumer::DropOldest);

        REQUIRE(trading.workers.size() == 2);
        const Worker& features = trading.workers[0];
        CHECK(features.name == "feature-builder");
        CHECK(features.script == (dir / "workers" / "features.py").lexically_normal());
        CHECK(features.args == std::vector<std::string>{"--window", "30"});
        CHECK(features.restart == RestartPolicy::Always);
        CHECK(features.backoff_initial == 250ms);
        CHECK(features.backoff_max == 10000ms);
        CHECK(features.backoff_multiplier == doctest::Approx(1.5));
        CHECK(features.max_restarts == 3);
        CHECK(features.restart_window == 120s);
        CHECK(features.stop_grace == 2000ms);
        CHECK(features.source.line == 37);
        const Worker& reporter = trading.workers[1];
        CHECK(reporter.restart == RestartPolicy::OnFailure);
        CHECK(reporter.backoff_initial == 100ms);
        CHECK(reporter.backoff_max == 30000ms);
        CHECK(reporter.backoff_multiplier == doctest::Approx(2.0));
        CHECK(reporter.max_restarts == 5);
        CHECK(reporter.restart_window == 60s);

        const Node& edge = node_named(spec, "edge");
        CHECK_FALSE(edge.is_local());
        CHECK(edge.socket_mode == 0600);  // inherited from the top level
        CHECK(edge.contracts == spec.contracts);
        REQUIRE(edge.endpoint.has_value());
        CHECK(edge.endpoint->kind == EndpointKind::Tcp);
        CHECK(edge.endpoint->address == SocketAddress{"203.0.113.9", 19000});
        CHECK(edge.slow_consumer.legacy == SlowConsumer::Disconnect);
        CHECK(edge.slow_consumer.client == SlowConsumer::Block);
        CHECK(edge.slow_consumer.peer == SlowConsumer::Disconnect);
        CHECK(edge.slow_consumer.wait == 500ms);
        CHECK(edge.legacy_layout == LegacyLayout::C);
        CHECK(node_named(spec, "trading").legacy_layout == LegacyLayout::Packed);  // the default
        CHECK(edge.trust_payloads == TrustPayloads::Peers);
        CHECK(spec.warnings.empty());
    }

    TEST_CASE("[nodes.slow_consumer]: defaults per kind, the old keys, and 'fail' read as disconnect") {
        const Spec plain = load_string("[[nodes]]\nname = \"a\"\n", "inline");
        const SlowConsumerConfig& defaults = plain.nodes.at(0).slow_consumer;
        CHECK(defaults.legacy == SlowConsumer::DropOldest);
        CHECK(defaults.client == SlowConsumer::Disconnect);
        CHECK(defaults.peer == SlowConsumer::Disconnect);
        CHECK(defaults.wait == 1000ms);

        const Spec old = load_string(
            "[[nodes]]\nname = \"a\"\n[nodes.queues]\npolicy = \"fail\"\n[nodes.shm]\nwait_ms = 250\n", "inline");
        const SlowConsumerConfig& read_old = old.nodes.at(0).slow_consumer;
        CHECK(read_old.client == SlowConsumer::Disconnect);
        CHECK(read_old.peer == SlowConsumer::Disconnect);
        CHECK(read_old.wait == 250ms);
        REQUIRE(old.warnings.size() == 1);
        CHECK(old.warnings[0].description ==
              "[nodes.queues] policy = \"fail\" reads as \"disconnect\" for links (a slow client or peer is disconnected)");

        const Spec table = load_string("[[nodes]]\nname = \"a\"\n[nodes.queues]\npolicy = \"block\"\n"
                                       "[nodes.slow_consumer]\npeer = \"fail\"\nlegacy = \"block\"\nwait_ms = 20\n",
                                       "inline");
        const SlowConsumerConfig& read_table = table.nodes.at(0).slow_consumer;
        CHECK(read_table.legacy == SlowConsumer::Block);
        CHECK(read_table.client == SlowConsumer::Block);  // from queues.policy
        CHECK(read_table.peer == SlowConsumer::Disconnect);
        CHECK(read_table.wait == 20ms);
        CHECK(table.warnings.size() == 1);

        const TopologyError bad =
            string_should_fail("[[nodes]]\nname = \"a\"\n[nodes.slow_consumer]\nclient = \"lag\"\n");
        CHECK(bad.description() ==
              "bad slow-consumer policy 'lag' for 'client', expected 'drop_oldest', 'disconnect' or 'block'");
    }

    TEST_CASE("bind may give only a host and takes the port from 'port'") {
        const Spec spec = parsing_should_succeed(FIXTURES / "valid" / "bind_host_only.toml");
        CHECK(*node_named(spec, "a").bind == SocketAddress{"::", 7000});
        CHECK(*node_named(spec, "b").bind == SocketAddress{"192.168.1.20", 7000});
        CHECK(to_string(*node_named(spec, "a").bind) == "[::]:7000");
    }

    TEST_CASE("routes follow the topology: bus, shared memory, Unix socket, TCP") {
        const Spec spec = parsing_should_succeed(FIXTURES / "valid" / "three_nodes.toml");

        const Route same = route_between(spec, "trading", "trading");
        CHECK(same.kind == RouteKind::InProcess);
        CHECK(same.node == "trading");

        const Route local = route_between(spec, "trading", "risk");
        CHECK(local.kind == RouteKind::Shm);
        CHECK(local.node == "risk");
        CHECK(local.socket_path == "/tmp/mycelium-test/risk.sock");

        const Route remote = route_between(spec, "risk", "gateway");
        CHECK(remote.kind == RouteKind::Tcp);
        CHECK(remote.host == "10.0.0.5");
        CHECK(remote.port == 9000);

        // Services name their node.
        CHECK(route_between(spec, "strategy", "market_data").kind == RouteKind::InProcess);
        CHECK(route_between(spec, "strategy", "fix_gateway") == remote);
        CHECK(route_between(spec, "market_data", "risk_check").kind == RouteKind::Shm);

        CHECK(node_of_service(spec, "risk_check") == find_node(spec, "risk"));
        CHECK(node_of_service(spec, "nope") == nullptr);
        CHECK(find_node(spec, "nope") == nullptr);
        CHECK(same_host(node_named(spec, "trading"), node_named(spec, "risk")));
        CHECK_FALSE(same_host(node_named(spec, "trading"), node_named(spec, "gateway")));
    }

    TEST_CASE("a remote node cannot reach a node that has no host") {
        const Spec spec = parsing_should_succeed(FIXTURES / "valid" / "three_nodes.toml");
        CHECK_THROWS_AS((void)route_between(spec, "gateway", "trading"), std::invalid_argument);
        CHECK_THROWS_AS((void)route_between(spec, "trading", "nowhere"), std::out_of_range);
        CHECK_THROWS_AS((void)socket_path(spec, "nowhere"), std::out_of_range);
    }

    TEST_CASE("same-host nodes use the Unix socket unless both enable shared memory") {
        const Spec spec = load_string(R"(
socket_dir = "/tmp/m"
[[nodes]]
name = "a"
[nodes.shm]
enabled = true
[[nodes]]
name = "b"
endpoint = { kind = "unix", addr = "/tmp/other/b.sock" }
[[nodes]]
name = "c"
endpoint = { kind = "tcp", addr = "127.0.0.1:7100" }
[[nodes]]
name = "d"
host = "box"
port = 7200
[[nodes]]
name = "e"
host = "BOX"
port = 7201
)",
                                      "mesh.toml");
        const Route to_b = route_between(spec, "a", "b");
        CHECK(to_b.kind == RouteKind::Unix);
        CHECK(to_b.socket_path == "/tmp/other/b.sock");
        CHECK(route_between(spec, "b", "a").socket_path == "/tmp/m/a.sock");

        // c's tcp endpoint is for clients; a node on the same host uses its Unix socket.
        const Route to_c = route_between(spec, "a", "c");
        CHECK(to_c.kind == RouteKind::Unix);
        CHECK(to_c.socket_path == "/tmp/m/c.sock");

        const Route d_to_e = route_between(spec, "d", "e");
        CHECK(d_to_e.kind == RouteKind::Unix);
        CHECK(d_to_e.socket_path == "/tmp/m/e.sock");
        CHECK(route_between(spec, "a", "d").kind == RouteKind::Tcp);
    }

    TEST_CASE("count_routes counts per host what route_between gives for every pair") {
        std::vector<fs::path> files = toml_files(FIXTURES / "valid");
        for (const fs::path& example : toml_files(EXAMPLES)) files.push_back(example);
        for (const fs::path& file : files) {
            CAPTURE(file);
            const Spec spec = parsing_should_succeed(file);
            CHECK(count_routes(spec) == count_every_pair(spec));
        }
        // Hosts in mixed case, shm on some nodes of a remote host, several local spellings.
        const Spec spec = load_string(R"(
[[nodes]]
name = "a"
[nodes.shm]
enabled = true
[[nodes]]
name = "b"
host = "localhost"
[nodes.shm]
enabled = true
[[nodes]]
name = "c"
host = "127.0.0.1"
[[nodes]]
name = "d"
host = "box"
port = 7200
[nodes.shm]
enabled = true
[[nodes]]
name = "e"
host = "BOX"
port = 7201
[nodes.shm]
enabled = true
[[nodes]]
name = "f"
host = "Box"
port = 7202
[[nodes]]
name = "g"
host = "10.0.0.9"
port = 7200
)",
                                      "mesh.toml");
        const RouteCounts counts = count_routes(spec);
        CHECK(counts == count_every_pair(spec));
        CHECK(counts.pairs == 42);
        CHECK(counts.shm == 4);          // a <-> b, d <-> e
        CHECK(counts.unix_socket == 8);  // c with a and b, f with d and e, both ways
        CHECK(counts.tcp == 18);         // to d, e, f from the 4 others, to g from the 6 others
        CHECK(counts.one_way == 12);     // to a, b, c from d, e, f, g
        CHECK(count_routes(Spec{}) == RouteCounts{});
    }

    TEST_CASE("a collision names the first earlier node on the same host, the socket before the ports") {
        const auto error_of = [](std::string_view text) { return string_should_fail(text).description(); };
        // c's metrics port is a's TCP port, its socket is b's: a comes first.
        CHECK(error_of(R"(
socket_dir = "/tmp/m"
[[nodes]]
name = "a"
port = 9100
[[nodes]]
name = "b"
[[nodes]]
name = "c"
endpoint = { kind = "unix", addr = "/tmp/m/b.sock" }
metrics = "127.0.0.1:9100"
)") == "node 'c' listens on port 9100, already used by node 'a' on the same host");
        // The same earlier node by socket and by port: the socket is named.
        CHECK(error_of(R"(
socket_dir = "/tmp/m"
[[nodes]]
name = "a"
port = 9100
[[nodes]]
name = "b"
endpoint = { kind = "unix", addr = "/tmp/m/a.sock" }
port = 9100
)") == "node 'b' uses unix socket '/tmp/m/a.sock', already used by node 'a'");
        // Both of b's listeners collide with a: the TCP port is named before metrics.
        CHECK(error_of(R"(
[[nodes]]
name = "a"
port = 9100
metrics = "127.0.0.1:9101"
[[nodes]]
name = "b"
port = 9101
metrics = "127.0.0.1:9100"
)") == "node 'b' listens on port 9101, already used by node 'a' on the same host");
        // Hosts compare without case; another host may reuse the port and the socket path.
        CHECK(error_of(R"(
[[nodes]]
name = "a"
host = "box"
port = 9100
[[nodes]]
name = "b"
host = "10.0.0.2"
port = 9100
[[nodes]]
name = "c"
host = "BOX"
port = 9100
)") == "node 'c' listens on port 9100, already used by node 'a' on the same host");
        (void)load_string(R"(
[[nodes]]
name = "a"
host = "box"
port = 9100
[[nodes]]
name = "b"
host = "10.0.0.2"
port = 9100
endpoint = { kind = "unix", addr = "/tmp/mycelium/a.sock" }
)",
                          "mesh.toml");
    }

    TEST_CASE("load_string names its source and resolves paths against base_dir") {
        const Spec spec = load_string(
            "contracts = \"c.yaml\"\n[[nodes]]\nname = \"n\"\nscripts = [\"../s.py\"]\n", "inline",
            "/srv/app/conf");
        CHECK(spec.source_name == "inline");
        CHECK(spec.contracts == fs::path("/srv/app/conf/c.yaml"));
        CHECK(spec.nodes.at(0).scripts.at(0) == fs::path("/srv/app/s.py"));
        CHECK(spec.nodes.at(0).source.file == "inline");

        const Spec relative =
            load_string("contracts = \"c.yaml\"\n[[nodes]]\nname = \"n\"\n", "inline");
        CHECK(relative.contracts == fs::path("c.yaml"));
    }

    TEST_CASE("an unknown key suggests the closest known key") {
        const LoadOptions strict{.strict = true};
        const TopologyError e =
            string_should_fail("sokcet_dir = \"/tmp\"\n[[nodes]]\nname = \"a\"\n", strict);
        CHECK(std::string(e.what()) ==
              "unknown key 'sokcet_dir', did you mean 'socket_dir'? (at line 1, column 1 of "
              "'mesh.toml')");
        CHECK(e.description() == "unknown key 'sokcet_dir', did you mean 'socket_dir'?");
        CHECK(e.file() == "mesh.toml");
        CHECK(e.line() == 1);
        CHECK(e.column() == 1);

        const TopologyError worker = string_should_fail(
            "[[nodes]]\nname = \"a\"\n[[nodes.workers]]\nname = \"w\"\nscript = "
            "\"w.py\"\nrestart_windows_s = 5\n", strict);
        CHECK(worker.description() ==
              "unknown key 'restart_windows_s' in [[nodes.workers]], did you mean "
              "'restart_window_s'?");
        CHECK(worker.line() == 6);
    }

    TEST_CASE("shm wait_ms must be between 0 and 60000 milliseconds") {
        const TopologyError too_long = string_should_fail("[[nodes]]\nname = \"a\"\n[nodes.shm]\nwait_ms = 120000\n");
        CHECK(std::string(too_long.what()) ==
              "'wait_ms' must be at most 60000, got 120000 (at line 4, column 11 of 'mesh.toml')");
        const TopologyError negative = string_should_fail("[[nodes]]\nname = \"a\"\n[nodes.shm]\nwait_ms = -1\n");
        CHECK(negative.description() == "'wait_ms' must not be negative, got -1");
        const TopologyError text = string_should_fail("[[nodes]]\nname = \"a\"\n[nodes.shm]\nwait_ms = \"1s\"\n");
        CHECK(text.description() == "'wait_ms' must be an integer, not a string");
        const Spec zero = load_string("[[nodes]]\nname = \"a\"\n[nodes.shm]\nwait_ms = 0\n", "inline");
        CHECK(zero.nodes.at(0).shm.wait == 0ms);
        const Spec quarter = load_string("[[nodes]]\nname = \"a\"\n[nodes.shm]\nwait_ms = 250\n", "inline");
        CHECK(quarter.nodes.at(0).shm.wait == 250ms);
    }

    TEST_CASE("a TOML syntax error keeps toml++'s description and position") {
        const TopologyError e = string_should_fail("[[nodes]]\nname = \"a\nport = 1\n");
        CHECK(e.line() == 2);
        CHECK(e.column() > 0);
        CHECK(e.file() == "mesh.toml");
        CHECK(e.description().rfind("Error while parsing", 0) == 0);
    }

    TEST_CASE("a missing file is an error that names the file") {
        const fs::path missing = FIXTURES / "does-not-exist.toml";
        const TopologyError e = parsing_should_fail(missing);
        CHECK(std::string(e.what()) ==
              "cannot open topology file: No such file or directory (in '" + missing.string() +
                  "')");
        CHECK(e.line() == 0);
        CHECK(std::string(parsing_should_fail(FIXTURES).what()) ==
              "topology path is a directory, not a file (in '" + FIXTURES.string() + "')");
    }

    TEST_CASE("an endless topology file stops at the size limit") {
        CHECK(std::string(parsing_should_fail("/dev/zero").what()) ==
              "topology file is larger than 16777216 bytes, the limit (in '/dev/zero')");
    }

    TEST_CASE("addresses parse as host:port with bracketed IPv6") {
        CHECK(parse_socket_address("127.0.0.1:9000") == SocketAddress{"127.0.0.1", 9000});
        CHECK(parse_socket_address("[::1]:0") == SocketAddress{"::1", 0});
        CHECK(parse_socket_address("db.internal:65535") == SocketAddress{"db.internal", 65535});
        CHECK_FALSE(parse_socket_address("127.0.0.1:65536").has_value());
        CHECK_FALSE(parse_socket_address("127.0.0.1").has_value());
        CHECK_FALSE(parse_socket_address(":9000").has_value());
        CHECK_FALSE(parse_socket_address("::1:9000").has_value());
        CHECK_FALSE(parse_socket_address("300.1.1.1:80").has_value());
        CHECK_FALSE(parse_socket_address("host:-1").has_value());
        CHECK(is_local_host(""));
        CHECK(is_local_host("LocalHost"));
        CHECK(is_local_host("127.0.0.1"));
        CHECK_FALSE(is_local_host("10.0.0.5"));
        CHECK(to_string(QueuePolicy::DropOldest) == "drop_oldest");
        CHECK(to_string(RestartPolicy::OnFailure) == "on-failure");
        CHECK(to_string(RouteKind::InProcess) == "in_process");
        CHECK(to_string(EndpointKind::Tcp) == "tcp");
    }

}  // TEST_SUITE
