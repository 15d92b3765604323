// Control-frame payloads: every encoder against the bytes docs/wire-protocol.md shows,
// and every decoder against its bad inputs.

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "mycelium/codec.hpp"
#include "mycelium/link_protocol.hpp"

using namespace mycelium::link;

namespace {

std::vector<std::byte> bytes(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (const int v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}

std::vector<std::byte> frame(std::uint16_t type_id, const std::vector<std::byte>& payload) {
    std::vector<std::byte> out;
    REQUIRE(mycelium::codec::append_frame(out, type_id, payload));
    return out;
}

}  // namespace

TEST_SUITE("transport.protocol") {
    TEST_CASE("control frames encode to the bytes of the wire document") {
        // docs/wire-protocol.md, "Control frames": each example is checked here.
        CHECK(frame(control::HELLO, encode_hello({1, Role::Client, "tap"})) ==
              bytes({0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00, 't', 'a', 'p'}));
        CHECK(frame(control::HELLO, encode_hello({1, Role::Peer, "risk"})) ==
              bytes({0x02, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x01, 0x04, 0x00, 'r', 'i', 's', 'k'}));
        const std::uint16_t ids[] = {1001, 1002};
        CHECK(frame(control::SUBSCRIBE, encode_type_list(ids)) ==
              bytes({0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0xe9, 0x03, 0xea, 0x03}));
        CHECK(frame(control::UNSUBSCRIBE, encode_type_list(std::span(ids, 1))) ==
              bytes({0x04, 0x00, 0x02, 0x00, 0x00, 0x00, 0xe9, 0x03}));
        CHECK(frame(control::PING, encode_nonce(0x0102030405060708ull)) ==
              bytes({0x05, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}));
        CHECK(frame(control::PONG, encode_nonce(42)) ==
              bytes({0x06, 0x00, 0x08, 0x00, 0x00, 0x00, 0x2a, 0, 0, 0, 0, 0, 0, 0}));
        CHECK(frame(control::ERROR, encode_error(ErrorCode::DigestMismatch, "bad digest")) ==
              bytes({0x01, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x02, 0x00, 'b', 'a', 'd', ' ', 'd', 'i', 'g', 'e', 's', 't'}));
    }

    TEST_CASE("control payloads decode back to what was encoded") {
        const auto hello = decode_hello(encode_hello({1, Role::Peer, "node-a"}));
        REQUIRE(hello);
        CHECK(hello->version == 1);
        CHECK(hello->role == Role::Peer);
        CHECK(hello->name == "node-a");

        const std::uint16_t ids[] = {1000, 65535};
        const auto list = decode_type_list(encode_type_list(ids));
        REQUIRE(list);
        CHECK(*list == std::vector<std::uint16_t>{1000, 65535});

        const auto nonce = decode_nonce(encode_nonce(0xdeadbeefcafef00dull));
        REQUIRE(nonce);
        CHECK(*nonce == 0xdeadbeefcafef00dull);

        const auto error = decode_error(encode_error(ErrorCode::SlowConsumer, "too slow"));
        REQUIRE(error);
        CHECK(error->code == ErrorCode::SlowConsumer);
        CHECK(error->reason == "too slow");
    }

    TEST_CASE("malformed control payloads are refused with the exact error") {
        CHECK(decode_hello(bytes({1, 0, 5})).error() == ControlError::BadLength);
        CHECK(decode_hello(bytes({1, 0, 5, 0, 'a'})).error() == ControlError::BadLength);
        CHECK(decode_hello(bytes({1, 2, 1, 0, 'a'})).error() == ControlError::BadValue);
        CHECK(decode_hello(bytes({1, 0, 0, 0})).error() == ControlError::BadValue);
        CHECK(decode_hello(bytes({1, 0, 2, 0, 'a', '\n'})).error() == ControlError::BadValue);
        // Not UTF-8: it would make /metrics and the JSON log invalid.
        CHECK(decode_hello(bytes({1, 0, 2, 0, 0xff, 0xfe})).error() == ControlError::BadValue);
        CHECK(decode_hello(bytes({1, 0, 2, 0, 0xc3, 0x28})).error() == ControlError::BadValue);
        CHECK(decode_hello(bytes({1, 0, 2, 0, 0xc3, 0xa9})));  // "é" is a name
        CHECK(decode_hello(bytes({1, 0, 1, 0, 'a', 0xff, 0xff})));  // trailing bytes: reserved, ignored
        CHECK(decode_type_list(bytes({0xe9, 0x03, 0xea})).error() == ControlError::BadLength);
        CHECK(decode_nonce(bytes({1, 2, 3, 4, 5, 6, 7})).error() == ControlError::BadLength);
        CHECK(decode_nonce(bytes({1, 2, 3, 4, 5, 6, 7, 8, 9})).error() == ControlError::BadLength);
        CHECK(decode_error(bytes({1})).error() == ControlError::BadLength);
        CHECK_THROWS_AS((void)encode_hello({1, Role::Client, ""}), std::invalid_argument);
        CHECK_THROWS_AS((void)encode_hello({1, Role::Client, std::string(256, 'x')}), std::invalid_argument);
    }

    TEST_CASE("shared-memory setup frames encode to the bytes of the wire document") {
        // docs/wire-protocol.md, "Shared-memory setup": each example is checked here.
        CHECK(frame(control::SHM_REQUEST, encode_shm_request({1, 0, 0})) ==
              bytes({0x10, 0x00, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00}));
        CHECK(frame(control::SHM_REQUEST, encode_shm_request({1, 0, 65536})) ==
              bytes({0x10, 0x00, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00}));
        CHECK(frame(control::SHM_OFFER, encode_shm_offer({1, 0, 4, 1u << 20, 1u << 20})) ==
              bytes({0x11, 0x00, 0x14, 0x00, 0x00, 0x00, 0x01, 0x00, 0x04, 0x00,  //
                     0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,              //
                     0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00}));
        CHECK(frame(control::SHM_REFUSE, encode_shm_refuse(ShmRefusal::Disabled, "off")) ==
              bytes({0x12, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 'o', 'f', 'f'}));
        CHECK(frame(control::SHM_READY, {}) == bytes({0x13, 0x00, 0x00, 0x00, 0x00, 0x00}));
        CHECK(frame(control::SHM_SWITCH, {}) == bytes({0x14, 0x00, 0x00, 0x00, 0x00, 0x00}));
        CHECK(frame(control::ERROR, encode_error(ErrorCode::ShmCorrupt, "ring")) ==
              bytes({0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x0c, 0x00, 'r', 'i', 'n', 'g'}));
    }

    TEST_CASE("shared-memory setup payloads decode back, and bad ones are refused") {
        const auto request = decode_shm_request(encode_shm_request({1, 0, 4096}));
        REQUIRE(request);
        CHECK(request->version == 1);
        CHECK(request->capacity == 4096);
        const auto offer = decode_shm_offer(encode_shm_offer({1, 0, 4, 4096, 1u << 30}));
        REQUIRE(offer);
        CHECK(offer->fd_count == 4);
        CHECK(offer->client_to_host == 4096);
        CHECK(offer->host_to_client == (1u << 30));
        const auto refuse = decode_shm_refuse(encode_shm_refuse(ShmRefusal::NotLocal, "tcp"));
        REQUIRE(refuse);
        CHECK(refuse->reason == ShmRefusal::NotLocal);
        CHECK(refuse->text == "tcp");
        CHECK(to_string(ShmRefusal::NoMemory) == "no_memory");
        CHECK(to_string(ErrorCode::ShmCorrupt) == "shm_corrupt");

        CHECK(decode_shm_request(bytes({1, 0, 0, 0, 0})).error() == ControlError::BadLength);
        CHECK(decode_shm_offer(bytes({1, 0, 4, 0, 0, 0, 0})).error() == ControlError::BadLength);
        CHECK(decode_shm_refuse(bytes({1})).error() == ControlError::BadLength);
        CHECK(decode_empty(bytes({0})).error() == ControlError::BadLength);
        CHECK(decode_empty({}));
    }

    TEST_CASE("an ERROR reason is cut at a character boundary") {
        std::string reason(control::MAX_REASON_BYTES - 1, 'a');
        reason += "\xc3\xa9";  // a two-byte character straddling the limit
        const auto payload = encode_error(ErrorCode::ProtocolViolation, reason);
        CHECK(payload.size() == 2 + control::MAX_REASON_BYTES - 1);
    }
}
