#pragma once
// Mycelium's Python SDK encodes a message by packing its fields one after another, with
// no C padding between them or at the end (its MessageDef.encode). For a type whose C
// layout has padding (u64, u32, u64, u64: 32 bytes in C) that is a second, shorter
// encoding (28 bytes). The host converts between the two for legacy clients
// (docs/wire-protocol.md "Legacy clients and padded types").

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "mycelium/schema.hpp"

namespace mycelium::schema {

/// Where a padded type's fields sit when packed. Fields that are contiguous in C are
/// copied as one run. Thread safety: immutable after construction; concurrent use safe.
class PackedLayout {
public:
    /// The packed layout of `message`, or nullopt when its C layout has no padding (then
    /// the packed and the C encodings are the same bytes).
    static std::optional<PackedLayout> of(const MessageSchema& message);

    std::size_t packed_size() const noexcept { return packed_size_; }
    std::size_t c_size() const noexcept { return c_size_; }

    /// Writes the C encoding of `packed` into `c`, padding zeroed. Sizes must be
    /// packed_size() and c_size().
    void to_c(std::span<const std::byte> packed, std::span<std::byte> c) const noexcept;
    /// Writes the packed encoding of `c` into `packed` (padding left out). Sizes must be
    /// c_size() and packed_size().
    void to_packed(std::span<const std::byte> c, std::span<std::byte> packed) const noexcept;

private:
    struct Run {
        std::size_t c_offset;
        std::size_t packed_offset;
        std::size_t size;
    };
    PackedLayout() = default;

    std::vector<Run> runs_;
    std::size_t packed_size_ = 0;
    std::size_t c_size_ = 0;
};

/// The packed layouts of a registry's padded types, by type id.
/// Thread safety: immutable after construction; concurrent reads safe.
class PackedLayouts {
public:
    explicit PackedLayouts(const Registry& registry);

    /// The packed layout of `type_id`, or nullptr when the type is unknown or unpadded.
    const PackedLayout* find(std::uint16_t type_id) const noexcept {
        if (layouts_.empty()) return nullptr;  // the common case: no padded type at all
        const auto it = layouts_.find(type_id);
        return it != layouts_.end() ? &it->second : nullptr;
    }
    bool empty() const noexcept { return layouts_.empty(); }

private:
    std::unordered_map<std::uint16_t, PackedLayout> layouts_;
};

}  // namespace mycelium::schema
