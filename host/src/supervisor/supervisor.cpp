// The worker supervisor: one thread polls every child's pidfd and output pipes and a
// wake-up eventfd, and runs the restart and stop timers. See supervisor.hpp for the
// rules and docs/workers.md for the user's view.

#include "mycelium/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "mycelium/log.hpp"
#include "mycelium/utf8.hpp"

extern char** environ;

namespace mycelium::supervisor {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Longest line logged as one; a longer one is logged in pieces of this size.
constexpr std::size_t MAX_LINE = 64 * 1024;
/// Longest worker name (it is also a HELLO name, at most 255 bytes).
constexpr std::size_t MAX_NAME = 200;
/// Reads of a dead worker's pipes after its end (16 KiB each): what it wrote last.
constexpr std::size_t FINAL_READS = 4096;
/// Share of the delay added as random jitter (0 to 20 %).
constexpr double JITTER = 0.2;
/// Poll period for children whose pidfd could not be opened (kernels before 5.3).
constexpr milliseconds FALLBACK_POLL{50};
/// The variables the supervisor sets; inherited values of them are dropped.
constexpr std::array<std::string_view, 8> OWN_VARIABLES = {
    "MYCELIUM_SOCKET", "MYCELIUM_ENDPOINT", "MYCELIUM_SCHEMA_DIGEST", "MYCELIUM_TOPOLOGY", "MYCELIUM_SERVICE",
    "MYCELIUM_TRACE_ID", "PYTHONPATH", "PYTHONUNBUFFERED"};

/// An owned file descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

std::system_error os_error(int error, const std::string& what) {
    return std::system_error(error, std::generic_category(), what);
}

/// Moves `fd` to a number >= 3 (close-on-exec), so that dup2() onto 0-2 in the child
/// never clobbers another of its descriptors, even in a host started with closed stdio.
Fd above_stdio(int fd) {
    if (fd < 0) throw os_error(errno, "cannot open a descriptor for a worker");
    if (fd >= 3) return Fd(fd);
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    const int error = errno;
    ::close(fd);
    if (moved < 0) throw os_error(error, "cannot move a worker's descriptor above 2");
    return Fd(moved);
}

struct Pipe {
    Fd read, write;
};

Pipe make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw os_error(errno, "cannot create a pipe for a worker");
    Pipe p{above_stdio(fds[0]), above_stdio(fds[1])};
    return p;
}

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

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

/// "exit status 3" / "signal 9 (SIGKILL)" / for a run that never started or whose status
/// was lost, "a failed start" / "an unknown status".
std::string describe_end(std::optional<int> code, std::optional<int> sig, bool started) {
    if (sig) return fmt::format("signal {} ({})", *sig, signal_name(*sig));
    if (code) return fmt::format("exit status {}", *code);
    return started ? "an unknown status" : "a failed start";
}

std::string hex(std::span<const unsigned char> bytes) {
    static constexpr char DIGITS[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const unsigned char b : bytes) {
        out.push_back(DIGITS[b >> 4]);
        out.push_back(DIGITS[b & 0xf]);
    }
    return out;
}

/// What the child needs between fork() and exec(): prepared before fork(), because only
/// async-signal-safe calls are allowed in the child of a multi-threaded process.
struct ChildSetup {
    const char* path;
    char* const* argv;
    char* const* envp;
    int devnull, out, err, status;  // status: close-on-exec pipe that reports exec errors
    pid_t parent;
};

