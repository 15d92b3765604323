#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "codec_test_support.hpp"
#include "mycelium/codec.hpp"

using namespace codec_test;
using mycelium::codec::DecodeFailure;
using mycelium::codec::encode_header;
using mycelium::codec::HEADER_SIZE;
using mycelium::schema::DEFAULT_MAX_PAYLOAD;

namespace {

std::vector<Frame> decoding_should_succeed(const Bytes& stream, const DecoderOptions& options) {
    const Decoded d = decode_whole(stream, options);
    REQUIRE_MESSAGE(!d.error, "unexpected " << mycelium::codec::to_string(*d.error));
    return d.frames;
}

/// Feeds `stream` in one chunk, then finish(); the decoder must fail with exactly
/// `expected`. Returns the failure's details.
DecodeFailure decoding_should_fail(const Bytes& stream, const DecoderOptions& options,
                                   DecodeError expected) {
    FrameDecoder decoder(options);
    const auto fed = decoder.feed(stream, [](std::uint16_t, std::span<const std::byte>) {});
    if (fed) {
        const auto end = decoder.finish();
        REQUIRE_MESSAGE(!end, "decoding succeeded, expected " << mycelium::codec::to_string(expected));
        CHECK(end.error() == expected);
    } else {
        CHECK(fed.error() == expected);
    }
    REQUIRE(decoder.poisoned());
    CHECK(decoder.failure()->error == expected);
    return *decoder.failure();
}

Bytes header(std::uint16_t type_id, std::uint32_t length) {
    Bytes out(HEADER_SIZE);
    encode_header(type_id, length, std::span<std::byte, HEADER_SIZE>(out.data(), HEADER_SIZE));
    return out;
}

Bytes concat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

/// Application frames of every size in the table, control frames, empty payloads.
const std::vector<Frame> SAMPLE = {
    frame(1000, 16), frame(5, 0),  frame(1001, 312, 1), frame(1002, 0),
    frame(42, 3),    frame(1003, 8), frame(65535, 7),   frame(999, 1),
};

auto ignore_frames = [](std::uint16_t, std::span<const std::byte>) {};

}  // namespace

TEST_SUITE("codec") {

TEST_CASE("a stream decodes identically under every chunking") {
    const Bytes stream = stream_of(SAMPLE);
    const Decoded expected{SAMPLE, std::nullopt};
    REQUIRE(decode_whole(stream, with_table()) == expected);

    SUBCASE("every two-way split") {
        for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
            const std::size_t cuts[] = {cut};
            CHECK_MESSAGE(decode_chunked(stream, cuts, with_table()) == expected, "cut at " << cut);
        }
    }
    SUBCASE("every three-way split") {
        for (std::size_t a = 1; a < stream.size(); ++a) {
            for (std::size_t b = a; b < stream.size(); b += 1 + b % 3) {
                const std::size_t cuts[] = {a, b};
                const Decoded d = decode_chunked(stream, cuts, with_table());
                if (d != expected) FAIL("cuts at " << a << " and " << b);
            }
        }
    }
    SUBCASE("one byte at a time") {
        std::vector<std::size_t> cuts;
        for (std::size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
        CHECK(decode_chunked(stream, cuts, with_table()) == expected);
    }
    SUBCASE("random chunkings") {
        Rng rng(20240611);
        for (int i = 0; i < 2000; ++i) {
            const auto cuts = random_cuts(rng, stream.size(), 1 + rng.below(64));
            const Decoded d = decode_chunked(stream, cuts, with_table());
            if (d != expected) FAIL("random chunking " << i);
        }
    }
    SUBCASE("empty chunks in between") {
        const std::size_t cuts[] = {0, 0, 3, 3, 6, 6, 40, 40, stream.size()};
        CHECK(decode_chunked(stream, cuts, with_table()) == expected);
    }
}

TEST_CASE("a frame wholly inside a chunk is delivered without a copy") {
    const Bytes stream = stream_of({frame(1000, 16), frame(7, 100)});
    FrameDecoder decoder(with_table());
    std::vector<const std::byte*> seen;
    const auto r = decoder.feed(stream, [&](std::uint16_t, std::span<const std::byte> payload) {
        seen.push_back(payload.data());
    });
    REQUIRE(r.has_value());
    CHECK(*r == 2);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == stream.data() + HEADER_SIZE);
    CHECK(seen[1] == stream.data() + HEADER_SIZE + 16 + HEADER_SIZE);
    CHECK(decoder.buffer_capacity() == 0);
    CHECK(decoder.buffered_bytes() == 0);
}

