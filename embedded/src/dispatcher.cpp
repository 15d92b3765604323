// The dispatcher thread: the one thread that drains the Python mailbox and runs
// callbacks, timers and on_start hooks, while the main thread runs the scripts' top
// level. Both take turns through the GIL, so a top level that waits (time.sleep,
// Event.wait, asyncio, a blocking read) lets callbacks run at once, and one that
// computes lets them run at the interpreter's switch interval. One dispatcher means
// callbacks never overlap and keep the order their messages were queued in.
//
// The dispatcher holds the GIL while it delivers a batch and releases it to wait: a
// bounded spin, then a park on the mailbox's doorbell (a futex). Its thread state lives
// as long as the thread, so taking the GIL back costs ~70 ns when nobody holds it.

#include <pybind11/pybind11.h>

#include "python_runtime.hpp"

namespace mycelium::embedded {

namespace {

/// Deliveries per batch before timers get a turn: keeps timers on time under load.
constexpr std::size_t BATCH = 256;
/// Longest single park: the loop re-checks its state at least this often.
constexpr auto MAX_PARK = std::chrono::milliseconds(100);
/// How deep a publish on the consumer thread may deliver in place before it gives up.
constexpr int MAX_DISPATCH_DEPTH = 16;

}  // namespace

void PythonRuntime::start_dispatcher() {
    if (dispatcher_.joinable()) return;
    phase_.store(Phase::Running, std::memory_order_release);
    // Nobody delivers in place from here on but the dispatcher: a publisher on the main
    // thread parks (releasing the GIL) rather than drain a queue the dispatcher drains too,
    // which would reorder deliveries.
    consumer_thread_.store(0, std::memory_order_release);
    dispatcher_ = std::thread([this] { dispatcher_main(); });
    // PyThread_get_thread_ident() is the pthread_t on Linux.
    consumer_thread_.store(static_cast<unsigned long>(dispatcher_.native_handle()), std::memory_order_release);
}

void PythonRuntime::dispatcher_main() {
    // Signals stay with the host's watchdog: this thread inherits the blocked mask.
    PyGILState_STATE gil = PyGILState_Ensure();
    try {
        dispatch_loop();
    } catch (const std::exception& e) {
        PyErr_Clear();
        python_log()->critical("the Python dispatcher failed: {}", e.what());
        request_stop(1);
    }
    PyGILState_Release(gil);
}

void PythonRuntime::dispatch_loop() {
    for (;;) {
        if (loaded_hooks_pending_.exchange(false, std::memory_order_acq_rel)) run_loaded_hooks();
        // A drain looks at its deadline after every message: a batch of slow callbacks
        // could otherwise outlast the whole shutdown.
        const bool draining = phase_.load(std::memory_order_acquire) == Phase::Draining;
        const std::size_t delivered = deliver_batch(draining ? 1 : BATCH);
        if (!stop_requested()) run_due_timers();
        if (draining && (delivered == 0 || std::chrono::steady_clock::now() >= drain_deadline_)) return;
        if (delivered == BATCH || draining) continue;  // more is waiting

        const auto now = std::chrono::steady_clock::now();
        auto wake_at = now + MAX_PARK;
        if (const auto next = next_timer_deadline(); next && !stop_requested()) wake_at = std::min(wake_at, *next);
        if (wake_at <= now) continue;
        std::chrono::steady_clock::time_point woke;
        {
            py::gil_scoped_release release;  // the thread state persists: ~70 ns, not ~5 µs
            mailbox_->wait(wake_at - now);
            woke = std::chrono::steady_clock::now();
        }
        // The time the main thread (or a script's own thread) took to hand the GIL over.
        const auto waited = std::chrono::steady_clock::now() - woke;
        gil_wait_ns_.fetch_add(
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count()),
            std::memory_order_relaxed);
    }
}

void PythonRuntime::mark_loaded(std::function<void()> then) {
    if (loaded_.exchange(true, std::memory_order_acq_rel)) return;
    after_loaded_ = std::move(then);
    loaded_hooks_pending_.store(true, std::memory_order_release);
    mailbox_->wake();
}

void PythonRuntime::run_loaded_hooks() {
    run_start_hooks();
    if (after_loaded_) {
        py::gil_scoped_release release;
        after_loaded_();
    }
    after_loaded_ = nullptr;
}

void PythonRuntime::wait_for_stop() {
    py::gil_scoped_release release;
    stop_.wait(false, std::memory_order_acquire);
}

void PythonRuntime::request_stop(int exit_code) noexcept {
    int expected = 0;
    if (exit_code != 0) exit_code_.compare_exchange_strong(expected, exit_code);
    stop_.store(true, std::memory_order_release);
    stop_.notify_all();
    mailbox_->wake();
}

void PythonRuntime::stop_dispatcher(std::chrono::steady_clock::time_point deadline) {
    if (!dispatcher_.joinable()) return;
    drain_deadline_ = deadline;
    phase_.store(Phase::Draining, std::memory_order_release);
    mailbox_->wake();
    {
        py::gil_scoped_release release;
        dispatcher_.join();
    }
    consumer_thread_.store(PyThread_get_thread_ident(), std::memory_order_release);
}

void PythonRuntime::drain(std::chrono::steady_clock::time_point deadline) {
    while (std::chrono::steady_clock::now() < deadline && deliver_batch(1) > 0) {
    }
}

// ---------------------------------------------------------------- the wait policy

FullAction PythonRuntime::on_mailbox_full(Mailbox& mailbox, void* context) {
    auto* self = static_cast<PythonRuntime*>(context);
    if (&mailbox != self->mailbox_.get() ||
        PyThread_get_thread_ident() != self->consumer_thread_.load(std::memory_order_acquire)) {
        return FullAction::Park;  // the consumer will make room
    }
    // The consumer publishes into its own full queue: waiting would wait for itself.
    // Deliver queued messages here instead, in place, a bounded number deep.
    if (!PyGILState_Check() || self->dispatch_depth_ >= MAX_DISPATCH_DEPTH) return FullAction::Refuse;
    return self->deliver_batch(64) > 0 ? FullAction::Retry : FullAction::Refuse;
}

void* PythonRuntime::release_gil_to_park(void*) {
    // A publisher holding the GIL must not park with it: the dispatcher needs it to
    // drain the very queue the publisher waits on.
    if (Py_IsInitialized() && PyGILState_Check()) return PyEval_SaveThread();
    return nullptr;
}

void PythonRuntime::retake_gil_after_park(void*, void* token) {
    if (token != nullptr) PyEval_RestoreThread(static_cast<PyThreadState*>(token));
}

}  // namespace mycelium::embedded
