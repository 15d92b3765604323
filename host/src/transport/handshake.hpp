#pragma once
// Internal to host/src/transport: reading the digest handshake a connection opens with
// (docs/wire-protocol.md, "Handshake"): a u16 LE length that must be 32, then the digest,
// which must be the host's. Bytes are fed as they arrive, in any pieces; the reader says
// when the handshake is complete or wrong, and returns what came after it.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "mycelium/link_protocol.hpp"

namespace mycelium::link::detail {

/// Thread safety: one connection's, used on its strand only.
class HandshakeReader {
public:
    enum class State : std::uint8_t {
        Reading,    ///< more bytes needed
        Done,       ///< the right length and the expected digest
        BadLength,  ///< the length is not DIGEST_SIZE (length() says what it was)
        Mismatch,   ///< another digest (digest() says which)
    };

    explicit HandshakeReader(std::span<const std::uint8_t, control::DIGEST_SIZE> expected) noexcept;

    /// Takes the handshake's bytes from the front of `bytes` and returns the rest: the
    /// bytes after a complete handshake, or nothing while Reading or once wrong.
    std::span<const std::byte> feed(std::span<const std::byte> bytes) noexcept;

    State state() const noexcept { return state_; }
    /// Bytes of the handshake received so far (of control::HANDSHAKE_SIZE).
    std::size_t received() const noexcept { return have_; }
    /// The length field, once two bytes are in.
    std::uint16_t length() const noexcept;
    /// The digest received, once complete.
    std::array<std::uint8_t, control::DIGEST_SIZE> digest() const noexcept;

private:
    std::span<const std::uint8_t, control::DIGEST_SIZE> expected_;
    std::array<std::byte, control::HANDSHAKE_SIZE> bytes_{};
    std::size_t have_ = 0;
    State state_ = State::Reading;
};

}  // namespace mycelium::link::detail
