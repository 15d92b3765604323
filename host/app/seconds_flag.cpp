#include "seconds_flag.hpp"

#include <fmt/format.h>

#include <cmath>
#include <string>

namespace mycelium::app {

CLI::Validator seconds_up_to(double max_seconds) {
    return CLI::Validator(
        [max_seconds](std::string& text) -> std::string {
            const std::string wanted = fmt::format("a number of seconds above 0 and at most {:g}", max_seconds);
            double value = 0;
            std::size_t used = 0;
            try {
                value = std::stod(text, &used);
            } catch (const std::exception&) {
                return fmt::format("'{}' is not {}", text, wanted);
            }
            if (used != text.size() || !std::isfinite(value) || value <= 0 || value > max_seconds)
                return fmt::format("'{}' is not {}", text, wanted);
            return {};
        },
        "SECONDS");
}

}  // namespace mycelium::app
