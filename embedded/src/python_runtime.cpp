// What scripts do with the runtime: subscribe, publish, timers, hooks, and how one
// queued message becomes a callback. Messages for Python subscriptions all land in one
// Mailbox; delivery decodes each in C++ (MessageTypes) and calls the callback with the
// GIL already held, so a delivery costs a decode and a call, not a GIL hand-over. The
// thread that drains the mailbox is in dispatcher.cpp.

#include "python_runtime.hpp"

#include <fstream>
#include <sstream>

#include "mycelium/log.hpp"

namespace mycelium::embedded {

namespace {

PythonRuntime* g_current = nullptr;

py::object support_attr(const char* name) { return py::module_::import("mycelium_native").attr(name); }

/// Raises the Python exception for a publish the bus refused: the same for our classes and
/// for any other message object.
[[noreturn]] void raise_publish_error(const schema::MessageSchema& schema, PublishError error) {
    switch (error) {
        case PublishError::QueueFull:
            PyErr_Format(support_attr("QueueFull").ptr(), "publish %s: a subscriber's queue is full", schema.name.c_str());
            break;
        case PublishError::TooLarge:
            PyErr_Format(PyExc_ValueError, "publish %s: %zu bytes are above the bus's payload limit", schema.name.c_str(),
                         schema.size);
            break;
        case PublishError::Closed:
            PyErr_Format(support_attr("ClosedError").ptr(), "publish %s: the bus is shut down", schema.name.c_str());
            break;
    }
    throw py::error_already_set();
}

}  // namespace

const std::shared_ptr<spdlog::logger>& PythonRuntime::python_log() {
    static const auto logger = log::get("python");
    return logger;
}

std::string PythonRuntime::pending_exception_text() {
    py::error_already_set error;
    try {
        py::object format = py::module_::import("traceback").attr("format_exception");
        py::object lines = format(error.type(), error.value(), error.trace());
        std::string text;
        for (py::handle line : lines) text += line.cast<std::string>();
        while (!text.empty() && text.back() == '\n') text.pop_back();
        return text;
    } catch (const std::exception& e) {
        return std::string(error.what()) + " (traceback unavailable: " + e.what() + ")";
    }
}

std::string PythonRuntime::pending_exception_type() {
    PyObject* type = PyErr_Occurred();  // borrowed
    if (type == nullptr || !PyType_Check(type)) return "(no exception)";
    return reinterpret_cast<PyTypeObject*>(type)->tp_name;
}

PythonRuntime::Busy::Busy(std::atomic<unsigned long>& slot)
    : slot_(slot), previous_(slot.load(std::memory_order_relaxed)) {
    // One store per callback, no locked instruction: only this thread writes the slot
    // while it is set (the watchdog reads it).
    slot_.store(PyThread_get_thread_ident(), std::memory_order_release);
}

struct PythonRuntime::PySubscription {
    std::uint16_t type_id = 0;
    std::string type_name;
    const MessageTypes::TypeInfo* native = nullptr;  ///< one of ours: decoded in C++
    py::object cls;                       ///< otherwise: cls.from_bytes(bytes)
    py::object callback;
    TypeStats* stats = nullptr;  ///< owned by PythonRuntime::type_stats_
    Subscription bus_subscription;
};

struct PythonRuntime::Timer {
    std::uint64_t id = 0;
    std::chrono::nanoseconds interval{};
    std::chrono::steady_clock::time_point due;
    py::object fn;
    bool active = true;
};

PythonRuntime::PythonRuntime(Bus& bus, std::shared_ptr<const schema::Registry> registry, RuntimeOptions options)
    : bus_(bus),
      registry_(std::move(registry)),
      options_(options),
      exception_logs_(options_.log_interval),
      decode_logs_(options_.log_interval),
      main_thread_(PyThread_get_thread_ident()) {
    MailboxOptions mailbox_options;
    mailbox_options.capacity = options_.queue_capacity;
    mailbox_options.spin = options_.spin;
    mailbox_options.max_payload = registry_->max_payload();
    std::size_t largest = 0;
    for (const auto& m : registry_->messages()) largest = std::max(largest, m.size);
    // Most messages travel in the cell itself; only the rare large one spills.
    mailbox_options.inline_bytes = std::min<std::size_t>(largest, 256);
    mailbox_ = std::make_shared<Mailbox>(mailbox_options);

    py::object native = py::module_::import("mycelium_native");
    types_ = std::make_unique<MessageTypes>(registry_, native.attr("ValidationError").ptr(),
                                            native.attr("DecodeError").ptr());
    messages_ = py::reinterpret_borrow<py::module_>(native.attr("messages"));
    const auto& digest = registry_->digest();
    native.attr("SCHEMA_DIGEST") = py::bytes(reinterpret_cast<const char*>(digest.data()), digest.size());
    if (!types_->add_to(messages_.ptr())) throw py::error_already_set();

    // Last, once nothing above can throw: the policy points at this object.
    wait_policy_.on_full = &PythonRuntime::on_mailbox_full;
    wait_policy_.before_park = &PythonRuntime::release_gil_to_park;
    wait_policy_.after_park = &PythonRuntime::retake_gil_after_park;
    wait_policy_.context = this;
    bus_.set_wait_policy(&wait_policy_);
    consumer_thread_ = PyThread_get_thread_ident();  // until the dispatcher starts
    g_current = this;
}

PythonRuntime::~PythonRuntime() {
    if (dispatcher_.joinable()) stop_dispatcher(std::chrono::steady_clock::now());
    close_all();
    if (g_current == this) g_current = nullptr;
    bus_.set_wait_policy(nullptr);
}

PythonRuntime* PythonRuntime::current_or_null() noexcept { return g_current; }

PythonRuntime& PythonRuntime::current() {
    if (g_current == nullptr) {
        PyErr_SetString(support_attr("ClosedError").ptr(), "the host's Python runtime is not running");
        throw py::error_already_set();
    }
    return *g_current;
}

// ---------------------------------------------------------------- subscriptions

std::uint64_t PythonRuntime::subscribe(py::handle cls, py::object callback) {
    if (!PyCallable_Check(callback.ptr())) throw py::type_error("subscribe: the callback is not callable");
    auto sub = std::make_unique<PySubscription>();
    sub->callback = std::move(callback);
    if (PyType_Check(cls.ptr())) {
        if (const auto* info = types_->info_for(reinterpret_cast<PyTypeObject*>(cls.ptr()))) {
            const auto& schema = MessageTypes::schema_of(*info);
            sub->native = info;
            sub->type_id = schema.type_id;
            sub->type_name = schema.name;
        }
    }
    if (sub->native == nullptr) {
        if (!py::hasattr(cls, "TYPE_ID") || !py::hasattr(cls, "from_bytes")) {
            const std::string text = "subscribe: expected a message class with TYPE_ID and from_bytes, got " +
                                     py::repr(cls).cast<std::string>();
            PyErr_SetString(support_attr("NotAMessageError").ptr(), text.c_str());
            throw py::error_already_set();
        }
        sub->type_id = cls.attr("TYPE_ID").cast<std::uint16_t>();
        const auto* schema = registry_->find(sub->type_id);
        if (schema == nullptr) {
            throw py::value_error("subscribe: type id " + std::to_string(sub->type_id) +
                                  " is not in the host's contracts (" + registry_->source_name() + ")");
        }
        sub->type_name = schema->name;
        sub->cls = py::reinterpret_borrow<py::object>(cls);
    }
    {
        std::lock_guard lock(type_stats_mutex_);
        auto& stats = type_stats_[sub->type_id];
        if (!stats) stats = std::make_unique<TypeStats>();
        sub->stats = stats.get();
    }
    const std::uint64_t token = next_token_++;
    sub->bus_subscription = bus_.subscribe_mailbox(sub->type_id, mailbox_, token, QueuePolicy::Block);
    subscriptions_.emplace(token, std::move(sub));
    return token;
}

void PythonRuntime::unsubscribe(std::uint64_t token) {
    auto it = subscriptions_.find(token);
    if (it == subscriptions_.end()) return;
    std::unique_ptr<PySubscription> sub = std::move(it->second);
    subscriptions_.erase(it);
    {
        // Closing waits for publishes in flight; none of them needs the GIL.
        py::gil_scoped_release release;
        sub->bus_subscription.close();
    }
}

// ---------------------------------------------------------------- publish

void PythonRuntime::publish(py::handle message) {
    // From the stop on, only the host's own threads publish (callbacks, on_stop hooks, the
    // top level's finally blocks): a script's own thread would keep the drain from ending,
    // and what it published after the drain would go nowhere.
    if (stop_requested()) {
        const unsigned long self = PyThread_get_thread_ident();
        if (self != main_thread_ && self != consumer_thread_.load(std::memory_order_acquire)) {
            const std::string_view type_name = Py_TYPE(message.ptr())->tp_name;  // module.Class
            const std::string name(type_name.substr(type_name.rfind('.') + 1));
            PyErr_Format(support_attr("ClosedError").ptr(), "publish %s: the host is shutting down", name.c_str());
            throw py::error_already_set();
        }
    }
    PyTypeObject* type = Py_TYPE(message.ptr());
    if (const auto* info = types_->info_for(type)) {
        const schema::MessageSchema* schema = &MessageTypes::schema_of(*info);
        // Our classes encode in C++ straight into a stack buffer for small messages.
        std::byte small[512];
        std::vector<std::byte> large;
        std::span<std::byte> out(small, schema->size);
        if (schema->size > sizeof small) {
            large.resize(schema->size);
            out = large;
        }
        if (!types_->encode(*info, message.ptr(), out)) throw py::error_already_set();
        const auto result = bus_.publish(schema->type_id, out);
        if (!result) raise_publish_error(*schema, result.error());
        return;
    }

    // Any other message object: TYPE_ID and to_bytes(), as Mycelium's generated classes.
    if (!py::hasattr(message, "TYPE_ID") || !py::hasattr(message, "to_bytes")) {
        const std::string text =
            std::string("publish: expected a message with TYPE_ID and to_bytes(), got ") + type->tp_name;
        PyErr_SetString(support_attr("NotAMessageError").ptr(), text.c_str());
        throw py::error_already_set();
    }
    const auto type_id = message.attr("TYPE_ID").cast<std::uint16_t>();
    const auto* schema = registry_->find(type_id);
    if (schema == nullptr) {
        throw py::value_error("publish: type id " + std::to_string(type_id) + " is not in the host's contracts (" +
                              registry_->source_name() + ")");
    }
    py::object bytes = message.attr("to_bytes")();
    Py_buffer view;
    if (PyObject_GetBuffer(bytes.ptr(), &view, PyBUF_SIMPLE) != 0) throw py::error_already_set();
    const std::span<const std::byte> payload(static_cast<const std::byte*>(view.buf),
                                             static_cast<std::size_t>(view.len));
    auto checked = registry_->validate(*schema, payload);
    if (!checked) {
        PyBuffer_Release(&view);
        const auto& f = checked.error();
        py::object error = support_attr("ValidationError")(f.message, f.field, f.rule, f.detail);
        PyErr_SetObject(support_attr("ValidationError").ptr(), error.ptr());
        throw py::error_already_set();
    }
    const auto result = bus_.publish(type_id, payload);
    PyBuffer_Release(&view);
    if (!result) raise_publish_error(*schema, result.error());
}

// ---------------------------------------------------------------- timers and hooks

std::uint64_t PythonRuntime::add_timer(double seconds, py::object fn) {
    if (!(seconds > 0)) throw py::value_error("every: the interval must be a positive number of seconds");
    if (!PyCallable_Check(fn.ptr())) throw py::type_error("every: the function is not callable");
    auto timer = std::make_unique<Timer>();
    timer->id = next_timer_id_++;
    timer->interval = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
    timer->due = std::chrono::steady_clock::now() + timer->interval;
    timer->fn = std::move(fn);
    const auto id = timer->id;
    timers_.push_back(std::move(timer));
    mailbox_->wake();  // the dispatcher re-computes how long it may park
    return id;
}

void PythonRuntime::cancel_timer(std::uint64_t id) {
    for (auto& t : timers_) {
        if (t->id == id) t->active = false;  // removed after the current run of due timers
    }
}

void PythonRuntime::add_start_hook(py::object fn) { start_hooks_.push_back(std::move(fn)); }
void PythonRuntime::add_stop_hook(py::object fn) { stop_hooks_.push_back(std::move(fn)); }

std::optional<std::chrono::steady_clock::time_point> PythonRuntime::next_timer_deadline() const {
    std::optional<std::chrono::steady_clock::time_point> next;
    for (const auto& t : timers_) {
        if (t->active && (!next || t->due < *next)) next = t->due;
    }
    return next;
}

void PythonRuntime::run_due_timers() {
    const auto now = std::chrono::steady_clock::now();
    // Index loop: a timer callback may add timers.
    for (std::size_t i = 0; i < timers_.size(); ++i) {
        Timer& t = *timers_[i];
        if (!t.active || t.due > now) continue;
        // A late timer runs once and resumes its cadence; it does not burst to catch up.
        t.due += t.interval;
        if (t.due <= now) t.due = now + t.interval;
        py::object fn = t.fn;
        Busy busy(busy_thread_);
        PyObject* result = PyObject_CallNoArgs(fn.ptr());
        calls_returned_.fetch_add(1, std::memory_order_relaxed);
        if (result == nullptr) {
            report_exception("timer " + py::repr(fn).cast<std::string>());
        } else {
            Py_DECREF(result);
        }
    }
    std::erase_if(timers_, [](const std::unique_ptr<Timer>& t) { return !t->active; });
}

// ---------------------------------------------------------------- errors

void PythonRuntime::report_exception(const std::string& where) {
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) && stop_requested()) {
        PyErr_Clear();
        python_log()->warn("{} interrupted by shutdown", where);
        return;
    }
    callback_errors_.fetch_add(1, std::memory_order_relaxed);
    // The first of each (callback, exception type) is logged whole, traceback and all; its
    // repeats within --log-interval are only counted (a callback raising on every message
    // once wrote a traceback per message), and the next line says how many.
    if (const auto held_back = exception_logs_.admit(where + " / " + pending_exception_type())) {
        python_log()->error("{} raised{}:\n{}", where, log::held_back_note(*held_back), pending_exception_text());
    } else {
        PyErr_Clear();  // not even formatted
    }
    if (options_.fail_fast) {
        python_log()->error("--fail-fast: stopping the host");
        request_stop(1);
    }
}

