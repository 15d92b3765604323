#pragma once
// Internal to host/src/transport: the counts of what crosses one connection.

#include <cstddef>
#include <memory>
#include <utility>

#include "server_state.hpp"

namespace mycelium::link::detail {

/// Counts what one connection reads and writes, in the server's totals and, once the
/// connection carries a peer's link, in that peer's record too.
///
/// Threading: the strand's (peer() is set there, before any count it must see).
class LinkTraffic {
public:
    explicit LinkTraffic(Counters& totals) noexcept : totals_(totals) {}

    /// From now on this connection is `peer`'s link.
    void set_peer(std::shared_ptr<PeerRecord> peer) noexcept { peer_ = std::move(peer); }
    /// The peer whose link this is; null for a client.
    const std::shared_ptr<PeerRecord>& peer() const noexcept { return peer_; }

    void received_bytes(std::size_t n) noexcept {
        Counters::add(totals_.bytes_received, n);
        if (peer_) Counters::add(peer_->bytes_in, n);
    }
    void received_frames(std::size_t n) noexcept {
        Counters::add(totals_.frames_received, n);
        if (peer_) Counters::add(peer_->frames_in, n);
    }
    /// One write of `bytes` carrying `frames` frames.
    void wrote(std::size_t bytes, std::size_t frames) noexcept {
        Counters::add(totals_.bytes_sent, bytes);
        Counters::add(totals_.frames_sent, frames);
        Counters::add(totals_.writes);
        if (peer_) {
            Counters::add(peer_->bytes_out, bytes);
            Counters::add(peer_->frames_out, frames);
        }
    }

private:
    Counters& totals_;
    std::shared_ptr<PeerRecord> peer_;
};

}  // namespace mycelium::link::detail
