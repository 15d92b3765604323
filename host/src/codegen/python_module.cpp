// Emits a standard-library-only Python module: one dataclass per message, with
// Mycelium's keyword constructor. Each class packs with one precompiled struct.Struct
// whose format spells every padding byte ('x'), so its bytes are the C++ struct's bytes;
// validate() checks the contracts' seven rules with schema::Registry::validate's texts
// ("Message.field: rule: detail"), plus what only Python can get wrong (an int out of
// its type's range, a byte string of the wrong length).
//
// Nothing from the contracts reaches the source unescaped: names are identifiers (the
// parser checks them), and every description or file name is a string literal or a
// comment with its control characters removed (docs/contracts.md, "Generated code").

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "mycelium/codegen.hpp"

namespace mycelium::codegen {

namespace {

using schema::ElementKind;
using schema::Field;
using schema::FieldKind;
using schema::MessageSchema;
using schema::Scalar;
using schema::is_float;

constexpr std::size_t U256_SIZE = 32;

char struct_code(Scalar s) {
    switch (s) {
        case Scalar::U8: return 'B';
        case Scalar::U16: return 'H';
        case Scalar::U32: return 'I';
        case Scalar::U64: return 'Q';
        case Scalar::I8: return 'b';
        case Scalar::I16: return 'h';
        case Scalar::I32: return 'i';
        case Scalar::I64: return 'q';
        case Scalar::F32: return 'f';
        case Scalar::F64: return 'd';
        case Scalar::Bool: return '?';
    }
    return 'B';
}

std::string zero_of(Scalar s) {
    if (s == Scalar::Bool) return "False";
    return is_float(s) ? "0.0" : "0";
}

/// Bounds of an integer scalar as Python literals; floats and bools have none (pack checks them).
std::pair<std::string, std::string> range_of(Scalar s) {
    switch (s) {
        case Scalar::U8: return {"0", "255"};
        case Scalar::U16: return {"0", "65535"};
        case Scalar::U32: return {"0", "4294967295"};
        case Scalar::U64: return {"0", "18446744073709551615"};
        case Scalar::I8: return {"-128", "127"};
        case Scalar::I16: return {"-32768", "32767"};
        case Scalar::I32: return {"-2147483648", "2147483647"};
        case Scalar::I64: return {"-9223372036854775808", "9223372036854775807"};
        default: return {};
    }
}

/// `[u8; N]`: one bytes value, not a sequence of numbers.
bool is_byte_array(const Field& f) {
    return f.kind == FieldKind::Array && f.element_kind == ElementKind::Scalar && f.element == Scalar::U8;
}
/// An Array (other than `[u8; N]`) or a Vec: a Python list.
bool is_sequence(const Field& f) { return f.kind == FieldKind::Vec || (f.kind == FieldKind::Array && !is_byte_array(f)); }
/// Holds U256 values: the field itself or its elements (an int is turned into 32 bytes).
bool holds_u256(const Field& f) { return f.element_kind == ElementKind::U256; }

/// A Python string literal for any text: quotes, backslashes and every control character
/// escaped, so nothing can end the literal or the line. Other UTF-8 passes through.
std::string py_string(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\'' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (u < 0x20 || u == 0x7f) {
            out += fmt::format("\\x{:02x}", u);
        } else {
            out.push_back(c);
        }
    }
    return out + "'";
}

/// Text for a `#` comment: control characters (which could end the line) dropped.
std::string comment_text(std::string_view s) {
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u != 0x7f) out.push_back(c);
    }
    return out;
}

/// A bound as a Python number: its canonical text ("1", "0.5", "1e+16"), or float('inf').
std::string py_number(const schema::Bound& b) {
    const bool plain = std::all_of(b.text.begin(), b.text.end(), [](char c) {
        return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == '+' || c == '-';
    });
    return plain ? b.text : "float(" + py_string(b.text) + ")";
}

std::string py_bool(bool b) { return b ? "True" : "False"; }

/// The struct format of one element of an Array or a Vec, and whether it repeats per element.
std::string element_format(const Field& f) {
    if (f.element_kind == ElementKind::Scalar) return fmt::format("{}{}", f.capacity, struct_code(f.element));
    std::string one = std::to_string(f.element_size) + "s";  // a U256 or a [u8; M]
    std::string all;
    for (std::size_t i = 0; i < f.capacity; ++i) all += one;
    return all;
}

