#pragma once
/// Prometheus metrics (docs/metrics.md): an HTTP `/metrics` endpoint
/// and the collectors that turn the host's own counters into metric families.
///
/// The hot paths never touch Prometheus: the bus, the links and the Python dispatcher
/// keep their relaxed atomic counters as they always do, and a collector reads them
/// only when someone scrapes. So metrics cost nothing until they are served, and a
/// scrape costs one pass over the counters.
///
/// Thread safety: collectors run on the HTTP server's threads, concurrently with
/// everything else; they only call the thread-safe read functions of what they watch.

#include <cstdint>
#include <functional>
#include <utility>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "mycelium/bus.hpp"
#include "mycelium/latency_histogram.hpp"
#include "mycelium/link.hpp"
#include "mycelium/metrics_report.hpp"
#include "mycelium/schema.hpp"

namespace prometheus {
class Exposer;
}

namespace mycelium::metrics {

/// Serves `GET /metrics` in Prometheus's text format for the collectables added.
///
/// Lifetime: everything a collector reads must outlive the Server (declare the Server
/// after them, or call stop() first). Thread safety: add() and the accessors from any
/// thread; stop() and the destructor not concurrently with add().
class Server {
public:
    /// Listens on `address`, `host:port` (IPv6 in brackets; port 0 picks a free port).
    /// Throws std::invalid_argument for a malformed address, std::runtime_error naming
    /// the address when it cannot listen (in use, not a local address).
    explicit Server(std::string_view address);
    /// stop().
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Serves `collectable` too; the Server keeps it alive.
    void add(std::shared_ptr<prometheus::Collectable> collectable);
    /// The bound address as `host:port`, with the port chosen for port 0.
    std::string address() const;
    /// `http://host:port/metrics`.
    std::string url() const;
    /// Stops serving (joins the HTTP threads). Idempotent.
    void stop() noexcept;

private:
    std::string host_;
    std::uint16_t port_ = 0;
    std::unique_ptr<prometheus::Exposer> exposer_;
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;  // the Exposer holds weak_ptrs
};

/// A collectable that calls `collect` on each scrape.
std::shared_ptr<prometheus::Collectable> from_function(std::function<std::vector<prometheus::MetricFamily>()> collect);

/// The bus's per-type counters: `mycelium_bus_{published,delivered,dropped}_total` and the
/// matching `_bytes_total` (messages times the type's fixed size), labelled
/// `type="<message name>"`, for every type of `registry`. Both must outlive the result.
std::shared_ptr<prometheus::Collectable> bus_collector(const Bus& bus, const schema::Registry& registry);

/// A link server and the `listener` label its samples carry ("node", "listen").
using Listener = std::pair<const link::LinkServer*, std::string>;

/// The link servers' counters, each sample labelled `listener="<name>"`: connections,
/// handshake failures and closed connections by reason, frames and bytes each way,
/// send-queue drops, and per peer node (`peer="<name>"`) up, connects and traffic. One
/// collector for all servers, so each family appears once. The servers must outlive the
/// result.
std::shared_ptr<prometheus::Collectable> link_collector(std::vector<Listener> listeners);

/// What one client reported in its last METRICS frame: (client name, families).
using ClientReport = std::pair<std::string, std::vector<link::ReportedFamily>>;

/// Appends the families clients reported, one family per name, each series labelled
/// `client="<name>"`. A client that defines a name with another kind or other labels
/// than the first client that reported it is left out of that family, and a name that
/// `out` already holds (the host's own, a script's) is left out altogether.
void append_reported(std::vector<prometheus::MetricFamily>& out, const std::vector<ClientReport>& reports);

// ---------------------------------------------------------------------------------------
// Building blocks for collectors elsewhere (embedded/, the supervisor).

/// A family of one type; add samples with the functions below.
prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type);
/// Adds a counter or gauge sample with `labels` (name, value pairs).
void add_sample(prometheus::MetricFamily& family, double value,
                std::vector<std::pair<std::string, std::string>> labels = {});
/// Adds a histogram sample in seconds from a LatencyHistogram in nanoseconds, with the
/// standard latency buckets (1 µs to 10 s).
void add_histogram(prometheus::MetricFamily& family, const LatencyHistogram& histogram,
                   std::vector<std::pair<std::string, std::string>> labels = {});

}  // namespace mycelium::metrics