[[noreturn]] void exec_child(const ChildSetup& c) noexcept {
    // Own process group, so SIGTERM/SIGKILL to -pid reach the worker's own children.
    ::setpgid(0, 0);
    // A host that dies without stopping us (crash, SIGKILL, its shutdown watchdog) takes
    // the worker along. The signal follows the death of the forking thread: that is the
    // supervisor's thread, which lives until every child has been reaped.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != c.parent) ::_exit(127);  // the host died before prctl()
    // The host blocks SIGINT/SIGTERM in every thread (a watchdog waits for them), and a
    // blocked mask or ignored dispositions survive exec: reset both.
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // EINVAL for glibc's own
    }
    if (::dup2(c.devnull, 0) < 0 || ::dup2(c.out, 1) < 0 || ::dup2(c.err, 2) < 0) {
        const int error = errno;
        [[maybe_unused]] const auto n = ::write(c.status, &error, sizeof error);
        ::_exit(127);
    }
    // Nothing of the host's (sockets, memfds, pipes of other workers) reaches the worker.
    if (c.status > 3) ::close_range(3, static_cast<unsigned>(c.status - 1), 0);
    ::close_range(static_cast<unsigned>(c.status + 1), ~0u, 0);
    ::execve(c.path, c.argv, c.envp);
    const int error = errno;
    [[maybe_unused]] const auto n = ::write(c.status, &error, sizeof error);
    ::_exit(127);
}

/// One output stream of a running worker.
struct Stream {
    Fd fd;
    std::string partial;  // bytes after the last newline
    spdlog::level::level_enum level = spdlog::level::info;
};

/// One process of a worker. Supervisor thread only.
struct Run {
    pid_t pid = 0;
    Fd pidfd;
    Stream out, err;
    Clock::time_point started;
    std::optional<Clock::time_point> kill_at;  // SIGKILL then, after a SIGTERM
};

/// One worker: its configuration, its process and its state.
struct Slot {
    topology::Worker spec;
    std::shared_ptr<spdlog::logger> output;  // worker.<name>

    // Supervisor thread only.
    std::optional<Run> run;
    std::optional<Clock::time_point> restart_at;
    std::deque<Clock::time_point> recent_restarts;  // within restart_window

    // Guarded by Impl::mutex.
    WorkerStatus status;
    int connections = 0;              // open link connections that said HELLO with the name
    bool hello_since_start = false;   // one of them came after the current start
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Free functions
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Supervisor
// ---------------------------------------------------------------------------------------

struct Supervisor::Impl {
    Impl(std::vector<topology::Worker> workers, SupervisorOptions o);

    SupervisorOptions options;
    std::vector<topology::Worker> specs;
    std::vector<Slot> slots;
    std::map<std::string, std::size_t, std::less<>> by_name;
    std::vector<std::string> base_env;     // the host's environment minus OWN_VARIABLES
    std::string inherited_pythonpath;      // the host's PYTHONPATH, appended to ours
    std::shared_ptr<spdlog::logger> log = log::get("supervisor");
    std::mt19937_64 rng{std::random_device{}()};  // supervisor thread only (after start)

    mutable std::mutex mutex;  // guards the members below and Slot's guarded part
    std::condition_variable started_cv;
    bool started = false;
    bool first_starts_done = false;
    bool stop_requested = false;

    Fd wake;  // eventfd: stop() rings it
    std::thread thread;

