// Mailbox: a Vyukov bounded MPMC array queue used with one consumer. Each cell has a
// sequence number: seq == pos means "free for the producer at pos", seq == pos + 1 means
// "message ready for the consumer at pos", and the consumer frees it with pos + capacity.
// MPMC (rather than SPSC-per-producer) because DropOldest makes a producer evict from the
// head, and because many subscriptions share one mailbox.

#include "mycelium/mailbox.hpp"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>


#include "sync.hpp"

namespace mycelium {

struct Mailbox::Cell {
    std::atomic<std::uint64_t> seq;
    std::uint16_t type_id;
    std::uint32_t size;
    std::uint64_t token;
    std::byte* spill;  // heap copy when size > inline_bytes, else nullptr

    std::byte* inline_data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
    const std::byte* data() noexcept { return spill ? spill : inline_data(); }
};

namespace {
constexpr std::size_t CACHE_LINE = 64;
constexpr auto PARK_SLICE = std::chrono::milliseconds(1);
}  // namespace

Mailbox::Mailbox(MailboxOptions options) : options_(options) {
    std::size_t cap = std::max<std::size_t>(2, options_.capacity);
    cap = std::bit_ceil(cap);
    options_.capacity = cap;
    mask_ = cap - 1;
    options_.spill_budget = std::max(options_.spill_budget, options_.max_payload);
    cell_size_ = (sizeof(Cell) + options_.inline_bytes + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    options_.inline_bytes = cell_size_ - sizeof(Cell);
    cells_ = static_cast<std::byte*>(std::aligned_alloc(CACHE_LINE, cell_size_ * cap));
    if (!cells_) throw std::bad_alloc();
    for (std::size_t i = 0; i < cap; ++i) {
        auto* c = new (cells_ + i * cell_size_) Cell;
        c->seq.store(i, std::memory_order_relaxed);
        c->spill = nullptr;
    }
}

Mailbox::~Mailbox() {
    // Free spilled payloads of messages nobody consumed.
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    for (std::uint64_t pos = head; pos != tail; ++pos) {
        Cell* c = cell_at(pos);
        if (c->seq.load(std::memory_order_acquire) == pos + 1) std::free(c->spill);
    }
    for (std::size_t i = 0; i <= mask_; ++i) cell_at(i)->~Cell();
    std::free(cells_);
}

Mailbox::Cell* Mailbox::cell_at(std::uint64_t pos) const noexcept {
    return reinterpret_cast<Cell*>(cells_ + (pos & mask_) * cell_size_);
}

bool Mailbox::reserve_spill(std::size_t bytes) noexcept {
    std::size_t cur = spill_bytes_.load(std::memory_order_relaxed);
    do {
        if (cur + bytes > options_.spill_budget) return false;
    } while (!spill_bytes_.compare_exchange_weak(cur, cur + bytes, std::memory_order_relaxed));
    return true;
}

bool Mailbox::queue_full_at_tail() const noexcept {
    const std::uint64_t pos = tail_.load(std::memory_order_seq_cst);
    return cell_at(pos)->seq.load(std::memory_order_seq_cst) < pos;
}

bool Mailbox::nonempty() const noexcept {
    return tail_.load(std::memory_order_seq_cst) != head_.load(std::memory_order_seq_cst);
}

std::size_t Mailbox::size_approx() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    return tail > head ? static_cast<std::size_t>(tail - head) : 0;
}

// The publish path into a queue (docs/architecture.md section 3.3, hop 10), and longer
// than a function should be on purpose: the fast path (claim a cell, copy, ring the
// doorbell only for a sleeping consumer) and the full-queue policies around it share one
// retry loop, its spill reservation and its spin deadline. Split in two, that state
// would cross a call on every message; kept whole, a push that finds room runs straight
// through without leaving the function.
Result<void, MailboxError> Mailbox::push(std::uint16_t type_id, std::uint64_t token,
                                         std::span<const std::byte> payload, QueuePolicy policy,
                                         const std::atomic<bool>* keep_going,
                                         MailboxDropFn on_drop, void* drop_context,
                                         const WaitPolicy* wait) {
    const std::size_t size = payload.size();
    if (size > options_.max_payload) return Err{MailboxError::TooLarge};
    const bool spills = size > options_.inline_bytes;
    detail::Deadline spin_until;  // armed on the first full observation
    bool spinning_started = false;

    for (;;) {
        if (closed_.load(std::memory_order_acquire)) return Err{MailboxError::Closed};
        if (keep_going && !keep_going->load(std::memory_order_acquire))
            return Err{MailboxError::Cancelled};

        if (!spills || reserve_spill(size)) {
            std::uint64_t pos = tail_.load(std::memory_order_relaxed);
            for (;;) {
                // Fast path: below the consumer's published release mark the cell is
                // known free, so the producer never reads the cell line the consumer
                // last wrote (a cross-core miss per message).
                bool known_free = pos < limit_cache_.load(std::memory_order_acquire);
                if (!known_free) {
                    const std::uint64_t limit =
                        released_.load(std::memory_order_acquire) + mask_ + 1;
                    limit_cache_.store(limit, std::memory_order_release);
                    known_free = pos < limit;
                }
                Cell* c = cell_at(pos);
                std::int64_t diff = 0;
                if (!known_free) {
                    // Slow path (Vyukov): the cell's own sequence is authoritative.
                    const std::uint64_t seq = c->seq.load(std::memory_order_acquire);
                    diff = static_cast<std::int64_t>(seq - pos);
                }
                if (diff == 0) {
                    // seq_cst: this RMW orders before the sleeping_ load below (Dekker
                    // with wait(): either it sees our tail or we see it sleeping).
                    if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst,
                                                    std::memory_order_relaxed)) {
                        c->type_id = type_id;
                        c->size = static_cast<std::uint32_t>(size);
                        c->token = token;
                        std::byte* dst = c->inline_data();
                        if (spills) {
                            // Allocation failure is treated like a full queue below.
                            dst = static_cast<std::byte*>(std::malloc(size));
                            if (!dst) {
                                spill_bytes_.fetch_sub(size, std::memory_order_relaxed);
                                c->size = 0;  // deliver an empty message rather than stall the ring
                            }
                        }
                        c->spill = spills ? dst : nullptr;
                        if (dst && size) std::memcpy(dst, payload.data(), size);
                        c->seq.store(pos + 1, std::memory_order_release);
                        // The first producer to see the consumer asleep rings; later ones
                        // see the flag cleared and save the syscall.
                        if (sleeping_.load(std::memory_order_seq_cst) != 0 &&
                            sleeping_.exchange(0, std::memory_order_seq_cst) != 0) {
                            ring_doorbell();
                        }
                        return {};
                    }
                } else if (diff < 0) {
                    break;  // full
                } else {
                    pos = tail_.load(std::memory_order_relaxed);
                }
            }
            if (spills) spill_bytes_.fetch_sub(size, std::memory_order_relaxed);
        }

