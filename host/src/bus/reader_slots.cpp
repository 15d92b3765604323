// The process-wide registry of reader slots (reader_slots.hpp) and the asymmetric fences
// that make announcing in one cheap (the file comment of bus.cpp).

#include "reader_slots.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>

namespace mycelium::detail {

SlotChunk g_first_chunk;
[[maybe_unused]] bool g_asym = false;

constinit thread_local ReaderSlot* tl_slot = nullptr;
constinit thread_local std::uint64_t tl_table_uid = 0;
constinit thread_local CounterTable* tl_table = nullptr;

namespace {

std::mutex g_registry_mu;

// Hands the slot back when its thread ends. The counter-table cache goes with it: a
// thread_local destructor that publishes afterwards gets a new slot, and must not keep
// writing to a table that now belongs to the slot's next owner.
struct SlotReleaser {
    ~SlotReleaser() {
        if (tl_slot) {
            tl_slot->in_use.store(false, std::memory_order_release);
            tl_slot = nullptr;
        }
        tl_table_uid = 0;
        tl_table = nullptr;
    }
};

}  // namespace

void init_membarrier() {
#ifndef MYC_TSAN
    static std::once_flag once;
    std::call_once(once, [] {
        const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
            syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
            g_asym = true;
    });
#endif
}

void heavy_barrier() noexcept {
#ifdef MYC_TSAN
    fence_seq_cst();
#else
    if (g_asym)
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    else
        std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

ReaderSlot* acquire_slot() {
    init_membarrier();
    static thread_local SlotReleaser releaser;
    (void)releaser;
    for (;;) {
        SlotChunk* last = nullptr;
        for (SlotChunk* c = &g_first_chunk; c; c = c->next.load(std::memory_order_acquire)) {
            for (auto& s : c->slots) {
                bool expected = false;
                if (!s.in_use.load(std::memory_order_relaxed) &&
                    s.in_use.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
                    tl_slot = &s;
                    return &s;
                }
            }
            last = c;
        }
        std::lock_guard lock(g_registry_mu);
        if (!last->next.load(std::memory_order_acquire))
            last->next.store(new SlotChunk, std::memory_order_release);
    }
}

}  // namespace mycelium::detail
