// Host: wires the registry, the bus, the interpreter and the Python runtime together,
// and owns start-up and shutdown. A watchdog thread turns SIGINT/SIGTERM and --duration
// into a stop request, sees when a top level that never returns has settled into
// waiting (so the host's services start), interrupts the top level at a stop as Ctrl-C
// would, interrupts a callback that does not return, and as a last resort ends the
// process when the shutdown timeout passes, so the host never hangs on exit.

#include "mycelium/host.hpp"

#include <pybind11/pybind11.h>

#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <iterator>
#include <map>
#include <thread>

#include "mycelium/embedded/interpreter.hpp"
#include "mycelium/log.hpp"
#include "mycelium/metrics.hpp"
#include "native_module.hpp"
#include "python_runtime.hpp"
#include "runtime_metrics.hpp"
#include "script_metrics.hpp"
#include "top_level.hpp"

namespace mycelium::embedded_files {
extern const std::string_view demo_contracts;
}

namespace mycelium {

std::string_view bundled_contracts() noexcept { return embedded_files::demo_contracts; }

namespace {

std::shared_ptr<const schema::Registry> load_registry(const HostOptions& options) {
    schema::LoadOptions load;
    load.strict = options.strict_contracts;
    auto registry = options.contracts
                        ? std::make_shared<schema::Registry>(schema::Registry::load_file(*options.contracts, load))
                        : std::make_shared<schema::Registry>(
                              schema::Registry::load_string(bundled_contracts(), "contracts.yaml (bundled)", load));
    for (const schema::SchemaWarning& warning : registry->warnings()) log::get("contracts")->warn("{}", warning.text);
    return registry;
}

int python_level_of(spdlog::level::level_enum level) {
    switch (level) {
        case spdlog::level::trace:
        case spdlog::level::debug: return 10;
        case spdlog::level::info: return 20;
        case spdlog::level::warn: return 30;
        case spdlog::level::err: return 40;
        default: return 50;
    }
}

}  // namespace

struct Host::Impl {
    explicit Impl(HostOptions opts) : options(std::move(opts)), registry(load_registry(options)) {}

    HostOptions options;
    std::shared_ptr<const schema::Registry> registry;
    Bus bus{BusOptions{registry->max_payload()}};
    std::unique_ptr<embedded::Interpreter> interpreter;
    std::unique_ptr<embedded::PythonRuntime> runtime;
    std::unique_ptr<embedded::TopLevel> top_level;
    std::vector<std::function<void()>> started;
    std::vector<std::function<void()>> stopping;
    std::vector<std::function<void(std::chrono::steady_clock::time_point)>> drained;
    std::map<std::uint16_t, std::uint64_t> undelivered;  ///< by type id, counted at shutdown
    std::shared_ptr<spdlog::logger> log = log::get("host");

    sigset_t signals{};
    sigset_t previous_mask{};
    bool signals_blocked = false;

    // Watchdog state.
    std::atomic<bool> run_finished{false};
    std::atomic<int> stop_signal{0};  ///< the signal that asked for the stop, if one did
    std::thread watchdog;

