#pragma once
// Type spellings of contracts.yaml -> Rust repr(C) layouts. Internal to the schema library.

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "mycelium/schema.hpp"

namespace mycelium::schema::detail {

/// Mycelium's default capacities (its codegen.rs) for a String or Vec without max_length.
inline constexpr std::size_t DEFAULT_STRING_CAPACITY = 32;
inline constexpr std::size_t DEFAULT_BYTE_VEC_CAPACITY = 16;  ///< Vec<u8>
inline constexpr std::size_t DEFAULT_VEC_CAPACITY = 4;        ///< Vec<[u8; N]>, and any other Vec here

/// A type's shape before its capacity is known.
struct TypeShape {
    FieldKind kind = FieldKind::Scalar;
    ElementKind element_kind = ElementKind::Scalar;
    Scalar element = Scalar::U8;
    std::size_t element_size = 1;
    std::size_t element_align = 1;
    std::size_t count = 1;  ///< N of `[E; N]`
};

/// Parses a type spelling (spaces inside brackets are optional: `[u8;20]`). Returns the
/// reason in words when it is not a type.
std::variant<TypeShape, std::string> parse_type(std::string_view text);

/// The capacity a String or Vec gets when the contracts give no max_length.
std::size_t default_capacity(const TypeShape& shape);

/// Fills in a field's kind, element, capacity, size and alignment from its shape.
void lay_out(Field& field, const TypeShape& shape, std::size_t capacity);

}  // namespace mycelium::schema::detail
