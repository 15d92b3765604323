// Writing a connection's outbox to its socket. The first write of a turn goes out in
// place (write_some on the non-blocking socket); what the socket does not take goes the
// asynchronous way.

#include "socket_writer.hpp"

#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <system_error>

#include "mycelium/log.hpp"
#include "mycelium/shm_os.hpp"

namespace mycelium::link::detail {

namespace {

// A write buffer above this is released after the write instead of kept for reuse, so
// one burst does not pin megabytes for the connection's lifetime.
constexpr std::size_t RETAINED_WRITE_CAPACITY = 1u << 20;

}  // namespace

bool is_disconnect(const asio::error_code& ec) noexcept {
    return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::error::connection_aborted;
}

SocketWriter::SocketWriter(Link& link, Pipe& socket, Outbox& outbox, ShmSetup& shm, LinkTraffic& traffic,
                           std::shared_ptr<spdlog::logger> log, log::KeyedLogLimiter& log_limits,
                           const std::string& peer)
    : link_(link),
      socket_(socket),
      outbox_(outbox),
      shm_(shm),
      traffic_(traffic),
      log_(std::move(log)),
      log_limits_(log_limits),
      peer_(peer) {}

void SocketWriter::start() {
    // The first write goes out right here when the socket takes it whole, which saves
    // the completion handler's round of the io loop (a request/reply hop pays one
    // syscall, not a syscall and a loop round). When more is queued by then, traffic is
    // dense: the rest goes the asynchronous way, and frames queued meanwhile leave
    // together in the next, larger write.
    for (bool first = true;; first = false) {
        if (link_.finished()) return;
        // No write is in flight here: the OFFER and its descriptors go out in socket order.
        send_offer();
        if (link_.finished() || !take_pending()) return;
        std::size_t n = 0;
        if (first) {
            asio::error_code ec;
            if (!socket_.non_blocking()) socket_.non_blocking(true, ec);
            if (!ec) n = socket_.write_some(asio::buffer(inflight_), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                n = 0;
            } else if (ec) {
                return on_write_failed(ec);
            } else if (n == inflight_.size()) {
                count_written(n);
                continue;
            }
        }
        asio::async_write(socket_, asio::buffer(inflight_.data() + n, inflight_.size() - n),
                          [this, alive = link_.keep_alive(), n](const asio::error_code& e, std::size_t m) {
                              on_written(e, n + m);
                          });
        return;
    }
}

bool SocketWriter::take_pending() {
    inflight_frames_ = outbox_.take(inflight_);
    if (inflight_frames_ != 0) return true;
    if (shut_down_after_flush_) {
        // The ERROR frame is out: send FIN, then discard input until the client closes
        // (or the linger ends), so that no reset destroys the frame in flight.
        asio::error_code ignored;
        socket_.shutdown(asio::socket_base::shutdown_send, ignored);
        link_.sent_fin();
    }
    return false;
}

void SocketWriter::count_written(std::size_t n) {
    traffic_.wrote(n, inflight_frames_);
    inflight_frames_ = 0;
    inflight_.clear();
    if (inflight_.capacity() > RETAINED_WRITE_CAPACITY) inflight_ = {};
}

void SocketWriter::on_written(const asio::error_code& ec, std::size_t n) {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (link_.finished() || ec == asio::error::operation_aborted) return;
        if (ec) return on_write_failed(ec);
        count_written(n);
        start();
    } catch (const std::exception& e) {
        log_limited(*log_, log_limits_, spdlog::level::err, "write failed", 0, "{}: write failed: {}", peer_, e.what());
        link_.finish();
    }
}

void SocketWriter::on_write_failed(const asio::error_code& ec) {
    if (!is_disconnect(ec))
        log_limited(*log_, log_limits_, spdlog::level::warn, "write failed", 0, "{}: write failed: {}", peer_,
                    ec.message());
    link_.finish_later();
}

void SocketWriter::send_offer() {
    std::array<int, 4> fds{};
    const std::vector<std::byte> frame = shm_.take_offer(fds);
    if (frame.empty()) [[likely]] return;
    try {
        // The socket is non-blocking; send_fds waits (poll) for room, a short bounded time.
        shm::send_fds(socket_.native_handle(), frame, fds, std::chrono::milliseconds(1'000));
    } catch (const std::system_error& e) {
        log_limited(*log_, log_limits_, spdlog::level::warn, "cannot send the shared-memory offer", 0,
                    "{}: cannot send the shared-memory offer: {}", peer_, e.what());
        return link_.finish();
    }
    traffic_.wrote(frame.size(), 1);
}

}  // namespace mycelium::link::detail
