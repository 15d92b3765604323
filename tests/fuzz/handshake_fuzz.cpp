// libFuzzer target for the digest handshake a connection opens with (HandshakeReader,
// docs/wire-protocol.md "Handshake"). Differential: the stream is fed in chunks whose
// sizes come from the input, and the reader's state, length, digest and the bytes it
// hands back after the handshake must match a model written from the wire format:
// `u16 LE length` (must be 32) then the digest (must be EXPECTED).
//
// Input layout: byte 0 seeds the chunking (0: one chunk), the rest is the stream.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "transport/handshake.hpp"

namespace {

using mycelium::link::control::DIGEST_SIZE;
using mycelium::link::control::HANDSHAKE_SIZE;
using Reader = mycelium::link::detail::HandshakeReader;

// The host's digest in this target; corpus/handshake/ holds a handshake with it.
constexpr std::array<std::uint8_t, DIGEST_SIZE> EXPECTED = [] {
    std::array<std::uint8_t, DIGEST_SIZE> d{};
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::uint8_t>(0xa0 + i);
    return d;
}();

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    unsigned state = data[0];
    const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data) + 1, size - 1);

    Reader reader(EXPECTED);
    std::vector<std::byte> after;  // what feed() handed back, all chunks together
    std::size_t at = 0;
    while (at < stream.size()) {
        std::size_t n = stream.size() - at;
        if (data[0] != 0) {
            state = state * 1103515245u + 12345u;
            n = std::min<std::size_t>(n, 1 + (state >> 16) % 40);
        }
        // An exact-size copy, so that reading past the chunk is a heap overflow.
        const std::vector<std::byte> chunk(stream.begin() + static_cast<std::ptrdiff_t>(at),
                                           stream.begin() + static_cast<std::ptrdiff_t>(at + n));
        const auto rest = reader.feed(chunk);
        check(rest.empty() || (rest.data() >= chunk.data() && rest.data() + rest.size() == chunk.data() + chunk.size()));
        after.insert(after.end(), rest.begin(), rest.end());
        at += n;
    }

    // The model.
    const auto byte = [&](std::size_t i) { return std::to_integer<std::uint8_t>(stream[i]); };
    Reader::State expected = Reader::State::Reading;
    std::size_t received = std::min(stream.size(), HANDSHAKE_SIZE);
    if (stream.size() >= 2) {
        const unsigned length = byte(0) | (byte(1) << 8);
        check(reader.length() == length);
        if (length != DIGEST_SIZE) {
            expected = Reader::State::BadLength;
            received = 2;  // a wrong length is refused before the digest is read
        } else if (stream.size() >= HANDSHAKE_SIZE) {
            expected = std::memcmp(stream.data() + 2, EXPECTED.data(), DIGEST_SIZE) == 0 ? Reader::State::Done
                                                                                         : Reader::State::Mismatch;
        }
    } else {
        check(reader.length() == 0);
    }
    check(reader.state() == expected);
    check(reader.received() == received);
    if (expected == Reader::State::Done || expected == Reader::State::Mismatch) {
        const auto digest = reader.digest();
        check(std::memcmp(digest.data(), stream.data() + 2, DIGEST_SIZE) == 0);
    }
    if (expected == Reader::State::Done) {
        check(after.size() == stream.size() - HANDSHAKE_SIZE);
        check(std::equal(after.begin(), after.end(), stream.begin() + HANDSHAKE_SIZE));
    } else {
        check(after.empty());
    }
    return 0;
}
