// Shared-memory ring: the cold paths (format/attach, index refreshes, errors, waiting).
// The hot paths are inline in shm_ring.hpp. Values read from the region are untrusted:
// each is loaded once into a local and checked before it is used, and the checks are
// written so that no arithmetic on them can overflow (indices are compared as
// distances, lengths are capped before they are added).

#include "mycelium/shm_ring.hpp"

#include <fmt/format.h>

#include <cassert>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "mycelium/log.hpp"
#include "mycelium/unaligned.hpp"

namespace mycelium::shm {

namespace {

using Clock = std::chrono::steady_clock;

// Without a doorbell, a parked side re-checks this often.
constexpr auto SLEEP_SLICE = std::chrono::microseconds(100);
constexpr std::size_t REGION_ALIGN = 64;

void log_failure(const char* side, const RingFailure& f) {
    log::get("shm")->debug("{} rejects the ring: {}", side, to_string(f));
}

}  // namespace

// --- errors ----------------------------------------------------------------------------

std::string_view to_string(RingError error) noexcept {
    switch (error) {
        case RingError::RegionTooSmall: return "region_too_small";
        case RingError::BadMagic: return "bad_magic";
        case RingError::BadVersion: return "bad_version";
        case RingError::BadHeaderSize: return "bad_header_size";
        case RingError::BadCapacity: return "bad_capacity";
        case RingError::DigestMismatch: return "digest_mismatch";
        case RingError::BadProducerIndex: return "bad_producer_index";
        case RingError::BadConsumerIndex: return "bad_consumer_index";
        case RingError::BadWrapMarker: return "bad_wrap_marker";
        case RingError::Oversize: return "oversize";
        case RingError::FrameOverrun: return "frame_overrun";
        case RingError::UnknownType: return "unknown_type";
        case RingError::SizeMismatch: return "size_mismatch";
    }
    return "unknown_ring_error";
}

std::string to_string(const RingFailure& f) {
    const std::string_view name = to_string(f.error);
    switch (f.error) {
        case RingError::RegionTooSmall:
            if (f.limit == 0) return fmt::format("{}: the region at {:#x} is not 64-byte aligned", name, f.value);
            return fmt::format("{}: {} bytes of memory, the ring needs {}", name, f.value, f.limit);
        case RingError::BadMagic:
            return fmt::format("{}: the region starts with {:#018x}, not \"MYC-RING\"", name, f.value);
        case RingError::BadVersion:
            return fmt::format("{}: ring version {}, this host speaks {}", name, f.value, f.limit);
        case RingError::BadHeaderSize:
            return fmt::format("{}: header size {}, expected {}", name, f.value, f.limit);
        case RingError::BadCapacity:
            if (f.limit != 0) return fmt::format("{}: capacity {}, expected {}", name, f.value, f.limit);
            return fmt::format("{}: capacity {} is not a power of two between {} and {}", name, f.value,
                               MIN_RING_CAPACITY, MAX_RING_CAPACITY);
        case RingError::DigestMismatch:
            return fmt::format("{}: the ring's schema digest (starting {:016x}) is not ours", name, f.value);
        case RingError::BadProducerIndex: {
            // position: the consumer index; value: the producer index; limit: the capacity.
            const char* why = (f.value & (FRAME_ALIGN - 1)) != 0 ? "is not a multiple of 8"
                              : f.value - f.position > f.limit
                                  ? (f.value < f.position ? "is behind the consumer"
                                                          : "is more than the capacity ahead of the consumer")
                                  : "moved backwards";
            return fmt::format("{}: producer index {} {} (consumer index {}, capacity {})", name, f.value, why,
                               f.position, f.limit);
        }
        case RingError::BadConsumerIndex: {
            // position: the producer's published index; value: the consumer index.
            const char* why = (f.value & (FRAME_ALIGN - 1)) != 0 ? "is not a multiple of 8"
                              : f.value > f.position         ? "is ahead of what was published"
                                                              : "moved backwards or lags by more than the capacity";
            return fmt::format("{}: consumer index {} {} (published producer index {}, capacity {})", name, f.value,
                               why, f.position, f.limit);
        }
        case RingError::BadWrapMarker:
            // value: the marker's length field; limit: the bytes it would skip, or 0 at
            // offset 0, or the published bytes it overruns.
            if (f.value != WRAP_LENGTH)
                return fmt::format("{}: at index {} a type-0 header with length {:#x}, not 0xffffffff", name,
                                   f.position, f.value);
            if (f.limit == 0) return fmt::format("{}: a wrap marker at offset 0 (index {})", name, f.position);
            return fmt::format("{}: a wrap marker at index {} skips past the published bytes ({} available)", name,
                               f.position, f.limit);
        case RingError::Oversize:
            return fmt::format("{}: the frame at index {} declares a {}-byte payload, limit {}", name, f.position,
                               f.value, f.limit);
        case RingError::FrameOverrun:
            return fmt::format("{}: the {}-byte frame at index {} runs past the published bytes or the end of "
                               "the data area ({} bytes there)",
                               name, f.value, f.position, f.limit);
        case RingError::UnknownType:
            return fmt::format("{}: the frame at index {} has type id {}, not in the contracts", name, f.position,
                               f.value);
        case RingError::SizeMismatch:
            return fmt::format("{}: the frame at index {} has a {}-byte payload, its message is {} bytes", name,
                               f.position, f.value, f.limit);
    }
    return std::string(name);
}

std::string_view to_string(WriteError error) noexcept {
    switch (error) {
        case WriteError::Full: return "full";
        case WriteError::TooLarge: return "too_large";
        case WriteError::InvalidType: return "invalid_type";
        case WriteError::PeerClosed: return "peer_closed";
        case WriteError::Closed: return "closed";
        case WriteError::Corrupt: return "corrupt";
    }
    return "unknown_write_error";
}

// --- regions ---------------------------------------------------------------------------

Result<RingRegion, RingFailure> RingRegion::format(std::span<std::byte> memory, std::size_t capacity,
                                                   const schema::Digest& digest) noexcept {
    if (!valid_ring_capacity(capacity)) return Err{RingFailure{RingError::BadCapacity, 0, capacity, 0}};
    if (reinterpret_cast<std::uintptr_t>(memory.data()) % REGION_ALIGN != 0)
        return Err{RingFailure{RingError::RegionTooSmall, 0, reinterpret_cast<std::uintptr_t>(memory.data()), 0}};
    if (memory.size() < ring_region_size(capacity))
        return Err{RingFailure{RingError::RegionTooSmall, 0, memory.size(), ring_region_size(capacity)}};
    std::byte* const h = memory.data();
    std::memset(h, 0, RING_HEADER_SIZE);
    std::memcpy(h + offsets::MAGIC, RING_MAGIC.data(), RING_MAGIC.size());
    const std::uint32_t version = RING_VERSION;
    const auto header_size = static_cast<std::uint32_t>(RING_HEADER_SIZE);
    const std::uint64_t cap = capacity;
    std::memcpy(h + offsets::VERSION, &version, sizeof version);
    std::memcpy(h + offsets::HEADER_SIZE, &header_size, sizeof header_size);
    std::memcpy(h + offsets::CAPACITY, &cap, sizeof cap);
    std::memcpy(h + offsets::DIGEST, digest.data(), digest.size());
    return RingRegion(h, capacity);
}

Result<RingRegion, RingFailure> RingRegion::attach(std::span<std::byte> memory, const schema::Digest& digest,
                                                   std::size_t expected_capacity) noexcept {
    auto reject = [](RingFailure f) -> Result<RingRegion, RingFailure> {
        log_failure("attach", f);
        return Err{f};
    };
    if (reinterpret_cast<std::uintptr_t>(memory.data()) % REGION_ALIGN != 0)
        return reject({RingError::RegionTooSmall, 0, reinterpret_cast<std::uintptr_t>(memory.data()), 0});
    if (memory.size() < RING_HEADER_SIZE)
        return reject({RingError::RegionTooSmall, 0, memory.size(), RING_HEADER_SIZE});
    std::byte* const h = memory.data();
    // The header's constant fields are read once each, into locals; the peer could change
    // them later, but nothing reads them again: the capacity checked here is the one the
    // producer and consumer keep.
    if (std::memcmp(h + offsets::MAGIC, RING_MAGIC.data(), RING_MAGIC.size()) != 0)
        return reject({RingError::BadMagic, 0, load_unaligned<std::uint64_t>(h + offsets::MAGIC), 0});
    if (const std::uint32_t v = load_le32(h + offsets::VERSION); v != RING_VERSION)
        return reject({RingError::BadVersion, 0, v, RING_VERSION});
    if (const std::uint32_t hs = load_le32(h + offsets::HEADER_SIZE); hs != RING_HEADER_SIZE)
        return reject({RingError::BadHeaderSize, 0, hs, RING_HEADER_SIZE});
    const std::uint64_t cap = load_unaligned<std::uint64_t>(h + offsets::CAPACITY);
    if (!valid_ring_capacity(cap)) return reject({RingError::BadCapacity, 0, cap, 0});
    if (expected_capacity != 0 && cap != expected_capacity)
        return reject({RingError::BadCapacity, 0, cap, expected_capacity});
    if (memory.size() < ring_region_size(cap))
        return reject({RingError::RegionTooSmall, 0, memory.size(), ring_region_size(cap)});
    if (std::memcmp(h + offsets::DIGEST, digest.data(), digest.size()) != 0) {
        std::uint64_t start = 0;
        for (int i = 0; i < 8; ++i) start = start << 8 | std::to_integer<std::uint64_t>(h[offsets::DIGEST + i]);
        return reject({RingError::DigestMismatch, 0, start, 0});
    }
    const std::uint64_t p = detail::word64(h + offsets::PRODUCER_INDEX).load(std::memory_order_acquire);
    const std::uint64_t c = detail::word64(h + offsets::CONSUMER_INDEX).load(std::memory_order_acquire);
    if ((c & (FRAME_ALIGN - 1)) != 0) return reject({RingError::BadConsumerIndex, 0, c, cap});
    if ((p & (FRAME_ALIGN - 1)) != 0 || p - c > cap) return reject({RingError::BadProducerIndex, c, p, cap});
    return RingRegion(h, static_cast<std::size_t>(cap));
}

MappedRing MappedRing::create(std::size_t capacity, const schema::Digest& digest, const char* name) {
    if (!valid_ring_capacity(capacity))
        throw std::invalid_argument(fmt::format(
            "shared-memory ring capacity {} is not a power of two between {} and {}", capacity, MIN_RING_CAPACITY,
            MAX_RING_CAPACITY));
    MappedRing ring;
    ring.fd_ = create_sealed_memfd(name, ring_region_size(capacity));
    ring.mapping_ = Mapping::map(ring.fd_.get(), ring_region_size(capacity));
    auto region = RingRegion::format(ring.mapping_.bytes(), capacity, digest);
    assert(region.has_value());  // page-aligned and exactly sized
    ring.region_ = *region;
    return ring;
}

MappedRing MappedRing::attach(UniqueFd fd, const schema::Digest& digest, std::size_t expected_capacity) {
    const std::size_t size = check_sealed_memfd(fd.get());
    // Check the size before mapping: MAP_POPULATE on a huge sparse file would allocate it.
    const std::size_t max = expected_capacity != 0 ? ring_region_size(expected_capacity)
                                                   : ring_region_size(MAX_RING_CAPACITY);
    if (size < ring_region_size(MIN_RING_CAPACITY) || size > max ||
        (expected_capacity != 0 && size != max))
        throw std::system_error(EINVAL, std::generic_category(),
                                fmt::format("shared-memory ring memfd of {} bytes, expected {}", size,
                                            expected_capacity != 0 ? fmt::format("{}", max)
                                                                   : fmt::format("at most {}", max)));
    MappedRing ring;
    ring.mapping_ = Mapping::map(fd.get(), size);
    auto region = RingRegion::attach(ring.mapping_.bytes(), digest, expected_capacity);
    if (!region) throw RingFormatError(region.error());
    ring.fd_ = std::move(fd);
    ring.region_ = *region;
    return ring;
}

// --- producer --------------------------------------------------------------------------

RingProducer::RingProducer(RingRegion region, ProducerOptions options) noexcept
    : header_(region.base()),
      data_(region.data()),
      capacity_(region.capacity()),
      mask_(region.capacity() - 1),
      max_payload_(std::min(options.max_payload, ring_max_payload(region.capacity()))),
      notify_fd_(options.notify_fd),
      wait_fd_(options.wait_fd),
      spin_(options.spin) {
    assert(valid_ring_capacity(region.capacity()));
    // Our own index is read from the region only here, at the start (0 in a fresh ring);
    // from now on the local copy is the truth and the shared word is only written.
    const std::uint64_t p = detail::word64(header_ + offsets::PRODUCER_INDEX).load(std::memory_order_acquire);
    const std::uint64_t c = detail::word64(header_ + offsets::CONSUMER_INDEX).load(std::memory_order_acquire);
    write_ = published_ = p;
    consumer_ = c;
    if ((p & (FRAME_ALIGN - 1)) != 0 || (c & (FRAME_ALIGN - 1)) != 0 || p - c > capacity_) {
        consumer_ = p;  // keeps the free-room arithmetic in range while poisoned
        poison({RingError::BadConsumerIndex, p, c, capacity_});
    }
}

void RingProducer::poison(RingFailure failure) noexcept {
    state_ = State::Poisoned;
    failure_ = failure;
    try {
        log_failure("producer", failure);
    } catch (...) {  // logging must not turn a rejected ring into a crash
    }
}

bool RingProducer::refresh_consumer(std::memory_order order) noexcept {
    // Acquire (at least): the consumer's reads of the frames it released happen before we
    // overwrite them (pairs with the store in RingConsumer::publish_consumed).
    const std::uint64_t c = detail::word64(header_ + offsets::CONSUMER_INDEX).load(order);
    if (c == consumer_) return true;
    // The consumer may only move forward, within what we published: c in
    // (consumer_, published_], as distances so that nothing overflows.
    if ((c & (FRAME_ALIGN - 1)) != 0 || c - consumer_ > published_ - consumer_) {
        poison({RingError::BadConsumerIndex, published_, c, capacity_});
        return false;
    }
    consumer_ = c;
    return true;
}

std::optional<WriteError> RingProducer::make_room(std::uint64_t frame_size) noexcept {
    if (!refresh_consumer()) return WriteError::Corrupt;
    const std::uint64_t tail = capacity_ - (write_ & mask_);
    const std::uint64_t free = capacity_ - (write_ - consumer_);
    const std::uint64_t need = frame_size <= tail ? frame_size : tail + frame_size;
    if (free >= need) return std::nullopt;
    if (frame_size > tail && free >= tail) {
        // The frame goes to offset 0 but does not fit yet. Place the wrap marker now and
        // publish it: a frame as large as the data area only ever fits once the consumer
        // has moved past the marker, and it cannot do that before seeing it.
        detail::word64(data_ + (write_ & mask_)).store(detail::WRAP_WORD, std::memory_order_relaxed);
        write_ += tail;
        publish();
    }
    if (consumer_closed()) return WriteError::PeerClosed;
    return WriteError::Full;
}

bool RingProducer::room_for(std::size_t payload_length, std::memory_order order) noexcept {
    if (state_ != State::Open || payload_length > max_payload_) return true;  // try_reserve reports it
    if (!refresh_consumer(order)) return true;
    const std::uint64_t size = ring_frame_size(payload_length);
    const std::uint64_t tail = capacity_ - (write_ & mask_);
    const std::uint64_t free = capacity_ - (write_ - consumer_);
    // Progress: the frame fits before the end, or at least the wrap marker does (then the
    // next try_reserve writes it and the frame waits for room at offset 0).
    return free >= (size <= tail ? size : tail);
}

std::size_t RingProducer::free_bytes() noexcept {
    if (state_ != State::Open || !refresh_consumer()) return static_cast<std::size_t>(capacity_);
    return static_cast<std::size_t>(capacity_ - (write_ - consumer_));
}

bool RingProducer::consumer_closed(std::memory_order order) const noexcept {
    return detail::word32(header_ + offsets::CONSUMER_CLOSED).load(order) != 0;
}

void RingProducer::wake_consumer() noexcept {
    if (notify_fd_ < 0) return;
    // Clearing the flag ourselves means one doorbell per park, not one per publish while
    // the consumer is waking up (20-40 µs). We always ring after clearing, so a consumer
    // that set the flag again meanwhile still finds the eventfd readable.
    if (detail::word32(header_ + offsets::CONSUMER_SLEEPING).exchange(0, std::memory_order_relaxed) != 0)
        EventFd::notify_fd(notify_fd_);
}

RingWait RingProducer::wait_for_space(std::size_t payload_length, std::chrono::nanoseconds timeout,
                                      std::chrono::nanoseconds spin) noexcept {
    publish();
    const auto start = Clock::now();
    const auto deadline = start + timeout;
    const auto spin_end = start + std::min(spin, timeout);
    for (unsigned i = 0;; ++i) {
        if (room_for(payload_length)) return RingWait::Ready;
        if (consumer_closed()) return RingWait::Closed;
        if ((i & 63) == 63 && Clock::now() >= spin_end) break;
        detail::cpu_relax();
    }
    std::byte* const waiting = header_ + offsets::PRODUCER_WAITING;
    for (;;) {
        if (room_for(payload_length)) return RingWait::Ready;
        if (consumer_closed()) return RingWait::Closed;
        const auto remaining = deadline - Clock::now();
        if (remaining <= std::chrono::nanoseconds::zero()) return RingWait::Timeout;
        if (wait_fd_ < 0) {
            std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(SLEEP_SLICE, remaining));
            continue;
        }
        // Dekker with RingConsumer::publish_consumed (and close): store the flag, then
        // re-load the consumer index and its closed flag, all seq_cst. Either the consumer
        // sees the flag (and rings), or we see its new index or flag here.
        detail::word32(waiting).store(1, std::memory_order_seq_cst);
        if (room_for(payload_length, std::memory_order_seq_cst) || consumer_closed(std::memory_order_seq_cst)) {
            detail::word32(waiting).store(0, std::memory_order_relaxed);
            continue;
        }
        EventFd::wait_fd(wait_fd_, remaining);
        EventFd::drain_fd(wait_fd_);
        detail::word32(waiting).store(0, std::memory_order_relaxed);
    }
}

