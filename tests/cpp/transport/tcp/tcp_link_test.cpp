// The tcp: transport: the link conformance suite over 127.0.0.1 on free ports, and what
// only TCP has (port 0, ports in use, Nagle off so that queued frames batch in our writes).

#include "transport/link_conformance.hpp"

using namespace link_conformance;

namespace {

struct TcpPlace : Place {
    std::string where(const std::string&) override { return "tcp:127.0.0.1:0"; }
    bool passes_descriptors() const override { return false; }
};

}  // namespace

MYCELIUM_LINK_CONFORMANCE("tcp", TcpPlace)

TEST_SUITE("transport.tcp") {
    TEST_CASE("port 0 binds a free port on 127.0.0.1 and reports it") {
        Node node("tcp:127.0.0.1:0");
        CHECK(node.ep.scheme == "tcp");
        CHECK(node.ep.host == "127.0.0.1");
        CHECK(node.ep.port != 0);
        REQUIRE(node.server.endpoints().size() == 1);
        CHECK(node.server.endpoints()[0] == node.ep);
        LinkClient client = legacy(node.ep);
        REQUIRE(node.bus.publish(COUNTER, counter(5, 5)));
        expect_counter(client, 5);
    }
    TEST_CASE("one server listens on Unix and TCP at once and relays between them") {
        TempDir dir;
        Bus bus;
        LinkServer server(bus, registry());
        const Endpoint unix_ep = server.listen(dir.socket());
        const Endpoint tcp_ep = server.listen("tcp:127.0.0.1:0");
        LinkClient over_unix = legacy(unix_ep);
        LinkClient over_tcp = legacy(tcp_ep);
        REQUIRE(over_unix.send(COUNTER, counter(1, 1)));
        expect_counter(over_tcp, 1);
        REQUIRE(over_tcp.send(COUNTER, counter(2, 2)));
        expect_counter(over_unix, 2);
    }
    TEST_CASE("frames queued while the socket is busy leave in fewer, larger writes") {
        ServerOptions o;
        o.send_queue_frames = 1u << 15;  // room for the whole burst: this test is not about slow readers
        Node node("tcp:127.0.0.1:0", o);
        LinkClient client = legacy(node.ep);
        // The PONG of sync() is counted when its write completes, maybe after it arrived.
        REQUIRE(wait_until([&] { return node.server.stats().frames_sent == 1; }));
        const LinkStats before = node.server.stats();
        // Runs of 500 enter the send queue under one lock, so the io thread finds at least
        // a run waiting whenever it starts a write, however the scheduler interleaves the
        // two threads. Frame-by-frame publishes race the io thread instead, and on a
        // loaded machine it keeps up with them (a CI run saw 3.6 frames per write).
        constexpr std::uint32_t N = 20'000;
        constexpr std::uint32_t RUN = 500;
        std::vector<std::vector<std::byte>> payloads;
        for (std::uint32_t i = 0; i < N; ++i) payloads.push_back(counter(i, i));
        for (std::uint32_t at = 0; at < N; at += RUN) {
            std::vector<MessageView> run;
            for (std::uint32_t i = at; i < at + RUN; ++i) run.push_back(MessageView{COUNTER, payloads[i]});
            REQUIRE(node.bus.publish_batch(std::span<const MessageView>(run)));
        }
        for (std::uint32_t i = 0; i < N; ++i) {
            auto f = client.receive_message(5s);
            REQUIRE(f);
            REQUIRE(counter_id(*f) == i);
        }
        CHECK(wait_until([&] { return node.server.stats().frames_sent == before.frames_sent + N; }));
        const LinkStats after = node.server.stats();
        const auto frames = after.frames_sent - before.frames_sent;
        const auto writes = after.writes - before.writes;
        CHECK(frames == N);
        CHECK_MESSAGE(writes * 4 <= frames, writes << " writes for " << frames << " frames");
    }
    TEST_CASE("a port in use is refused with a system error") {
        Node node("tcp:127.0.0.1:0");
        Bus bus;
        LinkServer other(bus, registry());
        CHECK_THROWS_AS(other.listen("tcp:127.0.0.1:" + std::to_string(node.ep.port)), std::system_error);
    }
}
