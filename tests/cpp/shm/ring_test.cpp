#include <doctest/doctest.h>

#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "mycelium/shm_ring.hpp"

using namespace mycelium;
using namespace mycelium::shm;
using namespace std::chrono_literals;

namespace {

#if defined(MYC_SANITIZE_THREAD) || defined(MYC_SANITIZE_ADDRESS)
constexpr bool SANITIZED = true;
#else
constexpr bool SANITIZED = false;
#endif

schema::Digest test_digest(std::uint8_t seed = 0x5a) {
    schema::Digest d{};
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::uint8_t>(seed + i * 7);
    return d;
}

// A ring region in heap memory of exactly ring_region_size(capacity) bytes, 64-byte
// aligned: AddressSanitizer reports any access past either end.
struct HeapRing {
    explicit HeapRing(std::size_t capacity, const schema::Digest& digest = test_digest())
        : size(ring_region_size(capacity)),
          memory(static_cast<std::byte*>(::operator new(size, std::align_val_t{64}))) {
        auto r = RingRegion::format({memory, size}, capacity, digest);
        REQUIRE(r.has_value());
        region = *r;
    }
    ~HeapRing() { ::operator delete(memory, std::align_val_t{64}); }
    HeapRing(const HeapRing&) = delete;
    HeapRing& operator=(const HeapRing&) = delete;

    std::span<std::byte> bytes() const { return {memory, size}; }
    std::byte* data() const { return region.data(); }
    std::uint64_t load64(std::size_t offset) const {
        std::uint64_t v;
        std::memcpy(&v, memory + offset, sizeof v);
        return v;
    }
    void store64(std::size_t offset, std::uint64_t v) { std::memcpy(memory + offset, &v, sizeof v); }
    std::uint32_t load32(std::size_t offset) const {
        std::uint32_t v;
        std::memcpy(&v, memory + offset, sizeof v);
        return v;
    }

    std::size_t size;
    std::byte* memory;
    RingRegion region;
};

std::vector<std::byte> pattern(std::size_t length, std::uint64_t seed) {
    std::vector<std::byte> v(length);
    for (std::size_t i = 0; i < length; ++i) v[i] = static_cast<std::byte>((seed * 131 + i * 7 + 1) & 0xff);
    return v;
}

bool same(std::span<const std::byte> a, std::span<const std::byte> b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// The frame view lies inside the data area.
bool inside(const HeapRing& ring, const FrameView& v) {
    const std::byte* lo = ring.data();
    const std::byte* hi = ring.data() + ring.region.capacity();
    return v.payload.data() >= lo && v.payload.data() + v.payload.size() <= hi;
}

// Reading helpers in the toml++ style: the exact outcome or the exact error.
FrameView next_frame(RingConsumer& c) {
    auto r = c.peek();
    REQUIRE(r.has_value());
    REQUIRE(r->has_value());
    return **r;
}

void ring_is_empty(RingConsumer& c) {
    auto r = c.peek();
    REQUIRE(r.has_value());
    CHECK_FALSE(r->has_value());
}

void reading_fails_with(RingConsumer& c, RingError expected) {
    auto r = c.peek();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == expected);
    REQUIRE(c.failure() != nullptr);
    CHECK(c.failure()->error == expected);
    CHECK_FALSE(to_string(*c.failure()).empty());
    // Poisoned: the same error again, nothing delivered.
    auto again = c.peek();
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error() == expected);
}

// Type table for the schema checks: 1000 -> 8 bytes, 1001 -> 16 bytes.
const auto two_types = [](std::uint16_t id) -> std::optional<std::size_t> {
    if (id == 1000) return 8;
    if (id == 1001) return 16;
    return std::nullopt;
};

}  // namespace

TEST_SUITE("shm.ring") {

TEST_CASE("a formatted region carries the documented header bytes" * doctest::timeout(10)) {
    HeapRing ring(4096);
    const auto* b = reinterpret_cast<const unsigned char*>(ring.memory);
    CHECK(std::memcmp(b, "MYC-RING", 8) == 0);
    CHECK(ring.load32(offsets::VERSION) == 1);
    CHECK(ring.load32(offsets::HEADER_SIZE) == 256);
    CHECK(ring.load64(offsets::CAPACITY) == 4096);
    const auto d = test_digest();
    CHECK(std::memcmp(b + offsets::DIGEST, d.data(), 32) == 0);
    CHECK(ring.load64(offsets::PRODUCER_INDEX) == 0);
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 0);
    for (std::size_t i = offsets::CONSUMER_SLEEPING; i < RING_HEADER_SIZE; ++i) CHECK(b[i] == 0);
    CHECK(ring.region.data() == ring.memory + 256);

    auto attached = RingRegion::attach(ring.bytes(), d, 4096);
    REQUIRE(attached.has_value());
    CHECK(attached->capacity() == 4096);
    CHECK(attached->base() == ring.memory);
}

TEST_CASE("a frame is the wire's TLV frame padded to 8 bytes" * doctest::timeout(10)) {
    HeapRing ring(256);
    RingProducer p(ring.region);
    RingConsumer c(ring.region);
    ring_is_empty(c);

    const std::array<std::byte, 3> payload{std::byte{0xaa}, std::byte{0xbb}, std::byte{0xcc}};
    REQUIRE(p.try_write(1002, payload).has_value());
    // ea 03 | 03 00 00 00 | aa bb cc | padding to 16
    const auto* d = reinterpret_cast<const unsigned char*>(ring.data());
    const unsigned char expected[] = {0xea, 0x03, 0x03, 0x00, 0x00, 0x00, 0xaa, 0xbb, 0xcc};
    CHECK(std::memcmp(d, expected, sizeof expected) == 0);
    CHECK(ring.load64(offsets::PRODUCER_INDEX) == 16);
    CHECK(p.write_position() == 16);

    const FrameView v = next_frame(c);
    CHECK(v.type_id == 1002);
    CHECK(same(v.payload, payload));
    CHECK(v.payload.data() == ring.data() + 6);
    // Peeking again shows the same frame; consume releases it.
    CHECK(next_frame(c).payload.data() == v.payload.data());
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 0);
    c.consume();
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 16);
    CHECK(c.read_position() == 16);
    ring_is_empty(c);
    c.consume();  // nothing peeked: no effect
    CHECK(c.read_position() == 16);

    // An empty payload is a 6-byte header padded to 8.
    REQUIRE(p.try_write(5, {}).has_value());
    CHECK(ring.load64(offsets::PRODUCER_INDEX) == 24);
    const FrameView e = next_frame(c);
    CHECK(e.type_id == 5);
    CHECK(e.payload.empty());
    c.consume();
    ring_is_empty(c);
}

