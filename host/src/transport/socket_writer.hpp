#pragma once
// Internal to host/src/transport: writing a connection's outbox to its socket.

#include <asio/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "limited_log.hpp"
#include "link_traffic.hpp"
#include "outbox.hpp"
#include "shm/shm_setup.hpp"
#include "transport.hpp"

namespace mycelium::link::detail {

/// Takes what the Outbox queued for the socket and writes it, one write in flight at a
/// time; a waiting SHM_OFFER goes out first, with its descriptors, in socket order.
///
/// Threading: the connection's strand, or one of its own bus callbacks running on it
/// (a reply written in place). Owns the buffer of the write in flight.
class SocketWriter {
public:
    /// What the writer asks of its connection.
    class Link {
    public:
        /// Whether the connection is closed (nothing more is written).
        virtual bool finished() const noexcept = 0;
        /// Keeps the connection alive while an asynchronous write is in flight.
        virtual std::shared_ptr<void> keep_alive() = 0;
        /// Closes the connection now (the strand, outside any of its bus callbacks).
        virtual void finish() noexcept = 0;
        /// Closes the connection from a later handler: a write may run inside one of the
        /// connection's own bus callbacks, and closing waits for those.
        virtual void finish_later() = 0;
        /// The closing ERROR and everything queued before it are out, and FIN is sent.
        virtual void sent_fin() = 0;

    protected:
        ~Link() = default;
    };

    SocketWriter(Link& link, Pipe& socket, Outbox& outbox, ShmSetup& shm, LinkTraffic& traffic,
                 std::shared_ptr<spdlog::logger> log, log::KeyedLogLimiter& log_limits, const std::string& peer);

    /// Writes until the outbox is empty or the socket is full (then asynchronously).
    /// Only when no write is in flight (Outbox::schedule_write decides).
    void start();
    /// Once the queued frames are out, sends FIN: the connection is closing with an
    /// ERROR, which no reset may destroy in flight.
    void shut_down_after_flush() noexcept { shut_down_after_flush_ = true; }

    /// Calls `visit(type_id)` for every frame of the write in progress (not all of it may
    /// have left). Strand.
    template <class Visit>
    void for_each_inflight_type(Visit&& visit) const {
        for (std::size_t at = 0; at + codec::HEADER_SIZE <= inflight_.size();) {
            const codec::FrameHeader header = codec::detail::read_header(inflight_.data() + at);
            visit(header.type_id);
            at += codec::frame_size(header.payload_length);
        }
    }

private:
    /// Moves the queued frames into inflight_; false (after a FIN when closing) if none.
    bool take_pending();
    /// Counts a completed write of inflight_ and empties it.
    void count_written(std::size_t n);
    void on_written(const asio::error_code& ec, std::size_t n);
    void on_write_failed(const asio::error_code& ec);
    /// Sends a waiting SHM_OFFER with its descriptors (sendmsg).
    void send_offer();

    Link& link_;
    Pipe& socket_;
    Outbox& outbox_;
    ShmSetup& shm_;
    LinkTraffic& traffic_;
    const std::shared_ptr<spdlog::logger> log_;
    log::KeyedLogLimiter& log_limits_;  // the server's: write failures are limited per reason
    const std::string& peer_;

    std::vector<std::byte> inflight_;  // the buffer of the write in progress
    std::size_t inflight_frames_ = 0;
    bool shut_down_after_flush_ = false;
};

/// Whether `ec` says the other side went away (not worth a warning).
bool is_disconnect(const asio::error_code& ec) noexcept;

}  // namespace mycelium::link::detail
