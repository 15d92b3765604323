#pragma once
/// Reads and writes of scalars at any byte offset of a payload. Message layouts are
/// little-endian and so is every host we support (x86-64, aarch64); memcpy compiles to a
/// single load or store.
/// Thread safety: pure functions.

#include <bit>
#include <cstddef>
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

}  // namespace mycelium
