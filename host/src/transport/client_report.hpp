#pragma once
// Internal to host/src/transport: what a connection tells the scrapes about its client.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mycelium/metrics_report.hpp"

namespace mycelium::link::detail {

/// The name a connection goes by in the host's metrics (its HELLO name, else its
/// address) and the client's last METRICS snapshot.
///
/// Threading: set on the connection's strand, read by scrapes on any thread.
class ClientReport {
public:
    using Snapshot = std::shared_ptr<const std::vector<ReportedFamily>>;

    explicit ClientReport(std::string label) : label_(std::move(label)) {}

    void set_label(std::string label) {
        std::lock_guard lock(mutex_);
        label_ = std::move(label);
    }
    /// Keeps `families`, decoded from a METRICS frame of `frame_bytes`.
    void set_metrics(std::vector<ReportedFamily> families, std::size_t frame_bytes) {
        auto snapshot = std::make_shared<const std::vector<ReportedFamily>>(std::move(families));
        std::lock_guard lock(mutex_);
        metrics_ = std::move(snapshot);
        largest_frame_ = std::max(largest_frame_, frame_bytes);
    }
    /// Forgets the snapshot (the client left) and returns the largest METRICS frame it
    /// ever sent, in bytes.
    std::size_t clear() {
        Snapshot dropped;
        std::lock_guard lock(mutex_);
        dropped = std::exchange(metrics_, nullptr);
        return largest_frame_;
    }
    std::string label() const {
        std::lock_guard lock(mutex_);
        return label_;
    }
    /// The label and the last snapshot (null before the first METRICS).
    std::pair<std::string, Snapshot> metrics() const {
        std::lock_guard lock(mutex_);
        return {label_, metrics_};
    }

private:
    mutable std::mutex mutex_;
    std::string label_;
    Snapshot metrics_;
    std::size_t largest_frame_ = 0;
};

}  // namespace mycelium::link::detail
