// The bus. How the lock-free publish path stays safe:
//
// Reader slots. Every thread that publishes owns one ReaderSlot from a process-wide
// registry (chunks of 64 slots, never freed, reused when threads exit). A slot holds
//   - ctr: odd while the thread is inside publish() (outermost level), single writer;
//   - exec[depth]: the subscriber entry the thread is invoking at each nesting level;
//   - the thread's counter tables (one per bus it publishes to), single writer.
// Readers only do plain stores to their own slot. The store-load ordering a Dekker
// handshake needs ("I announce, then I read the list" vs. "writer swaps, then reads the
// announcements") is paid on the writer's side with membarrier(PRIVATE_EXPEDITED), an
// asymmetric fence, so the reader's side is a compiler barrier. Without membarrier
// (old kernel) readers fall back to a real fence; under TSan all of it uses seq_cst
// atomics, which TSan understands.
//
// Snapshots. Each type id has an immutable array of Entry pointers. subscribe/close copy
// it under mu_, swap it in, and retire the old one with the (slot, ctr) pairs of readers
// that were inside publish at that moment. It is freed once each of them has moved on
// (ctr changed), checked at every later write and at shutdown. No leak with churn: the
// retired list only holds what still-running publishes may be reading.
//
// close(). Clears the entry's alive flag (publishers re-check it right before every
// invocation, after announcing the entry in exec[]), swaps the snapshot, then waits until
// no other thread's exec[] names the entry. Waiting per entry rather than for a global
// grace period is what lets callbacks close other subscriptions without deadlocking on
// each other; only a true cycle (A closes B while B closes A, on two threads) can.
// Nesting deeper than EXEC_DEPTH is tracked by a counter and waited for conservatively.
//
// Interest. Each subscription that counts as interest adds one to its type's count under
// mu; a count that goes 0 -> 1 or 1 -> 0 appends an event (with a sequence number) to a
// queue, still under mu, so events are in the order of the changes. Listeners are called
// outside mu by one delivering thread at a time (whoever finds nobody delivering drains
// the queue), so a listener may subscribe or close without deadlocking and sees the
// events in order. None of it touches publish().

#include "mycelium/bus.hpp"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "sync.hpp"

