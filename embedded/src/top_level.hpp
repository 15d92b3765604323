#pragma once
// The scripts' top level, as the host's watchdog sees it. A script's top level runs on
// the main thread and may never return (`while True: time.sleep(1)`, an asyncio loop, a
// blocking read): the host must tell when it has settled into waiting, so that its
// services start, and must interrupt it at shutdown, as Ctrl-C interrupts `python3
// script.py`.

#include <pthread.h>

#include <atomic>
#include <chrono>

#include <pybind11/pybind11.h>

namespace mycelium::embedded {

/// Thread safety: begin()/end() on the main thread with the GIL held; the rest from the
/// watchdog thread without it.
class TopLevel {
public:
    /// Records the calling (main) thread and installs the wake-up signal's handler. With
    /// `interruptible` (the host owns the signals), makes Python's SIGINT handler the
    /// default one, so interrupt() raises KeyboardInterrupt even inside a blocking call;
    /// the host keeps SIGINT/SIGTERM blocked so the kernel never delivers them here.
    /// Without it, interrupt() raises KeyboardInterrupt when the top level next runs
    /// Python. GIL held.
    explicit TopLevel(bool interruptible);

    /// A script's top level starts / ends on this thread.
    void begin() noexcept;
    void end() noexcept;
    bool running() const noexcept { return running_.load(std::memory_order_acquire); }

    /// One sample, about every 20 ms: true once the top level has been waiting (not
    /// running Python, the GIL free) for SETTLED_SAMPLES samples in a row. Takes the GIL
    /// for a moment.
    bool sample_waiting();

    /// Raises the Python handler of `signal` in the top level (KeyboardInterrupt unless
    /// the script installed its own handler for it) and wakes a blocking call there.
    /// Any thread, no GIL.
    void interrupt(int signal) noexcept;

    /// Consecutive waiting samples that count as settled.
    static constexpr int SETTLED_SAMPLES = 3;

private:
    pthread_t thread_;
    PyThreadState* thread_state_ = nullptr;
    bool interruptible_ = false;
    std::atomic<bool> running_{false};
    PyObject* last_frame_ = nullptr;  ///< the previous sample's frame (strong reference)
    int last_instruction_ = -1;
    int waiting_samples_ = 0;
};

}  // namespace mycelium::embedded
