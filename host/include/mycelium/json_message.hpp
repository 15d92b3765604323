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
///
/// A payload from the network may break its schema where the node does not look (it
/// checks a frame's type and size, not its strings). to_json never prints such a field as
/// if it were valid: the field becomes an object, which no valid field of any type is, and
/// PrintedMessage::invalid says what is wrong (tap adds it to the line as "invalid"):
///
/// | what | the field's value | `invalid` entry |
/// |---|---|---|
/// | a String that is not UTF-8 | `{"invalid_utf8": "0x<its bytes>"}` | `content: not UTF-8 at offset 3 of 5 bytes` |
/// | a String or Vec whose length prefix is above its capacity | `{"invalid_length": 300, "capacity": 256}` | `content: length 300 is above the capacity 256` |
/// | a payload that is not the schema's size | the object is `{}` | `payload is 12 bytes, CounterUpdate is 16` |
///
/// Thread safety: pure functions.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mycelium/result.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::json_message {

/// A payload printed as JSON, and what in it breaks the schema.
struct PrintedMessage {
    std::string json;                  ///< one JSON object, no newline
    /// One entry per field that is not what its schema says, in field order, named by the
    /// field (`content: not UTF-8 at offset 3 of 5 bytes`); empty when the payload is valid. The
    /// entries give positions and lengths, never the field's bytes (sensitive messages).
    std::vector<std::string> invalid;

    /// True when nothing in the payload broke its schema.
    bool valid() const noexcept { return invalid.empty(); }
};

/// The payload's fields as one JSON object (no newline), with the fields that break the
/// schema marked as in the table above. NaN and infinities become null (a valid float:
/// JSON has no spelling for them).
PrintedMessage to_json(const schema::MessageSchema& schema, std::span<const std::byte> payload);

/// Encodes a JSON object into a payload of `schema`'s size. Missing fields are zero;
/// an unknown field, a value of the wrong kind or out of range, or malformed JSON is an
/// error naming the message and the field ("PoolState.hops[1]: ..."), or the offset in
/// the text. A sensitive message's values are not repeated in errors. Validation rules
/// are not checked here: run Registry::validate on the result.
Result<std::vector<std::byte>, std::string> from_json(const schema::MessageSchema& schema, std::string_view json);

}  // namespace mycelium::json_message
