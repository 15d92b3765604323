// libFuzzer target for METRICS payloads (mycelium/metrics_report.hpp), and for what the
// host makes of an accepted one: its families on the /metrics page, merged with another
// client's, as Prometheus text. The decoder refuses trailing bytes, so an accepted
// payload must encode back to exactly the same bytes.
//
// Input layout: the payload.

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "mycelium/metrics.hpp"
#include "mycelium/metrics_report.hpp"
#include "mycelium/utf8.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // An exact-size copy, so that reading past the payload is a heap overflow.
    const std::vector<std::byte> payload(reinterpret_cast<const std::byte*>(data),
                                         reinterpret_cast<const std::byte*>(data) + size);
    auto report = mycelium::link::decode_metrics_report(payload);
    if (!report) {
        // The error goes into a log line and an ERROR frame: one line of UTF-8.
        const std::string& error = report.error();
        if (!mycelium::utf8::is_valid(error)) std::abort();
        if (std::any_of(error.begin(), error.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
            std::abort();
        return 0;
    }
    const auto again = mycelium::link::encode_metrics_report(*report);
    if (again != payload) std::abort();

    // Two clients report the same families; the page holds each name once.
    std::vector<prometheus::MetricFamily> page;
    const std::vector<mycelium::metrics::ClientReport> reports = {{"worker-a", *report}, {"worker-b", *report}};
    mycelium::metrics::append_reported(page, reports);
    for (std::size_t i = 0; i < page.size(); ++i)
        for (std::size_t j = i + 1; j < page.size(); ++j)
            if (page[i].name == page[j].name) std::abort();
    std::ostringstream text;
    prometheus::TextSerializer().Serialize(text, page);
    return 0;
}
