#include <doctest/doctest.h>
#include <pybind11/pybind11.h>

#include "mycelium/embedded/interpreter.hpp"

namespace py = pybind11;

TEST_SUITE("embedded.interpreter") {

TEST_CASE("sys.executable is the system interpreter whose libpython is embedded") {
    const auto executable = py::module_::import("sys").attr("executable").cast<std::string>();
    CHECK(executable == mycelium::embedded::Interpreter::system_executable());
    CHECK(executable.find("pyenv") == std::string::npos);
    const auto version = py::module_::import("sys").attr("version_info");
    CHECK(version.attr("major").cast<int>() == 3);
    CHECK(version.attr("minor").cast<int>() == 11);
}

TEST_CASE("numpy from Debian's python3-numpy imports") {
    CHECK_NOTHROW(py::module_::import("numpy"));
}

}  // TEST_SUITE
