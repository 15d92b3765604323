// Padded types to and from a legacy client (see legacy_frames.hpp).

#include "legacy_frames.hpp"

namespace mycelium::link::detail {

std::optional<MessageView> LegacyFrames::unpack(std::uint16_t type_id, std::span<const std::byte> payload) {
    const schema::PackedLayout* layout = state_.packed_layouts.find(type_id);
    if (layout == nullptr) return std::nullopt;
    if (payload.size() == layout->packed_size()) {
        unpacked_.resize(layout->c_size());
        layout->to_c(payload, unpacked_);
        Counters::add(counters_.legacy_packed_in);
        return MessageView{type_id, unpacked_};
    }
    if (payload.size() == layout->c_size() && send_packed_.exchange(false, std::memory_order_relaxed)) {
        Counters::add(counters_.legacy_layout_switches);
        state_.log->info("{}: legacy client sent {} (type {}) at its C size, {} bytes: it gets padded types in "
                         "the C layout from now on",
                         peer_, state_.registry.find(type_id)->name, type_id, payload.size());
    }
    return std::nullopt;
}

std::span<const MessageView> LegacyFrames::pack(std::span<const MessageView> run, const schema::PackedLayout& layout) {
    // A bus callback on the publisher's thread: thread-local buffers, reused.
    thread_local std::vector<std::byte> bytes;
    thread_local std::vector<MessageView> views;
    const std::size_t size = layout.packed_size();
    bytes.resize(run.size() * size);
    views.clear();
    for (std::size_t i = 0; i < run.size(); ++i) {
        const std::span<std::byte> packed(bytes.data() + i * size, size);
        layout.to_packed(run[i].payload, packed);
        views.push_back(MessageView{run[i].type_id, packed});
    }
    Counters::add(counters_.legacy_packed_out, run.size());
    return views;
}

}  // namespace mycelium::link::detail
