// A worker's configuration before it runs: the --worker flag, the checks of a worker
// list (supervisor.hpp), and the interpreter workers run with by default.

#include "mycelium/supervisor.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace mycelium::supervisor {

namespace {

/// Longest worker name (it is also a HELLO name, at most 255 bytes).
constexpr std::size_t MAX_NAME = 200;

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > MAX_NAME) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
               c == '.';
    });
}

/// `description (at line L, column C of 'FILE')` for a topology worker, else as is.
std::string with_source(std::string description, const topology::SourceLocation& where) {
    if (where.file.empty()) return description;
    return topology::TopologyError(std::move(description), where).what();
}

}  // namespace

std::filesystem::path default_python() {
#ifdef MYCELIUM_PYTHON_EXECUTABLE
    std::filesystem::path configured = MYCELIUM_PYTHON_EXECUTABLE;
    if (!configured.empty() && ::access(configured.c_str(), X_OK) == 0) return configured;
#endif
    return "/usr/bin/python3";
}

topology::Worker parse_worker_flag(std::string_view text) {
    const std::string quoted = fmt::format("'{}'", text);
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) {
        throw std::invalid_argument(quoted + " is not NAME=SCRIPT[:ARG,ARG...]");
    }
    const std::string_view name = text.substr(0, eq);
    if (!valid_name(name)) {
        throw std::invalid_argument(fmt::format("{}: bad worker name '{}': use 1-{} letters, digits, '_', '-', '.'",
                                                quoted, name, MAX_NAME));
    }
    std::string_view rest = text.substr(eq + 1);
    std::string_view args;
    if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
        args = rest.substr(colon + 1);
        rest = rest.substr(0, colon);
    }
    if (rest.empty()) throw std::invalid_argument(quoted + ": no script after '='");
    topology::Worker worker;
    worker.name = std::string(name);
    std::error_code ec;
    worker.script = std::filesystem::absolute(std::filesystem::path(rest), ec);
    if (ec) worker.script = std::filesystem::path(rest);
    while (!args.empty()) {
        const auto comma = args.find(',');
        const std::string_view arg = args.substr(0, comma);
        if (!arg.empty()) worker.args.emplace_back(arg);
        if (comma == std::string_view::npos) break;
        args.remove_prefix(comma + 1);
    }
    return worker;
}

void check_worker(const topology::Worker& worker) {
    if (!valid_name(worker.name)) {
        throw std::invalid_argument(with_source(
            fmt::format("bad worker name '{}': use 1-{} letters, digits, '_', '-', '.'", worker.name, MAX_NAME),
            worker.source));
    }
    std::error_code ec;
    const auto status = std::filesystem::status(worker.script, ec);
    if (!std::filesystem::exists(status)) {
        throw std::invalid_argument(with_source(
            fmt::format("worker '{}': script '{}' does not exist", worker.name, worker.script.string()), worker.source));
    }
    if (!std::filesystem::is_regular_file(status)) {
        throw std::invalid_argument(with_source(
            fmt::format("worker '{}': script '{}' is not a regular file", worker.name, worker.script.string()),
            worker.source));
    }
}

void check_workers(const std::vector<topology::Worker>& workers) {
    std::map<std::string_view, const topology::Worker*> seen;
    for (const auto& w : workers) {
        check_worker(w);
        if (!seen.emplace(w.name, &w).second) {
            throw std::invalid_argument(
                with_source(fmt::format("two workers are named '{}': worker names must be unique", w.name), w.source));
        }
    }
}

}  // namespace mycelium::supervisor
