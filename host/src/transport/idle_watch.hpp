#pragma once
// Internal to host/src/transport: closes a connection that has gone quiet and does not
// answer a PING (ServerOptions::idle_timeout), so that a client that vanished without a
// FIN (a half-open TCP connection, a frozen process) gives its slot back.

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "mycelium/link_protocol.hpp"

namespace mycelium::link::detail {

struct Counters;

/// Every half of the timeout it looks whether anything came in since the last look. A
/// first quiet half gets a PING (every HELLO client and peer answers one, docs/wire-
/// protocol.md), a second one the ERROR idle_timeout: a connection is closed between one
/// and one and a half timeouts after it last sent anything.
///
/// Never idle: a connection whose input the host itself holds (flow control, a
/// shutdown), one still in its handshake (HandshakeGate's deadline applies), and a legacy
/// client, which knows no PING and may rightly only listen.
///
/// Threading: the connection's strand, but for heard() (the strand too, from its reads).
class IdleWatch {
public:
    /// What the watch asks of its connection.
    class Link {
    public:
        virtual bool closing() const noexcept = 0;
        /// Whether the connection said HELLO, so that it answers a PING.
        virtual bool answers_ping() const noexcept = 0;
        /// Whether the host holds the connection's input (it is not reading it now).
        virtual bool input_held() const noexcept = 0;
        virtual void send_control(std::uint16_t type_id, std::span<const std::byte> payload) = 0;
        virtual void fail(ErrorCode code, const std::string& reason) = 0;
        virtual void finish() noexcept = 0;
        virtual std::shared_ptr<void> keep_alive() = 0;

    protected:
        ~Link() = default;
    };

    IdleWatch(Link& link, Counters& counters, asio::any_io_executor strand, std::chrono::milliseconds timeout);

    /// Starts watching (nothing when the timeout is 0).
    void start();
    /// Something came in.
    void heard() noexcept { heard_ = true; }
    void cancel() noexcept { timer_.cancel(); }

private:
    void arm();
    void look();

    Link& link_;
    Counters& counters_;
    const std::chrono::milliseconds timeout_;
    asio::steady_timer timer_;
    bool heard_ = false;
    bool pinged_ = false;
    std::uint64_t next_nonce_ = 1;
};

}  // namespace mycelium::link::detail
