// PYBIND11_EMBEDDED_MODULE(mycelium_native): the module scripts import inside the host.
// Keeps Mycelium's PyO3 API (Runtime, publish, subscribe -> Subscription, close) and adds
// decorators, timers, hooks, asyncio streams, message classes, logging and stop().
// The pure-Python parts (exceptions, logging handler, asyncio glue) are in
// embedded/python/mycelium_native_support.py, compiled in and executed here.

#include <pybind11/embed.h>
#include <pybind11/stl.h>

#include <string_view>

#include "mycelium/log.hpp"
#include "native_module.hpp"
#include "python_runtime.hpp"
#include "script_metrics.hpp"

namespace mycelium::embedded_files {
extern const std::string_view python_support;
}

namespace mycelium::embedded {

namespace {

py::object native_attr(const char* name) { return py::module_::import("mycelium_native").attr(name); }

[[noreturn]] void raise_closed(const std::string& what) {
    PyErr_SetString(native_attr("ClosedError").ptr(), what.c_str());
    throw py::error_already_set();
}

/// A subscription handle: close() stops delivery (idempotent).
class SubscriptionHandle {
public:
    explicit SubscriptionHandle(std::uint64_t token) : token_(token) {}
    void close() {
        if (token_ == 0) return;
        if (auto* runtime = PythonRuntime::current_or_null()) runtime->unsubscribe(token_);
        token_ = 0;
    }
    bool active() const { return token_ != 0 && PythonRuntime::current_or_null() != nullptr; }
    std::uint64_t token() const { return token_; }

private:
    std::uint64_t token_;
};

/// A timer handle: cancel() stops it (idempotent).
class TimerHandle {
public:
    explicit TimerHandle(std::uint64_t id) : id_(id) {}
    void cancel() {
        if (id_ == 0) return;
        if (auto* runtime = PythonRuntime::current_or_null()) runtime->cancel_timer(id_);
        id_ = 0;
    }

private:
    std::uint64_t id_;
};

std::string digest_text(py::handle digest) {
    if (py::isinstance<py::bytes>(digest)) return schema::to_hex(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(PyBytes_AS_STRING(digest.ptr())),
        static_cast<std::size_t>(PyBytes_GET_SIZE(digest.ptr()))));
    if (py::isinstance<py::str>(digest)) return digest.cast<std::string>();
    throw py::type_error("schema_digest must be bytes or a hex string");
}

/// mycelium_native.Runtime: inside the host it attaches to the host's bus. Its
/// subscriptions end with close(); using it afterwards raises ClosedError.
class RuntimeHandle {
public:
    RuntimeHandle(py::object schema_digest, py::object topology_path, py::object service_name) {
        PythonRuntime& runtime = PythonRuntime::current();
        if (!service_name.is_none()) service_name_ = service_name.cast<std::string>();
        if (!schema_digest.is_none()) {
            std::string expected = digest_text(schema_digest);
            for (auto& c : expected) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            const std::string loaded = runtime.registry().digest_hex();
            if (expected != loaded) {
                PyErr_Format(native_attr("SchemaMismatch").ptr(),
                             "schema digest mismatch: the script expects %s, the host loaded %s from %s",
                             expected.c_str(), loaded.c_str(), runtime.registry().source_name().c_str());
                throw py::error_already_set();
            }
        }
        if (!topology_path.is_none()) {
            // Inside the host the host's bus is the node: honoured when this host is the
            // service's node (its mesh routes as the topology says), a ValueError otherwise.
            const std::string path = py::str(topology_path).cast<std::string>();
            const std::optional<std::string> service =
                service_name.is_none() ? std::nullopt : std::optional<std::string>(service_name_);
            try {
                check_runtime_topology(runtime.options().node, path, service);
            } catch (const std::invalid_argument& e) {
                throw py::value_error(e.what());
            }
        }
    }

    void publish(py::handle message) { runtime("publish").publish(message); }

    SubscriptionHandle subscribe(py::object cls, py::object callback) {
        const std::uint64_t token = runtime("subscribe").subscribe(cls, std::move(callback));
        tokens_.push_back(token);
        return SubscriptionHandle(token);
    }

