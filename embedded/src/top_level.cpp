// Settling and interrupting the scripts' top level (see top_level.hpp).
//
// Settled: the watchdog samples the main thread's current frame about every 20 ms. A top
// level that waits (time.sleep, Event.wait, a selector, a blocking read) has released
// the GIL and sits on one instruction of one frame, so the GIL comes at once and the
// frame and instruction do not move between samples. A top level that computes holds
// the GIL (taking it waits for the switch interval, 5 ms) and moves on between samples.
//
// Interrupted: PyErr_SetInterruptEx marks the Python signal handler as pending, and a
// no-op signal sent to the main thread makes its blocking call return EINTR; CPython
// then runs the handler in that thread (PEP 475), which raises KeyboardInterrupt.

#include "top_level.hpp"

#include <csignal>

namespace mycelium::embedded {

namespace {

/// Wakes the main thread from a blocking call. SIGURG, as Go's runtime uses for
/// preemption: ignored by default, and the kernel sends it only to a socket owner that
/// asked for it (F_SETOWN).
constexpr int WAKE_SIGNAL = SIGURG;

/// Slower than this, taking the GIL meant someone was running Python.
constexpr auto GIL_WAS_FREE = std::chrono::milliseconds(2);

void on_wake(int) {}

}  // namespace

TopLevel::TopLevel(bool interruptible)
    : thread_(pthread_self()), thread_state_(PyThreadState_Get()), interruptible_(interruptible) {
    if (interruptible_) {
        namespace py = pybind11;
        py::module_ signal = py::module_::import("signal");
        signal.attr("signal")(signal.attr("SIGINT"), signal.attr("default_int_handler"));
    }
    struct sigaction action {};
    action.sa_handler = &on_wake;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: the blocking call returns EINTR
    sigaction(WAKE_SIGNAL, &action, nullptr);
}

void TopLevel::begin() noexcept {
    waiting_samples_ = 0;
    running_.store(true, std::memory_order_release);
}

void TopLevel::end() noexcept {
    running_.store(false, std::memory_order_release);
    Py_CLEAR(last_frame_);
    last_instruction_ = -1;
    waiting_samples_ = 0;
}

bool TopLevel::sample_waiting() {
    if (!running()) return false;
    const auto asked = std::chrono::steady_clock::now();
    const PyGILState_STATE gil = PyGILState_Ensure();
    const bool gil_was_free = std::chrono::steady_clock::now() - asked < GIL_WAS_FREE;
    bool settled = false;
    if (running()) {
        PyFrameObject* frame = PyThreadState_GetFrame(thread_state_);  // new reference or null
        const int instruction = frame != nullptr ? PyFrame_GetLasti(frame) : -1;
        const bool unmoved = frame != nullptr && reinterpret_cast<PyObject*>(frame) == last_frame_ &&
                             instruction == last_instruction_;
        waiting_samples_ = unmoved && gil_was_free ? waiting_samples_ + 1 : 0;
        Py_XSETREF(last_frame_, reinterpret_cast<PyObject*>(frame));
        last_instruction_ = instruction;
        settled = waiting_samples_ >= SETTLED_SAMPLES;
    }
    PyGILState_Release(gil);
    return settled;
}

void TopLevel::interrupt(int signal) noexcept {
    if (!running()) return;
    if (!interruptible_) {
        // The embedding application owns SIGINT: raise KeyboardInterrupt directly. It
        // fires when the top level next runs Python (after a sleep returns).
        const PyGILState_STATE gil = PyGILState_Ensure();
        PyThreadState_SetAsyncExc(static_cast<unsigned long>(thread_), PyExc_KeyboardInterrupt);
        PyGILState_Release(gil);
        pthread_kill(thread_, WAKE_SIGNAL);
        return;
    }
    // A script that installed its own handler for the signal (signal.signal(SIGTERM, f))
    // gets that handler, as under python3; otherwise KeyboardInterrupt.
    int raised = SIGINT;
    if (signal > 0 && signal != SIGINT) {
        const PyOS_sighandler_t handler = PyOS_getsig(signal);
        if (handler != SIG_DFL && handler != SIG_IGN && handler != SIG_ERR) raised = signal;
    }
    PyErr_SetInterruptEx(raised);
    pthread_kill(thread_, WAKE_SIGNAL);
}

}  // namespace mycelium::embedded
