#pragma once
// Internal to host/src/transport: what a connection reads from its incoming
// shared-memory ring goes to the bus.

#include <asio/any_io_executor.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "../cork.hpp"
#include "../link_traffic.hpp"
#include "../server_state.hpp"
#include "shm_setup.hpp"
#include "mycelium/bus.hpp"
#include "mycelium/shm_ring.hpp"

namespace mycelium::link::detail {

/// Reads the incoming ring once the connection switched to it: in batches and runs, a
/// bounded spin between them (RingReader), then a park on the doorbell. Application
/// frames go to the bus in runs of one type in address order; control frames, and the
/// checks every application frame passes, are the connection's.
///
/// Threading: the connection's strand.
class RingInbound {
public:
    /// What the reader asks of its connection.
    class Link {
    public:
        /// Whether the connection is closing or closed: reading stops.
        virtual bool closing() const noexcept = 0;
        /// A control frame read from the ring.
        virtual void on_frame(std::uint16_t type_id, std::span<const std::byte> payload) = 0;
        /// Whether an application frame passes the connection's filter (else dropped).
        virtual bool acceptable(std::uint16_t type_id, std::span<const std::byte> payload) = 0;
        /// Publishes a run of application frames (held when the connection is paused).
        virtual void publish_from_link(std::span<const MessageView> run) = 0;
        /// Whether to go on reading: false when the connection is paused (it resumes the
        /// ring itself, with drain()).
        virtual bool keep_reading(bool from_ring) = 0;
        /// Closes with ERROR `code` (bad input: logged as such).
        virtual void fail(ErrorCode code, const std::string& reason) = 0;
        /// Closes with ERROR `code`, without the bad-input warning.
        virtual void close_with_error(ErrorCode code, const std::string& reason) = 0;
        /// Closes at once.
        virtual void finish() noexcept = 0;
        /// Keeps the connection alive while a turn is posted or the doorbell watched.
        virtual std::shared_ptr<void> keep_alive() = 0;

    protected:
        ~Link() = default;
    };

    RingInbound(Link& link, Corkable& corkable, ServerState& state, ShmSetup& shm, LinkTraffic& traffic,
                asio::any_io_executor strand, const std::string& peer, std::uint64_t id);

    /// Posts the first turn of reading (the switch to the rings is done).
    void start();
    /// A turn: batches while frames come and the spin lasts, then a yield or a park.
    void drain();
    /// Reads what the ring holds now, without waiting (before closing on end of stream).
    void drain_now();
    /// Whether a frame being handled came through the ring (not the socket).
    bool reading() const noexcept { return reading_; }

private:
    void post_turn();
    void park(RingReader& reader);
    /// Visits up to `max` ring frames; false when the ring failed (the link is closing).
    bool read(std::size_t max, std::size_t& visited);
    void on_failure(const shm::RingFailure& failure);

    Link& link_;
    Corkable& corkable_;
    ServerState& state_;
    ShmSetup& shm_;
    LinkTraffic& traffic_;
    asio::any_io_executor strand_;
    const std::string& peer_;
    const std::uint64_t id_;
    bool reading_ = false;  // a frame from the ring is being handled
};

}  // namespace mycelium::link::detail
