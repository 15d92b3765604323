// FrameFilter (host/src/transport/frame_filter.hpp): contract types at their size, with a
// valid payload unless the link is trusted, pass; anything else is refused with a reason,
// counted, and logged at most once per interval.

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
        FrameFilter filter(registry, counters, std::chrono::hours(1), true);
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
        FrameFilter filter(registry, counters, std::chrono::hours(1), true);
        CHECK(filter.count(link::ErrorCode::UnknownType) == 0u);  // the first line is logged
        CHECK_FALSE(filter.count(link::ErrorCode::UnknownType));  // held back
        CHECK(filter.count(link::ErrorCode::SizeMismatch) == 0u);  // its own limiter
        CHECK(filter.count(link::ErrorCode::InvalidPayload) == 0u);  // and its own
        CHECK_FALSE(filter.count(link::ErrorCode::InvalidPayload));
        CHECK(filter.unknown_types() == 2);
        CHECK(filter.size_mismatches() == 1);
        CHECK(filter.invalid_payloads() == 2);
        CHECK(counters.unknown_type.load() == 2);
        CHECK(counters.size_mismatch.load() == 1);
        CHECK(counters.invalid_payload.load() == 2);
    }

    TEST_CASE("a frame filter refuses a payload that breaks its contract, also of the type it just passed") {
        const auto registry = schema::Registry::load_string(test_support::TEXT_AND_COUNTER_CONTRACTS, "filter.yaml");
        Counters counters;
        FrameFilter filter(registry, counters, std::chrono::hours(1), true);
        const auto valid = test_support::text_message("alice");
        CHECK_FALSE(filter.check(1001, valid));
        CHECK_FALSE(filter.check(1001, valid));  // the remembered type is still read

        const auto not_utf8 = filter.check(1001, test_support::text_message("\xff\xfe"));
        REQUIRE(not_utf8);
        CHECK(not_utf8->code == link::ErrorCode::InvalidPayload);
        CHECK(not_utf8->reason == "TextMessage.sender: utf8: is not valid UTF-8 (type 1001); dropped");

        CHECK_FALSE(filter.check(1001, valid));
        const auto too_long = filter.check(1001, test_support::text_message(std::string(32, 'x'), 33));
        REQUIRE(too_long);
        CHECK(too_long->code == link::ErrorCode::InvalidPayload);
        CHECK(too_long->reason == "TextMessage.sender: max_length: length 33 is above 32 (type 1001); dropped");
        // At its capacity it is valid.
        CHECK_FALSE(filter.check(1001, test_support::text_message(std::string(32, 'x'))));

        // A type the parser found plain (no string, vector or rule) is never read.
        REQUIRE(registry.find(1002)->plain);
        REQUIRE_FALSE(registry.find(1001)->plain);
        std::vector<std::byte> counter_payload(16, std::byte{0xff});
        CHECK_FALSE(filter.check(1002, counter_payload));
    }

    TEST_CASE("a trusted frame filter passes a payload that breaks its contract, but not the wrong size") {
        const auto registry = schema::Registry::load_string(test_support::TEXT_AND_COUNTER_CONTRACTS, "filter.yaml");
        Counters counters;
        FrameFilter filter(registry, counters, std::chrono::hours(1), false);
        CHECK_FALSE(filter.check(1001, test_support::text_message("\xff\xfe")));
        CHECK_FALSE(filter.check(1001, test_support::text_message(std::string(32, 'x'), 33)));
        const auto mismatch = filter.check(1001, std::vector<std::byte>(311));
        REQUIRE(mismatch);
        CHECK(mismatch->code == link::ErrorCode::SizeMismatch);

        // A connection that turns out to be a peer takes the peers' setting; the type it
        // remembered is looked up again.
        filter.set_validate(true);
        const auto refused = filter.check(1001, test_support::text_message("\xff\xfe"));
        REQUIRE(refused);
        CHECK(refused->code == link::ErrorCode::InvalidPayload);
        filter.set_validate(false);
        CHECK_FALSE(filter.check(1001, test_support::text_message("\xff\xfe")));
    }
}
