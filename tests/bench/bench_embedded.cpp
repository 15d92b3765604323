// Embedded-Python benchmarks (issue 3; targets and results in docs/benchmarks.md):
//   embedded.py_publish_inline_32B    Python mn.publish(msg) -> C++ inline subscriber, ns per publish
//                                     floor: a bare pybind11 function taking the message's bytes
//   embedded.cpp_to_py_throughput_32B C++ publisher -> Python callback (decoded message), M msg/s
//                                     floor: the same callback called from C++ with the GIL held
//   embedded.cpp_to_py_one_way_32B    C++ publish -> Python callback, one way, dispatcher spinning
//   embedded.cpp_to_py_one_way_sleeping_top_level_32B
//                                     the same while the script's top level sleeps in a loop
//                                     floor: bare SPSC ring handoff between the same two CPUs
//   embedded.py_to_py_one_way_32B     Python -> bus -> Python ping-pong in one host, one way
//                                     peer: pyzmq PAIR over inproc, same interpreter and thread
//
// Process layout: one Host per process (CPython cannot be re-initialised safely once numpy
// or zmq are imported), so the parent runs each case as a child process of this executable
// (`--case NAME`), kills a child that outlives its time limit (no hang when a target is
// missed or the host wedges) and prints the merged JSON list. Each child's Host also has
// `duration` set, so it stops itself before the parent's kill.
//
// Messages: BenchPing/BenchPong, four u64 fields (32 bytes), from a contracts file written
// to a temporary folder (the bundled demo contracts have no 32-byte message pair).
// The Python halves of the cases are tests/bench/embedded_<case>.py; they talk to this
// file through the embedded module `mycelium_bench` (parameters, floors, results).
//
// Pinning: single-threaded cases (publish, ping-pong) run on CPU 0. Cross-thread cases put
// the C++ publisher on CPU 0 and the Python thread (and the floor's consumer) on CPU 1: on a
// 2-vCPU VM an unpinned spinning pair sometimes shares one core and measures the scheduler.
// Floor and subject repetitions are interleaved so machine noise hits both alike.
//
// Diagnostics (stderr only): every case prints both medians and both tails; with
// MYC_BENCH_VERBOSE=1 the one-way case prints each round's floor and every delivery over
// 10 us; MYC_BENCH_DUMP=DIR writes each case's raw samples to DIR/<case>.txt.

#include <poll.h>
#include <pybind11/embed.h>
#include <pybind11/stl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "mycelium/host.hpp"
#include "spsc_ring.hpp"

namespace py = pybind11;
using namespace mycelium;
using bench::Clock;

#ifndef MYC_BENCH_SOURCE_DIR
#error "MYC_BENCH_SOURCE_DIR must name tests/bench (set by tests/bench/CMakeLists.txt)"
#endif

namespace {

constexpr int PUB_CPU = 0;
constexpr int PY_CPU = 1;

struct Ping32 {
    static constexpr std::uint16_t TYPE_ID = 60001;
    std::uint64_t seq, ts_ns, a, b;
};
static_assert(sizeof(Ping32) == 32);

constexpr const char* CONTRACTS = R"(# written by bench_embedded
messages:
  BenchPing:
    tlv_type: 60001
    description: 32-byte benchmark message
    fields: {seq: u64, ts_ns: u64, a: u64, b: u64}
  BenchPong:
    tlv_type: 60002
    description: 32-byte benchmark message (the reply)
    fields: {seq: u64, ts_ns: u64, a: u64, b: u64}
)";

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

inline void cpu_relax() { __builtin_ia32_pause(); }

// ---------------------------------------------------------------- the mycelium_bench module

// Filled by Python (report) and read by C++ after host.run(); only the Python thread writes.
std::map<std::string, std::vector<double>> g_reported;
// Case cpp_to_py_throughput: repetitions Python has finished (the publisher waits for it).
std::atomic<int> g_reps_done{0};
alignas(64) std::uint64_t g_sink = 0;

}  // namespace