// ---------------------------------------------------------------- delivery

void PythonRuntime::deliver(const MailboxView& view) {
    const auto it = subscriptions_.find(view.token);
    if (it == subscriptions_.end()) return;  // unsubscribed while the message was queued
    PySubscription& sub = *it->second;

    PyObject* message = nullptr;
    if (sub.native != nullptr) {
        message = types_->decode(*sub.native, view.payload);
    } else {
        PyObject* bytes = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(view.payload.data()),
                                                    static_cast<Py_ssize_t>(view.payload.size()));
        if (bytes != nullptr) {
            message = PyObject_CallMethod(sub.cls.ptr(), "from_bytes", "O", bytes);
            Py_DECREF(bytes);
        }
    }
    // Single writer (this thread): relaxed load and store, not a locked add.
    const auto bump = [](std::atomic<std::uint64_t>& c) {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    };
    // Held across the callback: it may unsubscribe itself, destroying `sub`.
    TypeStats& stats = *sub.stats;
    if (message == nullptr) {
        decode_errors_.fetch_add(1, std::memory_order_relaxed);
        bump(stats.decode_errors);
        const log::ScopedFields fields{{"type", sub.type_name}};
        if (const auto held_back = decode_logs_.admit(sub.type_name + " / " + pending_exception_type())) {
            python_log()->warn("dropped a {} that did not decode{}: {}", sub.type_name, log::held_back_note(*held_back),
                               pending_exception_text());
        } else {
            PyErr_Clear();
        }
        return;
    }

    // Hold the callback: it may unsubscribe itself, destroying `sub`.
    py::object callback = sub.callback;
    const std::uint16_t type_id = sub.type_id;
    // Time one callback in 16: two clock reads per message would cost more than a
    // small callback, and a sample is enough for the latency percentiles.
    const bool timed = (timing_counter_++ & 15) == 0;
    const auto start = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    PyObject* result;
    {
        Busy busy(busy_thread_);
        result = PyObject_CallOneArg(callback.ptr(), message);
    }
    if (timed) {
        const auto elapsed = std::chrono::steady_clock::now() - start;
        const auto ns =
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
        callback_latency_.record(ns);
        stats.duration.record(ns);
    }
    Py_DECREF(message);
    if (result == nullptr) {
        bump(stats.errors);
        const schema::MessageSchema* schema = registry_->find(type_id);
        const log::ScopedFields fields{{"type", schema ? std::string_view(schema->name) : std::string_view()}};
        report_exception("callback " + py::repr(callback).cast<std::string>() + " for " +
                         (schema ? schema->name : std::to_string(type_id)));
        return;
    }
    Py_DECREF(result);
    bump(delivered_);
    bump(stats.callbacks);
}

