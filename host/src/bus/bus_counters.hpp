#pragma once
// One bus's per-type counters (published, delivered, dropped). Each publishing thread
// bumps tables of its own, found through its reader slot, with plain stores: no locked
// instruction on the publish path. A thread with tables for MAX_BUS_TABLES other live
// buses uses the bus's shared, atomic cells instead. Private header of host/src/bus/.

#include <atomic>
#include <cstdint>

#include "mycelium/bus.hpp"
#include "reader_slots.hpp"

namespace mycelium::detail {

struct CounterCell {
    std::atomic<std::uint64_t> published{0};
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::uint64_t> dropped{0};
};
struct CounterPage {
    CounterCell cell[256];
};
/// One thread's counters for one bus; bus_uid 0 marks a free table (its bus is gone).
struct CounterTable {
    std::atomic<std::uint64_t> bus_uid{0};
    std::atomic<CounterPage*> pages[256]{};
};

/// Single-writer counter bump: no locked instruction.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// The counters of one bus, identified by a process-unique uid.
/// Thread safety: local_cell() returns the calling thread's own cells (single writer);
/// shared_cell(), count_dropped() and sum() may be called from any thread.
class BusCounters {
public:
    BusCounters();
    /// Frees the shared cells and hands this bus's tables back to the threads that own
    /// them, for their next bus. No publish may be running.
    ~BusCounters();
    BusCounters(const BusCounters&) = delete;
    BusCounters& operator=(const BusCounters&) = delete;

    /// The calling thread's own cell for `type_id` (slot `s` is its slot), or nullptr
    /// when it already has tables for MAX_BUS_TABLES other live buses. The publish path:
    /// inline, and after a thread's first publish to this bus one compare and two loads.
    CounterCell* local_cell(ReaderSlot* s, std::uint16_t type_id) {
        CounterTable* t = tl_table;
        if (tl_table_uid != uid_) {
            t = find_or_claim_table(s);
            if (!t) return nullptr;
            tl_table_uid = uid_;
            tl_table = t;
        }
        auto& pg = t->pages[type_id >> 8];
        CounterPage* p = pg.load(std::memory_order_relaxed);
        if (!p) {
            p = new CounterPage;
            pg.store(p, std::memory_order_release);
        }
        return &p->cell[type_id & 255];
    }
    /// The bus's shared cell for `type_id`, bumped with atomic adds.
    CounterCell* shared_cell(std::uint16_t type_id);
    /// Counts one message of `type_id` as dropped, in the calling thread's cells.
    void count_dropped(std::uint16_t type_id);
    /// The type's counters summed over every thread's tables and the shared cells.
    TypeCounters sum(std::uint16_t type_id) const;

private:
    /// The table of slot `s` for this bus: an existing one, a new one, or a dead bus's
    /// table recycled; nullptr when the slot has no room left.
    CounterTable* find_or_claim_table(ReaderSlot* s);

    const std::uint64_t uid_;
    std::atomic<CounterPage*> shared_pages_[256]{};  ///< threads with too many buses
};

}  // namespace mycelium::detail
