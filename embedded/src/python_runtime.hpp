#pragma once
// The Python side of a host: Python subscriptions, timers, hooks, script execution and
// the dispatcher thread that runs the callbacks (docs/architecture.md section 5, "The GIL").
//
// Threading: two threads run Python. The host's main thread runs the scripts' top level;
// the dispatcher thread runs every callback, timer and on_start hook, one at a time and
// in order, interleaved with the top level through the GIL. So a script whose top level
// sleeps, waits on an Event, runs asyncio or blocks on a socket still gets its
// callbacks. Other threads never take the GIL to deliver: the bus pushes into this
// runtime's Mailbox and rings its doorbell. The dispatcher keeps its thread state for its
// whole life, releases the GIL while it waits, and spins briefly before it parks.

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
#include <thread>
#include <unordered_map>
#include <vector>

#include "message_types.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/latency_histogram.hpp"
#include "mycelium/log.hpp"
#include "mycelium/log_limiter.hpp"
#include "mycelium/schema.hpp"
#include "runtime_topology.hpp"

namespace py = pybind11;

namespace mycelium::embedded {

struct RuntimeOptions {
    std::size_t queue_capacity = 4096;  ///< messages waiting for Python, all subscriptions
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);  ///< before parking
    bool fail_fast = false;             ///< a callback exception stops the host (exit 1)
    /// One traceback per callback, exception type and interval; one undecodable-message
    /// line per type, exception type and interval (`--log-interval`).
    std::chrono::milliseconds log_interval = log::LogLimiter::DEFAULT_INTERVAL;
    std::optional<HostNode> node;       ///< the topology node the host runs as, if any
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

/// Thread safety: the functions marked "any thread" need no GIL; everything else runs on
/// a thread that holds the GIL (the main thread, the dispatcher, a script's own thread).
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
    /// Calls `fn()` every `seconds` on the dispatcher thread; returns the timer's id.
    std::uint64_t add_timer(double seconds, py::object fn);
    void cancel_timer(std::uint64_t id);
    void add_start_hook(py::object fn);
    void add_stop_hook(py::object fn);

    const schema::Registry& registry() const noexcept { return *registry_; }
    const RuntimeOptions& options() const noexcept { return options_; }

    // ------------------------------------------------------------ from the host

    /// Starts the dispatcher thread (called once, by the main thread, with the GIL held;
    /// the dispatcher takes the GIL whenever the main thread lets it go).
    void start_dispatcher();
    /// Runs a script's top level as __main__ with its folder first on sys.path, on the
    /// calling (main) thread. Throws ScriptError (traceback logged) when it raises,
    /// unless a stop was requested.
    void run_script(const std::filesystem::path& path);
    /// The scripts are loaded: the dispatcher runs the on_start hooks (each once), then
    /// `then` with the GIL released. Idempotent. Thread safety: any thread.
    void mark_loaded(std::function<void()> then);
    bool loaded() const noexcept { return loaded_.load(std::memory_order_acquire); }
    /// Returns once request_stop() has been called; waits with the GIL released.
    void wait_for_stop();
    /// Lets the dispatcher deliver what is queued until the mailbox is empty or
    /// `deadline` passes, then joins it (GIL released meanwhile). From then on the
    /// calling thread is the consumer: drain() and in-place delivery run on it.
    void stop_dispatcher(std::chrono::steady_clock::time_point deadline);
    /// Delivers what is still queued, until empty or `deadline` (after stop_dispatcher).
    void drain(std::chrono::steady_clock::time_point deadline);
    /// Empties the queue without delivering (the drain's deadline passed) and returns what
    /// it held, by type id. After stop_dispatcher().
    std::map<std::uint16_t, std::uint64_t> discard_queued();
    /// Runs on_stop hooks (each once), logging their exceptions.
    void run_stop_hooks();
    /// Closes every Python subscription and timer and drops every Python object held.
    void close_all();