    /// Throws ClosedError when closed; used before handing `self` to Python helpers.
    void check_open(const char* operation) { runtime(operation); }

    void close() {
        if (closed_) return;
        closed_ = true;
        if (auto* runtime = PythonRuntime::current_or_null()) {
            for (auto token : tokens_) runtime->unsubscribe(token);
        }
        tokens_.clear();
    }

    bool closed() const { return closed_; }
    const std::string& service_name() const { return service_name_; }

private:
    PythonRuntime& runtime(const char* operation) {
        if (closed_) raise_closed(std::string("Runtime.") + operation + ": the Runtime is closed");
        return PythonRuntime::current();
    }

    std::vector<std::uint64_t> tokens_;
    std::string service_name_;
    bool closed_ = false;
};

/// The Runtime behind the module-level functions (publish, subscribe, every, ...);
/// a Python object so decorators and streams can hold it like any other Runtime.
py::object default_runtime() {
    py::module_ native = py::module_::import("mycelium_native");
    if (!py::hasattr(native, "_default_runtime")) native.attr("_default_runtime") = native.attr("Runtime")();
    return native.attr("_default_runtime");
}

/// Runtime.subscribe: `subscribe(Cls, cb)` returns a Subscription; `subscribe(Cls)`
/// returns a decorator that subscribes the function and returns it unchanged.
py::object subscribe_or_decorate(py::object self, py::object cls, py::object callback) {
    if (callback.is_none()) {
        return py::cpp_function([self, cls](py::object fn) {
            self.cast<RuntimeHandle&>().subscribe(cls, fn);
            return fn;
        });
    }
    return py::cast(self.cast<RuntimeHandle&>().subscribe(cls, std::move(callback)));
}

py::object every(double seconds, py::object fn) {
    if (fn.is_none()) {
        return py::cpp_function([seconds](py::object f) {
            PythonRuntime::current().add_timer(seconds, f);
            return f;
        });
    }
    return py::cast(TimerHandle(PythonRuntime::current().add_timer(seconds, std::move(fn))));
}

/// Runs `publish` and converts C++ exceptions to a Python error (METH_O functions
/// cannot let exceptions escape).
template <class Publish>
PyObject* publish_returning_none(Publish&& publish) {
    try {
        publish();
    } catch (py::error_already_set& e) {
        e.restore();
        return nullptr;
    } catch (const py::builtin_exception& e) {
        e.set_error();
        return nullptr;
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return nullptr;
    }
    Py_RETURN_NONE;
}

// mycelium_native.publish and Runtime.publish as raw METH_O functions: the hottest call
// a script makes, where pybind11's generic dispatcher would cost as much as the publish.
PyObject* module_publish(PyObject*, PyObject* message) {
    return publish_returning_none([&] { PythonRuntime::current().publish(message); });
}

PyObject* runtime_publish(PyObject* self, PyObject* message) {
    return publish_returning_none([&] { py::handle(self).cast<RuntimeHandle&>().publish(message); });
}

PyMethodDef MODULE_PUBLISH{"publish", module_publish, METH_O, "publish(message): publish on the host's bus."};
PyMethodDef RUNTIME_PUBLISH{"publish", runtime_publish, METH_O, "publish(message): publish on the host's bus."};

void host_log(int level, const std::string& name, const std::string& text, const std::string& script) {
    spdlog::level::level_enum spd = spdlog::level::info;
    if (level >= 50) spd = spdlog::level::critical;
    else if (level >= 40) spd = spdlog::level::err;
    else if (level >= 30) spd = spdlog::level::warn;
    else if (level >= 20) spd = spdlog::level::info;
    else if (level >= 10) spd = spdlog::level::debug;
    else spd = spdlog::level::trace;
    // The root logger's records go under the script's name: `logging.warning()` in
    // model.py logs as py.model; named loggers keep their own name.
    const std::string_view stem =
        std::string_view(script).substr(0, script.size() > 3 && script.ends_with(".py") ? script.size() - 3 : script.size());
    const std::string component = name != "root" ? "py." + name : stem.empty() ? "py" : "py." + std::string(stem);
    const log::ScopedFields fields{{"script", script}};
    log::get(component)->log(spd, "{}", text);
}

}  // namespace