        // Full: the ring, or the spill budget.
        switch (policy) {
            case QueuePolicy::Fail:
                dropped_.fetch_add(1, std::memory_order_relaxed);
                return Err{MailboxError::Full};
            case QueuePolicy::DropOldest:
                if (!discard_oldest(on_drop, drop_context)) {
                    // The consumer holds claimed cells it has not freed yet; it will soon.
                    detail::cpu_relax();
                    std::this_thread::yield();
                }
                break;
            case QueuePolicy::Block: {
                if (!spinning_started) {
                    spin_until = detail::Deadline::after(options_.spin);
                    spinning_started = true;
                }
                if (!spin_until.passed()) {
                    // Back off rather than chase the consumer cell by cell: re-trying on
                    // every freed cell bounces each cell's cache line between the cores.
                    for (int k = 0; k < 16; ++k) detail::cpu_relax();
                    break;
                }
                if (wait != nullptr && wait->on_full != nullptr) {
                    const FullAction action = wait->on_full(*this, wait->context);
                    if (action == FullAction::Retry) break;
                    if (action == FullAction::Refuse) {
                        dropped_.fetch_add(1, std::memory_order_relaxed);
                        return Err{MailboxError::Full};
                    }
                }
                waiting_producers_.fetch_add(1, std::memory_order_seq_cst);
                const std::uint32_t observed = space_word_.load(std::memory_order_seq_cst);
                const bool still_full = queue_full_at_tail() ||
                                        (spills && spill_bytes_.load(std::memory_order_seq_cst) +
                                                           size > options_.spill_budget);
                if (still_full && !closed_.load(std::memory_order_seq_cst) &&
                    (!keep_going || keep_going->load(std::memory_order_seq_cst)))
                    wait_for_space(observed, wait);
                waiting_producers_.fetch_sub(1, std::memory_order_relaxed);
                break;
            }
        }
    }
}

