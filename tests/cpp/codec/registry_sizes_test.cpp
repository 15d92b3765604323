#include <doctest/doctest.h>

#include <filesystem>
#include <vector>

#include "mycelium/codec.hpp"
#include "mycelium/schema.hpp"

using namespace mycelium;

TEST_SUITE("codec") {

TEST_CASE("a decoder checks application frames against a loaded registry") {
    const auto registry = schema::Registry::load_file(std::filesystem::path(MYCELIUM_FIXTURES_DIR) / "contracts" /
                                                      "valid" / "all_types.yaml");
    codec::FrameDecoder decoder(codec::DecoderOptions{schema::DEFAULT_MAX_PAYLOAD, codec::TypeSizes::of(registry)});
    std::vector<std::byte> stream;
    const std::vector<std::byte> text(312);
    REQUIRE(codec::append_frame(stream, 1001, text));
    int frames = 0;
    REQUIRE(decoder.feed(stream, [&](std::uint16_t type, std::span<const std::byte> payload) {
        CHECK(type == 1001);
        CHECK(payload.size() == 312);
        ++frames;
    }));
    CHECK(frames == 1);

    std::vector<std::byte> wrong;
    REQUIRE(codec::append_frame(wrong, 1001, std::vector<std::byte>(311)));
    auto result = decoder.feed(wrong, [](std::uint16_t, std::span<const std::byte>) {});
    REQUIRE_FALSE(result);
    CHECK(result.error() == codec::DecodeError::SizeMismatch);

    codec::FrameDecoder unknown(codec::DecoderOptions{schema::DEFAULT_MAX_PAYLOAD, codec::TypeSizes::of(registry)});
    std::vector<std::byte> other;
    REQUIRE(codec::append_frame(other, 5555, std::vector<std::byte>(8)));
    result = unknown.feed(other, [](std::uint16_t, std::span<const std::byte>) {});
    REQUIRE_FALSE(result);
    CHECK(result.error() == codec::DecodeError::UnknownType);
}

}  // TEST_SUITE