PYBIND11_EMBEDDED_MODULE(mycelium_bench, m) {
    m.doc() = "bench_embedded's side channel: parameters, floors and results.";
    m.attr("params") = py::dict();
    // Floor of embedded.py_publish_inline: the cheapest way Python hands 32 bytes to C++
    // through pybind11, doing the inline subscriber's work (read seq) and nothing else.
    m.def("floor_bytes", [](const py::bytes& b) {
        Ping32 p;
        if (PyBytes_GET_SIZE(b.ptr()) == sizeof p) {
            std::memcpy(&p, PyBytes_AS_STRING(b.ptr()), sizeof p);
            g_sink += p.seq;
        }
    });
    // Floor of embedded.cpp_to_py_throughput: calls fn(arg) n times from C++ with the GIL
    // held (no queue, no thread handoff, no decode); returns the elapsed ns.
    m.def("call_n", [](const py::object& fn, const py::object& arg, long n) {
        const auto t0 = Clock::now();
        for (long i = 0; i < n; ++i) {
            PyObject* r = PyObject_CallOneArg(fn.ptr(), arg.ptr());
            if (r == nullptr) throw py::error_already_set();
            Py_DECREF(r);
        }
        return bench::ns_since(t0);
    });
    m.def("report", [](const std::string& name, std::vector<double> samples) {
        auto& v = g_reported[name];
        v.insert(v.end(), samples.begin(), samples.end());
    });
    m.def("rep_done", [] { g_reps_done.fetch_add(1, std::memory_order_release); });
}