std::size_t PythonRuntime::deliver_batch(std::size_t max) {
    // Claim small runs: cells stay occupied until visited, and a callback that publishes
    // into this full mailbox can only make room from cells nobody has claimed yet.
    constexpr std::size_t CLAIM = 32;
    ++dispatch_depth_;
    std::size_t total = 0;
    try {
        while (total < max) {
            const std::size_t n = mailbox_->drain(
                [this](const MailboxView& view) {
                    try {
                        deliver(view);
                    } catch (const std::exception& e) {
                        // Only our own bookkeeping can throw here (a callback's exception
                        // is reported inside deliver); one bad message must not stop the loop.
                        PyErr_Clear();
                        if (const auto held_back = exception_logs_.admit("delivering a message failed"))
                            python_log()->error("delivering a message failed: {}{}", e.what(),
                                                log::held_back_note(*held_back));
                    }
                },
                std::min(CLAIM, max - total));
            total += n;
            if (n == 0) break;
        }
    } catch (...) {
        --dispatch_depth_;
        throw;
    }
    --dispatch_depth_;
    return total;
}

// ---------------------------------------------------------------- hooks

void PythonRuntime::run_start_hooks() {
    auto hooks = std::move(start_hooks_);
    start_hooks_.clear();
    for (auto& hook : hooks) {
        Busy busy(busy_thread_);
        PyObject* r = PyObject_CallNoArgs(hook.ptr());
        calls_returned_.fetch_add(1, std::memory_order_relaxed);
        if (r != nullptr) {
            Py_DECREF(r);
        } else {
            report_exception("on_start hook " + py::repr(hook).cast<std::string>());
        }
    }
}

