#pragma once
// The link conformance suite: what every transport's links do the same, whatever carries
// the bytes. A transport's tests (tests/cpp/transport/<name>/) run it with
// MYCELIUM_LINK_CONFORMANCE(NAME, PLACE), PLACE saying where that transport listens; the
// helpers below are theirs too. Real servers, real sockets (or socketpairs), real
// clients: every case has its own endpoints, and every wait has a timeout.

#include <doctest/doctest.h>

#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "mycelium/bus.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/link.hpp"
#include "mycelium/link_client.hpp"
#include "mycelium/schema.hpp"
#include "test_support.hpp"

namespace link_conformance {

using namespace mycelium;
using namespace mycelium::link;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::uint16_t TEXT = 1001;     // 312 bytes
constexpr std::uint16_t COUNTER = 1002;  // 16 bytes
constexpr std::uint16_t BLOB = 1003;     // 16 KiB

inline const schema::Registry& registry() {
    static const schema::Registry r =
        schema::Registry::load_string(std::string(test_support::TEXT_AND_COUNTER_CONTRACTS) + R"(  Blob:
    tlv_type: 1003
    fields:
      data: "[u8; 16384]"
)",
                                      "link_test.yaml");
    return r;
}

struct TempDir : test_support::TempDir {
    TempDir() : test_support::TempDir("myc-link") {}
};

using test_support::counter;
using test_support::counter_id;

inline std::vector<std::byte> blob(std::uint64_t seq) {
    std::vector<std::byte> out(16384, std::byte{0x5a});
    std::memcpy(out.data(), &seq, 8);
    return out;
}

inline std::vector<std::byte> raw(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (const int v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}

inline std::vector<std::byte> header(std::uint16_t type_id, std::uint32_t length) {
    std::vector<std::byte> out(codec::HEADER_SIZE);
    codec::encode_header(type_id, length, std::span<std::byte, codec::HEADER_SIZE>(out.data(), codec::HEADER_SIZE));
    return out;
}

inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    return test_support::wait_until(done, timeout);
}

inline LinkClient legacy(const Endpoint& ep) {
    LinkClient c = LinkClient::connect(ep, registry().digest());
    REQUIRE(c.sync());  // the host has read the handshake: the client is subscribed
    return c;
}

inline LinkClient hello(const Endpoint& ep, Role role, const std::string& name, std::vector<std::uint16_t> types) {
    LinkClient c = LinkClient::connect(ep, registry().digest());
    REQUIRE(c.hello(role, name));
    if (!types.empty()) REQUIRE(c.subscribe(types));
    REQUIRE(c.sync());
    return c;
}

/// Expects a CounterUpdate with `id` as the next application frame.
inline void expect_counter(LinkClient& c, std::uint32_t id) {
    auto f = c.receive_message(5s);
    REQUIRE_MESSAGE(f, "no frame: error " << static_cast<int>(f.error()));
    CHECK(f->type_id == COUNTER);
    CHECK(counter_id(*f) == id);
}

/// Expects no application frame within a short while.
inline void expect_nothing(LinkClient& c, std::chrono::milliseconds wait = 150ms) {
    auto f = c.receive_message(wait);
    if (f) FAIL("unexpected frame of type " << f->type_id);
    CHECK(f.error() == ReceiveError::Timeout);
}