TEST_CASE("the producer refuses type 0 and payloads above its limit" * doctest::timeout(10)) {
    HeapRing ring(256);
    RingProducer p(ring.region, ProducerOptions{.max_payload = 100});
    CHECK(p.max_payload() == 100);
    auto r = p.try_write(0, {});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == WriteError::InvalidType);
    const auto big = pattern(101, 1);
    r = p.try_write(1000, big);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == WriteError::TooLarge);
    CHECK(p.write_position() == 0);

    // The limit is never above what the ring can hold in one frame.
    RingProducer q(ring.region);
    CHECK(q.max_payload() == 250);
    CHECK(ring_max_payload(DEFAULT_RING_CAPACITY) == DEFAULT_RING_CAPACITY - 6);
    CHECK(ring_max_payload(std::size_t{64} << 20) == schema::DEFAULT_MAX_PAYLOAD);
}

TEST_CASE("a full ring refuses a frame, writes nothing, and takes it once the consumer catches up" *
          doctest::timeout(10)) {
    HeapRing ring(128);
    RingProducer p(ring.region);
    RingConsumer c(ring.region);
    const auto payload = pattern(26, 7);  // 32-byte frames: four fill the ring
    for (int i = 0; i < 4; ++i) REQUIRE(p.try_write(1000, payload).has_value());
    CHECK(p.write_position() == 128);
    auto r = p.try_write(1000, payload);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == WriteError::Full);
    CHECK(p.write_position() == 128);
    CHECK(ring.load64(offsets::PRODUCER_INDEX) == 128);
    // Even the smallest frame does not fit.
    r = p.try_write(1000, {});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == WriteError::Full);

    CHECK(same(next_frame(c).payload, payload));
    c.consume();
    REQUIRE(p.try_write(1001, payload).has_value());
    std::vector<std::uint16_t> types;
    auto n = c.read_batch([&](const FrameView& v) { types.push_back(v.type_id); });
    REQUIRE(n.has_value());
    CHECK(*n == 4);
    CHECK(types == std::vector<std::uint16_t>{1000, 1000, 1000, 1001});
    ring_is_empty(c);
}

TEST_CASE("a frame that does not fit before the end wraps to offset 0 behind a marker" * doctest::timeout(10)) {
    HeapRing ring(128);
    RingProducer p(ring.region);
    RingConsumer c(ring.region);
    // 3 frames of 32 bytes: the write position is at offset 96, 32 bytes before the end.
    const auto p26 = pattern(26, 1);
    for (int i = 0; i < 3; ++i) REQUIRE(p.try_write(1000, p26).has_value());
    for (int i = 0; i < 3; ++i) {
        next_frame(c);
        c.consume();
    }
    // A 48-byte frame does not fit in the 32 bytes left: marker at 96, frame at 0.
    const auto p42 = pattern(42, 2);
    REQUIRE(p.try_write(1001, p42).has_value());
    CHECK(ring.load64(256 + 96) == 0xffffffff0000ull);  // type 0, length 0xffffffff
    CHECK(p.write_position() == 96 + 32 + 48);
    const FrameView v = next_frame(c);
    CHECK(v.type_id == 1001);
    CHECK(v.payload.data() == ring.data() + 6);  // contiguous, at offset 0
    CHECK(same(v.payload, p42));
    // Peeking past the marker released it at once.
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 128);
    c.consume();
    CHECK(c.read_position() == 176);
    ring_is_empty(c);

    // A frame that exactly fills the rest of the area needs no marker.
    RingProducer& q = p;
    const auto p74 = pattern(74, 3);  // 80 bytes: offset 48 + 80 = 128
    REQUIRE(q.try_write(1002, p74).has_value());
    CHECK(q.write_position() == 256);
    CHECK(same(next_frame(c).payload, p74));
    c.consume();
    ring_is_empty(c);
}

TEST_CASE("a frame as large as the ring is written once the consumer passes the wrap marker" *
          doctest::timeout(10)) {
    HeapRing ring(64);
    RingProducer p(ring.region);
    RingConsumer c(ring.region);
    REQUIRE(p.try_write(1000, pattern(2, 0)).has_value());  // 8 bytes, offset now 8
    next_frame(c);
    c.consume();
    const auto big = pattern(58, 9);  // 64 bytes: the whole data area
    auto r = p.try_write(1000, big);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == WriteError::Full);
    // The marker was written and published even though the frame did not fit.
    CHECK(ring.load64(offsets::PRODUCER_INDEX) == 64);
    ring_is_empty(c);  // skips the marker and releases it
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 64);
    REQUIRE(p.try_write(1000, big).has_value());
    const FrameView v = next_frame(c);
    CHECK(same(v.payload, big));
    CHECK(v.payload.data() == ring.data() + 6);
    c.consume();
    ring_is_empty(c);
}

TEST_CASE("every frame size up to the capacity goes through from every starting offset" *
          doctest::timeout(60)) {
    for (const std::size_t capacity : {std::size_t{64}, std::size_t{256}}) {
        CAPTURE(capacity);
        const std::size_t max = ring_max_payload(capacity);
        for (std::size_t start = 0; start < capacity; start += FRAME_ALIGN) {
            for (std::size_t length = 0; length <= max; ++length) {
                CAPTURE(start);
                CAPTURE(length);
                HeapRing ring(capacity);
                RingProducer p(ring.region);
                RingConsumer c(ring.region);
                if (start != 0) {  // one filler frame of exactly `start` bytes, consumed
                    REQUIRE(p.try_write(7, pattern(start - FRAME_HEADER_SIZE, 0)).has_value());
                    next_frame(c);
                    c.consume();
                }
                const auto payload = pattern(length, length + start);
                auto r = p.try_write(1000 + static_cast<std::uint16_t>(length), payload);
                if (!r) {
                    // Only a frame that must wrap and cannot fit beside the marker waits.
                    REQUIRE(r.error() == WriteError::Full);
                    REQUIRE(ring_frame_size(length) > capacity - start);
                    ring_is_empty(c);
                    r = p.try_write(1000 + static_cast<std::uint16_t>(length), payload);
                    REQUIRE(r.has_value());
                }
                const FrameView v = next_frame(c);
                CHECK(v.type_id == 1000 + length);
                CHECK(same(v.payload, payload));
                CHECK(inside(ring, v));
                c.consume();
                ring_is_empty(c);
                CHECK(c.read_position() == p.write_position());
            }
        }
    }
}

