// The test-only pair: transport (pair_transport.cpp) passes the link conformance suite.

#include <atomic>
#include <string>

#include "mycelium/endpoint.hpp"
#include "transport/link_conformance.hpp"

using namespace link_conformance;

namespace {

struct PairPlace : Place {
    std::string prefix = "conformance-" + std::to_string(next()) + "-";
    std::string where(const std::string& name) override { return "pair:" + prefix + name; }
    bool passes_descriptors() const override { return true; }
    static int next() {
        static std::atomic<int> n{0};
        return ++n;
    }
};

}  // namespace

MYCELIUM_LINK_CONFORMANCE("pair", PairPlace)

TEST_SUITE("transport.pair") {
    TEST_CASE("pair: a registered transport parses, formats and is refused by name where nobody listens") {
        const Endpoint e = parse_endpoint("pair:x");
        CHECK(e.scheme == "pair");
        CHECK(e.path == "x");
        CHECK(to_string(e) == "pair:x");
        CHECK_THROWS_WITH_AS(LinkClient::open(parse_endpoint("pair:nobody-here")),
                             "nobody listens on pair:nobody-here: Connection refused", std::system_error);
    }
}
