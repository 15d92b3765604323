// Publish-time checks of a payload against its message's rules. Runs on every publish
// from Python and on every frame from a client, so it reads only the length prefixes of
// String and Vec fields and the string bytes themselves.

#include "mycelium/unaligned.hpp"

#include "mycelium/schema.hpp"

namespace mycelium::schema {

namespace {

bool valid_utf8(const unsigned char* s, std::size_t n) {
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = s[i];
        std::size_t extra = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + extra >= n) return false;
        for (std::size_t k = 1; k <= extra; ++k) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        // Overlong encodings, surrogates and values past U+10FFFF are not UTF-8.
        static constexpr std::uint32_t MIN_FOR_LENGTH[] = {0, 0x80, 0x800, 0x10000};
        if (cp < MIN_FOR_LENGTH[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += extra + 1;
    }
    return true;
}

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
            const auto* text = reinterpret_cast<const unsigned char*>(payload.data() + field.offset +
                                                                      FIXED_HEADER_SIZE);
            if (!valid_utf8(text, length)) return failure(msg, field, "utf8", "is not valid UTF-8");
        }
    }
    return {};
}

}  // namespace mycelium::schema