TEST_CASE("staged frames stay invisible until publish, which stores the index once" * doctest::timeout(10)) {
    HeapRing ring(256);
    RingProducer p(ring.region);
    RingConsumer c(ring.region);
    for (std::uint64_t i = 0; i < 5; ++i) {
        auto place = p.try_reserve(1000, 8);
        REQUIRE(place.has_value());
        std::memcpy(place->data(), &i, 8);
    }
    CHECK(p.write_position() == 80);
    CHECK(p.published_position() == 0);
    ring_is_empty(c);
    p.publish();
    CHECK(ring.load64(offsets::PRODUCER_INDEX) == 80);
    std::vector<std::uint64_t> seen;
    auto n = c.read_batch([&](const FrameView& v) {
        std::uint64_t x;
        std::memcpy(&x, v.payload.data(), 8);
        seen.push_back(x);
    });
    REQUIRE(n.has_value());
    CHECK(*n == 5);
    CHECK(seen == std::vector<std::uint64_t>{0, 1, 2, 3, 4});
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 80);
}

TEST_CASE("read_batch honours its maximum and releases frames even when the visitor throws" *
          doctest::timeout(10)) {
    HeapRing ring(256);
    RingProducer p(ring.region);
    RingConsumer c(ring.region);
    for (std::uint16_t i = 0; i < 6; ++i) REQUIRE(p.try_write(100 + i, pattern(3, i)).has_value());
    auto n = c.read_batch([](const FrameView&) {}, 2);
    REQUIRE(n.has_value());
    CHECK(*n == 2);
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 32);
    int visits = 0;
    CHECK_THROWS_AS((void)c.read_batch([&](const FrameView& v) {
        ++visits;
        if (v.type_id == 103) throw std::runtime_error("boom");
    }),
                    std::runtime_error);
    CHECK(visits == 2);
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 64);  // 102 and the throwing 103 are consumed
    CHECK(next_frame(c).type_id == 104);
}

TEST_CASE("read_batch runs its before-release step after the last visit and before the release" *
          doctest::timeout(10)) {
    HeapRing ring(256);
    RingProducer p(ring.region);
    RingConsumer c(ring.region);
    for (std::uint16_t i = 0; i < 3; ++i) REQUIRE(p.try_stage(100 + i, pattern(3, i)).has_value());
    CHECK(p.staged_bytes() == 48);
    p.publish();
    CHECK(p.staged_bytes() == 0);
    std::vector<std::uint64_t> left;  // known_available() during each visit
    std::uint64_t index_in_hook = 1;
    int hooks = 0;
    auto n = c.read_batch([&](const FrameView&) { left.push_back(c.known_available()); }, SIZE_MAX,
                          [&]() noexcept {
                              ++hooks;
                              index_in_hook = ring.load64(offsets::CONSUMER_INDEX);
                          });
    REQUIRE(n.has_value());
    CHECK(*n == 3);
    CHECK(left == std::vector<std::uint64_t>{32, 16, 0});  // 0: the last frame known
    CHECK(hooks == 1);
    CHECK(index_in_hook == 0);                              // not released yet
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 48);      // released after it
    // Also on the way out of a throwing visit, and when the ring is empty.
    REQUIRE(p.try_write(200, pattern(3, 9)).has_value());
    CHECK_THROWS_AS((void)c.read_batch([](const FrameView&) { throw std::runtime_error("boom"); }, SIZE_MAX,
                                       [&]() noexcept { ++hooks; }),
                    std::runtime_error);
    CHECK(hooks == 2);
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 64);
    auto none = c.read_batch([](const FrameView&) {}, SIZE_MAX, [&]() noexcept { ++hooks; });
    REQUIRE(none.has_value());
    CHECK(*none == 0);
    CHECK(hooks == 3);
}

TEST_CASE("read_batch releases nothing at a wrap marker: the frames before it stay valid" * doctest::timeout(10)) {
    HeapRing ring(128);
    RingProducer p(ring.region);
    RingConsumer c(ring.region);
    // Offset 96 after three 32-byte frames read and released; then two frames before the
    // end would not fit: frame A (16 bytes) at 96, a marker at 112, frame B at 0.
    const auto p26 = pattern(26, 1);
    for (int i = 0; i < 3; ++i) REQUIRE(p.try_write(1000, p26).has_value());
    REQUIRE(c.read_batch([](const FrameView&) {}).has_value());
    REQUIRE(p.try_write(1001, pattern(10, 2)).has_value());  // A: 16 bytes at 96
    REQUIRE(p.try_write(1002, pattern(18, 3)).has_value());  // B: 24 bytes, wraps to 0
    std::vector<std::uint64_t> index_seen;                   // the shared consumer index, per visit
    auto n = c.read_batch([&](const FrameView&) { index_seen.push_back(ring.load64(offsets::CONSUMER_INDEX)); });
    REQUIRE(n.has_value());
    CHECK(*n == 2);
    // Had the marker released A while B was visited, the producer could overwrite A.
    CHECK(index_seen == std::vector<std::uint64_t>{96, 96});
    CHECK(ring.load64(offsets::CONSUMER_INDEX) == 128 + 24);
}

