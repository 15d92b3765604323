#pragma once
// Internal to host/src/transport: log lines that outside input can repeat (a connection
// closed inside its handshake, a bad frame, a digest mismatch, a failing accept) go out at
// most once per reason and --log-interval, server-wide, each saying how many it stands
// for (docs/reliability.md, "Logs are bounded").
//
// The key is the reason, not the peer: a peer's address (a TCP port, a Unix pid) is new
// with every connection, so a flood of distinct short connections keyed by peer would
// still log one line each. The line that goes out names its own peer; the counters (and
// /metrics) count every event, limited or not.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <spdlog/logger.h>

#include "mycelium/log_limiter.hpp"

namespace mycelium::link::detail {

/// Logs `format` at `level` with log::held_back_note() appended, unless `limits` holds
/// back the line of `reason` (counted). `held_back_before`: lines a finer limiter (the
/// connection's own) already held back, which this line stands for too. Formats nothing
/// for a line held back. Never throws, as spdlog does not (it is called from catch
/// blocks and noexcept functions): out of memory, the line is lost. Any thread.
template <class... Args>
void log_limited(spdlog::logger& log, log::KeyedLogLimiter& limits, spdlog::level::level_enum level,
                 std::string_view reason, std::uint64_t held_back_before, fmt::format_string<Args...> format,
                 Args&&... args) noexcept {
    if (!log.should_log(level)) return;
    try {
        const auto held_back = limits.admit(reason, held_back_before);
        if (!held_back) return;
        log.log(level, "{}{}", fmt::format(format, std::forward<Args>(args)...), log::held_back_note(*held_back));
    } catch (...) {
    }
}

}  // namespace mycelium::link::detail
