// Legacy clients and padded types (docs/wire-protocol.md "Legacy clients and padded
// types"). Mycelium's Python SDK packs a message's fields with no C padding, so for a
// type with padding it sends, and expects, fewer bytes than the C layout. From a legacy
// client (handshake only, no HELLO) the host takes either size and publishes the C
// layout; to it, padded types go packed (LegacyLayout::Packed) until it sends one at its
// C size, which shows it is a Rust client: the connection then gets C. Everything here is
// per connection; HELLO clients and peers always speak C.

#include "session.hpp"

namespace mycelium::link::detail {

void Session::on_legacy_frame(std::uint16_t type_id, std::span<const std::byte> payload) {
    if (const schema::PackedLayout* layout = state_.packed_layouts.find(type_id)) {
        if (payload.size() == layout->packed_size()) {
            unpacked_.resize(layout->c_size());
            layout->to_c(payload, unpacked_);
            Counters::add(state_.counters.legacy_packed_in);
            frames_seen_ = true;
            const MessageView message{type_id, unpacked_};
            return publish_from_link(std::span<const MessageView>(&message, 1));
        }
        if (payload.size() == layout->c_size() && send_packed_.exchange(false, std::memory_order_relaxed)) {
            Counters::add(state_.counters.legacy_layout_switches);
            state_.log->info("{}: legacy client sent {} (type {}) at its C size, {} bytes: it gets padded types in "
                             "the C layout from now on",
                             peer_, state_.registry.find(type_id)->name, type_id, payload.size());
        }
    }
    if (!acceptable(type_id, payload)) return;
    const MessageView message{type_id, payload};
    publish_from_link(std::span<const MessageView>(&message, 1));
}

void Session::enqueue_packed_run(std::span<const MessageView> run, const schema::PackedLayout& layout) {
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
    Counters::add(state_.counters.legacy_packed_out, run.size());
    enqueue_run(views);
}

}  // namespace mycelium::link::detail
