#pragma once
/// The in-process bus (docs/architecture.md sections 3 and 6): publish by type id, inline and queued
/// subscribers, bounded queues with a policy per subscription, per-type counters. Dense
/// streams go in runs: publish_batch() hands many messages over in one pass, and
/// subscribe_batch() subscribers receive each run in one call.
///
/// The bus carries a type id and bytes; it does not know the schema registry. Payloads are
/// limited to BusOptions::max_payload (4 MiB by default, the schema's frame limit).
///
/// Hot path: publish() to N inline subscribers takes no lock and allocates nothing in the
/// steady state (a thread's first publish into a range of 256 type ids allocates its
/// 6 KiB counter page once). The subscriber list of each type is an immutable snapshot
/// swapped atomically on subscribe/unsubscribe; retired snapshots are freed after a grace
/// period observed through per-thread reader slots (see host/src/bus/bus.cpp).
///
/// Callback guarantees:
/// - After Subscription::close() returns, its callback is not running and will not run
///   again, on any thread.
/// - Exception: close() called from inside that subscription's own callback (directly or
///   from a nested publish) returns at once without waiting for invocations on other
///   threads; no new invocation starts after it returns.
/// - subscribe and close may be called from any thread, including from inside any
///   callback. The only way to deadlock is a true cycle: callback A (running on thread 1)
///   closes B while callback B (running on thread 2) closes A.
/// - A callback that throws is logged and counted as dropped; the bus keeps running.
///
/// Interest: the bus also knows which type ids have at least one subscriber that
/// counts as interest (every subscription by default; node-to-node links subscribe with
/// `counts_as_interest = false`), so a node can tell its peers what to send it. The set
/// is maintained under the subscription lock, never on the publish path; see
/// Bus::watch_interest().

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "mycelium/mailbox.hpp"
#include "mycelium/result.hpp"
#include "mycelium/wire_limits.hpp"

namespace mycelium {

namespace detail {
struct BusImpl;
}  // namespace detail

/// A message as subscribers see it: its type id and a view of its payload bytes, valid
/// only during the callback. Thread safety: a value type.
struct MessageView {
    /// The message's type id.
    std::uint16_t type_id = 0;
    /// The payload bytes; copy them to keep them past the callback.
    std::span<const std::byte> payload;
};

namespace detail {
/// Type-erased owner of a subscriber's callable (destroyed when the subscription closes).
/// Thread safety: owned by one subscription record.
struct CallbackHolder {
    /// Destroys the callable.
    virtual ~CallbackHolder() = default;
};
/// Owns one callable `F` and calls it through a plain function pointer (no std::function
/// on the hot path). Thread safety: as thread-safe as F.
template <class F>
struct Holder final : CallbackHolder {
    /// Takes ownership of the callable.
    explicit Holder(F f) : fn(std::move(f)) {}
    /// Calls the callable stored at `self` with `view`.
    static void invoke(void* self, const MessageView& view) { static_cast<Holder*>(self)->fn(view); }
    /// The callable.
    F fn;
};
/// Owns one batch callable `F` (called with a run of messages) through a plain function
/// pointer. Thread safety: as thread-safe as F.
template <class F>
struct BatchHolder final : CallbackHolder {
    /// Takes ownership of the callable.
    explicit BatchHolder(F f) : fn(std::move(f)) {}
    /// Calls the callable stored at `self` with `run`.
    static void invoke(void* self, std::span<const MessageView> run) { static_cast<BatchHolder*>(self)->fn(run); }
    /// The callable.
    F fn;
};
}  // namespace detail

/// Why Bus::publish did not deliver a message to every subscriber.
enum class PublishError : std::uint8_t {
    /// A subscriber with QueuePolicy::Fail had a full queue; the message was counted as
    /// dropped for that subscriber and still delivered to the others.
    QueueFull,
    /// The payload is larger than BusOptions::max_payload; nothing was delivered.
    TooLarge,
    /// The bus was shut down; nothing was delivered.
    Closed,
};

/// A snapshot of one type's counters, summed over all threads.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct TypeCounters {
    /// publish() calls for the type (including those with no subscriber).
    std::uint64_t published = 0;
    /// Deliveries: inline callbacks run plus messages accepted by a queue.
    std::uint64_t delivered = 0;
    /// Messages lost: refused (Fail), evicted (DropOldest), cancelled while blocked,
    /// or whose inline callback threw.
    std::uint64_t dropped = 0;
};

