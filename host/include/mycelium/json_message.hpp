#pragma once
/// Messages as JSON objects, for the command-line tools (tap prints, pub reads):
/// `{"symbol": "AAPL", "price": 189.5, "weights": [1, 2]}`. Field order and names come
/// from the schema (the contracts' names: `class`, not Python's `class_`).
///
/// | type | to_json (tap) | from_json (pub) also accepts |
/// |---|---|---|
/// | numbers, bool, String | JSON number, true/false, string | |
/// | `U256` | decimal string `"1000000000000000000"` | a JSON integer, a `"0x..."` hex string (1-64 digits); range 0 to 2**256-1 |
/// | `[u8; N]` | `"0x"` + 2N lowercase hex digits | hex without `0x`, either case; an array of N numbers 0-255 (what tap printed before hex) |
/// | `[T; N]`, `Vec<T>`, T a number | array of numbers (`Vec<u8>` too) | |
/// | `[[u8; M]; N]`, `Vec<[u8; M]>` | array of hex strings | each element as for `[u8; M]` |
/// | `[U256; N]`, `Vec<U256>` | array of decimal strings | each element as for `U256` |
///
/// U256 and bytes are strings because most JSON readers hold numbers as doubles.
/// Thread safety: pure functions.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mycelium/result.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::json_message {

/// The payload's fields as one JSON object (no newline). A corrupt String or Vec length
/// is clamped to the capacity; invalid UTF-8 bytes become U+FFFD; NaN and infinities
/// become null.
std::string to_json(const schema::MessageSchema& schema, std::span<const std::byte> payload);

/// Encodes a JSON object into a payload of `schema`'s size. Missing fields are zero;
/// an unknown field, a value of the wrong kind or out of range, or malformed JSON is an
/// error naming the message and the field ("PoolState.hops[1]: ..."), or the offset in
/// the text. A sensitive message's values are not repeated in errors. Validation rules
/// are not checked here: run Registry::validate on the result.
Result<std::vector<std::byte>, std::string> from_json(const schema::MessageSchema& schema, std::string_view json);

}  // namespace mycelium::json_message
