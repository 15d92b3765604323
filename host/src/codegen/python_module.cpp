// Emits a standard-library-only Python module. Each class packs with one precompiled
// struct.Struct whose format spells every padding byte ('x'), so its bytes are the C++
// struct's bytes; validation mirrors schema::Registry::validate rule for rule, with the
// same "Message.field: rule: detail" text.

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "mycelium/codegen.hpp"

namespace mycelium::codegen {

namespace {

using schema::Field;
using schema::FieldKind;
using schema::MessageSchema;
using schema::Scalar;
using schema::is_float;

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

/// Bounds of an integer element, or "" for floats and bools (struct.pack checks those).
std::string range_of(Scalar s) {
    switch (s) {
        case Scalar::U8: return "0 255";
        case Scalar::U16: return "0 65535";
        case Scalar::U32: return "0 4294967295";
        case Scalar::U64: return "0 18446744073709551615";
        case Scalar::I8: return "-128 127";
        case Scalar::I16: return "-32768 32767";
        case Scalar::I32: return "-2147483648 2147483647";
        case Scalar::I64: return "-9223372036854775808 9223372036854775807";
        default: return "";
    }
}
std::string range_lo(Scalar s) { const auto r = range_of(s); return r.substr(0, r.find(' ')); }
std::string range_hi(Scalar s) { const auto r = range_of(s); return r.substr(r.find(' ') + 1); }

bool is_byte_array(const Field& f) { return f.kind == FieldKind::Array && f.element == Scalar::U8; }

// The arguments of to_bytes()'s pack call, one line each, at `indent`.
std::string pack_arguments(const MessageSchema& m, std::string_view indent) {
    std::string out;
    for (const Field& f : m.fields) {
        switch (f.kind) {
            case FieldKind::Scalar:
            case FieldKind::Array:
                if (f.kind == FieldKind::Array && !is_byte_array(f)) out += fmt::format("{}*self.{},\n", indent, f.name);
                else out += fmt::format("{}self.{},\n", indent, f.name);
                break;
            case FieldKind::String:
                out += fmt::format("{}*_pack_str(self.{}),\n", indent, f.name);
                break;
            case FieldKind::Vec:
                out += fmt::format("{0}len(self.{1}), *self.{1}, *(({2},) * ({3} - len(self.{1}))),\n", indent, f.name,
                                   zero_of(f.element), f.capacity);
                break;
        }
    }
    return out;
}

std::string struct_format(const MessageSchema& m) {
    std::string fmt = "<";
    std::size_t cursor = 0;
    const auto pad_to = [&](std::size_t offset) {
        if (offset > cursor) fmt += std::to_string(offset - cursor) + "x";
        cursor = offset;
    };
    for (const Field& f : m.fields) {
        pad_to(f.offset);
        switch (f.kind) {
            case FieldKind::Scalar: fmt += struct_code(f.element); break;
            case FieldKind::Array:
                fmt += std::to_string(f.capacity) + (is_byte_array(f) ? 's' : struct_code(f.element));
                break;
            case FieldKind::String: fmt += fmt::format("H6x{}s", f.capacity); break;
            case FieldKind::Vec: fmt += fmt::format("H6x{}{}", f.capacity, struct_code(f.element)); break;
        }
        // Element padding at the end of a FixedStr/FixedVec is covered by its size.
        cursor = f.offset + f.size;
        std::size_t written = f.offset;
        if (f.kind == FieldKind::String) written += schema::FIXED_HEADER_SIZE + f.capacity;
        else if (f.kind == FieldKind::Vec) written += schema::FIXED_HEADER_SIZE + f.capacity * schema::scalar_size(f.element);
        else written = cursor;
        if (cursor > written) fmt += std::to_string(cursor - written) + "x";
    }
    pad_to(m.size);
    return fmt;
}

std::string default_of(const Field& f) {
    switch (f.kind) {
        case FieldKind::Scalar: return zero_of(f.element);
        case FieldKind::String: return "''";
        case FieldKind::Array: return is_byte_array(f) ? fmt::format("bytes({})", f.capacity) : "None";
        case FieldKind::Vec: return "()";
    }
    return "None";
}

std::string py_string(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'' || c == '\\') out.push_back('\\');
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out.push_back(c);
    }
    return out + "'";
}

