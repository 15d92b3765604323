// A worker's environment (worker_environment.hpp).

#include "worker_environment.hpp"

#include <algorithm>
#include <array>
#include <string_view>

extern char** environ;

namespace mycelium::supervisor {

namespace {
/// The variables the supervisor sets; inherited values of them are dropped.
constexpr std::array<std::string_view, 8> OWN_VARIABLES = {
    "MYCELIUM_SOCKET", "MYCELIUM_ENDPOINT", "MYCELIUM_SCHEMA_DIGEST", "MYCELIUM_TOPOLOGY", "MYCELIUM_SERVICE",
    "MYCELIUM_TRACE_ID", "PYTHONPATH", "PYTHONUNBUFFERED"};
}  // namespace

WorkerEnvironment::WorkerEnvironment() {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const std::string_view key = entry.substr(0, entry.find('='));
        if (key == "PYTHONPATH") inherited_pythonpath_ = std::string(entry.substr(std::min(entry.size(), key.size() + 1)));
        if (std::find(OWN_VARIABLES.begin(), OWN_VARIABLES.end(), key) == OWN_VARIABLES.end()) {
            base_.emplace_back(entry);
        }
    }
}

std::vector<std::string> WorkerEnvironment::for_worker(const SupervisorOptions& options, const std::string& name,
                                                       const std::string& trace) const {
    std::vector<std::string> env = base_;
    if (!options.socket.empty()) {
        // Mycelium's workers hand MYCELIUM_SOCKET to UnixTransport as a path; the
        // endpoint, scheme and all, is MYCELIUM_ENDPOINT.
        const std::string_view endpoint = options.socket;
        env.push_back("MYCELIUM_ENDPOINT=" + options.socket);
        env.push_back("MYCELIUM_SOCKET=" + std::string(endpoint.starts_with("unix:") ? endpoint.substr(5) : endpoint));
    }
    if (!options.schema_digest.empty()) env.push_back("MYCELIUM_SCHEMA_DIGEST=" + options.schema_digest);
    if (options.topology) env.push_back("MYCELIUM_TOPOLOGY=" + options.topology->string());
    env.push_back("MYCELIUM_SERVICE=" + name);
    env.push_back("MYCELIUM_TRACE_ID=" + trace);
    std::string pythonpath;
    for (const auto& folder : options.python_path) {
        if (!pythonpath.empty()) pythonpath += ':';
        pythonpath += folder.string();
    }
    if (!inherited_pythonpath_.empty()) pythonpath += (pythonpath.empty() ? "" : ":") + inherited_pythonpath_;
    if (!pythonpath.empty()) env.push_back("PYTHONPATH=" + pythonpath);
    // Output is read from pipes: without this, Python buffers it in 8 KiB blocks and a
    // worker's log lines would show up late, or never if it is killed.
    env.emplace_back("PYTHONUNBUFFERED=1");
    return env;
}

}  // namespace mycelium::supervisor