/// Expects an ERROR frame with `code` (skipping application frames), then end of stream.
inline void expect_error_then_close(LinkClient& c, ErrorCode code) {
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

inline void expect_closed(LinkClient& c) {
    for (;;) {
        auto f = c.receive(5s);
        if (!f) {
            CHECK(f.error() == ReceiveError::Closed);
            return;
        }
    }
}

/// A bus, a registry and a server on one endpoint.
struct Node {
    Bus bus;
    LinkServer server;
    Endpoint ep;
    Node(const std::string& where, ServerOptions options = {})
        : server(bus, registry(), options), ep(server.listen(where)) {}
};

/// Two well-behaved legacy clients that keep exchanging frames around a bad one.
struct Witnesses {
    LinkClient sender;
    LinkClient receiver;
    std::uint32_t next = 1;
    explicit Witnesses(const Endpoint& ep) : sender(legacy(ep)), receiver(legacy(ep)) {}
    void exchange() {
        const std::uint32_t id = next++;
        REQUIRE(sender.send(COUNTER, counter(id, id)));
        expect(receiver, id);
        REQUIRE(receiver.send(COUNTER, counter(id + 1000, id)));
        expect(sender, id + 1000);
    }
    /// A bad client may publish before it is thrown out (STRAY); those frames are fine.
    static void expect(LinkClient& c, std::uint32_t id) {
        for (;;) {
            auto f = c.receive_message(5s);
            REQUIRE(f);
            REQUIRE(f->type_id == COUNTER);
            if (counter_id(*f) == STRAY) continue;
            CHECK(counter_id(*f) == id);
            return;
        }
    }
    static constexpr std::uint32_t STRAY = 99;
};

struct BadCase {
    const char* name;
    bool handshake;  // send the right handshake first
    std::function<void(LinkClient&)> send;
    std::optional<ErrorCode> error;  // nullopt: the connection just closes
    std::uint64_t LinkStats::*counter;
    bool dropped = false;  // only the frame is dropped: the connection stays open
};

inline std::vector<BadCase> bad_cases() {
    const auto& digest = registry().digest();
    std::vector<BadCase> cases;
    cases.push_back({"wrong digest", false,
                     [&](LinkClient& c) {
                         auto bytes = raw({32, 0});
                         for (std::size_t i = 0; i < 32; ++i) bytes.push_back(static_cast<std::byte>(digest[i] ^ 1));
                         (void)c.send_raw(bytes);
                     },
                     ErrorCode::DigestMismatch, &LinkStats::digest_mismatch});
    cases.push_back({"digest length not 32", false,
                     [&](LinkClient& c) {
                         auto bytes = raw({31, 0});
                         for (std::size_t i = 0; i < 31; ++i) bytes.push_back(static_cast<std::byte>(digest[i]));
                         (void)c.send_raw(bytes);
                     },
                     ErrorCode::BadDigestLength, &LinkStats::bad_digest_length});
    cases.push_back({"truncated handshake", false,
                     [&](LinkClient& c) {
                         (void)c.send_raw(raw({32, 0, 1, 2, 3}));
                         c.shutdown_send();
                     },
                     std::nullopt, &LinkStats::truncated});
    cases.push_back({"slow handshake", false, [&](LinkClient& c) { (void)c.send_raw(raw({32, 0, 1})); },
                     ErrorCode::HandshakeTimeout, &LinkStats::handshake_timeout});
    cases.push_back({"oversize length", true,
                     [&](LinkClient& c) { (void)c.send_raw(header(COUNTER, 5u * 1024u * 1024u)); },
                     ErrorCode::Oversize, &LinkStats::oversize});
    cases.push_back({"garbage", true,
                     [&](LinkClient& c) {
                         const std::string text = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
                         (void)c.send_raw(std::as_bytes(std::span(text.data(), text.size())));
                     },
                     // "GE" is type 0x4547 and " / H" a 540 MB length: the limit trips first.
                     ErrorCode::Oversize, &LinkStats::oversize});
    cases.push_back({"unknown type id", true,
                     [&](LinkClient& c) { (void)c.send(1500, counter(1, 1)); }, ErrorCode::UnknownType,
                     &LinkStats::unknown_type, true});
    cases.push_back({"type id zero", true,
                     [&](LinkClient& c) { (void)c.send_raw(header(0, 0)); }, ErrorCode::UnknownType,
                     &LinkStats::unknown_type});
    cases.push_back({"payload size that does not match its type", true,
                     [&](LinkClient& c) {
                         auto payload = counter(1, 1);
                         payload.pop_back();
                         (void)c.send(COUNTER, payload);
                     },
                     ErrorCode::SizeMismatch, &LinkStats::size_mismatch, true});
    cases.push_back({"truncated frame", true,
                     [&](LinkClient& c) {
                         auto bytes = header(COUNTER, 16);
                         bytes.resize(bytes.size() + 5);
                         (void)c.send_raw(bytes);
                         c.shutdown_send();
                     },
                     std::nullopt, &LinkStats::truncated});
    cases.push_back({"malformed HELLO", true,
                     [&](LinkClient& c) { (void)c.send(control::HELLO, raw({1, 7, 1, 0, 'x'})); },
                     ErrorCode::ProtocolViolation, &LinkStats::protocol_errors});
    cases.push_back({"HELLO after an application frame", true,
                     [&](LinkClient& c) {
                         (void)c.send(COUNTER, counter(99, 99));
                         (void)c.hello(Role::Client, "late");
                     },
                     ErrorCode::ProtocolViolation, &LinkStats::protocol_errors});
    cases.push_back({"SUBSCRIBE of a type the contracts do not define", true,
                     [&](LinkClient& c) {
                         (void)c.hello(Role::Client, "tool");
                         const std::uint16_t ids[] = {COUNTER, 4000};
                         (void)c.subscribe(ids);
                     },
                     ErrorCode::ProtocolViolation, &LinkStats::protocol_errors});
    cases.push_back({"a shared-memory control type that is not defined", true,
                     [&](LinkClient& c) { (void)c.send(control::SHM_LAST, raw({0})); }, ErrorCode::UnknownType,
                     &LinkStats::unknown_type, true});
    cases.push_back({"SHM_REQUEST before HELLO", true,
                     [&](LinkClient& c) { (void)c.send(control::SHM_REQUEST, encode_shm_request({})); },
                     ErrorCode::ProtocolViolation, &LinkStats::protocol_errors});
    cases.push_back({"SHM_READY without an offer", true,
                     [&](LinkClient& c) {
                         (void)c.hello(Role::Client, "tool");
                         (void)c.send(control::SHM_READY, {});
                     },
                     ErrorCode::ProtocolViolation, &LinkStats::protocol_errors});
    return cases;
}

inline ServerOptions bad_input_options() {
    ServerOptions o;
    o.handshake_timeout = 300ms;
    return o;
}

inline void bad_input_closes_only_that_connection(const std::string& where) {
    Node node(where, bad_input_options());
    Witnesses witnesses(node.ep);
    witnesses.exchange();
    for (const BadCase& c : bad_cases()) {
        const std::string name = c.name;
        CAPTURE(name);
        const std::uint64_t before = node.server.stats().*c.counter;
        LinkClient bad = c.handshake ? LinkClient::connect(node.ep, registry().digest()) : LinkClient::open(node.ep);
        c.send(bad);
        if (c.dropped) {
            // A legacy client is not told (it does not know control frames) and goes on.
            CHECK(wait_until([&] { return node.server.stats().*c.counter == before + 1; }));
            REQUIRE(bad.sync());  // still connected
            CHECK(node.server.stats().active == 3);
            witnesses.exchange();
            continue;
        }
        if (c.error) {
            expect_error_then_close(bad, *c.error);
        } else {
            expect_closed(bad);
        }
        CHECK(wait_until([&] { return node.server.stats().*c.counter == before + 1; }));
        witnesses.exchange();
    }
    CHECK(wait_until([&] { return node.server.stats().active == 2; }));
}

inline void bad_frames_are_dropped_and_a_hello_client_is_told(const std::string& where) {
    Node node(where, bad_input_options());
    LinkClient tool = hello(node.ep, Role::Client, "tool", {COUNTER});
    REQUIRE(tool.send(1500, counter(1, 1)));  // not in the contracts
    auto payload = counter(1, 1);
    payload.pop_back();
    REQUIRE(tool.send(COUNTER, payload));  // one byte short
    for (const ErrorCode code : {ErrorCode::UnknownType, ErrorCode::SizeMismatch}) {
        auto f = tool.receive(5s);
        REQUIRE(f);
        REQUIRE(f->type_id == control::ERROR);
        const auto e = decode_error(f->payload);
        REQUIRE(e);
        CHECK(e->code == code);
    }
    // Still connected, still served.
    REQUIRE(tool.sync());
    REQUIRE(node.bus.publish(COUNTER, counter(8, 8)));
    expect_counter(tool, 8);
    const auto bad = node.server.client_drops();
    REQUIRE(bad.size() == 1);
    CHECK(bad[0].client == "tool");
    CHECK(bad[0].unknown_type == 1);
    CHECK(bad[0].size_mismatch == 1);
}

inline void legacy_fan_out_excludes_the_sender(const std::string& where) {
    Node node(where);
    LinkClient a = legacy(node.ep);
    LinkClient b = legacy(node.ep);
    LinkClient c = legacy(node.ep);
    std::atomic<int> local{0};
    auto sub = node.bus.subscribe(COUNTER, [&](const MessageView&) { ++local; });

    REQUIRE(a.send(COUNTER, counter(1, 10)));
    expect_counter(b, 1);
    expect_counter(c, 1);
    CHECK(wait_until([&] { return local.load() == 1; }));
    expect_nothing(a);

    // A publish on the node reaches every legacy client.
    REQUIRE(node.bus.publish(COUNTER, counter(2, 20)));
    expect_counter(a, 2);
    expect_counter(b, 2);
    expect_counter(c, 2);
}


/// Where a conformance case listens: endpoints of one transport, one per `name`, each
/// the test's own (a temp dir's socket, port 0, a fresh pair name).
struct Place {
    virtual ~Place() = default;
    virtual std::string where(const std::string& name) = 0;
    /// Whether the transport's pipes carry descriptors (shared memory is offered over them).
    virtual bool passes_descriptors() const = 0;
};

/// A legacy client completes the handshake and receives what the node publishes.
inline void legacy_client_receives_what_the_node_publishes(Place& place) {
    Node node(place.where("node"));
    LinkClient client = legacy(node.ep);
    REQUIRE(node.bus.publish(COUNTER, counter(7, 42)));
    expect_counter(client, 7);
    const LinkStats s = node.server.stats();
    CHECK(s.handshakes_ok == 1);
    CHECK(s.active == 1);
}

/// A legacy client's frames reach the bus and every other client but never the sender.
inline void legacy_frames_reach_everyone_but_the_sender(Place& place) {
    legacy_fan_out_excludes_the_sender(place.where("node"));
}

/// Every kind of bad input closes only that connection while others keep exchanging.
inline void bad_input_closes_only_that_connection_case(Place& place) {
    bad_input_closes_only_that_connection(place.where("node"));
}

/// A frame of an unknown type or the wrong size is dropped and a HELLO client is told.
inline void bad_frames_are_dropped_case(Place& place) {
    bad_frames_are_dropped_and_a_hello_client_is_told(place.where("node"));
}

/// Expects a TextMessage from `sender` as the next application frame.
inline void expect_text(LinkClient& c, const std::string& sender) {
    auto f = c.receive_message(5s);
    REQUIRE_MESSAGE(f, "no frame: error " << static_cast<int>(f.error()));
    REQUIRE(f->type_id == TEXT);
    CHECK(test_support::text_sender(f->payload) == sender);
}

/// TextMessages from `from`: a valid one, one whose sender is not UTF-8, one whose sender
/// declares 33 bytes (its capacity is 32), a valid one.
inline void send_texts_around_invalid_ones(LinkClient& from, const std::string& name) {
    REQUIRE(from.send(TEXT, test_support::text_message(name + " before")));
    REQUIRE(from.send(TEXT, test_support::text_message("\xff\xfe")));
    REQUIRE(from.send(TEXT, test_support::text_message(std::string(32, 'x'), 33)));
    REQUIRE(from.send(TEXT, test_support::text_message(name + " after")));
}

/// Expects the two ERROR invalid_payload frames send_texts_around_invalid_ones() causes.
inline void expect_invalid_payload_errors(LinkClient& c) {
    for (const char* broken : {"TextMessage.sender: utf8: is not valid UTF-8 (type 1001)",
                               "TextMessage.sender: max_length: length 33 is above 32 (type 1001)"}) {
        auto f = c.receive(5s);
        // A peer is sent the node's interest (SUBSCRIBE) first.
        while (f && f->type_id != control::ERROR && f->type_id < schema::MIN_APP_TYPE_ID) f = c.receive(5s);
        REQUIRE(f);
        REQUIRE(f->type_id == control::ERROR);
        const auto e = decode_error(f->payload);
        REQUIRE(e);
        CHECK(e->code == ErrorCode::InvalidPayload);
        CHECK_MESSAGE(e->reason.find(broken) != std::string::npos, e->reason);
    }
}

/// Payloads that break their contract are dropped, counted (for the server and the
/// client) and a HELLO client is told, while the frames around them pass; a server that
/// trusts its clients' (or its peers') payloads relays them as they are.
inline void invalid_payloads_case(Place& place) {
    SUBCASE("validated by default") {
        ServerOptions options = bad_input_options();
        options.accepted_peers = {"b"};
        Node node(place.where("node"), options);
        LinkClient reader = hello(node.ep, Role::Client, "reader", {TEXT});
        LinkClient tool = hello(node.ep, Role::Client, "tool", {});
        LinkClient peer = hello(node.ep, Role::Peer, "b", {});
        send_texts_around_invalid_ones(tool, "tool");
        expect_invalid_payload_errors(tool);
        REQUIRE(tool.sync());  // still connected
        send_texts_around_invalid_ones(peer, "peer");
        expect_invalid_payload_errors(peer);
        REQUIRE(peer.sync());
        for (const char* sender : {"tool before", "tool after", "peer before", "peer after"}) expect_text(reader, sender);
        expect_nothing(reader);
        CHECK(node.server.stats().invalid_payload == 4);
        CHECK(node.server.stats().size_mismatch == 0);
        for (const ClientDrops& drops : node.server.client_drops()) {
            CAPTURE(drops.client);
            CHECK(drops.invalid_payload == (drops.client == "reader" ? 0 : 2));
        }
        CHECK(node.server.stats().active == 3);
    }
    SUBCASE("trusted") {
        for (const TrustPayloads trust : {TrustPayloads::Peers, TrustPayloads::All}) {
            CAPTURE(to_string(trust));
            ServerOptions options = bad_input_options();
            options.accepted_peers = {"b"};
            options.trust_payloads = trust;
            Node node(place.where(trust == TrustPayloads::All ? "trusting-all" : "trusting-peers"), options);
            LinkClient reader = hello(node.ep, Role::Client, "reader", {TEXT});
            LinkClient tool = hello(node.ep, Role::Client, "tool", {});
            LinkClient peer = hello(node.ep, Role::Peer, "b", {});
            send_texts_around_invalid_ones(peer, "peer");
            REQUIRE(peer.sync());
            // Relayed as they came: the reader sees the bytes that break the contract.
            expect_text(reader, "peer before");
            expect_text(reader, "\xff\xfe");
            expect_text(reader, std::string(32, 'x'));
            expect_text(reader, "peer after");
            send_texts_around_invalid_ones(tool, "tool");
            if (trust == TrustPayloads::All) {
                REQUIRE(tool.sync());
                for (const std::string& sender :
                     std::vector<std::string>{"tool before", "\xff\xfe", std::string(32, 'x'), "tool after"})
                    expect_text(reader, sender);
                CHECK(node.server.stats().invalid_payload == 0);
            } else {  // peers only: the client is still checked
                expect_invalid_payload_errors(tool);
                expect_text(reader, "tool before");
                expect_text(reader, "tool after");
                CHECK(node.server.stats().invalid_payload == 2);
            }
            expect_nothing(reader);
        }
    }
}

/// After HELLO a client receives only the types it subscribed to.
inline void hello_client_receives_only_its_subscriptions(Place& place) {
    Node node(place.where("node"));
    LinkClient tool = hello(node.ep, Role::Client, "tool", {COUNTER});
    LinkClient old = legacy(node.ep);

    std::vector<std::byte> text(312);
    REQUIRE(node.bus.publish(TEXT, text));
    REQUIRE(node.bus.publish(COUNTER, counter(3, 3)));
    expect_counter(tool, 3);  // the TextMessage before it was not sent
    auto first = old.receive_message(5s);
    REQUIRE(first);
    CHECK(first->type_id == TEXT);
    expect_counter(old, 3);

    const std::uint16_t ids[] = {COUNTER};
    REQUIRE(tool.unsubscribe(ids));
    REQUIRE(tool.sync());
    REQUIRE(node.bus.publish(COUNTER, counter(4, 4)));
    expect_counter(old, 4);
    expect_nothing(tool);

    // A subscribed client's own frames are not echoed either.
    REQUIRE(tool.subscribe(ids));
    REQUIRE(tool.sync());
    REQUIRE(tool.send(COUNTER, counter(5, 5)));
    expect_counter(old, 5);
    expect_nothing(tool);
}

/// A peer never receives frames that came from another peer.
inline void peer_never_receives_frames_from_another_peer(Place& place) {
    ServerOptions o;
    o.accepted_peers = {"node-b", "node-c"};
    Node node(place.where("node"), o);
    LinkClient p1 = hello(node.ep, Role::Peer, "node-b", {COUNTER});
    LinkClient p2 = hello(node.ep, Role::Peer, "node-c", {COUNTER});
    LinkClient app = legacy(node.ep);

    REQUIRE(p1.send(COUNTER, counter(1, 1)));
    expect_counter(app, 1);
    expect_nothing(p2);

    REQUIRE(app.send(COUNTER, counter(2, 2)));
    expect_counter(p1, 2);
    expect_counter(p2, 2);
}

/// A client claiming to be a peer node the host does not accept is refused.
inline void unaccepted_peer_is_refused(Place& place) {
    ServerOptions o;
    o.accepted_peers = {"node-b"};
    Node node(place.where("node"), o);
    LinkClient real = hello(node.ep, Role::Peer, "node-b", {COUNTER});
    REQUIRE(real.sync());
    // The ERROR frame's reason, then end of stream.
    const auto refused_reason = [](LinkClient& c) {
        auto f = c.receive(5s);
        REQUIRE(f);
        REQUIRE(f->type_id == control::ERROR);
        const auto e = decode_error(f->payload);
        REQUIRE(e);
        CHECK(e->code == ErrorCode::ProtocolViolation);
        expect_closed(c);
        return e->reason;
    };
    for (const std::string name : {"evil", "node-c"}) {
        LinkClient impostor = LinkClient::connect(node.ep, registry().digest());
        REQUIRE(impostor.hello(Role::Peer, name));
        CHECK(refused_reason(impostor) == "'" + name + "' is not a peer node of this host");
    }
    CHECK(node.server.peers().size() == 1);
    REQUIRE(node.bus.publish(COUNTER, counter(3, 3)));
    expect_counter(real, 3);  // the real peer's link was never displaced

    Node closed(place.where("closed"));  // accepts no peers at all
    LinkClient impostor = LinkClient::connect(closed.ep, registry().digest());
    REQUIRE(impostor.hello(Role::Peer, "node-b"));
    CHECK(refused_reason(impostor) == "'node-b' is not a peer node of this host (it accepts no peers)");
}

/// A reply published from inside an inline callback reaches the client that asked.
inline void reply_from_inline_callback_reaches_the_asker(Place& place) {
    Node node(place.where("node"));
    // An inline C++ service: answers each CounterUpdate with a TextMessage. Its publish
    // runs under the requesting client's origin, but it is a different message.
    auto service = node.bus.subscribe(COUNTER, [&](const MessageView&) {
        std::vector<std::byte> reply(312);
        (void)node.bus.publish(TEXT, reply);
    });
    LinkClient asker = legacy(node.ep);
    LinkClient other = legacy(node.ep);
    REQUIRE(asker.send(COUNTER, counter(1, 1)));
    auto reply = asker.receive_message(5s);
    REQUIRE(reply);
    CHECK(reply->type_id == TEXT);
    // The other client gets both; the reply was published first (nested in the callback).
    std::vector<std::uint16_t> seen;
    for (int i = 0; i < 2; ++i) {
        auto f = other.receive_message(5s);
        REQUIRE(f);
        seen.push_back(f->type_id);
    }
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<std::uint16_t>{TEXT, COUNTER});
    expect_nothing(asker);
}