/// Construction options of a Bus.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct BusOptions {
    /// Largest payload publish() accepts (the schema's default frame limit).
    std::size_t max_payload = wire::MAX_PAYLOAD;
};

/// Options of a queued subscription that owns its consumer thread.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct QueueOptions {
    /// What publish does when the queue is full.
    QueuePolicy policy = QueuePolicy::Block;
    /// Queue capacity in messages (rounded up to a power of two).
    std::size_t capacity = 1024;
    /// Payload bytes stored in place; larger messages spill to a bounded heap budget.
    std::size_t inline_bytes = 32;
    /// How long the consumer thread (and a blocked publisher) spins before parking.
    /// Zero parks at once; keep it bounded on small machines.
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);
    /// CPU to pin the consumer thread to, or -1 to leave it unpinned.
    int cpu = -1;
    /// Whether the subscription makes its type part of the bus's interest (see
    /// SubscribeOptions::counts_as_interest).
    bool counts_as_interest = true;
};

/// Options of an inline subscription.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct SubscribeOptions {
    /// Whether the subscription makes its type part of the bus's interest
    /// (Bus::interested(), Bus::watch_interest()). Local code, scripts and client
    /// connections count; a node-to-node link subscribes with false, so that what one
    /// peer wants is never declared to another peer.
    bool counts_as_interest = true;
    /// For an inline subscriber that queues what it is given (a link's send queue under
    /// the `block` slow-consumer policy): whether it can take `frames` more now.
    /// publish_batch_if_room() asks it as it looks at a Block queue's fill, and holds the
    /// run back when it answers no, so the producer is paused rather than the consumer
    /// dropped. Called on publishing threads, concurrently; must not wait or publish.
    /// nullptr: always room.
    bool (*has_room)(const void* context, std::size_t frames) = nullptr;
    const void* room_context = nullptr;
};

/// Trivially copyable generated message structs with `static constexpr uint16_t TYPE_ID`.
template <class T>
concept TypedMessage = std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T> &&
                       requires {
                           { T::TYPE_ID } -> std::convertible_to<std::uint16_t>;
                       };

/// RAII handle of one subscription: close() or the destructor unsubscribes.
/// Thread safety: distinct objects safe; one object must not be used from two threads at
/// once (close() itself may race with publishes on any thread).
class Subscription {
public:
    /// An empty handle (active() is false).
    Subscription() noexcept = default;
    /// Unsubscribes (see close()).
    ~Subscription();
    /// Takes over `other`'s subscription; `other` becomes empty.
    Subscription(Subscription&& other) noexcept;
    /// Closes this subscription, then takes over `other`'s.
    Subscription& operator=(Subscription&& other) noexcept;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    /// Unsubscribes. When it returns the callback is not running and never runs again
    /// (from inside the subscription's own callback it returns at once instead; see the
    /// file comment). Stops and joins an owned consumer thread; messages still queued for
    /// it are discarded. Idempotent; a no-op after the bus is gone.
    void close() noexcept;

    /// Whether this handle still holds a subscription (not closed, bus not shut down).
    bool active() const noexcept;

    /// A process-unique id of the subscription (0 for an empty handle).
    std::uint64_t id() const noexcept { return id_; }

private:
    friend class Bus;
    Subscription(std::shared_ptr<detail::BusImpl> bus, std::uint64_t id) noexcept
        : bus_(std::move(bus)), id_(id) {}

    std::shared_ptr<detail::BusImpl> bus_;
    std::uint64_t id_ = 0;
};