    void watch(std::chrono::steady_clock::time_point run_started);
    void interrupt_busy_python();
    void mark_loaded();
    void shut_down();
    /// Logs what the shutdown could not deliver, per type; false when there was some.
    bool report_undelivered();
};

Host::Host(HostOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
    auto& self = *impl_;
    if (self.options.handle_signals) {
        // Block before any thread exists, so every thread inherits the mask and only
        // the watchdog receives SIGINT/SIGTERM (with sigtimedwait).
        sigemptyset(&self.signals);
        sigaddset(&self.signals, SIGINT);
        sigaddset(&self.signals, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &self.signals, &self.previous_mask);
        self.signals_blocked = true;
    }
    embedded::ensure_native_module_linked();
    self.interpreter = std::make_unique<embedded::Interpreter>();
    {
        py::list sys_path = py::module_::import("sys").attr("path");
        for (const auto& folder : self.options.python_path) sys_path.append(folder.string());
    }
    embedded::RuntimeOptions runtime_options;
    runtime_options.queue_capacity = self.options.python_queue_capacity;
    runtime_options.spin = self.options.spin;
    runtime_options.fail_fast = self.options.fail_fast;
    runtime_options.log_interval = self.options.log_interval;
    if (self.options.topology)
        runtime_options.node = embedded::HostNode{*self.options.topology, self.options.node};
    self.runtime = std::make_unique<embedded::PythonRuntime>(self.bus, self.registry, runtime_options);
    self.top_level = std::make_unique<embedded::TopLevel>(self.options.handle_signals);
    py::module_::import("mycelium_native").attr("_install_log_handler")(python_level_of(log::get("py")->level()));
}

Host::~Host() {
    auto& self = *impl_;
    self.top_level.reset();
    self.runtime.reset();      // Python objects first, with the interpreter alive
    self.interpreter.reset();  // then CPython itself
    self.bus.shutdown();
    if (self.signals_blocked) pthread_sigmask(SIG_SETMASK, &self.previous_mask, nullptr);
}

Bus& Host::bus() noexcept { return impl_->bus; }
const Bus& Host::bus() const noexcept { return impl_->bus; }
const schema::Registry& Host::registry() const noexcept { return *impl_->registry; }

Result<void, PublishRefusal> Host::publish(std::uint16_t type_id, std::span<const std::byte> payload) {
    const schema::Registry& contracts = *impl_->registry;
    const schema::MessageSchema* schema = contracts.find(type_id);
    if (schema == nullptr) {
        return Err{PublishRefusal{schema::ValidationFailure{std::to_string(type_id), "", "type",
                                                            "is not a type id in " + contracts.source_name()}}};
    }
    if (auto valid = contracts.validate(*schema, payload); !valid) return Err{PublishRefusal{std::move(valid.error())}};
    if (auto published = impl_->bus.publish(type_id, payload); !published)
        return Err{PublishRefusal{std::nullopt, published.error()}};
    return {};
}

std::string PublishRefusal::text() const {
    if (invalid) return invalid->text();
    switch (bus_error) {
        case PublishError::QueueFull: return "a subscriber's queue is full";
        case PublishError::TooLarge: return "the payload is larger than the bus accepts";
        case PublishError::Closed: break;
    }
    return "the bus is shut down";
}
void Host::on_started(std::function<void()> fn) { impl_->started.push_back(std::move(fn)); }
void Host::on_stopping(std::function<void()> fn) { impl_->stopping.push_back(std::move(fn)); }
void Host::on_drained(std::function<void(std::chrono::steady_clock::time_point)> fn) {
    impl_->drained.push_back(std::move(fn));
}
void Host::count_undelivered(std::uint16_t type_id, std::uint64_t n) {
    if (n != 0) impl_->undelivered[type_id] += n;
}
void Host::stop(int exit_code) noexcept { impl_->runtime->request_stop(exit_code); }
std::shared_ptr<prometheus::Collectable> Host::metrics() const {
    std::vector<std::shared_ptr<prometheus::Collectable>> parts{
        metrics::bus_collector(impl_->bus, *impl_->registry),
        embedded::runtime_collector(*impl_->runtime, *impl_->registry), embedded::script_metrics_registry()};
    return metrics::from_function([parts = std::move(parts)] {
        std::vector<prometheus::MetricFamily> out;
        for (const auto& part : parts) {
            auto families = part->Collect();
            std::move(families.begin(), families.end(), std::back_inserter(out));
        }
        return out;
    });
}

const LatencyHistogram& Host::callback_latency() const noexcept { return impl_->runtime->callback_latency(); }

HostStats Host::stats() const noexcept {
    const auto s = impl_->runtime->stats();
    return HostStats{s.delivered, s.callback_errors, s.decode_errors};
}

void Host::Impl::interrupt_busy_python() {
    // Taking the GIL from here waits at most one switch interval (5 ms) for the
    // running thread to hand it over; the exception then fires in its running code.
    PyGILState_STATE gil = PyGILState_Ensure();
    if (const unsigned long busy = runtime->busy_thread(); busy != 0) {
        PyThreadState_SetAsyncExc(busy, PyExc_KeyboardInterrupt);
    }
    PyGILState_Release(gil);
}

void Host::Impl::mark_loaded() {
    // The dispatcher runs the scripts' on_start hooks, then the host's own start
    // functions (listeners announced, workers and feeds started).
    runtime->mark_loaded([this] {
        for (auto& fn : started) fn();
    });
}

void Host::Impl::watch(std::chrono::steady_clock::time_point run_started) {
    std::optional<std::chrono::steady_clock::time_point> stop_seen;
    bool top_level_interrupted = false;
    // A drain that delivers keeps going; a callback that does not return for a quarter of
    // the shutdown timeout is stuck, and is interrupted (once) after half of it.
    std::uint64_t progress = runtime->progress();
    auto progress_at = std::chrono::steady_clock::now();
    bool interrupted = false;
    while (!run_finished.load()) {
        if (signals_blocked) {
            timespec slice{0, 20'000'000};
            const int signal = sigtimedwait(&signals, nullptr, &slice);
            if (signal > 0) {
                log->info("received {}, stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
                stop_signal = signal;
                top_level_interrupted = false;  // a second Ctrl-C interrupts again
                runtime->request_stop(HOST_EXIT_OK);
            }
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        const auto now = std::chrono::steady_clock::now();
        if (options.duration && now - run_started >= *options.duration && !runtime->stop_requested()) {
            runtime->request_stop(HOST_EXIT_OK);
        }
        if (!runtime->stop_requested()) {
            if (!runtime->loaded() && top_level->sample_waiting()) {
                log->info("the scripts' top level is waiting; starting the host's services");
                mark_loaded();
            }
            continue;
        }
        // A top level still running at a stop is interrupted at once, as Ctrl-C
        // interrupts `python3 script.py`: its `except KeyboardInterrupt:` and `finally:`
        // blocks run, and shutdown goes on when it returns.
        if (!top_level_interrupted && top_level->running()) {
            top_level_interrupted = true;
            top_level->interrupt(stop_signal.load());
        }
        if (!stop_seen) stop_seen = now;
        const auto waited = now - *stop_seen;
        if (const auto p = runtime->progress(); p != progress) {
            progress = p;
            progress_at = now;
            interrupted = false;
        }
        if (!interrupted && waited >= options.shutdown_timeout / 2 && now - progress_at >= options.shutdown_timeout / 4 &&
            runtime->busy_thread() != 0) {
            log->warn("Python code has not returned for {} ms, {} ms after the stop request; interrupting it",
                      std::chrono::duration_cast<std::chrono::milliseconds>(now - progress_at).count(),
                      std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
            interrupted = true;
            interrupt_busy_python();
        }
        if (waited >= options.shutdown_timeout) {
            log->critical("shutdown did not finish within {} ms; exiting now", options.shutdown_timeout.count());
            spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
            std::_Exit(HOST_EXIT_FAILURE);
        }
    }
}

int Host::run() {
    auto& self = *impl_;
    auto& runtime = *self.runtime;
    const auto started = std::chrono::steady_clock::now();
    self.run_finished = false;
    self.watchdog = std::thread([&self, started] { self.watch(started); });

    // Callbacks run from the first subscription on, while the top level runs.
    runtime.start_dispatcher();
    int exit_code = HOST_EXIT_OK;
    try {
        for (std::size_t i = 0; i < self.options.scripts.size(); ++i) {
            if (runtime.stop_requested()) break;
            if (i > 0 && runtime.loaded()) {
                self.log->warn("{} ran only after {}'s top level returned", self.options.scripts[i].string(),
                               self.options.scripts[i - 1].string());
            }
            self.top_level->begin();
            try {
                runtime.run_script(self.options.scripts[i]);
            } catch (...) {
                self.top_level->end();
                throw;
            }
            self.top_level->end();
        }
    } catch (const embedded::ScriptError&) {
        exit_code = HOST_EXIT_FAILURE;
        runtime.request_stop(HOST_EXIT_FAILURE);
    }
    if (!runtime.stop_requested()) self.mark_loaded();
    runtime.wait_for_stop();
    self.shut_down();

    self.run_finished = true;
    self.watchdog.join();
    if (exit_code == HOST_EXIT_OK) exit_code = runtime.exit_code();
    return exit_code;
}

void Host::Impl::shut_down() {
    // Stop intake first: producers stop (workers, then links stop reading) while the
    // dispatcher keeps delivering, since a producer blocked on a full Python queue needs
    // it to drain.
    const auto stop_at = std::chrono::steady_clock::now();
    {
        py::gil_scoped_release release;
        for (auto& fn : stopping) fn();
    }
    // What is left of the shutdown's time (docs/reliability.md, "Shutdown"): half for the
    // Python drain, up to a tenth more (a second at most) for the links' queues, the rest
    // for the interpreter and the summary. The watchdog ends the process at the full
    // timeout whatever happens.
    const auto now = std::chrono::steady_clock::now();
    const auto left = std::max(std::chrono::steady_clock::duration::zero(), stop_at + options.shutdown_timeout - now);
    const auto drain_deadline = now + left / 2;
    const auto flush_deadline = drain_deadline + std::min<std::chrono::steady_clock::duration>(left / 10, std::chrono::seconds(1));
    runtime->stop_dispatcher(drain_deadline);
    runtime->run_stop_hooks();
    runtime->drain(drain_deadline);  // what the stop hooks published to the scripts
    for (const auto& [type_id, n] : runtime->discard_queued()) undelivered[type_id] += n;
    runtime->close_all();
    {
        const auto join_for = std::chrono::duration<double>(options.shutdown_timeout) / 8;
        try {
            py::module_::import("mycelium_native").attr("_join_script_threads")(join_for.count());
        } catch (const py::error_already_set& e) {
            log->warn("joining the scripts' threads failed: {}", e.what());
        }
    }

    // The scripts' print() output is block-buffered when stdout is a pipe; flush it now so
    // it comes before anything the host prints after run() (the summary), in order.
    try {
        py::module_ sys = py::module_::import("sys");
        for (const char* stream : {"stdout", "stderr"}) {
            py::object s = sys.attr(stream);
            if (!s.is_none()) s.attr("flush")();
        }
    } catch (const py::error_already_set& e) {
        log->warn("flushing the scripts' output failed: {}", e.what());
    }
    {
        py::gil_scoped_release release;
        for (auto& fn : drained) fn(flush_deadline);
    }
    if (!report_undelivered()) runtime->request_stop(HOST_EXIT_FAILURE);
}

bool Host::Impl::report_undelivered() {
    std::uint64_t total = 0;
    std::string per_type;
    for (const auto& [type_id, n] : undelivered) {
        total += n;
        const schema::MessageSchema* schema = registry->find(type_id);
        per_type += fmt::format("{}{} {}", per_type.empty() ? "" : ", ",
                                schema != nullptr ? schema->name : std::to_string(type_id), n);
    }
    if (total == 0) return true;
    log->error("shutdown timeout: {} accepted message{} not delivered: {}", total, total == 1 ? "" : "s", per_type);
    return false;
}

}  // namespace mycelium
