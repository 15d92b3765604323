// Publish-time checks of a payload against its message's rules. Runs on every publish
// from Python and on every frame from a client, so it reads only the length prefixes of
// String and Vec fields and the string bytes themselves.

#include "mycelium/unaligned.hpp"

#include "mycelium/schema.hpp"
#include "mycelium/utf8.hpp"

namespace mycelium::schema {

namespace {

Err<ValidationFailure> failure(const MessageSchema& msg, const Field& field, std::string rule,
                               std::string detail) {
    std::string text = msg.name + "." + field.name + ": " + rule + ": " + detail;
    return Err{ValidationFailure{msg.name, field.name, std::move(rule), std::move(text)}};
}

}  // namespace

Result<void, ValidationFailure> Registry::validate(const MessageSchema& msg,
                                                   std::span<const std::byte> payload) const {
    if (payload.size() != msg.size) {
        std::string text = msg.name + ": size: payload is " + std::to_string(payload.size()) +
                           " bytes, the message is " + std::to_string(msg.size);
        return Err{ValidationFailure{msg.name, "", "size", std::move(text)}};
    }
    for (const Field& field : msg.fields) {
        if (field.kind != FieldKind::String && field.kind != FieldKind::Vec) continue;
        const auto length = load_unaligned<std::uint16_t>(payload.data() + field.offset);
        const Validation& rules = field.validation;
        // The field's capacity is its max_length unless a validation rule is stricter.
        const std::size_t max_length = rules.max_length.value_or(field.capacity);
        if (length > max_length) {
            return failure(msg, field, "max_length",
                           "length " + std::to_string(length) + " is above " + std::to_string(max_length));
        }
        if (rules.not_empty && length == 0) return failure(msg, field, "not_empty", "must not be empty");
        if (rules.min_length && length < *rules.min_length) {
            return failure(msg, field, "min_length",
                           "length " + std::to_string(length) + " is below " + std::to_string(*rules.min_length));
        }
        if (field.kind == FieldKind::String) {
            const std::string_view text(reinterpret_cast<const char*>(payload.data() + field.offset + FIXED_HEADER_SIZE),
                                        length);
            if (!utf8::is_valid(text)) return failure(msg, field, "utf8", "is not valid UTF-8");
        }
    }
    return {};
}

}  // namespace mycelium::schema
