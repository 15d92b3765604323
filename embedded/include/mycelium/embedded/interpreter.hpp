#pragma once
/// The one CPython interpreter of a host process. Construct it first in main() and
/// destroy it last: everything holding Python objects must die before it.
/// Thread safety: construct and destroy on the main thread only; one instance per process.

#include <memory>
#include <string>

namespace mycelium::embedded {

class Interpreter {
public:
    /// Starts CPython with sys.executable set to the system interpreter whose libpython is
    /// embedded. Throws std::runtime_error when CPython cannot start.
    Interpreter();
    ~Interpreter();
    Interpreter(const Interpreter&) = delete;
    Interpreter& operator=(const Interpreter&) = delete;

    /// The interpreter that sys.executable names (e.g. /usr/bin/python3).
    static std::string system_executable();

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace mycelium::embedded
