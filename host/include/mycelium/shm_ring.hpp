#pragma once
/// Shared-memory ring (docs/wire-protocol.md, "Shared-memory rings"): one direction of a shared-memory
/// link. A single producer and a single consumer, usually in two processes, share one
/// region: a 256-byte header, then a data area of `capacity` bytes (a power of two) that
/// carries the wire protocol's TLV frames (u16 LE type id, u32 LE payload length,
/// payload), each padded to 8 bytes. A frame is never split: when it does not fit before
/// the end of the data area the producer writes a wrap marker and starts again at offset
/// 0, so the consumer hands out a view of the payload in place, without copying.
/// The byte-by-byte layout and the protocol are in docs/wire-protocol.md, "Shared-memory
/// rings"; pure Python can drive the same region.
///
/// Waiting: the consumer spins for a bounded time, then sets the header's sleeping flag
/// and waits on its eventfd doorbell; the producer rings the doorbell only when it sees
/// that flag, so a busy consumer costs the producer one full barrier and one load per
/// publish.
/// A producer that finds the ring full waits the same way for room (producer_waiting
/// flag, rung by the consumer when it has been given a doorbell to ring).
///
/// Untrusted memory: the other side may be hostile or corrupt. Each side keeps its own
/// index in a local variable and never reads it back from the region; every value read
/// from the region (the peer's index, a frame header) is loaded once into a local and
/// checked before use: indices against each other and the capacity, lengths against the
/// published bytes, the end of the data area and the payload limit, type ids against the
/// type table. A violation makes the side "poisoned": it returns the same RingError from
/// then on and never touches memory outside the region. The payload bytes of a view
/// still live in shared memory: a hostile producer can change them while they are read,
/// so decode them with bounds-checked code (the codec's fixed-size layouts are) and copy
/// anything that must stay stable.
///
/// Memory model: the indices and flags are accessed through std::atomic_ref on the
/// mapped words. This needs 8-byte atomics that are lock-free and address-free (the same
/// instructions work whatever address each process mapped the region at, with no
/// process-local lock table); std::atomic_ref<std::uint64_t> is always lock-free on
/// x86-64 and aarch64 (static_asserts below), where it compiles to plain aligned loads
/// and stores (xchg for exchange and seq_cst stores). Frames are published with a
/// release store of the producer index and read after an acquire load of it; consumed
/// frames are released the same way through the consumer index. Each park protocol is a
/// Dekker pair: one side stores its word and then loads the other's, the other side does
/// the reverse, all four seq_cst (on x86-64 an xchg, a full barrier, then a plain load):
/// that is "store, full fence, load" in docs/wire-protocol.md. Seq_cst operations rather
/// than std::atomic_thread_fence, because ThreadSanitizer models the former and not the
/// latter. Linux only.
///
/// Thread safety: a RingProducer and a RingConsumer are each used by one thread at a
/// time; the two may run concurrently in different threads or processes. No GIL needed.

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "mycelium/codec.hpp"
#include "mycelium/result.hpp"
#include "mycelium/wire_limits.hpp"
#include "mycelium/schema.hpp"
#include "mycelium/shm_os.hpp"

