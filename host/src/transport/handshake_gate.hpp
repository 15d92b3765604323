#pragma once
// Internal to host/src/transport: an accepted connection's digest handshake, read within
// its deadline (docs/wire-protocol.md, "Handshake").

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "handshake.hpp"
#include "server_state.hpp"

namespace mycelium::link::detail {

/// Reads the handshake (HandshakeReader) and refuses a wrong one, or none within
/// ServerOptions::handshake_timeout, with the ERROR that says which; counts each outcome.
///
/// Threading: the connection's strand.
class HandshakeGate {
public:
    /// What the gate asks of its connection.
    class Link {
    public:
        /// Whether the connection is closing or closed (the deadline no longer matters).
        virtual bool closing() const noexcept = 0;
        /// Closes with ERROR `code`.
        virtual void fail(ErrorCode code, const std::string& reason) = 0;
        /// Closes at once (when refusing failed).
        virtual void finish() noexcept = 0;
        /// Keeps the connection alive while the deadline is armed.
        virtual std::shared_ptr<void> keep_alive() = 0;

    protected:
        ~Link() = default;
    };

    HandshakeGate(Link& link, ServerState& state, asio::any_io_executor strand, const std::string& peer);

    /// Arms the deadline.
    void start();
    /// Takes the handshake's bytes from the front of `bytes` and returns the rest (the
    /// bytes after a complete handshake). A wrong handshake is refused here.
    std::span<const std::byte> feed(std::span<const std::byte> bytes);
    /// Whether the whole, right handshake has arrived.
    bool done() const noexcept { return reader_.state() == HandshakeReader::State::Done; }
    /// Bytes of the handshake received so far, for log lines.
    std::size_t received() const noexcept { return reader_.received(); }
    void cancel() noexcept { timer_.cancel(); }

private:
    Link& link_;
    ServerState& state_;
    const std::string& peer_;
    HandshakeReader reader_;
    asio::steady_timer timer_;
};

}  // namespace mycelium::link::detail
