#pragma once
/// Supervised worker processes (docs/workers.md).
///
/// A Supervisor runs Python scripts as child processes of the node and keeps them running:
///
/// - Start: `PYTHON SCRIPT ARGS...` (fork + exec) in its own process group, stdin from
///   /dev/null, every other descriptor of the host closed, signal mask and ignored
///   signals reset, and PR_SET_PDEATHSIG SIGKILL so that a host that dies without
///   stopping its workers takes them along. Environment: the host's, plus
///   MYCELIUM_SOCKET (the Unix socket's path, as Mycelium sets it), MYCELIUM_ENDPOINT
///   (the same as `unix:PATH`), MYCELIUM_SCHEMA_DIGEST, MYCELIUM_TOPOLOGY (when there is one),
///   MYCELIUM_SERVICE (the worker's name), MYCELIUM_TRACE_ID (fresh per start),
///   PYTHONPATH (SupervisorOptions::python_path first) and PYTHONUNBUFFERED=1.
/// - Output: every line a worker writes becomes a log line of the logger
///   `worker.<name>` (log::get): stdout at info, stderr at warning.
/// - Exit: the rest of the worker's process group is killed (SIGKILL) and the process is
///   reaped. The restart policy (topology::RestartPolicy) decides whether it starts again,
///   after `d = min(backoff_initial * backoff_multiplier^n, backoff_max)` plus a random
///   0-20 % of d, where n is the number of restarts within the last restart_window. A
///   worker that needs a restart when it already had max_restarts within restart_window
///   gives up: an error line on the "supervisor" logger and WorkerStatus::given_up.
/// - Readiness: a worker is ready while it is up and a link connection has said HELLO
///   with its name (client_connected(), fed by link::LinkServer::set_client_observer).
/// - Stop: SIGTERM to every worker's process group, SIGKILL to the groups still alive
///   after their stop_grace; every child is reaped before stop() returns.
///
/// One thread of the supervisor does all of it (poll over pidfds, the output pipes and a
/// wake-up eventfd): a worker's output or death never blocks anything else of the host.
/// Lifecycle events are logged on the "supervisor" logger. Nothing here touches Python.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mycelium/topology/topology.hpp"

namespace mycelium::supervisor {

/// The interpreter the build was configured with (CMake's Python_EXECUTABLE), else
/// /usr/bin/python3. Thread safety: reentrant.
std::filesystem::path default_python();

/// Parses a `--worker` value: `NAME=SCRIPT` or `NAME=SCRIPT:ARG,ARG,...` (arguments split
/// on commas, empty ones dropped; the script path is everything up to the first ':').
/// The rest of the topology::Worker keeps its defaults; `script` is made absolute.
/// Throws std::invalid_argument naming the value and what is wrong (no '=', an empty or
/// invalid name, an empty script). Does not look at the file system beyond
/// std::filesystem::absolute. Thread safety: reentrant.
topology::Worker parse_worker_flag(std::string_view text);

/// Checks what can be checked before a worker starts: a valid name (letters, digits, '_',
/// '-', '.'; at most 200 bytes) and a script that exists and is a regular file. Throws
/// std::invalid_argument naming the worker and the path. Thread safety: reentrant.
void check_worker(const topology::Worker& worker);

/// check_worker() for each, and that no two share a name. Throws std::invalid_argument
/// naming the worker and the problem. Thread safety: reentrant.
void check_workers(const std::vector<topology::Worker>& workers);

/// How a Supervisor starts its workers.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct SupervisorOptions {
    /// The interpreter each worker runs with.
    std::filesystem::path python = default_python();
    /// The node's endpoint as `mycelium-host` prints it after "listening on" (`unix:PATH`):
    /// MYCELIUM_ENDPOINT, and its path MYCELIUM_SOCKET. Empty: neither is set.
    std::string socket;
    /// MYCELIUM_SCHEMA_DIGEST: the schema digest in lowercase hex. Empty: not set.
    std::string schema_digest;
    /// MYCELIUM_TOPOLOGY: the topology file, when the node runs from one.
    std::optional<std::filesystem::path> topology;
    /// Folders put first on PYTHONPATH (the bundled pymodules/), before the host's own
    /// PYTHONPATH.
    std::vector<std::filesystem::path> python_path;
};

/// One worker's state, as status() reports it; also what metrics read (up, restarts,
/// given_up). Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct WorkerStatus {
    /// The worker's name (its service name and the suffix of its logger).
    std::string name;
    /// The script it runs.
    std::filesystem::path script;
    /// The running process's id; 0 while it is down.
    int pid = 0;
    /// A process of the worker is running now.
    bool up = false;
    /// Up, and connected to the node under its name (a HELLO with that name).
    bool ready = false;
    /// Restarts performed since the supervisor started (the first start not counted).
    std::uint64_t restarts = 0;
    /// The crash-loop limit was reached: the worker stays down.
    bool given_up = false;
    /// The exit status of the last run that ended normally (exit() or return).
    std::optional<int> last_exit_code;
    /// The signal that ended the last run, when a signal did.
    std::optional<int> last_signal;
};

/// Runs and supervises worker processes; see the file comment.
///
/// Lifetime: stop() (or the destructor) before the process exits, so that no child is
/// left behind. A LinkServer whose client observer calls client_connected() must stop
/// calling it (set_client_observer({}) or its own destruction) before the Supervisor is
/// destroyed.
/// Thread safety: status(), client_connected() and stop() from any thread; start() once,
/// from one thread; the destructor not concurrently with anything else.
class Supervisor {
public:
    /// Checks the workers (check_workers()) and that the interpreter is an executable
    /// file. Throws std::invalid_argument naming the worker
    /// (or the interpreter) and the problem. Starts nothing.
    Supervisor(std::vector<topology::Worker> workers, SupervisorOptions options = {});
    /// stop().
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    /// Starts the supervisor's thread and every worker; returns once each worker's first
    /// start has been attempted (a failed exec counts as an exit with status 127 and is
    /// restarted by policy). Throws std::logic_error when called twice or after stop(),
    /// std::system_error when the thread or its eventfd cannot be created.
    void start();

    /// SIGTERM to every running worker's process group, SIGKILL to those still running
    /// after their stop_grace; cancels pending restarts and reaps every child. Blocks for
    /// at most the longest stop_grace plus a little. Idempotent; also before start().
    void stop() noexcept;

    /// A snapshot of every worker, in the order given to the constructor.
    std::vector<WorkerStatus> status() const;

    /// A link connection said HELLO as `name` (`connected` true), or closed (false).
    /// Names that are no worker's are ignored. Never blocks on I/O.
    void client_connected(std::string_view name, bool connected) noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace mycelium::supervisor
