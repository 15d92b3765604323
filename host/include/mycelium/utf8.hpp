#pragma once
/// UTF-8 checks for untrusted text (payload strings, a worker's output, a client's metric
/// names): one definition of "valid" for the whole host. Overlong encodings, surrogates
/// and values past U+10FFFF are not UTF-8.
/// Thread safety: pure functions.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace mycelium::utf8 {

/// The length of the valid UTF-8 sequence that starts at `s[i]` (1 to 4), or 0 when the
/// bytes there are not one.
inline std::size_t sequence_length(std::string_view s, std::size_t i) noexcept {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = byte(i);
    if (c < 0x80) return 1;
    std::size_t extra = 0;
    std::uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
        extra = 1;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        extra = 2;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        extra = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + extra >= s.size()) return 0;
    for (std::size_t k = 1; k <= extra; ++k) {
        if ((byte(i + k) & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (byte(i + k) & 0x3f);
    }
    static constexpr std::uint32_t MIN_FOR_LENGTH[] = {0, 0x80, 0x800, 0x10000};
    if (cp < MIN_FOR_LENGTH[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return extra + 1;
}

/// Whether all of `s` is valid UTF-8.
inline bool is_valid(std::string_view s) noexcept {
    std::size_t i = 0;
    // ASCII, eight bytes at a time: links check every string they relay (frame_filter.hpp).
    for (std::uint64_t word = 0; i + 8 <= s.size(); i += 8) {
        std::memcpy(&word, s.data() + i, 8);
        if ((word & 0x8080808080808080u) != 0) break;
    }
    while (i < s.size()) {
        const std::size_t n = sequence_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

/// `s` with every byte that does not start a valid sequence replaced by U+FFFD, so that
/// text from outside can go into a JSON line or a log.
inline std::string sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = sequence_length(s, i);
        if (n == 0) {
            out += "\xef\xbf\xbd";
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

}  // namespace mycelium::utf8