std::string struct_format(const MessageSchema& m) {
    std::string format = "<";
    std::size_t cursor = 0;
    const auto pad_to = [&](std::size_t offset) {
        if (offset > cursor) format += std::to_string(offset - cursor) + "x";
        cursor = offset;
    };
    for (const Field& f : m.fields) {
        pad_to(f.offset);
        std::size_t written = f.offset;
        switch (f.kind) {
            case FieldKind::Scalar:
                format += struct_code(f.element);
                written += f.size;
                break;
            case FieldKind::U256:
                format += "32s";
                written += U256_SIZE;
                break;
            case FieldKind::Array:
                format += is_byte_array(f) ? std::to_string(f.capacity) + "s" : element_format(f);
                written += f.capacity * f.element_size;
                break;
            case FieldKind::String:
                format += fmt::format("H6x{}s", f.capacity);
                written += schema::FIXED_HEADER_SIZE + f.capacity;
                break;
            case FieldKind::Vec:
                format += "H6x" + element_format(f);
                written += schema::FIXED_HEADER_SIZE + f.capacity * f.element_size;
                break;
        }
        // A FixedStr/FixedVec ends with padding to its own alignment.
        cursor = f.offset + f.size;
        if (cursor > written) format += std::to_string(cursor - written) + "x";
    }
    pad_to(m.size);
    return format;
}

std::string annotation_of(const Field& f) {
    switch (f.kind) {
        case FieldKind::Scalar: return f.element == Scalar::Bool ? "bool" : is_float(f.element) ? "float" : "int";
        case FieldKind::U256: return "bytes";
        case FieldKind::String: return "str";
        case FieldKind::Array:
        case FieldKind::Vec:
            if (is_byte_array(f)) return "bytes";
            if (f.element_kind != ElementKind::Scalar) return "list[bytes]";
            return f.element == Scalar::Bool ? "list[bool]" : is_float(f.element) ? "list[float]" : "list[int]";
    }
    return "object";
}

/// The default, as value-initialisation in C++ gives it. Only literals and lambdas: a
/// class body sees its own earlier fields, so a name (`bytes`, `list`) could be shadowed.
std::string default_of(const Field& f) {
    const auto zero_bytes = [](std::size_t n) { return fmt::format("b'\\x00' * {}", n); };
    switch (f.kind) {
        case FieldKind::Scalar: return zero_of(f.element);
        case FieldKind::U256: return zero_bytes(U256_SIZE);
        case FieldKind::String: return "''";
        case FieldKind::Array: {
            if (is_byte_array(f)) return zero_bytes(f.capacity);
            const std::string element =
                f.element_kind == ElementKind::Scalar ? zero_of(f.element) : zero_bytes(f.element_size);
            return fmt::format("_dataclasses.field(default_factory=lambda: [{}] * {})", element, f.capacity);
        }
        case FieldKind::Vec: return "_dataclasses.field(default_factory=lambda: [])";
    }
    return "None";
}

/// The class docstring: the description, then one line per described field.
std::string docstring_of(const MessageSchema& m) {
    std::string text = m.description;
    bool any_field = false;
    for (const Field& f : m.fields) {
        if (f.description.empty()) continue;
        if (!any_field) text += text.empty() ? "Fields:\n" : "\n\nFields:\n";
        any_field = true;
        text += fmt::format("    {} ({}): {}\n", f.python_name, f.type_text, f.description);
    }
    return text;
}

/// Writes one class's validate(): the rules of the contracts, field by field, in the
/// order schema::Registry::validate checks them, with its texts.
class ValidateWriter {
public:
    ValidateWriter(std::string& out, const MessageSchema& m) : out_(out), m_(m) {}

    void write() {
        out_ += "\n    def validate(self):\n        \"\"\"Raises ValidationError naming the field and the rule.\"\"\"\n";
        for (const Field& f : m_.fields) field(f);
        if (!any_) out_ += "        return None\n";
    }

private:
    std::string& out_;
    const MessageSchema& m_;
    bool any_ = false;

    void line(std::string_view indent, const std::string& text) {
        out_ += fmt::format("{}{}\n", indent, text);
        any_ = true;
    }

    std::string fail(const Field& f, std::string_view rule, const std::string& detail) const {
        return fmt::format("raise ValidationError({}, {}, {}, {})", py_string(m_.name), py_string(f.name),
                           py_string(rule), detail);
    }