void RingProducer::close() noexcept {
    if (state_ == State::Closed) return;
    publish();
    if (state_ == State::Open) state_ = State::Closed;
    // Release (in seq_cst): a consumer that sees the flag (acquire) and then loads the
    // producer index sees the final one, so it drains everything before it reports
    // Closed. Seq_cst store then load: the same Dekker pairing with a parking consumer as
    // publish().
    detail::word32(header_ + offsets::PRODUCER_CLOSED).store(1, std::memory_order_seq_cst);
    if (detail::word32(header_ + offsets::CONSUMER_SLEEPING).load(std::memory_order_seq_cst) != 0) wake_consumer();
}

// --- consumer --------------------------------------------------------------------------

RingConsumer::RingConsumer(RingRegion region, ConsumerOptions options) noexcept
    : header_(region.base()),
      data_(region.data()),
      capacity_(region.capacity()),
      mask_(region.capacity() - 1),
      max_payload_(std::min(options.max_payload, ring_max_payload(region.capacity()))),
      type_sizes_(options.type_sizes),
      wait_fd_(options.wait_fd),
      notify_fd_(options.notify_fd),
      spin_(options.spin) {
    assert(valid_ring_capacity(region.capacity()));
    // Our own index is read from the region only here (0 in a fresh ring).
    read_ = producer_ = detail::word64(header_ + offsets::CONSUMER_INDEX).load(std::memory_order_acquire);
    if ((read_ & (FRAME_ALIGN - 1)) != 0) (void)fail({RingError::BadConsumerIndex, 0, read_, capacity_});
}

