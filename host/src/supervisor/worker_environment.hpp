#pragma once
// The environment a worker starts with: the host's, as it was when the supervisor was
// made, minus the variables the supervisor sets itself, plus those. Private header of
// host/src/supervisor/.

#include <string>
#include <vector>

#include "mycelium/supervisor.hpp"

namespace mycelium::supervisor {

/// Thread safety: construct on one thread; for_worker() is const and safe anywhere.
class WorkerEnvironment {
public:
    /// Takes a snapshot of `environ`, once, on the constructing thread: reading it later,
    /// while a script may call os.putenv, would race.
    WorkerEnvironment();

    /// KEY=VALUE entries for worker `name` with trace id `trace`: MYCELIUM_ENDPOINT and
    /// MYCELIUM_SOCKET (from options.socket), MYCELIUM_SCHEMA_DIGEST, MYCELIUM_TOPOLOGY,
    /// MYCELIUM_SERVICE, MYCELIUM_TRACE_ID, PYTHONPATH (options.python_path, then the
    /// host's) and PYTHONUNBUFFERED.
    std::vector<std::string> for_worker(const SupervisorOptions& options, const std::string& name,
                                        const std::string& trace) const;

private:
    std::vector<std::string> base_;     // the host's environment minus the variables we set
    std::string inherited_pythonpath_;  // the host's PYTHONPATH, appended to ours
};

}  // namespace mycelium::supervisor
