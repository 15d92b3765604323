// The embedded tests own the one interpreter of their process: it starts before the
// first case and is finalized after the last (pybind11's test_with_catch does the same).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "mycelium/embedded/interpreter.hpp"

#if defined(MYC_SANITIZE_ADDRESS)
// LeakSanitizer reports CPython's own interpreter-lifetime allocations as leaks
// (the Debian interpreter, not the one first on PATH); this also covers doctest's test discovery at build time.
extern "C" __attribute__((visibility("default"))) const char* __asan_default_options() { return "detect_leaks=0"; }
#endif

int main(int argc, char** argv) {
    mycelium::embedded::Interpreter interpreter;
    doctest::Context context(argc, argv);
    return context.run();
}