namespace mycelium::shm {

// ---------------------------------------------------------------------------------------
// Layout (docs/wire-protocol.md, "Shared-memory rings"). All integers little-endian.
// ---------------------------------------------------------------------------------------

/// The first 8 bytes of a ring region: ASCII "MYC-RING".
inline constexpr std::array<std::uint8_t, 8> RING_MAGIC{'M', 'Y', 'C', '-', 'R', 'I', 'N', 'G'};
/// Version of the region layout and protocol described here.
inline constexpr std::uint32_t RING_VERSION = 1;
/// Bytes of the header; the data area starts at this offset.
inline constexpr std::size_t RING_HEADER_SIZE = 256;

/// Byte offsets of the header fields.
namespace offsets {
inline constexpr std::size_t MAGIC = 0;               ///< 8 bytes, RING_MAGIC
inline constexpr std::size_t VERSION = 8;             ///< u32, RING_VERSION
inline constexpr std::size_t HEADER_SIZE = 12;        ///< u32, RING_HEADER_SIZE
inline constexpr std::size_t CAPACITY = 16;           ///< u64, bytes of the data area
inline constexpr std::size_t DIGEST = 32;             ///< 32 bytes, schema digest
inline constexpr std::size_t PRODUCER_INDEX = 64;     ///< u64, cache line 1, producer writes
inline constexpr std::size_t CONSUMER_INDEX = 128;    ///< u64, cache line 2, consumer writes
inline constexpr std::size_t CONSUMER_SLEEPING = 192; ///< u32, cache line 3: 1 = consumer parks
inline constexpr std::size_t PRODUCER_WAITING = 196;  ///< u32: 1 = producer parks for room
inline constexpr std::size_t PRODUCER_CLOSED = 200;   ///< u32: 1 = producer writes no more
inline constexpr std::size_t CONSUMER_CLOSED = 204;   ///< u32: 1 = consumer reads no more
}  // namespace offsets

/// Frames start at multiples of this in the data area (and the indices are multiples).
inline constexpr std::size_t FRAME_ALIGN = 8;
/// Bytes of a frame header in the ring: the wire's u16 type id and u32 payload length.
inline constexpr std::size_t FRAME_HEADER_SIZE = codec::HEADER_SIZE;
/// The wrap marker's type id (0: reserved, never a frame on the wire).
inline constexpr std::uint16_t WRAP_TYPE_ID = 0;
/// The wrap marker's length field.
inline constexpr std::uint32_t WRAP_LENGTH = 0xffffffffu;
/// Smallest, largest and default data-area capacity, in bytes (powers of two).
inline constexpr std::size_t MIN_RING_CAPACITY = wire::MIN_RING_CAPACITY;
inline constexpr std::size_t MAX_RING_CAPACITY = wire::MAX_RING_CAPACITY;
inline constexpr std::size_t DEFAULT_RING_CAPACITY = std::size_t{1} << 20;

/// Bytes of a ring region (header and data area) of `capacity`.
constexpr std::size_t ring_region_size(std::size_t capacity) noexcept { return RING_HEADER_SIZE + capacity; }
/// Bytes a frame with a `payload_length`-byte payload occupies in the data area.
constexpr std::size_t ring_frame_size(std::size_t payload_length) noexcept {
    return (FRAME_HEADER_SIZE + payload_length + FRAME_ALIGN - 1) & ~(FRAME_ALIGN - 1);
}
/// Largest payload a ring of `capacity` carries: a frame fills at most the whole data
/// area, and the protocol never allows more than 4 MiB.
constexpr std::size_t ring_max_payload(std::size_t capacity) noexcept {
    return std::min(schema::DEFAULT_MAX_PAYLOAD, capacity - FRAME_HEADER_SIZE);
}
/// A power of two in [MIN_RING_CAPACITY, MAX_RING_CAPACITY].
constexpr bool valid_ring_capacity(std::size_t capacity) noexcept {
    return capacity >= MIN_RING_CAPACITY && capacity <= MAX_RING_CAPACITY && std::has_single_bit(capacity);
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a ring region or a value read from it was rejected. Each one means the peer is
/// broken or hostile: close the link.
enum class RingError : std::uint8_t {
    /// The memory is smaller than the header or than header + capacity, or its start is
    /// not 64-byte aligned.
    RegionTooSmall,
    /// The first 8 bytes are not "MYC-RING".
    BadMagic,
    /// The version field is not RING_VERSION.
    BadVersion,
    /// The header-size field is not RING_HEADER_SIZE.
    BadHeaderSize,
    /// The capacity is not a power of two in [MIN_RING_CAPACITY, MAX_RING_CAPACITY], or
    /// not the capacity the caller expected.
    BadCapacity,
    /// The schema digest in the header differs from ours.
    DigestMismatch,
    /// The producer index is not a multiple of 8, is behind the consumer index, is more
    /// than the capacity ahead of it, or moved backwards.
    BadProducerIndex,
    /// The consumer index is not a multiple of 8, is ahead of what was published, or
    /// moved backwards (checked by the producer, and at attach).
    BadConsumerIndex,
    /// A wrap marker at offset 0, with a length field other than 0xFFFFFFFF, or skipping
    /// bytes that were not published.
    BadWrapMarker,
    /// A frame declares a payload longer than the consumer's limit.
    Oversize,
    /// A frame extends past the published bytes or past the end of the data area.
    FrameOverrun,
    /// An application type id (>= 1000) that the type table does not know.
    UnknownType,
    /// An application frame whose payload length is not its message's size.
    SizeMismatch,
};

/// A stable lower-case name for logs and metrics: "region_too_small", "bad_magic",
/// "bad_version", "bad_header_size", "bad_capacity", "digest_mismatch",
/// "bad_producer_index", "bad_consumer_index", "bad_wrap_marker", "oversize",
/// "frame_overrun", "unknown_type", "size_mismatch".
std::string_view to_string(RingError error) noexcept;

/// The facts behind a RingError, for the log line.
struct RingFailure {
    RingError error = RingError::RegionTooSmall;
    /// The reader's (or writer's) own index when it was found; 0 at attach.
    std::uint64_t position = 0;
    /// The offending value: an index, a length, a type id, a capacity.
    std::uint64_t value = 0;
    /// What it was checked against: the other index, a limit, a size.
    std::uint64_t limit = 0;
};

/// One line naming the error and its numbers, e.g. "bad_producer_index: producer index
/// 4104 is more than the capacity 4096 ahead of the consumer index 0".
std::string to_string(const RingFailure& failure);

/// Why a RingProducer did not write a frame.
enum class WriteError : std::uint8_t {
    /// Not enough free room now; the consumer has not caught up (try again, or
    /// wait_for_space). Nothing was written (a wrap marker may have been, which is fine).
    Full,
    /// The payload is longer than the producer's limit (at most ring_max_payload(capacity)).
    TooLarge,
    /// Type id 0 (reserved for the wrap marker).
    InvalidType,
    /// The consumer set its closed flag: it reads no more.
    PeerClosed,
    /// close() was called on this producer.
    Closed,
    /// The consumer index in the region is invalid (failure() says how); the producer is
    /// poisoned and writes nothing more. Close the link.
    Corrupt,
};

/// A stable lower-case name: "full", "too_large", "invalid_type", "peer_closed",
/// "closed", "corrupt".
std::string_view to_string(WriteError error) noexcept;

/// What a wait on a ring observed.
enum class RingWait : std::uint8_t {
    /// Call again now: a frame (consumer) or room (producer) is there, or an error is
    /// ready to be reported by that call.
    Ready,
    /// The timeout passed.
    Timeout,
    /// The other side set its closed flag (for the consumer: and every frame published
    /// before it has been consumed).
    Closed,
};

// ---------------------------------------------------------------------------------------
// Regions
// ---------------------------------------------------------------------------------------

/// A checked, non-owning view of a ring region: where it starts and its capacity. Made
/// by format() or attach(); the memory must outlive every producer and consumer using it.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
class RingRegion {
public:
    /// An empty view (capacity 0); only assignable.
    RingRegion() noexcept = default;

    /// Writes a fresh header (indices 0, flags 0, reserved bytes 0) at the start of
    /// `memory`. Errors: BadCapacity (capacity invalid), RegionTooSmall (`memory` smaller
    /// than ring_region_size(capacity), or not 64-byte aligned). Nobody may use the
    /// region concurrently. Never allocates.
    static Result<RingRegion, RingFailure> format(std::span<std::byte> memory, std::size_t capacity,
                                                  const schema::Digest& digest) noexcept;

    /// Checks the header of a region made by someone else: magic, version, header size,
    /// capacity (valid, fits in `memory`, and equal to `expected_capacity` unless that is
    /// 0), digest, and that the two indices are consistent. Errors: every attach-time
    /// RingError, plus BadProducerIndex / BadConsumerIndex. Never allocates.
    static Result<RingRegion, RingFailure> attach(std::span<std::byte> memory, const schema::Digest& digest,
                                                  std::size_t expected_capacity = 0) noexcept;

    /// Start of the region (the header).
    std::byte* base() const noexcept { return base_; }
    /// Start of the data area.
    std::byte* data() const noexcept { return base_ + RING_HEADER_SIZE; }
    /// Bytes of the data area.
    std::size_t capacity() const noexcept { return capacity_; }

private:
    RingRegion(std::byte* base, std::size_t capacity) noexcept : base_(base), capacity_(capacity) {}
    std::byte* base_ = nullptr;
    std::size_t capacity_ = 0;
};

/// Thrown by MappedRing::attach when the region's header is rejected.
class RingFormatError : public std::runtime_error {
public:
    explicit RingFormatError(const RingFailure& failure)
        : std::runtime_error("shared-memory ring rejected: " + to_string(failure)), failure_(failure) {}
    const RingFailure& failure() const noexcept { return failure_; }

private:
    RingFailure failure_;
};

/// A ring region in a sealed memfd, mapped: owns the descriptor and the mapping (the
/// memory is freed when the last descriptor and mapping in any process are gone).
/// Thread safety: distinct objects safe; shared objects unsafe.
class MappedRing {
public:
    /// Creates a sealed memfd of ring_region_size(capacity) bytes (pages allocated up
    /// front), maps it and formats it. Throws std::invalid_argument for an invalid
    /// capacity and ShmAllocError when the memory cannot be had (fall back to the socket).
    static MappedRing create(std::size_t capacity, const schema::Digest& digest,
                             const char* name = "mycelium-ring");

    /// Maps a memfd received from a peer: checks its seals and size first (it must be
    /// exactly ring_region_size(expected_capacity) when that is not 0, and never more than
    /// ring_region_size(MAX_RING_CAPACITY)), then the header as RingRegion::attach does.
    /// Throws std::system_error (not a sealed memfd, bad size, mmap failed) or
    /// RingFormatError (the header is rejected).
    static MappedRing attach(UniqueFd fd, const schema::Digest& digest, std::size_t expected_capacity = 0);

    MappedRing() noexcept = default;
    MappedRing(MappedRing&&) noexcept = default;
    MappedRing& operator=(MappedRing&&) noexcept = default;

    /// The memfd, to send to the peer with send_fds.
    int fd() const noexcept { return fd_.get(); }
    /// The checked region, for RingProducer / RingConsumer.
    RingRegion region() const noexcept { return region_; }
    std::size_t capacity() const noexcept { return region_.capacity(); }
    /// The whole mapping (header and data area).
    std::span<std::byte> bytes() const noexcept { return mapping_.bytes(); }

private:
    UniqueFd fd_;
    Mapping mapping_;
    RingRegion region_;
};

// ---------------------------------------------------------------------------------------
// Producer and consumer
// ---------------------------------------------------------------------------------------

namespace detail {

// The header's words are shared with another process: atomics must be lock-free, hence
// address-free, and at their natural alignment (the region starts 64-byte aligned and
// every field sits at a multiple of its size).
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free, "ring indices need lock-free 64-bit atomics");
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free, "ring flags need lock-free 32-bit atomics");
static_assert(std::atomic_ref<std::uint64_t>::required_alignment == 8);
static_assert(std::endian::native == std::endian::little, "the ring layout is little-endian");

inline std::atomic_ref<std::uint64_t> word64(std::byte* p) noexcept {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p));
}
inline std::atomic_ref<std::uint32_t> word32(std::byte* p) noexcept {
    return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(p));
}