    /// `v`'s text in a detail: the registry's spelling, or nothing for a sensitive message.
    std::string value_text(const Field& f) const {
        if (m_.sensitive) return "";
        return is_float(f.element) ? " {_number_text(v)}" : " {v}";
    }

    void field(const Field& f) {
        const std::string self = "self." + f.python_name;
        switch (f.kind) {
            case FieldKind::Scalar:
                if (range_of(f.element).first.empty() && !f.validation.any()) break;  // pack checks it
                line("        ", "v = " + self);
                integer_range(f, "        ");
                if (f.validation.not_zero) {
                    line("        ", "if v == 0:");
                    line("            ", fail(f, "not_zero", "'must not be zero'"));
                }
                bounds(f, "        ", false);
                break;
            case FieldKind::U256:
                if (!f.validation.not_zero) break;  // to_bytes() checks the value while it packs it
                line("        ", fmt::format("if _u256({}, {}, {}, -1, {}) == _ZERO_U256:", self, py_string(m_.name),
                                             py_string(f.name), py_bool(m_.sensitive)));
                line("            ", fail(f, "not_zero", "'must not be zero'"));
                break;
            case FieldKind::String: string(f, self); break;
            case FieldKind::Array: array(f, self); break;
            case FieldKind::Vec: vec(f, self); break;
        }
    }

    void integer_range(const Field& f, std::string_view indent) {
        const auto [lo, hi] = range_of(f.element);
        if (lo.empty()) return;
        const std::string what = m_.sensitive ? "value" : "{v}";
        line(indent, fmt::format("if not {} <= v <= {}:", lo, hi));
        line(std::string(indent) + "    ", fail(f, "range", fmt::format("f'{} is outside the range of {}'", what,
                                                                         schema::scalar_name(f.element))));
    }

    /// min and max of `v`, or of each `v` at index `i` of a sequence. NaN is refused by
    /// either bound, as the registry refuses it.
    void bounds(const Field& f, std::string_view indent, bool element) {
        const schema::Validation& rules = f.validation;
        if (!rules.min && !rules.max) return;
        const std::string inner = std::string(indent) + "    ";
        if (f.element == Scalar::F32) line(indent, "v = _F32.unpack(_F32.pack(v))[0]  # the value that is sent");
        const std::string what = (element ? "element {i}" : "value") + value_text(f);
        const auto check = [&](const schema::Bound& bound, std::string_view rule, std::string_view op,
                               std::string_view relation) {
            const std::string number = py_number(bound);
            if (is_float(f.element)) {
                line(indent, fmt::format("if v {} {} or v != v:", op, number));
                line(inner, fail(f, rule, fmt::format("f'{} {{\"cannot be compared with\" if v != v else \"{}\"}} {}'",
                                                      what, relation, bound.text)));
            } else {
                line(indent, fmt::format("if v {} {}:", op, number));
                line(inner, fail(f, rule, fmt::format("f'{} {} {}'", what, relation, bound.text)));
            }
        };
        if (rules.min) check(*rules.min, "min", "<", "is below");
        if (rules.max) check(*rules.max, "max", ">", "is above");
    }

    void lengths(const Field& f) {
        const schema::Validation& rules = f.validation;
        const std::size_t max = rules.max_length.value_or(f.capacity);
        line("        ", fmt::format("if n > {}:", max));
        line("            ", fail(f, "max_length", fmt::format("f'length {{n}} is above {}'", max)));
        if (rules.not_empty) {
            line("        ", "if n == 0:");
            line("            ", fail(f, "not_empty", "'must not be empty'"));
        }
        if (rules.min_length) {
            line("        ", fmt::format("if n < {}:", *rules.min_length));
            line("            ", fail(f, "min_length", fmt::format("f'length {{n}} is below {}'", *rules.min_length)));
        }
    }

    void string(const Field& f, const std::string& self) {
        line("        ", fmt::format("data = {}.encode('utf-8')", self));
        line("        ", "n = len(data)");
        lengths(f);
        if (f.validation.no_0x_prefix) {
            line("        ", "if data[:2] in (b'0x', b'0X'):");
            const std::string detail = m_.sensitive ? std::string("'starts with 0x'")
                                                    : "f\"'{data[:10].decode('utf-8', 'replace')}' starts with 0x\"";
            line("            ", fail(f, "no_0x_prefix", detail));
        }
    }

