// libFuzzer target for the reading side of a shared-memory ring (RingRegion::attach and
// RingConsumer, mycelium/shm_ring.hpp): the region is memory a hostile peer writes.
//
// The input is a script. It either formats a region and then lets an honest producer
// (RingProducer) and a hostile one (raw writes to the data area, the indices and the
// header) take turns with the consumer, or it supplies the whole header itself and
// attaches. Checked throughout:
// - every frame the consumer shows lies inside the data area and within its limits;
// - an error poisons the consumer: it returns the same error from then on;
// - the read position only moves forward, by multiples of 8;
// - while nothing but the honest producer wrote, the consumer never fails and returns
//   exactly the frames written, in order (a model queue).
// ASan catches any access outside the region (an exact-size allocation).
//
// Input layout: byte 0 = options (bits 0-3 capacity 64 << n, at most 4096; bit 4 type
// table; bit 5 small payload limit; bit 6 the header comes from the input), then
// (bit 6) 256 header bytes, then operations of one byte each plus their arguments.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "mycelium/shm_ring.hpp"

namespace {

namespace shm = mycelium::shm;

// A failed check names its line: the fuzzer's report then says which invariant broke.
#define check(ok)                                                              \
    do {                                                                       \
        if (!(ok)) {                                                           \
            std::fprintf(stderr, "shm_ring_fuzz.cpp:%d: check failed: %s\n", __LINE__, #ok); \
            std::abort();                                                      \
        }                                                                      \
    } while (false)

class Input {
public:
    Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    bool empty() const { return at_ == size_; }
    std::uint8_t u8() { return at_ < size_ ? data_[at_++] : 0; }
    std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
    std::uint64_t u64() {
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= std::uint64_t{u8()} << (8 * i);
        return v;
    }
    std::span<const std::uint8_t> take(std::size_t n) {
        n = std::min(n, size_ - at_);
        const std::span<const std::uint8_t> out(data_ + at_, n);
        at_ += n;
        return out;
    }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t at_ = 0;
};

constexpr mycelium::schema::Digest digest_of() {
    mycelium::schema::Digest d{};
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::uint8_t>(i * 3 + 1);
    return d;
}
constexpr mycelium::schema::Digest DIGEST = digest_of();

std::optional<std::size_t> fuzz_table(std::uint16_t type_id) {
    switch (type_id) {
        case 1000: return 16;
        case 1001: return 40;
        case 1002: return 0;
        default: return std::nullopt;
    }
}
const auto TABLE = [](std::uint16_t type_id) { return fuzz_table(type_id); };

struct Region {
    explicit Region(std::size_t bytes) : size(bytes), base(static_cast<std::byte*>(std::aligned_alloc(64, bytes))) {
        std::memset(base, 0, size);
    }
    ~Region() { std::free(base); }
    Region(const Region&) = delete;
    Region& operator=(const Region&) = delete;
    std::size_t size;
    std::byte* base;
};

struct Written {
    std::uint16_t type_id;
    std::vector<std::byte> payload;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Input in(data, size);
    const std::uint8_t options = in.u8();
    const std::size_t capacity = std::size_t{64} << std::min(options & 0x0fu, 6u);
    Region memory(shm::ring_region_size(capacity));
    const std::span<std::byte> bytes(memory.base, memory.size);

    shm::ConsumerOptions consumer_options;
    if (options & 0x10u) consumer_options.type_sizes = mycelium::codec::TypeSizes::of(TABLE);
    if (options & 0x20u) consumer_options.max_payload = 24;
    consumer_options.spin = std::chrono::nanoseconds(0);

    bool tampered = false;
    std::optional<shm::RingRegion> region;
    if (options & 0x40u) {
        // A header of the peer's making: attach must refuse anything inconsistent with the
        // memory it is given.
        const auto header = in.take(shm::RING_HEADER_SIZE);
        std::memcpy(memory.base, header.data(), header.size());
        auto attached = shm::RingRegion::attach(bytes, DIGEST, (options & 0x80u) ? capacity : 0);
        if (!attached) {
            (void)shm::to_string(attached.error());
            return 0;
        }
        check(attached->base() == memory.base && attached->capacity() <= capacity);
        check(shm::valid_ring_capacity(attached->capacity()));
        region = *attached;
        tampered = true;
    } else {
        auto formatted = shm::RingRegion::format(bytes, capacity, DIGEST);
        check(static_cast<bool>(formatted));
        check(static_cast<bool>(shm::RingRegion::attach(bytes, DIGEST, capacity)));
        region = *formatted;
    }
    const std::size_t cap = region->capacity();
    const std::byte* const data_begin = region->data();
    const std::byte* const data_end = data_begin + cap;

    shm::RingConsumer consumer(*region, consumer_options);
    std::optional<shm::RingProducer> producer;
    if (!tampered) producer.emplace(*region);
    std::deque<Written> model;  // frames published by the honest producer, not yet read
    std::optional<shm::RingError> poisoned;
    std::uint64_t position = consumer.read_position();

    // Checks one frame the consumer shows; pops it from the model when nobody tampered.
    const auto seen = [&](const shm::FrameView& frame) {
        check(frame.type_id != shm::WRAP_TYPE_ID);
        check(frame.payload.size() <= consumer.max_payload());
        check(frame.payload.data() >= data_begin && frame.payload.data() + frame.payload.size() <= data_end);
        if (consumer_options.type_sizes && frame.type_id >= mycelium::schema::MIN_APP_TYPE_ID) {
            const auto want = fuzz_table(frame.type_id);
            check(want && *want == frame.payload.size());
        }
        if (tampered) return;
        check(!model.empty());
        const Written& w = model.front();
        check(w.type_id == frame.type_id && w.payload.size() == frame.payload.size() &&
              std::equal(w.payload.begin(), w.payload.end(), frame.payload.begin()));
        model.pop_front();
    };
    const auto after = [&](bool ok, shm::RingError error) {
        if (poisoned) check(!ok && error == *poisoned);
        if (!ok) {
            check(tampered);  // an honest producer never breaks the ring...
            poisoned = error;
            check(consumer.failure() != nullptr && consumer.failure()->error == error);
        }
        check(consumer.read_position() >= position && consumer.read_position() % shm::FRAME_ALIGN == 0);
        position = consumer.read_position();
    };
    // ...unless a hostile write came first: from then on errors are expected.
    const auto tamper = [&] {
        tampered = true;
        model.clear();
    };

    std::size_t ops = 0;
    while (!in.empty() && ++ops < 256) {
        switch (in.u8() % 8) {
            case 0: {  // the honest producer writes and publishes one frame
                if (!producer) break;
                const std::uint8_t kind = in.u8();
                const std::uint16_t type_id =
                    kind < 0x40 ? static_cast<std::uint16_t>(1 + kind % 20) : static_cast<std::uint16_t>(1000 + kind % 3);
                std::size_t length = in.u8();
                if (type_id >= 1000 && consumer_options.type_sizes) length = *fuzz_table(type_id);
                std::vector<std::byte> payload(length);
                for (std::size_t i = 0; i < length; ++i) payload[i] = static_cast<std::byte>(i * 7 + kind);
                const bool fits_limits = length <= consumer.max_payload() &&
                                         (!consumer_options.type_sizes || type_id < 1000 || fuzz_table(type_id));
                const auto written = producer->try_write(type_id, payload);
                if (written) {
                    if (!fits_limits) tamper();  // a frame the consumer must refuse: not a model case
                    if (!tampered) model.push_back({type_id, std::move(payload)});
                }
                break;
            }
            case 1: {  // a hostile write of 8 bytes anywhere in the data area
                const std::size_t offset = in.u16() % (cap - 7);
                const auto word = in.take(8);
                std::memcpy(memory.base + shm::RING_HEADER_SIZE + offset, word.data(), word.size());
                tamper();
                break;
            }
            case 2: {  // a hostile producer index (near the consumer's, or anything)
                const std::uint8_t how = in.u8();
                const std::uint64_t value = how & 1u ? in.u64() : consumer.read_position() + 8 * (in.u8() % 64);
                std::memcpy(memory.base + shm::offsets::PRODUCER_INDEX, &value, sizeof value);
                producer.reset();
                tamper();
                break;
            }
            case 3: {  // a hostile header word: closed flags, the consumer index, reserved bytes
                const std::size_t offset = 8 * (in.u8() % (shm::RING_HEADER_SIZE / 8));
                if (offset == shm::offsets::PRODUCER_INDEX) break;
                const std::uint64_t value = in.u64();
                std::memcpy(memory.base + offset, &value, sizeof value);
                tamper();
                break;
            }
            case 4: {  // peek, then maybe consume
                auto next = consumer.peek();
                after(static_cast<bool>(next), next ? shm::RingError{} : next.error());
                if (!next || !*next) break;
                const shm::FrameView frame = **next;
                if (in.u8() & 1u) {
                    // Peeking again shows the same frame (no tampering in between).
                    auto again = consumer.peek();
                    check(again && *again && (*again)->type_id == frame.type_id &&
                          (*again)->payload.data() == frame.payload.data());
                }
                seen(frame);
                consumer.consume();
                after(true, {});
                break;
            }
            case 5: {  // a batch
                const std::size_t max = 1 + in.u8() % 8;
                std::size_t visited = 0;
                auto read = consumer.read_batch([&](const shm::FrameView& frame) {
                    ++visited;
                    seen(frame);
                }, max);
                after(static_cast<bool>(read), read ? shm::RingError{} : read.error());
                if (read) check(*read == visited && visited <= max);
                break;
            }
            case 6:  // the producer closes (honestly); the consumer may still read what is left
                if (producer) producer->close();
                check(tampered || !producer || consumer.producer_closed());  // a hostile write may clear the flag
                break;
            case 7: {  // a park attempt (never waits: no doorbell, spin 0)
                if (consumer.begin_park()) consumer.end_park();
                (void)consumer.wait(std::chrono::nanoseconds(0));
                break;
            }
        }
    }
    // Drain: with an honest producer, everything written comes out.
    for (int i = 0; i < 1024; ++i) {
        auto next = consumer.peek();
        after(static_cast<bool>(next), next ? shm::RingError{} : next.error());
        if (!next || !*next) break;
        seen(**next);
        consumer.consume();
    }
    if (!tampered && !poisoned) check(model.empty());
    if (consumer.failure() != nullptr) (void)shm::to_string(*consumer.failure());
    return 0;
}
