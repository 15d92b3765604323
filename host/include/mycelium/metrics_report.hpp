#pragma once
/// METRICS control frames: how an out-of-process client (the Python SDK's worker, a
/// sidecar) will hand its own metrics to the host it is connected to, to be served on the
/// host's /metrics with a `client` label.
///
/// The frame is control type 7 (link::control::METRICS); docs/wire-protocol.md "METRICS"
/// has the layout with a hex example.
///
/// The payload is a full snapshot; each one replaces the previous snapshot of that
/// connection, and the connection's metrics disappear when it closes. Layout, all
/// integers little-endian, strings as u16 length + UTF-8 bytes:
///
///     u16 family count, then per family:
///       u8 kind (0 counter, 1 gauge, 2 histogram), str name, str help,
///       u16 label-name count, str label names...,
///       u32 series count, then per series:
///         str label values... (one per label name)
///         counter, gauge: f64 value
///         histogram: u16 bucket count, (f64 upper bound, u64 cumulative count)...,
///                    u64 count, f64 sum
///
/// The decoder treats the payload as untrusted: every length is checked, names follow
/// Prometheus's rules (the `mycelium_` prefix is the host's own), label values are
/// valid UTF-8, buckets increase, and the sizes stay under the limits below.
/// Thread safety: value types and reentrant free functions.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mycelium/result.hpp"

namespace mycelium::link {

namespace metrics_report {
/// The control frame type id (link::control::METRICS).
inline constexpr std::uint16_t TYPE_ID = 7;
inline constexpr std::size_t MAX_FAMILIES = 1000;
inline constexpr std::size_t MAX_SERIES_PER_FAMILY = 10'000;
inline constexpr std::size_t MAX_LABELS = 16;
inline constexpr std::size_t MAX_BUCKETS = 64;
}  // namespace metrics_report

/// What kind of metric a reported family is.
enum class ReportedKind : std::uint8_t { Counter = 0, Gauge = 1, Histogram = 2 };

/// One series of a reported family.
/// Thread safety: a value type.
struct ReportedSeries {
    std::vector<std::string> label_values;  ///< one per ReportedFamily::label_names
    double value = 0;                       ///< counter, gauge
    std::vector<std::pair<double, std::uint64_t>> buckets;  ///< histogram: (le, cumulative)
    std::uint64_t count = 0;                                ///< histogram
    double sum = 0;                                         ///< histogram

    friend bool operator==(const ReportedSeries&, const ReportedSeries&) = default;
};

/// One metric family a client reported.
/// Thread safety: a value type.
struct ReportedFamily {
    ReportedKind kind = ReportedKind::Counter;
    std::string name;
    std::string help;
    std::vector<std::string> label_names;
    std::vector<ReportedSeries> series;

    friend bool operator==(const ReportedFamily&, const ReportedFamily&) = default;
};

/// Encodes a snapshot (for tests and C++ clients).
std::vector<std::byte> encode_metrics_report(const std::vector<ReportedFamily>& families);

/// Decodes and checks a snapshot; the error names the family and what is wrong.
Result<std::vector<ReportedFamily>, std::string> decode_metrics_report(std::span<const std::byte> payload);

}  // namespace mycelium::link
