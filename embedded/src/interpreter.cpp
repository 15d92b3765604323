// Interpreter start-up. A pyenv Python is first on PATH on our machines, and CPython
// derives sys.executable from PATH when it is embedded; scripts that start subprocesses
// with sys.executable would then run a different Python without numpy. We name the
// system interpreter explicitly in the PyConfig instead.

#include "mycelium/embedded/interpreter.hpp"

#include <pybind11/embed.h>

#include <stdexcept>

namespace py = pybind11;

namespace mycelium::embedded {

struct Interpreter::State {
    explicit State(PyConfig* config) : guard(config, 0, nullptr, false) {}
    py::scoped_interpreter guard;
};

std::string Interpreter::system_executable() { return MYCELIUM_PYTHON_EXECUTABLE; }

Interpreter::Interpreter() {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    // The host owns SIGINT/SIGTERM; Python must not install its own handlers.
    config.install_signal_handlers = 0;
    const std::string executable = system_executable();
    PyStatus status = PyConfig_SetBytesString(&config, &config.executable, executable.c_str());
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesString(&config, &config.program_name, executable.c_str());
    }
    if (PyStatus_Exception(status)) {
        PyConfig_Clear(&config);
        throw std::runtime_error("cannot configure the embedded Python interpreter");
    }
    // scoped_interpreter takes ownership of the config and clears it.
    state_ = std::make_unique<State>(&config);
}

Interpreter::~Interpreter() = default;

}  // namespace mycelium::embedded