namespace mycelium::detail {
namespace {

constexpr std::uint32_t EXEC_DEPTH = 16;
constexpr std::size_t MAX_BUS_TABLES = 4;
constexpr std::size_t SLOTS_PER_CHUNK = 64;

// ---------------------------------------------------------------------------------------
// Asymmetric fences

[[maybe_unused]] bool g_asym = false;  // written once (under call_once) before any slot is handed out

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

// Reader side: make a plain store to our slot ordered before our following loads.
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

// Writer side: a fence on every CPU running this process.
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

// Single-writer counter bump: no locked instruction.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------
// Counters

struct CounterCell {
    std::atomic<std::uint64_t> published{0};
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::uint64_t> dropped{0};
};
struct CounterPage {
    CounterCell cell[256];
};
// One thread's counters for one bus; bus_uid 0 marks a free table (its bus is gone).
struct CounterTable {
    std::atomic<std::uint64_t> bus_uid{0};
    std::atomic<CounterPage*> pages[256]{};
};

// ---------------------------------------------------------------------------------------
// Reader slots

struct alignas(64) ReaderSlot {
    std::atomic<std::uint64_t> ctr{0};
    std::atomic<std::uint32_t> deep{0};
    std::uint32_t depth = 0;  // owner only
    std::atomic<const void*> exec[EXEC_DEPTH]{};
    alignas(64) std::atomic<bool> in_use{false};
    std::atomic<CounterTable*> tables[MAX_BUS_TABLES]{};
};

struct SlotChunk {
    ReaderSlot slots[SLOTS_PER_CHUNK];
    std::atomic<SlotChunk*> next{nullptr};
};

SlotChunk g_first_chunk;  // constant-initialised; more chunks are appended, never freed
std::mutex g_registry_mu;

template <class F>
void for_each_slot(F&& f) {
    for (SlotChunk* c = &g_first_chunk; c; c = c->next.load(std::memory_order_acquire))
        for (auto& s : c->slots) f(s);
}

thread_local ReaderSlot* tl_slot = nullptr;
thread_local std::uint64_t tl_table_uid = 0;
thread_local CounterTable* tl_table = nullptr;

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

inline ReaderSlot* my_slot() {
    ReaderSlot* s = tl_slot;
    return s ? s : acquire_slot();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Bus internals

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

struct TypePage {
    std::atomic<Snapshot*> snap[256]{};
};

struct Worker {
    std::shared_ptr<Mailbox> mailbox;
    std::unique_ptr<CallbackHolder> holder;
    void (*invoke)(void*, const MessageView&) = nullptr;
    void* context = nullptr;
    std::atomic<bool> stop{false};
    std::thread thread;
};

struct Record {
    std::uint64_t id = 0;
    bool interest = true;  // counts as interest for its type
    Entry entry;
    std::unique_ptr<CallbackHolder> holder;  // inline callable
    std::shared_ptr<Mailbox> mailbox;        // queued (owned worker's or external)
    std::shared_ptr<Worker> worker;          // owned consumer thread
};

struct BusImpl {
    explicit BusImpl(BusOptions o) : options(o), uid(next_uid()) { init_membarrier(); }
    ~BusImpl();

    static std::uint64_t next_uid() {
        static std::atomic<std::uint64_t> n{0};
        return n.fetch_add(1, std::memory_order_relaxed) + 1;
    }

    Result<void, PublishError> publish(std::uint16_t type_id, std::span<const std::byte> payload);
    Result<void, PublishError> publish_batch(std::span<const MessageView> messages);
    /// With `no_room`, delivers nothing and sets it when a Block queue subscribed to the
    /// type has no room for the run (see Bus::publish_batch_if_room).
    Result<void, PublishError> deliver(std::uint16_t type_id, std::span<const MessageView> run,
                                       bool* no_room = nullptr);
    Result<std::size_t, PublishError> publish_batch_if_room(std::span<const MessageView> messages);
    std::uint64_t add(std::uint16_t type_id, std::shared_ptr<Record> rec);
    std::uint64_t add_locked(std::uint16_t type_id, std::shared_ptr<Record> rec);
    void remove(std::uint64_t id) noexcept;
    bool has(std::uint64_t id) const;
    void shutdown() noexcept;
    TypeCounters counters(std::uint16_t type_id) const;

    CounterCell* local_cell(ReaderSlot* s, std::uint16_t type_id);
    CounterCell* shared_cell(std::uint16_t type_id);
    void count_dropped(std::uint16_t type_id);
    void reclaim_locked(bool wait);
    void retire_locked(Snapshot* old, std::shared_ptr<Record> rec);

    static void on_evicted(void* self, std::uint16_t type_id, std::uint64_t) {
        static_cast<BusImpl*>(self)->count_dropped(type_id);
    }

    // Interest (see the file comment). The *_locked functions need mu.
    struct InterestEvent {
        std::uint64_t seq;
        std::uint16_t type_id;
        bool interested;
    };
    struct InterestListener {
        std::uint64_t id = 0;
        std::function<void(std::uint16_t, bool)> fn;
        std::atomic<bool> alive{true};
        std::uint64_t from_seq = 0;          // events before it are covered by `initial`
        std::vector<std::uint16_t> initial;  // the set when it was added, not yet delivered
    };
    void interest_add_locked(std::uint16_t type_id);
    void interest_remove_locked(std::uint16_t type_id);
    void deliver_interest() noexcept;
    std::uint64_t add_listener(std::function<void(std::uint16_t, bool)> fn);
    void remove_listener(std::uint64_t id) noexcept;

    BusOptions options;
    std::atomic<const WaitPolicy*> wait_policy{nullptr};  ///< Bus::set_wait_policy
    const std::uint64_t uid;
    std::atomic<bool> closed{false};
    std::atomic<TypePage*> pages[256]{};
    std::atomic<CounterPage*> shared_pages[256]{};  // threads with too many buses

    mutable std::mutex mu;
    std::uint64_t next_id = 1;
    std::unordered_map<std::uint64_t, std::shared_ptr<Record>> records;
    struct Retired {
        Snapshot* snap;
        std::shared_ptr<Record> rec;
        std::vector<std::pair<ReaderSlot*, std::uint64_t>> busy;
    };
    std::deque<Retired> retired;

    std::unordered_map<std::uint16_t, std::uint32_t> interest;  // type -> counting subscribers
    std::vector<InterestEvent> interest_events;
    std::uint64_t interest_seq = 0;
    std::vector<std::shared_ptr<InterestListener>> listeners;
    std::uint64_t next_listener_id = 1;
    bool delivering = false;
    std::thread::id deliverer;
    std::condition_variable delivered_cv;
};

CounterCell* BusImpl::shared_cell(std::uint16_t type_id) {
    auto& slot = shared_pages[type_id >> 8];
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

// The calling thread's own counters for this bus; nullptr if it already has tables for
// MAX_BUS_TABLES other live buses (then the shared, atomic ones are used).
CounterCell* BusImpl::local_cell(ReaderSlot* s, std::uint16_t type_id) {
    CounterTable* t = tl_table;
    if (tl_table_uid != uid) {
        t = nullptr;
        for (auto& ref : s->tables) {
            CounterTable* c = ref.load(std::memory_order_relaxed);
            if (c && c->bus_uid.load(std::memory_order_relaxed) == uid) {
                t = c;
                break;
            }
        }
        if (!t) {
            for (auto& ref : s->tables) {
                CounterTable* c = ref.load(std::memory_order_relaxed);
                if (!c) {
                    c = new CounterTable;
                    c->bus_uid.store(uid, std::memory_order_release);
                    ref.store(c, std::memory_order_release);
                    t = c;
                    break;
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
                    if (c->bus_uid.compare_exchange_strong(zero, uid, std::memory_order_acq_rel)) {
                        t = c;
                        break;
                    }
                }
            }
        }
        if (!t) return nullptr;
        tl_table_uid = uid;
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

void BusImpl::count_dropped(std::uint16_t type_id) {
    if (CounterCell* c = local_cell(my_slot(), type_id))
        bump(c->dropped);
    else
        shared_cell(type_id)->dropped.fetch_add(1, std::memory_order_relaxed);
}

namespace {
void report_callback_exception(std::uint16_t type_id) {
    try {
        throw;
    } catch (const std::exception& e) {
        spdlog::error("bus: subscriber of type {} threw: {}", type_id, e.what());
    } catch (...) {
        spdlog::error("bus: subscriber of type {} threw a non-standard exception", type_id);
    }
}
}  // namespace

// One run of messages of one type: the reader slot is announced, the snapshot loaded and
// the counters bumped once for the whole run. Inlined so that publish(), a run of one,
// costs what it did before runs existed (bus.publish_inline_32B: 10.2-10.4 ns called,
// 9.3-10.0 inlined).
namespace {

/// Whether a Block queue can take `frames` more without its publisher waiting, keeping an
/// eighth of it free: io threads check first and never fill a queue the last cells of
/// which other publishers (and their races with each other) would make them wait for.
bool has_room(const Mailbox& mailbox, std::size_t frames) noexcept {
    const std::size_t capacity = mailbox.capacity();
    const std::size_t wanted = std::min(frames, capacity / 2) + capacity / 8;
    return mailbox.size_approx() + wanted <= capacity;
}

}  // namespace

[[gnu::always_inline]] inline Result<void, PublishError> BusImpl::deliver(std::uint16_t type_id,
                                                                         std::span<const MessageView> run,
                                                                         bool* no_room) {
    if (closed.load(std::memory_order_relaxed)) [[unlikely]]
        return Err{PublishError::Closed};

    ReaderSlot* const s = my_slot();
    CounterCell* cell = local_cell(s, type_id);
    const bool shared = cell == nullptr;
    if (shared) [[unlikely]]
        cell = shared_cell(type_id);
    std::uint64_t delivered = 0, dropped = 0;
    bool queue_full = false;

    if (TypePage* page = pages[type_id >> 8].load(std::memory_order_acquire)) {
        const std::uint32_t level = s->depth++;
        if (level == 0)
            announce(s->ctr, s->ctr.load(std::memory_order_relaxed) + 1);  // odd: reading
        else if (level >= EXEC_DEPTH)
            announce(s->deep, s->deep.load(std::memory_order_relaxed) + 1);

        Snapshot* snap = page->snap[type_id & 255].load(std::memory_order_seq_cst);
        if (no_room != nullptr && snap != nullptr) [[unlikely]] {
            for (std::uint32_t i = 0, n = snap->count; i < n && !*no_room; ++i) {
                const Entry* e = snap->entries[i];
                if (!e->alive.load(std::memory_order_relaxed)) continue;
                *no_room = e->queued ? e->policy == QueuePolicy::Block && !has_room(*e->mailbox, run.size())
                                     : e->has_room != nullptr && !e->has_room(e->room_context, run.size());
            }
            if (*no_room) snap = nullptr;  // deliver nothing, count nothing
        }
        if (snap != nullptr) {
            for (std::uint32_t i = 0, n = snap->count; i < n; ++i) {
                Entry* e = snap->entries[i];
                if (level < EXEC_DEPTH) announce<const void*>(s->exec[level], e);
                if (!e->alive.load(std::memory_order_seq_cst)) continue;
                if (e->invoke_batch != nullptr) {
                    try {
                        e->invoke_batch(e->context, run);
                        delivered += run.size();
                    } catch (...) {
                        dropped += run.size();
                        report_callback_exception(type_id);
                    }
                    continue;
                }
                if (!e->queued) {
                    for (const MessageView& view : run) {
                        try {
                            e->invoke(e->context, view);
                            ++delivered;
                        } catch (...) {
                            ++dropped;
                            report_callback_exception(type_id);
                        }
                    }
                    continue;
                }
                for (const MessageView& view : run) {
                    auto r = e->mailbox->push(type_id, e->token, view.payload, e->policy, &e->alive,
                                              &BusImpl::on_evicted, this,
                                              wait_policy.load(std::memory_order_acquire));
                    if (r) {
                        ++delivered;
                    } else {
                        ++dropped;
                        if (r.error() == MailboxError::Full) queue_full = true;
                    }
                }
            }
            if (level < EXEC_DEPTH) s->exec[level].store(nullptr, std::memory_order_release);
        }

        if (level >= EXEC_DEPTH)
            s->deep.store(s->deep.load(std::memory_order_relaxed) - 1, std::memory_order_release);
        s->depth = level;
        if (level == 0)
            s->ctr.store(s->ctr.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }

    if (no_room != nullptr && *no_room) [[unlikely]]
        return {};
    if (!shared) [[likely]] {
        bump(cell->published, run.size());
        if (delivered) bump(cell->delivered, delivered);
        if (dropped) bump(cell->dropped, dropped);
    } else {
        cell->published.fetch_add(run.size(), std::memory_order_relaxed);
        cell->delivered.fetch_add(delivered, std::memory_order_relaxed);
        cell->dropped.fetch_add(dropped, std::memory_order_relaxed);
    }
    if (queue_full) return Err{PublishError::QueueFull};
    return {};
}

Result<void, PublishError> BusImpl::publish(std::uint16_t type_id,
                                            std::span<const std::byte> payload) {
    if (payload.size() > options.max_payload) [[unlikely]]
        return Err{PublishError::TooLarge};
    const MessageView view{type_id, payload};
    return deliver(type_id, std::span<const MessageView>(&view, 1));
}

Result<void, PublishError> BusImpl::publish_batch(std::span<const MessageView> messages) {
    // One pass checks the sizes and whether the batch is one run (the common case).
    bool one_type = true;
    for (const MessageView& m : messages) {
        if (m.payload.size() > options.max_payload) [[unlikely]]
            return Err{PublishError::TooLarge};
        one_type = one_type && m.type_id == messages.front().type_id;
    }
    if (one_type && !messages.empty()) return deliver(messages.front().type_id, messages);
    bool queue_full = false;
    for (std::size_t i = 0; i < messages.size();) {
        const std::uint16_t type_id = messages[i].type_id;
        std::size_t end = i + 1;
        while (end < messages.size() && messages[end].type_id == type_id) ++end;
        const auto r = deliver(type_id, messages.subspan(i, end - i));
        if (!r) {
            if (r.error() == PublishError::Closed) return r;
            queue_full = true;
        }
        i = end;
    }
    if (queue_full) return Err{PublishError::QueueFull};
    return {};
}

Result<std::size_t, PublishError> BusImpl::publish_batch_if_room(std::span<const MessageView> messages) {
    for (const MessageView& m : messages) {
        if (m.payload.size() > options.max_payload) [[unlikely]]
            return Err{PublishError::TooLarge};
    }
    std::size_t published = 0;
    while (published < messages.size()) {
        const std::uint16_t type_id = messages[published].type_id;
        std::size_t end = published + 1;
        while (end < messages.size() && messages[end].type_id == type_id) ++end;
        bool no_room = false;
        const auto r = deliver(type_id, messages.subspan(published, end - published), &no_room);
        if (!r && r.error() == PublishError::Closed) return Err{PublishError::Closed};
        if (no_room) break;
        published = end;
    }
    return published;
}

// Called with mu held, right after a snapshot swap (or alive flag clear).
void BusImpl::retire_locked(Snapshot* old, std::shared_ptr<Record> rec) {
    heavy_barrier();
    Retired r{old, std::move(rec), {}};
    for_each_slot([&](ReaderSlot& s) {
        const std::uint64_t c = s.ctr.load(std::memory_order_seq_cst);
        if (c & 1) r.busy.emplace_back(&s, c);
    });
    retired.push_back(std::move(r));
    reclaim_locked(false);
}

void BusImpl::reclaim_locked(bool wait) {
    // Oldest first: if a newer retirement's readers have all moved on, so have the older's.
    for (std::uint32_t spins = 0; !retired.empty();) {
        auto& r = retired.front();
        const bool done = std::all_of(r.busy.begin(), r.busy.end(), [](const auto& b) {
            return b.first->ctr.load(std::memory_order_acquire) != b.second;
        });
        if (done) {
            if (r.snap) Snapshot::destroy(r.snap);
            retired.pop_front();
            continue;
        }
        if (!wait) return;
        if (++spins < 64)
            std::this_thread::yield();
        else
            std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

std::uint64_t BusImpl::add(std::uint16_t type_id, std::shared_ptr<Record> rec) {
    std::uint64_t id = 0;
    {
        std::unique_lock lock(mu);
        if (closed.load(std::memory_order_relaxed)) return 0;
        id = add_locked(type_id, std::move(rec));
    }
    deliver_interest();
    return id;
}

std::uint64_t BusImpl::add_locked(std::uint16_t type_id, std::shared_ptr<Record> rec) {
    rec->id = next_id++;
    if (rec->entry.queued && rec->entry.token == 0 && rec->worker) rec->entry.token = rec->id;
    auto& page_ref = pages[type_id >> 8];
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
    fresh->entries[n] = &rec->entry;
    snap_ref.store(fresh, std::memory_order_seq_cst);
    records.emplace(rec->id, rec);
    if (rec->interest) interest_add_locked(type_id);
    if (old)
        retire_locked(old, nullptr);
    else
        reclaim_locked(false);
    return rec->id;
}

bool BusImpl::has(std::uint64_t id) const {
    std::lock_guard lock(mu);
    return records.count(id) != 0;
}

void BusImpl::remove(std::uint64_t id) noexcept {
    std::shared_ptr<Record> rec;
    {
        std::lock_guard lock(mu);
        auto it = records.find(id);
        if (it == records.end()) return;
        rec = std::move(it->second);
        records.erase(it);
        Entry* e = &rec->entry;
        if (rec->interest) interest_remove_locked(e->type_id);
        e->alive.store(false, std::memory_order_seq_cst);
        auto& snap_ref = pages[e->type_id >> 8].load(std::memory_order_relaxed)->snap[e->type_id & 255];
        Snapshot* old = snap_ref.load(std::memory_order_relaxed);
        Snapshot* fresh = nullptr;
        if (old->count > 1) {
            fresh = Snapshot::make(old->count - 1);
            std::uint32_t j = 0;
            for (std::uint32_t i = 0; i < old->count; ++i)
                if (old->entries[i] != e) fresh->entries[j++] = old->entries[i];
        }
        snap_ref.store(fresh, std::memory_order_seq_cst);
        // The record (entry, mailbox, callable) lives until readers that may hold the old
        // snapshot have moved on; a non-self close frees the callable sooner, below.
        retire_locked(old, rec);
    }
    deliver_interest();
    Entry* e = &rec->entry;
    // Publishers parked in a Block push to this entry re-check e->alive and give up.
    if (rec->mailbox) rec->mailbox->notify_producers();

    ReaderSlot* own = tl_slot;
    bool self = false;
    if (own)
        for (auto& x : own->exec)
            if (x.load(std::memory_order_relaxed) == e) self = true;
    if (rec->worker && rec->worker->thread.get_id() == std::this_thread::get_id()) self = true;

    if (rec->worker) {
        Worker& w = *rec->worker;
        w.stop.store(true, std::memory_order_release);
        w.mailbox->wake();
        if (self)
            w.thread.detach();  // the loop ends after the running callback returns
        else if (w.thread.joinable())
            w.thread.join();
    }
    if (self) return;  // documented: no wait when closing yourself from your own callback

    // Wait until no other thread is inside this entry's callback (or push).
    for_each_slot([&](ReaderSlot& s) {
        if (&s == own) return;
        for (std::uint32_t spins = 0;; ++spins) {
            bool busy = s.deep.load(std::memory_order_seq_cst) != 0;
            for (auto& x : s.exec)
                if (x.load(std::memory_order_seq_cst) == e) busy = true;
            if (!busy) break;
            if (spins < 64)
                cpu_relax();
            else if (spins < 256)
                std::this_thread::yield();
            else
                std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    });
    rec->holder.reset();  // nobody can call it any more
}

void BusImpl::interest_add_locked(std::uint16_t type_id) {
    if (++interest[type_id] == 1) interest_events.push_back({interest_seq++, type_id, true});
}

void BusImpl::interest_remove_locked(std::uint16_t type_id) {
    auto it = interest.find(type_id);
    if (it == interest.end()) return;
    if (--it->second == 0) {
        interest.erase(it);
        interest_events.push_back({interest_seq++, type_id, false});
    }
}

void BusImpl::deliver_interest() noexcept {
    std::unique_lock lock(mu);
    if (delivering) return;  // the delivering thread picks our events up
    delivering = true;
    deliverer = std::this_thread::get_id();
    std::vector<InterestEvent> events;
    std::vector<std::pair<std::shared_ptr<InterestListener>, std::vector<std::uint16_t>>> initials;
    std::vector<std::shared_ptr<InterestListener>> targets;
    for (;;) {
        events.clear();
        initials.clear();
        events.swap(interest_events);
        for (auto& l : listeners) {
            if (l->initial.empty()) continue;
            initials.emplace_back(l, std::move(l->initial));
            l->initial.clear();
        }
        if (events.empty() && initials.empty()) break;
        targets = listeners;
        lock.unlock();
        const auto call = [](InterestListener& l, std::uint16_t type_id, bool on) {
            if (!l.alive.load(std::memory_order_acquire)) return;
            try {
                l.fn(type_id, on);
            } catch (const std::exception& e) {
                spdlog::error("bus: interest listener threw: {}", e.what());
            } catch (...) {
                spdlog::error("bus: interest listener threw a non-standard exception");
            }
        };
        // A listener's initial set comes before the events that followed its creation.
        for (auto& [l, types] : initials)
            for (const std::uint16_t t : types) call(*l, t, true);
        for (const auto& ev : events)
            for (auto& l : targets)
                if (ev.seq >= l->from_seq) call(*l, ev.type_id, ev.interested);
        targets.clear();
        initials.clear();
        lock.lock();
    }
    delivering = false;
    deliverer = {};
    lock.unlock();
    delivered_cv.notify_all();
}

std::uint64_t BusImpl::add_listener(std::function<void(std::uint16_t, bool)> fn) {
    auto l = std::make_shared<InterestListener>();
    l->fn = std::move(fn);
    {
        std::lock_guard lock(mu);
        l->id = next_listener_id++;
        l->from_seq = interest_seq;
        l->initial.reserve(interest.size());
        for (const auto& [type_id, count] : interest) l->initial.push_back(type_id);
        std::sort(l->initial.begin(), l->initial.end());
        listeners.push_back(l);
    }
    deliver_interest();
    return l->id;
}

void BusImpl::remove_listener(std::uint64_t id) noexcept {
    std::unique_lock lock(mu);
    auto it = std::find_if(listeners.begin(), listeners.end(), [&](const auto& l) { return l->id == id; });
    if (it == listeners.end()) return;
    (*it)->alive.store(false, std::memory_order_release);
    listeners.erase(it);
    // The delivering thread may be calling it right now; wait for that round to end,
    // unless we are that thread (closing from inside a listener).
    if (delivering && deliverer != std::this_thread::get_id())
        delivered_cv.wait(lock, [&] { return !delivering; });
}

void BusImpl::shutdown() noexcept {
    closed.store(true, std::memory_order_seq_cst);
    std::vector<std::uint64_t> ids;
    {
        std::lock_guard lock(mu);
        for (auto& [id, rec] : records) ids.push_back(id);
    }
    for (auto id : ids) remove(id);
    std::lock_guard lock(mu);
    ReaderSlot* own = tl_slot;
    const bool inside = own && (own->ctr.load(std::memory_order_relaxed) & 1);
    reclaim_locked(!inside);  // never wait for ourselves
}

TypeCounters BusImpl::counters(std::uint16_t type_id) const {
    TypeCounters out;
    auto add_cell = [&](const CounterCell& c) {
        out.published += c.published.load(std::memory_order_relaxed);
        out.delivered += c.delivered.load(std::memory_order_relaxed);
        out.dropped += c.dropped.load(std::memory_order_relaxed);
    };
    for_each_slot([&](ReaderSlot& s) {
        for (auto& ref : s.tables) {
            CounterTable* t = ref.load(std::memory_order_acquire);
            if (!t || t->bus_uid.load(std::memory_order_acquire) != uid) continue;
            if (CounterPage* p = t->pages[type_id >> 8].load(std::memory_order_acquire))
                add_cell(p->cell[type_id & 255]);
        }
    });
    if (CounterPage* p = shared_pages[type_id >> 8].load(std::memory_order_acquire))
        add_cell(p->cell[type_id & 255]);
    return out;
}

BusImpl::~BusImpl() {
    shutdown();  // also frees what retired readers no longer hold
    {
        std::lock_guard lock(mu);
        for (auto& r : retired)  // only left if destroyed from inside a callback
            if (r.snap) Snapshot::destroy(r.snap);
        retired.clear();
    }
    for (auto& pg : pages) {
        TypePage* p = pg.load(std::memory_order_relaxed);
        if (!p) continue;
        for (auto& sn : p->snap)
            if (Snapshot* s = sn.load(std::memory_order_relaxed)) Snapshot::destroy(s);
        delete p;
    }
    for (auto& pg : shared_pages) delete pg.load(std::memory_order_relaxed);
    // Hand this bus's counter tables back for reuse by the threads that own them.
    for_each_slot([&](ReaderSlot& s) {
        for (auto& ref : s.tables)
            if (CounterTable* t = ref.load(std::memory_order_acquire)) {
                std::uint64_t mine = uid;
                t->bus_uid.compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
            }
    });
}

namespace {
void worker_loop(const std::shared_ptr<Worker>& w, const std::weak_ptr<BusImpl>& bus_ref) {
    auto visit = [&](const MailboxView& v) {
        if (w->stop.load(std::memory_order_acquire)) return;  // closing: discard the rest
        try {
            w->invoke(w->context, MessageView{v.type_id, v.payload});
        } catch (...) {
            if (auto bus = bus_ref.lock()) bus->count_dropped(v.type_id);
            report_callback_exception(v.type_id);
        }
    };
    while (!w->stop.load(std::memory_order_acquire)) {
        if (w->mailbox->drain(visit, 256) != 0) continue;
        if (w->mailbox->wait(std::chrono::milliseconds(100)) == WaitStatus::Closed) break;
    }
}

void pin_to_cpu(std::thread& t, int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<unsigned>(cpu), &set);
    if (pthread_setaffinity_np(t.native_handle(), sizeof(set), &set) != 0)
        spdlog::warn("bus: could not pin a consumer thread to cpu {}", cpu);
}
}  // namespace

}  // namespace mycelium::detail

namespace mycelium {

// ---------------------------------------------------------------------------------------
// Subscription

Subscription::~Subscription() { close(); }

Subscription::Subscription(Subscription&& other) noexcept
    : bus_(std::move(other.bus_)), id_(std::exchange(other.id_, 0)) {}

Subscription& Subscription::operator=(Subscription&& other) noexcept {
    if (this != &other) {
        close();
        bus_ = std::move(other.bus_);
        id_ = std::exchange(other.id_, 0);
    }
    return *this;
}

void Subscription::close() noexcept {
    if (bus_ && id_) bus_->remove(id_);
    bus_.reset();
}

bool Subscription::active() const noexcept { return bus_ && id_ && bus_->has(id_); }

// ---------------------------------------------------------------------------------------
// Bus

Bus::Bus(BusOptions options) : impl_(std::make_shared<detail::BusImpl>(options)) {}

Bus::~Bus() {
    if (impl_) impl_->shutdown();
}

Result<void, PublishError> Bus::publish(std::uint16_t type_id, std::span<const std::byte> payload) {
    return impl_->publish(type_id, payload);
}

Result<void, PublishError> Bus::publish_batch(std::span<const MessageView> messages) {
    return impl_->publish_batch(messages);
}

Subscription Bus::subscribe_inline_raw(std::uint16_t type_id, InvokeFn invoke, void* context,
                                       std::unique_ptr<HolderBase> owner, bool counts_as_interest,
                                       InvokeBatchFn invoke_batch, RoomFn has_room, const void* room_context) {
    auto rec = std::make_shared<detail::Record>();
    rec->interest = counts_as_interest;
    rec->entry.type_id = type_id;
    rec->entry.invoke = invoke;
    rec->entry.invoke_batch = invoke_batch;
    rec->entry.context = context;
    rec->entry.has_room = has_room;
    rec->entry.room_context = room_context;
    rec->holder = std::move(owner);
    const std::uint64_t id = impl_->add(type_id, std::move(rec));
    return id ? Subscription(impl_, id) : Subscription();
}

Subscription Bus::subscribe_queued_raw(std::uint16_t type_id, InvokeFn invoke, void* context,
                                       std::unique_ptr<HolderBase> owner,
                                       const QueueOptions& options) {
    MailboxOptions mo;
    mo.capacity = options.capacity;
    mo.inline_bytes = options.inline_bytes;
    mo.max_payload = impl_->options.max_payload;
    mo.spin = options.spin;
    auto worker = std::make_shared<detail::Worker>();
    worker->mailbox = std::make_shared<Mailbox>(mo);
    worker->holder = std::move(owner);
    worker->invoke = invoke;
    worker->context = context;

    auto rec = std::make_shared<detail::Record>();
    rec->interest = options.counts_as_interest;
    rec->entry.type_id = type_id;
    rec->entry.queued = true;
    rec->entry.policy = options.policy;
    rec->entry.mailbox = worker->mailbox.get();
    rec->mailbox = worker->mailbox;
    rec->worker = worker;

    worker->thread = std::thread(
        [w = worker, bus = std::weak_ptr<detail::BusImpl>(impl_)] { detail::worker_loop(w, bus); });
    detail::pin_to_cpu(worker->thread, options.cpu);
    const std::uint64_t id = impl_->add(type_id, rec);
    if (!id) {
        worker->stop.store(true);
        worker->mailbox->wake();
        worker->thread.join();
        return Subscription();
    }
    return Subscription(impl_, id);
}

Subscription Bus::subscribe_mailbox(std::uint16_t type_id, std::shared_ptr<Mailbox> mailbox,
                                    std::uint64_t token, QueuePolicy policy) {
    auto rec = std::make_shared<detail::Record>();
    rec->entry.type_id = type_id;
    rec->entry.queued = true;
    rec->entry.policy = policy;
    rec->entry.mailbox = mailbox.get();
    rec->entry.token = token;
    rec->mailbox = std::move(mailbox);
    const std::uint64_t id = impl_->add(type_id, std::move(rec));
    return id ? Subscription(impl_, id) : Subscription();
}

TypeCounters Bus::counters(std::uint16_t type_id) const { return impl_->counters(type_id); }

void Bus::shutdown() noexcept { impl_->shutdown(); }

Result<std::size_t, PublishError> Bus::publish_batch_if_room(std::span<const MessageView> messages) {
    return impl_->publish_batch_if_room(messages);
}

void Bus::set_wait_policy(const WaitPolicy* policy) noexcept {
    impl_->wait_policy.store(policy, std::memory_order_release);
}

const WaitPolicy* Bus::wait_policy() const noexcept { return impl_->wait_policy.load(std::memory_order_acquire); }

std::size_t Bus::max_payload() const noexcept { return impl_->options.max_payload; }

InterestWatch Bus::watch_interest(std::function<void(std::uint16_t, bool)> fn) {
    const std::uint64_t id = impl_->add_listener(std::move(fn));
    return InterestWatch(impl_, id);
}

bool Bus::interested(std::uint16_t type_id) const {
    std::lock_guard lock(impl_->mu);
    return impl_->interest.count(type_id) != 0;
}

std::vector<std::uint16_t> Bus::interested_types() const {
    std::vector<std::uint16_t> out;
    {
        std::lock_guard lock(impl_->mu);
        out.reserve(impl_->interest.size());
        for (const auto& [type_id, count] : impl_->interest) out.push_back(type_id);
    }
    std::sort(out.begin(), out.end());
    return out;
}

// ---------------------------------------------------------------------------------------
// InterestWatch

InterestWatch::~InterestWatch() { close(); }

InterestWatch::InterestWatch(InterestWatch&& other) noexcept
    : bus_(std::move(other.bus_)), id_(std::exchange(other.id_, 0)) {}

InterestWatch& InterestWatch::operator=(InterestWatch&& other) noexcept {
    if (this != &other) {
        close();
        bus_ = std::move(other.bus_);
        id_ = std::exchange(other.id_, 0);
    }
    return *this;
}

void InterestWatch::close() noexcept {
    if (bus_ && id_) bus_->remove_listener(id_);
    bus_.reset();
    id_ = 0;
}

}  // namespace mycelium