/// A frame header as one little-endian u64: type id in bytes 0-1, length in 2-5. Bytes
/// 6-7 are the payload's first two bytes (or padding), which the reader masks off.
constexpr std::uint64_t frame_word(std::uint16_t type_id, std::uint32_t length) noexcept {
    return std::uint64_t{type_id} | std::uint64_t{length} << 16;
}
inline constexpr std::uint64_t WRAP_WORD = frame_word(WRAP_TYPE_ID, WRAP_LENGTH);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

}  // namespace detail

/// How a RingProducer writes and waits.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct ProducerOptions {
    /// Largest payload written; lowered to ring_max_payload(capacity).
    std::size_t max_payload = schema::DEFAULT_MAX_PAYLOAD;
    /// The consumer's doorbell (an eventfd), rung by publish() when the consumer has set
    /// its sleeping flag. -1: never rung, and publish() needs no full barrier (the
    /// consumer must not park on a doorbell then).
    int notify_fd = -1;
    /// This side's doorbell, waited on by wait_for_space() once spinning is over; the
    /// consumer must have it as its notify_fd. -1: wait_for_space sleeps in short slices.
    int wait_fd = -1;
    /// How long wait_for_space spins before it parks.
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);
};

/// The writing side of a ring. Frames are staged (written but invisible) by try_reserve
/// or try_stage and made visible together by publish(), which is the only call that
/// stores the producer index and may ring the consumer's doorbell; try_write does both.
/// Thread safety: one thread at a time; concurrent with the ring's consumer.
class RingProducer {
public:
    /// Writes to `region` from the producer index found there (0 in a fresh ring). If
    /// the indices there are already inconsistent, the producer starts poisoned (Corrupt).
    explicit RingProducer(RingRegion region, ProducerOptions options = {}) noexcept;
    RingProducer(const RingProducer&) = delete;
    RingProducer& operator=(const RingProducer&) = delete;