/// Ping is answered with a pong carrying the same nonce.
inline void ping_gets_pong_with_the_same_nonce(Place& place) {
    Node node(place.where("node"));
    LinkClient client = LinkClient::connect(node.ep, registry().digest());
    REQUIRE(client.send(control::PING, encode_nonce(0x1122334455667788ull)));
    auto f = client.receive(5s);
    REQUIRE(f);
    CHECK(f->type_id == control::PONG);
    const auto nonce = decode_nonce(f->payload);
    REQUIRE(nonce);
    CHECK(*nonce == 0x1122334455667788ull);
}

/// A connection above the maximum gets an error frame and the others stay.
inline void connection_above_the_maximum_is_refused(Place& place) {
    ServerOptions o;
    o.max_connections = 2;
    Node node(place.where("node"), o);
    Witnesses witnesses(node.ep);
    LinkClient extra = LinkClient::connect(node.ep, registry().digest());
    expect_error_then_close(extra, ErrorCode::TooManyConnections);
    CHECK(node.server.stats().rejected_max_connections == 1);
    witnesses.exchange();

    witnesses.receiver.close();
    REQUIRE(wait_until([&] { return node.server.stats().active == 1; }));
    LinkClient again = legacy(node.ep);
    REQUIRE(node.bus.publish(COUNTER, counter(9, 9)));
    expect_counter(again, 9);
}

