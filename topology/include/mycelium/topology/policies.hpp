#pragma once
/// What a full queue does, how legacy clients get padded types, whose payloads are
/// trusted: the policies a
/// topology, the command line, the bus and the links all name. Defined once, here, in the
/// lowest layer: the bus (mycelium/mailbox.hpp) and the links (mycelium/link.hpp) use these
/// types under their own names.
///
/// Thread safety: value types and reentrant free functions.

#include <cstdint>
#include <optional>
#include <string_view>

namespace mycelium::topology {

/// What a bounded subscriber queue does when it is full; chosen per subscription
/// (`[nodes.queues] policy` in a topology).
enum class QueuePolicy : std::uint8_t {
    /// Default: nothing is lost; the publisher spins briefly, then parks until there is room.
    Block,
    /// Latest-value feeds: the oldest queued message is evicted (and counted as dropped).
    DropOldest,
    /// The new message is refused and counted; publish returns PublishError::QueueFull.
    Fail,
};

/// What a full per-connection send queue (or shared-memory ring) does with one more frame:
/// the slow-consumer policy (docs/wire-protocol.md, "Slow consumers").
enum class SlowConsumer : std::uint8_t {
    /// Keep the connection: evict the oldest queued frames to make room, counting each as
    /// dropped for that client. On a shared-memory ring, which never takes back a frame it
    /// has shown, the new frame is dropped and counted instead.
    DropOldest,
    /// Discard the queue, write ERROR slow_consumer if the socket takes it within
    /// SLOW_CONSUMER_LINGER, close; logged and counted (as NATS treats slow consumers).
    Disconnect,
    /// Backpressure: pause the producers feeding the consumer for at most the wait
    /// (`wait_ms`, ServerOptions::slow_consumer_wait), then Disconnect. A publisher on its
    /// own thread (a script, a C++ feed) waits for room; frames relayed from another
    /// connection are held by that connection, which stops reading its socket meanwhile
    /// (flow control), so no io thread ever waits.
    Block,
};

/// How a legacy client (handshake only, no HELLO) gets the types whose C layout has
/// padding (docs/wire-protocol.md "Legacy clients and padded types"). Whatever the
/// setting, the host accepts a padded type from a legacy client at either size.
enum class LegacyLayout : std::uint8_t {
    /// Fields packed with no padding, as Mycelium's Python SDK encodes and decodes them.
    /// A legacy client that sends a padded type at its C size is switched to C.
    Packed,
    /// The C layout, as every other connection gets it (Mycelium's Rust SDK).
    C,
};

/// Whose application payloads a node relays without checking them against the contracts
/// (a node's `trust_payloads`, `--trust-payloads`; docs/wire-protocol.md "Bad frames").
/// The type and the size of every frame are checked whatever this says.
enum class TrustPayloads : std::uint8_t {
    /// Default: every client's and every peer's payloads are validated (strings UTF-8 and
    /// within capacity, vector counts within capacity, the rules); a bad one is dropped.
    None,
    /// Frames from other nodes are relayed unchecked: each node checks its own clients', so
    /// a frame is checked once, where it enters the mesh.
    Peers,
    /// Nothing is checked: every link of the node is trusted.
    All,
};

/// "block", "drop_oldest" or "fail".
std::string_view to_string(QueuePolicy policy) noexcept;
/// "drop_oldest", "disconnect" or "block".
std::string_view to_string(SlowConsumer policy) noexcept;
/// The policy named `text` ("drop_oldest", "disconnect", "block"); nullopt for others
/// (a topology's old "fail" is the parser's business: it reads as disconnect, warned).
std::optional<SlowConsumer> parse_slow_consumer(std::string_view text) noexcept;
/// "packed" or "c".
std::string_view to_string(LegacyLayout layout) noexcept;
/// The layout named `text` ("packed", "c"); nullopt for others.
std::optional<LegacyLayout> parse_legacy_layout(std::string_view text) noexcept;
/// "none", "peers" or "all".
std::string_view to_string(TrustPayloads trust) noexcept;
/// The setting named `text` ("none", "peers", "all"); nullopt for others.
std::optional<TrustPayloads> parse_trust_payloads(std::string_view text) noexcept;

}  // namespace mycelium::topology