TEST_CASE("a frame whose header alone is split still gets a zero-copy payload") {
    const Bytes stream = stream_of({frame(1001, 312)});
    const Bytes first(stream.begin(), stream.begin() + 4);
    const Bytes rest(stream.begin() + 4, stream.end());
    FrameDecoder decoder(with_table());
    const std::byte* seen = nullptr;
    auto on_frame = [&](std::uint16_t, std::span<const std::byte> payload) { seen = payload.data(); };
    REQUIRE(decoder.feed(first, on_frame).value() == 0);
    CHECK(decoder.buffered_bytes() == 4);
    REQUIRE(decoder.feed(rest, on_frame).value() == 1);
    CHECK(seen == rest.data() + 2);
    CHECK(decoder.buffer_capacity() == 0);
    CHECK(decoder.buffered_bytes() == 0);
}

TEST_CASE("split frames reuse one buffer in steady state") {
    const Bytes one = stream_of({frame(1001, 312)});
    FrameDecoder decoder(with_table());
    std::size_t frames = 0;
    auto on_frame = [&](std::uint16_t type_id, std::span<const std::byte> payload) {
        CHECK(type_id == 1001);
        CHECK(payload.size() == 312);
        ++frames;
    };
    std::size_t capacity = 0;
    for (int i = 0; i < 50; ++i) {
        const std::span<const std::byte> s(one);
        REQUIRE(decoder.feed(s.first(100), on_frame).has_value());
        CHECK(decoder.buffered_bytes() == 100);
        REQUIRE(decoder.feed(s.subspan(100), on_frame).has_value());
        CHECK(decoder.buffered_bytes() == 0);
        if (i == 0) capacity = decoder.buffer_capacity();
        CHECK(decoder.buffer_capacity() == capacity);
    }
    CHECK(capacity == 312);
    CHECK(frames == 50);
    CHECK(decoder.finish().has_value());
}

TEST_CASE("a split frame larger than the retained capacity releases its buffer") {
    const std::size_t big = FrameDecoder::RETAINED_BUFFER_CAPACITY + 1;
    const Bytes stream = stream_of({frame(9, big)});
    FrameDecoder decoder(without_table());
    const std::span<const std::byte> s(stream);
    REQUIRE(decoder.feed(s.first(1000), ignore_frames).value() == 0);
    CHECK(decoder.buffer_capacity() == big);
    REQUIRE(decoder.feed(s.subspan(1000), ignore_frames).value() == 1);
    CHECK(decoder.buffer_capacity() == 0);
}

TEST_CASE("zero-length payloads are delivered as soon as their header is complete") {
    const Bytes stream = stream_of({frame(7, 0), frame(1002, 0)});
    FrameDecoder decoder(with_table());
    std::vector<Frame> got;
    auto on_frame = [&](std::uint16_t type_id, std::span<const std::byte> payload) {
        got.push_back(Frame{type_id, Bytes(payload.begin(), payload.end())});
    };
    for (std::size_t i = 0; i < stream.size(); ++i) {
        const auto r = decoder.feed(std::span<const std::byte>(stream).subspan(i, 1), on_frame);
        REQUIRE(r.has_value());
        CHECK(*r == ((i == 5 || i == 11) ? 1u : 0u));
    }
    CHECK(got == std::vector<Frame>{frame(7, 0), frame(1002, 0)});
    CHECK(decoder.finish().has_value());
    CHECK(decoder.buffer_capacity() == 0);
}

