// The layouts are Rust's repr(C) of the types Mycelium generates: a scalar at its own
// alignment, U256 as [u8; 32] (alignment 1), FixedStr<N> and FixedVec<E, N> as
// { u16 count; [u8; 6]; [E; N] } at the alignment of their widest member.

#include "field_types.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace mycelium::schema::detail {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

std::size_t align_up(std::size_t value, std::size_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

constexpr std::size_t MAX_ARRAY_ELEMENTS = 4u * 1024u * 1024u;  // larger than any payload anyway

/// `[inner; N]` -> inner and N, or nullopt when the brackets or the count are wrong.
std::optional<std::pair<std::string_view, std::size_t>> split_array(std::string_view text) {
    if (!text.starts_with('[') || !text.ends_with(']')) return std::nullopt;
    const std::string_view body = text.substr(1, text.size() - 2);
    const auto semicolon = body.rfind(';');
    if (semicolon == std::string_view::npos) return std::nullopt;
    const std::string_view count_text = trim(body.substr(semicolon + 1));
    std::size_t count = 0;
    const auto [end, ec] = std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
    if (ec != std::errc{} || end != count_text.data() + count_text.size() || count == 0 ||
        count > MAX_ARRAY_ELEMENTS) {
        return std::nullopt;
    }
    return std::pair{trim(body.substr(0, semicolon)), count};
}

/// The element of an array or a vector: a scalar, U256, or `[u8; N]`.
std::optional<TypeShape> parse_element(std::string_view text) {
    TypeShape shape;
    if (const auto scalar = parse_scalar(text)) {
        shape.element = *scalar;
        shape.element_size = shape.element_align = scalar_size(*scalar);
        return shape;
    }
    if (text == "U256") {
        shape.element_kind = ElementKind::U256;
        shape.element_size = 32;
        return shape;
    }
    if (const auto array = split_array(text); array && array->first == "u8") {
        shape.element_kind = ElementKind::Bytes;
        shape.element_size = array->second;
        return shape;
    }
    return std::nullopt;
}

constexpr const char* ELEMENTS = "a scalar, U256 or [u8; N]";

}  // namespace

std::variant<TypeShape, std::string> parse_type(std::string_view text) {
    text = trim(text);
    if (const auto scalar = parse_scalar(text)) {
        TypeShape shape;
        shape.element = *scalar;
        shape.element_size = shape.element_align = scalar_size(*scalar);
        return shape;
    }
    if (text == "U256") {
        TypeShape shape;
        shape.kind = FieldKind::U256;
        shape.element_kind = ElementKind::U256;
        shape.element_size = 32;
        return shape;
    }
    if (text == "String") {
        TypeShape shape;
        shape.kind = FieldKind::String;
        return shape;
    }
    if (text.starts_with("Vec<") && text.ends_with(">")) {
        const std::string_view inner = trim(text.substr(4, text.size() - 5));
        auto shape = parse_element(inner);
        if (!shape) return "a Vec holds " + std::string(ELEMENTS) + ", not '" + std::string(inner) + "'";
        shape->kind = FieldKind::Vec;
        return *shape;
    }
    if (text.starts_with("[")) {
        const auto array = split_array(text);
        if (!array) return "arrays are written '[u8; 32]', with a count of at least 1";
        auto shape = parse_element(array->first);
        if (!shape) {
            return "an array holds " + std::string(ELEMENTS) + ", not '" + std::string(array->first) + "'";
        }
        shape->kind = FieldKind::Array;
        shape->count = array->second;
        return *shape;
    }
    return "expected u8 u16 u32 u64 i8 i16 i32 i64 f32 f64 bool, U256, String, Vec<E> or [E; N]";
}

std::size_t default_capacity(const TypeShape& shape) {
    if (shape.kind == FieldKind::String) return DEFAULT_STRING_CAPACITY;
    const bool bytes = shape.element_kind == ElementKind::Scalar && shape.element == Scalar::U8;
    return bytes ? DEFAULT_BYTE_VEC_CAPACITY : DEFAULT_VEC_CAPACITY;
}

void lay_out(Field& field, const TypeShape& shape, std::size_t capacity) {
    field.kind = shape.kind;
    field.element_kind = shape.element_kind;
    field.element = shape.element;
    field.element_size = shape.element_size;
    switch (shape.kind) {
        case FieldKind::Scalar:
        case FieldKind::U256:
            field.capacity = 1;
            field.size = shape.element_size;
            field.align = shape.element_align;
            break;
        case FieldKind::Array:
            field.capacity = shape.count;
            field.size = shape.count * shape.element_size;
            field.align = shape.element_align;
            break;
        case FieldKind::String:
            field.capacity = capacity;
            field.element_size = 1;
            field.align = 2;  // FixedStr starts with a u16 length
            field.size = align_up(FIXED_HEADER_SIZE + capacity, field.align);
            break;
        case FieldKind::Vec:
            field.capacity = capacity;
            field.align = std::max<std::size_t>(2, shape.element_align);
            field.size = align_up(FIXED_HEADER_SIZE + capacity * shape.element_size, field.align);
            break;
    }
}

}  // namespace mycelium::schema::detail