/// A slow HELLO client is disconnected with ERROR slow_consumer while others keep receiving.
inline void slow_hello_client_is_disconnected(Place& place) {
    ServerOptions o;
    o.send_queue_frames = 4;
    Node node(place.where("node"), o);
    LinkClient slow = hello(node.ep, Role::Client, "slow", {BLOB});
    LinkClient fast = hello(node.ep, Role::Client, "fast", {COUNTER});

    // The slow client does not read: the socket buffer fills, then its send queue.
    std::uint64_t seq = 0;
    REQUIRE(wait_until([&] {
        (void)node.bus.publish(BLOB, blob(seq++));
        return node.server.stats().slow_consumers == 1;
    }, 10s));
    // It reads now, within the 100 ms the ERROR has: what was in flight, the ERROR, the end.
    bool told = false;
    for (;;) {
        auto f = slow.receive(5s);
        if (!f) {
            CHECK(f.error() == ReceiveError::Closed);
            break;
        }
        if (f->type_id != control::ERROR) continue;
        const auto e = decode_error(f->payload);
        REQUIRE(e);
        CHECK(e->code == ErrorCode::SlowConsumer);
        told = true;
    }
    CHECK(told);
    REQUIRE(node.bus.publish(COUNTER, counter(11, 11)));
    expect_counter(fast, 11);
    CHECK(wait_until([&] { return node.server.stats().active == 1; }));
}