TEST_CASE("wait_for_space can spin for less than the producer's spin" * doctest::timeout(10)) {
    HeapRing ring(64);
    ProducerOptions po;
    po.spin = std::chrono::seconds(5);  // would spin the whole timeout
    RingProducer p(ring.region, po);
    RingConsumer c(ring.region);
    while (p.try_write(100, pattern(3, 1)).has_value()) {
    }
    const auto cpu_now = [] {
        timespec ts{};
        ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
    };
    const auto t0 = std::chrono::steady_clock::now();
    const auto cpu0 = cpu_now();
    CHECK(p.wait_for_space(3, std::chrono::milliseconds(50), std::chrono::nanoseconds(0)) == RingWait::Timeout);
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= std::chrono::milliseconds(50));
    CHECK(took < std::chrono::seconds(2));
    CHECK(cpu_now() - cpu0 < std::chrono::milliseconds(25));  // it slept, it did not spin
    (void)c.read_batch([](const FrameView&) {});
    CHECK(p.wait_for_space(3, std::chrono::milliseconds(20), std::chrono::nanoseconds(0)) == RingWait::Ready);
}

TEST_CASE("a producer and a consumer on two threads pass millions of frames in order" * doctest::timeout(60)) {
    const std::uint64_t frames = SANITIZED ? 2'000'000 : 3'000'000;
    HeapRing ring(64 * 1024);
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> received{0};
    std::thread consumer([&] {
        RingConsumer c(ring.region, ConsumerOptions{.spin = 1s});
        std::uint64_t next = 0;
        while (next < frames) {
            auto n = c.read_batch([&](const FrameView& v) {
                std::uint64_t seq;
                std::memcpy(&seq, v.payload.data(), 8);
                const std::size_t want = 9 + seq % 57;
                if (seq != next || v.type_id != 1000 + seq % 7 || v.payload.size() != want ||
                    v.payload.back() != static_cast<std::byte>(seq & 0xff))
                    errors.fetch_add(1, std::memory_order_relaxed);
                ++next;
            });
            if (!n) {
                errors.fetch_add(1);
                break;
            }
            if (*n == 0 && c.wait(5s) != RingWait::Ready) {
                errors.fetch_add(1);
                break;
            }
        }
        received = next;
    });
    RingProducer p(ring.region, ProducerOptions{.spin = 1s});
    std::array<std::byte, 72> buf{};
    std::uint64_t staged = 0;
    for (std::uint64_t seq = 0; seq < frames;) {
        const std::size_t len = 9 + seq % 57;  // the last byte is not one of the seq's
        std::memcpy(buf.data(), &seq, 8);
        buf[len - 1] = static_cast<std::byte>(seq & 0xff);
        auto r = p.try_stage(static_cast<std::uint16_t>(1000 + seq % 7), {buf.data(), len});
        if (r) {
            ++seq;
            if (++staged == 16) {  // publish every 16 frames, and whenever the ring is full
                p.publish();
                staged = 0;
            }
            continue;
        }
        REQUIRE(r.error() == WriteError::Full);
        staged = 0;
        REQUIRE(p.wait_for_space(len, 5s) == RingWait::Ready);
    }
    p.publish();
    consumer.join();
    CHECK(errors.load() == 0);
    CHECK(received.load() == frames);
}

TEST_CASE("both sides park on their doorbells and wake each other across threads" * doctest::timeout(60)) {
    // Short spins, a small ring and an irregular consumer: both sides park often, and
    // every wake-up has to come from the other side's doorbell.
    const std::uint64_t frames = SANITIZED ? 20'000 : 100'000;
    HeapRing ring(512);
    EventFd consumer_bell = EventFd::create();
    EventFd producer_bell = EventFd::create();
    std::atomic<std::uint64_t> errors{0};
    std::thread consumer([&] {
        RingConsumer c(ring.region, ConsumerOptions{.wait_fd = consumer_bell.fd(),
                                                    .notify_fd = producer_bell.fd(),
                                                    .spin = 1us});
        std::uint64_t next = 0;
        while (next < frames) {
            auto n = c.read_batch(
                [&](const FrameView& v) {
                    std::uint64_t seq;
                    std::memcpy(&seq, v.payload.data(), 8);
                    if (seq != next) errors.fetch_add(1, std::memory_order_relaxed);
                    ++next;
                },
                1 + next % 5);
            if (!n) {
                errors.fetch_add(1);
                break;
            }
            if (*n == 0) {
                const RingWait w = c.wait(10s);
                if (w != RingWait::Ready) {
                    errors.fetch_add(1);
                    break;
                }
            }
        }
        if (c.wait(10s) != RingWait::Closed) errors.fetch_add(1);
    });
    RingProducer p(ring.region, ProducerOptions{.notify_fd = consumer_bell.fd(),
                                                .wait_fd = producer_bell.fd(),
                                                .spin = 1us});
    for (std::uint64_t seq = 0; seq < frames;) {
        std::array<std::byte, 24> buf{};
        std::memcpy(buf.data(), &seq, 8);
        auto r = p.try_write(1000, buf);
        if (r) {
            ++seq;
            if (seq % 1000 == 0) std::this_thread::sleep_for(100us);  // let the consumer park
            continue;
        }
        REQUIRE(r.error() == WriteError::Full);
        REQUIRE(p.wait_for_space(buf.size(), 10s) == RingWait::Ready);
    }
    p.close();
    consumer.join();
    CHECK(errors.load() == 0);
}

