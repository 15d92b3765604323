#pragma once
// Internal to host/src/transport: padded types to and from a legacy client
// (docs/wire-protocol.md, "Legacy clients and padded types").

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "server_state.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/packed_layout.hpp"

namespace mycelium::link::detail {

/// Mycelium's Python SDK packs a message's fields with no C padding, so for a type with
/// padding it sends, and expects, fewer bytes than the C layout. From a legacy client
/// (handshake only, no HELLO) the host takes either size and publishes the C layout; to
/// it, padded types go packed (LegacyLayout::Packed) until it sends one at its C size,
/// which shows it is a Rust client: the connection then gets C. HELLO clients and peers
/// always speak C.
///
/// Threading: start(), stop() and unpack() on the connection's strand; outgoing_layout()
/// and pack() on publishing threads.
class LegacyFrames {
public:
    LegacyFrames(const ServerState& state, Counters& counters, const std::string& peer) noexcept
        : state_(state), counters_(counters), peer_(peer) {}

    /// The connection is a legacy client: padded types go out as `layout` says.
    void start(LegacyLayout layout) noexcept {
        send_packed_.store(layout == LegacyLayout::Packed, std::memory_order_relaxed);
    }
    /// It is not (it said HELLO after all): padded types go out in the C layout.
    void stop() noexcept { send_packed_.store(false, std::memory_order_relaxed); }

    /// A legacy client's application frame, converted to the C layout when it is a
    /// padded type at its packed size (valid until the next call); nullopt when it is to
    /// be taken as it is. A padded type at its C size switches the connection to C.
    std::optional<MessageView> unpack(std::uint16_t type_id, std::span<const std::byte> payload);

    /// The packed layout `type_id` goes out in, or nullptr for the C layout.
    const schema::PackedLayout* outgoing_layout(std::uint16_t type_id) const noexcept {
        return send_packed_.load(std::memory_order_relaxed) ? state_.packed_layouts.find(type_id) : nullptr;
    }
    /// `run` (one padded type, C layout) packed, in this thread's buffers (valid until
    /// this thread's next call).
    std::span<const MessageView> pack(std::span<const MessageView> run, const schema::PackedLayout& layout);

private:
    const ServerState& state_;
    Counters& counters_;
    const std::string& peer_;
    std::atomic<bool> send_packed_{false};
    std::vector<std::byte> unpacked_;  // the last packed frame converted to C
};

}  // namespace mycelium::link::detail