TEST_CASE("an oversize frame is rejected from its header before its payload is buffered") {
    const std::uint32_t too_big = static_cast<std::uint32_t>(DEFAULT_MAX_PAYLOAD) + 1;
    for (const std::uint32_t length : {too_big, std::uint32_t{0xffffffff}}) {
        CAPTURE(length);
        const Bytes stream = concat(header(7, length), pattern(32, 1));

        {  // in one chunk
            FrameDecoder decoder(without_table());
            const auto r = decoder.feed(stream, ignore_frames);
            REQUIRE(!r);
            CHECK(r.error() == DecodeError::Oversize);
            CHECK(decoder.buffer_capacity() == 0);
        }
        {  // byte by byte: the error comes with the last header byte
            FrameDecoder decoder(without_table());
            for (std::size_t i = 0; i + 1 < HEADER_SIZE; ++i) {
                REQUIRE(decoder.feed(std::span<const std::byte>(stream).subspan(i, 1), ignore_frames).has_value());
            }
            const auto r = decoder.feed(std::span<const std::byte>(stream).subspan(HEADER_SIZE - 1, 1), ignore_frames);
            REQUIRE(!r);
            CHECK(r.error() == DecodeError::Oversize);
            CHECK(decoder.buffer_capacity() == 0);
            CHECK(decoder.buffered_bytes() == HEADER_SIZE);
        }
        const DecodeFailure f = decoding_should_fail(stream, without_table(), DecodeError::Oversize);
        CHECK(f.type_id == 7);
        CHECK(f.declared_length == length);
        CHECK(f.limit == DEFAULT_MAX_PAYLOAD);
    }
}

TEST_CASE("a configured lower limit is enforced on every frame, control frames included") {
    const DecoderOptions options = without_table(64);
    CHECK(FrameDecoder(options).max_payload() == 64);
    CHECK(decoding_should_succeed(stream_of({frame(3, 64)}), options) == std::vector<Frame>{frame(3, 64)});
    CHECK(decoding_should_succeed(stream_of({frame(2000, 64)}), options) == std::vector<Frame>{frame(2000, 64)});

    SUBCASE("a split frame at the limit") {
        const Bytes stream = stream_of({frame(3, 64)});
        const std::size_t cuts[] = {10};
        CHECK(decode_chunked(stream, cuts, options) == Decoded{{frame(3, 64)}, std::nullopt});
    }
    SUBCASE("one byte over, control frame") {
        const DecodeFailure f = decoding_should_fail(stream_of({frame(3, 65)}), options, DecodeError::Oversize);
        CHECK(f.limit == 64);
        CHECK(f.declared_length == 65);
    }
    SUBCASE("one byte over, application frame") {
        decoding_should_fail(stream_of({frame(2000, 65)}), options, DecodeError::Oversize);
    }
    SUBCASE("a limit of zero admits only empty payloads") {
        CHECK(decoding_should_succeed(stream_of({frame(3, 0)}), without_table(0)).size() == 1);
        decoding_should_fail(stream_of({frame(3, 1)}), without_table(0), DecodeError::Oversize);
    }
}

TEST_CASE("a configured limit above the protocol maximum is lowered to it") {
    const DecoderOptions options = without_table(DEFAULT_MAX_PAYLOAD * 4);
    CHECK(FrameDecoder(options).max_payload() == DEFAULT_MAX_PAYLOAD);
    decoding_should_fail(header(3, static_cast<std::uint32_t>(DEFAULT_MAX_PAYLOAD) + 1), options,
                         DecodeError::Oversize);
}

TEST_CASE("a payload of exactly the protocol maximum is accepted, whole or split") {
    const Bytes stream = stream_of({frame(3, DEFAULT_MAX_PAYLOAD)});
    CHECK(decode_whole(stream, without_table()) == Decoded{{frame(3, DEFAULT_MAX_PAYLOAD)}, std::nullopt});
    const std::size_t cuts[] = {3, 1000, stream.size() - 1};
    CHECK(decode_chunked(stream, cuts, without_table()) == Decoded{{frame(3, DEFAULT_MAX_PAYLOAD)}, std::nullopt});
}

