#pragma once
// Helpers shared by the codec tests: frame streams, chunked decoding with exact-size
// chunk copies (so AddressSanitizer sees any read past a chunk), and a reference decoder
// written as plainly as possible to serve as the oracle for the real one.

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "mycelium/codec.hpp"

namespace codec_test {

using mycelium::codec::DecodeError;
using mycelium::codec::DecoderOptions;
using mycelium::codec::EncodeError;
using mycelium::codec::FrameDecoder;
using mycelium::codec::TypeSizes;
using Bytes = std::vector<std::byte>;

struct Frame {
    std::uint16_t type_id = 0;
    Bytes payload;
    friend bool operator==(const Frame&, const Frame&) = default;
};

/// The outcome of decoding a whole stream: the frames delivered, then the error if any.
struct Decoded {
    std::vector<Frame> frames;
    std::optional<DecodeError> error;
    friend bool operator==(const Decoded&, const Decoded&) = default;
};

/// The schema of the tests: a few application types and their fixed sizes.
struct TestTable {
    static constexpr std::array<std::pair<std::uint16_t, std::size_t>, 5> SIZES{{
        {1000, 16}, {1001, 312}, {1002, 0}, {1003, 8}, {65535, 7}}};
    std::optional<std::size_t> operator()(std::uint16_t type_id) const {
        for (const auto& [id, size] : SIZES) {
            if (id == type_id) return size;
        }
        return std::nullopt;
    }
};
inline const TestTable TEST_TABLE{};

inline DecoderOptions with_table(std::size_t max_payload = mycelium::schema::DEFAULT_MAX_PAYLOAD) {
    return DecoderOptions{max_payload, TypeSizes::of(TEST_TABLE)};
}

inline DecoderOptions without_table(std::size_t max_payload = mycelium::schema::DEFAULT_MAX_PAYLOAD) {
    return DecoderOptions{max_payload, std::nullopt};
}

/// Deterministic across standard libraries, unlike std::uniform_int_distribution.
struct Rng {
    std::mt19937 engine;
    explicit Rng(std::uint32_t seed) : engine(seed) {}
    std::size_t below(std::size_t n) { return n == 0 ? 0 : engine() % n; }
    std::byte byte() { return static_cast<std::byte>(engine() & 0xffu); }
};

inline Bytes bytes_of(std::initializer_list<unsigned> values) {
    Bytes out;
    for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}

/// n bytes of a recognisable pattern, different for each seed.
inline Bytes pattern(std::size_t n, unsigned seed) {
    Bytes out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 31 + seed * 7 + 1) & 0xffu);
    return out;
}

inline Frame frame(std::uint16_t type_id, std::size_t size, unsigned seed = 0) {
    return Frame{type_id, pattern(size, seed + type_id)};
}

inline Bytes stream_of(const std::vector<Frame>& frames) {
    Bytes out;
    for (const Frame& f : frames) {
        const auto r = mycelium::codec::append_frame(out, f.type_id, f.payload);
        REQUIRE(r.has_value());
    }
    return out;
}

/// Feeds `stream` cut at `cuts` (sorted offsets), each chunk copied into a vector of its
/// exact size; stops at the first error and calls finish() at the end.
inline Decoded decode_chunked(std::span<const std::byte> stream, std::span<const std::size_t> cuts,
                              const DecoderOptions& options) {
    FrameDecoder decoder(options);
    Decoded out;
    std::size_t from = 0;
    auto on_frame = [&](std::uint16_t type_id, std::span<const std::byte> payload) {
        out.frames.push_back(Frame{type_id, Bytes(payload.begin(), payload.end())});
    };
    for (std::size_t i = 0; i <= cuts.size(); ++i) {
        const std::size_t to = i < cuts.size() ? cuts[i] : stream.size();
        const Bytes chunk(stream.begin() + static_cast<std::ptrdiff_t>(from),
                          stream.begin() + static_cast<std::ptrdiff_t>(to));
        const std::size_t before = out.frames.size();
        const auto r = decoder.feed(chunk, on_frame);
        if (!r) {
            out.error = r.error();
            return out;
        }
        CHECK(*r == out.frames.size() - before);
        from = to;
    }
    const auto end = decoder.finish();
    if (!end) out.error = end.error();
    return out;
}

inline Decoded decode_whole(std::span<const std::byte> stream, const DecoderOptions& options) {
    return decode_chunked(stream, {}, options);
}

/// Random cut points, each chunk 1..max_chunk bytes.
inline std::vector<std::size_t> random_cuts(Rng& rng, std::size_t size, std::size_t max_chunk) {
    std::vector<std::size_t> cuts;
    std::size_t at = 0;
    for (;;) {
        at += 1 + rng.below(max_chunk);
        if (at >= size) return cuts;
        cuts.push_back(at);
    }
}

/// The oracle: decodes a complete stream held in memory, with the decoder's documented
/// order of checks (type 0, limit, table, then truncation).
inline Decoded reference_decode(std::span<const std::byte> s, std::size_t max_payload, bool use_table) {
    Decoded out;
    std::size_t at = 0;
    auto u8 = [&](std::size_t i) { return static_cast<std::uint32_t>(std::to_integer<unsigned>(s[i])); };
    while (at < s.size()) {
        if (s.size() - at < 6) {
            out.error = DecodeError::Truncated;
            return out;
        }
        const std::uint16_t type = static_cast<std::uint16_t>(u8(at) | u8(at + 1) << 8);
        const std::uint32_t len = u8(at + 2) | u8(at + 3) << 8 | u8(at + 4) << 16 | u8(at + 5) << 24;
        if (type == 0) {
            out.error = DecodeError::UnknownType;
            return out;
        }
        if (len > max_payload) {
            out.error = DecodeError::Oversize;
            return out;
        }
        if (use_table && type >= 1000) {
            const auto size = TEST_TABLE(type);
            if (!size) {
                out.error = DecodeError::UnknownType;
                return out;
            }
            if (*size != len) {
                out.error = DecodeError::SizeMismatch;
                return out;
            }
        }
        if (s.size() - at - 6 < len) {
            out.error = DecodeError::Truncated;
            return out;
        }
        out.frames.push_back(Frame{type, Bytes(s.begin() + static_cast<std::ptrdiff_t>(at + 6),
                                               s.begin() + static_cast<std::ptrdiff_t>(at + 6 + len))});
        at += 6 + len;
    }
    return out;
}

}  // namespace codec_test

namespace doctest {
template <>
struct StringMaker<mycelium::codec::DecodeError> {
    static String convert(mycelium::codec::DecodeError e) {
        return String(std::string(mycelium::codec::to_string(e)).c_str());
    }
};
template <>
struct StringMaker<mycelium::codec::EncodeError> {
    static String convert(mycelium::codec::EncodeError e) {
        return String(std::string(mycelium::codec::to_string(e)).c_str());
    }
};
template <>
struct StringMaker<std::optional<mycelium::codec::DecodeError>> {
    static String convert(const std::optional<mycelium::codec::DecodeError>& e) {
        return e ? StringMaker<mycelium::codec::DecodeError>::convert(*e) : String("no error");
    }
};
}  // namespace doctest
