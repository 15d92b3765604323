#pragma once
// The names generated code gives a message or a field: the contracts' own name, with a
// trailing underscore where the language would refuse it or where it would shadow a name
// the generated code defines (docs/contracts.md, "Names").

#include <string>
#include <string_view>

namespace mycelium::schema::detail {

/// Python name of a field: keywords and the class attributes every message class has
/// (TYPE_ID, to_bytes, ...) get a trailing `_`.
std::string python_field_name(std::string_view name);
/// C++ name of a field: keywords, common macros and the struct's own constants.
std::string cpp_field_name(std::string_view name);
/// Python class name: keywords and the generated module's own names (ValidationError, MESSAGES, ...).
std::string python_class_name(std::string_view name);
/// C++ struct name: keywords, macros and the generated header's constants.
std::string cpp_struct_name(std::string_view name);

/// Names no generated code can carry whatever the suffix: C++ reserves `__x` and `_X`
/// for the implementation, and Python mangles `__x` inside a class.
bool is_reserved_identifier(std::string_view name);

}  // namespace mycelium::schema::detail
