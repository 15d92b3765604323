#pragma once
// Internal to host/src/transport: which frames of a published run a link forwards (the
// forwarding rules), apart from the Session that sends them, so that the rules read, and
// are tested, on their own:
// - never back to the link the frame came from (no echo);
// - never from a peer to a peer: a frame crosses at most one node-to-node link;
// - only at its type's size in the contracts: the bus does not check sizes, and the far
//   side would close the whole link over one bad frame, so a local publisher's mistake
//   costs only its own frame.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "mycelium/bus.hpp"
#include "mycelium/link.hpp"

namespace mycelium::link::detail {

/// The link a run is offered to.
struct ForwardingLink {
    std::uint64_t id = 0;
    Role role = Role::Client;
};

/// Why a frame of the run is not forwarded.
enum class Skipped : std::uint8_t {
    Echo,        ///< it came from this link, or from a peer and this link is a peer
    Unsendable,  ///< its type is not in the contracts, or its size is not the type's
};

/// Offers `run` (one type; `expected_size` is that type's size, or nullopt when the
/// contracts do not define it) to `link`, published under `origin`. Calls send(piece) for
/// each longest piece of frames to forward and skip(view, why) for each other frame, in
/// the run's order. Inline: this is the publish path of every link.
template <class Send, class Skip>
void forward_run(std::span<const MessageView> run, const Origin& origin, ForwardingLink link,
                 std::optional<std::size_t> expected_size, Send&& send, Skip&& skip) {
    const bool from_this_side =
        origin.link_id == link.id || (origin.role == Role::Peer && link.role == Role::Peer);
    std::size_t from = 0;
    for (std::size_t i = 0; i < run.size(); ++i) {
        const MessageView& view = run[i];
        const bool echo = from_this_side && origin.describes(view);
        const bool sendable = expected_size && *expected_size == view.payload.size();
        if (!echo && sendable) [[likely]] continue;
        if (i > from) send(run.subspan(from, i - from));
        from = i + 1;
        skip(view, echo ? Skipped::Echo : Skipped::Unsendable);
    }
    if (from < run.size()) send(run.subspan(from));
}

}  // namespace mycelium::link::detail
