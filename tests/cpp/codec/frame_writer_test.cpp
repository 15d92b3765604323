#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "codec_test_support.hpp"
#include "mycelium/codec.hpp"

using namespace codec_test;
using mycelium::codec::append_frame;
using mycelium::codec::decode_header;
using mycelium::codec::encode_header;
using mycelium::codec::frame_size;
using mycelium::codec::FrameHeader;
using mycelium::codec::HEADER_SIZE;
using mycelium::codec::write_frame;
using mycelium::schema::DEFAULT_MAX_PAYLOAD;

namespace {

// The byte order is part of the contract, so it is pinned at compile time too.
constexpr bool header_is_little_endian() {
    std::array<std::byte, HEADER_SIZE> h{};
    encode_header(0x03e9, 0x0a0b0c0d, h);
    return h[0] == std::byte{0xe9} && h[1] == std::byte{0x03} && h[2] == std::byte{0x0d} &&
           h[3] == std::byte{0x0c} && h[4] == std::byte{0x0b} && h[5] == std::byte{0x0a} &&
           decode_header(h) == FrameHeader{0x03e9, 0x0a0b0c0d};
}
static_assert(header_is_little_endian());

}  // namespace

TEST_SUITE("codec") {

TEST_CASE("a header is little-endian whatever the host's byte order") {
    std::array<std::byte, HEADER_SIZE> h{};
    encode_header(1001, 312, h);
    CHECK(Bytes(h.begin(), h.end()) == bytes_of({0xe9, 0x03, 0x38, 0x01, 0x00, 0x00}));
    CHECK(decode_header(h) == FrameHeader{1001, 312});
    encode_header(0xffff, 0xffffffff, h);
    CHECK(decode_header(h) == FrameHeader{0xffff, 0xffffffff});
}

TEST_CASE("append_frame writes the header then the payload after what is there") {
    Bytes out = bytes_of({0xaa});
    REQUIRE(append_frame(out, 5, bytes_of({1, 2, 3})).has_value());
    REQUIRE(append_frame(out, 1000, {}).has_value());
    CHECK(out == bytes_of({0xaa, 0x05, 0x00, 0x03, 0x00, 0x00, 0x00, 1, 2, 3,
                           0xe8, 0x03, 0x00, 0x00, 0x00, 0x00}));
}

TEST_CASE("write_frame fills exactly frame_size bytes and refuses a short buffer") {
    const Bytes payload = pattern(10, 3);
    Bytes out(frame_size(payload.size()) + 4, std::byte{0x5a});

    const auto r = write_frame(out, 2000, payload);
    REQUIRE(r.has_value());
    CHECK(*r == 16);
    Bytes expected;
    REQUIRE(append_frame(expected, 2000, payload).has_value());
    CHECK(Bytes(out.begin(), out.begin() + 16) == expected);
    CHECK(Bytes(out.begin() + 16, out.end()) == Bytes(4, std::byte{0x5a}));

    Bytes small(frame_size(payload.size()) - 1, std::byte{0x5a});
    const auto short_write = write_frame(small, 2000, payload);
    REQUIRE(!short_write);
    CHECK(short_write.error() == EncodeError::BufferTooSmall);
    CHECK(small == Bytes(small.size(), std::byte{0x5a}));
}

TEST_CASE("frames the peer would reject are refused and nothing is written") {
    Bytes out = bytes_of({1, 2});
    const Bytes before = out;
    std::array<std::byte, 64> buffer{};

    SUBCASE("type id 0") {
        const auto a = append_frame(out, 0, bytes_of({1}));
        REQUIRE(!a);
        CHECK(a.error() == EncodeError::InvalidType);
        const auto w = write_frame(buffer, 0, {});
        REQUIRE(!w);
        CHECK(w.error() == EncodeError::InvalidType);
    }
    SUBCASE("a payload over the protocol maximum") {
        const Bytes huge(DEFAULT_MAX_PAYLOAD + 1);
        const auto a = append_frame(out, 7, huge);
        REQUIRE(!a);
        CHECK(a.error() == EncodeError::Oversize);
        const auto w = write_frame(buffer, 7, huge);
        REQUIRE(!w);
        CHECK(w.error() == EncodeError::Oversize);
    }
    CHECK(out == before);
    CHECK(buffer == std::array<std::byte, 64>{});
}

TEST_CASE("a payload of exactly the protocol maximum can be written") {
    Bytes out;
    REQUIRE(append_frame(out, 7, Bytes(DEFAULT_MAX_PAYLOAD)).has_value());
    CHECK(out.size() == frame_size(DEFAULT_MAX_PAYLOAD));
}

TEST_CASE("frames survive an encode-decode round trip") {
    Rng rng(42);
    std::vector<Frame> frames;
    for (int i = 0; i < 400; ++i) {
        Frame f;
        f.type_id = static_cast<std::uint16_t>(1 + rng.below(65535));
        f.payload.resize(rng.below(8) == 0 ? 0 : rng.below(3000));
        for (auto& b : f.payload) b = rng.byte();
        frames.push_back(std::move(f));
    }
    Bytes stream;
    Bytes written(64 * 1024);
    for (const Frame& f : frames) {
        const auto w = write_frame(written, f.type_id, f.payload);
        REQUIRE(w.has_value());
        stream.insert(stream.end(), written.begin(), written.begin() + static_cast<std::ptrdiff_t>(*w));
    }
    CHECK(stream == stream_of(frames));

    const Decoded expected{frames, std::nullopt};
    CHECK(decode_whole(stream, without_table()) == expected);
    for (int i = 0; i < 20; ++i) {
        const auto cuts = random_cuts(rng, stream.size(), 1 + rng.below(5000));
        CHECK(decode_chunked(stream, cuts, without_table()) == expected);
    }
}

}  // TEST_SUITE