TEST_CASE("a stream that ends inside a frame is truncated") {
    const Bytes stream = stream_of({frame(1000, 16), frame(1003, 8)});
    const std::size_t boundaries[] = {0, 22, 36};
    for (std::size_t len = 0; len <= stream.size(); ++len) {
        CAPTURE(len);
        const Bytes prefix(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(len));
        const bool on_boundary = std::find(std::begin(boundaries), std::end(boundaries), len) != std::end(boundaries);
        if (on_boundary) {
            CHECK(decoding_should_succeed(prefix, with_table()).size() == (len == 0 ? 0u : len == 22 ? 1u : 2u));
            continue;
        }
        const DecodeFailure f = decoding_should_fail(prefix, with_table(), DecodeError::Truncated);
        const std::size_t in_frame = len < 22 ? len : len - 22;
        CHECK(f.received == in_frame);
        if (in_frame < HEADER_SIZE) {
            CHECK(f.type_id == 0);
            CHECK(f.declared_length == 0);
        } else {
            CHECK(f.type_id == (len < 22 ? 1000 : 1003));
            CHECK(f.declared_length == (len < 22 ? 16u : 8u));
        }
    }
}

TEST_CASE("a truncated stream stays truncated") {
    FrameDecoder decoder(with_table());
    const Bytes stream = stream_of({frame(1000, 16)});
    REQUIRE(decoder.feed(std::span<const std::byte>(stream).first(10), ignore_frames).has_value());
    CHECK(decoder.finish().error() == DecodeError::Truncated);
    CHECK(decoder.feed(std::span<const std::byte>(stream).subspan(10), ignore_frames).error() ==
          DecodeError::Truncated);
    CHECK(decoder.finish().error() == DecodeError::Truncated);
}

TEST_CASE("an unknown application type id is rejected") {
    const DecodeFailure f = decoding_should_fail(stream_of({frame(4242, 16)}), with_table(), DecodeError::UnknownType);
    CHECK(f.type_id == 4242);
    CHECK(f.declared_length == 16);
    SUBCASE("even when only its header has arrived") {
        FrameDecoder decoder(with_table());
        CHECK(decoder.feed(header(4242, 16), ignore_frames).error() == DecodeError::UnknownType);
        CHECK(decoder.buffer_capacity() == 0);
    }
}

TEST_CASE("type id 0 is reserved and rejected even without a type table") {
    const DecodeFailure f = decoding_should_fail(header(0, 0), without_table(), DecodeError::UnknownType);
    CHECK(f.type_id == 0);
    decoding_should_fail(Bytes(64), with_table(), DecodeError::UnknownType);
}

TEST_CASE("control frames are never looked up in the type table") {
    int lookups = 0;
    auto table = [&](std::uint16_t type_id) -> std::optional<std::size_t> {
        ++lookups;
        return TEST_TABLE(type_id);
    };
    const DecoderOptions options{DEFAULT_MAX_PAYLOAD, TypeSizes::of(table)};
    const std::vector<Frame> frames = {frame(1, 5), frame(500, 0), frame(999, 1000)};
    CHECK(decoding_should_succeed(stream_of(frames), options) == frames);
    CHECK(lookups == 0);
    CHECK(decoding_should_succeed(stream_of({frame(1000, 16)}), options).size() == 1);
    CHECK(lookups == 1);
}

TEST_CASE("without a type table application frames are held only to the limit") {
    const std::vector<Frame> frames = {frame(4242, 3), frame(1001, 1), frame(65535, 0)};
    CHECK(decoding_should_succeed(stream_of(frames), without_table()) == frames);
}

