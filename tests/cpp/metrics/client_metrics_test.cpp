// A client's METRICS frames reach LinkServer::client_metrics(): the latest snapshot per
// connection, gone when the connection closes; a bad one closes only that connection.

#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "mycelium/bus.hpp"
#include "mycelium/link.hpp"
#include "mycelium/link_client.hpp"
#include "mycelium/metrics_report.hpp"
#include "mycelium/schema.hpp"
#include "test_support.hpp"

using namespace mycelium;
using namespace mycelium::link;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const schema::Registry& registry() {
    static const schema::Registry r = schema::Registry::load_string(R"(
messages:
  CounterUpdate:
    tlv_type: 1002
    fields:
      counter_id: u32
      value: u64
)",
                                                                    "client_metrics_test.yaml");
    return r;
}

struct TempDir : test_support::TempDir {
    TempDir() : test_support::TempDir("myc-cm") {}
};

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    return test_support::wait_until(done, timeout);
}

std::vector<ReportedFamily> jobs(double value) {
    return {{ReportedKind::Counter, "jobs_total", "Jobs done", {}, {{{}, value, {}, 0, 0}}}};
}

}  // namespace

TEST_SUITE("metrics") {

TEST_CASE("a client's METRICS snapshot is served until it closes; the latest one wins") {
    TempDir dir;
    Bus bus;
    LinkServer server(bus, registry());
    const Endpoint ep = server.listen("unix:" + (dir.path / "node.sock").string());
    auto worker = LinkClient::connect(ep, registry().digest());
    REQUIRE(worker.hello(Role::Client, "worker-a"));
    REQUIRE(worker.send(control::METRICS, encode_metrics_report(jobs(1))));
    REQUIRE(worker.send(control::METRICS, encode_metrics_report(jobs(5))));
    REQUIRE(worker.sync());
    const auto reported = server.client_metrics();
    REQUIRE(reported.size() == 1);
    CHECK(reported[0].first == "worker-a");
    CHECK(reported[0].second == jobs(5));

    worker = LinkClient();  // closes
    CHECK(wait_until([&] { return server.client_metrics().empty(); }));
}

TEST_CASE("a bad METRICS frame, or one from a legacy client, closes only that connection") {
    TempDir dir;
    Bus bus;
    LinkServer server(bus, registry());
    const Endpoint ep = server.listen("unix:" + (dir.path / "node.sock").string());
    auto good = LinkClient::connect(ep, registry().digest());
    REQUIRE(good.hello(Role::Client, "good"));
    REQUIRE(good.send(control::METRICS, encode_metrics_report(jobs(2))));
    REQUIRE(good.sync());

    const auto refused_with = [&](LinkClient& c) {
        auto f = c.receive(5s);
        REQUIRE(f);
        REQUIRE(f->type_id == control::ERROR);
        const auto e = decode_error(f->payload);
        REQUIRE(e);
        CHECK(e->code == ErrorCode::ProtocolViolation);
        return e->reason;
    };
    auto bad = LinkClient::connect(ep, registry().digest());
    REQUIRE(bad.hello(Role::Client, "bad"));
    auto names = jobs(1);
    names[0].name = "mycelium_fake_total";
    REQUIRE(bad.send(control::METRICS, encode_metrics_report(names)));
    CHECK(refused_with(bad) ==
          "bad METRICS frame: metric 'mycelium_fake_total': the 'mycelium_' prefix is the host's own");

    auto legacy = LinkClient::connect(ep, registry().digest());
    REQUIRE(legacy.send(control::METRICS, encode_metrics_report(jobs(1))));
    CHECK(refused_with(legacy) == "METRICS is for a client that said HELLO role=client");

    REQUIRE(good.sync());
    const auto reported = server.client_metrics();
    REQUIRE(reported.size() == 1);
    CHECK(reported[0].first == "good");
}

}  // TEST_SUITE

TEST_SUITE("metrics") {

TEST_CASE("queued_frames counts what waits for a reader that does not read") {
    TempDir dir;
    Bus bus;
    LinkServer server(bus, registry());
    const Endpoint ep = server.listen("unix:" + (dir.path / "node.sock").string());
    CHECK(server.queued_frames() == 0);
    auto stalled = LinkClient::connect(ep, registry().digest());  // legacy: gets everything
    REQUIRE(stalled.sync());
    std::vector<std::byte> payload(16);
    // The socket's buffer takes the first ones; then the send queue holds the rest.
    for (int i = 0; i < 60000; ++i) REQUIRE(bus.publish(1002, payload));
    CHECK(wait_until([&] { return server.queued_frames() > 0; }));
    CHECK(server.queued_frames() <= 60000);
}

}  // TEST_SUITE
