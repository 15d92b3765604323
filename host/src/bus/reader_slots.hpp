#pragma once
// Reader slots (the file comment of bus.cpp explains the algorithm): every thread that
// publishes owns one ReaderSlot from a process-wide registry shared by every bus, and
// says in it whether it is inside a publish and which subscriber entry it is calling.
// Writers (subscribe, close) read every slot to know when an old subscriber list is free.
// Private header of host/src/bus/.

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sync.hpp"

namespace mycelium::detail {

/// Nesting levels of publish-inside-a-callback tracked entry by entry; deeper levels are
/// only counted (ReaderSlot::deep) and waited for conservatively.
constexpr std::uint32_t EXEC_DEPTH = 16;
/// Buses a thread keeps counters of its own for (bus_counters.hpp); beyond them it uses
/// a bus's shared, atomic ones.
constexpr std::size_t MAX_BUS_TABLES = 4;
constexpr std::size_t SLOTS_PER_CHUNK = 64;

struct CounterTable;  // bus_counters.hpp

/// One thread's announcements. Thread safety: the owner writes, everyone reads.
struct alignas(64) ReaderSlot {
    std::atomic<std::uint64_t> ctr{0};  ///< odd while inside publish (outermost level)
    std::atomic<std::uint32_t> deep{0};  ///< levels at or beyond EXEC_DEPTH
    std::uint32_t depth = 0;  ///< owner only
    std::atomic<const void*> exec[EXEC_DEPTH]{};  ///< the entry being invoked, per level
    alignas(64) std::atomic<bool> in_use{false};
    std::atomic<CounterTable*> tables[MAX_BUS_TABLES]{};  ///< the thread's counters, per bus
};

struct SlotChunk {
    ReaderSlot slots[SLOTS_PER_CHUNK];
    std::atomic<SlotChunk*> next{nullptr};
};

/// Constant-initialised; more chunks are appended, never freed.
extern SlotChunk g_first_chunk;
/// Written once (under call_once) before any slot is handed out: membarrier() works, so
/// readers need only a compiler barrier.
extern bool g_asym;

// The calling thread's slot and its last-used counter table (for bus tl_table_uid).
// constinit: reading them on the publish path calls no TLS initialisation wrapper.
extern constinit thread_local ReaderSlot* tl_slot;
extern constinit thread_local std::uint64_t tl_table_uid;
extern constinit thread_local CounterTable* tl_table;

/// Registers this process for membarrier(PRIVATE_EXPEDITED) once, if the kernel has it.
void init_membarrier();
/// Claims a free slot for the calling thread (appending a chunk when all are taken); it
/// is handed back when the thread ends.
ReaderSlot* acquire_slot();
/// Writer side of the handshake: a fence on every CPU running this process.
void heavy_barrier() noexcept;

inline ReaderSlot* my_slot() {
    ReaderSlot* s = tl_slot;
    return s ? s : acquire_slot();
}

/// Reader side: makes a plain store to our slot ordered before our following loads.
template <class T>
inline void announce(std::atomic<T>& a, T v) noexcept {
#ifdef MYC_TSAN
    a.store(v, std::memory_order_seq_cst);
#else
    a.store(v, std::memory_order_relaxed);
    if (g_asym)
        std::atomic_signal_fence(std::memory_order_seq_cst);
    else
        std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

template <class F>
void for_each_slot(F&& f) {
    for (SlotChunk* c = &g_first_chunk; c; c = c->next.load(std::memory_order_acquire))
        for (auto& s : c->slots) f(s);
}

}  // namespace mycelium::detail
