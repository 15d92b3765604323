// A LinkServer's LinkStats and PeerStatus as Prometheus metrics. Reasons become labels,
// so "why are connections failing" is one query: sum by (reason).

#include "mycelium/metrics.hpp"

namespace mycelium::metrics {

std::shared_ptr<prometheus::Collectable> link_collector(const link::LinkServer& server, std::string listener) {
    return from_function([&server, listener = std::move(listener)] {
        using prometheus::MetricType;
        const link::LinkStats s = server.stats();
        const auto n = [](std::uint64_t v) { return static_cast<double>(v); };
        const std::pair<std::string, std::string> at{"listener", listener};
        std::vector<prometheus::MetricFamily> out;

        auto counter = [&](const char* name, const char* help, std::uint64_t value) {
            auto f = family(name, help, MetricType::Counter);
            add_sample(f, n(value), {at});
            out.push_back(std::move(f));
        };
        counter("mycelium_link_accepted_total", "Connections accepted", s.accepted);
        auto active = family("mycelium_link_connections", "Connections open now", MetricType::Gauge);
        add_sample(active, n(s.active), {at});
        out.push_back(std::move(active));
        counter("mycelium_link_handshakes_total", "Handshakes completed", s.handshakes_ok);

        auto handshake = family("mycelium_link_handshake_failures_total",
                                "Connections closed during the digest handshake, by reason", MetricType::Counter);
        for (const auto& [reason, value] : {std::pair{"bad_digest_length", s.bad_digest_length},
                                            {"digest_mismatch", s.digest_mismatch},
                                            {"handshake_timeout", s.handshake_timeout}})
            add_sample(handshake, n(value), {at, {"reason", reason}});
        out.push_back(std::move(handshake));

        auto decode = family("mycelium_link_decode_errors_total",
                             "Connections closed over a bad frame, by reason", MetricType::Counter);
        for (const auto& [reason, value] :
             {std::pair{"oversize", s.oversize}, {"unknown_type", s.unknown_type}, {"size_mismatch", s.size_mismatch},
              {"protocol_error", s.protocol_errors}})
            add_sample(decode, n(value), {at, {"reason", reason}});
        out.push_back(std::move(decode));

        auto disconnects = family("mycelium_link_disconnects_total",
                                  "Connections the host closed, by reason (besides bad frames and handshakes)",
                                  MetricType::Counter);
        for (const auto& [reason, value] : {std::pair{"slow_consumer", s.slow_consumers},
                                            {"max_connections", s.rejected_max_connections},
                                            {"truncated", s.truncated}})
            add_sample(disconnects, n(value), {at, {"reason", reason}});
        out.push_back(std::move(disconnects));

        counter("mycelium_link_dropped_frames_total", "Frames evicted from send queues (drop_oldest)",
                s.dropped_frames);
        counter("mycelium_link_unsendable_frames_total",
                "Local frames not sent because their size does not match their type", s.unsendable);
        counter("mycelium_link_frames_received_total", "Frames received", s.frames_received);
        counter("mycelium_link_frames_sent_total", "Frames sent", s.frames_sent);
        counter("mycelium_link_received_bytes_total", "Bytes received", s.bytes_received);
        counter("mycelium_link_sent_bytes_total", "Bytes sent", s.bytes_sent);
        counter("mycelium_link_writes_total", "Socket writes (frames_sent / writes shows coalescing)", s.writes);

        auto up = family("mycelium_peer_up", "1 when the link to the peer node is up", MetricType::Gauge);
        auto connects = family("mycelium_peer_connects_total", "Links established to the peer node", MetricType::Counter);
        auto failures =
            family("mycelium_peer_connect_failures_total", "Failed dials of the peer node", MetricType::Counter);
        auto frames_in = family("mycelium_peer_frames_received_total", "Frames from the peer node", MetricType::Counter);
        auto frames_out = family("mycelium_peer_frames_sent_total", "Frames to the peer node", MetricType::Counter);
        auto bytes_in = family("mycelium_peer_received_bytes_total", "Bytes from the peer node", MetricType::Counter);
        auto bytes_out = family("mycelium_peer_sent_bytes_total", "Bytes to the peer node", MetricType::Counter);
        for (const link::PeerStatus& p : server.peers()) {
            const std::vector<std::pair<std::string, std::string>> labels{at, {"peer", p.name}};
            add_sample(up, p.connected ? 1 : 0, labels);
            add_sample(connects, n(p.connects), labels);
            add_sample(failures, n(p.connect_failures), labels);
            add_sample(frames_in, n(p.frames_in), labels);
            add_sample(frames_out, n(p.frames_out), labels);
            add_sample(bytes_in, n(p.bytes_in), labels);
            add_sample(bytes_out, n(p.bytes_out), labels);
        }
        for (auto* f : {&up, &connects, &failures, &frames_in, &frames_out, &bytes_in, &bytes_out})
            if (!f->metric.empty()) out.push_back(std::move(*f));
        return out;
    });
}

}  // namespace mycelium::metrics
