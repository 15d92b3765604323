// The embedded tests own the one interpreter of their process: it starts before the
// first case and is finalized after the last (pybind11's test_with_catch does the same).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "mycelium/embedded/interpreter.hpp"

int main(int argc, char** argv) {
    mycelium::embedded::Interpreter interpreter;
    doctest::Context context(argc, argv);
    return context.run();
}