    /// Stops the dispatch loop; `exit_code` is kept if it is the first non-zero one.
    /// Thread safety: any thread, no GIL needed.
    void request_stop(int exit_code = 0) noexcept;
    bool stop_requested() const noexcept { return stop_.load(std::memory_order_acquire); }
    int exit_code() const noexcept { return exit_code_.load(std::memory_order_acquire); }
    /// The thread running a callback, timer or hook now, or 0: the watchdog interrupts it
    /// (PyThreadState_SetAsyncExc) when it does not return at shutdown. Any thread.
    unsigned long busy_thread() const noexcept { return busy_thread_.load(std::memory_order_acquire); }
    /// Grows whenever a callback, timer or hook returns: the watchdog tells a callback that
    /// does not return from a drain that keeps going. Any thread.
    std::uint64_t progress() const noexcept {
        return delivered_.load(std::memory_order_relaxed) + callback_errors_.load(std::memory_order_relaxed) +
               decode_errors_.load(std::memory_order_relaxed) + calls_returned_.load(std::memory_order_relaxed);
    }

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

    enum class Phase : std::uint8_t { Running, Draining };

    /// Marks the calling thread as running Python code for the runtime (busy_thread()).
    class Busy {
    public:
        explicit Busy(std::atomic<unsigned long>& slot);
        ~Busy() { slot_.store(previous_, std::memory_order_release); }
        Busy(const Busy&) = delete;
        Busy& operator=(const Busy&) = delete;

    private:
        std::atomic<unsigned long>& slot_;
        unsigned long previous_;
    };

    static const std::shared_ptr<spdlog::logger>& python_log();
    /// The text of the pending Python exception with its traceback; clears it.
    static std::string pending_exception_text();
    static FullAction on_mailbox_full(Mailbox& mailbox, void* context);
    static void* release_gil_to_park(void* context);
    static void retake_gil_after_park(void* context, void* token);

    void dispatcher_main();
    void dispatch_loop();
    void run_loaded_hooks();
    void run_start_hooks();
    void deliver(const MailboxView& view);
    std::size_t deliver_batch(std::size_t max);
    void run_due_timers();
    void report_exception(const std::string& where);
    /// The pending exception's type name (the exception stays pending). GIL.
    static std::string pending_exception_type();
    std::optional<std::chrono::steady_clock::time_point> next_timer_deadline() const;

    Bus& bus_;
    std::shared_ptr<const schema::Registry> registry_;
    RuntimeOptions options_;
    std::shared_ptr<Mailbox> mailbox_;
    WaitPolicy wait_policy_;
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
    std::thread dispatcher_;
    std::atomic<Phase> phase_{Phase::Running};
    std::chrono::steady_clock::time_point drain_deadline_;  ///< set before Draining
    /// The thread that drains the mailbox: the dispatcher while it runs, then the thread
    /// that stopped it. A Block publish from it delivers in place instead of waiting.
    std::atomic<unsigned long> consumer_thread_{0};
    std::atomic<unsigned long> busy_thread_{0};
    std::atomic<bool> loaded_{false};
    std::atomic<bool> loaded_hooks_pending_{false};
    std::function<void()> after_loaded_;  ///< written before loaded_hooks_pending_ is set
    int dispatch_depth_ = 0;
    std::uint64_t timing_counter_ = 0;  ///< which deliveries are timed (one in 16)

    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<std::uint64_t> callback_errors_{0};
    std::atomic<std::uint64_t> decode_errors_{0};
    // Log lines a script can repeat per message: by where and exception type, by message
    // type and exception type (docs/reliability.md, "Logs are bounded"). The counters
    // above count every one.
    log::KeyedLogLimiter exception_logs_;
    log::KeyedLogLimiter decode_logs_;
    std::atomic<std::uint64_t> gil_wait_ns_{0};
    std::atomic<std::uint64_t> calls_returned_{0};  ///< timers and hooks (progress())
    /// The host's main thread: it runs the top level and, at shutdown, the on_stop hooks.
    const unsigned long main_thread_;
    LatencyHistogram callback_latency_;
    mutable std::mutex type_stats_mutex_;  ///< guards the map, not the stats
    std::map<std::uint16_t, std::unique_ptr<TypeStats>> type_stats_;
};

}  // namespace mycelium::embedded