    // Supervisor thread.
    void loop() noexcept;
    void spawn(Slot& slot) noexcept;
    void check_exit(Slot& slot) noexcept;
    void ended(Slot& slot, std::optional<int> code, std::optional<int> sig, pid_t pid, Clock::duration ran) noexcept;
    /// Reads what is there (at most max_reads reads, so that a worker that writes without
    /// pause cannot hold the thread) and logs the complete lines.
    void read_stream(Slot& slot, Stream& stream, std::size_t max_reads = 16) noexcept;
    void emit(Slot& slot, Stream& stream, std::string_view line) noexcept;
    void flush_partial(Slot& slot, Stream& stream) noexcept;
    void begin_stop() noexcept;
    milliseconds next_delay(const Slot& slot);
    std::string trace_id();
};

Supervisor::Impl::Impl(std::vector<topology::Worker> workers, SupervisorOptions o)
    : options(std::move(o)), specs(std::move(workers)) {
    if (::access(options.python.c_str(), X_OK) != 0) {
        throw std::invalid_argument(fmt::format("the worker interpreter '{}' is not an executable file: {}",
                                                options.python.string(), std::strerror(errno)));
    }
    check_workers(specs);
    for (std::size_t i = 0; i < specs.size(); ++i) by_name.emplace(specs[i].name, i);
    slots.resize(specs.size());
    for (std::size_t i = 0; i < specs.size(); ++i) {
        slots[i].spec = specs[i];
        slots[i].output = log::get("worker." + specs[i].name);
        slots[i].status.name = specs[i].name;
        slots[i].status.script = specs[i].script;
    }
    // A snapshot taken once, on the constructing thread: reading environ later, while a
    // script may call os.putenv, would race.
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const std::string_view key = entry.substr(0, entry.find('='));
        if (key == "PYTHONPATH") inherited_pythonpath = std::string(entry.substr(std::min(entry.size(), key.size() + 1)));
        if (std::find(OWN_VARIABLES.begin(), OWN_VARIABLES.end(), key) == OWN_VARIABLES.end()) {
            base_env.emplace_back(entry);
        }
    }
}

std::string Supervisor::Impl::trace_id() {
    std::array<unsigned char, 16> bytes{};
    if (::getrandom(bytes.data(), bytes.size(), GRND_NONBLOCK) != static_cast<ssize_t>(bytes.size())) {
        for (auto& b : bytes) b = static_cast<unsigned char>(rng());
    }
    return hex(bytes);
}

milliseconds Supervisor::Impl::next_delay(const Slot& slot) {
    const auto& w = slot.spec;
    const double n = static_cast<double>(slot.recent_restarts.size());
    const double initial = static_cast<double>(w.backoff_initial.count());
    const double cap = static_cast<double>(w.backoff_max.count());
    const double base = std::min(cap, initial * std::pow(w.backoff_multiplier, n));
    std::uniform_real_distribution<double> jitter(0.0, JITTER);
    return milliseconds(static_cast<milliseconds::rep>(std::llround(base * (1.0 + jitter(rng)))));
}

