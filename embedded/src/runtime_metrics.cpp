// Reads PythonRuntime's counters at scrape time; the dispatcher itself never touches
// Prometheus (see mycelium/metrics.hpp).

#include "runtime_metrics.hpp"

#include "mycelium/metrics.hpp"

namespace mycelium::embedded {

std::shared_ptr<prometheus::Collectable> runtime_collector(const PythonRuntime& runtime,
                                                           const schema::Registry& registry) {
    return metrics::from_function([&runtime, &registry] {
        using prometheus::MetricType;
        auto callbacks = metrics::family("mycelium_python_callbacks_total", "Python callbacks that returned",
                                         MetricType::Counter);
        auto errors = metrics::family("mycelium_python_callback_exceptions_total", "Python callbacks that raised",
                                      MetricType::Counter);
        auto decode = metrics::family("mycelium_python_decode_errors_total",
                                      "Messages whose bytes did not decode into the subscriber's class",
                                      MetricType::Counter);
        auto duration = metrics::family("mycelium_python_callback_duration_seconds",
                                        "Duration of Python callbacks (a sample: one callback in 16 is timed)",
                                        MetricType::Histogram);
        runtime.for_each_type_stats([&](std::uint16_t type_id, const TypeStats& stats) {
            const schema::MessageSchema* message = registry.find(type_id);
            const std::string name = message ? message->name : std::to_string(type_id);
            const auto get = [](const std::atomic<std::uint64_t>& c) {
                return static_cast<double>(c.load(std::memory_order_relaxed));
            };
            metrics::add_sample(callbacks, get(stats.callbacks), {{"type", name}});
            metrics::add_sample(errors, get(stats.errors), {{"type", name}});
            metrics::add_sample(decode, get(stats.decode_errors), {{"type", name}});
            metrics::add_histogram(duration, stats.duration, {{"type", name}});
        });
        auto depth = metrics::family("mycelium_python_queue_depth", "Messages waiting for the Python thread",
                                     MetricType::Gauge);
        metrics::add_sample(depth, static_cast<double>(runtime.queue_depth()));
        auto gil = metrics::family("mycelium_python_gil_wait_seconds_total",
                                   "Time the Python dispatcher waited for the GIL after waking up "
                                   "(held by a script's own threads)",
                                   MetricType::Counter);
        metrics::add_sample(gil, static_cast<double>(runtime.gil_wait_ns()) * 1e-9);
        std::vector<prometheus::MetricFamily> out;
        for (auto* f : {&callbacks, &errors, &decode, &duration})
            if (!f->metric.empty()) out.push_back(std::move(*f));
        out.push_back(std::move(depth));
        out.push_back(std::move(gil));
        return out;
    });
}

}  // namespace mycelium::embedded
