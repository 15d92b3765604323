#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "mycelium/packed_layout.hpp"

using namespace mycelium::schema;

namespace {

// u64, u32, u64, u64: 28 bytes packed as Mycelium's Python writes it, 32 in C (four
// bytes of padding after `qty`); a String keeps its own inner layout either way.
const char* PADDED_YAML =
    "messages:\n"
    "  Fill:\n"
    "    tlv_type: 1200\n"
    "    fields:\n"
    "      order_id: { type: u64 }\n"
    "      qty: { type: u32 }\n"
    "      price: { type: u64 }\n"
    "      ts: { type: u64 }\n"
    "  Flags:\n"
    "    tlv_type: 1201\n"
    "    fields:\n"
    "      a: { type: u8 }\n"
    "      b: { type: u16 }\n"
    "      note: { type: String, validation: [ { max_length: 5 } ] }\n"
    "      c: { type: u8 }\n"
    "  Plain:\n"
    "    tlv_type: 1202\n"
    "    fields:\n"
    "      x: { type: u64 }\n"
    "      y: { type: u64 }\n";

template <class T>
void put(std::vector<std::byte>& out, std::size_t at, T value) {
    std::memcpy(out.data() + at, &value, sizeof value);
}

}  // namespace

TEST_SUITE("schema") {

TEST_CASE("a padded type has a packed layout without its padding, an unpadded type none") {
    const Registry r = Registry::load_string(PADDED_YAML, "padded.yaml");
    const PackedLayouts layouts(r);
    REQUIRE(layouts.find(1200) != nullptr);
    CHECK(layouts.find(1200)->c_size() == 32);
    CHECK(layouts.find(1200)->packed_size() == 28);
    CHECK(layouts.find(1202) == nullptr);  // no padding: one encoding
    CHECK(layouts.find(4242) == nullptr);  // not in the contracts
    const PackedLayout* flags = layouts.find(1201);
    REQUIRE(flags != nullptr);
    std::size_t sum = 0;
    for (const Field& f : r.find(1201)->fields) sum += f.size;
    CHECK(flags->packed_size() == sum);
    CHECK(flags->c_size() == r.find(1201)->size);
}

TEST_CASE("packed and C encodings convert both ways, padding zeroed") {
    const Registry r = Registry::load_string(PADDED_YAML, "padded.yaml");
    const PackedLayouts layouts(r);
    const PackedLayout& fill = *layouts.find(1200);

    std::vector<std::byte> packed(28);
    put<std::uint64_t>(packed, 0, 0x1111111111111111ull);
    put<std::uint32_t>(packed, 8, 0x22222222u);
    put<std::uint64_t>(packed, 12, 0x3333333333333333ull);
    put<std::uint64_t>(packed, 20, 0x4444444444444444ull);

    std::vector<std::byte> c(32, std::byte{0xEE});  // garbage where the padding goes
    fill.to_c(packed, c);
    std::vector<std::byte> expected(32);
    put<std::uint64_t>(expected, 0, 0x1111111111111111ull);
    put<std::uint32_t>(expected, 8, 0x22222222u);
    put<std::uint64_t>(expected, 16, 0x3333333333333333ull);
    put<std::uint64_t>(expected, 24, 0x4444444444444444ull);
    CHECK(c == expected);

    std::vector<std::byte> back(28);
    fill.to_packed(c, back);
    CHECK(back == packed);
}

}  // TEST_SUITE