void PythonRuntime::run_stop_hooks() {
    auto hooks = std::move(stop_hooks_);
    stop_hooks_.clear();
    for (auto& hook : hooks) {
        Busy busy(busy_thread_);
        PyObject* r = PyObject_CallNoArgs(hook.ptr());
        calls_returned_.fetch_add(1, std::memory_order_relaxed);
        if (r != nullptr) {
            Py_DECREF(r);
        } else {
            report_exception("on_stop hook " + py::repr(hook).cast<std::string>());
        }
    }
}

std::map<std::uint16_t, std::uint64_t> PythonRuntime::discard_queued() {
    std::map<std::uint16_t, std::uint64_t> queued;
    while (mailbox_->drain(
               [&](const MailboxView& view) {
                   const auto it = subscriptions_.find(view.token);
                   if (it != subscriptions_.end()) ++queued[it->second->type_id];
               },
               1024) > 0) {
    }
    return queued;
}

void PythonRuntime::close_all() {
    while (!subscriptions_.empty()) unsubscribe(subscriptions_.begin()->first);
    timers_.clear();
    start_hooks_.clear();
    stop_hooks_.clear();
}

RuntimeStats PythonRuntime::stats() const noexcept {
    return RuntimeStats{delivered_.load(), callback_errors_.load(), decode_errors_.load()};
}

