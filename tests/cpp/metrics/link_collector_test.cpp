// The link counters' table (mycelium/link_counters.hpp) drives LinkStats and the metrics:
// every counter is on the page once, under its family and label, with the stats' value.

#include <doctest/doctest.h>

#include <map>
#include <string>

#include "mycelium/bus.hpp"
#include "mycelium/link.hpp"
#include "mycelium/link_client.hpp"
#include "mycelium/metrics.hpp"
#include "mycelium/schema.hpp"
#include "test_support.hpp"

using namespace mycelium;

namespace {

struct Expected {
    const char* family;
    const char* label_name;
    const char* label;
    std::uint64_t link::LinkStats::*field;
};

// Each family's label name, keyed by the family's table name.
const std::map<std::string, std::pair<std::string, std::string>>& families() {
    static const std::map<std::string, std::pair<std::string, std::string>> f = {
#define MYCELIUM_TEST_FAMILY(family, name, label_name, help) {#family, {name, label_name}},
        MYCELIUM_LINK_COUNTER_FAMILIES(MYCELIUM_TEST_FAMILY)
#undef MYCELIUM_TEST_FAMILY
    };
    return f;
}

}  // namespace

TEST_SUITE("metrics") {
    TEST_CASE("every link counter is exported once, under its family and label, with the stats' value") {
        const schema::Registry registry = schema::Registry::load_string(test_support::TEXT_AND_COUNTER_CONTRACTS,
                                                                        "link_collector_test.yaml");
        test_support::TempDir dir("myc-lc");
        Bus bus;
        link::LinkServer server(bus, registry);
        const link::Endpoint ep = server.listen(dir.socket());
        {
            link::LinkClient client = link::LinkClient::connect(ep, registry.digest());
            REQUIRE(client.sync());
        }
        REQUIRE(test_support::wait_until([&] { return server.stats().active == 0; }, std::chrono::seconds(5)));
        const link::LinkStats stats = server.stats();
        CHECK(stats.accepted == 1);
        CHECK(stats.handshakes_ok == 1);

        const auto page = metrics::link_collector({{&server, "listen"}})->Collect();
        std::map<std::string, const prometheus::MetricFamily*> by_name;
        for (const auto& f : page) {
            CHECK_MESSAGE(by_name.count(f.name) == 0, f.name << " appears twice");
            by_name[f.name] = &f;
        }
        const Expected expected[] = {
#define MYCELIUM_TEST_COUNTER(field, family, label, doc) \
    {families().at(#family).first.c_str(), families().at(#family).second.c_str(), label, &link::LinkStats::field},
            MYCELIUM_LINK_COUNTERS(MYCELIUM_TEST_COUNTER)
#undef MYCELIUM_TEST_COUNTER
        };
        for (const Expected& e : expected) {
            CAPTURE(std::string(e.family));
            CAPTURE(std::string(e.label));
            REQUIRE(by_name.count(e.family) == 1);
            int found = 0;
            for (const auto& metric : by_name[e.family]->metric) {
                std::map<std::string, std::string> labels;
                for (const auto& l : metric.label) labels[l.name] = l.value;
                if (labels["listener"] != "listen") continue;
                if (*e.label_name != '\0' && labels[e.label_name] != e.label) continue;
                ++found;
                CHECK(metric.counter.value == static_cast<double>(stats.*e.field));
            }
            CHECK(found == 1);
        }
    }
}