    /// Stages a frame header for `payload_length` bytes and returns the payload's place
    /// in the ring (unaligned: it starts 6 bytes into an 8-aligned frame), which the
    /// caller fills before its next call on this producer. Invisible until publish().
    /// Errors: InvalidType, TooLarge, Full (PeerClosed when the consumer has closed),
    /// Closed, Corrupt. When the frame does not fit before the end of the data area but
    /// the rest of it is free, a wrap marker is written and published even if the
    /// frame then does not fit (Full): a frame as large as the capacity needs the
    /// consumer to move past the marker first. Never blocks, allocates or throws.
    Result<std::span<std::byte>, WriteError> try_reserve(std::uint16_t type_id, std::size_t payload_length) noexcept;

    /// try_reserve() and a copy of `payload`; invisible until publish(). Same errors.
    Result<void, WriteError> try_stage(std::uint16_t type_id, std::span<const std::byte> payload) noexcept {
        auto place = try_reserve(type_id, payload.size());
        if (!place) return Err{place.error()};
        if (!payload.empty()) std::memcpy(place->data(), payload.data(), payload.size());
        return {};
    }

    /// Makes every staged frame visible to the consumer (one store of the producer
    /// index) and rings its doorbell if it sleeps. Cheap when nothing is staged. With a
    /// notify_fd the store is a full barrier (~25 ns, and it waits for the index's cache
    /// line while the consumer polls it): on a throughput path publish once per batch,
    /// not once per frame (docs/benchmarks.md, "Shared-memory ring").
    void publish() noexcept;

