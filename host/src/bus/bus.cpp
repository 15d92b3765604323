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
// Interest. Each subscription that counts as interest adds one to its type's count while
// mu is held (the interest tracker's own lock is taken inside it); a count that goes
// 0 -> 1 or 1 -> 0 appends an event (with a sequence number) to a queue in the same step,
// so events are in the order of the changes. Listeners are called outside both locks by
// one delivering thread at a time (whoever finds nobody delivering drains the queue), so
// a listener may subscribe or close without deadlocking and sees the events in order.
// None of it touches publish().
//
// The parts, each a file of its own: reader_slots (the slots and the fences),
// subscriber_table (snapshots and their retirement), bus_counters, interest_tracker,
// consumer_thread (a queued subscriber's own thread). This file is the publish path and
// the subscription records that tie them together.

#include "mycelium/bus.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "bus_impl.hpp"

namespace mycelium::detail {

void report_callback_exception(std::uint16_t type_id) {
    try {
        throw;
    } catch (const std::exception& e) {
        spdlog::error("bus: subscriber of type {} threw: {}", type_id, e.what());
    } catch (...) {
        spdlog::error("bus: subscriber of type {} threw a non-standard exception", type_id);
    }
}

namespace {

/// Whether a Block queue can take `frames` more without its publisher waiting, keeping an
/// eighth of it free: io threads check first and never fill a queue the last cells of
/// which other publishers (and their races with each other) would make them wait for.
bool has_room(const Mailbox& mailbox, std::size_t frames) noexcept {
    const std::size_t capacity = mailbox.capacity();
    const std::size_t wanted = std::min(frames, capacity / 2) + capacity / 8;
    return mailbox.size_approx() + wanted <= capacity;
}

/// Whether a live subscriber in `snap` cannot take `frames` more now: a Block queue
/// without room, or an inline subscriber whose has_room says no.
[[gnu::always_inline]] inline bool any_without_room(const Snapshot& snap, std::size_t frames) noexcept {
    for (std::uint32_t i = 0, n = snap.count; i < n; ++i) {
        const Entry* e = snap.entries[i];
        if (!e->alive.load(std::memory_order_relaxed)) continue;
        const bool no_room = e->queued ? e->policy == QueuePolicy::Block && !has_room(*e->mailbox, frames)
                                       : e->has_room != nullptr && !e->has_room(e->room_context, frames);
        if (no_room) return true;
    }
    return false;
}

/// What one run did, counted once for the whole run.
struct RunTally {
    std::uint64_t delivered = 0;
    std::uint64_t dropped = 0;
    bool queue_full = false;
};

// One subscriber's share of a run: a batch callback gets it in one call, an inline one
// message by message, a queue a push per message. always_inline: a piece of deliver(),
// kept apart to be read, not to be called.
[[gnu::always_inline]] inline void deliver_to(BusImpl& bus, Entry* e, std::uint16_t type_id,
                                              std::span<const MessageView> run, RunTally& tally) {
    if (e->invoke_batch != nullptr) {
        try {
            e->invoke_batch(e->context, run);
            tally.delivered += run.size();
        } catch (...) {
            tally.dropped += run.size();
            report_callback_exception(type_id);
        }
        return;
    }
    if (!e->queued) {
        for (const MessageView& view : run) {
            try {
                e->invoke(e->context, view);
                ++tally.delivered;
            } catch (...) {
                ++tally.dropped;
                report_callback_exception(type_id);
            }
        }
        return;
    }
    for (const MessageView& view : run) {
        auto r = e->mailbox->push(type_id, e->token, view.payload, e->policy, &e->alive, &BusImpl::on_evicted, &bus,
                                  bus.wait_policy.load(std::memory_order_acquire));
        if (r) {
            ++tally.delivered;
        } else {
            ++tally.dropped;
            if (r.error() == MailboxError::Full) tally.queue_full = true;
        }
    }
}

}  // namespace

// One run of messages of one type: the reader slot is announced, the snapshot loaded and
// the counters bumped once for the whole run. Inlined so that publish(), a run of one,
// costs what it did before runs existed (bus.publish_inline_32B: 10.2-10.4 ns called,
// 9.3-10.0 inlined).
[[gnu::always_inline]] inline Result<void, PublishError> BusImpl::deliver(std::uint16_t type_id,
                                                                         std::span<const MessageView> run,
                                                                         bool* no_room) {
    if (closed.load(std::memory_order_relaxed)) [[unlikely]]
        return Err{PublishError::Closed};

    ReaderSlot* const s = my_slot();
    CounterCell* cell = counters.local_cell(s, type_id);
    const bool shared = cell == nullptr;
    if (shared) [[unlikely]]
        cell = counters.shared_cell(type_id);
    RunTally tally;

    if (TypePage* page = subscribers.page(type_id)) {
        const std::uint32_t level = s->depth++;
        if (level == 0)
            announce(s->ctr, s->ctr.load(std::memory_order_relaxed) + 1);  // odd: reading
        else if (level >= EXEC_DEPTH)
            announce(s->deep, s->deep.load(std::memory_order_relaxed) + 1);

        Snapshot* snap = page->load(type_id);
        if (no_room != nullptr && snap != nullptr) [[unlikely]] {
            *no_room = any_without_room(*snap, run.size());
            if (*no_room) snap = nullptr;  // deliver nothing, count nothing
        }
        if (snap != nullptr) {
            for (std::uint32_t i = 0, n = snap->count; i < n; ++i) {
                Entry* e = snap->entries[i];
                if (level < EXEC_DEPTH) announce<const void*>(s->exec[level], e);
                if (!e->alive.load(std::memory_order_seq_cst)) continue;
                deliver_to(*this, e, type_id, run, tally);
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
        if (tally.delivered) bump(cell->delivered, tally.delivered);
        if (tally.dropped) bump(cell->dropped, tally.dropped);
    } else {
        cell->published.fetch_add(run.size(), std::memory_order_relaxed);
        cell->delivered.fetch_add(tally.delivered, std::memory_order_relaxed);
        cell->dropped.fetch_add(tally.dropped, std::memory_order_relaxed);
    }
    if (tally.queue_full) return Err{PublishError::QueueFull};
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

std::uint64_t BusImpl::add(std::shared_ptr<Record> rec) {
    std::uint64_t id = 0;
    {
        std::unique_lock lock(mu);
        if (closed.load(std::memory_order_relaxed)) return 0;
        id = add_locked(std::move(rec));
    }
    interest.deliver_events();
    return id;
}

std::uint64_t BusImpl::add_locked(std::shared_ptr<Record> rec) {
    rec->id = next_id++;
    if (rec->entry.queued && rec->entry.token == 0 && rec->consumer) rec->entry.token = rec->id;
    subscribers.add_locked(&rec->entry);
    records.emplace(rec->id, rec);
    if (rec->interest) interest.count(rec->entry.type_id);
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
        if (rec->interest) interest.uncount(e->type_id);
        e->alive.store(false, std::memory_order_seq_cst);
        // The record (entry, mailbox, callable) lives until readers that may hold the old
        // snapshot have moved on; a non-self close frees the callable sooner, below.
        subscribers.remove_locked(e, rec);
    }
    interest.deliver_events();
    Entry* e = &rec->entry;
    // Publishers parked in a Block push to this entry re-check e->alive and give up.
    if (rec->mailbox) rec->mailbox->notify_producers();

    ReaderSlot* own = tl_slot;
    bool self = false;
    if (own)
        for (auto& x : own->exec)
            if (x.load(std::memory_order_relaxed) == e) self = true;
    if (rec->consumer && rec->consumer->thread.get_id() == std::this_thread::get_id()) self = true;

    if (rec->consumer) {
        ConsumerThread& w = *rec->consumer;
        w.stop.store(true, std::memory_order_release);
        w.mailbox->wake();
        if (self)
            w.thread.detach();  // the loop ends after the running callback returns
        else if (w.thread.joinable())
            w.thread.join();
    }
    if (self) return;  // documented: no wait when closing yourself from your own callback
    wait_until_unused(e);
    rec->holder.reset();  // nobody can call it any more
}

void BusImpl::wait_until_unused(const Entry* e) noexcept {
    ReaderSlot* own = tl_slot;
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
    subscribers.reclaim_locked(!inside);  // never wait for ourselves
}

// The members free the rest: the subscriber table what retired readers no longer hold,
// the counters their pages, handing this bus's tables back to their threads.
BusImpl::~BusImpl() { shutdown(); }

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
    const std::uint64_t id = impl_->add(std::move(rec));
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
    auto consumer = std::make_shared<detail::ConsumerThread>();
    consumer->mailbox = std::make_shared<Mailbox>(mo);
    consumer->holder = std::move(owner);
    consumer->invoke = invoke;
    consumer->context = context;

    auto rec = std::make_shared<detail::Record>();
    rec->interest = options.counts_as_interest;
    rec->entry.type_id = type_id;
    rec->entry.queued = true;
    rec->entry.policy = options.policy;
    rec->entry.mailbox = consumer->mailbox.get();
    rec->mailbox = consumer->mailbox;
    rec->consumer = consumer;

    detail::start_consumer(consumer, impl_, options.cpu);
    const std::uint64_t id = impl_->add(rec);
    if (!id) {
        consumer->stop.store(true);
        consumer->mailbox->wake();
        consumer->thread.join();
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
    const std::uint64_t id = impl_->add(std::move(rec));
    return id ? Subscription(impl_, id) : Subscription();
}

TypeCounters Bus::counters(std::uint16_t type_id) const { return impl_->counters.sum(type_id); }

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
    const std::uint64_t id = impl_->interest.add_listener(std::move(fn));
    return InterestWatch(impl_, id);
}

bool Bus::interested(std::uint16_t type_id) const { return impl_->interest.interested(type_id); }

std::vector<std::uint16_t> Bus::interested_types() const { return impl_->interest.interested_types(); }

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
    if (bus_ && id_) bus_->interest.remove_listener(id_);
    bus_.reset();
    id_ = 0;
}

}  // namespace mycelium
