#pragma once
// The Python side of a host: the one Python thread's dispatch loop, Python
// subscriptions, timers, hooks and script execution (DESIGN.md section 5).
//
// Threading: one thread (the "Python thread", the one that calls run()) owns all
// Python work. Other threads never take the GIL to deliver: the bus pushes into this
// runtime's Mailbox and rings its doorbell. The Python thread keeps its thread state for
// its whole life, releases the GIL while it waits, and spins briefly before it parks.

#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "message_types.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/latency_histogram.hpp"
#include "mycelium/schema.hpp"

namespace py = pybind11;

namespace mycelium::embedded {

struct RuntimeOptions {
    std::size_t queue_capacity = 4096;  ///< messages waiting for Python, all subscriptions
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);  ///< before parking
    bool fail_fast = false;             ///< a callback exception stops the host (exit 1)
};

/// Counters the host prints at exit and exports as metrics.
/// What Python did with one message type (metrics). Written by the Python thread only;
/// read from any thread. Lives as long as the runtime, past its subscriptions.
struct TypeStats {
    std::atomic<std::uint64_t> callbacks{0};      ///< callbacks that returned
    std::atomic<std::uint64_t> errors{0};         ///< callbacks that raised
    std::atomic<std::uint64_t> decode_errors{0};  ///< messages whose bytes did not decode
    LatencyHistogram duration;                    ///< a sample: one callback in 16
};

struct RuntimeStats {
    std::uint64_t delivered = 0;         ///< callbacks that returned
    std::uint64_t callback_errors = 0;   ///< callbacks that raised
    std::uint64_t decode_errors = 0;     ///< messages whose bytes did not decode
};

/// A script that raised at top level; its traceback has been logged.
class ScriptError : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Thread safety: request_stop() and stop_requested() from any thread; everything else
/// on the Python thread (or a Python thread of a script) with the GIL held.
class PythonRuntime {
public:
    PythonRuntime(Bus& bus, std::shared_ptr<const schema::Registry> registry, RuntimeOptions options);
    ~PythonRuntime();
    PythonRuntime(const PythonRuntime&) = delete;
    PythonRuntime& operator=(const PythonRuntime&) = delete;

    /// The runtime of this process; throws ClosedError when none is running.
    static PythonRuntime& current();
    static PythonRuntime* current_or_null() noexcept;

    // ------------------------------------------------------------ from Python (GIL held)

    /// Subscribes `callback` to messages of class `cls` (one of mycelium_native.messages,
    /// or any class with TYPE_ID and from_bytes). Returns the subscription's token.
    std::uint64_t subscribe(py::handle cls, py::object callback);
    /// Stops delivery for a token; messages already queued for it are skipped.
    void unsubscribe(std::uint64_t token);
    /// Publishes a message object (ours, or any object with TYPE_ID and to_bytes()).
    void publish(py::handle message);
    /// Calls `fn()` every `seconds` on the Python thread; returns the timer's id.
    std::uint64_t add_timer(double seconds, py::object fn);
    void cancel_timer(std::uint64_t id);
    void add_start_hook(py::object fn);
    void add_stop_hook(py::object fn);

    /// The eventfd rung when messages wait and the Python thread is not in run()'s wait
    /// (an asyncio loop watches it).
    int doorbell_fd() const noexcept { return doorbell_fd_; }
    /// The asyncio pump: delivers a batch and runs due timers without waiting, then
    /// arms the doorbell fd. Returns true when more is ready (call again soon).
    bool dispatch_ready();
    /// Seconds until the next timer is due, or nullopt without timers.
    std::optional<double> next_timer_delay() const;

    const schema::Registry& registry() const noexcept { return *registry_; }
    const MessageTypes& message_types() const noexcept { return *types_; }
    py::module_ messages_module() const { return messages_; }

    // ------------------------------------------------------------ from the host

