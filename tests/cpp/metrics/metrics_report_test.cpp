// METRICS control frame payloads: round trips, the documented example byte for byte,
// every truncation and each rule the decoder enforces; and how reports from several
// clients become Prometheus families.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "mycelium/metrics.hpp"
#include "mycelium/metrics_report.hpp"

using namespace mycelium;
using namespace mycelium::link;

namespace {

std::vector<ReportedFamily> sample() {
    ReportedFamily counter{ReportedKind::Counter, "jobs_total", "Jobs done", {"queue"}, {}};
    counter.series.push_back({{"fast"}, 3, {}, 0, 0});
    counter.series.push_back({{"slow"}, 1, {}, 0, 0});
    ReportedFamily gauge{ReportedKind::Gauge, "depth", "", {}, {{{}, -2.5, {}, 0, 0}}};
    ReportedFamily histogram{ReportedKind::Histogram, "step_seconds", "Step time", {}, {}};
    histogram.series.push_back({{}, 0, {{0.01, 2}, {0.1, 5}}, 6, 0.42});
    return {counter, gauge, histogram};
}

std::vector<std::byte> bytes(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (const int v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}

std::string decode_error(const std::vector<std::byte>& payload) {
    const auto result = decode_metrics_report(payload);
    REQUIRE_FALSE(result.has_value());
    return result.error();
}

}  // namespace

TEST_SUITE("metrics") {

TEST_CASE("a snapshot of counters, gauges and histograms round-trips") {
    const auto families = sample();
    const auto decoded = decode_metrics_report(encode_metrics_report(families));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == families);
}

TEST_CASE("the documented example, byte for byte") {
    // docs/wire-protocol.md, METRICS: one counter `jobs_total` without help, no labels, 3.
    const std::vector<ReportedFamily> one{{ReportedKind::Counter, "jobs_total", "", {}, {{{}, 3, {}, 0, 0}}}};
    const auto expected = bytes({0x01, 0x00,                                                  // 1 family
                                 0x00,                                                        // counter
                                 0x0a, 0x00, 'j', 'o', 'b', 's', '_', 't', 'o', 't', 'a', 'l',  // name
                                 0x00, 0x00,                                                  // help ""
                                 0x00, 0x00,                                                  // no labels
                                 0x01, 0x00, 0x00, 0x00,                                      // 1 series
                                 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x40});            // 3.0
    CHECK(encode_metrics_report(one) == expected);
}

TEST_CASE("every truncation of a snapshot is an error, never a crash") {
    const auto payload = encode_metrics_report(sample());
    for (std::size_t n = 0; n < payload.size(); ++n) {
        const std::vector<std::byte> cut(payload.begin(), payload.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_FALSE(decode_metrics_report(cut).has_value());
    }
    auto longer = payload;
    longer.push_back(std::byte{0});
    CHECK(decode_error(longer) == "trailing bytes after the last METRICS family");
}

TEST_CASE("the decoder enforces names, kinds, labels and buckets") {
    auto with = [](auto change) {
        auto families = sample();
        change(families);
        return decode_error(encode_metrics_report(families));
    };
    CHECK(with([](auto& f) { f[0].name = "9lives"; }) == "bad metric name '9lives'");
    CHECK(with([](auto& f) { f[0].name = "mycelium_bus_published_total"; }) ==
          "metric 'mycelium_bus_published_total': the 'mycelium_' prefix is the host's own");
    CHECK(with([](auto& f) { f[0].label_names = {"client"}; }) ==
          "metric 'jobs_total': bad or repeated label name 'client'");
    CHECK(with([](auto& f) { f[0].label_names = {"le"}; }) == "metric 'jobs_total': bad or repeated label name 'le'");
    CHECK(with([](auto& f) {
              f[0].label_names = {"queue", "queue"};
              for (auto& s : f[0].series) s.label_values.push_back("x");
          }) == "metric 'jobs_total': bad or repeated label name 'queue'");
    CHECK(with([](auto& f) { f[0].series[1].label_values = {"fast"}; }) ==
          "metric 'jobs_total': two series with the same labels");
    CHECK(with([](auto& f) { f[0].series[0].value = -1; }) == "metric 'jobs_total': a counter must be a number >= 0");
    CHECK(with([](auto& f) { f[0].series[0].label_values = {"\xff"}; }) ==
          "metric 'jobs_total': a label value is not UTF-8");
    CHECK(with([](auto& f) { f[2].series[0].buckets = {{0.1, 2}, {0.01, 5}}; }) ==
          "metric 'step_seconds': buckets must increase");
    CHECK(with([](auto& f) { f[2].series[0].count = 1; }) == "metric 'step_seconds': a bucket counts more than the total");

    auto unknown_kind = encode_metrics_report(sample());
    unknown_kind[2] = std::byte{7};  // the first family's kind
    CHECK(decode_error(unknown_kind) == "metric 'jobs_total': unknown kind 7");

    std::vector<ReportedFamily> many(metrics_report::MAX_FAMILIES + 1, sample()[1]);
    CHECK(decode_error(encode_metrics_report(many)) == "1001 metric families, more than 1000");
}

TEST_CASE("a refused name is quoted as one line of printable ASCII") {
    // Found by tests/fuzz/metrics_fuzz.cpp: the error went into the log line and the
    // ERROR reason with the client's raw bytes (a newline, invalid UTF-8).
    auto with = [](auto change) {
        auto families = sample();
        change(families);
        return decode_error(encode_metrics_report(families));
    };
    CHECK(with([](auto& f) { f[0].name = "bad\nname\xff"; }) == "bad metric name 'bad\\x0aname\\xff'");
    CHECK(with([](auto& f) { f[0].label_names = {"q\\"}; }) ==
          "metric 'jobs_total': bad or repeated label name 'q\\x5c'");
    CHECK(with([](auto& f) { f[0].name = std::string(100, '-'); }) ==
          "bad metric name '" + std::string(64, '-') + "...'");
    auto bad_kind_and_name = encode_metrics_report(sample());
    bad_kind_and_name[2] = std::byte{7};  // the first family's kind
    bad_kind_and_name[5] = std::byte{'\n'};  // its name's first byte
    CHECK(decode_error(bad_kind_and_name) == "bad metric name '\\x0aobs_total'");
}

TEST_CASE("reports from several clients merge into one family per name, labelled by client") {
    const std::vector<metrics::ClientReport> reports{{"risk", sample()}, {"model", sample()}};
    std::vector<prometheus::MetricFamily> out;
    metrics::append_reported(out, reports);
    REQUIRE(out.size() == 3);
    const auto& jobs = *std::find_if(out.begin(), out.end(), [](const auto& f) { return f.name == "jobs_total"; });
    CHECK(jobs.type == prometheus::MetricType::Counter);
    REQUIRE(jobs.metric.size() == 4);
    CHECK(jobs.metric[0].label[0].name == "client");
    CHECK(jobs.metric[0].label[0].value == "risk");
    CHECK(jobs.metric[2].label[0].value == "model");
    CHECK(jobs.metric[0].counter.value == 3);
    const auto& steps = *std::find_if(out.begin(), out.end(), [](const auto& f) { return f.name == "step_seconds"; });
    REQUIRE(steps.metric[0].histogram.bucket.size() == 3);  // +Inf added
    CHECK(steps.metric[0].histogram.bucket[2].cumulative_count == 6);

    // A client that defines `depth` as a counter when the first said gauge is left out.
    auto conflicting = sample();
    conflicting[1].kind = ReportedKind::Counter;
    std::vector<prometheus::MetricFamily> merged;
    metrics::append_reported(merged, {{"a", sample()}, {"b", conflicting}});
    const auto& depth = *std::find_if(merged.begin(), merged.end(), [](const auto& f) { return f.name == "depth"; });
    CHECK(depth.metric.size() == 1);
    CHECK(depth.metric[0].label[0].value == "a");
}

}  // TEST_SUITE
