// libFuzzer target for the frame decoder. Differential: the input is decoded once in a
// single chunk and once in chunks whose sizes come from the input itself; both must give
// the same frames and the same error. ASan and UBSan catch over-reads and overflows.
//
// Input layout: byte 0 selects the options (bit 0 type table, bit 1 a 512-byte limit, bit 2
// the default 4 MiB limit, else 64 KiB), byte 1 seeds the
// chunking, the rest is the stream.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <vector>

#include "mycelium/codec.hpp"

namespace {

using mycelium::codec::DecodeError;
using mycelium::codec::DecoderOptions;
using mycelium::codec::FrameDecoder;
using mycelium::codec::TypeSizes;

struct Outcome {
    std::vector<std::uint16_t> types;
    std::vector<std::vector<std::byte>> payloads;
    std::optional<DecodeError> error;
    bool operator==(const Outcome&) const = default;
};

std::optional<std::size_t> fuzz_table(std::uint16_t type_id) {
    switch (type_id) {
        case 1000: return 16;
        case 1001: return 312;
        case 1002: return 0;
        case 1003: return 8;
        default: return std::nullopt;
    }
}

const auto TABLE = [](std::uint16_t type_id) { return fuzz_table(type_id); };

Outcome decode(std::span<const std::byte> stream, const DecoderOptions& options, unsigned chunk_seed) {
    FrameDecoder decoder(options);
    Outcome out;
    auto on_frame = [&](std::uint16_t type_id, std::span<const std::byte> payload) {
        if (payload.size() > decoder.max_payload()) std::abort();
        out.types.push_back(type_id);
        out.payloads.emplace_back(payload.begin(), payload.end());
    };
    std::size_t at = 0;
    unsigned state = chunk_seed;
    while (at < stream.size()) {
        std::size_t n = stream.size() - at;
        if (chunk_seed != 0) {
            state = state * 1103515245u + 12345u;
            n = std::min<std::size_t>(n, 1 + (state >> 16) % 37);
        }
        // An exact-size copy, so that reading past the chunk is a heap overflow.
        const std::vector<std::byte> chunk(stream.begin() + static_cast<std::ptrdiff_t>(at),
                                           stream.begin() + static_cast<std::ptrdiff_t>(at + n));
        const auto r = decoder.feed(chunk, on_frame);
        if (!r) {
            out.error = r.error();
            return out;
        }
        at += n;
    }
    const auto end = decoder.finish();
    if (!end) out.error = end.error();
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const unsigned mode = data[0];
    const unsigned chunk_seed = data[1] | 1u;
    const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data) + 2, size - 2);

    DecoderOptions options;
    if (mode & 1u) options.type_sizes = TypeSizes::of(TABLE);
    // The protocol's 4 MiB limit only with bit 2: a header that declares 4 MiB makes the
    // decoder reserve that much, and under ASan such inputs ran at a few hundred per
    // second. The limit is checked by the same code whatever its value.
    options.max_payload = (mode & 4u) ? options.max_payload : (mode & 2u) ? 512 : 65536;

    if (decode(stream, options, 0) != decode(stream, options, chunk_seed)) std::abort();
    return 0;
}