TEST_CASE("a parked consumer sets its sleeping flag and the producer's doorbell wakes it" *
          doctest::timeout(20)) {
    HeapRing ring(256);
    EventFd bell = EventFd::create();
    RingConsumer c(ring.region, ConsumerOptions{.wait_fd = bell.fd(), .spin = 10us});
    RingProducer p(ring.region, ProducerOptions{.notify_fd = bell.fd()});

    // Nothing comes: the wait spins, parks, times out and clears the flag.
    auto t0 = std::chrono::steady_clock::now();
    CHECK(c.wait(5ms) == RingWait::Timeout);
    CHECK(std::chrono::steady_clock::now() - t0 >= 5ms);
    CHECK(ring.load32(offsets::CONSUMER_SLEEPING) == 0);

    std::atomic<int> result{-1};
    std::atomic<std::int64_t> woke_at{0};
    std::thread t([&] {
        result = static_cast<int>(c.wait(10s));
        woke_at = std::chrono::steady_clock::now().time_since_epoch().count();
    });
    // Wait until the consumer has declared itself asleep.
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (detail::word32(ring.memory + offsets::CONSUMER_SLEEPING).load() == 0 &&
           std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(100us);
    REQUIRE(detail::word32(ring.memory + offsets::CONSUMER_SLEEPING).load() == 1);
    std::this_thread::sleep_for(5ms);
    const auto rung_at = std::chrono::steady_clock::now();
    REQUIRE(p.try_write(1000, pattern(8, 1)).has_value());
    // The producer cleared the flag when it rang.
    CHECK(detail::word32(ring.memory + offsets::CONSUMER_SLEEPING).load() == 0);
    t.join();
    CHECK(result.load() == static_cast<int>(RingWait::Ready));
    const auto wake = std::chrono::steady_clock::duration(woke_at.load()) - rung_at.time_since_epoch();
    MESSAGE("parked wake-up took ", std::chrono::duration_cast<std::chrono::microseconds>(wake).count(), " us");
    CHECK(wake < 2s);
    CHECK(next_frame(c).type_id == 1000);
}

TEST_CASE("a spurious doorbell is absorbed and a busy consumer is never rung" * doctest::timeout(20)) {
    HeapRing ring(256);
    EventFd bell = EventFd::create();
    RingConsumer c(ring.region, ConsumerOptions{.wait_fd = bell.fd(), .spin = 0ns});
    RingProducer p(ring.region, ProducerOptions{.notify_fd = bell.fd()});
    bell.notify();  // a hostile or stale ring
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(c.wait(20ms) == RingWait::Timeout);
    CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
    // The consumer is not parked: publishing does not touch the eventfd.
    REQUIRE(p.try_write(1000, pattern(8, 1)).has_value());
    CHECK(bell.drain() == 0);
    CHECK(c.wait(1s) == RingWait::Ready);
}

TEST_CASE("an event-loop consumer parks with begin_park and end_park" * doctest::timeout(20)) {
    HeapRing ring(256);
    EventFd bell = EventFd::create();
    RingConsumer c(ring.region, ConsumerOptions{.wait_fd = bell.fd()});
    RingProducer p(ring.region, ProducerOptions{.notify_fd = bell.fd()});
    REQUIRE(c.begin_park());
    CHECK(ring.load32(offsets::CONSUMER_SLEEPING) == 1);
    REQUIRE(p.try_write(1000, pattern(8, 1)).has_value());
    CHECK(bell.wait(1s));
    c.end_park();
    CHECK(bell.drain() == 0);
    CHECK(ring.load32(offsets::CONSUMER_SLEEPING) == 0);
    // With a frame waiting, begin_park refuses (read first).
    CHECK_FALSE(c.begin_park());
    CHECK(ring.load32(offsets::CONSUMER_SLEEPING) == 0);
}

TEST_CASE("a producer waiting for room is woken when the consumer frees it" * doctest::timeout(20)) {
    HeapRing ring(128);
    EventFd producer_bell = EventFd::create();
    RingProducer p(ring.region, ProducerOptions{.wait_fd = producer_bell.fd(), .spin = 10us});
    RingConsumer c(ring.region, ConsumerOptions{.notify_fd = producer_bell.fd()});
    const auto p26 = pattern(26, 1);
    for (int i = 0; i < 4; ++i) REQUIRE(p.try_write(1000, p26).has_value());
    CHECK(p.wait_for_space(26, 5ms) == RingWait::Timeout);
    CHECK(ring.load32(offsets::PRODUCER_WAITING) == 0);

    std::atomic<int> result{-1};
    std::thread t([&] { result = static_cast<int>(p.wait_for_space(26, 10s)); });
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (detail::word32(ring.memory + offsets::PRODUCER_WAITING).load() == 0 &&
           std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(100us);
    REQUIRE(detail::word32(ring.memory + offsets::PRODUCER_WAITING).load() == 1);
    next_frame(c);
    c.consume();
    t.join();
    CHECK(result.load() == static_cast<int>(RingWait::Ready));
    CHECK(p.try_write(1000, p26).has_value());
}

TEST_CASE("closing: the consumer drains what was published, then sees Closed" * doctest::timeout(20)) {
    HeapRing ring(256);
    EventFd bell = EventFd::create();
    RingProducer p(ring.region, ProducerOptions{.notify_fd = bell.fd()});
    RingConsumer c(ring.region, ConsumerOptions{.wait_fd = bell.fd(), .spin = 1us});
    REQUIRE(p.try_stage(1000, pattern(8, 1)).has_value());
    p.close();  // publishes the staged frame first
    CHECK(ring.load32(offsets::PRODUCER_CLOSED) == 1);
    CHECK(c.producer_closed());
    CHECK(c.wait(1s) == RingWait::Ready);
    next_frame(c);
    c.consume();
    CHECK(c.wait(1s) == RingWait::Closed);
    auto r = p.try_write(1000, pattern(8, 1));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == WriteError::Closed);

    // A parked consumer is woken by close().
    HeapRing ring2(256);
    RingProducer p2(ring2.region, ProducerOptions{.notify_fd = bell.fd()});
    RingConsumer c2(ring2.region, ConsumerOptions{.wait_fd = bell.fd(), .spin = 1us});
    std::atomic<int> result{-1};
    std::thread t([&] { result = static_cast<int>(c2.wait(10s)); });
    std::this_thread::sleep_for(10ms);
    const auto t0 = std::chrono::steady_clock::now();
    p2.close();
    t.join();
    CHECK(result.load() == static_cast<int>(RingWait::Closed));
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
}

TEST_CASE("a consumer that closed makes a full producer stop with PeerClosed" * doctest::timeout(20)) {
    HeapRing ring(64);
    EventFd producer_bell = EventFd::create();
    RingProducer p(ring.region, ProducerOptions{.wait_fd = producer_bell.fd(), .spin = 1us});
    RingConsumer c(ring.region, ConsumerOptions{.notify_fd = producer_bell.fd()});
    const auto p26 = pattern(26, 1);
    REQUIRE(p.try_write(1000, p26).has_value());
    REQUIRE(p.try_write(1000, p26).has_value());
    std::atomic<int> result{-1};
    std::thread t([&] { result = static_cast<int>(p.wait_for_space(26, 10s)); });
    std::this_thread::sleep_for(10ms);
    c.close();
    t.join();
    CHECK(result.load() == static_cast<int>(RingWait::Closed));
    auto r = p.try_write(1000, p26);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == WriteError::PeerClosed);
}

