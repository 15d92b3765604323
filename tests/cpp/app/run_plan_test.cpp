// The default command's plan (host/app/run_plan.hpp): flags and a topology become what
// to run, and every mistake is a PlanError naming the flag or the file. Nothing starts.

#include <doctest/doctest.h>

#include <string>

#include "run_plan.hpp"
#include "test_support.hpp"

using namespace mycelium;
using namespace mycelium::app;
using namespace std::chrono_literals;

namespace {

const std::string PYMODULES = "/opt/pymodules";

RunPlan plan(RunFlags flags) { return plan_run(std::move(flags), PYMODULES); }

void refused(RunFlags flags, const std::string& message) {
    try {
        (void)plan(std::move(flags));
        FAIL("the flags were accepted; expected: " << message);
    } catch (const PlanError& e) {
        CHECK(std::string(e.what()) == message);
    }
}

}  // namespace

TEST_SUITE("app.run_plan") {
    TEST_CASE("a script alone runs on the built-in contracts with the flags' host options") {
        RunFlags flags;
        flags.scripts = {"model.py"};
        flags.duration = 2.5;
        flags.shutdown_timeout = 3;
        flags.queue_capacity = 128;
        flags.spin_us = 20;
        const RunPlan p = plan(flags);
        REQUIRE(p.host.scripts.size() == 1);
        CHECK(p.host.scripts[0] == "model.py");
        CHECK_FALSE(p.host.contracts.has_value());
        REQUIRE(p.host.duration.has_value());
        CHECK(p.host.duration->count() == doctest::Approx(2.5));
        CHECK(p.host.shutdown_timeout == 3000ms);
        CHECK(p.host.python_queue_capacity == 128);
        CHECK(p.host.spin == 20us);
        REQUIRE(p.host.python_path.size() == 1);
        CHECK(p.host.python_path[0] == PYMODULES);
        CHECK_FALSE(p.spec.has_value());
        CHECK(p.listen.empty());
        CHECK(p.metrics.empty());
    }

    TEST_CASE("listen endpoints are parsed and the link flags become the server's options") {
        RunFlags flags;
        flags.listen = {"unix:/tmp/n.sock", "tcp:127.0.0.1:0"};
        flags.handshake_timeout = 0.25;
        flags.slow_consumer = "block";
        flags.slow_consumer_wait_ms = 300;
        flags.legacy_layout = "c";
        flags.shm = true;
        flags.shm_ring_bytes = 1u << 16;
        flags.trust_payloads = true;
        const RunPlan p = plan(flags);
        REQUIRE(p.listen.size() == 2);
        CHECK(p.listen[0].scheme == "unix");
        CHECK(p.listen[0].path == "/tmp/n.sock");
        CHECK(p.listen[1].scheme == "tcp");
        CHECK(p.server.handshake_timeout == 250ms);
        CHECK(p.server.slow_consumer.client == link::SlowConsumerPolicy::Block);
        CHECK(p.server.slow_consumer.legacy == link::SlowConsumerPolicy::Block);
        CHECK(p.server.slow_consumer_wait == 300ms);
        CHECK(p.server.legacy_layout == link::LegacyLayout::C);
        CHECK(p.server.shm_enabled);
        CHECK(p.server.shm_ring_bytes == (1u << 16));
        CHECK(p.server.trust_payloads == link::TrustPayloads::All);
        RunFlags defaults;
        defaults.listen = {"unix:/tmp/n.sock"};
        CHECK(plan(defaults).server.trust_payloads == link::TrustPayloads::None);
    }

    TEST_CASE("mistakes on the command line are refused by name") {
        refused(RunFlags{}, "nothing to run: give --script FILE, --demo-feed RATE and/or --listen ENDPOINT (see --help)");
        RunFlags peer;
        peer.peers = {"b=tcp:10.0.0.2:9000"};
        refused(peer, "--peer needs --topology and --node");
        RunFlags half;
        half.node = "alpha";
        refused(half, "--topology and --node go together");
        RunFlags shm;
        shm.listen = {"tcp:127.0.0.1:0"};
        shm.shm = true;
        refused(shm, "--shm offers shared memory to the clients of a Unix listener: add --listen unix:PATH");
        RunFlags worker;
        worker.listen = {"tcp:127.0.0.1:0"};
        worker.workers = {"w=/bin/true"};
        refused(worker, "--worker needs a Unix listener to give its workers as MYCELIUM_SOCKET: add --listen unix:PATH "
                        "(--listen has only TCP addresses)");
        RunFlags listen;
        listen.listen = {"udp:1.2.3.4:5"};
        try {
            (void)plan(listen);
            FAIL("udp: was accepted");
        } catch (const PlanError& e) {
            CHECK(std::string(e.what()).starts_with("--listen udp:1.2.3.4:5: bad endpoint 'udp:1.2.3.4:5': this build has "
                                                    "no 'udp' transport"));
        }
    }

    TEST_CASE("node mode takes the node's scripts, contracts, metrics and workers from the topology") {
        test_support::TempDir dir("myc-plan");
        dir.write("model.py", "");
        dir.write("worker.py", "");
        dir.write("contracts.yaml", "");
        const auto topology = dir.write("topology.toml", "socket_dir = \"" + dir.path.string() + R"("
contracts = "contracts.yaml"
[[nodes]]
name = "alpha"
services = ["a"]
scripts = ["model.py"]
metrics = "127.0.0.1:0"
[[nodes.workers]]
name = "w"
script = "worker.py"
stop_grace_ms = 6000
[[nodes]]
name = "beta"
services = ["b"]
)");
        RunFlags flags;
        flags.topology = topology.string();
        flags.node = "alpha";
        flags.peers = {"beta=tcp:10.0.0.2:9000"};
        const RunPlan p = plan(flags);
        REQUIRE(p.spec.has_value());
        CHECK(p.node == "alpha");
        REQUIRE(p.host.scripts.size() == 1);
        CHECK(p.host.scripts[0] == dir.path / "model.py");
        REQUIRE(p.host.contracts.has_value());
        CHECK(*p.host.contracts == dir.path / "contracts.yaml");
        CHECK(p.host.node == "alpha");
        CHECK(p.metrics == "127.0.0.1:0");
        REQUIRE(p.workers.size() == 1);
        CHECK(p.workers[0].name == "w");
        // The shutdown watchdog leaves room for the worker's 6 s SIGTERM grace.
        CHECK(p.host.shutdown_timeout >= 10'000ms);
        REQUIRE(p.peer_endpoints.count("beta") == 1);
        CHECK(p.peer_endpoints.at("beta").port == 9000);

        flags.node = "gamma";
        refused(flags, "--node gamma: " + topology.string() + " has no such node (it has: alpha, beta)");
    }

    TEST_CASE("a node's script that does not exist is refused before anything starts") {
        // Once, the host started, failed in the script's place and exited 1 with no line.
        test_support::TempDir dir("myc-plan");
        const auto topology = dir.write("topology.toml", "socket_dir = \"" + dir.path.string() + R"("
[[nodes]]
name = "alpha"
services = ["a"]
scripts = ["missing.py"]
)");
        RunFlags flags;
        flags.topology = topology.string();
        flags.node = "alpha";
        refused(flags, topology.string() + ": node 'alpha': script " + (dir.path / "missing.py").string() +
                           " does not exist");
    }
}
