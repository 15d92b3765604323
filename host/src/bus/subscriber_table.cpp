// Swapping and retiring the subscriber snapshots of subscriber_table.hpp.

#include "subscriber_table.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace mycelium::detail {

SubscriberTable::~SubscriberTable() {
    for (auto& r : retired_)  // only left if the bus was destroyed from inside a callback
        if (r.snap) Snapshot::destroy(r.snap);
    retired_.clear();
    for (auto& pg : pages_) {
        TypePage* p = pg.load(std::memory_order_relaxed);
        if (!p) continue;
        for (auto& sn : p->snap)
            if (Snapshot* s = sn.load(std::memory_order_relaxed)) Snapshot::destroy(s);
        delete p;
    }
}

void SubscriberTable::add_locked(Entry* entry) {
    const std::uint16_t type_id = entry->type_id;
    auto& page_ref = pages_[type_id >> 8];
    TypePage* page = page_ref.load(std::memory_order_relaxed);
    if (!page) {
        page = new TypePage;
        page_ref.store(page, std::memory_order_release);
    }
    auto& snap_ref = page->snap[type_id & 255];
    Snapshot* old = snap_ref.load(std::memory_order_relaxed);
    const std::uint32_t n = old ? old->count : 0;
    Snapshot* fresh = Snapshot::make(n + 1);
    for (std::uint32_t i = 0; i < n; ++i) fresh->entries[i] = old->entries[i];
    fresh->entries[n] = entry;
    snap_ref.store(fresh, std::memory_order_seq_cst);
    if (old)
        retire_locked(old, nullptr);
    else
        reclaim_locked(false);
}

void SubscriberTable::remove_locked(Entry* entry, std::shared_ptr<const void> keep_alive) {
    auto& snap_ref = pages_[entry->type_id >> 8].load(std::memory_order_relaxed)->snap[entry->type_id & 255];
    Snapshot* old = snap_ref.load(std::memory_order_relaxed);
    Snapshot* fresh = nullptr;
    if (old->count > 1) {
        fresh = Snapshot::make(old->count - 1);
        std::uint32_t j = 0;
        for (std::uint32_t i = 0; i < old->count; ++i)
            if (old->entries[i] != entry) fresh->entries[j++] = old->entries[i];
    }
    snap_ref.store(fresh, std::memory_order_seq_cst);
    retire_locked(old, std::move(keep_alive));
}

void SubscriberTable::retire_locked(Snapshot* old, std::shared_ptr<const void> keep_alive) {
    heavy_barrier();
    Retired r{old, std::move(keep_alive), {}};
    for_each_slot([&](ReaderSlot& s) {
        const std::uint64_t c = s.ctr.load(std::memory_order_seq_cst);
        if (c & 1) r.busy.emplace_back(&s, c);
    });
    retired_.push_back(std::move(r));
    reclaim_locked(false);
}

void SubscriberTable::reclaim_locked(bool wait) {
    // Oldest first: if a newer retirement's readers have all moved on, so have the older's.
    for (std::uint32_t spins = 0; !retired_.empty();) {
        auto& r = retired_.front();
        const bool done = std::all_of(r.busy.begin(), r.busy.end(), [](const auto& b) {
            return b.first->ctr.load(std::memory_order_acquire) != b.second;
        });
        if (done) {
            if (r.snap) Snapshot::destroy(r.snap);
            retired_.pop_front();
            continue;
        }
        if (!wait) return;
        if (++spins < 64)
            std::this_thread::yield();
        else
            std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

}  // namespace mycelium::detail