// --- untrusted memory ------------------------------------------------------------------

TEST_CASE("attach rejects each bad header field with its own error" * doctest::timeout(10)) {
    const auto d = test_digest();
    auto attach_fails_with = [&](HeapRing& ring, RingError e, std::size_t expected = 0) {
        auto r = RingRegion::attach(ring.bytes(), d, expected);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().error == e);
        CHECK_FALSE(to_string(r.error()).empty());
    };
    {
        HeapRing ring(256);
        ring.memory[3] = std::byte{'X'};
        attach_fails_with(ring, RingError::BadMagic);
    }
    {
        HeapRing ring(256);
        ring.memory[offsets::VERSION] = std::byte{2};
        attach_fails_with(ring, RingError::BadVersion);
    }
    {
        HeapRing ring(256);
        ring.memory[offsets::HEADER_SIZE] = std::byte{128};
        attach_fails_with(ring, RingError::BadHeaderSize);
    }
    for (std::uint64_t cap : {0ull, 32ull, 100ull, 255ull, 1ull << 31, ~0ull}) {
        HeapRing ring(256);
        ring.store64(offsets::CAPACITY, cap);
        attach_fails_with(ring, RingError::BadCapacity);
    }
    {
        HeapRing ring(256);
        attach_fails_with(ring, RingError::BadCapacity, 512);  // not what we expected
        ring.store64(offsets::CAPACITY, 512);                   // valid, but past the memory
        attach_fails_with(ring, RingError::RegionTooSmall);
    }
    {
        HeapRing ring(256);
        auto r = RingRegion::attach(ring.bytes(), test_digest(0x11));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().error == RingError::DigestMismatch);
    }
    {
        HeapRing ring(256);
        ring.store64(offsets::PRODUCER_INDEX, 264);  // more than the capacity ahead
        attach_fails_with(ring, RingError::BadProducerIndex);
        ring.store64(offsets::PRODUCER_INDEX, 8);
        ring.store64(offsets::CONSUMER_INDEX, 3);
        attach_fails_with(ring, RingError::BadConsumerIndex);
    }
    {
        HeapRing ring(256);
        auto r = RingRegion::attach(ring.bytes().subspan(0, 100), d);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().error == RingError::RegionTooSmall);
        r = RingRegion::attach(ring.bytes().subspan(8), d);  // misaligned
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().error == RingError::RegionTooSmall);
    }
    {
        HeapRing ring(256);
        auto f = RingRegion::format(ring.bytes(), 100, d);
        REQUIRE_FALSE(f.has_value());
        CHECK(f.error().error == RingError::BadCapacity);
        f = RingRegion::format(ring.bytes(), 512, d);
        REQUIRE_FALSE(f.has_value());
        CHECK(f.error().error == RingError::RegionTooSmall);
    }
}

TEST_CASE("a hostile producer index is rejected" * doctest::timeout(10)) {
    SUBCASE("not a multiple of 8") {
        HeapRing ring(256);
        RingConsumer c(ring.region);
        ring.store64(offsets::PRODUCER_INDEX, 12);
        reading_fails_with(c, RingError::BadProducerIndex);
    }
    SUBCASE("more than the capacity ahead") {
        HeapRing ring(256);
        RingConsumer c(ring.region);
        ring.store64(offsets::PRODUCER_INDEX, 264);
        reading_fails_with(c, RingError::BadProducerIndex);
    }
    SUBCASE("behind the consumer") {
        HeapRing ring(256);
        RingProducer p(ring.region);
        RingConsumer c(ring.region);
        REQUIRE(p.try_write(1000, pattern(10, 1)).has_value());
        next_frame(c);
        c.consume();
        ring.store64(offsets::PRODUCER_INDEX, 8);
        reading_fails_with(c, RingError::BadProducerIndex);
    }
    SUBCASE("far past 2^63, so that signed arithmetic would overflow") {
        HeapRing ring(256);
        RingConsumer c(ring.region);
        ring.store64(offsets::PRODUCER_INDEX, 0xfffffffffffffff8ull);
        reading_fails_with(c, RingError::BadProducerIndex);
    }
}