/// A legacy client that falls behind lags and skips by default, as with Mycelium.
inline void slow_legacy_client_lags_and_skips(Place& place) {
    ServerOptions o;
    o.send_queue_frames = 4;
    Node node(place.where("node"), o);
    LinkClient slow = legacy(node.ep);
    REQUIRE(wait_until([&] {
        for (int i = 0; i < 64; ++i) (void)node.bus.publish(BLOB, blob(0));
        return node.server.stats().dropped_frames > 0;
    }, 10s));
    CHECK(node.server.stats().slow_consumers == 0);
    const auto drops = node.server.client_drops();
    REQUIRE(drops.size() == 1);
    CHECK(drops[0].slow_consumer == node.server.stats().dropped_frames);
    // Still connected: it catches up and gets what comes next.
    std::uint64_t blobs = 0;
    while (slow.receive_message(300ms)) ++blobs;
    CHECK(blobs > 0);
    REQUIRE(node.bus.publish(COUNTER, counter(12, 12)));
    expect_counter(slow, 12);
}

/// Drop_oldest keeps a slow reader connected and counts what it lost.
inline void drop_oldest_keeps_a_slow_reader(Place& place) {
    ServerOptions o;
    o.send_queue_frames = 4;
    o.slow_consumer = SlowConsumerPolicies::all(SlowConsumerPolicy::DropOldest);
    Node node(place.where("node"), o);
    LinkClient slow = legacy(node.ep);
    for (std::uint64_t seq = 0; seq < 300; ++seq) REQUIRE(node.bus.publish(BLOB, blob(seq)));
    CHECK(wait_until([&] { return node.server.stats().dropped_frames > 0; }));
    CHECK(node.server.stats().slow_consumers == 0);

    // What arrives is in order, with gaps; the connection stays usable.
    std::uint64_t last = 0;
    bool first = true;
    for (;;) {
        auto f = slow.receive_message(300ms);
        if (!f) {
            CHECK(f.error() == ReceiveError::Timeout);
            break;
        }
        REQUIRE(f->type_id == BLOB);
        std::uint64_t seq = 0;
        std::memcpy(&seq, f->payload.data(), 8);
        CHECK((first || seq > last));
        first = false;
        last = seq;
    }
    CHECK(last == 299);
    CHECK(slow.sync());
}