void ensure_native_module_linked() {}

}  // namespace mycelium::embedded

PYBIND11_EMBEDDED_MODULE(mycelium_native, m) {
    using namespace mycelium::embedded;
    m.doc() = "The mycelium-host bus, inside the host: publish and subscribe at function-call latency.";

    m.def("_log", &host_log);
    m.def("_exit_code", [] { return PythonRuntime::current().exit_code(); });
    m.def_submodule("messages", "Message classes built from the host's contracts.");
    add_metrics_submodule(m);

    // The Python half first: exceptions and helpers the C++ half refers to.
    py::exec(py::str(std::string(mycelium::embedded_files::python_support)), m.attr("__dict__"));

    py::class_<SubscriptionHandle>(m, "Subscription", "A subscription; close() stops delivery.")
        .def("close", &SubscriptionHandle::close)
        .def_property_readonly("active", &SubscriptionHandle::active)
        .def("__enter__", [](py::object self) { return self; })
        .def("__exit__", [](SubscriptionHandle& s, py::args) { s.close(); });

    py::class_<TimerHandle>(m, "Timer", "A repeating timer; cancel() stops it.")
        .def("cancel", &TimerHandle::cancel);

    py::class_<RuntimeHandle> runtime_class(m, "Runtime", "The host's bus, as Mycelium's mycelium_native.Runtime.");
    runtime_class
        .def(py::init<py::object, py::object, py::object>(), py::arg("schema_digest") = py::none(),
             py::arg("topology_path") = py::none(), py::arg("service_name") = py::none())
        .def("subscribe", &subscribe_or_decorate, py::arg("message_cls"), py::arg("callback") = py::none())
        .def(
            "stream",
            [](py::object self, py::object cls, std::size_t maxsize) {
                self.cast<RuntimeHandle&>().check_open("stream");
                return native_attr("Stream")(self, cls, maxsize);
            },
            py::arg("message_cls"), py::arg("maxsize") = 65536)
        .def(
            "recv",
            [](py::object self, py::object cls, py::object timeout) {
                self.cast<RuntimeHandle&>().check_open("recv");
                return native_attr("_recv")(self, cls, timeout);
            },
            py::arg("message_cls"), py::arg("timeout") = py::none())
        .def("every", [](RuntimeHandle&, double s, py::object fn) { return every(s, std::move(fn)); },
             py::arg("seconds"), py::arg("fn") = py::none())
        .def("close", &RuntimeHandle::close)
        .def_property_readonly("closed", &RuntimeHandle::closed)
        .def_property_readonly("service_name", &RuntimeHandle::service_name)
        .def("__enter__", [](py::object self) { return self; })
        .def("__exit__", [](RuntimeHandle& r, py::args) { r.close(); });

    m.add_object("publish", py::reinterpret_steal<py::object>(PyCFunction_New(&MODULE_PUBLISH, nullptr)));
    runtime_class.attr("publish") =
        py::reinterpret_steal<py::object>(PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(runtime_class.ptr()),
                                                            &RUNTIME_PUBLISH));
    m.def("subscribe", [](py::object cls, py::object cb) { return subscribe_or_decorate(default_runtime(), cls, cb); },
          py::arg("message_cls"), py::arg("callback") = py::none(),
          "Subscribe a callback (or, without one, return a decorator).");
    m.def("every", &every, py::arg("seconds"), py::arg("fn") = py::none(),
          "Call fn every `seconds` on the dispatcher thread (or, without fn, return a decorator).");
    m.def("on_start", [](py::object fn) { PythonRuntime::current().add_start_hook(fn); return fn; },
          "Run fn once the scripts have loaded (each top level returned or is waiting).");
    m.def("on_stop", [](py::object fn) { PythonRuntime::current().add_stop_hook(fn); return fn; },
          "Run fn at shutdown, after the queues have drained.");
    m.def("stop", [](int code) { PythonRuntime::current().request_stop(code); }, py::arg("exit_code") = 0,
          "Stop the host (after the current callback returns).");
}
