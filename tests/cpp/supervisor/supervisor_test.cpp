// The worker supervisor with real child processes: tiny /bin/sh scripts (the interpreter
// is an option) and, where a test needs Python or a link, /usr/bin/python3. Every test has
// its own temp dir, socket path and worker names, and every wait has a deadline.

#include <doctest/doctest.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mycelium/bus.hpp"
#include "mycelium/link.hpp"
#include "mycelium/supervisor.hpp"
#include "supervisor_test_support.hpp"

using namespace mycelium;
using namespace mycelium::supervisor;
using namespace mycelium::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

topology::Worker worker(std::string name, fs::path script, topology::RestartPolicy policy = topology::RestartPolicy::Never) {
    topology::Worker w;
    w.name = std::move(name);
    w.script = std::move(script);
    w.restart = policy;
    return w;
}

SupervisorOptions sh_options() {
    SupervisorOptions o;
    o.python = "/bin/sh";
    return o;
}

WorkerStatus status_of(const Supervisor& s, std::size_t i = 0) { return s.status().at(i); }

/// Whether `pid` names a live process (a zombie that init has not reaped counts as gone).
bool alive(int pid) {
    if (::kill(pid, 0) != 0) return errno != ESRCH;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    return close == std::string::npos || close + 2 >= text.size() || text[close + 2] != 'Z';
}

/// The text after `prefix` in the first line of `logger` that starts with it.
std::string value_after(RecordingSink& sink, const std::string& logger, const std::string& prefix) {
    for (const auto& line : sink.lines()) {
        if (line.logger == logger && line.text.rfind(prefix, 0) == 0) return line.text.substr(prefix.size());
    }
    return "<missing>";
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

/// Waits until the worker runs as a process other than `old_pid`. One snapshot per look:
/// two reads could see the old pid, then the 0 of the gap between two runs.
bool wait_for_new_pid(const Supervisor& sup, int old_pid) {
    return wait_until([&] {
        const auto s = status_of(sup);
        return s.pid != 0 && s.pid != old_pid;
    });
}

/// SIGKILLs the worker's current process and returns how long it took to come back
/// (a new pid reported by status()), in milliseconds.
double kill_and_time_restart(const Supervisor& sup) {
    const int old_pid = status_of(sup).pid;
    REQUIRE(old_pid > 0);
    const auto killed = Clock::now();
    REQUIRE(::kill(old_pid, SIGKILL) == 0);
    REQUIRE(wait_for_new_pid(sup, old_pid));
    return ms_since(killed);
}

}  // namespace