/// Stop closes every connection with a shutting_down error.
inline void stop_closes_every_connection(Place& place) {
    Node node(place.where("node"));
    LinkClient client = legacy(node.ep);
    node.server.stop();
    expect_error_then_close(client, ErrorCode::ShuttingDown);
    CHECK_THROWS_AS(node.server.listen(place.where("again")), std::logic_error);
}

/// A shutdown's two steps: stop_intake() stops reading every connection (what a client
/// sends is no longer published), and stop_after_flush() sends what is queued, then ERROR
/// shutting_down; what a client that never reads leaves queued is counted, by type.
inline void flushing_stop_delivers_what_is_queued_and_counts_the_rest(Place& place) {
    ServerOptions options;
    options.slow_consumer.client = SlowConsumerPolicy::DropOldest;  // the stalled client stays
    Node node(place.where("node"), options);
    LinkClient reader = hello(node.ep, Role::Client, "reader", {COUNTER});
    LinkClient stalled = hello(node.ep, Role::Client, "stalled", {BLOB});
    LinkClient producer = hello(node.ep, Role::Client, "producer", {});
    std::atomic<int> from_producer{0};
    auto text_sub = node.bus.subscribe(TEXT, [&](const MessageView&) { ++from_producer; });

    node.server.stop_intake();
    const std::vector<std::byte> text(312);
    REQUIRE(producer.send(TEXT, text));
    for (std::uint32_t id = 1; id <= 50; ++id) REQUIRE(node.bus.publish(COUNTER, counter(id, 0)));
    // 16 MB: more than any socket buffer, loopback TCP included.
    for (std::uint64_t seq = 0; seq < 1000; ++seq) REQUIRE(node.bus.publish(BLOB, blob(seq)));
    std::this_thread::sleep_for(100ms);
    CHECK(from_producer.load() == 0);
    // A new connection is refused outright, or is never served.
    try {
        LinkClient late = LinkClient::connect(node.ep, registry().digest(), 500ms);
        CHECK_FALSE(late.sync(300ms));
    } catch (const std::system_error&) {
    }

    const LinkServer::Unsent unsent = node.server.stop_after_flush(std::chrono::steady_clock::now() + 500ms);
    for (std::uint32_t id = 1; id <= 50; ++id) expect_counter(reader, id);
    expect_error_then_close(reader, ErrorCode::ShuttingDown);
    REQUIRE(unsent.count(BLOB) == 1);
    CHECK(unsent.at(BLOB) > 0);
    CHECK(unsent.count(COUNTER) == 0);
    CHECK(from_producer.load() == 0);
}

