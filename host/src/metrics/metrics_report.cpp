// METRICS control frame payloads (mycelium/metrics_report.hpp): a bounds-checked
// reader over untrusted bytes, and the matching writer.

#include "mycelium/metrics_report.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "mycelium/unaligned.hpp"
#include "mycelium/utf8.hpp"

namespace mycelium::link {

namespace {

bool valid_name(std::string_view name, bool label) {
    if (name.empty()) return false;
    const auto head = [label](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':');
    };
    const auto tail = [&](char c) { return head(c) || (c >= '0' && c <= '9'); };
    return head(name.front()) && std::all_of(name.begin() + 1, name.end(), tail);
}

/// A name the checks refused, fit for an error text: it goes into a log line and the
/// ERROR frame's reason, which must stay one line of UTF-8, so bytes other than printable
/// ASCII are shown as \xNN, and a long name is cut.
std::string shown(std::string_view name) {
    constexpr std::size_t MAX_SHOWN = 64;
    std::string out;
    for (const char c : name.substr(0, MAX_SHOWN)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '\\') {
            out.push_back(c);
        } else {
            out += fmt::format("\\x{:02x}", u);
        }
    }
    if (name.size() > MAX_SHOWN) out += "...";
    return out;
}

class Reader {
public:
    explicit Reader(std::span<const std::byte> bytes) : bytes_(bytes) {}

    template <class T>
    std::optional<T> number() {
        if (bytes_.size() - at_ < sizeof(T)) return std::nullopt;
        const T v = load_unaligned<T>(bytes_.data() + at_);  // the frame is little-endian, as the host is
        at_ += sizeof(T);
        return v;
    }
    std::optional<std::string> text() {
        const auto n = number<std::uint16_t>();
        if (!n || bytes_.size() - at_ < *n) return std::nullopt;
        std::string s(reinterpret_cast<const char*>(bytes_.data() + at_), *n);
        at_ += *n;
        return s;
    }
    bool done() const { return at_ == bytes_.size(); }

private:
    std::span<const std::byte> bytes_;
    std::size_t at_ = 0;
};

class Writer {
public:
    template <class T>
    void number(T v) {
        const auto* p = reinterpret_cast<const std::byte*>(&v);
        out.insert(out.end(), p, p + sizeof(T));
    }
    void text(const std::string& s) {
        number(static_cast<std::uint16_t>(s.size()));
        const auto* p = reinterpret_cast<const std::byte*>(s.data());
        out.insert(out.end(), p, p + s.size());
    }
    std::vector<std::byte> out;
};

static_assert(std::endian::native == std::endian::little, "METRICS payloads are little-endian");

}  // namespace

std::vector<std::byte> encode_metrics_report(const std::vector<ReportedFamily>& families) {
    Writer w;
    w.number(static_cast<std::uint16_t>(families.size()));
    for (const auto& f : families) {
        w.number(static_cast<std::uint8_t>(f.kind));
        w.text(f.name);
        w.text(f.help);
        w.number(static_cast<std::uint16_t>(f.label_names.size()));
        for (const auto& l : f.label_names) w.text(l);
        w.number(static_cast<std::uint32_t>(f.series.size()));
        for (const auto& s : f.series) {
            for (const auto& v : s.label_values) w.text(v);
            if (f.kind == ReportedKind::Histogram) {
                w.number(static_cast<std::uint16_t>(s.buckets.size()));
                for (const auto& [le, count] : s.buckets) {
                    w.number(le);
                    w.number(count);
                }
                w.number(s.count);
                w.number(s.sum);
            } else {
                w.number(s.value);
            }
        }
    }
    return std::move(w.out);
}

