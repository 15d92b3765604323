#include <doctest/doctest.h>

#include <string>

#include "codec_test_support.hpp"
#include "mycelium/codec.hpp"

using namespace mycelium::codec;

TEST_SUITE("codec") {

TEST_CASE("every codec error has a stable name") {
    CHECK(to_string(DecodeError::Oversize) == "oversize");
    CHECK(to_string(DecodeError::Truncated) == "truncated");
    CHECK(to_string(DecodeError::UnknownType) == "unknown_type");
    CHECK(to_string(DecodeError::SizeMismatch) == "size_mismatch");
    CHECK(to_string(EncodeError::InvalidType) == "invalid_type");
    CHECK(to_string(EncodeError::Oversize) == "oversize");
    CHECK(to_string(EncodeError::BufferTooSmall) == "buffer_too_small");
}

TEST_CASE("a decode failure names the type id, the declared length and the limit") {
    CHECK(to_string(DecodeFailure{DecodeError::Oversize, 1001, 5000000, 4194304, 0, 0}) ==
          "oversize: type 1001 declares a 5000000-byte payload, limit 4194304");
    CHECK(to_string(DecodeFailure{DecodeError::SizeMismatch, 1001, 300, 4194304, 312, 0}) ==
          "size_mismatch: type 1001 declares a 300-byte payload, its message is 312 bytes");
    CHECK(to_string(DecodeFailure{DecodeError::UnknownType, 4242, 16, 4194304, 0, 0}) ==
          "unknown_type: type 4242 is not in the schema (16-byte payload)");
    CHECK(to_string(DecodeFailure{DecodeError::UnknownType, 0, 0, 4194304, 0, 0}) ==
          "unknown_type: type 0 is reserved (0-byte payload)");
    CHECK(to_string(DecodeFailure{DecodeError::Truncated, 0, 0, 4194304, 0, 3}) ==
          "truncated: stream ended after 3 of 6 header bytes");
    CHECK(to_string(DecodeFailure{DecodeError::Truncated, 1001, 312, 4194304, 0, 106}) ==
          "truncated: stream ended after 100 of 312 payload bytes of type 1001");
}

TEST_CASE("a decoder's failure carries the numbers of the frame that caused it") {
    FrameDecoder decoder(DecoderOptions{100, std::nullopt});
    const std::byte frame[] = {std::byte{0x07}, std::byte{0x00}, std::byte{0x65},
                               std::byte{0x00}, std::byte{0x00}, std::byte{0x00}};
    const auto r = decoder.feed(frame, [](std::uint16_t, std::span<const std::byte>) {});
    REQUIRE(!r);
    CHECK(r.error() == DecodeError::Oversize);
    REQUIRE(decoder.failure() != nullptr);
    CHECK(to_string(*decoder.failure()) == "oversize: type 7 declares a 101-byte payload, limit 100");
}

}  // TEST_SUITE