/// A node dials another (the transport's dial) and the link carries frames both ways by
/// each side's interest; a dial to where nobody listens fails and is counted, and retried.
inline void dialed_peer_link_carries_frames_both_ways(Place& place) {
    ServerOptions accepting;
    accepting.accepted_peers = {"dialer"};
    Node a(place.where("a"), accepting);
    Bus b_bus;
    LinkServer b(b_bus, registry());
    std::atomic<int> at_a{0}, at_b{0};
    auto a_sub = a.bus.subscribe(COUNTER, [&](const MessageView&) { ++at_a; });
    auto b_sub = b_bus.subscribe(COUNTER, [&](const MessageView&) { ++at_b; });
    PeerOptions po;
    po.self_name = "dialer";
    po.backoff_initial = 20ms;
    b.connect_peer("a", a.ep, po);
    REQUIRE(wait_until([&] {
        const auto peers = b.peers();
        return peers.size() == 1 && peers[0].connected;
    }));
    // Interest travels as SUBSCRIBE after HELLO: publish until the first frame gets across.
    REQUIRE(wait_until([&] {
        (void)b_bus.publish(COUNTER, counter(1, 1));
        return at_a.load() > 0;
    }));
    REQUIRE(wait_until([&] {
        (void)a.bus.publish(COUNTER, counter(2, 2));
        return at_b.load() > 0;
    }));

    LinkServer lonely(b_bus, registry());
    Node gone(place.where("gone"));
    const Endpoint nowhere = gone.ep;
    gone.server.stop();
    lonely.connect_peer("nobody", nowhere, po);
    CHECK(wait_until([&] {
        const auto peers = lonely.peers();
        return peers.size() == 1 && peers[0].connect_failures >= 2 && !peers[0].connected;
    }));
}

