#pragma once
// Internal to host/src/transport: the outbound side of a node-to-node link. A PeerDialer
// connects to one peer node, writes the digest handshake and HELLO role=peer, hands the
// socket to a Session (which then runs the symmetric peer protocol), and redials with
// exponential backoff and jitter whenever the dial fails or the link drops.

#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mycelium/endpoint.hpp"
#include "mycelium/link.hpp"
#include "session.hpp"
#include "transport.hpp"

namespace mycelium::link::detail {

/// Dials one peer and keeps one link to it until close().
///
/// Threading: every handler runs on the dialer's strand. start(), close() and
/// on_session_closed() may be called from any thread while the io threads run;
/// close_now() only once they have been joined. Lifetime: owned by ServerState::dialers,
/// destroyed after the io threads are joined and before the io_context, so handlers
/// capture `this` by raw pointer (a handler left in the io_context is destroyed, never
/// run).
class PeerDialer : public std::enable_shared_from_this<PeerDialer> {
public:
    PeerDialer(ServerState& state, std::shared_ptr<PeerRecord> record, Endpoint endpoint, PeerOptions options);
    PeerDialer(const PeerDialer&) = delete;
    PeerDialer& operator=(const PeerDialer&) = delete;

    /// Posts the first dial. Any thread.
    void start();
    /// Stops dialing: cancels a dial or a backoff in progress (posts to the strand); the
    /// link itself is a Session, closed by LinkServer::stop(). Any thread. Idempotent.
    void close();
    /// Like close(), run directly: only when no io thread runs any more.
    void close_now() noexcept;
    /// Called by the link's Session when it finishes: schedules a redial. Any thread.
    void on_session_closed();

private:
    void dial();
    void on_connect(std::uint64_t attempt, std::optional<Pipe> pipe, const std::string& error);
    void on_hello_written(std::uint64_t attempt, const asio::error_code& ec, std::size_t n);
    void fail(const std::string& why);
    void schedule();
    void cancel_all() noexcept;

    ServerState& state_;
    const std::shared_ptr<PeerRecord> record_;
    const Endpoint endpoint_;
    const PeerOptions options_;
    const std::string where_;
    std::vector<std::byte> hello_;  // the handshake and HELLO, written on every connect

    asio::strand<asio::io_context::executor_type> strand_;
    asio::steady_timer backoff_timer_;
    asio::steady_timer connect_timer_;
    const Transport& transport_;
    std::atomic<bool> stopped_{false};

    // Strand-only state.
    std::unique_ptr<Dial> dial_;         // the transport's connect in progress
    std::optional<Pipe> pipe_;           // connected, while the handshake is written
    std::uint64_t attempt_ = 0;  // tells a stale handler from the current dial
    bool timed_out_ = false;
    std::chrono::milliseconds backoff_;
    std::uint64_t failures_in_a_row_ = 0;
    std::chrono::steady_clock::time_point up_since_{};
    std::minstd_rand rng_;
};

}  // namespace mycelium::link::detail