    /// Checks each element of a sequence: a [u8; M]'s length, an integer's range, bounds.
    void elements(const Field& f, const std::string& self) {
        if (f.element_kind == ElementKind::Bytes) {
            line("        ", fmt::format("for i, v in enumerate({}):", self));
            line("            ", fmt::format("if len(v) != {}:", f.element_size));
            line("                ", fail(f, "size", fmt::format("f'element {{i}}: expected {} bytes, got {{len(v)}}'",
                                                                  f.element_size)));
            return;
        }
        if (f.element_kind != ElementKind::Scalar) return;  // U256 elements: to_bytes() checks each one
        const bool ranged = !range_of(f.element).first.empty();
        const bool bounded = f.validation.min || f.validation.max;
        if (!ranged && !bounded) return;
        line("        ", fmt::format("for i, v in enumerate({}):", self));
        integer_range(f, "            ");
        bounds(f, "            ", true);
    }

    void array(const Field& f, const std::string& self) {
        if (is_byte_array(f)) {
            line("        ", fmt::format("if len({}) != {}:", self, f.capacity));
            line("            ", fail(f, "size", fmt::format("f'expected {} bytes, got {{len({})}}'", f.capacity, self)));
            if (f.validation.not_zero) {
                line("        ", fmt::format("if not any({}):", self));
                line("            ", fail(f, "not_zero", "'must not be zero'"));
            }
            return;
        }
        line("        ", fmt::format("if len({}) != {}:", self, f.capacity));
        line("            ", fail(f, "size", fmt::format("f'expected {} values, got {{len({})}}'", f.capacity, self)));
        elements(f, self);
        if (f.validation.not_zero) {  // an array of [u8; M]: zero when every byte is
            line("        ", fmt::format("if not any(any(v) for v in {}):", self));
            line("            ", fail(f, "not_zero", "'must not be zero'"));
        }
    }

    void vec(const Field& f, const std::string& self) {
        line("        ", fmt::format("n = len({})", self));
        lengths(f);
        elements(f, self);
    }
};

/// Arguments of to_bytes()'s one pack call, one line each.
std::string pack_arguments(const MessageSchema& m, std::string_view indent) {
    std::string out;
    const auto u256_elements = [&](const Field& f) {
        return fmt::format("[_u256(v, {}, {}, i, {}) for i, v in enumerate(self.{})]", py_string(m.name),
                           py_string(f.name), py_bool(m.sensitive), f.python_name);
    };
    for (const Field& f : m.fields) {
        const std::string& name = f.python_name;
        switch (f.kind) {
            case FieldKind::Scalar: out += fmt::format("{}self.{},\n", indent, name); break;
            case FieldKind::U256:
                out += fmt::format("{}_u256(self.{}, {}, {}, -1, {}),\n", indent, name, py_string(m.name),
                                   py_string(f.name), py_bool(m.sensitive));
                break;
            case FieldKind::Array:
                if (is_byte_array(f)) out += fmt::format("{}self.{},\n", indent, name);
                else if (holds_u256(f)) out += fmt::format("{}*{},\n", indent, u256_elements(f));
                else out += fmt::format("{}*self.{},\n", indent, name);
                break;
            case FieldKind::String: out += fmt::format("{}*_pack_str(self.{}),\n", indent, name); break;
            case FieldKind::Vec: {
                const std::string items = holds_u256(f) ? u256_elements(f) : "self." + name;
                // '20s' pads b'' with zero bytes: the unused elements.
                const std::string filler = f.element_kind == ElementKind::Scalar ? zero_of(f.element) : "b''";
                out += fmt::format("{0}len(self.{1}), *{2}, *(({3},) * ({4} - len(self.{1}))),\n", indent, name, items,
                                   filler, f.capacity);
                break;
            }
        }
    }
    return out;
}

void emit_to_bytes(std::string& out, const MessageSchema& m) {
    // When every field is a scalar and no rule applies, pack's own checks are validate()'s
    // (integer ranges; floats and bools have no rule), so pack goes first and validate()
    // only names the field once pack has refused a value: a publish costs one call less
    // (docs/python-sdk.md, "Performance").
    const bool pack_first = std::all_of(m.fields.begin(), m.fields.end(), [](const Field& f) {
        return f.kind == FieldKind::Scalar && !f.validation.any();
    });
    if (pack_first) {
        out += "\n    def to_bytes(self):\n        try:\n            return self._STRUCT.pack(\n";
        out += pack_arguments(m, "                ");
        out += "            )\n        except Exception:\n";
        out += "            self.validate()  # a ValidationError naming the field, if a rule is broken\n";
        out += "            raise\n";
    } else {
        out += "\n    def to_bytes(self):\n        self.validate()\n        return self._STRUCT.pack(\n";
        out += pack_arguments(m, "            ");
        out += "        )\n";
    }
}

