// Emits a C++ header whose structs have exactly the registry's layout. Padding is
// written out as named zero-initialised members so that a value-initialised struct has
// the same bytes as the Python encoder's output, and every offset is pinned by a
// static_assert: if a compiler ever disagreed with the registry, the build would stop.

#include <fmt/format.h>

#include <algorithm>

#include <filesystem>

#include "mycelium/codegen.hpp"

namespace mycelium::codegen {

namespace {

using schema::Field;
using schema::FieldKind;
using schema::MessageSchema;
using schema::Scalar;

std::string cpp_scalar(Scalar s) {
    switch (s) {
        case Scalar::U8: return "std::uint8_t";
        case Scalar::U16: return "std::uint16_t";
        case Scalar::U32: return "std::uint32_t";
        case Scalar::U64: return "std::uint64_t";
        case Scalar::I8: return "std::int8_t";
        case Scalar::I16: return "std::int16_t";
        case Scalar::I32: return "std::int32_t";
        case Scalar::I64: return "std::int64_t";
        case Scalar::F32: return "float";
        case Scalar::F64: return "double";
        case Scalar::Bool: return "bool";
    }
    return "std::uint8_t";
}

/// One element of an array or a vector.
std::string cpp_element(const Field& f) {
    switch (f.element_kind) {
        case schema::ElementKind::Scalar: return cpp_scalar(f.element);
        case schema::ElementKind::U256: return "::mycelium::U256";
        case schema::ElementKind::Bytes: return fmt::format("std::array<std::uint8_t, {}>", f.element_size);
    }
    return "";
}

std::string cpp_type(const Field& f) {
    switch (f.kind) {
        case FieldKind::Scalar: return cpp_scalar(f.element);
        case FieldKind::U256: return "::mycelium::U256";
        case FieldKind::Array: return fmt::format("std::array<{}, {}>", cpp_element(f), f.capacity);
        case FieldKind::String: return fmt::format("::mycelium::FixedStr<{}>", f.capacity);
        case FieldKind::Vec: return fmt::format("::mycelium::FixedVec<{}, {}>", cpp_element(f), f.capacity);
    }
    return "";
}

/// A C++ string literal's body: quotes and backslashes escaped, control characters as
/// three-digit octal (a \x escape would swallow the hex digits that follow it).
std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (u < 0x20 || u == 0x7f) {
            out += fmt::format("\\{:03o}", u);
        } else {
            out.push_back(c);
        }
    }
    return out;
}

/// Text from the contracts as `///` lines: every line break starts a new comment line,
/// so no text can leave the comment, and a trailing backslash (which would splice the
/// next source line into the comment) is dropped, as are other control characters.
std::string doc_comment(std::string_view text, std::string_view indent) {
    std::string out;
    std::string line;
    const auto flush = [&] {
        while (!line.empty() && (line.back() == '\\' || line.back() == ' ')) line.pop_back();
        out += fmt::format("{}/// {}\n", indent, line);
        line.clear();
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n' || c == '\r') {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
            flush();
        } else if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) {
            line.push_back(c);
        } else if (c == '\t') {
            line.push_back(' ');
        }
    }
    flush();
    return out;
}

/// A file name on one `//` line: control characters and a trailing backslash dropped.
std::string one_line(std::string_view text) {
    std::string line = doc_comment(text, "");
    line = line.substr(4, line.find('\n') - 4);  // the first line, without "/// "
    return line;
}

