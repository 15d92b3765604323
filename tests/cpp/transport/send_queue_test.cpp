// SendQueue (host/src/transport/send_queue.hpp): limits, DropOldest's dead prefix, and
// taking everything for one write.

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "send_queue.hpp"
#include "mycelium/codec.hpp"

using mycelium::link::detail::SendQueue;
namespace codec = mycelium::codec;

namespace {

std::vector<std::byte> payload(std::size_t size, std::uint8_t fill) {
    return std::vector<std::byte>(size, std::byte{fill});
}

/// The frames in an encoded buffer, as (type, first payload byte).
std::vector<std::pair<std::uint16_t, std::uint8_t>> frames_in(const std::vector<std::byte>& bytes) {
    std::vector<std::pair<std::uint16_t, std::uint8_t>> out;
    for (std::size_t at = 0; at < bytes.size();) {
        const codec::FrameHeader h = codec::detail::read_header(bytes.data() + at);
        const auto first = h.payload_length ? std::to_integer<std::uint8_t>(bytes[at + codec::HEADER_SIZE]) : 0;
        out.emplace_back(h.type_id, first);
        at += codec::frame_size(h.payload_length);
    }
    return out;
}

}  // namespace

TEST_SUITE("transport.protocol") {
    TEST_CASE("a send queue is full at its frame limit or its byte limit, headers counted") {
        SendQueue frames_bound({2, 1 << 20});
        CHECK(frames_bound.fits(8));
        frames_bound.push(100, payload(8, 1));
        frames_bound.push(100, payload(8, 2));
        CHECK_FALSE(frames_bound.fits(0));

        SendQueue bytes_bound({100, 2 * codec::frame_size(10)});
        bytes_bound.push(100, payload(10, 1));
        CHECK(bytes_bound.fits(10));
        CHECK_FALSE(bytes_bound.fits(11));
        CHECK(bytes_bound.bytes() == codec::frame_size(10));
    }

    TEST_CASE("take hands over every frame in order, once, and leaves the queue empty") {
        SendQueue queue({100, 1 << 20});
        std::vector<std::byte> out = payload(3, 9);  // old contents are dropped
        CHECK(queue.take(out) == 0);
        CHECK(out.empty());
        for (std::uint8_t i = 1; i <= 3; ++i) queue.push(100 + i, payload(4, i));
        CHECK(queue.take(out) == 3);
        CHECK(frames_in(out) == std::vector<std::pair<std::uint16_t, std::uint8_t>>{{101, 1}, {102, 2}, {103, 3}});
        CHECK(queue.empty());
        CHECK(queue.bytes() == 0);
        CHECK(queue.take(out) == 0);
    }

    TEST_CASE("dropped frames never leave, however long the queue keeps growing behind them") {
        SendQueue queue({1000, 1 << 20});
        CHECK_FALSE(queue.drop_oldest());
        // A reader that never drains: drop one, push one, far past the compaction threshold.
        std::uint8_t next = 0;
        for (int i = 0; i < 10; ++i) queue.push(200, payload(1000, next++));
        for (int i = 0; i < 5000; ++i) {
            REQUIRE(queue.drop_oldest());
            queue.push(200, payload(1000, next++));
        }
        CHECK(queue.frames() == 10);
        CHECK(queue.bytes() == 10 * codec::frame_size(1000));
        std::vector<std::byte> out;
        REQUIRE(queue.take(out) == 10);
        const auto taken = frames_in(out);
        REQUIRE(taken.size() == 10);
        for (std::size_t i = 0; i < taken.size(); ++i)
            CHECK(taken[i].second == static_cast<std::uint8_t>(next - 10 + i));
    }

    TEST_CASE("the room probe keeps an eighth of each limit free") {
        SendQueue queue({64, 1 << 20});
        CHECK(queue.has_room_for(1));
        for (int i = 0; i < 55; ++i) queue.push(100, payload(1, 0));
        CHECK(queue.has_room_for(1));       // 55 + 1 + 8 <= 64
        queue.push(100, payload(1, 0));
        CHECK_FALSE(queue.has_room_for(1));  // 56 + 1 + 8 > 64
        queue.clear(true);
        CHECK(queue.empty());
        CHECK(queue.has_room_for(1));
    }
}