/// Shared memory is set up where the pipe passes descriptors, and refused as not local
/// where it does not; either way the client is served.
inline void shared_memory_where_descriptors_pass(Place& place) {
    ServerOptions o;
    o.shm_enabled = true;
    o.shm_ring_bytes = 1u << 16;
    Node node(place.where("node"), o);
    LinkClient a = LinkClient::connect(node.ep, registry().digest());
    REQUIRE(a.hello(Role::Client, "a"));
    const std::uint16_t ids[] = {COUNTER};
    REQUIRE(a.subscribe(ids));
    const auto set_up = a.request_shm();
    LinkClient plain = hello(node.ep, Role::Client, "plain", {COUNTER});
    if (place.passes_descriptors()) {
        REQUIRE_MESSAGE(set_up, "request_shm failed: " << static_cast<int>(set_up.error()));
        CHECK(a.shm_active());
        REQUIRE(a.sync());
        constexpr std::uint32_t N = 1000;  // 24 KB in a 64 KiB ring
        for (std::uint32_t i = 1; i <= N; ++i) REQUIRE(a.send(COUNTER, counter(i, i)));
        for (std::uint32_t i = 1; i <= N; ++i) expect_counter(plain, i);
        REQUIRE(plain.send(COUNTER, counter(N + 1, 1)));
        expect_counter(a, N + 1);
        CHECK(node.server.stats().shm_links == 1);
    } else {
        REQUIRE_FALSE(set_up);
        CHECK(set_up.error() == ShmSetupError::Refused);
        REQUIRE(a.shm_refusal());
        CHECK(a.shm_refusal()->reason == ShmRefusal::NotLocal);
        REQUIRE(a.send(COUNTER, counter(1, 1)));
        expect_counter(plain, 1);
        CHECK(node.server.stats().shm_refused == 1);
    }
}


}  // namespace link_conformance

/// Stamps out the conformance suite as TEST_SUITE("transport.NAME"), each case named
/// "NAME: ...". PLACE is default-constructible and derives from link_conformance::Place.
#define MYCELIUM_LINK_CONFORMANCE(NAME, PLACE)                                    \
    TEST_SUITE("transport." NAME) {                                              \
        TEST_CASE(NAME ": a legacy client completes the handshake and receives what the node publishes") {                        \
            PLACE place;                                         \
            ::link_conformance::legacy_client_receives_what_the_node_publishes(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a legacy client's frames reach the bus and every other client but never the sender") {                        \
            PLACE place;                                         \
            ::link_conformance::legacy_frames_reach_everyone_but_the_sender(place);                      \
        }                                                       \
        TEST_CASE(NAME ": every kind of bad input closes only that connection while others keep exchanging") {                        \
            PLACE place;                                         \
            ::link_conformance::bad_input_closes_only_that_connection_case(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a frame of an unknown type or the wrong size is dropped and a HELLO client is told") {                        \
            PLACE place;                                         \
            ::link_conformance::bad_frames_are_dropped_case(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a payload that breaks its contract is dropped and its sender told, unless the link is trusted") { \
            PLACE place;                                         \
            ::link_conformance::invalid_payloads_case(place);                      \
        }                                                       \
        TEST_CASE(NAME ": after HELLO a client receives only the types it subscribed to") {                        \
            PLACE place;                                         \
            ::link_conformance::hello_client_receives_only_its_subscriptions(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a peer never receives frames that came from another peer") {                        \
            PLACE place;                                         \
            ::link_conformance::peer_never_receives_frames_from_another_peer(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a client claiming to be a peer node the host does not accept is refused") {                        \
            PLACE place;                                         \
            ::link_conformance::unaccepted_peer_is_refused(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a reply published from inside an inline callback reaches the client that asked") {                        \
            PLACE place;                                         \
            ::link_conformance::reply_from_inline_callback_reaches_the_asker(place);                      \
        }                                                       \
        TEST_CASE(NAME ": ping is answered with a pong carrying the same nonce") {                        \
            PLACE place;                                         \
            ::link_conformance::ping_gets_pong_with_the_same_nonce(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a connection above the maximum gets an error frame and the others stay") {                        \
            PLACE place;                                         \
            ::link_conformance::connection_above_the_maximum_is_refused(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a slow HELLO client is disconnected with ERROR slow_consumer while others keep receiving") {                        \
            PLACE place;                                         \
            ::link_conformance::slow_hello_client_is_disconnected(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a legacy client that falls behind lags and skips by default, as with Mycelium") {                        \
            PLACE place;                                         \
            ::link_conformance::slow_legacy_client_lags_and_skips(place);                      \
        }                                                       \
        TEST_CASE(NAME ": drop_oldest keeps a slow reader connected and counts what it lost") {                        \
            PLACE place;                                         \
            ::link_conformance::drop_oldest_keeps_a_slow_reader(place);                      \
        }                                                       \
        TEST_CASE(NAME ": stop closes every connection with a shutting_down error") {                        \
            PLACE place;                                         \
            ::link_conformance::stop_closes_every_connection(place);                      \
        }                                                       \
        TEST_CASE(NAME ": a flushing stop delivers what is queued, then shutting_down, and counts the rest") { \
            PLACE place;                                                         \
            ::link_conformance::flushing_stop_delivers_what_is_queued_and_counts_the_rest(place); \
        }                                                                        \
        TEST_CASE(NAME ": a dialed peer link carries frames both ways, and a dial to nobody is retried") { \
            PLACE place;                                                         \
            ::link_conformance::dialed_peer_link_carries_frames_both_ways(place); \
        }                                                                        \
        TEST_CASE(NAME ": shared memory is set up where descriptors pass, else refused as not local") { \
            PLACE place;                                                         \
            ::link_conformance::shared_memory_where_descriptors_pass(place);     \
        }                                                                        \
    }