TEST_CASE("hostile frame headers are rejected" * doctest::timeout(10)) {
    auto header = [](std::uint16_t type, std::uint32_t length) { return detail::frame_word(type, length); };
    SUBCASE("a payload above the limit") {
        HeapRing ring(256);
        RingConsumer c(ring.region, ConsumerOptions{.max_payload = 64});
        ring.store64(256, header(1000, 65));
        ring.store64(offsets::PRODUCER_INDEX, 256);
        reading_fails_with(c, RingError::Oversize);
    }
    SUBCASE("a length of 4 GiB") {
        HeapRing ring(256);
        RingConsumer c(ring.region);
        ring.store64(256, header(1000, 0xfffffffe));
        ring.store64(offsets::PRODUCER_INDEX, 8);
        reading_fails_with(c, RingError::Oversize);
    }
    SUBCASE("a frame past the published bytes") {
        HeapRing ring(256);
        RingConsumer c(ring.region);
        ring.store64(256, header(1000, 20));  // 32 bytes, only 24 published
        ring.store64(offsets::PRODUCER_INDEX, 24);
        reading_fails_with(c, RingError::FrameOverrun);
    }
    SUBCASE("a frame across the end of the data area") {
        HeapRing ring(256);
        RingProducer p(ring.region);
        RingConsumer c(ring.region);
        REQUIRE(p.try_write(1000, pattern(194, 1)).has_value());  // 200 bytes
        next_frame(c);
        c.consume();
        ring.store64(256 + 200, header(1000, 100));  // 112 bytes at offset 200 of 256
        ring.store64(offsets::PRODUCER_INDEX, 200 + 200);
        reading_fails_with(c, RingError::FrameOverrun);
    }
    SUBCASE("a wrap marker at offset 0") {
        HeapRing ring(256);
        RingConsumer c(ring.region);
        ring.store64(256, detail::WRAP_WORD);
        ring.store64(offsets::PRODUCER_INDEX, 256);
        reading_fails_with(c, RingError::BadWrapMarker);
    }
    SUBCASE("a type-0 header that is not a wrap marker") {
        HeapRing ring(256);
        RingConsumer c(ring.region);
        ring.store64(256, header(0, 0));  // zeroed memory
        ring.store64(offsets::PRODUCER_INDEX, 8);
        reading_fails_with(c, RingError::BadWrapMarker);
    }
    SUBCASE("a wrap marker skipping bytes not published") {
        HeapRing ring(256);
        RingProducer p(ring.region);
        RingConsumer c(ring.region);
        REQUIRE(p.try_write(1000, pattern(10, 1)).has_value());  // 16 bytes
        next_frame(c);
        c.consume();
        ring.store64(256 + 16, detail::WRAP_WORD);
        ring.store64(offsets::PRODUCER_INDEX, 16 + 8);  // the skip is 240 bytes
        reading_fails_with(c, RingError::BadWrapMarker);
    }
    SUBCASE("an application type the contracts do not know, or the wrong size") {
        HeapRing ring(256);
        RingConsumer c(ring.region, ConsumerOptions{.type_sizes = codec::TypeSizes::of(two_types)});
        ring.store64(256, header(1000, 8));
        ring.store64(256 + 16, header(1001, 8));
        ring.store64(offsets::PRODUCER_INDEX, 32);
        CHECK(next_frame(c).type_id == 1000);
        c.consume();
        reading_fails_with(c, RingError::SizeMismatch);

        HeapRing ring2(256);
        RingConsumer c2(ring2.region, ConsumerOptions{.type_sizes = codec::TypeSizes::of(two_types)});
        ring2.store64(256, header(5, 3));  // a control frame: only the limit applies
        ring2.store64(256 + 16, header(4242, 8));
        ring2.store64(offsets::PRODUCER_INDEX, 32);
        CHECK(next_frame(c2).type_id == 5);
        c2.consume();
        reading_fails_with(c2, RingError::UnknownType);
    }
}

TEST_CASE("a hostile consumer index poisons the producer" * doctest::timeout(10)) {
    SUBCASE("ahead of what was published") {
        HeapRing ring(64);
        RingProducer p(ring.region);
        const auto p26 = pattern(26, 1);
        REQUIRE(p.try_write(1000, p26).has_value());
        REQUIRE(p.try_write(1000, p26).has_value());  // full
        ring.store64(offsets::CONSUMER_INDEX, 128);
        auto r = p.try_write(1000, p26);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == WriteError::Corrupt);
        REQUIRE(p.failure() != nullptr);
        CHECK(p.failure()->error == RingError::BadConsumerIndex);
        CHECK(p.try_write(1000, {}).error() == WriteError::Corrupt);
        CHECK(p.wait_for_space(8, 1s) == RingWait::Ready);  // so the caller sees Corrupt
    }
    SUBCASE("not a multiple of 8") {
        HeapRing ring(64);
        RingProducer p(ring.region);
        const auto p26 = pattern(26, 1);
        REQUIRE(p.try_write(1000, p26).has_value());
        REQUIRE(p.try_write(1000, p26).has_value());
        ring.store64(offsets::CONSUMER_INDEX, 4);
        CHECK(p.try_write(1000, p26).error() == WriteError::Corrupt);
    }
    SUBCASE("moving backwards") {
        HeapRing ring(64);
        RingProducer p(ring.region);
        RingConsumer c(ring.region);
        const auto p26 = pattern(26, 1);
        REQUIRE(p.try_write(1000, p26).has_value());
        REQUIRE(p.try_write(1000, p26).has_value());
        next_frame(c);
        c.consume();
        REQUIRE(p.try_write(1000, p26).has_value());  // sees consumer index 32
        ring.store64(offsets::CONSUMER_INDEX, 0);
        CHECK(p.try_write(1000, p26).error() == WriteError::Corrupt);
    }
    SUBCASE("inconsistent indices at construction") {
        HeapRing ring(64);
        ring.store64(offsets::PRODUCER_INDEX, 1000);
        RingProducer p(ring.region);
        REQUIRE(p.failure() != nullptr);
        CHECK(p.try_write(1000, {}).error() == WriteError::Corrupt);
    }
}