void Supervisor::Impl::spawn(Slot& slot) noexcept {
    const log::ScopedFields log_fields{{"worker", slot.spec.name}};  // JSON log lines name the worker
    const auto& w = slot.spec;
    try {
        const std::string trace = trace_id();
        // Everything the child needs is built here: after fork() it may not allocate.
        std::vector<std::string> args{options.python.string(), w.script.string()};
        args.insert(args.end(), w.args.begin(), w.args.end());
        std::vector<std::string> env = base_env;
        if (!options.socket.empty()) {
            // Mycelium's workers hand MYCELIUM_SOCKET to UnixTransport as a path; the
            // endpoint, scheme and all, is MYCELIUM_ENDPOINT.
            const std::string_view endpoint = options.socket;
            env.push_back("MYCELIUM_ENDPOINT=" + options.socket);
            env.push_back("MYCELIUM_SOCKET=" +
                          std::string(endpoint.starts_with("unix:") ? endpoint.substr(5) : endpoint));
        }
        if (!options.schema_digest.empty()) env.push_back("MYCELIUM_SCHEMA_DIGEST=" + options.schema_digest);
        if (options.topology) env.push_back("MYCELIUM_TOPOLOGY=" + options.topology->string());
        env.push_back("MYCELIUM_SERVICE=" + w.name);
        env.push_back("MYCELIUM_TRACE_ID=" + trace);
        std::string pythonpath;
        for (const auto& folder : options.python_path) {
            if (!pythonpath.empty()) pythonpath += ':';
            pythonpath += folder.string();
        }
        if (!inherited_pythonpath.empty()) pythonpath += (pythonpath.empty() ? "" : ":") + inherited_pythonpath;
        if (!pythonpath.empty()) env.push_back("PYTHONPATH=" + pythonpath);
        // Output is read from pipes: without this, Python buffers it in 8 KiB blocks and a
        // worker's log lines would show up late, or never if it is killed.
        env.emplace_back("PYTHONUNBUFFERED=1");
        std::vector<char*> argv, envp;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);

        Pipe out = make_pipe(), err = make_pipe(), status = make_pipe();
        Fd devnull = above_stdio(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        for (const int fd : {out.read.get(), err.read.get()}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        const ChildSetup setup{argv[0], argv.data(), envp.data(), devnull.get(), out.write.get(), err.write.get(),
                               status.write.get(), ::getpid()};

        const pid_t pid = ::fork();
        if (pid < 0) throw os_error(errno, "fork failed");
        if (pid == 0) exec_child(setup);

        // Also from this side, so that a stop right after the fork reaches the group.
        ::setpgid(pid, pid);
        out.write.reset();
        err.write.reset();
        status.write.reset();
        Run run;
        run.pid = pid;
        run.pidfd = Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
        run.out.fd = std::move(out.read);
        run.out.level = spdlog::level::info;
        run.err.fd = std::move(err.read);
        run.err.level = spdlog::level::warn;
        run.started = Clock::now();
        // The status pipe closes on a successful exec, or carries exec's errno.
        int exec_error = 0;
        ssize_t got = 0;
        do {
            got = ::read(status.read.get(), &exec_error, sizeof exec_error);
        } while (got < 0 && errno == EINTR);
        {
            std::lock_guard lock(mutex);
            slot.status.pid = pid;
            slot.status.up = true;
            slot.hello_since_start = false;
        }
        if (got == static_cast<ssize_t>(sizeof exec_error)) {
            log->error("worker '{}': cannot execute '{}': {}", w.name, options.python.string(),
                       std::strerror(exec_error));
        } else {
            log->info("worker '{}' started (pid {}): {} {}{}{} (trace id {})", w.name, pid, options.python.string(),
                      w.script.string(), w.args.empty() ? "" : " ", fmt::join(w.args, " "), trace);
        }
        slot.run = std::move(run);
    } catch (const std::exception& e) {
        // Out of descriptors or processes: count it as a failed run, so that the restart
        // policy (and its crash-loop limit) applies.
        log->error("worker '{}' cannot be started: {}", w.name, e.what());
        ended(slot, std::nullopt, std::nullopt, 0, Clock::duration::zero());
    }
}

void Supervisor::Impl::read_stream(Slot& slot, Stream& stream, std::size_t max_reads) noexcept {
    std::array<char, 16384> buffer;
    for (std::size_t reads = 0; stream.fd && reads < max_reads; ++reads) {
        const ssize_t n = ::read(stream.fd.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {  // end of stream, or an error that ends it
            flush_partial(slot, stream);
            stream.fd.reset();
            return;
        }
        try {
            stream.partial.append(buffer.data(), static_cast<std::size_t>(n));
        } catch (...) {
            stream.partial.clear();
            continue;
        }
        std::size_t start = 0;
        for (;;) {
            const auto newline = stream.partial.find('\n', start);
            if (newline == std::string::npos) break;
            emit(slot, stream, std::string_view(stream.partial).substr(start, newline - start));
            start = newline + 1;
        }
        stream.partial.erase(0, start);
        while (stream.partial.size() >= MAX_LINE) {
            emit(slot, stream, std::string_view(stream.partial).substr(0, MAX_LINE));
            stream.partial.erase(0, MAX_LINE);
        }
    }
}

void Supervisor::Impl::emit(Slot& slot, Stream& stream, std::string_view line) noexcept {
    const log::ScopedFields log_fields{{"worker", slot.spec.name}};  // JSON log lines name the worker
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return;
    try {
        const bool ascii = std::all_of(line.begin(), line.end(), [](char c) { return (c & 0x80) == 0; });
        const std::string repaired = ascii ? std::string() : utf8::sanitize(line);  // untrusted output
        if (!ascii) line = repaired;
        slot.output->log(stream.level, spdlog::string_view_t(line.data(), line.size()));
    } catch (...) {  // a failing sink loses the line, not the worker
    }
}

void Supervisor::Impl::flush_partial(Slot& slot, Stream& stream) noexcept {
    if (!stream.partial.empty()) emit(slot, stream, stream.partial);
    stream.partial.clear();
}

void Supervisor::Impl::check_exit(Slot& slot) noexcept {
    const log::ScopedFields log_fields{{"worker", slot.spec.name}};  // JSON log lines name the worker
    Run& run = *slot.run;
    siginfo_t info{};
    // WNOWAIT: look without reaping. While the dead child is a zombie its pid, and so its
    // process group id, cannot be reused: killing the group now cannot hit a stranger.
    const int found = ::waitid(P_PID, static_cast<id_t>(run.pid), &info, WEXITED | WNOHANG | WNOWAIT);
    bool reaped_elsewhere = found != 0 && errno == ECHILD;
    if (!reaped_elsewhere && (found != 0 || info.si_pid == 0)) return;
    int wstatus = 0;
    if (!reaped_elsewhere) {
        ::kill(-run.pid, SIGKILL);  // what the worker left running in its group
        pid_t got = -1;
        do {
            got = ::waitpid(run.pid, &wstatus, 0);
        } while (got < 0 && errno == EINTR);
        reaped_elsewhere = got != run.pid;
    }
    if (reaped_elsewhere) {
        // Someone else collected it (SIGCHLD set to SIG_IGN, or a script's waitpid(-1)):
        // its status is lost, and its group id may be reused already, so no group kill.
        log->warn("worker '{}' (pid {}) was reaped by someone else: its exit status is unknown", slot.spec.name,
                  run.pid);
    }
    // Its output is complete now (every writer in the group is dead): read the rest, within
    // a bound, in case a process that left the group still holds the pipe.
    read_stream(slot, run.out, FINAL_READS);
    read_stream(slot, run.err, FINAL_READS);
    flush_partial(slot, run.out);
    flush_partial(slot, run.err);
    std::optional<int> code, sig;
    if (!reaped_elsewhere && WIFEXITED(wstatus)) code = WEXITSTATUS(wstatus);
    if (!reaped_elsewhere && WIFSIGNALED(wstatus)) sig = WTERMSIG(wstatus);
    const pid_t pid = run.pid;
    const auto ran = Clock::now() - run.started;
    slot.run.reset();  // closes the pidfd and the pipes
    ended(slot, code, sig, pid, ran);
}

void Supervisor::Impl::ended(Slot& slot, std::optional<int> code, std::optional<int> sig, pid_t pid,
                             Clock::duration ran) noexcept {
    const log::ScopedFields log_fields{{"worker", slot.spec.name}};  // JSON log lines name the worker
    const auto& w = slot.spec;
    bool stopping = false;
    {
        std::lock_guard lock(mutex);
        stopping = stop_requested;
        slot.status.pid = 0;
        slot.status.up = false;
        slot.hello_since_start = false;
        slot.status.last_exit_code = code;
        slot.status.last_signal = sig;
    }
    const std::string how = describe_end(code, sig, pid > 0);
    const std::string who = pid > 0 ? fmt::format("worker '{}' (pid {})", w.name, pid) : fmt::format("worker '{}'", w.name);
    const double seconds = std::chrono::duration<double>(ran).count();
    if (stopping) {
        log->info("{} stopped: {}", who, how);
        return;
    }
    const bool failed = !(code && *code == 0);
    const bool restart = w.restart == topology::RestartPolicy::Always ||
                         (w.restart == topology::RestartPolicy::OnFailure && failed);
    const auto level = failed ? spdlog::level::warn : spdlog::level::info;
    if (!restart) {
        log->log(level, "{} ended after {:.3f} s with {}; restart policy '{}': it stays down", who, seconds, how,
                 topology::to_string(w.restart));
        return;
    }
    const auto now = Clock::now();
    while (!slot.recent_restarts.empty() && now - slot.recent_restarts.front() >= w.restart_window) {
        slot.recent_restarts.pop_front();
    }
    if (slot.recent_restarts.size() >= w.max_restarts) {
        {
            std::lock_guard lock(mutex);
            slot.status.given_up = true;
        }
        log->error("{} ended after {:.3f} s with {}; it was restarted {} times within {} s (max_restarts {}, "
                   "restart_window_s {}): giving up, the worker stays down",
                   who, seconds, how, slot.recent_restarts.size(), w.restart_window.count(), w.max_restarts,
                   w.restart_window.count());
        return;
    }
    const auto delay = next_delay(slot);
    slot.restart_at = now + delay;
    log->log(level, "{} ended after {:.3f} s with {}; restarting in {} ms", who, seconds, how, delay.count());
}

void Supervisor::Impl::begin_stop() noexcept {
    const auto now = Clock::now();
    for (auto& slot : slots) {
        slot.restart_at.reset();
        if (!slot.run || slot.run->kill_at) continue;
        const log::ScopedFields log_fields{{"worker", slot.spec.name}};
        log->info("stopping worker '{}' (pid {}): SIGTERM, SIGKILL after {} ms", slot.spec.name, slot.run->pid,
                  slot.spec.stop_grace.count());
        ::kill(-slot.run->pid, SIGTERM);
        slot.run->kill_at = now + slot.spec.stop_grace;
    }
}

void Supervisor::Impl::loop() noexcept {
    for (auto& slot : slots) spawn(slot);
    {
        std::lock_guard lock(mutex);
        first_starts_done = true;
    }
    started_cv.notify_all();

    bool stopping = false;
    std::vector<pollfd> fds;
    struct Index {
        int pidfd = -1, out = -1, err = -1;
    };
    std::vector<Index> index(slots.size());
    for (;;) {
        {
            std::lock_guard lock(mutex);
            if (stop_requested && !stopping) {
                stopping = true;
                begin_stop();
            }
        }
        const bool any_running = std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return s.run.has_value(); });
        if (stopping && !any_running) return;

        // What to wait for, and until when.
        fds.clear();
        fds.push_back({wake.get(), POLLIN, 0});
        std::optional<Clock::time_point> deadline;
        const auto earliest = [&deadline](Clock::time_point t) {
            if (!deadline || t < *deadline) deadline = t;
        };
        const auto now = Clock::now();
        for (std::size_t i = 0; i < slots.size(); ++i) {
            auto& slot = slots[i];
            index[i] = {};
            if (slot.restart_at) earliest(*slot.restart_at);
            if (!slot.run) continue;
            auto& run = *slot.run;
            if (run.kill_at) earliest(*run.kill_at);
            if (run.pidfd) {
                index[i].pidfd = static_cast<int>(fds.size());
                fds.push_back({run.pidfd.get(), POLLIN, 0});
            } else {
                earliest(now + FALLBACK_POLL);
            }
            if (run.out.fd) {
                index[i].out = static_cast<int>(fds.size());
                fds.push_back({run.out.fd.get(), POLLIN, 0});
            }
            if (run.err.fd) {
                index[i].err = static_cast<int>(fds.size());
                fds.push_back({run.err.fd.get(), POLLIN, 0});
            }
        }
        int timeout_ms = -1;
        if (deadline) {
            const auto left = std::chrono::ceil<milliseconds>(*deadline - now).count();
            timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
        }
        if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
            log->error("poll failed: {}; retrying", std::strerror(errno));
            std::this_thread::sleep_for(milliseconds(10));
        }
        if (fds[0].revents != 0) {
            std::uint64_t ignored = 0;
            [[maybe_unused]] const auto n = ::read(wake.get(), &ignored, sizeof ignored);
        }
        for (std::size_t i = 0; i < slots.size(); ++i) {
            auto& slot = slots[i];
            if (!slot.run) continue;
            // Output first, so that a worker's last lines come before the line saying it ended.
            if (index[i].out >= 0 && fds[static_cast<std::size_t>(index[i].out)].revents != 0) {
                read_stream(slot, slot.run->out);
            }
            if (index[i].err >= 0 && fds[static_cast<std::size_t>(index[i].err)].revents != 0) {
                read_stream(slot, slot.run->err);
            }
            if (index[i].pidfd < 0 || fds[static_cast<std::size_t>(index[i].pidfd)].revents != 0) check_exit(slot);
        }
        const auto after = Clock::now();
        for (auto& slot : slots) {
            if (slot.run && slot.run->kill_at && after >= *slot.run->kill_at) {
                const log::ScopedFields log_fields{{"worker", slot.spec.name}};
                log->warn("worker '{}' (pid {}) did not stop within {} ms of SIGTERM: SIGKILL", slot.spec.name,
                          slot.run->pid, slot.spec.stop_grace.count());
                ::kill(-slot.run->pid, SIGKILL);
                slot.run->kill_at.reset();
            }
            if (!stopping && slot.restart_at && after >= *slot.restart_at) {
                slot.restart_at.reset();
                slot.recent_restarts.push_back(after);
                {
                    std::lock_guard lock(mutex);
                    ++slot.status.restarts;
                }
                spawn(slot);
            }
        }
    }
}