    /// try_stage() then publish(): one frame, visible at once.
    Result<void, WriteError> try_write(std::uint16_t type_id, std::span<const std::byte> payload) noexcept {
        auto r = try_stage(type_id, payload);
        if (r) publish();
        return r;
    }

    /// Waits until a frame of `payload_length` bytes could make progress (try_reserve
    /// would not answer Full), the consumer closes (Closed) or `timeout` passes: spins
    /// for min(spin, timeout), then sets the producer-waiting flag and parks on wait_fd
    /// (or sleeps in slices of at most 100 µs without one). Publishes staged frames
    /// first. Returns Ready also when the producer is poisoned or closed (the next
    /// try_reserve reports it). Never throws.
    RingWait wait_for_space(std::size_t payload_length, std::chrono::nanoseconds timeout) noexcept {
        return wait_for_space(payload_length, timeout, spin_);
    }
    /// wait_for_space() spinning for min(`spin`, timeout) instead of the producer's spin: a
    /// caller that waits in several slices spins in the first one only.
    RingWait wait_for_space(std::size_t payload_length, std::chrono::nanoseconds timeout,
                            std::chrono::nanoseconds spin) noexcept;

    /// Publishes what is staged, then sets the producer-closed flag and rings a sleeping
    /// consumer: it will consume what is left and then see RingWait::Closed. Idempotent.
    void close() noexcept;

    /// Bytes of the data area the consumer has released, as of now (its index is read
    /// again): what more frames could take. The whole capacity once the producer is
    /// poisoned or closed (try_reserve reports those). Never blocks.
    std::size_t free_bytes() noexcept;

    /// Bytes staged (written by try_reserve / try_stage) and not yet published.
    std::uint64_t staged_bytes() const noexcept { return write_ - published_; }

    /// The error that poisoned the producer (a bad consumer index), or nullptr.
    const RingFailure* failure() const noexcept { return failure_ ? &*failure_ : nullptr; }
    /// Bytes of the data area.
    std::size_t capacity() const noexcept { return static_cast<std::size_t>(capacity_); }
    /// The effective payload limit.
    std::size_t max_payload() const noexcept { return max_payload_; }
    /// The producer's position, staged frames included (a byte count since the start).
    std::uint64_t write_position() const noexcept { return write_; }
    /// The last position published.
    std::uint64_t published_position() const noexcept { return published_; }

private:
    enum class State : std::uint8_t { Open, Closed, Poisoned };

    std::optional<WriteError> make_room(std::uint64_t frame_size) noexcept;
    bool refresh_consumer(std::memory_order order = std::memory_order_acquire) noexcept;
    bool room_for(std::size_t payload_length, std::memory_order order = std::memory_order_acquire) noexcept;
    bool consumer_closed(std::memory_order order = std::memory_order_acquire) const noexcept;
    void wake_consumer() noexcept;
    void poison(RingFailure failure) noexcept;

    std::byte* header_;
    std::byte* data_;
    std::uint64_t capacity_;
    std::uint64_t mask_;
    std::size_t max_payload_;
    std::uint64_t write_ = 0;       // local position, staged frames included
    std::uint64_t published_ = 0;   // last value stored in the producer index
    std::uint64_t consumer_ = 0;    // last checked value of the consumer index
    State state_ = State::Open;
    int notify_fd_;
    int wait_fd_;
    std::chrono::nanoseconds spin_;
    std::optional<RingFailure> failure_;
};

