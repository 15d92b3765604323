// The bus's per-type counters as Prometheus counters. Payloads have one fixed size per
// type, so bytes are messages times that size: exact, and free on the hot path.

#include "mycelium/metrics.hpp"

namespace mycelium::metrics {

std::shared_ptr<prometheus::Collectable> bus_collector(const Bus& bus, const schema::Registry& registry) {
    return from_function([&bus, &registry] {
        using prometheus::MetricType;
        auto published = family("mycelium_bus_published_total", "Messages published on the bus", MetricType::Counter);
        auto delivered = family("mycelium_bus_delivered_total",
                                "Deliveries: callbacks run plus messages accepted by a subscriber queue",
                                MetricType::Counter);
        auto dropped = family("mycelium_bus_dropped_total",
                              "Messages lost: refused or evicted by a full queue, or whose callback threw",
                              MetricType::Counter);
        auto published_bytes =
            family("mycelium_bus_published_bytes_total", "Payload bytes published on the bus", MetricType::Counter);
        auto delivered_bytes =
            family("mycelium_bus_delivered_bytes_total", "Payload bytes delivered", MetricType::Counter);
        auto dropped_bytes = family("mycelium_bus_dropped_bytes_total", "Payload bytes lost", MetricType::Counter);
        for (const schema::MessageSchema& message : registry.messages()) {
            const TypeCounters c = bus.counters(message.type_id);
            const auto size = static_cast<double>(message.size);
            add_sample(published, static_cast<double>(c.published), {{"type", message.name}});
            add_sample(delivered, static_cast<double>(c.delivered), {{"type", message.name}});
            add_sample(dropped, static_cast<double>(c.dropped), {{"type", message.name}});
            add_sample(published_bytes, static_cast<double>(c.published) * size, {{"type", message.name}});
            add_sample(delivered_bytes, static_cast<double>(c.delivered) * size, {{"type", message.name}});
            add_sample(dropped_bytes, static_cast<double>(c.dropped) * size, {{"type", message.name}});
        }
        return std::vector{std::move(published), std::move(delivered), std::move(dropped),
                           std::move(published_bytes), std::move(delivered_bytes), std::move(dropped_bytes)};
    });
}

}  // namespace mycelium::metrics