TEST_CASE("random bytes in the header and frames are rejected cleanly (fuzz)" * doctest::timeout(120)) {
    // MYC_SHM_FUZZ_SEEDS=<n> for a longer run (e.g. once under ASan+UBSan).
    const char* env_seeds = std::getenv("MYC_SHM_FUZZ_SEEDS");
    const int seeds = env_seeds != nullptr ? std::atoi(env_seeds) : SANITIZED ? 20000 : 50000;
    std::uint64_t frames_seen = 0, errors_seen = 0, attach_errors = 0;
    for (int seed = 0; seed < seeds; ++seed) {
        CAPTURE(seed);
        std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
        const std::size_t capacity = std::size_t{64} << (rng() % 7);  // 64 .. 4096
        HeapRing ring(capacity);
        const std::size_t max = ring_max_payload(capacity);
        {  // legitimate traffic first, so that indices and frames are somewhere mid-ring
            RingProducer p(ring.region);
            RingConsumer c(ring.region);
            const int n = static_cast<int>(rng() % 40);
            for (int i = 0; i < n; ++i) {
                const std::size_t len = rng() % std::min<std::size_t>(max + 1, 120);
                if (!p.try_write(static_cast<std::uint16_t>(1 + rng() % 2000), pattern(len, rng())))
                    (void)c.read_batch([](const FrameView&) {});
                if (rng() % 2) (void)c.read_batch([](const FrameView&) {}, rng() % 3);
            }
        }
        auto rand_u64 = [&] { return rng(); };
        switch (rng() % 5) {
            case 0:  // a few random bytes anywhere
                for (int k = 1 + static_cast<int>(rng() % 8); k > 0; --k) {
                    const std::size_t at = rng() % ring.size;
                    const std::size_t len = std::min<std::size_t>(1 + rng() % 16, ring.size - at);
                    for (std::size_t i = 0; i < len; ++i) ring.memory[at + i] = static_cast<std::byte>(rng());
                }
                break;
            case 1: {  // a plausible producer index: aligned, near the consumer
                const std::uint64_t c = ring.load64(offsets::CONSUMER_INDEX);
                ring.store64(offsets::PRODUCER_INDEX, c + 8 * (rng() % (capacity / 8 + 3)));
                break;
            }
            case 2:  // random frame headers at aligned offsets, and a plausible index
                for (int k = 1 + static_cast<int>(rng() % 6); k > 0; --k) {
                    const std::size_t at = RING_HEADER_SIZE + 8 * (rng() % (capacity / 8));
                    std::uint64_t w = rand_u64();
                    if (rng() % 2) w &= 0xffffffull << 16 | 0xffff;  // short lengths
                    if (rng() % 4 == 0) w = detail::WRAP_WORD;
                    ring.store64(at, w);
                }
                ring.store64(offsets::PRODUCER_INDEX,
                             ring.load64(offsets::CONSUMER_INDEX) + 8 * (rng() % (capacity / 8 + 1)));
                break;
            case 3:  // random indices
                ring.store64(offsets::PRODUCER_INDEX, rand_u64());
                ring.store64(offsets::CONSUMER_INDEX, rng() % 2 ? rand_u64() : rand_u64() & ~7ull);
                break;
            default:  // everything random
                for (std::size_t i = 0; i < ring.size; ++i) ring.memory[i] = static_cast<std::byte>(rng());
                break;
        }
        // attach either accepts the header or rejects it with a reason.
        auto attached = RingRegion::attach(ring.bytes(), test_digest());
        if (!attached) {
            ++attach_errors;
            CHECK_FALSE(to_string(attached.error()).empty());
        } else {
            CHECK(attached->capacity() <= ring.size - RING_HEADER_SIZE);
        }
        // A consumer that had attached before the corruption reads until empty or error.
        ConsumerOptions co;
        if (rng() % 2) co.type_sizes = codec::TypeSizes::of(two_types);
        RingConsumer c(ring.region, co);
        bool failed = false;
        for (std::size_t i = 0; i < capacity; ++i) {  // at most capacity / 8 frames exist
            auto r = c.peek();
            if (!r) {
                REQUIRE(c.failure() != nullptr);
                CHECK(c.failure()->error == r.error());
                CHECK(c.peek().error() == r.error());
                CHECK_FALSE(to_string(*c.failure()).empty());
                ++errors_seen;
                failed = true;
                break;
            }
            if (!*r) break;
            const FrameView& v = **r;
            REQUIRE(inside(ring, v));
            CHECK(v.type_id != 0);
            CHECK(v.payload.size() <= c.max_payload());
            if (v.type_id >= 1000 && co.type_sizes) CHECK(two_types(v.type_id) == v.payload.size());
            ++frames_seen;
            c.consume();
        }
        if (!failed) CHECK(c.wait(0ns) != RingWait::Ready);  // a clean end: nothing left
        // A producer that had attached before writes, or reports Full/Corrupt, and never
        // writes outside the region (AddressSanitizer watches the ends).
        RingProducer p(ring.region);
        for (int i = 0; i < 8; ++i) {
            auto w = p.try_write(1000, pattern(rng() % std::min<std::size_t>(max + 1, 200), 3));
            if (!w) {
                CHECK((w.error() == WriteError::Full || w.error() == WriteError::Corrupt ||
                       w.error() == WriteError::PeerClosed));
                if (w.error() == WriteError::Corrupt) CHECK(p.failure() != nullptr);
            }
        }
    }
    MESSAGE("fuzz: ", seeds, " seeds, ", frames_seen, " frames accepted, ", errors_seen, " reader errors, ",
            attach_errors, " headers rejected at attach");
    CHECK(errors_seen > static_cast<std::uint64_t>(seeds) / 4);
    CHECK(frames_seen > 0);
}

TEST_CASE("a producer scribbling concurrently cannot make the reader leave the data area" *
          doctest::timeout(60)) {
    // The hostile side writes with relaxed atomic stores (no data race for the sanitizers:
    // the reader's loads of header words are atomic too, and it never reads payloads here).
    HeapRing ring(1024);
    std::atomic<bool> stop{false};
    std::thread scribbler([&] {
        std::mt19937_64 rng(42);
        while (!stop.load(std::memory_order_relaxed)) {
            const std::size_t word = rng() % (ring.size / 8);
            std::uint64_t v = rng();
            if (rng() % 3 == 0) v &= 0x3fffffff;  // small values: plausible indices, lengths
            if (rng() % 5 == 0) v = detail::WRAP_WORD;
            if (word * 8 == offsets::CONSUMER_INDEX) continue;
            if (word * 8 == offsets::PRODUCER_INDEX && rng() % 2) {  // often plausible: just ahead of the reader
                const std::uint64_t c = detail::word64(ring.memory + offsets::CONSUMER_INDEX).load();
                v = c + 8 * (rng() % (1024 / 8 + 2));
            }
            detail::word64(ring.memory + word * 8).store(v & (rng() % 2 ? ~0ull : ~7ull), std::memory_order_relaxed);
        }
    });
    const auto until = std::chrono::steady_clock::now() + (SANITIZED ? 1500ms : 500ms);
    std::uint64_t rounds = 0, errors = 0, frames = 0;
    while (std::chrono::steady_clock::now() < until) {
        RingConsumer c(ring.region);
        for (int i = 0; i < 256; ++i) {
            auto r = c.peek();
            if (!r) {
                ++errors;
                break;
            }
            if (!*r) continue;
            if (!inside(ring, **r)) FAIL("a view outside the data area");
            ++frames;
            c.consume();
        }
        ++rounds;
    }
    stop = true;
    scribbler.join();
    MESSAGE("scribbler: ", rounds, " reader rounds, ", frames, " frames accepted, ", errors, " errors");
    CHECK(rounds > 0);
}

}  // TEST_SUITE
