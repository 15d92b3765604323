// mycelium_native.metrics, in prometheus_client's shape:
//
//     signals = metrics.counter("model_signals_total", "Signals emitted", labels=["symbol"])
//     signals.labels(symbol="AAPL").inc()
//     step = metrics.histogram("model_step_seconds", "Time per step")
//     step.observe(0.002)
//
// Defining the same metric again (a script run twice) returns the same series; the same
// name with another kind, help or label set is a ValueError. Every call runs with the GIL
// held on a thread of the script; prometheus-cpp's metrics are thread-safe for scrapes.

#include "script_metrics.hpp"

#include <pybind11/stl.h>

#include <prometheus/check_names.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace py = pybind11;

namespace mycelium::embedded {

namespace {

enum class Kind { Counter, Gauge, Histogram };

const char* kind_name(Kind kind) {
    switch (kind) {
        case Kind::Counter: return "counter";
        case Kind::Gauge: return "gauge";
        case Kind::Histogram: return "histogram";
    }
    return "metric";
}

/// One metric a script defined: its family and what it was defined with.
struct Definition {
    Kind kind;
    std::string name;
    std::string help;
    std::vector<std::string> label_names;
    std::vector<double> buckets;
    std::variant<prometheus::Family<prometheus::Counter>*, prometheus::Family<prometheus::Gauge>*,
                 prometheus::Family<prometheus::Histogram>*>
        family;
};

/// One series: a definition with values for its labels.
class Series {
public:
    Series(std::shared_ptr<Definition> def, std::map<std::string, std::string> labels)
        : def_(std::move(def)), labels_(std::move(labels)) {}

    void inc(double amount) {
        switch (def_->kind) {
            case Kind::Counter:
                if (!(amount >= 0))
                    throw py::value_error(def_->name + ": a counter only goes up, got inc(" + repr(amount) + ")");
                std::get<0>(def_->family)->Add(labels_).Increment(amount);
                return;
            case Kind::Gauge: gauge().Increment(amount); return;
            case Kind::Histogram: break;
        }
        throw py::type_error(def_->name + " is a histogram; inc() is for a counter or a gauge");
    }
    void dec(double amount) { gauge().Decrement(amount); }
    void set(double value) { gauge().Set(value); }
    void observe(double value) {
        if (std::isnan(value)) throw py::value_error(def_->name + ": cannot observe NaN");
        histogram().Observe(value);
    }
    double value() const {
        switch (def_->kind) {
            case Kind::Counter: return std::get<0>(def_->family)->Add(labels_).Value();
            case Kind::Gauge: return std::get<1>(def_->family)->Add(labels_).Value();
            case Kind::Histogram: break;
        }
        throw py::type_error(def_->name + " is a histogram; it has no single value");
    }

private:
    static std::string repr(double v) { return py::repr(py::float_(v)).cast<std::string>(); }
    void require(Kind kind, const char* op) const {
        if (def_->kind != kind)
            throw py::type_error(def_->name + " is a " + kind_name(def_->kind) + "; " + op + "() is for a " +
                                 kind_name(kind));
    }
    prometheus::Gauge& gauge() {
        require(Kind::Gauge, "set/dec");
        return std::get<1>(def_->family)->Add(labels_);
    }
    prometheus::Histogram& histogram() {
        require(Kind::Histogram, "observe");
        return std::get<2>(def_->family)->Add(labels_, def_->buckets);
    }

    std::shared_ptr<Definition> def_;
    std::map<std::string, std::string> labels_;
};

/// What metrics.counter()/gauge()/histogram() return: labels(**values) gives a series;
/// a metric without labels is its own series.
class Metric {
public:
    explicit Metric(std::shared_ptr<Definition> def) : def_(std::move(def)) {}

    Series labels(const py::kwargs& values) const {
        std::map<std::string, std::string> labels;
        for (const auto& [key, value] : values) labels[py::str(key)] = py::str(value);
        std::vector<std::string> given;
        for (const auto& [key, value] : labels) given.push_back(key);
        std::vector<std::string> wanted = def_->label_names;
        std::sort(wanted.begin(), wanted.end());
        if (given != wanted) throw py::value_error(def_->name + ": expected the labels " + join(wanted) + ", got " + join(given));
        return Series(def_, std::move(labels));
    }
    Series unlabelled() const {
        if (!def_->label_names.empty())
            throw py::value_error(def_->name + " has the labels " + join(def_->label_names) +
                                  ": call .labels(...) first");
        return Series(def_, {});
    }

private:
    static std::string join(const std::vector<std::string>& names) {
        std::string out = "[";
        for (const auto& n : names) out += (out.size() > 1 ? ", " : "") + n;
        return out + "]";
    }
    std::shared_ptr<Definition> def_;
};

class Definitions {
public:
    explicit Definitions(std::shared_ptr<prometheus::Registry> registry) : registry_(std::move(registry)) {}