TEST_CASE("an application frame of the wrong size is a size mismatch") {
    for (const std::size_t size : {311u, 313u, 0u}) {
        CAPTURE(size);
        const DecodeFailure f = decoding_should_fail(stream_of({frame(1001, size)}), with_table(), DecodeError::SizeMismatch);
        CHECK(f.type_id == 1001);
        CHECK(f.declared_length == size);
        CHECK(f.expected_size == 312);
    }
    SUBCASE("detected from the header, before the payload is buffered") {
        FrameDecoder decoder(with_table());
        CHECK(decoder.feed(header(1001, 4000), ignore_frames).error() == DecodeError::SizeMismatch);
        CHECK(decoder.buffer_capacity() == 0);
    }
}

TEST_CASE("a poisoned decoder repeats its error and delivers nothing more") {
    const Bytes stream = stream_of({frame(1000, 16), frame(4242, 2), frame(1003, 8)});
    FrameDecoder decoder(with_table());
    std::vector<Frame> got;
    auto on_frame = [&](std::uint16_t type_id, std::span<const std::byte> payload) {
        got.push_back(Frame{type_id, Bytes(payload.begin(), payload.end())});
    };
    CHECK(decoder.feed(stream, on_frame).error() == DecodeError::UnknownType);
    CHECK(got == std::vector<Frame>{frame(1000, 16)});
    CHECK(decoder.feed(stream_of({frame(1003, 8)}), on_frame).error() == DecodeError::UnknownType);
    CHECK(decoder.feed({}, on_frame).error() == DecodeError::UnknownType);
    CHECK(decoder.finish().error() == DecodeError::UnknownType);
    CHECK(got.size() == 1);

    SUBCASE("until reset") {
        decoder.reset();
        CHECK_FALSE(decoder.poisoned());
        CHECK(decoder.feed(stream_of({frame(1003, 8)}), on_frame).value() == 1);
        CHECK(decoder.finish().has_value());
    }
}

TEST_CASE("reset discards a half-received frame") {
    FrameDecoder decoder(with_table());
    const Bytes stream = stream_of({frame(1001, 312)});
    REQUIRE(decoder.feed(std::span<const std::byte>(stream).first(50), ignore_frames).has_value());
    decoder.reset();
    CHECK(decoder.buffered_bytes() == 0);
    CHECK(decoder.feed(stream, ignore_frames).value() == 1);
    CHECK(decoder.finish().has_value());
}

TEST_CASE("garbage bytes yield frames or a typed error, the same under any chunking") {
    Rng rng(7);
    const Bytes valid = stream_of(SAMPLE);
    int errors = 0, clean = 0;
    for (int i = 0; i < 3000; ++i) {
        Bytes garbage;
        if (i % 2 == 0) {
            // Pure noise; short lengths so that some headers fit the small limit below.
            garbage.resize(rng.below(200));
            for (auto& b : garbage) b = rng.byte();
        } else {
            // A valid stream, mutated: flipped bytes, then maybe cut short.
            garbage = valid;
            for (std::size_t k = rng.below(4); k > 0; --k) garbage[rng.below(garbage.size())] = rng.byte();
            if (rng.below(3) == 0) garbage.resize(rng.below(garbage.size()));
        }
        const bool use_table = rng.below(2) == 0;
        const std::size_t limit = rng.below(2) == 0 ? 400 : DEFAULT_MAX_PAYLOAD;
        const DecoderOptions options = use_table ? with_table(limit) : without_table(limit);
        const Decoded expected = reference_decode(garbage, limit, use_table);
        const auto cuts = random_cuts(rng, garbage.size(), 1 + rng.below(50));
        const Decoded d = decode_chunked(garbage, cuts, options);
        if (d != expected) FAIL("garbage input " << i << " decoded differently from the reference");
        if (decode_whole(garbage, options) != expected) FAIL("garbage input " << i << " (one chunk)");
        (expected.error ? errors : clean) += 1;
    }
    // Both outcomes were exercised.
    CHECK(errors > 100);
    CHECK(clean > 100);
}

}  // TEST_SUITE
