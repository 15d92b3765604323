// An accepted connection's digest handshake, read within its deadline.

#include "handshake_gate.hpp"

#include <fmt/format.h>

#include "mycelium/log.hpp"

namespace mycelium::link::detail {

HandshakeGate::HandshakeGate(Link& link, ServerState& state, asio::any_io_executor strand, const std::string& peer)
    : link_(link), state_(state), peer_(peer), reader_(state.registry.digest()), timer_(std::move(strand)) {}

void HandshakeGate::start() {
    timer_.expires_after(state_.options.handshake_timeout);
    timer_.async_wait([this, alive = link_.keep_alive()](const asio::error_code& ec) {
        const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
        try {
            if (ec == asio::error::operation_aborted || link_.closing() || done()) return;
            Counters::add(state_.counters.handshake_timeout);
            link_.fail(ErrorCode::HandshakeTimeout,
                       fmt::format("no handshake within {} ms ({} of {} bytes received)",
                                   state_.options.handshake_timeout.count(), reader_.received(),
                                   control::HANDSHAKE_SIZE));
        } catch (const std::exception& e) {
            state_.error_limited("handshake timer", "{}: handshake timer: {}", peer_, e.what());
            link_.finish();
        }
    });
}

std::span<const std::byte> HandshakeGate::feed(std::span<const std::byte> bytes) {
    const HandshakeReader::State before = reader_.state();
    bytes = reader_.feed(bytes);
    if (reader_.state() == before) return bytes;
    switch (reader_.state()) {
        case HandshakeReader::State::Reading:
            break;
        case HandshakeReader::State::BadLength:
            Counters::add(state_.counters.bad_digest_length);
            link_.fail(ErrorCode::BadDigestLength,
                       fmt::format("digest length {}, expected {}", reader_.length(), control::DIGEST_SIZE));
            break;
        case HandshakeReader::State::Mismatch:
            Counters::add(state_.counters.digest_mismatch);
            link_.fail(ErrorCode::DigestMismatch, fmt::format("schema digest {} does not match the host's {}",
                                                              schema::to_hex(reader_.digest()),
                                                              state_.registry.digest_hex()));
            break;
        case HandshakeReader::State::Done:
            timer_.cancel();
            Counters::add(state_.counters.handshakes_ok);
            break;
    }
    return bytes;
}

}  // namespace mycelium::link::detail
