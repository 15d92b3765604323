// HandshakeReader (host/src/transport/handshake.hpp): the opening handshake in any pieces.

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "handshake.hpp"
#include "mycelium/link_protocol.hpp"

using namespace mycelium::link;
using mycelium::link::detail::HandshakeReader;

namespace {

std::array<std::uint8_t, control::DIGEST_SIZE> digest(std::uint8_t seed) {
    std::array<std::uint8_t, control::DIGEST_SIZE> d{};
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::uint8_t>(seed + i);
    return d;
}

}  // namespace

TEST_SUITE("transport.protocol") {
    TEST_CASE("a handshake fed byte by byte completes and hands back what follows it") {
        const auto expected = digest(7);
        std::vector<std::byte> bytes = encode_handshake(expected);
        REQUIRE(bytes.size() == control::HANDSHAKE_SIZE);
        bytes.push_back(std::byte{0xAB});
        HandshakeReader reader(expected);
        for (std::size_t i = 0; i + 1 < control::HANDSHAKE_SIZE; ++i) {
            CHECK(reader.feed(std::span(bytes).subspan(i, 1)).empty());
            CHECK(reader.state() == HandshakeReader::State::Reading);
            CHECK(reader.received() == i + 1);
        }
        const auto rest = reader.feed(std::span(bytes).subspan(control::HANDSHAKE_SIZE - 1));
        CHECK(reader.state() == HandshakeReader::State::Done);
        REQUIRE(rest.size() == 1);
        CHECK(rest[0] == std::byte{0xAB});
    }

    TEST_CASE("a wrong length is refused after two bytes, a wrong digest once it is complete") {
        const auto expected = digest(1);
        {
            HandshakeReader reader(expected);
            const std::array<std::uint8_t, 31> short_digest{};
            const auto bytes = encode_handshake(short_digest);
            CHECK(reader.feed(std::span(bytes).first(2)).empty());
            CHECK(reader.state() == HandshakeReader::State::BadLength);
            CHECK(reader.length() == 31);
            CHECK(reader.feed(std::span(bytes).subspan(2)).empty());  // nothing more is taken
            CHECK(reader.received() == 2);
        }
        {
            HandshakeReader reader(expected);
            const auto other = digest(2);
            std::vector<std::byte> bytes = encode_handshake(other);
            bytes.push_back(std::byte{1});
            CHECK(reader.feed(bytes).empty());
            CHECK(reader.state() == HandshakeReader::State::Mismatch);
            CHECK(reader.digest() == other);
        }
    }
}
