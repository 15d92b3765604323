#include "mycelium/log_limiter.hpp"

#include <doctest/doctest.h>

using mycelium::log::LogLimiter;
using namespace std::chrono_literals;

TEST_SUITE("log") {
    TEST_CASE("one line per interval, each saying how many it stands for") {
        LogLimiter limiter(10s);
        const auto t0 = std::chrono::steady_clock::now();
        REQUIRE(limiter.admit(t0) == 0u);  // the first line goes out
        for (int i = 1; i <= 99; ++i) CHECK_FALSE(limiter.admit(t0 + std::chrono::milliseconds(i)));
        CHECK_FALSE(limiter.admit(t0 + 9999ms));
        const auto next = limiter.admit(t0 + 10s);
        REQUIRE(next);
        CHECK(*next == 100u);  // 99 + 1 held back since the first line
        CHECK_FALSE(limiter.admit(t0 + 10s + 1ms));
        CHECK(limiter.admit(t0 + 25s) == 1u);
    }
}