/// RAII handle of an interest listener (Bus::watch_interest): close() or the destructor
/// removes it.
/// Thread safety: distinct objects safe; one object must not be used from two threads at
/// once.
class InterestWatch {
public:
    /// An empty handle (active() is false).
    InterestWatch() noexcept = default;
    /// Removes the listener (see close()).
    ~InterestWatch();
    /// Takes over `other`'s listener; `other` becomes empty.
    InterestWatch(InterestWatch&& other) noexcept;
    /// Closes this listener, then takes over `other`'s.
    InterestWatch& operator=(InterestWatch&& other) noexcept;
    InterestWatch(const InterestWatch&) = delete;
    InterestWatch& operator=(const InterestWatch&) = delete;

    /// Removes the listener. When it returns the listener is not running and never runs
    /// again, except when called from inside a listener: then it returns at once and no
    /// new call starts. Idempotent; a no-op after the bus is gone.
    void close() noexcept;
    /// Whether this handle still holds a listener.
    bool active() const noexcept { return bus_ != nullptr && id_ != 0; }

private:
    friend class Bus;
    InterestWatch(std::shared_ptr<detail::BusImpl> bus, std::uint64_t id) noexcept
        : bus_(std::move(bus)), id_(id) {}

    std::shared_ptr<detail::BusImpl> bus_;
    std::uint64_t id_ = 0;
};

/// The in-process publish/subscribe bus.
/// Thread safety: every member function may be called from any thread concurrently,
/// except the destructor.
class Bus {
public:
    /// Creates an empty bus.
    explicit Bus(BusOptions options = {});
    /// shutdown(), then frees everything. Subscriptions that outlive the bus become inert.
    ~Bus();
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;

    /// Delivers `payload` to every subscriber of `type_id`: inline callbacks run on this
    /// thread, queued subscribers get a copy under their policy (Block may wait).
    /// Errors: TooLarge, Closed (nothing delivered); QueueFull (a Fail queue refused it,
    /// the others got it). No lock; no allocation for inline subscribers.
    Result<void, PublishError> publish(std::uint16_t type_id, std::span<const std::byte> payload);

    /// Publishes a generated struct under T::TYPE_ID. Same errors as publish().
    template <TypedMessage T>
    Result<void, PublishError> publish(const T& message) {
        return publish(T::TYPE_ID,
                       std::span<const std::byte>(reinterpret_cast<const std::byte*>(&message),
                                                  sizeof(T)));
    }

    /// Delivers `messages` (of any types, in order) as publish() would one by one, in one
    /// pass: for each run of consecutive messages of one type the subscriber list, this
    /// thread's reader slot and the counters are touched once, and a batch subscriber
    /// (subscribe_batch) gets the whole run in one call. For dense streams, where the
    /// per-publish overhead is the cost.
    /// Errors: TooLarge (some payload is above max_payload; nothing delivered), Closed
    /// (the bus shut down; the runs before were delivered), QueueFull (as publish()).
    Result<void, PublishError> publish_batch(std::span<const MessageView> messages);

    /// publish_batch() for a thread that must never wait (a link's io thread serves many
    /// clients): publishes the runs of one type in order, up to the first run that a
    /// Block-policy queue subscribed to its type has no room for (or an inline subscriber's
    /// SubscribeOptions::has_room refuses), and returns how many messages it published.
    /// The caller holds the rest and offers it again later; that
    /// run was neither delivered nor counted. A queue counts as full an eighth before its
    /// end, so that io threads racing each other past the check still never wait.
    /// Errors: TooLarge (nothing delivered), Closed (the runs before were delivered).
    Result<std::size_t, PublishError> publish_batch_if_room(std::span<const MessageView> messages);

