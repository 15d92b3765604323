// FrameFilter (host/src/transport/frame_filter.hpp): contract types at their size pass;
// anything else is refused with a reason, counted, and logged at most once per interval.

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

#include "frame_filter.hpp"
#include "test_support.hpp"

using namespace mycelium;
using mycelium::link::detail::Counters;
using mycelium::link::detail::FrameFilter;

TEST_SUITE("transport.protocol") {
    TEST_CASE("a frame filter passes contract types at their size and says why it refuses the rest") {
        const auto registry = schema::Registry::load_string(test_support::TEXT_AND_COUNTER_CONTRACTS, "filter.yaml");
        Counters counters;
        FrameFilter filter(registry, counters, std::chrono::hours(1));
        const std::vector<std::byte> counter_payload(16), short_payload(15);

        CHECK_FALSE(filter.check(1002, counter_payload));
        CHECK_FALSE(filter.check(1002, counter_payload));  // the remembered type

        const auto unknown = filter.check(4242, counter_payload);
        REQUIRE(unknown);
        CHECK(unknown->code == link::ErrorCode::UnknownType);
        CHECK(unknown->reason.find("type 4242 is not in the contracts") != std::string::npos);

        const auto mismatch = filter.check(1002, short_payload);
        REQUIRE(mismatch);
        CHECK(mismatch->code == link::ErrorCode::SizeMismatch);
        CHECK(mismatch->reason.find("CounterUpdate (type 1002) of 15 bytes, expected 16") != std::string::npos);
        CHECK_FALSE(filter.check(1002, counter_payload));  // a bad frame does not stick
    }

    TEST_CASE("refused frames are counted per kind and their log lines are held back within the interval") {
        const auto registry = schema::Registry::load_string(test_support::TEXT_AND_COUNTER_CONTRACTS, "filter.yaml");
        Counters counters;
        FrameFilter filter(registry, counters, std::chrono::hours(1));
        CHECK(filter.count(link::ErrorCode::UnknownType) == 0u);  // the first line is logged
        CHECK_FALSE(filter.count(link::ErrorCode::UnknownType));  // held back
        CHECK(filter.count(link::ErrorCode::SizeMismatch) == 0u);  // its own limiter
        CHECK(filter.unknown_types() == 2);
        CHECK(filter.size_mismatches() == 1);
        CHECK(counters.unknown_type.load() == 2);
        CHECK(counters.size_mismatch.load() == 1);
    }
}
