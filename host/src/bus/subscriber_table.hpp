#pragma once
// Who receives a type id's messages: per type an immutable array of Entry pointers (a
// Snapshot) that publishers read without a lock. A change copies the array, swaps the
// copy in and retires the old one with the reader slots that were inside a publish at
// that moment; it is freed once each of them has moved on (the file comment of bus.cpp,
// "Snapshots"). Private header of host/src/bus/.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "mycelium/bus.hpp"
#include "reader_slots.hpp"

namespace mycelium::detail {

/// One subscription as publishers see it. Written before it is published in a snapshot,
/// then read-only but for `alive`.
struct Entry {
    std::atomic<bool> alive{true};
    bool queued = false;
    QueuePolicy policy = QueuePolicy::Block;
    std::uint16_t type_id = 0;
    void (*invoke)(void*, const MessageView&) = nullptr;  // inline, one message per call
    void (*invoke_batch)(void*, std::span<const MessageView>) = nullptr;  // inline, a run per call
    void* context = nullptr;
    bool (*has_room)(const void*, std::size_t) = nullptr;  // inline, queues what it gets
    const void* room_context = nullptr;
    Mailbox* mailbox = nullptr;  // queued
    std::uint64_t token = 0;
};

struct Snapshot {
    std::uint32_t count;
    Entry* entries[1];  // really `count` of them

    static Snapshot* make(std::uint32_t n) {
        const std::size_t bytes = sizeof(Snapshot) + (n ? n - 1 : 0) * sizeof(Entry*);
        auto* s = static_cast<Snapshot*>(::operator new(bytes));
        s->count = n;
        return s;
    }
    static void destroy(Snapshot* s) noexcept { ::operator delete(s); }
};

/// The snapshots of 256 consecutive type ids.
struct TypePage {
    std::atomic<Snapshot*> snap[256]{};

    /// seq_cst: ordered after the reader's announcement in its slot (bus.cpp's Dekker
    /// handshake with retire_locked()).
    Snapshot* load(std::uint16_t type_id) const noexcept {
        return snap[type_id & 255].load(std::memory_order_seq_cst);
    }
};

/// The subscriber lists of one bus.
/// Thread safety: page() from any thread without a lock; every *_locked member under
/// the bus's subscription lock (BusImpl::mu).
class SubscriberTable {
public:
    SubscriberTable() = default;
    /// Frees every snapshot, retired or current. No publish may be running.
    ~SubscriberTable();
    SubscriberTable(const SubscriberTable&) = delete;
    SubscriberTable& operator=(const SubscriberTable&) = delete;

    /// The page of `type_id`'s snapshots, or nullptr when no type of its range was ever
    /// subscribed. The publish path.
    TypePage* page(std::uint16_t type_id) const noexcept {
        return pages_[type_id >> 8].load(std::memory_order_acquire);
    }

    /// Appends `entry` to its type's list.
    void add_locked(Entry* entry);
    /// Takes `entry` off its type's list. The caller cleared entry->alive first;
    /// `keep_alive` (what owns the entry) is kept until no reader can still see it.
    void remove_locked(Entry* entry, std::shared_ptr<const void> keep_alive);
    /// Frees the retired snapshots whose readers have all moved on; with `wait`, waits
    /// (yielding, then sleeping) until every one is freed.
    void reclaim_locked(bool wait);

private:
    struct Retired {
        Snapshot* snap;
        std::shared_ptr<const void> keep_alive;
        std::vector<std::pair<ReaderSlot*, std::uint64_t>> busy;  ///< slots inside publish, and their ctr
    };
    /// Called right after a snapshot swap (or alive flag clear).
    void retire_locked(Snapshot* old, std::shared_ptr<const void> keep_alive);

    std::atomic<TypePage*> pages_[256]{};
    std::deque<Retired> retired_;
};

}  // namespace mycelium::detail
