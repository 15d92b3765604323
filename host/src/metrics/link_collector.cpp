// A LinkServer's LinkStats and PeerStatus as Prometheus metrics. Reasons become labels,
// so "why are connections failing" is one query: sum by (reason).

#include "mycelium/metrics.hpp"

namespace mycelium::metrics {

std::shared_ptr<prometheus::Collectable> link_collector(std::vector<Listener> listeners) {
    return from_function([listeners = std::move(listeners)] {
        using prometheus::MetricType;
        const auto n = [](std::uint64_t v) { return static_cast<double>(v); };
        // Each family once, with one sample per listener: two blocks of one name would
        // make the page invalid.
        std::vector<prometheus::MetricFamily> out;
        auto counter = [&](const char* name, const char* help, auto field) {
            auto f = family(name, help, MetricType::Counter);
            for (const auto& [server, listener] : listeners) add_sample(f, n(field(server->stats())), {{"listener", listener}});
            out.push_back(std::move(f));
        };
        auto by_reason = [&](const char* name, const char* help,
                             std::initializer_list<std::pair<const char*, std::uint64_t link::LinkStats::*>> reasons) {
            auto f = family(name, help, MetricType::Counter);
            for (const auto& [server, listener] : listeners) {
                const link::LinkStats s = server->stats();
                for (const auto& [reason, field] : reasons) add_sample(f, n(s.*field), {{"listener", listener}, {"reason", reason}});
            }
            out.push_back(std::move(f));
        };
        using S = link::LinkStats;
        counter("mycelium_link_accepted_total", "Connections accepted", [](const S& s) { return s.accepted; });
        auto active = family("mycelium_link_connections", "Connections open now", MetricType::Gauge);
        for (const auto& [server, listener] : listeners) add_sample(active, n(server->stats().active), {{"listener", listener}});
        out.push_back(std::move(active));
        auto queued = family("mycelium_link_send_queue_frames",
                             "Frames waiting in the connections' send queues now", MetricType::Gauge);
        for (const auto& [server, listener] : listeners) add_sample(queued, n(server->queued_frames()), {{"listener", listener}});
        out.push_back(std::move(queued));
        counter("mycelium_link_handshakes_total", "Handshakes completed", [](const S& s) { return s.handshakes_ok; });
        by_reason("mycelium_link_handshake_failures_total", "Connections closed during the digest handshake, by reason",
                  {{"bad_digest_length", &S::bad_digest_length},
                   {"digest_mismatch", &S::digest_mismatch},
                   {"handshake_timeout", &S::handshake_timeout}});
        by_reason("mycelium_link_decode_errors_total",
                  "Bad frames, by reason: oversize and protocol_error close the connection, unknown_type and "
                  "size_mismatch drop the frame",
                  {{"oversize", &S::oversize},
                   {"unknown_type", &S::unknown_type},
                   {"size_mismatch", &S::size_mismatch},
                   {"protocol_error", &S::protocol_errors}});
        {
            auto f = family("mycelium_link_client_bad_frames_total",
                            "Frames an open connection sent that were dropped as bad input, by client and reason",
                            MetricType::Counter);
            for (const auto& [server, listener] : listeners) {
                for (const link::ClientDrops& bad : server->client_drops()) {
                    if (bad.unknown_type == 0 && bad.size_mismatch == 0) continue;
                    add_sample(f, n(bad.unknown_type),
                               {{"listener", listener}, {"client", bad.client}, {"reason", "unknown_type"}});
                    add_sample(f, n(bad.size_mismatch),
                               {{"listener", listener}, {"client", bad.client}, {"reason", "size_mismatch"}});
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
                        add_sample(f, n(drops.slow_consumer), {{"listener", listener}, {"client", drops.client}});
            out.push_back(std::move(f));
        }
        by_reason("mycelium_link_disconnects_total",
                  "Connections the host closed, by reason (besides bad frames and handshakes)",
                  {{"slow_consumer", &S::slow_consumers},
                   {"max_connections", &S::rejected_max_connections},
                   {"truncated", &S::truncated}});
        counter("mycelium_link_flow_pauses_total",
                "Times a connection's reading was paused until a full queue its frames go to had room",
                [](const S& s) { return s.flow_pauses; });
        {
            auto f = family("mycelium_link_legacy_packed_frames_total",
                            "Padded-type frames converted between Mycelium's packed encoding and the C layout "
                            "for legacy clients: in (received packed), out (sent packed)",
                            MetricType::Counter);
            for (const auto& [server, listener] : listeners) {
                const link::LinkStats s = server->stats();
                add_sample(f, n(s.legacy_packed_in), {{"listener", listener}, {"direction", "in"}});
                add_sample(f, n(s.legacy_packed_out), {{"listener", listener}, {"direction", "out"}});
            }
            out.push_back(std::move(f));
        }
        counter("mycelium_link_legacy_layout_switches_total",
                "Legacy connections switched to the C layout by a padded type sent at its C size",
                [](const S& s) { return s.legacy_layout_switches; });
        counter("mycelium_link_dropped_frames_total", "Frames evicted from send queues (drop_oldest)",
                [](const S& s) { return s.dropped_frames; });
        counter("mycelium_link_unsendable_frames_total",
                "Local frames not sent because their size does not match their type",
                [](const S& s) { return s.unsendable; });
        counter("mycelium_link_frames_received_total", "Frames received", [](const S& s) { return s.frames_received; });
        counter("mycelium_link_frames_sent_total", "Frames sent", [](const S& s) { return s.frames_sent; });
        counter("mycelium_link_received_bytes_total", "Bytes received", [](const S& s) { return s.bytes_received; });
        counter("mycelium_link_sent_bytes_total", "Bytes sent", [](const S& s) { return s.bytes_sent; });
        counter("mycelium_link_writes_total", "Socket writes (frames_sent / writes shows coalescing)",
                [](const S& s) { return s.writes; });
        counter("mycelium_link_shm_links_total", "Connections that moved to shared-memory rings",
                [](const S& s) { return s.shm_links; });
        counter("mycelium_link_shm_refused_total", "Shared-memory requests refused (the link stays on the socket)",
                [](const S& s) { return s.shm_refused; });
        counter("mycelium_link_shm_corrupt_total", "Connections closed over a corrupt shared-memory ring",
                [](const S& s) { return s.shm_corrupt; });
        counter("mycelium_link_shm_frames_received_total", "Frames read from shared-memory rings",
                [](const S& s) { return s.shm_frames_received; });
        counter("mycelium_link_shm_frames_sent_total", "Frames written to shared-memory rings",
                [](const S& s) { return s.shm_frames_sent; });

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
                add_sample(connects, n(p.connects), labels);
                add_sample(failures, n(p.connect_failures), labels);
                add_sample(frames_in, n(p.frames_in), labels);
                add_sample(frames_out, n(p.frames_out), labels);
                add_sample(bytes_in, n(p.bytes_in), labels);
                add_sample(bytes_out, n(p.bytes_out), labels);
            }
        }
        for (auto* f : {&up, &connects, &failures, &frames_in, &frames_out, &bytes_in, &bytes_out})
            if (!f->metric.empty()) out.push_back(std::move(*f));
        return out;
    });
}

}  // namespace mycelium::metrics