    Metric define(Kind kind, const std::string& name, const std::string& help, std::vector<std::string> labels,
                  std::vector<double> buckets) {
        if (!prometheus::CheckMetricName(name))
            throw py::value_error("bad metric name '" + name + "': use letters, digits, '_' and ':', not starting "
                                  "with a digit");
        if (name.rfind("mycelium_", 0) == 0)
            throw py::value_error("bad metric name '" + name + "': the 'mycelium_' prefix is the host's own");
        for (const auto& label : labels)
            if (!prometheus::CheckLabelName(label) || label == "le" || label == "quantile")
                throw py::value_error(name + ": bad label name '" + label + "'");
        if (kind == Kind::Histogram) {
            if (buckets.empty()) throw py::value_error(name + ": a histogram needs at least one bucket");
            if (!std::is_sorted(buckets.begin(), buckets.end()) ||
                std::adjacent_find(buckets.begin(), buckets.end()) != buckets.end())
                throw py::value_error(name + ": buckets must be strictly increasing");
        }
        if (auto it = defined_.find(name); it != defined_.end()) {
            const Definition& old = *it->second;
            if (old.kind != kind || old.help != help || old.label_names != labels || old.buckets != buckets)
                throw py::value_error("metric '" + name + "' is already defined as a " + kind_name(old.kind) +
                                      " with other help, labels or buckets");
            return Metric(it->second);
        }
        auto def = std::make_shared<Definition>(Definition{kind, name, help, labels, buckets, {}});
        switch (kind) {
            case Kind::Counter: def->family = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_); break;
            case Kind::Gauge: def->family = &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_); break;
            case Kind::Histogram:
                def->family = &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
                break;
        }
        defined_.emplace(name, def);
        return Metric(def);
    }

private:
    std::shared_ptr<prometheus::Registry> registry_;
    std::map<std::string, std::shared_ptr<Definition>> defined_;
};

}  // namespace

std::shared_ptr<prometheus::Registry> script_metrics_registry() {
    static const auto registry = std::make_shared<prometheus::Registry>();
    return registry;
}

void add_metrics_submodule(py::module_& module) {
    auto m = module.def_submodule("metrics", "Counters, gauges and histograms served on the host's /metrics.");
    auto definitions = std::make_shared<Definitions>(script_metrics_registry());

    py::class_<Series>(m, "Series", "One labelled series of a metric.")
        .def("inc", &Series::inc, py::arg("amount") = 1.0)
        .def("dec", &Series::dec, py::arg("amount") = 1.0)
        .def("set", &Series::set, py::arg("value"))
        .def("observe", &Series::observe, py::arg("value"))
        .def_property_readonly("value", &Series::value);

    py::class_<Metric>(m, "Metric", "A metric; labels(**values) selects a series.")
        .def("labels", &Metric::labels)
        .def("inc", [](const Metric& metric, double amount) { metric.unlabelled().inc(amount); }, py::arg("amount") = 1.0)
        .def("dec", [](const Metric& metric, double amount) { metric.unlabelled().dec(amount); }, py::arg("amount") = 1.0)
        .def("set", [](const Metric& metric, double value) { metric.unlabelled().set(value); }, py::arg("value"))
        .def("observe", [](const Metric& metric, double value) { metric.unlabelled().observe(value); }, py::arg("value"))
        .def_property_readonly("value", [](const Metric& metric) { return metric.unlabelled().value(); });

    m.def(
        "counter",
        [definitions](const std::string& name, const std::string& help, std::vector<std::string> labels) {
            return definitions->define(Kind::Counter, name, help, std::move(labels), {});
        },
        py::arg("name"), py::arg("help") = "", py::arg("labels") = std::vector<std::string>{},
        "A counter (only goes up); conventionally named *_total.");
    m.def(
        "gauge",
        [definitions](const std::string& name, const std::string& help, std::vector<std::string> labels) {
            return definitions->define(Kind::Gauge, name, help, std::move(labels), {});
        },
        py::arg("name"), py::arg("help") = "", py::arg("labels") = std::vector<std::string>{},
        "A gauge: set(), inc(), dec().");
    m.def(
        "histogram",
        [definitions](const std::string& name, const std::string& help, std::vector<std::string> labels,
                      std::vector<double> buckets) {
            return definitions->define(Kind::Histogram, name, help, std::move(labels), std::move(buckets));
        },
        py::arg("name"), py::arg("help") = "", py::arg("labels") = std::vector<std::string>{},
        py::arg("buckets") = std::vector<double>{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                                                 7.5, 10.0},
        "A histogram: observe(value); buckets are upper bounds (prometheus_client's defaults).");
}

}  // namespace mycelium::embedded
