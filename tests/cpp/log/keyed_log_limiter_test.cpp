// KeyedLogLimiter (host/include/mycelium/log_limiter.hpp): one line per key and interval,
// a bounded table whatever keys come, and exact counts of what was held back.

#include <doctest/doctest.h>

#include <string>

#include "mycelium/log_limiter.hpp"

using mycelium::log::held_back_note;
using mycelium::log::KeyedLogLimiter;
using mycelium::log::LogLimiter;
using namespace std::chrono_literals;

TEST_SUITE("log") {
    TEST_CASE("a line that stands for lines a finer limiter held back carries them") {
        LogLimiter limiter(10s);
        const auto t0 = std::chrono::steady_clock::now();
        REQUIRE(limiter.admit(t0, 3) == 3u);            // logged: it reports the 3 it stands for
        CHECK_FALSE(limiter.admit(t0 + 1s, 4));         // held back: 1 + 4
        CHECK(limiter.held_back() == 5u);
        CHECK(limiter.admit(t0 + 10s) == 5u);
    }

    TEST_CASE("keys are limited apart, each line saying how many of its key it stands for") {
        KeyedLogLimiter limiter(10s);
        const auto t0 = std::chrono::steady_clock::now();
        REQUIRE(limiter.admit("closed inside the handshake", 0, t0) == 0u);
        REQUIRE(limiter.admit("digest mismatch", 0, t0) == 0u);  // another reason: its own first line
        for (int i = 1; i <= 1999; ++i)
            CHECK_FALSE(limiter.admit("closed inside the handshake", 0, t0 + std::chrono::microseconds(i)));
        CHECK_FALSE(limiter.admit("digest mismatch", 0, t0 + 1s));
        CHECK(limiter.admit("closed inside the handshake", 0, t0 + 10s) == 1999u);
        CHECK(limiter.admit("digest mismatch", 0, t0 + 10s) == 1u);
        CHECK(limiter.keys() == 2u);
    }

    TEST_CASE("a flood of distinct keys fills the table and then shares the overflow's one line") {
        KeyedLogLimiter limiter(10s, 8);
        const auto t0 = std::chrono::steady_clock::now();
        int logged = 0;
        for (int i = 0; i < 100'000; ++i) {
            if (limiter.admit("peer " + std::to_string(i), 0, t0 + std::chrono::microseconds(i))) ++logged;
        }
        CHECK(limiter.keys() == 8u);  // the table's bound, not 100,000
        CHECK(logged == 9);           // one per slot and one for the overflow
        // The next overflow line after the interval reports every key it held back.
        CHECK(limiter.admit("peer new", 0, t0 + 1s) == std::nullopt);
        const auto later = limiter.admit("peer newer", 0, t0 + 20s);
        REQUIRE(later);  // the oldest slot has been quiet for an interval: it is taken
        CHECK(*later == 0u);
        CHECK(limiter.keys() == 8u);
    }

    TEST_CASE("a key evicted while it held lines back leaves its count to the overflow's next line") {
        KeyedLogLimiter limiter(10s, 1);
        const auto t0 = std::chrono::steady_clock::now();
        REQUIRE(limiter.admit("a", 0, t0) == 0u);
        CHECK_FALSE(limiter.admit("a", 0, t0 + 1s));
        CHECK_FALSE(limiter.admit("a", 0, t0 + 2s));           // "a" holds 2 back
        REQUIRE(limiter.admit("b", 0, t0 + 3s) == 0u);         // the table is full: the overflow's first line
        CHECK_FALSE(limiter.admit("c", 0, t0 + 4s));           // overflow holds 1 back
        REQUIRE(limiter.admit("d", 0, t0 + 12s + 1ms) == 0u);  // "a" quiet for 10 s: evicted, "d" takes its slot
        CHECK(limiter.keys() == 1u);
        CHECK(limiter.admit("e", 0, t0 + 14s) == 3u);          // overflow: "c" and the 2 of "a"
    }

    TEST_CASE("keys alike in their first MAX_KEY_BYTES are one key") {
        KeyedLogLimiter limiter(10s);
        const auto t0 = std::chrono::steady_clock::now();
        const std::string prefix(KeyedLogLimiter::MAX_KEY_BYTES, 'x');
        REQUIRE(limiter.admit(prefix + "1", 0, t0) == 0u);
        CHECK_FALSE(limiter.admit(prefix + "2", 0, t0 + 1s));
        CHECK(limiter.keys() == 1u);
    }

    TEST_CASE("the note a passed line carries is the frame filter's wording") {
        CHECK(held_back_note(0).empty());
        CHECK(held_back_note(41) == " (and 41 more like it since the last line)");
    }
}
