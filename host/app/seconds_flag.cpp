#include "seconds_flag.hpp"

#include <fmt/format.h>

#include <cmath>
#include <string>

namespace mycelium::app {

namespace {

CLI::Validator seconds_check(double max_seconds, bool zero_allowed) {
    return CLI::Validator(
        [max_seconds, zero_allowed](std::string& text) -> std::string {
            const std::string wanted = fmt::format("a number of seconds {} 0 and at most {:g}",
                                                   zero_allowed ? "from" : "above", max_seconds);
            double value = 0;
            std::size_t used = 0;
            try {
                value = std::stod(text, &used);
            } catch (const std::exception&) {
                return fmt::format("'{}' is not {}", text, wanted);
            }
            if (used != text.size() || !std::isfinite(value) || value < 0 ||
                (value == 0 && !zero_allowed) || value > max_seconds)
                return fmt::format("'{}' is not {}", text, wanted);
            return {};
        },
        "SECONDS");
}

}  // namespace

CLI::Validator seconds_up_to(double max_seconds) { return seconds_check(max_seconds, false); }

CLI::Validator seconds_or_zero_up_to(double max_seconds) { return seconds_check(max_seconds, true); }

}  // namespace mycelium::app
