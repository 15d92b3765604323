// libFuzzer target for `pub --json` (json_message::from_json, then Registry::validate,
// as host/app/pub_command.cpp runs them) over the messages of a fixed contracts file
// with every field type. Differential: a payload from_json accepts must print
// (to_json, what `tap` shows) as JSON that from_json reads back to the same bytes, once
// it passes validate() as pub requires.
//
// Input layout: byte 0 picks the message, the rest is the JSON text.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mycelium/json_message.hpp"
#include "mycelium/schema.hpp"
#include "mycelium/utf8.hpp"

namespace {

// Every field kind the JSON mapping knows (json_message.hpp's table), with rules.
constexpr std::string_view CONTRACTS = R"(messages:
  Scalars:
    tlv_type: 1000
    fields:
      a_u8: u8
      a_u16: u16
      a_u32: u32
      a_u64: u64
      a_i8: i8
      a_i16: i16
      a_i32: i32
      a_i64: i64
      a_f32: f32
      a_f64: f64
      a_bool: bool
  Texts:
    tlv_type: 1001
    fields:
      name:
        type: String
        max_length: 8
        validation: {not_empty: true, no_0x_prefix: true}
      note: String
  Bytes:
    tlv_type: 1002
    fields:
      owner: "[u8; 4]"
      amount: U256
      amounts: "[U256; 2]"
      hashes: "[[u8; 3]; 2]"
      hops:
        type: Vec<[u8; 2]>
        max_length: 3
      big:
        type: Vec<U256>
        max_length: 2
  Numbers:
    tlv_type: 1003
    fields:
      weights: "[f32; 3]"
      ids:
        type: Vec<u32>
        max_length: 4
        validation: {min: 1, max: 100}
      raw: Vec<u8>
      signs: "[i8; 2]"
      flags: "[bool; 2]"
  Secret:
    tlv_type: 1004
    sensitivity: high
    fields:
      pin: {type: u16, validation: {min: 1000, not_zero: true}}
      key: "[u8; 2]"
)";

const mycelium::schema::Registry& registry() {
    static const auto r = mycelium::schema::Registry::load_string(CONTRACTS, "pub_json_fuzz.yaml");
    return r;
}

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const auto messages = registry().messages();
    const auto& m = messages[data[0] % messages.size()];
    // An exact-size copy, so that reading past the text is a heap overflow.
    const std::string json(reinterpret_cast<const char*>(data) + 1, size - 1);

    const auto payload = mycelium::json_message::from_json(m, json);
    if (!payload) {
        check(!payload.error().empty());
        return 0;
    }
    check(payload->size() == m.size);
    // pub refuses what breaks the rules (invalid UTF-8 among them) before sending it;
    // only what it would send must survive the round trip.
    if (!registry().validate(m, *payload)) return 0;
    const std::string printed = mycelium::json_message::to_json(m, *payload).json;
    check(mycelium::utf8::is_valid(printed));
    const auto again = mycelium::json_message::from_json(m, printed);
    check(again && *again == *payload);
    return 0;
}