/// How a RingConsumer checks frames and waits.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct ConsumerOptions {
    /// Largest payload accepted; lowered to ring_max_payload(capacity).
    std::size_t max_payload = schema::DEFAULT_MAX_PAYLOAD;
    /// When set, application frames (type id >= 1000) must have a known type id and
    /// exactly its size; control frames (1-999) are held to the payload limit only. The
    /// viewed table must outlive the consumer.
    std::optional<codec::TypeSizes> type_sizes = std::nullopt;
    /// This side's doorbell (an eventfd), waited on by wait() once spinning is over; the
    /// producer must have it as its notify_fd. -1: wait() sleeps in slices of 100 µs.
    int wait_fd = -1;
    /// The producer's doorbell, rung when the producer waits for room. -1: never (and
    /// publishing the consumer index then needs no full barrier).
    int notify_fd = -1;
    /// How long wait() spins before it parks.
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);
};

/// A frame seen in place in the ring; valid until consume() (or the end of the
/// read_batch visit). The payload lives in shared memory (see the file comment).
struct FrameView {
    std::uint16_t type_id = 0;
    std::span<const std::byte> payload;
};

/// The reading side of a ring. peek() checks and shows the next frame, consume()
/// releases it to the producer; read_batch() does both for many frames and releases
/// them with one store.
/// Thread safety: one thread at a time; concurrent with the ring's producer.
class RingConsumer {
public:
    /// Reads `region` from the consumer index found there (0 in a fresh ring); starts
    /// poisoned if that index is not a multiple of 8.
    explicit RingConsumer(RingRegion region, ConsumerOptions options = {}) noexcept;
    RingConsumer(const RingConsumer&) = delete;
    RingConsumer& operator=(const RingConsumer&) = delete;

    /// The next frame, checked, or nullopt when the ring is empty. Calling it again
    /// without consume() shows the same frame. Skips a wrap marker (and releases it to
    /// the producer). Errors: every reading RingError; after one the consumer is
    /// poisoned and returns it again. Never blocks, allocates or throws.
    Result<std::optional<FrameView>, RingError> peek() noexcept;

    /// Releases the frame the last peek() returned (one release store of the consumer
    /// index; rings a waiting producer if notify_fd is set). Does nothing when peek()
    /// returned no frame.
    void consume() noexcept {
        if (pending_ == 0) return;
        read_ += pending_;
        pending_ = 0;
        publish_consumed();
    }

    /// Visits up to `max` frames in order, `fn(const FrameView&)`, then releases them
    /// all with one store. Returns how many were visited (0 when empty). On a RingError
    /// the frames visited before it are released and the error returned. If `fn` throws,
    /// the frame it was visiting counts as consumed, the visited frames are released and
    /// the exception propagates.
    template <class F>
    Result<std::size_t, RingError> read_batch(F&& fn, std::size_t max = SIZE_MAX);
    /// read_batch() that calls `before_release()` after the last visit and before the
    /// visited frames are released (on every way out, also after an error or exception;
    /// it must not throw): a reader that answers the frames it read can send its answers
    /// first, and release the room after. Nothing visited is released before that, not
    /// even at a wrap marker, so the views of every visited frame stay valid until
    /// `before_release()` returns (a reader may hold them and deliver them in runs).
    template <class F, class G>
    Result<std::size_t, RingError> read_batch(F&& fn, std::size_t max, G&& before_release);

    /// Waits until a frame is ready, the producer has closed and everything is consumed
    /// (Closed), or `timeout` passes: spins for min(spin, timeout), then sets the
    /// sleeping flag and parks on wait_fd. Ready also when poisoned (peek reports it).
    /// Spurious doorbells are absorbed. Never throws.
    RingWait wait(std::chrono::nanoseconds timeout) noexcept;

    /// For a consumer that waits in an event loop (epoll, Asio) on wait_fd instead of
    /// wait(): sets the sleeping flag, then checks once more. Returns false (and leaves
    /// the flag clear) when a frame is ready or the producer closed: read first. After
    /// true, wait for wait_fd to be readable, then call end_park().
    bool begin_park() noexcept;
    /// Clears the sleeping flag and drains wait_fd.
    void end_park() noexcept;

    /// Sets the consumer-closed flag (the producer's writes and waits end with
    /// PeerClosed / Closed) and rings a waiting producer. Idempotent.
    void close() noexcept;