void emit_class(std::string& out, const MessageSchema& m) {
    out += fmt::format("\n\nclass {}:\n", m.name);
    if (!m.description.empty()) out += fmt::format("    \"\"\"{}\"\"\"\n\n", m.description);
    std::string names;
    for (const Field& f : m.fields) names += py_string(f.name) + ", ";
    out += "    __slots__ = (" + names + ")\n";
    out += fmt::format("    TYPE_ID = {}\n    NAME = {}\n    TOPIC = {}\n    SIZE = {}\n", m.type_id,
                       py_string(m.name), py_string(m.topic), m.size);
    out += fmt::format("    _STRUCT = struct.Struct({})\n", py_string(struct_format(m)));
    out += "    FIELDS = __slots__\n\n";

    // Constructor by keyword with zero defaults, as the C++ struct's value-initialisation.
    out += "    def __init__(self";
    for (const Field& f : m.fields) out += fmt::format(", {}={}", f.name, default_of(f));
    out += "):\n";
    for (const Field& f : m.fields) {
        if (f.kind == FieldKind::Array && !is_byte_array(f)) {
            out += fmt::format("        self.{0} = ({1},) * {2} if {0} is None else tuple({0})\n", f.name,
                               zero_of(f.element), f.capacity);
        } else if (f.kind == FieldKind::Vec) {
            out += fmt::format("        self.{0} = tuple({0})\n", f.name);
        } else {
            out += fmt::format("        self.{0} = {0}\n", f.name);
        }
    }

    // validate(): the same rules and messages as the C++ registry.
    out += "\n    def validate(self):\n        \"\"\"Raises ValidationError naming the field and the rule.\"\"\"\n";
    bool any_check = false;
    for (const Field& f : m.fields) {
        const auto fail = [&](const std::string& rule, const std::string& detail_expr) {
            return fmt::format("raise ValidationError({}, {}, {}, {})", py_string(m.name), py_string(f.name),
                               py_string(rule), detail_expr);
        };
        if (f.kind == FieldKind::String || f.kind == FieldKind::Vec) {
            any_check = true;
            const std::size_t max = f.validation.max_length.value_or(f.capacity);
            if (f.kind == FieldKind::String) {
                out += fmt::format("        n = len(self.{}.encode('utf-8'))\n", f.name);
            } else {
                out += fmt::format("        n = len(self.{})\n", f.name);
            }
            out += fmt::format("        if n > {}:\n            {}\n", max,
                               fail("max_length", fmt::format("f'length {{n}} is above {}'", max)));
            if (f.validation.not_empty) {
                out += fmt::format("        if n == 0:\n            {}\n", fail("not_empty", "'must not be empty'"));
            }
            if (f.validation.min_length) {
                out += fmt::format("        if n < {}:\n            {}\n", *f.validation.min_length,
                                   fail("min_length", fmt::format("f'length {{n}} is below {}'", *f.validation.min_length)));
            }
        } else if (is_byte_array(f)) {
            any_check = true;
            out += fmt::format("        if len(self.{}) != {}:\n            {}\n", f.name, f.capacity,
                               fail("size", fmt::format("f'expected {} bytes, got {{len(self.{})}}'", f.capacity, f.name)));
        } else if (f.kind == FieldKind::Array) {
            any_check = true;
            out += fmt::format("        if len(self.{}) != {}:\n            {}\n", f.name, f.capacity,
                               fail("size", fmt::format("f'expected {} values, got {{len(self.{})}}'", f.capacity, f.name)));
        }
        const std::string range = range_of(f.element);
        if (range.empty() || f.kind == FieldKind::String || is_byte_array(f)) continue;
        any_check = true;
        const std::string detail = fmt::format("f'{{v}} is outside the range of {}'", schema::scalar_name(f.element));
        if (f.kind == FieldKind::Scalar) {
            out += fmt::format("        v = self.{}\n        if not {} <= v <= {}:\n            {}\n", f.name,
                               range_lo(f.element), range_hi(f.element), fail("range", detail));
        } else {
            out += fmt::format("        for v in self.{}:\n            if not {} <= v <= {}:\n                {}\n", f.name,
                               range_lo(f.element), range_hi(f.element), fail("range", detail));
        }
    }
    if (!any_check) out += "        return None\n";

    // to_bytes(): validate, then one pack call. When every field is a scalar, pack's own
    // checks are validate()'s (integer ranges; floats and bools have no rule), so pack
    // goes first and validate() only names the field once pack has refused a value: a
    // publish costs one call less (docs/python-sdk.md, "Performance").
    const bool scalars_only =
        std::all_of(m.fields.begin(), m.fields.end(), [](const Field& f) { return f.kind == FieldKind::Scalar; });
    if (scalars_only) {
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

    // from_bytes(): one unpack, then slice the variable parts.
    out += "\n    @classmethod\n    def from_bytes(cls, data):\n";
    out += fmt::format("        if len(data) != {}:\n", m.size);
    out += fmt::format("            raise DecodeError(f'{}: expected {} bytes, got {{len(data)}}')\n", m.name, m.size);
    out += "        v = cls._STRUCT.unpack(data)\n        self = cls.__new__(cls)\n";
    std::size_t index = 0;
    for (const Field& f : m.fields) {
        switch (f.kind) {
            case FieldKind::Scalar:
                out += fmt::format("        self.{} = v[{}]\n", f.name, index++);
                break;
            case FieldKind::Array:
                if (is_byte_array(f)) {
                    out += fmt::format("        self.{} = v[{}]\n", f.name, index++);
                } else {
                    out += fmt::format("        self.{} = v[{}:{}]\n", f.name, index, index + f.capacity);
                    index += f.capacity;
                }
                break;
            case FieldKind::String:
                out += fmt::format("        self.{} = _unpack_str(v[{}], v[{}], {}, {})\n", f.name, index, index + 1,
                                   py_string(m.name + "." + f.name), f.capacity);
                index += 2;
                break;
            case FieldKind::Vec:
                out += fmt::format("        n = v[{}]\n", index);
                out += fmt::format("        if n > {}:\n            raise DecodeError(f'{}.{}: count {{n}} exceeds the capacity {}')\n",
                                   f.capacity, m.name, f.name, f.capacity);
                out += fmt::format("        self.{} = v[{}:{} + n]\n", f.name, index + 1, index + 1);
                index += 1 + f.capacity;
                break;
        }
    }
    out += "        return self\n";

    out += "\n    def __eq__(self, other):\n        if type(other) is not type(self):\n            return NotImplemented\n";
    out += "        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__)\n";
    out += "\n    __hash__ = None\n";
    out += "\n    def __repr__(self):\n";
    out += "        body = ', '.join(f'{f}={getattr(self, f)!r}' for f in self.__slots__)\n";
    out += "        return f'{type(self).__name__}({body})'\n";
}

}  // namespace

