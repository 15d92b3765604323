#pragma once
// Shared helpers for tests/bench executables (the convention is in docs/benchmarks.md):
// parse --quick, pin threads, summarise repetitions, print the JSON entries on stdout.

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace bench {

/// Command line shared by every benchmark executable: `--quick`, and `--only PREFIX` to
/// run only the entries whose names start with PREFIX (in executables that support it;
/// the others run everything).
struct Args {
    bool quick = false;
    std::string only;

    /// Whether to run the group of entries whose names all start with `group`.
    bool wants(const std::string& group) const {
        return only.empty() || group.starts_with(only) || only.starts_with(group);
    }
};

inline Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) a.quick = true;
        if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) a.only = argv[++i];
    }
    return a;
}

/// Pins the calling thread to `cpu` (ignored if the machine has fewer CPUs).
inline void pin_this_thread(int cpu) {
    if (cpu < 0 || static_cast<unsigned>(cpu) >= std::thread::hardware_concurrency()) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<unsigned>(cpu), &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

using Clock = std::chrono::steady_clock;

inline double ns_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

/// Nearest-rank percentile of `v` (copied, sorted).
inline double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

/// Whether bigger is better (throughput) or smaller is better (latency, cost per op).
enum class Better { Lower, Higher };

/// One JSON entry: `samples` and `floor_samples` are per repetition (or per batch).
/// p99 is the 99th percentile for Lower-is-better units and the 1st percentile (the
/// slowest 1 %) for Higher-is-better units, so it is always the bad tail.
struct Entry {
    std::string name;
    std::string unit;
    Better better = Better::Lower;
    std::vector<double> samples;
    std::string floor;  // what the floor is: the bare peer measured in the same run
    std::vector<double> floor_samples;
    std::string target;  // the target, e.g. "<= 20"
};

inline std::string json_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        o += c;
    }
    return o;
}

inline void print_json(const std::vector<Entry>& entries) {
    std::printf("[\n");
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const Entry& e = entries[i];
        const double tail = e.better == Better::Lower ? 99.0 : 1.0;
        const double median = percentile(e.samples, 50);
        const double floor_median = percentile(e.floor_samples, 50);
        std::printf(
            "  {\"name\": \"%s\", \"unit\": \"%s\", \"median\": %.3f, \"p99\": %.3f, "
            "\"floor\": \"%s\", \"floor_median\": %.3f, \"ratio\": %.3f, \"target\": \"%s\"}%s\n",
            json_escape(e.name).c_str(), json_escape(e.unit).c_str(), median,
            percentile(e.samples, tail), json_escape(e.floor).c_str(), floor_median,
            floor_median > 0 ? median / floor_median : 0.0, json_escape(e.target).c_str(),
            i + 1 < entries.size() ? "," : "");
    }
    std::printf("]\n");
    std::fflush(stdout);
}

/// Keeps a value alive for the optimiser without a memory fence.
template <class T>
inline void do_not_optimize(const T& v) {
    asm volatile("" : : "r,m"(v) : "memory");
}

}  // namespace bench
