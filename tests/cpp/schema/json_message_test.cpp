// mycelium/json_message.hpp: the JSON of tap (to_json) and pub (from_json) for U256,
// [u8; N], Vec<[u8; N]>, arrays of arrays and U256 elements, in pairs of success and
// failure with the exact error text; and how to_json marks a payload that breaks its
// schema. Fixture: contracts/valid/inhost_types.yaml.

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "mycelium/json_message.hpp"
#include "mycelium/schema.hpp"
#include "mycelium/unaligned.hpp"

using namespace mycelium;
namespace fs = std::filesystem;

namespace {

const schema::Registry& registry() {
    static const schema::Registry r = schema::Registry::load_file(fs::path(MYCELIUM_FIXTURES_DIR) / "contracts" /
                                                                  "valid" / "inhost_types.yaml");
    return r;
}

const schema::MessageSchema& message(const char* name) {
    const auto* m = registry().find(name);
    REQUIRE(m != nullptr);
    return *m;
}

const schema::Field& field(const schema::MessageSchema& m, const char* name) {
    const auto* f = m.find_field(name);
    REQUIRE(f != nullptr);
    return *f;
}

std::vector<std::byte> json_should_encode(const char* type, const std::string& json) {
    auto payload = json_message::from_json(message(type), json);
    if (!payload) FAIL("unexpected error: " << payload.error());
    return *payload;
}

std::string json_should_fail(const char* type, const std::string& json) {
    auto payload = json_message::from_json(message(type), json);
    REQUIRE_FALSE(payload);
    return payload.error();
}

/// The bytes of a field in a payload.
std::vector<std::uint8_t> bytes_at(const std::vector<std::byte>& payload, std::size_t offset, std::size_t n) {
    std::vector<std::uint8_t> out(n);
    std::memcpy(out.data(), payload.data() + offset, n);
    return out;
}

std::string repeat(const std::string& s, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

/// Overwrites a String or Vec field's length prefix and, for a String, its bytes.
void put_string(std::vector<std::byte>& payload, const schema::Field& f, std::uint16_t length,
                const std::string& bytes = {}) {
    store_unaligned(payload.data() + f.offset, length);
    std::memcpy(payload.data() + f.offset + schema::FIXED_HEADER_SIZE, bytes.data(), bytes.size());
}

/// 2**256 - 1, the largest U256.
const std::string U256_MAX = "115792089237316195423570985008687907853269984665640564039457584007913129639935";

}  // namespace

TEST_SUITE("schema.json") {

TEST_CASE("a U256 is read from decimal, 0x-hex and a JSON integer, stored big-endian, printed as decimal") {
    const auto& m = message("PoolState");
    const auto& reserve = field(m, "reserve");
    for (const std::string& value : {std::string("\"258\""), std::string("258"), std::string("\"0x102\""),
                                     std::string("\"0X0102\"")}) {
        const auto payload = json_should_encode("PoolState", "{\"reserve\": " + value + "}");
        std::vector<std::uint8_t> expected(32);
        expected[30] = 1;
        expected[31] = 2;
        CHECK_MESSAGE(bytes_at(payload, reserve.offset, 32) == expected, value);
        CHECK(json_message::to_json(m, payload).json.find("\"reserve\": \"258\"") != std::string::npos);
    }
    const auto zero = json_should_encode("PoolState", "{}");
    CHECK(json_message::to_json(m, zero).json.find("\"reserve\": \"0\"") != std::string::npos);

    const auto max = json_should_encode("PoolState", "{\"reserve\": " + U256_MAX + "}");
    CHECK(bytes_at(max, reserve.offset, 32) == std::vector<std::uint8_t>(32, 0xff));
    CHECK(json_message::to_json(m, max).json.find("\"reserve\": \"" + U256_MAX + "\"") != std::string::npos);
    const auto max_hex = json_should_encode("PoolState", "{\"reserve\": \"0x" + repeat("fF", 32) + "\"}");
    CHECK(max_hex == max);
}

TEST_CASE("a U256 out of range or of the wrong kind is an error naming the message and the field") {
    const std::string too_big = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
    CHECK(json_should_fail("PoolState", "{\"reserve\": \"" + too_big + "\"}") ==
          "PoolState.reserve: '" + too_big + "' is above the largest U256 (2**256-1)");
    CHECK(json_should_fail("PoolState", "{\"reserve\": " + too_big + "}") ==
          "PoolState.reserve: '" + too_big + "' is above the largest U256 (2**256-1)");
    CHECK(json_should_fail("PoolState", "{\"reserve\": \"0x1" + repeat("00", 32) + "\"}") ==
          "PoolState.reserve: '0x1" + repeat("00", 32) + "' is above the largest U256 (2**256-1)");
    CHECK(json_should_fail("PoolState", R"({"reserve": -1})") ==
          "PoolState.reserve: '-1' is not a U256 (decimal or 0x-hex, 0 to 2**256-1)");
    CHECK(json_should_fail("PoolState", R"({"reserve": 1.5})") ==
          "PoolState.reserve: '1.5' is not a U256 (decimal or 0x-hex, 0 to 2**256-1)");
    CHECK(json_should_fail("PoolState", R"({"reserve": "12a"})") ==
          "PoolState.reserve: '12a' is not a U256 (decimal or 0x-hex, 0 to 2**256-1)");
    CHECK(json_should_fail("PoolState", R"({"reserve": "0x"})") ==
          "PoolState.reserve: '0x' is not a U256 (decimal or 0x-hex, 0 to 2**256-1)");
    CHECK(json_should_fail("PoolState", R"({"reserve": true})") ==
          "PoolState.reserve: expected a U256 as an integer, a decimal string or a 0x-hex string");
}

TEST_CASE("[u8; N] is printed as 0x-hex and read from hex or, as before, an array of numbers") {
    const auto& m = message("PoolState");
    const std::string hex = "00112233445566778899aabbccddeeff01020304";
    const auto payload = json_should_encode("PoolState", "{\"pool\": \"0x" + hex + "\"}");
    CHECK(bytes_at(payload, field(m, "pool").offset, 3) == std::vector<std::uint8_t>{0x00, 0x11, 0x22});
    CHECK(json_message::to_json(m, payload).json.starts_with("{\"pool\": \"0x" + hex + "\""));
    CHECK(json_should_encode("PoolState", "{\"pool\": \"" + hex + "\"}") == payload);
    CHECK(json_should_encode("PoolState", "{\"pool\": \"0x00112233445566778899AABBCCDDEEFF01020304\"}") == payload);
    CHECK(json_should_encode("PoolState", "{\"pool\": [0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 170, 187, 204, "
                                          "221, 238, 255, 1, 2, 3, 4]}") == payload);

    CHECK(json_should_fail("PoolState", R"({"pool": "0x0011"})") ==
          "PoolState.pool: expected 20 bytes (40 hex digits), got 4 hex digits");
    CHECK(json_should_fail("PoolState", "{\"pool\": \"0x" + repeat("zz", 20) + "\"}") ==
          "PoolState.pool: '0x" + repeat("zz", 20) + "' is not hex");
    CHECK(json_should_fail("PoolState", R"({"pool": [1, 2]})") == "PoolState.pool: expected 20 bytes, got 2 values");
    CHECK(json_should_fail("PoolState", "{\"pool\": [256" + repeat(", 0", 19) + "]}") ==
          "PoolState.pool[0]: '256' is not a u8");
    CHECK(json_should_fail("PoolState", R"({"pool": 7})") == "PoolState.pool: expected 20 bytes as a hex string");
}

TEST_CASE("Vec<[u8; 20]> is an array of hex strings, each element checked by index") {
    const auto& m = message("PoolState");
    const auto& hops = field(m, "hops");
    const std::string a = repeat("ab", 20);
    const std::string b = repeat("01", 20);
    const auto payload = json_should_encode("PoolState", "{\"hops\": [\"0x" + a + "\", \"" + b + "\"]}");
    CHECK(mycelium::load_unaligned<std::uint16_t>(payload.data() + hops.offset) == 2);
    CHECK(bytes_at(payload, hops.offset + 8, 1) == std::vector<std::uint8_t>{0xab});
    CHECK(bytes_at(payload, hops.offset + 8 + 20, 1) == std::vector<std::uint8_t>{0x01});
    CHECK(json_message::to_json(m, payload).json.find("\"hops\": [\"0x" + a + "\", \"0x" + b + "\"]") !=
          std::string::npos);

    CHECK(json_should_fail("PoolState", "{\"hops\": [\"0x" + a + "\", \"0x12\"]}") ==
          "PoolState.hops[1]: expected 20 bytes (40 hex digits), got 2 hex digits");
    CHECK(json_should_fail("PoolState", "{\"hops\": [" + repeat("\"" + a + "\", ", 4) + "\"" + a + "\"]}") ==
          "PoolState.hops: max_length: length 5 is above 4");
}

TEST_CASE("[[u8; 32]; 6] is an array of six hex strings; arrays of numbers are accepted per element") {
    const auto& m = message("PoolState");
    const auto& siblings = field(m, "siblings");
    std::string json = "{\"siblings\": [";
    std::string printed = "\"siblings\": [";
    for (int i = 0; i < 6; ++i) {
        const std::string h = repeat(std::string(1, "012345"[i]) + "f", 32);
        json += std::string(i == 0 ? "" : ", ") + "\"0x" + h + "\"";
        printed += std::string(i == 0 ? "" : ", ") + "\"0x" + h + "\"";
    }
    const auto payload = json_should_encode("PoolState", json + "]}");
    CHECK(bytes_at(payload, siblings.offset + 5 * 32, 2) == std::vector<std::uint8_t>{0x5f, 0x5f});
    CHECK(json_message::to_json(m, payload).json.find(printed + "]") != std::string::npos);

    const std::string numbers = "[" + repeat("1, ", 31) + "1]";
    const auto from_numbers =
        json_should_encode("PoolState", "{\"siblings\": [" + repeat(numbers + ", ", 5) + numbers + "]}");
    CHECK(bytes_at(from_numbers, siblings.offset, 32 * 6) == std::vector<std::uint8_t>(32 * 6, 1));

    CHECK(json_should_fail("PoolState", "{\"siblings\": [\"0x" + repeat("00", 32) + "\"]}") ==
          "PoolState.siblings: expected 6 values, got 1");
    CHECK(json_should_fail("PoolState", R"({"siblings": [[[1]]]})") ==
          "invalid JSON at offset 15: arrays nest at most two deep");
}

TEST_CASE("Vec<U256> and [U256; 2] are arrays of decimal strings") {
    const auto& m = message("PoolState");
    const auto payload = json_should_encode(
        "PoolState", "{\"amounts\": [1, \"0xff\", \"" + U256_MAX + "\"], \"bounds\": [\"10\", 20]}");
    CHECK(bytes_at(payload, field(m, "amounts").offset + 8 + 32 + 31, 1) == std::vector<std::uint8_t>{0xff});
    const std::string text = json_message::to_json(m, payload).json;
    CHECK(text.find("\"amounts\": [\"1\", \"255\", \"" + U256_MAX + "\"]") != std::string::npos);
    CHECK(text.find("\"bounds\": [\"10\", \"20\"]") != std::string::npos);
    CHECK(json_should_fail("PoolState", R"({"amounts": [1, -2]})") ==
          "PoolState.amounts[1]: '-2' is not a U256 (decimal or 0x-hex, 0 to 2**256-1)");
}

TEST_CASE("every field of a message survives tap's JSON read back by pub") {
    const auto& m = message("PoolState");
    const auto payload = json_should_encode(
        "PoolState",
        "{\"pool\": \"0x" + repeat("aa", 20) + "\", \"reserve\": \"12345678901234567890123456789\", \"hops\": [\"0x" +
            repeat("bb", 20) + "\"], \"siblings\": [" + repeat("\"0x" + repeat("cc", 32) + "\", ", 5) + "\"0x" +
            repeat("dd", 32) + "\"], \"amounts\": [\"7\"], \"bounds\": [\"0\", \"" + U256_MAX +
            "\"], \"class\": 3, \"weights\": [0.5, 2]}");
    const std::string text = json_message::to_json(m, payload).json;
    CHECK(json_should_encode("PoolState", text) == payload);
    CHECK(text.find("\"class\": 3") != std::string::npos);  // the contracts' name, not Python's class_
}

TEST_CASE("an f32 beyond its range is an error, not an infinity; its largest value reads back") {
    // Found by tests/fuzz/pub_json_fuzz.cpp: 1e70 became +inf, which tap prints as null.
    CHECK(json_should_fail("PoolState", "{\"weights\": [1e70]}") == "PoolState.weights[0]: '1e70' is not a f32");
    CHECK(json_should_fail("PoolState", "{\"weights\": [-3.5e38]}") == "PoolState.weights[0]: '-3.5e38' is not a f32");
    const auto& m = message("PoolState");
    const auto largest = json_should_encode("PoolState", "{\"weights\": [3.4028235e38]}");
    CHECK(json_should_encode("PoolState", json_message::to_json(m, largest).json) == largest);
}

TEST_CASE("the payload pub sends is checked by the registry's rules, with its one text") {
    const auto& m = message("OrderRules");
    const auto zero_nonce = json_should_encode("OrderRules", "{\"account\": \"ab\", \"qty\": 1, \"owner\": \"0x" +
                                                                 repeat("01", 20) + "\"}");
    auto valid = registry().validate(m, zero_nonce);
    REQUIRE_FALSE(valid);
    CHECK(valid.error().text() == "OrderRules.nonce: not_zero: must not be zero");

    const auto zero_owner = json_should_encode("OrderRules", R"({"account": "ab", "qty": 1, "nonce": "0x1"})");
    auto owner = registry().validate(m, zero_owner);
    REQUIRE_FALSE(owner);
    CHECK(owner.error().text() == "OrderRules.owner: not_zero: must not be zero");

    const auto good = json_should_encode("OrderRules", "{\"account\": \"ab\", \"qty\": 1, \"nonce\": 1, \"owner\": \"0x" +
                                                           repeat("01", 20) + "\"}");
    CHECK(registry().validate(m, good));
}

TEST_CASE("a sensitive message's values stay out of pub's errors") {
    CHECK(json_should_fail("SecretOrder", R"({"limit": 1.5})") == "SecretOrder.limit: the value is not a i64");
    CHECK(json_should_fail("SecretOrder", "{\"size\": \"1" + U256_MAX + "\"}") ==
          "SecretOrder.size: the value is above the largest U256 (2**256-1)");
    CHECK(json_should_fail("SecretOrder", R"({"size": "secret"})") ==
          "SecretOrder.size: the value is not a U256 (decimal or 0x-hex, 0 to 2**256-1)");
}

TEST_CASE("a String that is not UTF-8 is printed as its hex bytes in an object, and named") {
    const auto& m = message("OrderRules");
    auto payload = json_should_encode("OrderRules", R"({"account": "ab", "qty": 1})");
    const auto valid = json_message::to_json(m, payload);
    CHECK(valid.valid());
    CHECK(valid.json.starts_with(R"({"account": "ab", "qty": 1,)"));

    const std::pair<std::string, std::string> cases[] = {
        {"a\xff", "account: not UTF-8 at offset 1 of 2 bytes"},
        {"ab\xc3", "account: not UTF-8 at offset 2 of 3 bytes"},          // cut in the middle of a sequence
        {"\xc0\xaf", "account: not UTF-8 at offset 0 of 2 bytes"},          // overlong '/'
        {"x\xed\xa0\x80", "account: not UTF-8 at offset 1 of 4 bytes"},   // a surrogate
    };
    for (const auto& one : cases) {
        // Not a structured binding: clang 14 cannot capture one (CAPTURE is a lambda).
        const std::string& bytes = one.first;
        const std::string& entry = one.second;
        CAPTURE(entry);
        put_string(payload, field(m, "account"), static_cast<std::uint16_t>(bytes.size()), bytes);
        const auto printed = json_message::to_json(m, payload);
        CHECK(printed.invalid == std::vector<std::string>{entry});
        std::string hex = "0x";
        for (unsigned char c : bytes) hex += fmt::format("{:02x}", c);
        CHECK(printed.json.starts_with("{\"account\": {\"invalid_utf8\": \"" + hex + "\"}, \"qty\": 1,"));
    }
}

TEST_CASE("a length above the capacity is printed as the length and the capacity, not clamped") {
    const auto& m = message("OrderRules");
    auto payload = json_should_encode("OrderRules", R"({"account": "abcdefgh", "qty": 1})");
    put_string(payload, field(m, "account"), 300);
    const auto printed = json_message::to_json(m, payload);
    CHECK(printed.json.starts_with(R"({"account": {"invalid_length": 300, "capacity": 8}, "qty": 1,)"));
    CHECK(printed.invalid == std::vector<std::string>{"account: length 300 is above the capacity 8"});

    // A Vec too, and every bad field is named, in field order.
    const auto& pool = message("PoolState");
    auto state = json_should_encode("PoolState", R"({"class": 3})");
    put_string(state, field(pool, "hops"), 9);
    put_string(state, field(pool, "weights"), 5);
    const auto both = json_message::to_json(pool, state);
    CHECK(both.json.find(R"("hops": {"invalid_length": 9, "capacity": 4}, "siblings": [)") != std::string::npos);
    CHECK(both.json.ends_with(R"("class": 3, "weights": {"invalid_length": 5, "capacity": 4}})"));
    CHECK(both.invalid == std::vector<std::string>{"hops: length 9 is above the capacity 4",
                                                   "weights: length 5 is above the capacity 4"});
    // At the capacity exactly, it is valid.
    put_string(state, field(pool, "hops"), 4);
    put_string(state, field(pool, "weights"), 4);
    CHECK(json_message::to_json(pool, state).valid());
}

TEST_CASE("a payload of the wrong size is an empty object, and said") {
    const auto& m = message("OrderRules");
    const std::vector<std::byte> short_payload(3);
    const auto printed = json_message::to_json(m, short_payload);
    CHECK(printed.json == "{}");
    CHECK(printed.invalid == std::vector<std::string>{fmt::format("payload is 3 bytes, OrderRules is {}", m.size)});
}

}  // TEST_SUITE
