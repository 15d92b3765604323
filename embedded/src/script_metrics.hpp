#pragma once
// mycelium_native.metrics: counters, gauges and histograms that scripts define; they are
// served with the host's own metrics (docs/metrics.md).

#include <pybind11/pybind11.h>

#include <memory>

#include <prometheus/registry.h>

namespace mycelium::embedded {

/// The registry scripts' metrics go to: one per process, like the interpreter.
std::shared_ptr<prometheus::Registry> script_metrics_registry();

/// Adds the `metrics` submodule to `module`.
void add_metrics_submodule(pybind11::module_& module);

}  // namespace mycelium::embedded
