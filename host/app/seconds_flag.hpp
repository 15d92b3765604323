#pragma once
// Flags that take a duration in seconds.

#include <CLI/CLI.hpp>

namespace mycelium::app {

/// Limits that keep a duration convertible to milliseconds and nanoseconds without
/// overflow, and that no real use comes near.
inline constexpr double MAX_TIMEOUT_SECONDS = 24.0 * 3600.0;              // a day
inline constexpr double MAX_RUN_SECONDS = 10.0 * 365.0 * 24.0 * 3600.0;  // ten years

/// A CLI11 check for a duration in seconds: a finite number above 0 and at most
/// `max_seconds`. Refuses "nan", "inf" and 1e10 by name instead of letting them wrap
/// around in a conversion.
CLI::Validator seconds_up_to(double max_seconds);
/// As seconds_up_to, and 0 too (for a flag where 0 turns something off).
CLI::Validator seconds_or_zero_up_to(double max_seconds);

}  // namespace mycelium::app