    /// Publishes generated structs of one type, PUBLISH_BATCH_RUN at a time. Same errors
    /// as publish_batch() (QueueFull once every message has been offered).
    template <TypedMessage T>
    Result<void, PublishError> publish_batch(std::span<const T> messages) {
        MessageView views[PUBLISH_BATCH_RUN];
        bool queue_full = false;
        for (std::size_t at = 0; at < messages.size(); at += PUBLISH_BATCH_RUN) {
            const std::size_t n = std::min(PUBLISH_BATCH_RUN, messages.size() - at);
            for (std::size_t i = 0; i < n; ++i)
                views[i] = MessageView{T::TYPE_ID, std::as_bytes(std::span<const T>(&messages[at + i], 1))};
            const auto r = publish_batch(std::span<const MessageView>(views, n));
            if (!r) {
                if (r.error() != PublishError::QueueFull) return r;
                queue_full = true;
            }
        }
        if (queue_full) return Err{PublishError::QueueFull};
        return {};
    }

    /// How many messages the typed publish_batch() hands to the bus per pass.
    static constexpr std::size_t PUBLISH_BATCH_RUN = 256;

    /// Inline subscriber: `fn(const MessageView&)` runs on the publishing thread, so it
    /// must be short and thread-safe. May be called from inside a callback.
    template <class F>
        requires std::invocable<F&, const MessageView&>
    Subscription subscribe(std::uint16_t type_id, F&& fn) {
        auto holder = std::make_unique<Holder<std::decay_t<F>>>(std::forward<F>(fn));
        auto* raw = holder.get();
        return subscribe_inline_raw(type_id, &Holder<std::decay_t<F>>::invoke, raw,
                                    std::move(holder));
    }

    /// Inline subscriber with options (SubscribeOptions::counts_as_interest).
    template <class F>
        requires std::invocable<F&, const MessageView&>
    Subscription subscribe(std::uint16_t type_id, F&& fn, SubscribeOptions options) {
        auto holder = std::make_unique<Holder<std::decay_t<F>>>(std::forward<F>(fn));
        auto* raw = holder.get();
        return subscribe_inline_raw(type_id, &Holder<std::decay_t<F>>::invoke, raw,
                                    std::move(holder), options.counts_as_interest);
    }

    /// Inline batch subscriber: `fn(std::span<const MessageView>)` runs on the publishing
    /// thread with a run of consecutive messages of `type_id`: a whole run from
    /// publish_batch(), one message from publish(). For subscribers that pay a cost per
    /// call they can share across messages (a lock, a syscall, a ring publish). Otherwise
    /// as subscribe(); a throw counts the whole run as dropped.
    template <class F>
        requires std::invocable<F&, std::span<const MessageView>>
    Subscription subscribe_batch(std::uint16_t type_id, F&& fn, SubscribeOptions options = {}) {
        auto holder = std::make_unique<detail::BatchHolder<std::decay_t<F>>>(std::forward<F>(fn));
        auto* raw = holder.get();
        return subscribe_inline_raw(type_id, nullptr, raw, std::move(holder), options.counts_as_interest,
                                    &detail::BatchHolder<std::decay_t<F>>::invoke, options.has_room,
                                    options.room_context);
    }

    /// Typed inline subscriber: `fn(const T&)` for messages of T::TYPE_ID whose payload is
    /// exactly sizeof(T) bytes (others are skipped).
    template <TypedMessage T, class F>
        requires std::invocable<F&, const T&>
    Subscription subscribe(F&& fn) {
        return subscribe(T::TYPE_ID, typed_adapter<T>(std::forward<F>(fn)));
    }

    /// Queued subscriber with its own consumer thread: publishes go into a bounded queue
    /// (policy and size in `options`) and `fn(const MessageView&)` runs on that thread.
    /// Throws std::system_error if the thread cannot be started.
    template <class F>
        requires std::invocable<F&, const MessageView&>
    Subscription subscribe_queued(std::uint16_t type_id, F&& fn, QueueOptions options = {}) {
        auto holder = std::make_unique<Holder<std::decay_t<F>>>(std::forward<F>(fn));
        auto* raw = holder.get();
        return subscribe_queued_raw(type_id, &Holder<std::decay_t<F>>::invoke, raw,
                                    std::move(holder), options);
    }