Result<std::optional<FrameView>, RingError> RingConsumer::fail(RingFailure failure) noexcept {
    pending_ = 0;
    failure_ = failure;
    try {
        log_failure("consumer", failure);
    } catch (...) {  // logging must not turn a rejected ring into a crash
    }
    return Err{failure.error};
}

bool RingConsumer::refresh_producer() noexcept {
    // Acquire: pairs with the release store in RingProducer::publish, so the frame bytes
    // written before it are visible to our reads of them.
    const std::uint64_t p = detail::word64(header_ + offsets::PRODUCER_INDEX).load(std::memory_order_acquire);
    if (p == producer_) return true;
    // Forward only, and never more than the capacity ahead of us: p - read_ in
    // [producer_ - read_, capacity], as distances so that nothing overflows.
    if ((p & (FRAME_ALIGN - 1)) != 0 || p - read_ > capacity_ || p - read_ < producer_ - read_) {
        (void)fail({RingError::BadProducerIndex, read_, p, capacity_});
        return false;
    }
    producer_ = p;
    return true;
}

bool RingConsumer::skip_wrap(std::uint64_t offset, std::uint32_t length) noexcept {
    if (length != WRAP_LENGTH) {
        (void)fail({RingError::BadWrapMarker, read_, length, 0});
        return false;
    }
    if (offset == 0) {
        (void)fail({RingError::BadWrapMarker, read_, length, 0});
        return false;
    }
    const std::uint64_t skip = capacity_ - offset;
    const std::uint64_t available = producer_ - read_;
    if (skip > available) {
        (void)fail({RingError::BadWrapMarker, read_, length, available});
        return false;
    }
    read_ += skip;
    pending_ = 0;
    // Release the skipped tail at once: a producer may be waiting to place a frame as
    // large as the data area at offset 0, and nothing else would publish our index.
    // Inside read_batch() the batch's end releases it: the frames visited before the
    // marker may still be in use (a reader that publishes them in runs) until then.
    if (!in_batch_) publish_consumed();
    return true;
}

