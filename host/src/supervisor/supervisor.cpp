// The worker supervisor: one thread polls every child's pidfd and output pipes and a
// wake-up eventfd, and runs the restart and stop timers. See supervisor.hpp for the
// rules and docs/workers.md for the user's view. Starting a process is child_process,
// its environment worker_environment, its output worker_output; the checks of a worker's
// configuration are worker_config.cpp.

#include "mycelium/supervisor.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/random.h>
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
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "child_process.hpp"
#include "mycelium/log.hpp"
#include "worker_environment.hpp"
#include "worker_output.hpp"

namespace mycelium::supervisor {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Reads of a dead worker's pipes after its end (16 KiB each): what it wrote last.
constexpr std::size_t FINAL_READS = 4096;
/// Share of the delay added as random jitter (0 to 20 %).
constexpr double JITTER = 0.2;
/// Poll period for children whose pidfd could not be opened (kernels before 5.3).
constexpr milliseconds FALLBACK_POLL{50};

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

/// One process of a worker. Supervisor thread only.
struct Run {
    pid_t pid = 0;
    Fd pidfd;
    WorkerOutput out, err;
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

/// What one turn of the loop waits for: descriptors, where each slot's are in `fds`,
/// and how long.
struct PollSet {
    struct Index {
        int pidfd = -1, out = -1, err = -1;
    };
    std::vector<pollfd> fds;
    std::vector<Index> index;  // one per slot
    int timeout_ms = -1;

    bool ready(int at) const { return at >= 0 && fds[static_cast<std::size_t>(at)].revents != 0; }
};

}  // namespace

struct Supervisor::Impl {
    Impl(std::vector<topology::Worker> workers, SupervisorOptions o);

    SupervisorOptions options;
    std::vector<topology::Worker> specs;
    std::vector<Slot> slots;
    std::map<std::string, std::size_t, std::less<>> by_name;
    WorkerEnvironment environment;  // taken on the constructing thread
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
    /// Fills `set` with what to wait for now, and until the next timer.
    void fill_poll_set(PollSet& set) const;
    /// Reads the output that is there and reaps the workers that ended.
    void handle_events(const PollSet& set) noexcept;
    /// SIGKILL for workers past their stop grace; restarts that are due (not `stopping`).
    void run_timers(bool stopping) noexcept;
    void spawn(Slot& slot) noexcept;
    void check_exit(Slot& slot) noexcept;
    void ended(Slot& slot, std::optional<int> code, std::optional<int> sig, pid_t pid, Clock::duration ran) noexcept;
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
        std::vector<std::string> args{options.python.string(), w.script.string()};
        args.insert(args.end(), w.args.begin(), w.args.end());
        ChildProcess child = start_child(std::move(args), environment.for_worker(options, w.name, trace));
        const pid_t pid = child.pid;
        {
            std::lock_guard lock(mutex);
            slot.status.pid = pid;
            slot.status.up = true;
            slot.hello_since_start = false;
        }
        if (child.exec_error != 0) {
            log->error("worker '{}': cannot execute '{}': {}", w.name, options.python.string(),
                       std::strerror(child.exec_error));
        } else {
            log->info("worker '{}' started (pid {}): {} {}{}{} (trace id {})", w.name, pid, options.python.string(),
                      w.script.string(), w.args.empty() ? "" : " ", fmt::join(w.args, " "), trace);
        }
        slot.run.emplace(Run{pid, std::move(child.pidfd),
                             WorkerOutput(std::move(child.out), slot.output, spdlog::level::info, w.name),
                             WorkerOutput(std::move(child.err), slot.output, spdlog::level::warn, w.name),
                             child.started, std::nullopt});
    } catch (const std::exception& e) {
        // Out of descriptors or processes: count it as a failed run, so that the restart
        // policy (and its crash-loop limit) applies.
        log->error("worker '{}' cannot be started: {}", w.name, e.what());
        ended(slot, std::nullopt, std::nullopt, 0, Clock::duration::zero());
    }
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
    run.out.read(FINAL_READS);
    run.err.read(FINAL_READS);
    run.out.flush();
    run.err.flush();
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
    PollSet set;
    set.index.resize(slots.size());
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

        fill_poll_set(set);
        if (::poll(set.fds.data(), set.fds.size(), set.timeout_ms) < 0 && errno != EINTR) {
            log->error("poll failed: {}; retrying", std::strerror(errno));
            std::this_thread::sleep_for(milliseconds(10));
        }
        if (set.fds[0].revents != 0) {
            std::uint64_t ignored = 0;
            [[maybe_unused]] const auto n = ::read(wake.get(), &ignored, sizeof ignored);
        }
        handle_events(set);
        run_timers(stopping);
    }
}

void Supervisor::Impl::fill_poll_set(PollSet& set) const {
    set.fds.clear();
    set.fds.push_back({wake.get(), POLLIN, 0});
    std::optional<Clock::time_point> deadline;
    const auto earliest = [&deadline](Clock::time_point t) {
        if (!deadline || t < *deadline) deadline = t;
    };
    const auto now = Clock::now();
    for (std::size_t i = 0; i < slots.size(); ++i) {
        const auto& slot = slots[i];
        auto& index = set.index[i];
        index = {};
        if (slot.restart_at) earliest(*slot.restart_at);
        if (!slot.run) continue;
        const auto& run = *slot.run;
        if (run.kill_at) earliest(*run.kill_at);
        if (run.pidfd) {
            index.pidfd = static_cast<int>(set.fds.size());
            set.fds.push_back({run.pidfd.get(), POLLIN, 0});
        } else {
            earliest(now + FALLBACK_POLL);
        }
        if (run.out.open()) {
            index.out = static_cast<int>(set.fds.size());
            set.fds.push_back({run.out.fd(), POLLIN, 0});
        }
        if (run.err.open()) {
            index.err = static_cast<int>(set.fds.size());
            set.fds.push_back({run.err.fd(), POLLIN, 0});
        }
    }
    set.timeout_ms = -1;
    if (deadline) {
        const auto left = std::chrono::ceil<milliseconds>(*deadline - now).count();
        set.timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
    }
}

void Supervisor::Impl::handle_events(const PollSet& set) noexcept {
    for (std::size_t i = 0; i < slots.size(); ++i) {
        auto& slot = slots[i];
        if (!slot.run) continue;
        const auto& index = set.index[i];
        // Output first, so that a worker's last lines come before the line saying it ended.
        if (set.ready(index.out)) slot.run->out.read();
        if (set.ready(index.err)) slot.run->err.read();
        if (index.pidfd < 0 || set.ready(index.pidfd)) check_exit(slot);
    }
}

void Supervisor::Impl::run_timers(bool stopping) noexcept {
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
