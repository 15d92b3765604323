// LinkServer::set_client_observer, the hook the worker supervisor's readiness uses: named
// clients are reported when they say HELLO and when they close; legacy clients and peers
// are not.

#include <doctest/doctest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mycelium/bus.hpp"
#include "mycelium/link.hpp"
#include "mycelium/link_client.hpp"
#include "supervisor_test_support.hpp"

using namespace mycelium;
using namespace mycelium::link;
using namespace mycelium::test;
using namespace std::chrono_literals;

namespace {

/// What the observer was told, in order.
struct Events {
    std::mutex mutex;
    std::vector<std::pair<std::string, bool>> seen;

    void add(std::string_view name, bool connected) {
        std::lock_guard lock(mutex);
        seen.emplace_back(std::string(name), connected);
    }
    std::vector<std::pair<std::string, bool>> get() {
        std::lock_guard lock(mutex);
        return seen;
    }
};

}  // namespace

TEST_SUITE("transport.unix") {
    TEST_CASE("the client observer hears named clients connect and close, not legacy clients or peers") {
        TempDir dir;
        const std::string where = "unix:" + (dir.path / "node.sock").string();
        Events events;
        Bus bus;
        ServerOptions options;
        options.accepted_peers = {"other-node"};
        LinkServer server(bus, test_registry(), options);
        const Endpoint ep = server.listen(where);
        server.set_client_observer([&events](std::string_view name, bool connected) { events.add(name, connected); });

        LinkClient legacy = LinkClient::connect(ep, test_registry().digest());
        REQUIRE(legacy.sync());
        LinkClient peer = LinkClient::connect(ep, test_registry().digest());
        REQUIRE(peer.hello(Role::Peer, "other-node"));
        REQUIRE(peer.sync());
        LinkClient worker = LinkClient::connect(ep, test_registry().digest());
        REQUIRE(worker.hello(Role::Client, "risk"));
        REQUIRE(worker.sync());
        REQUIRE(wait_until([&] { return events.get().size() == 1; }));
        CHECK(events.get()[0] == std::pair<std::string, bool>{"risk", true});

        worker.close();
        REQUIRE(wait_until([&] { return events.get().size() == 2; }));
        CHECK(events.get()[1] == std::pair<std::string, bool>{"risk", false});

        // A replaced observer is not called any more; the new one hears the next client.
        Events later;
        server.set_client_observer([&later](std::string_view name, bool connected) { later.add(name, connected); });
        LinkClient again = LinkClient::connect(ep, test_registry().digest());
        REQUIRE(again.hello(Role::Client, "risk"));
        REQUIRE(again.sync());
        REQUIRE(wait_until([&] { return later.get().size() == 1; }));

        // Closing at stop() reports the named client's end too.
        server.stop();
        CHECK(later.get().size() == 2);
        CHECK(later.get()[1] == std::pair<std::string, bool>{"risk", false});
        CHECK(events.get().size() == 2);
    }

    TEST_CASE("an observer that throws is logged and the server keeps serving") {
        TempDir dir;
        Bus bus;
        LinkServer server(bus, test_registry());
        const Endpoint ep = server.listen("unix:" + (dir.path / "node.sock").string());
        server.set_client_observer([](std::string_view, bool) { throw std::runtime_error("observer failure"); });
        LinkClient a = LinkClient::connect(ep, test_registry().digest());
        REQUIRE(a.hello(Role::Client, "a"));
        REQUIRE(a.sync());
        LinkClient b = LinkClient::connect(ep, test_registry().digest());
        REQUIRE(b.hello(Role::Client, "b"));
        REQUIRE(b.sync());
        server.set_client_observer({});
    }
}
