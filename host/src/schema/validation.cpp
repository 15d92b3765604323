// Publish-time checks of a payload against its message's rules. Runs on every publish
// from Python and C++ and on every frame `pub` sends, so a field without rules costs one
// branch: only String and Vec fields are always read (their length prefix must fit).
// A sensitive message's values never appear in a failure's detail (docs/contracts.md).

#include <algorithm>
#include <fmt/format.h>

#include "mycelium/schema.hpp"
#include "mycelium/unaligned.hpp"
#include "mycelium/utf8.hpp"

namespace mycelium::schema {

namespace {

Err<ValidationFailure> failure(const MessageSchema& msg, const Field& field, std::string rule, std::string detail) {
    return Err{ValidationFailure{msg.name, field.name, std::move(rule), std::move(detail)}};
}

long double load_number(Scalar s, const std::byte* p) {
    switch (s) {
        case Scalar::U8: return load_unaligned<std::uint8_t>(p);
        case Scalar::U16: return load_unaligned<std::uint16_t>(p);
        case Scalar::U32: return load_unaligned<std::uint32_t>(p);
        case Scalar::U64: return static_cast<long double>(load_unaligned<std::uint64_t>(p));
        case Scalar::I8: return load_unaligned<std::int8_t>(p);
        case Scalar::I16: return load_unaligned<std::int16_t>(p);
        case Scalar::I32: return load_unaligned<std::int32_t>(p);
        case Scalar::I64: return static_cast<long double>(load_unaligned<std::int64_t>(p));
        case Scalar::F32: return load_unaligned<float>(p);
        case Scalar::F64: return load_unaligned<double>(p);
        case Scalar::Bool: return load_unaligned<std::uint8_t>(p);
    }
    return 0;
}

std::string number_text(Scalar s, long double v) {
    if (is_float(s)) return fmt::format("{}", static_cast<double>(v));
    if (v < 0) return fmt::format("{}", static_cast<long long>(v));
    return fmt::format("{}", static_cast<unsigned long long>(v));
}

/// min and max of `count` numbers from `data`; `index` names the element of an array or vector.
Result<void, ValidationFailure> check_bounds(const MessageSchema& msg, const Field& field, const std::byte* data,
                                             std::size_t count, bool is_sequence) {
    const Validation& rules = field.validation;
    const std::size_t step = scalar_size(field.element);
    for (std::size_t i = 0; i < count; ++i) {
        const long double v = load_number(field.element, data + i * step);
        const bool below = rules.min && v < rules.min->value;
        const bool above = rules.max && v > rules.max->value;
        // NaN is neither below nor above: a bound it cannot be compared with refuses it.
        const bool nan = v != v && (rules.min || rules.max);
        if (!below && !above && !nan) continue;
        const char* rule = below || (nan && rules.min) ? "min" : "max";
        const Bound& bound = below || (nan && rules.min) ? *rules.min : *rules.max;
        std::string what = is_sequence ? fmt::format("element {}", i) : std::string("value");
        if (!msg.sensitive) what += fmt::format(" {}", number_text(field.element, v));
        const char* relation = nan ? "cannot be compared with" : below ? "is below" : "is above";
        return failure(msg, field, rule, fmt::format("{} {} {}", what, relation, bound.text));
    }
    return {};
}

bool all_zero(const std::byte* p, std::size_t n) {
    return std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
}

Result<void, ValidationFailure> check_length(const MessageSchema& msg, const Field& field,
                                             std::span<const std::byte> payload, std::size_t& length) {
    length = load_unaligned<std::uint16_t>(payload.data() + field.offset);
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
    return {};
}

}  // namespace

Result<void, ValidationFailure> Registry::validate(const MessageSchema& msg,
                                                   std::span<const std::byte> payload) const {
    if (payload.size() != msg.size) {
        return Err{ValidationFailure{msg.name, "", "size",
                                     "payload is " + std::to_string(payload.size()) + " bytes, the message is " +
                                         std::to_string(msg.size)}};
    }
    if (msg.plain) return {};  // every payload of its size is valid: links relay these unread
    for (const Field& field : msg.fields) {
        const Validation& rules = field.validation;
        const std::byte* at = payload.data() + field.offset;
        switch (field.kind) {
            case FieldKind::String: {
                std::size_t length = 0;
                if (auto ok = check_length(msg, field, payload, length); !ok) return ok;
                const std::string_view text(reinterpret_cast<const char*>(at + FIXED_HEADER_SIZE), length);
                if (!utf8::is_valid(text)) return failure(msg, field, "utf8", "is not valid UTF-8");
                if (rules.no_0x_prefix && text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
                    return failure(msg, field, "no_0x_prefix",
                                   msg.sensitive ? std::string("starts with 0x")
                                                 : fmt::format("'{}' starts with 0x", text.substr(0, 10)));
                }
                break;
            }
            case FieldKind::Vec: {
                std::size_t length = 0;
                if (auto ok = check_length(msg, field, payload, length); !ok) return ok;
                if (rules.min || rules.max) {
                    if (auto ok = check_bounds(msg, field, at + FIXED_HEADER_SIZE, length, true); !ok) return ok;
                }
                break;
            }
            case FieldKind::Scalar:
            case FieldKind::Array:
            case FieldKind::U256: {
                if (!rules.any()) break;
                if (rules.not_zero && all_zero(at, field.size)) {
                    return failure(msg, field, "not_zero", "must not be zero");
                }
                if (rules.min || rules.max) {
                    const bool is_array = field.kind == FieldKind::Array;
                    if (auto ok = check_bounds(msg, field, at, field.capacity, is_array); !ok) return ok;
                }
                break;
            }
        }
    }
    return {};
}

}  // namespace mycelium::schema
