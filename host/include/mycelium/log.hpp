#pragma once
/// Logging: spdlog loggers, one per component (and per worker), sharing one stderr sink
/// that writes either text or JSON lines (docs/deployment.md, `MYCELIUM_LOG_FORMAT`).
/// Thread safety: configure() once at start-up before other threads log; get() and the
/// loggers from any thread.

#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <initializer_list>

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

/// Adds fields ("peer", "type", "worker", ...) to the JSON lines this thread logs while
/// the object lives; scopes nest, inner ones last. Text lines are unchanged: their
/// messages already name the peer or type. The views must outlive the scope.
/// Thread safety: affects only the constructing thread; destroy on that thread.
class ScopedFields {
public:
    ScopedFields(std::initializer_list<std::pair<std::string_view, std::string_view>> fields);
    ~ScopedFields();
    ScopedFields(const ScopedFields&) = delete;
    ScopedFields& operator=(const ScopedFields&) = delete;

private:
    std::size_t previous_size_;
};

}  // namespace mycelium::log
