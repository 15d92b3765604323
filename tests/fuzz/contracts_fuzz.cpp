// libFuzzer target for the contracts parser (host/src/schema/contracts_parser.cpp and
// Registry, with yaml-cpp under it). Differential and invariants:
// - strict loading accepts a subset of what lenient loading accepts, with the same
//   messages and digest;
// - an accepted registry's layouts are consistent: every field inside its message,
//   fields in order without overlap, aligned, the message within the payload limit,
//   every message found by name and type id, the digest the SHA-256 of the text;
// - for every message, the all-zero payload validates as far as its rules allow, and
//   goes to JSON and back (json_message) to the same bytes; a payload of 0xA5 bytes
//   passes through validate() and to_json() without a crash.
//
// Input layout: the YAML text.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <vector>

#include "mycelium/json_message.hpp"
#include "mycelium/schema.hpp"

namespace {

namespace schema = mycelium::schema;

void check(bool ok) {
    if (!ok) std::abort();
}

std::optional<schema::Registry> load(std::string_view text, bool strict) {
    schema::LoadOptions options;
    options.strict = strict;
    try {
        return schema::Registry::load_string(text, "fuzz.yaml", options);
    } catch (const schema::SchemaError& e) {
        check(!e.problem().empty());
        return std::nullopt;
    }
}

void check_layout(const schema::Registry& registry, const schema::MessageSchema& m) {
    check(registry.find(m.type_id) == &m && registry.find(m.name) == &m);
    check(m.type_id >= schema::MIN_APP_TYPE_ID);
    check(m.size <= registry.max_payload() && m.align >= 1 && m.size % m.align == 0);
    std::size_t end = 0;
    for (const auto& f : m.fields) {
        check(f.offset >= end && f.align >= 1 && f.offset % f.align == 0 && m.align % f.align == 0);
        check(f.size <= m.size && f.offset <= m.size - f.size);
        check(m.find_field(f.name) == &f);
        end = f.offset + f.size;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto lenient = load(text, false);
    const auto strict = load(text, true);
    if (strict) {
        check(lenient && strict->digest() == lenient->digest() &&
              strict->messages().size() == lenient->messages().size());
    }
    if (!lenient) return 0;
    check(lenient->digest() == schema::sha256(text));
    for (const auto& m : lenient->messages()) {
        check_layout(*lenient, m);
        const std::vector<std::byte> zeros(m.size);
        (void)lenient->validate(m, zeros);
        const std::string json = mycelium::json_message::to_json(m, zeros).json;
        const auto back = mycelium::json_message::from_json(m, json);
        check(back && *back == zeros);
        const std::vector<std::byte> pattern(m.size, std::byte{0xa5});
        (void)lenient->validate(m, pattern);
        (void)mycelium::json_message::to_json(m, pattern);
    }
    return 0;
}
