#pragma once
// The Python dispatcher's counters as Prometheus metrics (docs/metrics.md).

#include <memory>

#include <prometheus/collectable.h>

#include "mycelium/schema.hpp"
#include "python_runtime.hpp"

namespace mycelium::embedded {

/// Per message type: callbacks, callback errors, decode errors and the sampled callback
/// duration histogram; the queue depth and the dispatcher's GIL wait. Both arguments
/// must outlive the result.
std::shared_ptr<prometheus::Collectable> runtime_collector(const PythonRuntime& runtime,
                                                           const schema::Registry& registry);

}  // namespace mycelium::embedded
