// What a connection receives from the bus, and what a peer link declares to its peer.

#include "subscriptions.hpp"

#include <utility>

namespace mycelium::link::detail {

void Subscriptions::subscribe(std::uint16_t type_id, Role role) {
    if (subscriptions_.contains(type_id)) return;
    SubscribeOptions options{.counts_as_interest = role != Role::Peer};
    // Block pauses whoever feeds a full queue; the bus asks before it delivers.
    if (outbox_.policy() == SlowConsumerPolicy::Block) {
        options.has_room = &Outbox::room_probe;
        options.room_context = &outbox_;
    }
    // The sink outlives the subscription: close() and the destructor end it first, and
    // ending it waits for callbacks in flight.
    Sink* sink = &sink_;
    subscriptions_.emplace(
        type_id,
        bus_.subscribe_batch(type_id, [sink](std::span<const MessageView> run) { sink->on_bus_messages(run); }, options));
}

void Subscriptions::subscribe_all(Role role) {
    for (const auto& message : registry_.messages()) subscribe(message.type_id, role);
}

void Subscriptions::declare_interest(std::function<void(std::uint16_t type_id, bool interested)> declare) {
    interest_ = bus_.watch_interest(
        [this, declare = std::move(declare)](std::uint16_t type_id, bool interested) {
            if (type_id < schema::MIN_APP_TYPE_ID || registry_.find(type_id) == nullptr) return;
            declare(type_id, interested);
        });
}

void Subscriptions::close() noexcept {
    interest_.close();  // waits for a listener call in progress on another thread
    subscriptions_.clear();  // Subscription::close is noexcept, and so is clearing the map
}

}  // namespace mycelium::link::detail
