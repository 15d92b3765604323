#pragma once
/// Messages as JSON objects, for the command-line tools (tap prints, pub reads):
/// `{"symbol": "AAPL", "price": 189.5, "weights": [1, 2]}`. Field order and names come
/// from the schema; arrays, vectors and `[u8; N]` are JSON arrays of numbers.
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
/// error naming the field (or the offset in the text). Validation rules are not checked
/// here: run Registry::validate on the result.
Result<std::vector<std::byte>, std::string> from_json(const schema::MessageSchema& schema, std::string_view json);

}  // namespace mycelium::json_message
