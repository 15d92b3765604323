// A LinkServer's LinkStats and PeerStatus as Prometheus metrics. Reasons become labels,
// so "why are connections failing" is one query: sum by (reason).

#include "mycelium/metrics.hpp"

namespace mycelium::metrics {

namespace {

enum class FamilyId {
#define MYCELIUM_FAMILY_ID(family, name, label_name, help) family,
    MYCELIUM_LINK_COUNTER_FAMILIES(MYCELIUM_FAMILY_ID)
#undef MYCELIUM_FAMILY_ID
};

struct CounterFamily {
    FamilyId id;
    const char* name;
    const char* label_name;
    const char* help;
};

constexpr CounterFamily FAMILIES[] = {
#define MYCELIUM_FAMILY_INFO(family, name, label_name, help) {FamilyId::family, name, label_name, help},
    MYCELIUM_LINK_COUNTER_FAMILIES(MYCELIUM_FAMILY_INFO)
#undef MYCELIUM_FAMILY_INFO
};

struct Counter {
    FamilyId family;
    const char* label;
    std::uint64_t link::LinkStats::*field;
};

constexpr Counter COUNTERS[] = {
#define MYCELIUM_COUNTER_INFO(field, family, label, doc) {FamilyId::family, label, &link::LinkStats::field},
    MYCELIUM_LINK_COUNTERS(MYCELIUM_COUNTER_INFO)
#undef MYCELIUM_COUNTER_INFO
};

using Families = std::vector<prometheus::MetricFamily>;
using prometheus::MetricType;

double as_double(std::uint64_t v) { return static_cast<double>(v); }

/// What is open and queued now, and the frames dropped per client.
void add_connection_families(const std::vector<Listener>& listeners, Families& out) {
    auto active = family("mycelium_link_connections", "Connections open now", MetricType::Gauge);
    for (const auto& [server, listener] : listeners) add_sample(active, as_double(server->stats().active), {{"listener", listener}});
    out.push_back(std::move(active));
    auto queued = family("mycelium_link_send_queue_frames",
                         "Frames waiting in the connections' send queues now", MetricType::Gauge);
    for (const auto& [server, listener] : listeners) add_sample(queued, as_double(server->queued_frames()), {{"listener", listener}});
    out.push_back(std::move(queued));
    {
        auto f = family("mycelium_link_client_bad_frames_total",
                        "Frames an open connection sent that were dropped as bad input, by client and reason",
                        MetricType::Counter);
        for (const auto& [server, listener] : listeners) {
            for (const link::ClientDrops& bad : server->client_drops()) {
                if (bad.unknown_type == 0 && bad.size_mismatch == 0 && bad.invalid_payload == 0) continue;
                add_sample(f, as_double(bad.unknown_type),
                           {{"listener", listener}, {"client", bad.client}, {"reason", "unknown_type"}});
                add_sample(f, as_double(bad.size_mismatch),
                           {{"listener", listener}, {"client", bad.client}, {"reason", "size_mismatch"}});
                add_sample(f, as_double(bad.invalid_payload),
                           {{"listener", listener}, {"client", bad.client}, {"reason", "invalid_payload"}});
            }
        }
        out.push_back(std::move(f));
    }
    {
        auto f = family("mycelium_link_client_dropped_frames_total",
                        "Frames meant for an open connection that fell behind, dropped (slow consumer "
                        "policy drop_oldest), by client",
                        MetricType::Counter);
        for (const auto& [server, listener] : listeners)
            for (const link::ClientDrops& drops : server->client_drops())
                if (drops.slow_consumer != 0)
                    add_sample(f, as_double(drops.slow_consumer), {{"listener", listener}, {"client", drops.client}});
        out.push_back(std::move(f));
    }
}

/// The lifetime counters, family by family, as mycelium/link_counters.hpp lists them.
void add_counter_families(const std::vector<Listener>& listeners, Families& out) {
    std::vector<link::LinkStats> stats;
    for (const auto& [server, listener] : listeners) stats.push_back(server->stats());
    for (const CounterFamily& info : FAMILIES) {
        auto f = family(info.name, info.help, MetricType::Counter);
        for (std::size_t i = 0; i < listeners.size(); ++i) {
            for (const Counter& c : COUNTERS) {
                if (c.family != info.id) continue;
                std::vector<std::pair<std::string, std::string>> labels{{"listener", listeners[i].second}};
                if (*info.label_name != '\0') labels.emplace_back(info.label_name, c.label);
                add_sample(f, as_double(stats[i].*c.field), labels);
            }
        }
        out.push_back(std::move(f));
    }
}

/// Each peer node's link; a family without a peer is left out.
void add_peer_families(const std::vector<Listener>& listeners, Families& out) {
    auto up = family("mycelium_peer_up", "1 when the link to the peer node is up", MetricType::Gauge);
    auto connects = family("mycelium_peer_connects_total", "Links established to the peer node", MetricType::Counter);
    auto failures =
        family("mycelium_peer_connect_failures_total", "Failed dials of the peer node", MetricType::Counter);
    auto frames_in = family("mycelium_peer_frames_received_total", "Frames from the peer node", MetricType::Counter);
    auto frames_out = family("mycelium_peer_frames_sent_total", "Frames to the peer node", MetricType::Counter);
    auto bytes_in = family("mycelium_peer_received_bytes_total", "Bytes from the peer node", MetricType::Counter);
    auto bytes_out = family("mycelium_peer_sent_bytes_total", "Bytes to the peer node", MetricType::Counter);
    for (const auto& [server, listener] : listeners) {
        for (const link::PeerStatus& p : server->peers()) {
            const std::vector<std::pair<std::string, std::string>> labels{{"listener", listener}, {"peer", p.name}};
            add_sample(up, p.connected ? 1 : 0, labels);
            add_sample(connects, as_double(p.connects), labels);
            add_sample(failures, as_double(p.connect_failures), labels);
            add_sample(frames_in, as_double(p.frames_in), labels);
            add_sample(frames_out, as_double(p.frames_out), labels);
            add_sample(bytes_in, as_double(p.bytes_in), labels);
            add_sample(bytes_out, as_double(p.bytes_out), labels);
        }
    }
    for (auto* f : {&up, &connects, &failures, &frames_in, &frames_out, &bytes_in, &bytes_out})
        if (!f->metric.empty()) out.push_back(std::move(*f));
}

}  // namespace

std::shared_ptr<prometheus::Collectable> link_collector(std::vector<Listener> listeners) {
    return from_function([listeners = std::move(listeners)] {
        // Each family once, with one sample per listener: two blocks of one name would
        // make the page invalid.
        Families out;
        add_connection_families(listeners, out);
        add_counter_families(listeners, out);
        add_peer_families(listeners, out);
        return out;
    });
}

}  // namespace mycelium::metrics
