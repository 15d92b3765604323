#include "reserved_names.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace mycelium::schema::detail {

namespace {

using namespace std::string_view_literals;

// Python 3.11 keyword.kwlist; the soft keywords (match, case, _) are valid names.
constexpr std::array PYTHON_KEYWORDS = {
    "False"sv, "None"sv,   "True"sv,     "and"sv,    "as"sv,       "assert"sv, "async"sv,  "await"sv,
    "break"sv, "class"sv,  "continue"sv, "def"sv,    "del"sv,      "elif"sv,   "else"sv,   "except"sv,
    "finally"sv, "for"sv,  "from"sv,     "global"sv, "if"sv,       "import"sv, "in"sv,     "is"sv,
    "lambda"sv, "nonlocal"sv, "not"sv,   "or"sv,     "pass"sv,     "raise"sv,  "return"sv, "try"sv,
    "while"sv, "with"sv,   "yield"sv};

// What a generated or in-host message class defines besides its fields, and the module
// names a generated class body reads (a field of the same name would shadow them there).
constexpr std::array PYTHON_CLASS_ATTRIBUTES = {"TYPE_ID"sv,  "TOPIC"sv,         "NAME"sv,     "SIZE"sv,
                                                "FIELDS"sv,   "to_bytes"sv,      "from_bytes"sv, "validate"sv,
                                                "_dataclasses"sv, "_struct"sv};

// What a generated Python module defines besides its classes (names with `_` and a
// capital letter are refused for everything: is_reserved_identifier).
constexpr std::array PYTHON_MODULE_NAMES = {"ValidationError"sv, "DecodeError"sv,  "MESSAGES"sv,
                                            "SCHEMA_DIGEST"sv,   "SCHEMA_ID"sv,    "SCHEMA_VERSION"sv,
                                            "SCHEMA_MIN_COMPATIBLE"sv, "annotations"sv, "_dataclasses"sv,
                                            "_struct"sv,         "_pack_str"sv,    "_unpack_str"sv,
                                            "_number_text"sv,    "_u256"sv};

// C++20 keywords and alternative tokens, and the macros of the C library a generated
// header may meet (a member named `errno` would expand).
constexpr std::array CPP_KEYWORDS = {
    "alignas"sv,   "alignof"sv,      "and"sv,          "and_eq"sv,      "asm"sv,          "auto"sv,
    "bitand"sv,    "bitor"sv,        "bool"sv,         "break"sv,       "case"sv,         "catch"sv,
    "char"sv,      "char8_t"sv,      "char16_t"sv,     "char32_t"sv,    "class"sv,        "compl"sv,
    "concept"sv,   "const"sv,        "consteval"sv,    "constexpr"sv,   "constinit"sv,    "const_cast"sv,
    "continue"sv,  "co_await"sv,     "co_return"sv,    "co_yield"sv,    "decltype"sv,     "default"sv,
    "delete"sv,    "do"sv,           "double"sv,       "dynamic_cast"sv, "else"sv,        "enum"sv,
    "explicit"sv,  "export"sv,       "extern"sv,       "false"sv,       "float"sv,        "for"sv,
    "friend"sv,    "goto"sv,         "if"sv,           "inline"sv,      "int"sv,          "long"sv,
    "mutable"sv,   "namespace"sv,    "new"sv,          "noexcept"sv,    "not"sv,          "not_eq"sv,
    "nullptr"sv,   "operator"sv,     "or"sv,           "or_eq"sv,       "private"sv,      "protected"sv,
    "public"sv,    "register"sv,     "reinterpret_cast"sv, "requires"sv, "return"sv,      "short"sv,
    "signed"sv,    "sizeof"sv,       "static"sv,       "static_assert"sv, "static_cast"sv, "struct"sv,
    "switch"sv,    "template"sv,     "this"sv,         "thread_local"sv, "throw"sv,       "true"sv,
    "try"sv,       "typedef"sv,      "typeid"sv,       "typename"sv,    "union"sv,        "unsigned"sv,
    "using"sv,     "virtual"sv,      "void"sv,         "volatile"sv,    "wchar_t"sv,      "while"sv,
    "xor"sv,       "xor_eq"sv,       "NULL"sv,         "EOF"sv,         "errno"sv,        "stdin"sv,
    "stdout"sv,    "stderr"sv,       "assert"sv,       "offsetof"sv};

constexpr std::array CPP_STRUCT_MEMBERS = {"TYPE_ID"sv, "NAME"sv, "TOPIC"sv, "SIZE"sv};
constexpr std::array CPP_HEADER_NAMES = {"SCHEMA_DIGEST"sv, "SCHEMA_DIGEST_HEX"sv, "SCHEMA_ID"sv,
                                         "SCHEMA_VERSION"sv, "SCHEMA_MIN_COMPATIBLE"sv};

template <class... Lists>
std::string suffixed_if_listed(std::string_view name, const Lists&... lists) {
    const bool listed = (... || (std::find(lists.begin(), lists.end(), name) != lists.end()));
    std::string out(name);
    if (listed) out.push_back('_');
    return out;
}

}  // namespace

std::string python_field_name(std::string_view name) {
    return suffixed_if_listed(name, PYTHON_KEYWORDS, PYTHON_CLASS_ATTRIBUTES);
}

std::string cpp_field_name(std::string_view name) { return suffixed_if_listed(name, CPP_KEYWORDS, CPP_STRUCT_MEMBERS); }

std::string python_class_name(std::string_view name) {
    return suffixed_if_listed(name, PYTHON_KEYWORDS, PYTHON_MODULE_NAMES);
}

std::string cpp_struct_name(std::string_view name) { return suffixed_if_listed(name, CPP_KEYWORDS, CPP_HEADER_NAMES); }

bool is_reserved_identifier(std::string_view name) {
    return name.starts_with("__") ||
           (name.size() >= 2 && name[0] == '_' && std::isupper(static_cast<unsigned char>(name[1])));
}

}  // namespace mycelium::schema::detail