void PythonRuntime::for_each_type_stats(const std::function<void(std::uint16_t, const TypeStats&)>& visit) const {
    std::lock_guard lock(type_stats_mutex_);
    for (const auto& [type_id, stats] : type_stats_) visit(type_id, *stats);
}

std::size_t PythonRuntime::queue_depth() const noexcept { return mailbox_->size_approx(); }

// ---------------------------------------------------------------- scripts

void PythonRuntime::run_script(const std::filesystem::path& path) {
    const std::filesystem::path absolute = std::filesystem::absolute(path);
    std::ifstream in(absolute, std::ios::binary);
    if (!in) throw ScriptError("cannot read the script '" + path.string() + "'");
    std::ostringstream source;
    source << in.rdbuf();

    py::module_ sys = py::module_::import("sys");
    py::list sys_path = sys.attr("path");
    const std::string folder = absolute.parent_path().string();
    if (!sys_path.contains(folder)) sys_path.insert(0, folder);

    // Each script gets its own module named __main__, so `if __name__ == "__main__":`
    // blocks run as under `python3 script.py`; the module stays alive with the host.
    py::module_ types = py::module_::import("types");
    py::object module = types.attr("ModuleType")("__main__");
    module.attr("__file__") = absolute.string();
    module.attr("__builtins__") = py::module_::import("builtins");
    sys.attr("modules")["__main__"] = module;
    script_modules_.push_back(module);

    python_log()->info("running {}", path.string());
    PyObject* code = Py_CompileString(source.str().c_str(), absolute.string().c_str(), Py_file_input);
    PyObject* result = code != nullptr ? PyEval_EvalCode(code, module.attr("__dict__").ptr(),
                                                         module.attr("__dict__").ptr())
                                       : nullptr;
    Py_XDECREF(code);
    if (result != nullptr) {
        Py_DECREF(result);
        return;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
        // sys.exit() in a script's top level: honour its status as python3 would.
        py::error_already_set exit_error;
        int status = 0;
        py::object code_obj = exit_error.value().attr("code");
        if (!code_obj.is_none()) status = py::isinstance<py::int_>(code_obj) ? code_obj.cast<int>() : 1;
        python_log()->info("{} called sys.exit({})", path.string(), status);
        request_stop(status);
        return;
    }
    if (stop_requested() && PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        PyErr_Clear();
        python_log()->warn("{} interrupted by shutdown", path.string());
        return;
    }
    const std::string traceback = pending_exception_text();
    python_log()->error("{} failed at import:\n{}", path.string(), traceback);
    throw ScriptError(path.string() + " failed at import");
}

}  // namespace mycelium::embedded