void Mailbox::wait_for_space(std::uint32_t observed, const WaitPolicy* wait) noexcept {
    // A bounded slice: a lost wake-up (or a cancelled keep_going flag whose owner did not
    // call notify_producers) costs at most one slice, never a hang.
    void* token = wait != nullptr && wait->before_park != nullptr ? wait->before_park(wait->context) : nullptr;
    detail::futex_wait(&space_word_, observed, PARK_SLICE);
    if (wait != nullptr && wait->after_park != nullptr) wait->after_park(wait->context, token);
}

void Mailbox::ring_doorbell() noexcept {
    doorbell_.fetch_add(1, std::memory_order_seq_cst);
    detail::futex_wake(&doorbell_, 1);
}

void Mailbox::notify_producers() noexcept {
    space_word_.fetch_add(1, std::memory_order_seq_cst);
    detail::futex_wake(&space_word_, INT32_MAX);
}

void Mailbox::release_cell(Cell* c, std::uint64_t pos) noexcept {
    if (c->spill) {
        std::free(c->spill);
        c->spill = nullptr;
        spill_bytes_.fetch_sub(c->size, std::memory_order_relaxed);
    }
    c->seq.store(pos + mask_ + 1, std::memory_order_release);
}

void Mailbox::publish_released(std::uint64_t end) noexcept {
    // All cells below `end` that we claimed are free; cells below our batch were claimed
    // by earlier batches (released) or by evicting producers (checked via evicting_,
    // seq_cst against their fetch_add before their head CAS).
    if (evicting_.load(std::memory_order_seq_cst) == 0 &&
        end > released_.load(std::memory_order_relaxed))
        released_.store(end, std::memory_order_release);
}

void Mailbox::after_release() noexcept {
    // Store-load barrier between freeing cells and reading waiting_producers_ (Dekker with
    // the producer's fetch_add + re-check in push()).
    detail::fence_seq_cst();
    if (waiting_producers_.load(std::memory_order_seq_cst) != 0) notify_producers();
}

bool Mailbox::discard_oldest(MailboxDropFn on_drop, void* drop_context) noexcept {
    // While an eviction is in flight the consumer does not advance released_: the evicted
    // cell may lie below its batch and not be free yet.
    evicting_.fetch_add(1, std::memory_order_seq_cst);
    struct Done {
        std::atomic<std::uint32_t>& n;
        ~Done() { n.fetch_sub(1, std::memory_order_release); }
    } done{evicting_};
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
        Cell* c = cell_at(pos);
        const std::uint64_t seq = c->seq.load(std::memory_order_acquire);
        const auto diff = static_cast<std::int64_t>(seq - (pos + 1));
        if (diff == 0) {
            if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_seq_cst,
                                            std::memory_order_relaxed)) {
                const std::uint16_t type_id = c->type_id;
                const std::uint64_t token = c->token;
                release_cell(c, pos);
                dropped_.fetch_add(1, std::memory_order_relaxed);
                if (on_drop) on_drop(drop_context, type_id, token);
                return true;
            }
        } else if (diff < 0) {
            return false;  // empty, or the next message is still being written
        } else {
            pos = head_.load(std::memory_order_relaxed);
        }
    }
}