namespace {

// ---------------------------------------------------------------- child helpers

struct Scratch {
    std::filesystem::path dir;
    Scratch() {
        char tmpl[] = "/tmp/myc-bench-embedded-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
        std::ofstream(dir / "contracts.yaml") << CONTRACTS;
    }
    ~Scratch() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

HostOptions host_options(const Scratch& s, const char* script, bool quick) {
    HostOptions o;
    o.contracts = s.dir / "contracts.yaml";
    o.scripts = {std::filesystem::path(MYC_BENCH_SOURCE_DIR) / script};
    o.duration = std::chrono::seconds(quick ? 25 : 60);  // the child's own bound
    o.shutdown_timeout = std::chrono::milliseconds(3000);
    return o;
}

/// Checks the registry lays BenchPing out as Ping32 (seq, ts_ns, a, b at 0, 8, 16, 24).
void check_layout(const Host& host) {
    const auto* m = host.registry().find(Ping32::TYPE_ID);
    if (m == nullptr || m->size != sizeof(Ping32)) throw std::runtime_error("BenchPing is not 32 bytes");
}

void set_params(std::initializer_list<std::pair<const char*, long>> kv) {
    py::dict params = py::module_::import("mycelium_bench").attr("params");
    for (const auto& [k, v] : kv) params[k] = v;
}

std::vector<double>& reported(const std::string& name, std::size_t want) {
    auto& v = g_reported[name];
    if (v.size() != want) {
        throw std::runtime_error("Python reported " + std::to_string(v.size()) + " samples for '" + name +
                                 "', expected " + std::to_string(want));
    }
    return v;
}

/// Runs the host; a non-zero exit (script failure, shutdown timeout) is a failed case.
void run_host(Host& host) {
    const int code = host.run();
    if (code != 0) throw std::runtime_error("host.run() returned " + std::to_string(code));
}

// ---------------------------------------------------------------- (1) Python publish -> inline C++

bench::Entry case_py_publish(bool quick) {
    bench::pin_this_thread(PUB_CPU);
    const long reps = quick ? 9 : 31;
    const long n = quick ? 50'000 : 200'000;
    Scratch scratch;
    Host host(host_options(scratch, "embedded_publish.py", quick));
    check_layout(host);
    set_params({{"reps", reps}, {"n", n}});
    std::uint64_t received = 0;
    auto sub = host.bus().subscribe<Ping32>([&received](const Ping32& p) { received += p.seq; });
    run_host(host);
    bench::do_not_optimize(received);
    bench::do_not_optimize(g_sink);
    return bench::Entry{"embedded.py_publish_inline_32B", "ns", bench::Better::Lower,
                        reported("subject", static_cast<std::size_t>(reps)),
                        "pybind11 function taking the message as bytes (32 B), same Python loop",
                        reported("floor", static_cast<std::size_t>(reps)), "<= 200"};
}

// ---------------------------------------------------------------- (2) C++ -> Python throughput

bench::Entry case_cpp_to_py_throughput(bool quick) {
    const long reps = quick ? 5 : 15;
    const long n = quick ? 100'000 : 300'000;
    Scratch scratch;
    Host host(host_options(scratch, "embedded_throughput.py", quick));
    check_layout(host);
    set_params({{"reps", reps}, {"n", n}});

    std::atomic<bool> stop{false};
    std::thread publisher;
    host.on_started([&] {
        bench::pin_this_thread(PY_CPU);  // on the dispatcher thread, which runs the callbacks
        publisher = std::thread([&] {
            bench::pin_this_thread(PUB_CPU);
            Ping32 m{0, 0, 1, 2};
            for (long r = 0; r < reps && !stop.load(std::memory_order_relaxed); ++r) {
                // Python runs its floor repetition between ours, then says go.
                const auto deadline = Clock::now() + std::chrono::seconds(10);
                while (g_reps_done.load(std::memory_order_acquire) < r) {
                    if (stop.load(std::memory_order_relaxed) || Clock::now() > deadline) return host.stop(1);
                    cpu_relax();
                }
                for (long i = 0; i < n; ++i) {
                    m.seq = static_cast<std::uint64_t>(i);
                    if (!host.bus().publish(m)) return;  // closed: the host is stopping
                    if (stop.load(std::memory_order_relaxed)) return;
                }
            }
        });
    });
    host.on_stopping([&] {
        stop = true;
        if (publisher.joinable()) publisher.join();
    });
    run_host(host);
    if (publisher.joinable()) publisher.join();
    return bench::Entry{"embedded.cpp_to_py_throughput_32B", "M msg/s", bench::Better::Higher,
                        reported("subject", static_cast<std::size_t>(reps)),
                        "the same Python callback called from C++ with the GIL held (no queue, no decode)",
                        reported("floor", static_cast<std::size_t>(reps)), ">= 2"};
}

// ---------------------------------------------------------------- (3) C++ -> Python one way

constexpr auto GAP = std::chrono::microseconds(20);
constexpr int WARMUP = 5;  // first messages of a round: the first one wakes a parked consumer

/// Waits for the next send time, GAP after `prev`. After a stall (this thread or the VM
/// descheduled) it restarts the cadence from now instead of sending a catch-up burst, so
/// every message still finds an idle consumer and one stall costs one sample, not a queue.
Clock::time_point next_send(Clock::time_point prev) {
    const auto now = Clock::now();
    auto next = prev + GAP;
    if (next < now) next = now + GAP;
    while (Clock::now() < next) cpu_relax();
    return next;
}

/// One round of the floor: the producer (this thread, CPU 0) pushes a timestamp every GAP
/// into a bare SPSC ring; a consumer spinning on CPU 1 records now - timestamp.
void ring_round(int count, std::vector<double>& out) {
    bench::SpscRing<32> ring(1024);
    std::vector<double> got;
    got.reserve(static_cast<std::size_t>(count));
    std::atomic<bool> ready{false};
    std::thread consumer([&] {
        bench::pin_this_thread(PY_CPU);
        ready = true;
        Ping32 m{};
        const auto deadline = Clock::now() + std::chrono::seconds(5);
        while (static_cast<int>(got.size()) < count && Clock::now() < deadline) {
            if (ring.try_pop(&m)) got.push_back(static_cast<double>(now_ns() - m.ts_ns));
        }
    });
    while (!ready.load()) cpu_relax();
    Ping32 m{0, 0, 1, 2};
    auto next = Clock::now();
    for (int i = 0; i < count; ++i) {
        next = next_send(next);
        m.seq = static_cast<std::uint64_t>(i);
        m.ts_ns = now_ns();
        while (!ring.try_push(&m)) cpu_relax();
    }
    consumer.join();
    for (std::size_t i = WARMUP; i < got.size(); ++i) out.push_back(got[i]);
}

/// C++ publish -> Python callback, one way, with `script` subscribing (and perhaps
/// keeping its top level running).
bench::Entry cpp_to_py_one_way(bool quick, const char* name, const char* script, const char* target) {
    const int rounds = quick ? 6 : 20;
    const int per_round = quick ? 1000 : 2000;  // measured messages per round
    Scratch scratch;
    HostOptions options = host_options(scratch, script, quick);
    options.spin = std::chrono::milliseconds(5);  // the dispatcher spins between messages
    Host host(options);
    check_layout(host);

    bench::Entry e{name, "ns", bench::Better::Lower, {},
                   "bare SPSC ring handoff, consumer spinning on the other CPU", {}, target};
    std::atomic<bool> stop{false};
    std::thread driver;
    host.on_started([&] {
        bench::pin_this_thread(PY_CPU);  // on the dispatcher thread, which runs the callbacks
        driver = std::thread([&] {
            bench::pin_this_thread(PUB_CPU);
            Ping32 m{0, 0, 1, 2};
            std::uint64_t sent = 0;
            for (int r = 0; r < rounds && !stop.load(); ++r) {
                // Idle longer than the dispatcher's spin, so it parks and leaves CPU 1 to
                // the floor's consumer.
                std::this_thread::sleep_for(std::chrono::milliseconds(15));
                const std::size_t floor_before = e.floor_samples.size();
                ring_round(per_round + WARMUP, e.floor_samples);
                if (std::getenv("MYC_BENCH_VERBOSE")) {
                    std::vector<double> f(e.floor_samples.begin() + static_cast<long>(floor_before), e.floor_samples.end());
                    std::fprintf(stderr, "round %d floor median %.0f p99 %.0f\n", r, bench::percentile(f, 50), bench::percentile(f, 99));
                }
                auto next = Clock::now();
                for (int i = 0; i < per_round + WARMUP && !stop.load(std::memory_order_relaxed); ++i) {
                    next = next_send(next);
                    m.seq = sent++;
                    m.ts_ns = now_ns();
                    if (!host.bus().publish(m)) return;
                }
                const auto deadline = Clock::now() + std::chrono::seconds(5);
                while (host.stats().python_delivered < sent) {
                    if (stop.load() || Clock::now() > deadline) return host.stop(1);
                    std::this_thread::sleep_for(std::chrono::microseconds(200));
                }
            }
            host.stop();
        });
    });
    host.on_stopping([&] {
        stop = true;
        if (driver.joinable()) driver.join();
    });
    run_host(host);
    if (driver.joinable()) driver.join();
    // Python recorded every message in order; drop each round's warm-up messages.
    const auto& all = reported("subject", static_cast<std::size_t>(rounds * (per_round + WARMUP)));
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (i % static_cast<std::size_t>(per_round + WARMUP) >= WARMUP) e.samples.push_back(all[i]);
        if (std::getenv("MYC_BENCH_VERBOSE") && all[i] > 10000) {
            std::fprintf(stderr, "slow delivery: message %zu of round %zu: %.0f ns\n",
                         i % static_cast<std::size_t>(per_round + WARMUP), i / static_cast<std::size_t>(per_round + WARMUP), all[i]);
        }
    }
    return e;
}

bench::Entry case_cpp_to_py_one_way(bool quick) {
    return cpp_to_py_one_way(quick, "embedded.cpp_to_py_one_way_32B", "embedded_latency.py",
                             "<= 1500 (median), <= 10000 (p99)");
}

// The same with a Mycelium-shaped script: its top level sleeps in a loop, the dispatcher
// thread delivers meanwhile.
bench::Entry case_cpp_to_py_one_way_sleeping(bool quick) {
    return cpp_to_py_one_way(quick, "embedded.cpp_to_py_one_way_sleeping_top_level_32B",
                             "embedded_latency_sleeping.py",
                             "<= 1.5 x embedded.cpp_to_py_one_way_32B (median)");
}

// ---------------------------------------------------------------- (4) Python -> Python ping-pong

bench::Entry case_py_to_py_one_way(bool quick) {
    bench::pin_this_thread(PUB_CPU);
    const long reps = quick ? 40 : 150;
    const long batch = 1000;  // round trips per sample
    Scratch scratch;
    Host host(host_options(scratch, "embedded_pingpong.py", quick));
    check_layout(host);
    set_params({{"reps", reps}, {"batch", batch}});
    run_host(host);
    return bench::Entry{"embedded.py_to_py_one_way_32B", "ns", bench::Better::Lower,
                        reported("subject", static_cast<std::size_t>(reps)),
                        "pyzmq PAIR inproc ping-pong / 2, 32-byte bytes, same thread",
                        reported("floor", static_cast<std::size_t>(reps)), "<= 1000, and <= floor / 3"};
}

// ---------------------------------------------------------------- parent

struct Case {
    const char* name;
    bench::Entry (*run)(bool quick);
};
constexpr Case CASES[] = {
    {"py_publish", case_py_publish},
    {"cpp_to_py_throughput", case_cpp_to_py_throughput},
    {"cpp_to_py_one_way", case_cpp_to_py_one_way},
    {"cpp_to_py_one_way_sleeping", case_cpp_to_py_one_way_sleeping},
    {"py_to_py_one_way", case_py_to_py_one_way},
};

int run_child(const char* name, bool quick) {
    for (const auto& c : CASES) {
        if (std::strcmp(c.name, name) != 0) continue;
        try {
            const bench::Entry e = c.run(quick);
            // The JSON has no floor tail; diagnostics on stderr give both tails.
            const double tail = e.better == bench::Better::Lower ? 99 : 1;
            std::fprintf(stderr, "%s: median %.1f, p%.0f %.1f; floor median %.1f, p%.0f %.1f (%zu/%zu samples)\n",
                         e.name.c_str(), bench::percentile(e.samples, 50), tail, bench::percentile(e.samples, tail),
                         bench::percentile(e.floor_samples, 50), tail, bench::percentile(e.floor_samples, tail),
                         e.samples.size(), e.floor_samples.size());
            if (const char* dump = std::getenv("MYC_BENCH_DUMP")) {  // raw samples, for analysis
                std::ofstream out(std::string(dump) + "/" + name + ".txt");
                for (double v : e.samples) out << "s " << v << "\n";
                for (double v : e.floor_samples) out << "f " << v << "\n";
            }
            bench::print_json({e});
            return 0;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bench_embedded --case %s: %s\n", name, e.what());
            return 1;
        }
    }
    std::fprintf(stderr, "bench_embedded: unknown case '%s'\n", name);
    return 2;
}

/// Runs `self --case name [--quick]` with stdout captured, killing it after `limit`.
/// Returns the child's JSON entry lines, or nullopt if it failed.
std::optional<std::vector<std::string>> spawn_case(const char* name, bool quick, std::chrono::seconds limit) {
    int fds[2];
    if (::pipe(fds) != 0) return std::nullopt;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    std::vector<char*> argv{self.data(), const_cast<char*>("--case"), const_cast<char*>(name)};
    if (quick) argv.push_back(const_cast<char*>("--quick"));
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        return std::nullopt;
    }
    std::string out;
    const auto deadline = Clock::now() + limit;
    bool killed = false;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            std::fprintf(stderr, "bench_embedded: case %s exceeded %lld s; killing it\n", name,
                         static_cast<long long>(limit.count()));
            ::kill(pid, SIGKILL);
            killed = true;
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000))) <= 0) continue;
        char buf[4096];
        const ssize_t got = ::read(fds[0], buf, sizeof buf);
        if (got <= 0) break;  // EOF: the child closed stdout (exited)
        out.append(buf, static_cast<std::size_t>(got));
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (killed || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "bench_embedded: case %s failed (status %d)\n", name, status);
        return std::nullopt;
    }
    std::vector<std::string> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("  {", 0) != 0) continue;
        if (!line.empty() && line.back() == ',') line.pop_back();
        lines.push_back(line);
    }
    return lines;
}

}  // namespace

int main(int argc, char** argv) {
    const auto args = bench::parse_args(argc, argv);
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--case") == 0) return run_child(argv[i + 1], args.quick);
    }
    std::vector<std::string> entries;
    int status = 0;
    for (const auto& c : CASES) {
        const auto lines = spawn_case(c.name, args.quick, std::chrono::seconds(args.quick ? 30 : 75));
        if (!lines) {
            status = 1;
            continue;
        }
        entries.insert(entries.end(), lines->begin(), lines->end());
    }
    std::printf("[\n");
    for (std::size_t i = 0; i < entries.size(); ++i) {
        std::printf("%s%s\n", entries[i].c_str(), i + 1 < entries.size() ? "," : "");
    }
    std::printf("]\n");
    return status;
}
