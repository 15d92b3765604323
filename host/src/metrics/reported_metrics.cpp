// Families reported by clients (METRICS frames) as Prometheus families: one family per
// name across all clients, each series labelled with the client that reported it.

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "mycelium/metrics.hpp"

namespace mycelium::metrics {

namespace {

prometheus::MetricType type_of(link::ReportedKind kind) {
    switch (kind) {
        case link::ReportedKind::Counter: return prometheus::MetricType::Counter;
        case link::ReportedKind::Gauge: return prometheus::MetricType::Gauge;
        case link::ReportedKind::Histogram: return prometheus::MetricType::Histogram;
    }
    return prometheus::MetricType::Untyped;
}

}  // namespace

void append_reported(std::vector<prometheus::MetricFamily>& out, const std::vector<ClientReport>& reports) {
    struct Merged {
        const link::ReportedFamily* first;  // kind and label names every client must share
        prometheus::MetricFamily family;
    };
    std::map<std::string, Merged> by_name;
    std::set<std::string, std::less<>> taken;  // names already in `out` (the host's, scripts')
    for (const auto& f : out) taken.insert(f.name);
    for (const auto& [client, families] : reports) {
        for (const auto& reported : families) {
            if (taken.contains(reported.name)) continue;  // a page may hold a name only once
            auto [it, inserted] = by_name.try_emplace(reported.name, Merged{&reported, {}});
            Merged& merged = it->second;
            if (inserted) merged.family = family(reported.name, reported.help, type_of(reported.kind));
            // Two clients may not define one name two ways: the later one is left out.
            if (merged.first->kind != reported.kind || merged.first->label_names != reported.label_names) continue;
            for (const auto& series : reported.series) {
                prometheus::ClientMetric m;
                m.label.push_back({"client", client});
                for (std::size_t i = 0; i < reported.label_names.size(); ++i)
                    m.label.push_back({reported.label_names[i], series.label_values[i]});
                switch (reported.kind) {
                    case link::ReportedKind::Counter: m.counter.value = series.value; break;
                    case link::ReportedKind::Gauge: m.gauge.value = series.value; break;
                    case link::ReportedKind::Histogram:
                        m.histogram.sample_count = series.count;
                        m.histogram.sample_sum = series.sum;
                        for (const auto& [le, count] : series.buckets) m.histogram.bucket.push_back({count, le});
                        if (series.buckets.empty() || !std::isinf(series.buckets.back().first))
                            m.histogram.bucket.push_back({series.count, std::numeric_limits<double>::infinity()});
                        break;
                }
                merged.family.metric.push_back(std::move(m));
            }
        }
    }
    for (auto& [name, merged] : by_name) out.push_back(std::move(merged.family));
}

}  // namespace mycelium::metrics
