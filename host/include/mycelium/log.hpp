#pragma once
/// Logging: spdlog loggers, one per component (and per worker), sharing one stderr sink
/// that writes either text or JSON lines (DESIGN.md section 8).
/// Thread safety: configure() once at start-up before other threads log; get() and the
/// loggers from any thread.

#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace mycelium::log {

enum class Format {
    Text,  ///< "2026-11-21 18:00:00.123 info    [bus] message"
    Json,  ///< {"time": "...", "level": "info", "component": "bus", "message": "..."}
};

/// "trace" "debug" "info" "warning"/"warn" "error" "critical" "off"; nullopt otherwise.
std::optional<spdlog::level::level_enum> parse_level(std::string_view name);
/// "text" or "json"; nullopt otherwise.
std::optional<Format> parse_format(std::string_view name);

/// Sets the level and output format of every logger, existing and future.
void configure(spdlog::level::level_enum level, Format format);

/// The logger of a component ("host", "bus", "python", "py.model", ...), created on
/// first use with the configured sink, level and format.
std::shared_ptr<spdlog::logger> get(std::string_view component);

}  // namespace mycelium::log