    /// Whether the producer set its closed flag (frames may still be left to read).
    bool producer_closed() const noexcept;
    /// The error that poisoned the consumer, or nullptr.
    const RingFailure* failure() const noexcept { return failure_ ? &*failure_ : nullptr; }
    /// Bytes of the data area.
    std::size_t capacity() const noexcept { return static_cast<std::size_t>(capacity_); }
    /// The effective payload limit.
    std::size_t max_payload() const noexcept { return max_payload_; }
    /// The consumer's position (a byte count since the start), the peeked frame excluded.
    std::uint64_t read_position() const noexcept { return read_; }
    /// Bytes published and not yet visited, as of the last load of the producer index (no
    /// load here): inside a read_batch visit, 0 means this frame is the last one known.
    std::uint64_t known_available() const noexcept { return producer_ - read_ - pending_; }

private:
    bool refresh_producer() noexcept;
    bool has_data(std::memory_order order = std::memory_order_acquire) noexcept;
    bool closed_flag(std::memory_order order) const noexcept;
    bool skip_wrap(std::uint64_t offset, std::uint32_t length) noexcept;
    Result<std::optional<FrameView>, RingError> fail(RingFailure failure) noexcept;
    bool check_type(std::uint16_t type_id, std::uint32_t length) noexcept;
    void publish_consumed() noexcept;
    void wake_producer() noexcept;

    std::byte* header_;
    std::byte* data_;
    std::uint64_t capacity_;
    std::uint64_t mask_;
    std::size_t max_payload_;
    std::uint64_t read_ = 0;      // local position
    std::uint64_t producer_ = 0;  // last checked value of the producer index
    std::uint64_t pending_ = 0;   // ring bytes of the peeked frame, 0 if none
    bool in_batch_ = false;       // inside read_batch(): frames are released at its end only
    std::optional<codec::TypeSizes> type_sizes_;
    std::uint16_t checked_type_ = WRAP_TYPE_ID;  // the last frame check_type() passed (none yet)
    std::uint32_t checked_length_ = 0;
    int wait_fd_;
    int notify_fd_;
    std::chrono::nanoseconds spin_;
    std::optional<RingFailure> failure_;
};

// ---------------------------------------------------------------------------------------
// Hot paths, inline. The memory-ordering argument for each access is next to it.
// ---------------------------------------------------------------------------------------

inline Result<std::span<std::byte>, WriteError> RingProducer::try_reserve(std::uint16_t type_id,
                                                                          std::size_t payload_length) noexcept {
    if (state_ != State::Open) [[unlikely]]
        return Err{state_ == State::Closed ? WriteError::Closed : WriteError::Corrupt};
    if (type_id == WRAP_TYPE_ID) [[unlikely]] return Err{WriteError::InvalidType};
    if (payload_length > max_payload_) [[unlikely]] return Err{WriteError::TooLarge};
    const std::uint64_t size = ring_frame_size(payload_length);
    const std::uint64_t tail = capacity_ - (write_ & mask_);  // bytes before the end, >= 8
    const std::uint64_t need = size <= tail ? size : tail + size;
    // Free room by the cached consumer index; only when it looks short is the shared
    // index loaded again (make_room), so a producer running ahead does not touch the
    // consumer's cache line at all.
    if (capacity_ - (write_ - consumer_) < need) [[unlikely]] {
        if (const std::optional<WriteError> e = make_room(size)) return Err{*e};
    }
    if (size > tail) {
        // Never a split frame: skip the tail with a wrap marker, start again at 0.
        // Relaxed stores: the frame bytes become visible through publish()'s release.
        detail::word64(data_ + (write_ & mask_)).store(detail::WRAP_WORD, std::memory_order_relaxed);
        write_ += tail;
    }
    std::byte* const frame = data_ + (write_ & mask_);
    detail::word64(frame).store(detail::frame_word(type_id, static_cast<std::uint32_t>(payload_length)),
                                std::memory_order_relaxed);
    write_ += size;
    return std::span<std::byte>(frame + FRAME_HEADER_SIZE, payload_length);
}

inline void RingProducer::publish() noexcept {
    if (write_ == published_) return;
    published_ = write_;
    std::atomic_ref<std::uint64_t> index = detail::word64(header_ + offsets::PRODUCER_INDEX);
    if (notify_fd_ < 0) {
        // No doorbell to ring, so no consumer parks on one: release is all we need. Every
        // frame byte written before (header words, payload copies) is visible to a
        // consumer whose acquire load sees this index.
        index.store(write_, std::memory_order_release);
        return;
    }
    // Dekker with the consumer's park (RingConsumer::wait): it stores sleeping = 1, then
    // loads this index; we store the index, then load sleeping, all four seq_cst (which
    // includes release and acquire). Were they weaker, each store could still sit in its
    // CPU's store buffer while the other side's load runs (x86 reorders a store with a
    // later load): both would miss, and the consumer would sleep on a frame. Seq_cst
    // puts the four in one total order, so at least one side sees the other's store: the
    // consumer finds the frame, or we find the flag and ring.
    index.store(write_, std::memory_order_seq_cst);
    if (detail::word32(header_ + offsets::CONSUMER_SLEEPING).load(std::memory_order_seq_cst) != 0) [[unlikely]]
        wake_consumer();
}