bool RingConsumer::check_type(std::uint16_t type_id, std::uint32_t length) noexcept {
    const std::optional<std::size_t> size = (*type_sizes_)(type_id);
    if (!size) {
        (void)fail({RingError::UnknownType, read_, type_id, 0});
        return false;
    }
    if (*size != length) {
        (void)fail({RingError::SizeMismatch, read_, length, *size});
        return false;
    }
    checked_type_ = type_id;
    checked_length_ = length;
    return true;
}

void RingConsumer::wake_producer() noexcept {
    if (notify_fd_ < 0) return;
    if (detail::word32(header_ + offsets::PRODUCER_WAITING).exchange(0, std::memory_order_relaxed) != 0)
        EventFd::notify_fd(notify_fd_);
}

bool RingConsumer::producer_closed() const noexcept { return closed_flag(std::memory_order_acquire); }

bool RingConsumer::closed_flag(std::memory_order order) const noexcept {
    return detail::word32(header_ + offsets::PRODUCER_CLOSED).load(order) != 0;
}

bool RingConsumer::has_data(std::memory_order order) noexcept {
    if (failure_ || producer_ != read_) return true;
    // Not checked here (peek does): any change means "look".
    return detail::word64(header_ + offsets::PRODUCER_INDEX).load(order) != read_;
}

