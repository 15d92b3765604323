// The slow parts of a bus's counters (bus_counters.hpp): claiming a thread's table,
// the shared cells, summing, and handing the tables back when the bus goes.

#include "bus_counters.hpp"

namespace mycelium::detail {

namespace {
std::uint64_t next_uid() {
    static std::atomic<std::uint64_t> n{0};
    return n.fetch_add(1, std::memory_order_relaxed) + 1;
}
}  // namespace

BusCounters::BusCounters() : uid_(next_uid()) {}

BusCounters::~BusCounters() {
    for (auto& pg : shared_pages_) delete pg.load(std::memory_order_relaxed);
    for_each_slot([&](ReaderSlot& s) {
        for (auto& ref : s.tables)
            if (CounterTable* t = ref.load(std::memory_order_acquire)) {
                std::uint64_t mine = uid_;
                t->bus_uid.compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
            }
    });
}

CounterTable* BusCounters::find_or_claim_table(ReaderSlot* s) {
    for (auto& ref : s->tables) {
        CounterTable* c = ref.load(std::memory_order_relaxed);
        if (c && c->bus_uid.load(std::memory_order_relaxed) == uid_) return c;
    }
    for (auto& ref : s->tables) {
        CounterTable* c = ref.load(std::memory_order_relaxed);
        if (!c) {
            c = new CounterTable;
            c->bus_uid.store(uid_, std::memory_order_release);
            ref.store(c, std::memory_order_release);
            return c;
        }
        if (c->bus_uid.load(std::memory_order_acquire) == 0) {
            // Recycle a dead bus's table: zero it, then claim it.
            for (auto& pg : c->pages)
                if (CounterPage* p = pg.load(std::memory_order_relaxed))
                    for (auto& cell : p->cell) {
                        cell.published.store(0, std::memory_order_relaxed);
                        cell.delivered.store(0, std::memory_order_relaxed);
                        cell.dropped.store(0, std::memory_order_relaxed);
                    }
            std::uint64_t zero = 0;
            if (c->bus_uid.compare_exchange_strong(zero, uid_, std::memory_order_acq_rel)) return c;
        }
    }
    return nullptr;
}

CounterCell* BusCounters::shared_cell(std::uint16_t type_id) {
    auto& slot = shared_pages_[type_id >> 8];
    CounterPage* p = slot.load(std::memory_order_acquire);
    if (!p) {
        auto* fresh = new CounterPage;
        if (slot.compare_exchange_strong(p, fresh, std::memory_order_acq_rel))
            p = fresh;
        else
            delete fresh;
    }
    return &p->cell[type_id & 255];
}

void BusCounters::count_dropped(std::uint16_t type_id) {
    if (CounterCell* c = local_cell(my_slot(), type_id))
        bump(c->dropped);
    else
        shared_cell(type_id)->dropped.fetch_add(1, std::memory_order_relaxed);
}

TypeCounters BusCounters::sum(std::uint16_t type_id) const {
    TypeCounters out;
    auto add_cell = [&](const CounterCell& c) {
        out.published += c.published.load(std::memory_order_relaxed);
        out.delivered += c.delivered.load(std::memory_order_relaxed);
        out.dropped += c.dropped.load(std::memory_order_relaxed);
    };
    for_each_slot([&](ReaderSlot& s) {
        for (auto& ref : s.tables) {
            CounterTable* t = ref.load(std::memory_order_acquire);
            if (!t || t->bus_uid.load(std::memory_order_acquire) != uid_) continue;
            if (CounterPage* p = t->pages[type_id >> 8].load(std::memory_order_acquire))
                add_cell(p->cell[type_id & 255]);
        }
    });
    if (CounterPage* p = shared_pages_[type_id >> 8].load(std::memory_order_acquire))
        add_cell(p->cell[type_id & 255]);
    return out;
}

}  // namespace mycelium::detail
