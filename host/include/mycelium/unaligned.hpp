#pragma once
/// Reads and writes of scalars at any byte offset: of a payload (load_unaligned,
/// store_unaligned) and of the wire's and the rings' little-endian fields (load_le16 and
/// the like, also at compile time). Message layouts are little-endian and so is every
/// host we support (x86-64, aarch64); memcpy compiles to a single load or store.
/// Thread safety: pure functions.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace mycelium {

static_assert(std::endian::native == std::endian::little, "payload layouts are little-endian");

template <class T>
    requires std::is_trivially_copyable_v<T>
T load_unaligned(const std::byte* p) noexcept {
    T value;
    std::memcpy(&value, p, sizeof value);
    return value;
}

template <class T>
    requires std::is_trivially_copyable_v<T>
void store_unaligned(std::byte* p, T value) noexcept {
    std::memcpy(p, &value, sizeof value);
}

// The wire's fields. At run time one load or store; the shifts are the definition, and
// what runs at compile time, where memcpy is not allowed.
constexpr std::uint16_t load_le16(const std::byte* p) noexcept {
    if (!std::is_constant_evaluated()) {
        std::uint16_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    return static_cast<std::uint16_t>(std::to_integer<std::uint16_t>(p[0]) |
                                      std::to_integer<std::uint16_t>(p[1]) << 8);
}

constexpr std::uint32_t load_le32(const std::byte* p) noexcept {
    if (!std::is_constant_evaluated()) {
        std::uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    return std::to_integer<std::uint32_t>(p[0]) | std::to_integer<std::uint32_t>(p[1]) << 8 |
           std::to_integer<std::uint32_t>(p[2]) << 16 | std::to_integer<std::uint32_t>(p[3]) << 24;
}

constexpr void store_le16(std::byte* p, std::uint16_t v) noexcept {
    if (!std::is_constant_evaluated()) {
        std::memcpy(p, &v, sizeof v);
        return;
    }
    p[0] = static_cast<std::byte>(v & 0xffu);
    p[1] = static_cast<std::byte>(v >> 8);
}

constexpr void store_le32(std::byte* p, std::uint32_t v) noexcept {
    if (!std::is_constant_evaluated()) {
        std::memcpy(p, &v, sizeof v);
        return;
    }
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xffu);
}

}  // namespace mycelium