RingWait RingConsumer::wait(std::chrono::nanoseconds timeout) noexcept {
    // Closed only once the final producer index has been seen and drained: the acquire on
    // the flag makes the has_data() after it load an index at least as new as the one
    // published before close().
    auto closed = [this] { return producer_closed() && !has_data(); };
    const auto start = Clock::now();
    const auto deadline = start + timeout;
    const auto spin_end = start + std::min(spin_, timeout);
    for (unsigned i = 0;; ++i) {
        if (has_data()) return RingWait::Ready;
        if (closed()) return RingWait::Closed;
        if ((i & 63) == 63 && Clock::now() >= spin_end) break;
        detail::cpu_relax();
    }
    std::byte* const sleeping = header_ + offsets::CONSUMER_SLEEPING;
    for (;;) {
        if (has_data()) return RingWait::Ready;
        if (closed()) return RingWait::Closed;
        const auto remaining = deadline - Clock::now();
        if (remaining <= std::chrono::nanoseconds::zero()) return RingWait::Timeout;
        if (wait_fd_ < 0) {
            std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(SLEEP_SLICE, remaining));
            continue;
        }
        // Dekker with RingProducer::publish (and close): store the flag, then re-load the
        // producer index and closed flag, all seq_cst. Either the producer sees the flag
        // (and rings), or we see its new index or flag here.
        detail::word32(sleeping).store(1, std::memory_order_seq_cst);
        if (has_data(std::memory_order_seq_cst) || closed_flag(std::memory_order_seq_cst)) {
            detail::word32(sleeping).store(0, std::memory_order_relaxed);
            continue;
        }
        EventFd::wait_fd(wait_fd_, remaining);
        // A doorbell may be stale (rung for an earlier park, or by a hostile peer): drain
        // it and re-check; the loop parks again if nothing is there.
        EventFd::drain_fd(wait_fd_);
        detail::word32(sleeping).store(0, std::memory_order_relaxed);
    }
}

bool RingConsumer::begin_park() noexcept {
    std::byte* const sleeping = header_ + offsets::CONSUMER_SLEEPING;
    detail::word32(sleeping).store(1, std::memory_order_seq_cst);  // the Dekker pair of wait()
    if (has_data(std::memory_order_seq_cst) || closed_flag(std::memory_order_seq_cst)) {
        detail::word32(sleeping).store(0, std::memory_order_relaxed);
        return false;
    }
    return true;
}

void RingConsumer::end_park() noexcept {
    detail::word32(header_ + offsets::CONSUMER_SLEEPING).store(0, std::memory_order_relaxed);
    EventFd::drain_fd(wait_fd_);
}

void RingConsumer::close() noexcept {
    // Seq_cst store then load: the Dekker pair of the producer's wait_for_space.
    detail::word32(header_ + offsets::CONSUMER_CLOSED).store(1, std::memory_order_seq_cst);
    if (detail::word32(header_ + offsets::PRODUCER_WAITING).load(std::memory_order_seq_cst) != 0) wake_producer();
}

}  // namespace mycelium::shm