std::string generate_python(const schema::Registry& registry) {
    std::string out = fmt::format(
        "# Generated by `mycelium-host codegen` from {} — do not edit.\n"
        "# Regenerate when the contracts change; SCHEMA_DIGEST records the file it came from.\n"
        "\"\"\"Message classes for the contracts with digest {}.\"\"\"\n\n"
        "import struct\n\n"
        "SCHEMA_DIGEST = bytes.fromhex('{}')\n\n\n",
        std::filesystem::path(registry.source_name()).filename().string(), registry.digest_hex(),
        registry.digest_hex());
    out += R"PY(class ValidationError(ValueError):
    """A field breaks a rule of the contracts: names the message, the field and the rule."""

    def __init__(self, message, field, rule, detail):
        super().__init__(f'{message}.{field}: {rule}: {detail}')
        self.message = message
        self.field = field
        self.rule = rule


class DecodeError(ValueError):
    """Bytes that are not a valid encoding of the message."""


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
)PY";
    for (const MessageSchema& m : registry.messages()) emit_class(out, m);
    out += "\n\nMESSAGES = {";
    for (const MessageSchema& m : registry.messages()) out += fmt::format("\n    {}: {},", m.type_id, m.name);
    out += "\n}\n";
    return out;
}

}  // namespace mycelium::codegen