TEST_SUITE("supervisor") {
    TEST_CASE("--worker values parse into a name, an absolute script and comma-separated arguments") {
        const auto w = parse_worker_flag("risk=risk.py:--window,30,,--verbose");
        CHECK(w.name == "risk");
        CHECK(w.script.is_absolute());
        CHECK(w.script.filename() == "risk.py");
        CHECK(w.args == std::vector<std::string>{"--window", "30", "--verbose"});
        CHECK(w.restart == topology::RestartPolicy::OnFailure);  // the topology's defaults

        const auto plain = parse_worker_flag("model.v2=/opt/model.py");
        CHECK(plain.name == "model.v2");
        CHECK(plain.script == fs::path("/opt/model.py"));
        CHECK(plain.args.empty());
        CHECK(parse_worker_flag("a=/x.py:--addr,127.0.0.1:9000").args ==
              std::vector<std::string>{"--addr", "127.0.0.1:9000"});
    }

    TEST_CASE("bad --worker values are refused with what is wrong") {
        CHECK_THROWS_WITH_AS(parse_worker_flag("risk.py"), "'risk.py' is not NAME=SCRIPT[:ARG,ARG...]",
                             std::invalid_argument);
        CHECK_THROWS_WITH_AS(parse_worker_flag("=risk.py"),
                             "'=risk.py': bad worker name '': use 1-200 letters, digits, '_', '-', '.'",
                             std::invalid_argument);
        CHECK_THROWS_WITH_AS(parse_worker_flag("my worker=risk.py"),
                             "'my worker=risk.py': bad worker name 'my worker': use 1-200 letters, digits, '_', '-', '.'",
                             std::invalid_argument);
        CHECK_THROWS_WITH_AS(parse_worker_flag("risk="), "'risk=': no script after '='", std::invalid_argument);
        CHECK_THROWS_WITH_AS(parse_worker_flag("risk=:--x"), "'risk=:--x': no script after '='", std::invalid_argument);
    }

    TEST_CASE("a missing script, a folder, a duplicate name or a bad interpreter is refused before anything starts") {
        TempDir dir;
        const auto missing = dir.path / "missing.py";
        CHECK_THROWS_WITH_AS(Supervisor({worker("risk", missing)}),
                             ("worker 'risk': script '" + missing.string() + "' does not exist").c_str(),
                             std::invalid_argument);
        CHECK_THROWS_WITH_AS(Supervisor({worker("risk", dir.path)}),
                             ("worker 'risk': script '" + dir.path.string() + "' is not a regular file").c_str(),
                             std::invalid_argument);

        auto from_topology = worker("risk", missing);
        from_topology.source = {"mesh.toml", 12, 1};
        CHECK_THROWS_WITH_AS(
            Supervisor({from_topology}),
            ("worker 'risk': script '" + missing.string() + "' does not exist (at line 12, column 1 of 'mesh.toml')").c_str(),
            std::invalid_argument);

        const auto script = dir.write("ok.sh", "exit 0\n");
        CHECK_THROWS_WITH_AS(Supervisor({worker("twin", script), worker("twin", script)}),
                             "two workers are named 'twin': worker names must be unique", std::invalid_argument);
        SupervisorOptions bad_python;
        bad_python.python = dir.path / "no-python";
        CHECK_THROWS_AS(Supervisor({worker("risk", script)}, bad_python), std::invalid_argument);
    }

    TEST_CASE("a worker's stdout and stderr become lines of its logger, at info and warning") {
        TempDir dir;
        auto sink = std::make_shared<RecordingSink>();
        Attach attach(sink, {"worker.output-test", "supervisor"});
        const auto script = dir.write("out.sh", "echo 'first line'\necho 'to stderr' >&2\necho\nprintf 'bad \\377 byte\\r\\n'\n"
                                                "printf 'no newline'\n");
        Supervisor sup({worker("output-test", script)}, sh_options());
        sup.start();
        REQUIRE(sink->wait_for("supervisor", "worker 'output-test'"));
        REQUIRE(wait_until([&] { return !status_of(sup).up && status_of(sup).last_exit_code.has_value(); }));
        REQUIRE(sink->wait_for("supervisor", "stays down"));

        std::vector<std::pair<spdlog::level::level_enum, std::string>> got;
        for (const auto& line : sink->lines()) {
            if (line.logger == "worker.output-test") got.emplace_back(line.level, line.text);
        }
        const std::vector<std::pair<spdlog::level::level_enum, std::string>> expected = {
            {spdlog::level::info, "first line"},
            {spdlog::level::warn, "to stderr"},
            {spdlog::level::info, "bad \xef\xbf\xbd byte"},  // not UTF-8: replaced, so JSON logs stay valid
            {spdlog::level::info, "no newline"}};
        CHECK(got.size() == expected.size());
        for (const auto& e : expected) CHECK(std::find(got.begin(), got.end(), e) != got.end());
        CHECK(status_of(sup).last_exit_code == 0);
        CHECK(status_of(sup).restarts == 0);
        CHECK_FALSE(status_of(sup).given_up);
    }

    TEST_CASE("the environment names the socket, the digest, the topology, the service and a fresh trace id") {
        TempDir dir;
        auto sink = std::make_shared<RecordingSink>();
        Attach attach(sink, {"worker.env-test"});
        const auto script = dir.write("env.sh", R"(echo "socket=$MYCELIUM_SOCKET"
echo "endpoint=$MYCELIUM_ENDPOINT"
echo "digest=$MYCELIUM_SCHEMA_DIGEST"
echo "topology=$MYCELIUM_TOPOLOGY"
echo "service=$MYCELIUM_SERVICE"
echo "trace=$MYCELIUM_TRACE_ID"
echo "pythonpath=$PYTHONPATH"
echo "unbuffered=$PYTHONUNBUFFERED"
echo "args=$*"
)");
        auto w = worker("env-test", script, topology::RestartPolicy::Always);
        w.args = {"--one", "two words"};
        w.backoff_initial = 10ms;
        w.max_restarts = 1;
        SupervisorOptions options = sh_options();
        options.socket = "unix:" + (dir.path / "node.sock").string();
        options.schema_digest = std::string(64, 'a');
        options.topology = dir.path / "mesh.toml";
        options.python_path = {"/first/pymodules", "/second"};
        Supervisor sup({w}, options);
        sup.start();
        // Always restarts even a clean exit: two runs, then the crash-loop limit (1).
        REQUIRE(wait_until([&] { return status_of(sup).given_up; }));
        CHECK(status_of(sup).restarts == 1);

        const std::string logger = "worker.env-test";
        CHECK(value_after(*sink, logger, "socket=") == (dir.path / "node.sock").string());  // a path, as Mycelium's
        CHECK(value_after(*sink, logger, "endpoint=") == options.socket);
        CHECK(value_after(*sink, logger, "digest=") == options.schema_digest);
        CHECK(value_after(*sink, logger, "topology=") == options.topology->string());
        CHECK(value_after(*sink, logger, "service=") == "env-test");
        CHECK(value_after(*sink, logger, "pythonpath=").rfind("/first/pymodules:/second", 0) == 0);
        CHECK(value_after(*sink, logger, "unbuffered=") == "1");
        CHECK(value_after(*sink, logger, "args=") == "--one two words");
        std::set<std::string> traces;
        for (const auto& line : sink->matching(logger, "trace=")) traces.insert(line.text.substr(6));
        REQUIRE(traces.size() == 2);  // one per start, never reused
        for (const auto& t : traces) {
            CHECK(t.size() == 32);
            CHECK(t.find_first_not_of("0123456789abcdef") == std::string::npos);
        }
    }

    TEST_CASE("a worker has no descriptor of the host, its own process group and no blocked signal") {
        TempDir dir;
        auto sink = std::make_shared<RecordingSink>();
        Attach attach(sink, {"worker.fds-test"});
        // A descriptor the host forgot to mark close-on-exec, at a number nothing reuses.
        int pipe_fds[2];
        REQUIRE(::pipe(pipe_fds) == 0);
        const int leaked = ::fcntl(pipe_fds[0], F_DUPFD, 200);
        REQUIRE(leaked >= 200);
        const auto script = dir.write("fds.py", R"(import os
print("fds", " ".join(sorted(os.listdir("/proc/self/fd"), key=int)))
print("own group", os.getpgrp() == os.getpid())
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("blocked", status["SigBlk"].strip())
print("SIGUSR2 ignored", bool(int(status["SigIgn"], 16) & (1 << 11)))
)");
        // The host blocks SIGTERM in every thread, and could ignore a signal: an ignored
        // disposition and a blocked mask would both survive exec.
        sigset_t term, previous;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        REQUIRE(pthread_sigmask(SIG_BLOCK, &term, &previous) == 0);
        const auto usr2 = ::signal(SIGUSR2, SIG_IGN);
        {
            Supervisor sup({worker("fds-test", script)});
            sup.start();
            REQUIRE(pthread_sigmask(SIG_SETMASK, &previous, nullptr) == 0);
            ::signal(SIGUSR2, usr2);
            REQUIRE(wait_until([&] { return status_of(sup).last_exit_code.has_value(); }));
            CHECK(status_of(sup).last_exit_code == 0);
        }
        ::close(pipe_fds[0]);
        ::close(pipe_fds[1]);
        ::close(leaked);
        const std::string fds = value_after(*sink, "worker.fds-test", "fds ");
        INFO("the worker's descriptors: " << fds);
        CHECK(fds.rfind("0 1 2", 0) == 0);
        CHECK(fds.find(std::to_string(leaked)) == std::string::npos);
        CHECK(fds.size() <= std::string("0 1 2 3").size());  // 3: listdir's own
        CHECK(value_after(*sink, "worker.fds-test", "own group ") == "True");
        CHECK(value_after(*sink, "worker.fds-test", "blocked ") == "0000000000000000");
        CHECK(value_after(*sink, "worker.fds-test", "SIGUSR2 ignored ") == "False");
    }

    TEST_CASE("a killed worker comes back after the configured backoff, growing by the multiplier") {
        TempDir dir;
        const auto script = dir.write("sleep.sh", "exec sleep 30\n");
        auto w = worker("backoff-test", script, topology::RestartPolicy::OnFailure);
        w.backoff_initial = 300ms;
        w.backoff_multiplier = 2.0;
        w.backoff_max = 5s;
        w.max_restarts = 10;
        Supervisor sup({w}, sh_options());
        sup.start();
        REQUIRE(wait_until([&] { return status_of(sup).up; }));

        // Delay d = initial * multiplier^n (n = restarts within the window), plus 0-20 %
        // jitter; the rest is fork, exec and scheduling on a busy two-core machine.
        constexpr double SLACK_MS = 150;
        const double first = kill_and_time_restart(sup);
        const double second = kill_and_time_restart(sup);
        const double third = kill_and_time_restart(sup);
        MESSAGE("restart after SIGKILL: " << first << " ms (d=300), " << second << " ms (d=600), " << third
                                          << " ms (d=1200)");
        CHECK(first >= 300);
        CHECK(first <= 300 * 1.2 + SLACK_MS);
        CHECK(second >= 600);
        CHECK(second <= 600 * 1.2 + SLACK_MS);
        CHECK(third >= 1200);
        CHECK(third <= 1200 * 1.2 + SLACK_MS);
        const auto s = status_of(sup);
        CHECK(s.restarts == 3);
        CHECK(s.last_signal == SIGKILL);
        CHECK_FALSE(s.last_exit_code.has_value());
        CHECK(s.up);
    }

    TEST_CASE("the delay stops growing at backoff_max") {
        TempDir dir;
        const auto script = dir.write("sleep.sh", "exec sleep 30\n");
        auto w = worker("backoff-max-test", script, topology::RestartPolicy::Always);
        w.backoff_initial = 100ms;
        w.backoff_multiplier = 10.0;
        w.backoff_max = 250ms;
        w.max_restarts = 10;
        Supervisor sup({w}, sh_options());
        sup.start();
        REQUIRE(wait_until([&] { return status_of(sup).up; }));
        const double first = kill_and_time_restart(sup);   // 100 ms
        const double second = kill_and_time_restart(sup);  // 1000 ms, capped at 250
        MESSAGE("restart after SIGKILL: " << first << " ms (d=100), " << second << " ms (d=min(1000, 250))");
        CHECK(first >= 100);
        CHECK(first <= 100 * 1.2 + 150);
        CHECK(second >= 250);
        CHECK(second <= 250 * 1.2 + 150);
    }

    TEST_CASE("a worker that keeps failing is restarted max_restarts times, then given up with an error") {
        TempDir dir;
        auto sink = std::make_shared<RecordingSink>();
        Attach attach(sink, {"worker.crash-test", "supervisor"});
        const auto script = dir.write("crash.sh", "echo 'failing now'\nexit 3\n");
        auto w = worker("crash-test", script, topology::RestartPolicy::OnFailure);
        w.backoff_initial = 20ms;
        w.backoff_max = 100ms;
        w.max_restarts = 3;
        w.restart_window = 60s;
        Supervisor sup({w}, sh_options());
        sup.start();
        REQUIRE(wait_until([&] { return status_of(sup).given_up; }));
        REQUIRE(sink->wait_for("supervisor", "giving up"));
        std::this_thread::sleep_for(300ms);  // nothing starts it again
        const auto s = status_of(sup);
        CHECK(s.restarts == 3);
        CHECK(s.last_exit_code == 3);
        CHECK_FALSE(s.up);
        CHECK(s.pid == 0);
        CHECK(sink->matching("worker.crash-test", "failing now").size() == 4);
        const auto gave_up = sink->matching("supervisor", "giving up");
        REQUIRE(gave_up.size() == 1);
        CHECK(gave_up[0].level == spdlog::level::err);
        CHECK(gave_up[0].text.find("worker 'crash-test'") != std::string::npos);
        CHECK(gave_up[0].text.find("exit status 3") != std::string::npos);
        CHECK(gave_up[0].text.find("restarted 3 times within 60 s") != std::string::npos);
    }

    TEST_CASE("on-failure leaves a clean exit down, never leaves a failure down, and neither gives up") {
        TempDir dir;
        const auto clean = dir.write("clean.sh", "exit 0\n");
        const auto failing = dir.write("failing.sh", "exit 1\n");
        Supervisor sup({worker("clean-test", clean, topology::RestartPolicy::OnFailure),
                        worker("never-test", failing, topology::RestartPolicy::Never)},
                       sh_options());
        sup.start();
        REQUIRE(wait_until([&] {
            const auto s = sup.status();
            return s[0].last_exit_code.has_value() && s[1].last_exit_code.has_value();
        }));
        std::this_thread::sleep_for(300ms);  // longer than the 100 ms default backoff
        const auto s = sup.status();
        CHECK(s[0].last_exit_code == 0);
        CHECK(s[1].last_exit_code == 1);
        for (const auto& w : s) {
            CHECK(w.restarts == 0);
            CHECK_FALSE(w.up);
            CHECK_FALSE(w.given_up);
        }
    }

    TEST_CASE("stop sends SIGTERM to the process group and the worker's handler runs") {
        TempDir dir;
        auto sink = std::make_shared<RecordingSink>();
        Attach attach(sink, {"worker.term-test"});
        // The trap runs once the foreground sleep, in the same group, died of the SIGTERM.
        const auto script = dir.write("term.sh", "trap 'echo got SIGTERM; exit 0' TERM\necho up\n"
                                                 "while :; do sleep 0.05; done\n");
        auto w = worker("term-test", script, topology::RestartPolicy::Always);
        w.stop_grace = 3s;
        Supervisor sup({w}, sh_options());
        sup.start();
        REQUIRE(sink->wait_for("worker.term-test", "up"));
        const int pid = status_of(sup).pid;
        const auto stopping = Clock::now();
        sup.stop();
        const double took = ms_since(stopping);
        MESSAGE("graceful stop took " << took << " ms");
        CHECK(took < 1000);
        CHECK(sink->matching("worker.term-test", "got SIGTERM").size() == 1);
        const auto s = status_of(sup);
        CHECK_FALSE(s.up);
        CHECK(s.last_exit_code == 0);
        CHECK(s.restarts == 0);  // a stop is not restarted
        CHECK_FALSE(alive(pid));
        sup.stop();  // idempotent
    }

    TEST_CASE("a worker that ignores SIGTERM is killed with SIGKILL after stop_grace") {
        TempDir dir;
        auto sink = std::make_shared<RecordingSink>();
        Attach attach(sink, {"worker.stubborn-test", "supervisor"});
        const auto script = dir.write("stubborn.sh", "trap '' TERM\necho up\nwhile :; do sleep 0.05; done\n");
        auto w = worker("stubborn-test", script, topology::RestartPolicy::Always);
        w.stop_grace = 400ms;
        Supervisor sup({w}, sh_options());
        sup.start();
        REQUIRE(sink->wait_for("worker.stubborn-test", "up"));
        const int pid = status_of(sup).pid;
        const auto stopping = Clock::now();
        sup.stop();
        const double took = ms_since(stopping);
        MESSAGE("stop of a worker ignoring SIGTERM took " << took << " ms (stop_grace 400 ms)");
        CHECK(took >= 400);
        CHECK(took < 1000);
        CHECK(status_of(sup).last_signal == SIGKILL);
        CHECK_FALSE(alive(pid));
        const auto killed = sink->matching("supervisor", "did not stop within 400 ms of SIGTERM: SIGKILL");
        REQUIRE(killed.size() == 1);
        CHECK(killed[0].level == spdlog::level::warn);
    }

    TEST_CASE("what a worker leaves in its process group is killed when it exits") {
        TempDir dir;
        auto sink = std::make_shared<RecordingSink>();
        Attach attach(sink, {"worker.orphan-test"});
        const auto script = dir.write("orphan.sh", "sleep 30 &\necho \"child $!\"\nexit 0\n");
        Supervisor sup({worker("orphan-test", script)}, sh_options());
        sup.start();
        REQUIRE(wait_until([&] { return status_of(sup).last_exit_code.has_value(); }));
        const std::string child = value_after(*sink, "worker.orphan-test", "child ");
        REQUIRE(child != "<missing>");
        CHECK(wait_until([&] { return !alive(std::stoi(child)); }, 2s));
    }

    TEST_CASE("a worker reaped behind the supervisor's back is still noticed and restarted") {
        TempDir dir;
        auto sink = std::make_shared<RecordingSink>();
        Attach attach(sink, {"supervisor"});
        const auto script = dir.write("short.sh", "sleep 0.2\nexit 0\n");
        auto w = worker("stolen-test", script, topology::RestartPolicy::Always);
        w.backoff_initial = 50ms;
        w.max_restarts = 10;
        Supervisor sup({w}, sh_options());
        sup.start();
        const int first = status_of(sup).pid;
        REQUIRE(first > 0);
        // As a script's os.waitpid(-1) or an ignored SIGCHLD would: whoever wins the race
        // for the status, the supervisor must see the end and carry on.
        int wstatus = 0;
        const bool stolen = ::waitpid(first, &wstatus, 0) == first;
        REQUIRE(wait_for_new_pid(sup, first));
        CHECK(status_of(sup).restarts >= 1);
        if (stolen) {
            CHECK(sink->wait_for("supervisor", "was reaped by someone else: its exit status is unknown"));
        }
        MESSAGE("the test thread " << std::string(stolen ? "reaped" : "lost the race for") << " the worker's status");
    }

    TEST_CASE("stop before start, or with every worker already down, returns at once") {
        TempDir dir;
        const auto script = dir.write("ok.sh", "exit 0\n");
        {
            Supervisor sup({worker("idle-test", script)}, sh_options());
            sup.stop();
            CHECK_THROWS_AS(sup.start(), std::logic_error);
            CHECK_FALSE(status_of(sup).up);
        }
        Supervisor sup({worker("idle-test", script)}, sh_options());
        sup.start();
        CHECK_THROWS_AS(sup.start(), std::logic_error);
        REQUIRE(wait_until([&] { return status_of(sup).last_exit_code.has_value(); }));
        const auto stopping = Clock::now();
        sup.stop();
        CHECK(ms_since(stopping) < 200);
    }

    TEST_CASE("a worker is ready once it has connected to the node under its name, and again after a restart") {
        TempDir dir;
        auto sink = std::make_shared<RecordingSink>();
        Attach attach(sink, {"worker.ready-test", "supervisor"});
        const auto script = dir.write("client.py", R"(import os, socket, struct, time
path = os.environ["MYCELIUM_SOCKET"]
digest = bytes.fromhex(os.environ["MYCELIUM_SCHEMA_DIGEST"])
name = os.environ["MYCELIUM_SERVICE"].encode()
time.sleep(0.2)  # long enough to see the worker up but not yet ready
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(path)
hello = struct.pack("<BBH", 1, 0, len(name)) + name
sock.sendall(struct.pack("<H", len(digest)) + digest + struct.pack("<HI", 2, len(hello)) + hello)
print("connected", flush=True)
time.sleep(30)
)");
        auto w = worker("ready-test", script, topology::RestartPolicy::Always);
        w.backoff_initial = 50ms;
        SupervisorOptions options;
        const std::string socket = "unix:" + (dir.path / "node.sock").string();
        options.socket = socket;
        options.schema_digest = test_registry().digest_hex();
        Supervisor sup({w}, options);
        Bus bus;
        link::LinkServer server(bus, test_registry());
        server.listen(socket);
        server.set_client_observer([&sup](std::string_view name, bool connected) { sup.client_connected(name, connected); });

        sup.start();
        REQUIRE(wait_until([&] { return status_of(sup).up; }));
        CHECK_FALSE(status_of(sup).ready);
        REQUIRE(wait_until([&] { return status_of(sup).ready; }));
        CHECK(sink->wait_for("supervisor", "worker 'ready-test' (pid " + std::to_string(status_of(sup).pid) +
                                               ") is ready: connected as 'ready-test'"));

        const int old_pid = status_of(sup).pid;
        REQUIRE(::kill(old_pid, SIGKILL) == 0);
        REQUIRE(wait_for_new_pid(sup, old_pid));
        CHECK_FALSE(status_of(sup).ready);  // the new process has not said HELLO yet
        REQUIRE(wait_until([&] { return status_of(sup).ready; }));
        CHECK(sink->matching("supervisor", "is ready").size() == 2);

        sup.stop();
        CHECK_FALSE(status_of(sup).ready);
        server.set_client_observer({});
    }
}
