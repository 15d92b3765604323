#include "handshake.hpp"

#include <algorithm>
#include <cstring>

#include "mycelium/codec.hpp"

namespace mycelium::link::detail {

HandshakeReader::HandshakeReader(std::span<const std::uint8_t, control::DIGEST_SIZE> expected) noexcept
    : expected_(expected) {}

std::span<const std::byte> HandshakeReader::feed(std::span<const std::byte> bytes) noexcept {
    while (!bytes.empty() && state_ == State::Reading) {
        // The length first, alone, so that a wrong one is refused before the digest arrives.
        const std::size_t want = (have_ < 2 ? 2 : control::HANDSHAKE_SIZE) - have_;
        const std::size_t take = std::min(want, bytes.size());
        std::memcpy(bytes_.data() + have_, bytes.data(), take);
        have_ += take;
        bytes = bytes.subspan(take);
        if (have_ == 2 && length() != control::DIGEST_SIZE) {
            state_ = State::BadLength;
        } else if (have_ == control::HANDSHAKE_SIZE) {
            state_ = std::memcmp(bytes_.data() + 2, expected_.data(), control::DIGEST_SIZE) == 0 ? State::Done
                                                                                                 : State::Mismatch;
        }
    }
    return state_ == State::Done ? bytes : std::span<const std::byte>{};
}

std::uint16_t HandshakeReader::length() const noexcept {
    return have_ < 2 ? 0 : load_le16(bytes_.data());
}

std::array<std::uint8_t, control::DIGEST_SIZE> HandshakeReader::digest() const noexcept {
    std::array<std::uint8_t, control::DIGEST_SIZE> out{};
    if (have_ == control::HANDSHAKE_SIZE) std::memcpy(out.data(), bytes_.data() + 2, out.size());
    return out;
}

}  // namespace mycelium::link::detail