inline Result<std::optional<FrameView>, RingError> RingConsumer::peek() noexcept {
    if (failure_) [[unlikely]] return Err{failure_->error};
    // At most twice round: a wrap marker moves the position to offset 0, where a marker
    // is illegal, so a hostile producer cannot keep this loop going.
    for (;;) {
        if (producer_ == read_) {
            if (!refresh_producer()) [[unlikely]] return Err{failure_->error};
            if (producer_ == read_) return std::optional<FrameView>{};
        }
        const std::uint64_t available = producer_ - read_;  // checked: 8 <= available <= capacity
        const std::uint64_t offset = read_ & mask_;
        // One 8-byte load of the frame header into a local (no double fetch: the producer
        // may rewrite the header after we checked it, the local is what we use). Relaxed
        // suffices: the acquire load of the producer index ordered it after the write.
        const std::uint64_t word = detail::word64(data_ + offset).load(std::memory_order_relaxed);
        const auto type_id = static_cast<std::uint16_t>(word & 0xffffu);
        const auto length = static_cast<std::uint32_t>(word >> 16);
        if (type_id == WRAP_TYPE_ID) [[unlikely]] {
            if (!skip_wrap(offset, length)) return Err{failure_->error};
            continue;
        }
        if (length > max_payload_) [[unlikely]]
            return fail({RingError::Oversize, read_, length, max_payload_});
        const std::uint64_t size = ring_frame_size(length);  // no overflow: length <= 4 MiB
        if (size > available) [[unlikely]] return fail({RingError::FrameOverrun, read_, size, available});
        if (size > capacity_ - offset) [[unlikely]]
            return fail({RingError::FrameOverrun, read_, size, capacity_ - offset});
        // The last type and length checked are remembered: a stream of one type pays the
        // schema look-up once.
        if (type_id >= schema::MIN_APP_TYPE_ID && type_sizes_ && (type_id != checked_type_ || length != checked_length_)) {
            if (!check_type(type_id, length)) [[unlikely]] return Err{failure_->error};
        }
        pending_ = size;
        return std::optional<FrameView>{FrameView{type_id, {data_ + offset + FRAME_HEADER_SIZE, length}}};
    }
}

inline void RingConsumer::publish_consumed() noexcept {
    std::atomic_ref<std::uint64_t> index = detail::word64(header_ + offsets::CONSUMER_INDEX);
    if (notify_fd_ < 0) {
        // Release: our reads of the released frames happen before the producer, whose
        // acquire load sees this index, overwrites them.
        index.store(read_, std::memory_order_release);
        return;
    }
    // Dekker with RingProducer::wait_for_space (producer: waiting = 1, then load this
    // index; here: store the index, then load waiting; all seq_cst, as in publish()).
    // Only paid when the producer has a doorbell for us to ring.
    index.store(read_, std::memory_order_seq_cst);
    if (detail::word32(header_ + offsets::PRODUCER_WAITING).load(std::memory_order_seq_cst) != 0) [[unlikely]]
        wake_producer();
}

template <class F>
Result<std::size_t, RingError> RingConsumer::read_batch(F&& fn, std::size_t max) {
    return read_batch(std::forward<F>(fn), max, [] {});
}

template <class F, class G>
Result<std::size_t, RingError> RingConsumer::read_batch(F&& fn, std::size_t max, G&& before_release) {
    const std::uint64_t start = read_;
    // Releases the visited frames once, on every way out (normal, error, exception).
    struct Release {
        RingConsumer& self;
        std::uint64_t start;
        G& before;
        ~Release() {
            self.in_batch_ = false;
            before();
            if (self.read_ != start) self.publish_consumed();
        }
    } release{*this, start, before_release};
    in_batch_ = true;
    std::size_t visited = 0;
    while (visited < max) {
        auto next = peek();
        if (!next) return Err{next.error()};
        if (!*next) break;
        // Advance before the visit: the frame counts as consumed even if fn throws. The
        // producer cannot reuse it before the release store in ~Release.
        read_ += pending_;
        pending_ = 0;
        ++visited;
        fn(static_cast<const FrameView&>(**next));
    }
    return visited;
}

}  // namespace mycelium::shm
