// metrics::Server over prometheus-cpp's Exposer (civetweb), and the helpers collectors
// use to build metric families.

#include "mycelium/metrics.hpp"

#include <prometheus/exposer.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "mycelium/topology/topology.hpp"

namespace mycelium::metrics {

namespace {

class FunctionCollector final : public prometheus::Collectable {
public:
    explicit FunctionCollector(std::function<std::vector<prometheus::MetricFamily>()> fn) : fn_(std::move(fn)) {}
    std::vector<prometheus::MetricFamily> Collect() const override { return fn_(); }

private:
    std::function<std::vector<prometheus::MetricFamily>()> fn_;
};

std::vector<prometheus::ClientMetric::Label> to_labels(std::vector<std::pair<std::string, std::string>> labels) {
    std::vector<prometheus::ClientMetric::Label> out;
    out.reserve(labels.size());
    for (auto& [name, value] : labels) out.push_back({std::move(name), std::move(value)});
    return out;
}

// Latency buckets in seconds: 1 µs to 10 s, 1-2.5-5 per decade.
constexpr double LATENCY_BUCKETS[] = {1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                                      2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

}  // namespace

Server::Server(std::string_view address) {
    const auto parsed = topology::parse_socket_address(address);
    if (!parsed)
        throw std::invalid_argument("bad metrics address '" + std::string(address) +
                                    "': expected host:port, e.g. 127.0.0.1:9100");
    host_ = parsed->host;
    const std::string bind = topology::to_string(*parsed);
    try {
        exposer_ = std::make_unique<prometheus::Exposer>(bind, 2);
    } catch (const std::exception& e) {
        throw std::runtime_error("cannot serve metrics on " + bind + ": " + e.what());
    }
    const auto ports = exposer_->GetListeningPorts();
    if (ports.empty()) throw std::runtime_error("cannot serve metrics on " + bind + ": no listening port");
    port_ = static_cast<std::uint16_t>(ports.front());
}

Server::~Server() { stop(); }

void Server::add(std::shared_ptr<prometheus::Collectable> collectable) {
    if (!exposer_) return;
    exposer_->RegisterCollectable(collectable);
    collectables_.push_back(std::move(collectable));
}

std::string Server::address() const { return topology::to_string(topology::SocketAddress{host_, port_}); }

std::string Server::url() const { return "http://" + address() + "/metrics"; }

void Server::stop() noexcept { exposer_.reset(); }

std::shared_ptr<prometheus::Collectable> from_function(std::function<std::vector<prometheus::MetricFamily>()> collect) {
    return std::make_shared<FunctionCollector>(std::move(collect));
}

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
    prometheus::MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

void add_sample(prometheus::MetricFamily& family, double value, std::vector<std::pair<std::string, std::string>> labels) {
    prometheus::ClientMetric m;
    m.label = to_labels(std::move(labels));
    switch (family.type) {
        case prometheus::MetricType::Counter: m.counter.value = value; break;
        case prometheus::MetricType::Gauge: m.gauge.value = value; break;
        default: m.untyped.value = value; break;
    }
    family.metric.push_back(std::move(m));
}

void add_histogram(prometheus::MetricFamily& family, const LatencyHistogram& histogram,
                   std::vector<std::pair<std::string, std::string>> labels) {
    prometheus::ClientMetric m;
    m.label = to_labels(std::move(labels));
    // Read the count first: buckets only grow, so no bucket exceeds the count we report.
    const std::uint64_t count = histogram.count();
    m.histogram.sample_count = count;
    m.histogram.sample_sum = static_cast<double>(histogram.sum()) * 1e-9;
    for (const double le : LATENCY_BUCKETS) {
        const auto at_most = histogram.count_at_most(static_cast<std::uint64_t>(le * 1e9));
        m.histogram.bucket.push_back({std::min(at_most, count), le});
    }
    m.histogram.bucket.push_back({count, std::numeric_limits<double>::infinity()});
    family.metric.push_back(std::move(m));
}

}  // namespace mycelium::metrics