Supervisor::Supervisor(std::vector<topology::Worker> workers, SupervisorOptions options)
    : impl_(std::make_unique<Impl>(std::move(workers), std::move(options))) {}

Supervisor::~Supervisor() { stop(); }

void Supervisor::start() {
    auto& s = *impl_;
    {
        std::lock_guard lock(s.mutex);
        if (s.started) throw std::logic_error("Supervisor::start called twice");
        if (s.stop_requested) throw std::logic_error("Supervisor::start after stop()");
        s.started = true;
    }
    s.wake = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!s.wake) throw os_error(errno, "cannot create the supervisor's eventfd");
    s.thread = std::thread([&s] { s.loop(); });
    std::unique_lock lock(s.mutex);
    s.started_cv.wait(lock, [&s] { return s.first_starts_done; });
}

void Supervisor::stop() noexcept {
    auto& s = *impl_;
    {
        std::lock_guard lock(s.mutex);
        s.stop_requested = true;
    }
    if (!s.thread.joinable()) return;
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(s.wake.get(), &one, sizeof one);
    if (s.thread.get_id() == std::this_thread::get_id()) return;  // never join itself
    s.thread.join();
}

std::vector<WorkerStatus> Supervisor::status() const {
    const auto& s = *impl_;
    std::lock_guard lock(s.mutex);
    std::vector<WorkerStatus> out;
    out.reserve(s.slots.size());
    for (const auto& slot : s.slots) {
        WorkerStatus w = slot.status;
        w.ready = w.up && slot.hello_since_start && slot.connections > 0;
        out.push_back(std::move(w));
    }
    return out;
}

void Supervisor::client_connected(std::string_view name, bool connected) noexcept {
    auto& s = *impl_;
    const auto found = s.by_name.find(name);
    if (found == s.by_name.end()) return;
    Slot& slot = s.slots[found->second];
    int pid = 0;
    {
        std::lock_guard lock(s.mutex);
        if (connected) {
            ++slot.connections;
            if (slot.status.up && !slot.hello_since_start) {
                slot.hello_since_start = true;
                pid = slot.status.pid;
            }
        } else if (slot.connections > 0 && --slot.connections == 0) {
            slot.hello_since_start = false;
        }
    }
    const log::ScopedFields log_fields{{"worker", slot.spec.name}};
    if (pid != 0) s.log->info("worker '{}' (pid {}) is ready: connected as '{}'", slot.spec.name, pid, name);
}


}  // namespace mycelium::supervisor
