#pragma once
// Internal to host/src/transport: what a connection receives from the bus, and what a
// peer link tells its peer this node wants.

#include <cstdint>
#include <functional>
#include <map>
#include <span>

#include "outbox.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/link.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::link::detail {

/// The bus subscriptions that feed one connection, one per type it receives, and, on a
/// peer link, the interest watch that declares this node's wants to the peer.
///
/// Threading: the connection's strand. The sink is called on publishing threads.
class Subscriptions {
public:
    /// Where the subscribed runs go: the connection's outgoing side.
    class Sink {
    public:
        /// A run of published messages of one type. Any publishing thread.
        virtual void on_bus_messages(std::span<const MessageView> run) = 0;

    protected:
        ~Sink() = default;
    };

    /// `sink` and `outbox` outlive this object (they belong to the same connection).
    Subscriptions(Bus& bus, const schema::Registry& registry, Outbox& outbox, Sink& sink) noexcept
        : bus_(bus), registry_(registry), outbox_(outbox), sink_(sink) {}
    ~Subscriptions() { close(); }
    Subscriptions(const Subscriptions&) = delete;
    Subscriptions& operator=(const Subscriptions&) = delete;

    /// Subscribes to `type_id`, once. What a peer subscribes to is not this node's
    /// interest: declaring it to other peers would relay between peers.
    void subscribe(std::uint16_t type_id, Role role);
    /// Subscribes to every type of the contracts (a legacy client).
    void subscribe_all(Role role);
    void unsubscribe(std::uint16_t type_id) { subscriptions_.erase(type_id); }
    /// Ends every subscription (a legacy client that says HELLO after all); waits for
    /// callbacks running on other threads.
    void clear() noexcept { subscriptions_.clear(); }

    /// Calls `declare(type_id, interested)` for each contract type this node wants, now
    /// and at each change, until close(). Other ids would be a protocol violation on the
    /// far side: local code may subscribe to any id, but only contract types cross a link.
    void declare_interest(std::function<void(std::uint16_t type_id, bool interested)> declare);

    /// Ends the interest watch, then the subscriptions; waits for a call in progress on
    /// another thread.
    void close() noexcept;

private:
    Bus& bus_;
    const schema::Registry& registry_;
    Outbox& outbox_;
    Sink& sink_;
    std::map<std::uint16_t, Subscription> subscriptions_;
    InterestWatch interest_;
};

}  // namespace mycelium::link::detail