void emit_from_bytes(std::string& out, const MessageSchema& m) {
    out += "\n    @classmethod\n    def from_bytes(cls, data):\n";
    out += fmt::format("        if len(data) != {}:\n", m.size);
    out += fmt::format("            raise DecodeError(f'{}: expected {} bytes, got {{len(data)}}')\n", m.name, m.size);
    out += "        v = cls._STRUCT.unpack(data)\n        self = cls.__new__(cls)\n";
    std::size_t index = 0;
    for (const Field& f : m.fields) {
        const std::string& name = f.python_name;
        switch (f.kind) {
            case FieldKind::Scalar:
            case FieldKind::U256: out += fmt::format("        self.{} = v[{}]\n", name, index++); break;
            case FieldKind::Array:
                if (is_byte_array(f)) {
                    out += fmt::format("        self.{} = v[{}]\n", name, index++);
                } else {
                    out += fmt::format("        self.{} = list(v[{}:{}])\n", name, index, index + f.capacity);
                    index += f.capacity;
                }
                break;
            case FieldKind::String:
                out += fmt::format("        self.{} = _unpack_str(v[{}], v[{}], {}, {})\n", name, index, index + 1,
                                   py_string(m.name + "." + f.name), f.capacity);
                index += 2;
                break;
            case FieldKind::Vec:
                out += fmt::format("        n = v[{}]\n", index);
                out += fmt::format("        if n > {}:\n            raise DecodeError(f'{}.{}: count {{n}} exceeds the capacity {}')\n",
                                   f.capacity, m.name, f.name, f.capacity);
                out += fmt::format("        self.{} = list(v[{}:{} + n])\n", name, index + 1, index + 1);
                index += 1 + f.capacity;
                break;
        }
    }
    out += "        return self\n";
}

/// __post_init__ for classes with U256 or sequence fields: a U256 given as an int is
/// stored as its 32 bytes, and a sequence as a list, so that a constructed message
/// equals the same message decoded.
void emit_post_init(std::string& out, const MessageSchema& m) {
    const bool needed = std::any_of(m.fields.begin(), m.fields.end(),
                                    [](const Field& f) { return holds_u256(f) || is_sequence(f); });
    if (!needed) return;
    out += "\n    def __post_init__(self):\n";
    for (const Field& f : m.fields) {
        const std::string& name = f.python_name;
        const std::string where = py_string(m.name) + ", " + py_string(f.name);
        if (f.kind == FieldKind::U256) {
            out += fmt::format("        self.{0} = _u256(self.{0}, {1}, -1, {2})\n", name, where, py_bool(m.sensitive));
        } else if (is_sequence(f) && holds_u256(f)) {
            out += fmt::format("        self.{0} = [_u256(v, {1}, i, {2}) for i, v in enumerate(self.{0})]\n", name,
                               where, py_bool(m.sensitive));
        } else if (is_sequence(f)) {
            out += fmt::format("        self.{0} = list(self.{0})\n", name);
        }
    }
}

void emit_class(std::string& out, const MessageSchema& m) {
    // A sensitive message's repr names its fields but not their values (docs/contracts.md).
    out += fmt::format("\n\n@_dataclasses.dataclass(slots=True{})\nclass {}:\n", m.sensitive ? ", repr=False" : "",
                       m.python_name);
    const std::string doc = docstring_of(m);
    if (!doc.empty()) out += fmt::format("    {}\n\n", py_string(doc));
    std::string names;
    for (const Field& f : m.fields) names += py_string(f.python_name) + ", ";
    out += fmt::format("    TYPE_ID = {}\n    NAME = {}\n    TOPIC = {}\n    SIZE = {}\n", m.type_id,
                       py_string(m.name), py_string(m.topic), m.size);
    out += "    FIELDS = (" + names + ")\n";
    out += fmt::format("    _STRUCT = _struct.Struct({})\n\n", py_string(struct_format(m)));
    for (const Field& f : m.fields) {
        out += fmt::format("    {}: {} = {}\n", f.python_name, annotation_of(f), default_of(f));
    }
    emit_post_init(out, m);
    ValidateWriter(out, m).write();
    emit_to_bytes(out, m);
    emit_from_bytes(out, m);
    if (m.sensitive) {
        out += "\n    def __repr__(self):\n";
        out += "        return f'{type(self).__name__}(<{len(self.FIELDS)} fields of a sensitive message>)'\n";
    }
}

