// One stderr sink shared by every logger, so lines from different components never
// interleave mid-line, and so a format change applies everywhere at once.

#include "mycelium/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "mycelium/json.hpp"

namespace mycelium::log {

namespace {

/// The fields of the ScopedFields alive on this thread, outermost first.
thread_local std::vector<std::pair<std::string_view, std::string_view>> t_fields;

/// JSON lines: {"time", "level", "component", "message", <scoped fields>}; escaped.
class JsonFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const auto since_epoch = msg.time.time_since_epoch();
        const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
        const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - seconds);
        const std::time_t t = seconds.count();
        std::tm utc{};
        gmtime_r(&t, &utc);
        char time_text[40];
        const std::size_t n = std::strftime(time_text, sizeof time_text, "%Y-%m-%dT%H:%M:%S", &utc);
        const auto level = spdlog::level::to_string_view(msg.level);
        fmt::format_to(std::back_inserter(dest),
                       "{{\"time\": \"{}.{:06d}Z\", \"level\": \"{}\", \"component\": {}, \"message\": {}",
                       std::string_view(time_text, n), micros.count(), std::string_view(level.data(), level.size()),
                       json_quote(std::string_view(msg.logger_name.data(), msg.logger_name.size())),
                       json_quote(std::string_view(msg.payload.data(), msg.payload.size())));
        for (std::size_t i = 0; i < t_fields.size(); ++i) {
            // Not a structured binding: clang 14 (the sanitizer and fuzz builds) cannot
            // capture one in a lambda.
            const auto& field = t_fields[i];
            // An inner scope's field replaces an outer one of the same name (a link's
            // handler publishing into another link's callback names that other peer).
            const bool replaced = std::any_of(t_fields.begin() + static_cast<std::ptrdiff_t>(i) + 1, t_fields.end(),
                                              [&](const auto& later) { return later.first == field.first; });
            if (!replaced)
                fmt::format_to(std::back_inserter(dest), ", {}: {}", json_quote(field.first), json_quote(field.second));
        }
        fmt::format_to(std::back_inserter(dest), "}}\n");
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

std::unique_ptr<spdlog::formatter> make_formatter(Format format) {
    if (format == Format::Json) return std::make_unique<JsonFormatter>();
    return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%d %H:%M:%S.%e %-8l [%n] %v");
}

struct State {
    State() { sink->set_formatter(make_formatter(Format::Text)); }
    std::mutex mutex;
    std::shared_ptr<spdlog::sinks::stderr_sink_mt> sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    spdlog::level::level_enum level = spdlog::level::info;
};

State& state() {
    static State s;
    return s;
}

}  // namespace

std::optional<spdlog::level::level_enum> parse_level(std::string_view name) {
    if (name == "trace") return spdlog::level::trace;
    if (name == "debug") return spdlog::level::debug;
    if (name == "info") return spdlog::level::info;
    if (name == "warning" || name == "warn") return spdlog::level::warn;
    if (name == "error") return spdlog::level::err;
    if (name == "critical") return spdlog::level::critical;
    if (name == "off") return spdlog::level::off;
    return std::nullopt;
}

std::optional<Format> parse_format(std::string_view name) {
    if (name == "text") return Format::Text;
    if (name == "json") return Format::Json;
    return std::nullopt;
}

void configure(spdlog::level::level_enum level, Format format) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    s.level = level;
    s.sink->set_formatter(make_formatter(format));
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& logger) { logger->set_level(level); });
}

std::shared_ptr<spdlog::logger> get(std::string_view component) {
    State& s = state();
    std::lock_guard lock(s.mutex);
    const std::string name(component);
    if (auto existing = spdlog::get(name)) return existing;
    auto logger = std::make_shared<spdlog::logger>(name, s.sink);
    logger->set_level(s.level);
    logger->flush_on(spdlog::level::warn);
    spdlog::register_logger(logger);
    return logger;
}

ScopedFields::ScopedFields(std::initializer_list<std::pair<std::string_view, std::string_view>> fields)
    : previous_size_(t_fields.size()) {
    t_fields.insert(t_fields.end(), fields.begin(), fields.end());
}

ScopedFields::~ScopedFields() { t_fields.resize(previous_size_); }

}  // namespace mycelium::log
