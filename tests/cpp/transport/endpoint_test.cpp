// Endpoint strings and control-frame payloads: parsers in success/failure pairs.

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "mycelium/endpoint.hpp"

using mycelium::link::Endpoint;
using mycelium::link::parse_endpoint;

namespace {

Endpoint parsing_should_succeed(const std::string& text) {
    try {
        return parse_endpoint(text);
    } catch (const std::invalid_argument& e) {
        FAIL("unexpected error for '" << text << "': " << e.what());
        throw;
    }
}

void parsing_should_fail(const std::string& text, const std::string& message) {
    try {
        (void)parse_endpoint(text);
        FAIL("'" << text << "' parsed");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) == message);
    }
}

}  // namespace

TEST_SUITE("transport.protocol") {
    TEST_CASE("unix and tcp endpoints parse and format back to the same text") {
        const Endpoint u = parsing_should_succeed("unix:/tmp/a b/node.sock");
        CHECK(u.scheme == "unix");
        CHECK(u.path == "/tmp/a b/node.sock");
        CHECK(to_string(u) == "unix:/tmp/a b/node.sock");

        const Endpoint t = parsing_should_succeed("tcp:127.0.0.1:0");
        CHECK(t.scheme == "tcp");
        CHECK(t.host == "127.0.0.1");
        CHECK(t.port == 0);
        CHECK(to_string(t) == "tcp:127.0.0.1:0");

        const Endpoint v6 = parsing_should_succeed("tcp:[::1]:9000");
        CHECK(v6.host == "::1");
        CHECK(v6.port == 9000);
        CHECK(to_string(v6) == "tcp:[::1]:9000");
        CHECK(parse_endpoint(to_string(v6)) == v6);
    }

    TEST_CASE("bad endpoints are refused with a message naming the text") {
        parsing_should_fail("udp:1.2.3.4:5",
                            "bad endpoint 'udp:1.2.3.4:5': this build has no 'udp' transport (it has unix:, tcp:, pair:)");
        // pair: is this test binary's own transport (tests/cpp/transport/pair).
        parsing_should_fail("/tmp/node.sock",
                            "bad endpoint '/tmp/node.sock': expected SCHEME:ADDRESS, one of unix:, tcp:, pair:");
        parsing_should_fail("unix:", "bad endpoint 'unix:': the socket path is empty");
        parsing_should_fail("tcp:localhost", "bad endpoint 'tcp:localhost': expected tcp:HOST:PORT with a port in 0-65535");
        parsing_should_fail("tcp:localhost:70000",
                            "bad endpoint 'tcp:localhost:70000': expected tcp:HOST:PORT with a port in 0-65535");
        parsing_should_fail("unix:/" + std::string(200, 'x'),
                            "bad endpoint 'unix:/" + std::string(200, 'x') +
                                "': the socket path is longer than 107 bytes");
    }
}