void emit_schema_version(std::string& out, const schema::Registry& registry) {
    const auto& v = registry.version();
    if (!v) return;
    out += "# The contracts' `schema:` section.\n";
    out += fmt::format("SCHEMA_ID = {:#x}\nSCHEMA_VERSION = {}\n", v->id, v->version);
    if (v->min_compatible) out += fmt::format("SCHEMA_MIN_COMPATIBLE = {}\n", *v->min_compatible);
    out += "\n";
}

// What every generated module defines before its classes. The underscore names are
// reserved for it (schema/reserved_names.cpp): no message or field can shadow them.
constexpr std::string_view MODULE_HELPERS = R"PY(class ValidationError(ValueError):
    """A field breaks a rule of the contracts: names the message, the field and the rule."""

    def __init__(self, message, field, rule, detail):
        super().__init__(f'{message}.{field}: {rule}: {detail}')
        self.message = message
        self.field = field
        self.rule = rule
        self.detail = detail


class DecodeError(ValueError):
    """Bytes that are not a valid encoding of the message."""


_F32 = _struct.Struct('<f')
_ZERO_U256 = bytes(32)
_U256_LIMIT = 1 << 256


def _pack_str(value):
    data = value.encode('utf-8')
    return len(data), data


def _unpack_str(length, data, where, capacity):
    if length > capacity:
        raise DecodeError(f'{where}: length {length} exceeds the capacity {capacity}')
    try:
        return data[:length].decode('utf-8')
    except UnicodeDecodeError as e:
        raise DecodeError(f'{where}: not valid UTF-8 ({e.reason})') from None


def _number_text(value):
    """A float as the registry's error texts spell it: the shortest repr, '5' for 5.0."""
    text = repr(float(value))
    return text[:-2] if text.endswith('.0') else text


def _u256(value, message, field, index, sensitive):
    """A U256 as its 32 big-endian bytes: from 32 bytes, or from an int in [0, 2**256)."""
    if value.__class__ is bytes and len(value) == 32:
        return value
    where = '' if index < 0 else f'element {index}: '
    if isinstance(value, int):
        if 0 <= value < _U256_LIMIT:
            return value.to_bytes(32, 'big')
        text = 'value' if sensitive else str(value)
        if len(text) > 80:
            text = text[:77] + '...'
        raise ValidationError(message, field, 'range', f'{where}{text} is outside the range of U256 (0 to 2**256-1)')
    try:
        data = bytes(memoryview(value))
    except TypeError:
        raise ValidationError(message, field, 'type',
                              f'{where}expected 32 bytes or an int, got {type(value).__name__}') from None
    if len(data) != 32:
        raise ValidationError(message, field, 'size', f'{where}expected 32 bytes, got {len(data)}')
    return data
)PY";

}  // namespace

std::string generate_python(const schema::Registry& registry) {
    std::string out = fmt::format(
        "# Generated by `mycelium-host codegen` from {} — do not edit.\n"
        "# Regenerate when the contracts change; SCHEMA_DIGEST records the file it came from.\n"
        "\"\"\"Message classes for the contracts with digest {}.\"\"\"\n\n"
        "from __future__ import annotations\n\n"
        "import dataclasses as _dataclasses\n"
        "import struct as _struct\n\n"
        "SCHEMA_DIGEST = bytes.fromhex('{}')\n",
        comment_text(std::filesystem::path(registry.source_name()).filename().string()), registry.digest_hex(),
        registry.digest_hex());
    emit_schema_version(out, registry);
    out += "\n\n";
    out += MODULE_HELPERS;
    for (const MessageSchema& m : registry.messages()) emit_class(out, m);
    out += "\n\nMESSAGES = {";
    for (const MessageSchema& m : registry.messages()) out += fmt::format("\n    {}: {},", m.type_id, m.python_name);
    out += "\n}\n";
    return out;
}

}  // namespace mycelium::codegen