    /// Typed queued subscriber: `fn(const T&)` on its own consumer thread.
    template <TypedMessage T, class F>
        requires std::invocable<F&, const T&>
    Subscription subscribe_queued(F&& fn, QueueOptions options = {}) {
        return subscribe_queued(T::TYPE_ID, typed_adapter<T>(std::forward<F>(fn)), options);
    }

    /// Queued delivery into an externally drained mailbox: each publish of `type_id`
    /// pushes {type_id, token, payload} into `mailbox` under `policy`. Many subscriptions
    /// may share one mailbox (one Python thread drains them all). After close() returns no
    /// further message with this token is pushed; ones already queued stay there.
    Subscription subscribe_mailbox(std::uint16_t type_id, std::shared_ptr<Mailbox> mailbox,
                                   std::uint64_t token, QueuePolicy policy = QueuePolicy::Block);

    /// The type's counters, summed over all threads (a racy but consistent-enough read:
    /// each counter is exact once publishers are quiet).
    TypeCounters counters(std::uint16_t type_id) const;

    /// Refuses further publishes (Closed), releases blocked publishers, closes every
    /// subscription and joins owned consumer threads. Idempotent. Must not be called from
    /// inside a callback.
    void shutdown() noexcept;

    /// The payload limit in effect.
    std::size_t max_payload() const noexcept;

    /// How a publisher on this bus waits for room (see WaitPolicy): consulted by full
    /// Block pushes into mailboxes and by links that make a publisher wait. nullptr
    /// removes it; the policy must outlive every publish that may use it.
    /// Thread safety: any thread, while no publisher is waiting.
    void set_wait_policy(const WaitPolicy* policy) noexcept;
    const WaitPolicy* wait_policy() const noexcept;

    /// Listener of the bus's interest: called `fn(type_id, true)` when `type_id` gains
    /// its first subscriber that counts as interest and `fn(type_id, false)` when it
    /// loses its last one. The first calls report the current set (`true` for each type
    /// already wanted); after that, calls follow changes in the order they happened, so
    /// the last call for a type is its current state. Listeners run on the thread that
    /// subscribed or closed (or on one doing so concurrently), never under a bus lock and
    /// never one listener twice at once; they must be short (queue a frame, post work).
    /// A listener may subscribe and close subscriptions (its calls are then made after
    /// it returns). An exception from `fn` is logged and ignored.
    /// Thread safety: any thread; see InterestWatch::close() for removal.
    InterestWatch watch_interest(std::function<void(std::uint16_t type_id, bool interested)> fn);

    /// Whether `type_id` has at least one subscriber that counts as interest.
    /// Thread safety: any thread (takes the subscription lock; not for the hot path).
    bool interested(std::uint16_t type_id) const;

    /// Every type id with at least one subscriber that counts as interest, ascending.
    /// Thread safety: any thread (takes the subscription lock).
    std::vector<std::uint16_t> interested_types() const;

private:
    template <class F>
    using Holder = detail::Holder<F>;
    using HolderBase = detail::CallbackHolder;
    using InvokeFn = void (*)(void*, const MessageView&);
    using InvokeBatchFn = void (*)(void*, std::span<const MessageView>);
    using RoomFn = bool (*)(const void*, std::size_t);

    template <class T, class F>
    static auto typed_adapter(F&& fn) {
        return [f = std::forward<F>(fn)](const MessageView& view) mutable {
            if (view.payload.size() != sizeof(T)) return;
            T value;
            std::memcpy(&value, view.payload.data(), sizeof(T));
            f(static_cast<const T&>(value));
        };
    }

    Subscription subscribe_inline_raw(std::uint16_t type_id, InvokeFn invoke, void* context,
                                      std::unique_ptr<HolderBase> owner,
                                      bool counts_as_interest = true, InvokeBatchFn invoke_batch = nullptr,
                                      RoomFn has_room = nullptr, const void* room_context = nullptr);
    Subscription subscribe_queued_raw(std::uint16_t type_id, InvokeFn invoke, void* context,
                                      std::unique_ptr<HolderBase> owner,
                                      const QueueOptions& options);

    std::shared_ptr<detail::BusImpl> impl_;
};

}  // namespace mycelium