namespace {

using Error = Err<std::string>;
using Checked = Result<void, std::string>;

Error truncated(const std::string& where) { return Error{"truncated METRICS payload in " + where}; }

/// A family's kind, name, help and label names, checked; `index` names it while it has
/// no name.
Checked read_family_header(Reader& r, std::size_t index, ReportedFamily& f) {
    const auto kind = r.number<std::uint8_t>();
    auto name = r.text();
    auto help = r.text();
    if (!kind || !name || !help) return truncated(fmt::format("family {}", index));
    f.name = std::move(*name);
    f.help = std::move(*help);
    // The name is checked first: every later error quotes it as it is.
    if (!valid_name(f.name, false)) return Error{fmt::format("bad metric name '{}'", shown(f.name))};
    if (*kind > 2) return Error{fmt::format("metric '{}': unknown kind {}", f.name, *kind)};
    f.kind = static_cast<ReportedKind>(*kind);
    if (f.name.rfind("mycelium_", 0) == 0)
        return Error{fmt::format("metric '{}': the 'mycelium_' prefix is the host's own", f.name)};
    if (!utf8::is_valid(f.help)) return Error{fmt::format("metric '{}': help is not UTF-8", f.name)};
    const auto label_count = r.number<std::uint16_t>();
    if (!label_count) return truncated("metric '" + f.name + "'");
    if (*label_count > metrics_report::MAX_LABELS)
        return Error{fmt::format("metric '{}': {} labels, more than {}", f.name, *label_count,
                                 metrics_report::MAX_LABELS)};
    for (std::size_t k = 0; k < *label_count; ++k) {
        auto label = r.text();
        if (!label) return truncated("metric '" + f.name + "'");
        if (!valid_name(*label, true) || *label == "le" || *label == "client" || label->rfind("__", 0) == 0 ||
            std::find(f.label_names.begin(), f.label_names.end(), *label) != f.label_names.end())
            return Error{fmt::format("metric '{}': bad or repeated label name '{}'", f.name, shown(*label))};
        f.label_names.push_back(std::move(*label));
    }
    return {};
}

/// A histogram series' buckets, count and sum, checked.
Checked read_histogram(Reader& r, const ReportedFamily& f, ReportedSeries& series) {
    const auto bucket_count = r.number<std::uint16_t>();
    if (!bucket_count) return truncated("metric '" + f.name + "'");
    if (*bucket_count > metrics_report::MAX_BUCKETS)
        return Error{fmt::format("metric '{}': {} buckets, more than {}", f.name, *bucket_count,
                                 metrics_report::MAX_BUCKETS)};
    for (std::size_t b = 0; b < *bucket_count; ++b) {
        const auto le = r.number<double>();
        const auto cumulative = r.number<std::uint64_t>();
        if (!le || !cumulative) return truncated("metric '" + f.name + "'");
        if (std::isnan(*le) ||
            (!series.buckets.empty() &&
             (*le <= series.buckets.back().first || *cumulative < series.buckets.back().second)))
            return Error{fmt::format("metric '{}': buckets must increase", f.name)};
        series.buckets.emplace_back(*le, *cumulative);
    }
    const auto count = r.number<std::uint64_t>();
    const auto sum = r.number<double>();
    if (!count || !sum) return truncated("metric '" + f.name + "'");
    if (!series.buckets.empty() && series.buckets.back().second > *count)
        return Error{fmt::format("metric '{}': a bucket counts more than the total", f.name)};
    series.count = *count;
    series.sum = *sum;
    return {};
}

/// One series of family `f` (its label values, then its value or histogram), checked
/// and appended to f.series.
Checked read_series(Reader& r, ReportedFamily& f) {
    ReportedSeries series;
    for (std::size_t k = 0; k < f.label_names.size(); ++k) {
        auto value = r.text();
        if (!value) return truncated("metric '" + f.name + "'");
        if (!utf8::is_valid(*value)) return Error{fmt::format("metric '{}': a label value is not UTF-8", f.name)};
        series.label_values.push_back(std::move(*value));
    }
    if (f.kind == ReportedKind::Histogram) {
        if (auto read = read_histogram(r, f, series); !read) return Error{read.error()};
    } else {
        const auto value = r.number<double>();
        if (!value) return truncated("metric '" + f.name + "'");
        if (f.kind == ReportedKind::Counter && !(*value >= 0))
            return Error{fmt::format("metric '{}': a counter must be a number >= 0", f.name)};
        series.value = *value;
    }
    for (const auto& other : f.series)
        if (other.label_values == series.label_values)
            return Error{fmt::format("metric '{}': two series with the same labels", f.name)};
    f.series.push_back(std::move(series));
    return {};
}

}  // namespace

Result<std::vector<ReportedFamily>, std::string> decode_metrics_report(std::span<const std::byte> payload) {
    Reader r(payload);
    const auto family_count = r.number<std::uint16_t>();
    if (!family_count) return truncated("the family count");
    if (*family_count > metrics_report::MAX_FAMILIES)
        return Error{fmt::format("{} metric families, more than {}", *family_count, metrics_report::MAX_FAMILIES)};
    std::vector<ReportedFamily> out;
    out.reserve(*family_count);
    for (std::size_t i = 0; i < *family_count; ++i) {
        ReportedFamily f;
        if (auto read = read_family_header(r, i, f); !read) return Error{read.error()};
        const auto series_count = r.number<std::uint32_t>();
        if (!series_count) return truncated("metric '" + f.name + "'");
        if (*series_count > metrics_report::MAX_SERIES_PER_FAMILY)
            return Error{fmt::format("metric '{}': {} series, more than {}", f.name, *series_count,
                                     metrics_report::MAX_SERIES_PER_FAMILY)};
        for (std::size_t s = 0; s < *series_count; ++s)
            if (auto read = read_series(r, f); !read) return Error{read.error()};
        out.push_back(std::move(f));
    }
    if (!r.done()) return Error{"trailing bytes after the last METRICS family"};
    return out;
}

}  // namespace mycelium::link