    /// Runs a script's top level as __main__ with its folder first on sys.path. Throws
    /// ScriptError (traceback logged) when it raises, unless a stop was requested.
    void run_script(const std::filesystem::path& path);
    /// Runs the on_start hooks (each once), logging their exceptions.
    void run_start_hooks();
    /// Delivers messages and timers until request_stop() or `deadline`. Returns with
    /// the GIL held.
    void dispatch_until_stopped(std::optional<std::chrono::steady_clock::time_point> deadline);
    /// Delivers what is still queued, until empty or `deadline`.
    void drain(std::chrono::steady_clock::time_point deadline);
    /// Runs on_stop hooks (each once), logging their exceptions.
    void run_stop_hooks();
    /// Closes every Python subscription and timer and drops every Python object held.
    void close_all();

    /// Stops the dispatch loop; `exit_code` is kept if it is the first non-zero one.
    /// Thread safety: any thread, no GIL needed.
    void request_stop(int exit_code = 0) noexcept;
    bool stop_requested() const noexcept { return stop_.load(std::memory_order_acquire); }
    int exit_code() const noexcept { return exit_code_.load(std::memory_order_acquire); }
    /// Whether the Python thread is running Python code now (a script, a callback).
    bool in_python() const noexcept { return in_python_.load(std::memory_order_acquire); }
    /// The Python thread's id for PyThreadState_SetAsyncExc.
    unsigned long python_thread_id() const noexcept { return python_thread_id_; }

    RuntimeStats stats() const noexcept;
    /// Calls `visit(type_id, stats)` for every type a script has subscribed to.
    /// Thread safety: any thread.
    void for_each_type_stats(const std::function<void(std::uint16_t, const TypeStats&)>& visit) const;
    /// Nanoseconds the Python thread waited for the GIL after a wake-up, in total.
    /// Thread safety: any thread.
    std::uint64_t gil_wait_ns() const noexcept { return gil_wait_ns_.load(std::memory_order_relaxed); }
    /// Messages waiting for the Python thread (approximate). Thread safety: any thread.
    std::size_t queue_depth() const noexcept;
    /// Durations of a sample of callbacks (one delivery in 16 is timed).
    const LatencyHistogram& callback_latency() const noexcept { return callback_latency_; }

private:
    struct PySubscription;
    struct Timer;

    static FullAction on_mailbox_full(Mailbox& mailbox, void* context);
    static void* release_gil_to_park(void* context);
    static void retake_gil_after_park(void* context, void* token);

    void deliver(const MailboxView& view);
    std::size_t deliver_batch(std::size_t max);
    void run_due_timers();
    void report_exception(const std::string& where);
    std::optional<std::chrono::steady_clock::time_point> next_timer_deadline() const;

    Bus& bus_;
    std::shared_ptr<const schema::Registry> registry_;
    RuntimeOptions options_;
    std::shared_ptr<Mailbox> mailbox_;
    int doorbell_fd_ = -1;
    BlockingHooks blocking_hooks_;
    std::unique_ptr<MessageTypes> types_;
    py::module_ messages_;

    std::unordered_map<std::uint64_t, std::unique_ptr<PySubscription>> subscriptions_;
    std::uint64_t next_token_ = 1;
    std::vector<std::unique_ptr<Timer>> timers_;
    std::uint64_t next_timer_id_ = 1;
    std::vector<py::object> start_hooks_;
    std::vector<py::object> stop_hooks_;
    std::vector<py::object> script_modules_;

    std::atomic<bool> stop_{false};
    std::atomic<int> exit_code_{0};
    std::atomic<bool> in_python_{false};
    unsigned long python_thread_id_ = 0;
    int dispatch_depth_ = 0;
    std::uint64_t timing_counter_ = 0;  ///< which deliveries are timed (one in 16)

    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<std::uint64_t> callback_errors_{0};
    std::atomic<std::uint64_t> decode_errors_{0};
    std::atomic<std::uint64_t> gil_wait_ns_{0};
    LatencyHistogram callback_latency_;
    mutable std::mutex type_stats_mutex_;  ///< guards the map, not the stats
    std::map<std::uint16_t, std::unique_ptr<TypeStats>> type_stats_;
};

}  // namespace mycelium::embedded
