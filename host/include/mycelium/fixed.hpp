#pragma once
/// FixedStr<N> and FixedVec<T, N>: the bounded string and vector of contracts.yaml, laid
/// out exactly as on the wire (docs/contracts.md): a u16 length, 6 zero bytes, then N
/// elements, zero-padded. U256: Mycelium's 256-bit integer as it stores it. Generated
/// message structs are built from these.
/// Thread safety: plain values; distinct objects safe, shared objects unsafe.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string_view>

namespace mycelium {

template <std::size_t N>
struct FixedStr {
    static_assert(N > 0 && N <= 65535, "FixedStr capacity must fit its u16 length");
    std::uint16_t len = 0;
    std::uint8_t reserved[6]{};
    char data[N]{};

    constexpr FixedStr() = default;
    /// Truncating would silently change a message: an oversize string throws
    /// std::length_error (assign() reports it without throwing).
    constexpr FixedStr(std::string_view s) {
        if (!assign(s)) throw std::length_error("FixedStr: string longer than its capacity");
    }

    /// Stores `s` and zeroes the rest; false (and nothing stored) when it is over N bytes.
    constexpr bool assign(std::string_view s) {
        if (s.size() > N) return false;
        std::fill(std::begin(data), std::end(data), '\0');
        std::copy(s.begin(), s.end(), data);
        len = static_cast<std::uint16_t>(s.size());
        return true;
    }
    /// The stored bytes; clamps a corrupt length from the wire to the capacity.
    constexpr std::string_view view() const { return {data, std::min<std::size_t>(len, N)}; }
    static constexpr std::size_t capacity() { return N; }
    friend constexpr bool operator==(const FixedStr& a, const FixedStr& b) { return a.view() == b.view(); }
};

template <class T, std::size_t N>
struct FixedVec {
    static_assert(N > 0 && N <= 65535, "FixedVec capacity must fit its u16 count");
    std::uint16_t count = 0;
    std::uint8_t reserved[6]{};
    T data[N]{};

    constexpr FixedVec() = default;
    /// Throws std::length_error for more than N values (assign() reports it without throwing).
    constexpr FixedVec(std::initializer_list<T> values) {
        if (!assign(std::span<const T>(values.begin(), values.size()))) {
            throw std::length_error("FixedVec: more values than its capacity");
        }
    }

    /// Stores `values` and zeroes the rest; false (and nothing stored) when over N.
    constexpr bool assign(std::span<const T> values) {
        if (values.size() > N) return false;
        std::fill(std::begin(data), std::end(data), T{});
        std::copy(values.begin(), values.end(), data);
        count = static_cast<std::uint16_t>(values.size());
        return true;
    }
    /// Appends one element; false when full.
    constexpr bool push_back(const T& value) {
        if (count >= N) return false;
        data[count++] = value;
        return true;
    }
    constexpr std::span<const T> view() const { return {data, std::min<std::size_t>(count, N)}; }
    constexpr std::size_t size() const { return std::min<std::size_t>(count, N); }
    static constexpr std::size_t capacity() { return N; }
};

/// A contracts `U256`: 32 bytes, big-endian (most significant byte first), alignment 1,
/// as Mycelium stores primitive_types::U256 in its messages.
using U256 = std::array<std::uint8_t, 32>;

}  // namespace mycelium