void emit_struct(std::string& out, const MessageSchema& m) {
    const std::string& name = m.cpp_name;
    if (!m.description.empty()) out += doc_comment(m.description, "");
    out += fmt::format("struct {} {{\n", name);
    out += fmt::format("    static constexpr std::uint16_t TYPE_ID = {};\n", m.type_id);
    out += fmt::format("    static constexpr std::string_view NAME = \"{}\";\n", escape(m.name));
    out += fmt::format("    static constexpr std::string_view TOPIC = \"{}\";\n", escape(m.topic));
    out += fmt::format("    static constexpr std::size_t SIZE = {};\n\n", m.size);

    std::size_t cursor = 0;
    int pad_index = 0;
    // Padding members are named padding_N_, with more underscores if a field has that name.
    const auto padding_name = [&] {
        std::string padding = fmt::format("padding_{}_", pad_index++);
        while (std::any_of(m.fields.begin(), m.fields.end(), [&](const Field& f) { return f.cpp_name == padding; })) {
            padding.push_back('_');
        }
        return padding;
    };
    const auto pad_to = [&](std::size_t offset) {
        if (offset > cursor) out += fmt::format("    std::uint8_t {}[{}]{{}};\n", padding_name(), offset - cursor);
        cursor = offset;
    };
    for (const Field& f : m.fields) {
        pad_to(f.offset);
        if (!f.description.empty()) out += doc_comment(f.description, "    ");
        out += fmt::format("    {} {}{{}};\n", cpp_type(f), f.cpp_name);
        cursor = f.offset + f.size;
    }
    pad_to(m.size);
    out += "};\n";

    out += fmt::format("static_assert(sizeof({0}) == {1}, \"{0}: size differs from the contracts\");\n", name,
                       m.size);
    out += fmt::format("static_assert(alignof({0}) == {1}, \"{0}: alignment differs from the contracts\");\n",
                       name, m.align);
    out += fmt::format("static_assert(std::is_trivially_copyable_v<{}>);\n", name);
    for (const Field& f : m.fields) {
        out += fmt::format("static_assert(offsetof({0}, {1}) == {2}, \"{0}.{1}: offset differs from the contracts\");\n",
                           name, f.cpp_name, f.offset);
    }
    out += "\n";
}

void emit_schema_version(std::string& out, const schema::Registry& registry) {
    const auto& v = registry.version();
    if (!v) return;
    out += "/// The contracts' `schema:` section.\n";
    out += fmt::format("inline constexpr std::uint32_t SCHEMA_ID = {:#x};\n", v->id);
    out += fmt::format("inline constexpr std::uint16_t SCHEMA_VERSION = {};\n", v->version);
    if (v->min_compatible) {
        out += fmt::format("inline constexpr std::uint16_t SCHEMA_MIN_COMPATIBLE = {};\n", *v->min_compatible);
    }
    out += "\n";
}

}  // namespace

std::string generate_cpp(const schema::Registry& registry, const CppOptions& options) {
    std::string out;
    out += fmt::format(
        "// Generated by `mycelium-host codegen` from {} — do not edit.\n"
        "// Regenerate when the contracts change; SCHEMA_DIGEST records the file it came from.\n"
        "#pragma once\n\n"
        "#include <array>\n#include <cstddef>\n#include <cstdint>\n#include <string_view>\n"
        "#include <type_traits>\n\n#include <mycelium/fixed.hpp>\n\n",
        one_line(std::filesystem::path(registry.source_name()).filename().string()));
    // offsetof on these standard-layout structs is well defined; gcc warns anyway for
    // structs with default member initialisers.
    out += "#if defined(__GNUC__)\n#pragma GCC diagnostic push\n"
           "#pragma GCC diagnostic ignored \"-Winvalid-offsetof\"\n#endif\n\n";
    out += fmt::format("namespace {} {{\n\n", options.namespace_name);
    out += "/// SHA-256 of the contracts file these structs were generated from.\n";
    out += "inline constexpr std::array<std::uint8_t, 32> SCHEMA_DIGEST = {";
    for (std::size_t i = 0; i < registry.digest().size(); ++i) {
        out += fmt::format("{}0x{:02x}", i == 0 ? "" : ", ", registry.digest()[i]);
    }
    out += "};\n";
    out += fmt::format("inline constexpr std::string_view SCHEMA_DIGEST_HEX = \"{}\";\n\n", registry.digest_hex());
    emit_schema_version(out, registry);
    for (const MessageSchema& m : registry.messages()) emit_struct(out, m);
    out += fmt::format("}}  // namespace {}\n\n", options.namespace_name);
    out += "#if defined(__GNUC__)\n#pragma GCC diagnostic pop\n#endif\n";
    return out;
}

}  // namespace mycelium::codegen
