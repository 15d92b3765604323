#include "mycelium/packed_layout.hpp"

#include <cstring>

namespace mycelium::schema {

std::optional<PackedLayout> PackedLayout::of(const MessageSchema& message) {
    PackedLayout layout;
    layout.c_size_ = message.size;
    for (const Field& field : message.fields) {
        Run* last = layout.runs_.empty() ? nullptr : &layout.runs_.back();
        if (last != nullptr && last->c_offset + last->size == field.offset) {
            last->size += field.size;  // no padding before this field: extend the run
        } else {
            layout.runs_.push_back(Run{field.offset, layout.packed_size_, field.size});
        }
        layout.packed_size_ += field.size;
    }
    if (layout.packed_size_ == layout.c_size_) return std::nullopt;
    return layout;
}

void PackedLayout::to_c(std::span<const std::byte> packed, std::span<std::byte> c) const noexcept {
    std::memset(c.data(), 0, c.size());
    for (const Run& run : runs_) std::memcpy(c.data() + run.c_offset, packed.data() + run.packed_offset, run.size);
}

void PackedLayout::to_packed(std::span<const std::byte> c, std::span<std::byte> packed) const noexcept {
    for (const Run& run : runs_) std::memcpy(packed.data() + run.packed_offset, c.data() + run.c_offset, run.size);
}

PackedLayouts::PackedLayouts(const Registry& registry) {
    for (const MessageSchema& message : registry.messages()) {
        if (auto layout = PackedLayout::of(message)) layouts_.emplace(message.type_id, std::move(*layout));
    }
}

}  // namespace mycelium::schema