std::size_t Mailbox::drain_raw(void (*visit)(void*, const MailboxView&), void* context,
                               std::size_t max) {
    std::size_t total = 0;
    while (total < max) {
        // Claim a run of ready cells with one CAS on head.
        std::uint64_t pos = head_.load(std::memory_order_relaxed);
        std::size_t n = 0;
        for (;;) {
            n = 0;
            const std::size_t limit = std::min<std::size_t>(max - total, mask_ + 1);
            while (n < limit) {
                const std::uint64_t p = pos + n;
                if (cell_at(p)->seq.load(std::memory_order_acquire) != p + 1) break;
                ++n;
            }
            if (n == 0) break;
            if (head_.compare_exchange_weak(pos, pos + n, std::memory_order_seq_cst,
                                            std::memory_order_relaxed))
                break;
        }
        if (n == 0) break;

        // Frees every claimed cell even if visit throws (the rest are discarded).
        struct Releaser {
            Mailbox* mb;
            std::uint64_t next, end;
            ~Releaser() {
                for (; next != end; ++next) mb->release_cell(mb->cell_at(next), next);
                mb->publish_released(end);
                mb->after_release();
            }
        } rel{this, pos, pos + n};
        for (; rel.next != rel.end;) {
            Cell* c = cell_at(rel.next);
            const MailboxView view{c->type_id, c->token, {c->data(), c->size}};
            visit(context, view);
            release_cell(c, rel.next);
            ++rel.next;
        }
        total += n;
    }
    return total;
}

bool Mailbox::try_pop(MailboxMessage& out) {
    return drain(
               [&out](const MailboxView& v) {
                   out.type_id = v.type_id;
                   out.token = v.token;
                   out.payload.assign(v.payload.begin(), v.payload.end());
               },
               1) == 1;
}

std::size_t Mailbox::pop_batch(std::vector<MailboxMessage>& out, std::size_t max) {
    return drain(
        [&out](const MailboxView& v) {
            auto& m = out.emplace_back();
            m.type_id = v.type_id;
            m.token = v.token;
            m.payload.assign(v.payload.begin(), v.payload.end());
        },
        max);
}

bool Mailbox::take_wake_request() noexcept {
    // Load first: an unconditional exchange would pull the line away from producers (it
    // shares it with sleeping_) on every spin.
    return wake_requested_.load(std::memory_order_relaxed) &&
           wake_requested_.exchange(false, std::memory_order_acq_rel);
}

bool Mailbox::head_ready() const noexcept {
    const std::uint64_t pos = head_.load(std::memory_order_relaxed);
    return cell_at(pos)->seq.load(std::memory_order_acquire) == pos + 1;
}

WaitStatus Mailbox::wait(std::chrono::nanoseconds timeout) {
    // Spin on the next cell, which producers write anyway, not on tail_: polling tail_
    // would steal its line from the producers' CAS on every message.
    if (head_ready()) return WaitStatus::Ready;
    const auto deadline = detail::Deadline::after(timeout);
    const auto spin_until = detail::Deadline::after(std::min(timeout, options_.spin));
    for (std::uint32_t i = 0;; ++i) {
        if (head_ready()) return WaitStatus::Ready;
        if (take_wake_request()) return WaitStatus::Woken;
        if (closed_.load(std::memory_order_relaxed) && !nonempty()) return WaitStatus::Closed;
        if ((i & 63) == 63 && spin_until.passed()) break;
        detail::cpu_relax();
    }
    for (;;) {
        const std::uint32_t bell = doorbell_.load(std::memory_order_acquire);
        sleeping_.store(1, std::memory_order_seq_cst);
        // Dekker with push(): tail_ (not the cell) is what producers order against.
        if (nonempty()) {
            sleeping_.store(0, std::memory_order_relaxed);
            return WaitStatus::Ready;
        }
        if (take_wake_request()) {
            sleeping_.store(0, std::memory_order_relaxed);
            return WaitStatus::Woken;
        }
        if (closed_.load(std::memory_order_acquire)) {
            sleeping_.store(0, std::memory_order_relaxed);
            return WaitStatus::Closed;
        }
        const auto left = deadline.remaining();
        if (left <= std::chrono::nanoseconds::zero()) {
            sleeping_.store(0, std::memory_order_relaxed);
            return WaitStatus::Timeout;
        }
        detail::futex_wait(&doorbell_, bell, left);
        sleeping_.store(0, std::memory_order_relaxed);
    }
}

void Mailbox::wake() noexcept {
    wake_requested_.store(true, std::memory_order_seq_cst);
    ring_doorbell();
}

void Mailbox::close() noexcept {
    closed_.store(true, std::memory_order_seq_cst);
    doorbell_.fetch_add(1, std::memory_order_seq_cst);
    detail::futex_wake(&doorbell_, INT32_MAX);
    notify_producers();
}

}  // namespace mycelium
