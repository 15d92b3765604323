// JSON <-> payload for tap and pub. The parser accepts exactly what those tools need:
// one flat object whose values are numbers, strings, booleans, null, or arrays of those
// (two deep at most: an array of `[u8; N]` may be written as arrays of numbers).
//
// JSON numbers are doubles to most readers, so the values a double cannot hold are
// strings: a U256 is printed as its decimal digits, and bytes (`[u8; N]`, the elements of
// `Vec<[u8; N]>` and `[[u8; N]; M]`) as "0x" and lowercase hex.

#include "mycelium/json_message.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

#include "mycelium/unaligned.hpp"
#include <limits>
#include <map>
#include <optional>

#include "mycelium/json.hpp"
#include "mycelium/utf8.hpp"

namespace mycelium::json_message {

namespace {

using schema::ElementKind;
using schema::Field;
using schema::FieldKind;
using schema::Scalar;

constexpr std::size_t U256_SIZE = 32;

std::string scalar_json(Scalar s, const std::byte* p) {
    switch (s) {
        case Scalar::U8: return std::to_string(load_unaligned<std::uint8_t>(p));
        case Scalar::U16: return std::to_string(load_unaligned<std::uint16_t>(p));
        case Scalar::U32: return std::to_string(load_unaligned<std::uint32_t>(p));
        case Scalar::U64: return std::to_string(load_unaligned<std::uint64_t>(p));
        case Scalar::I8: return std::to_string(load_unaligned<std::int8_t>(p));
        case Scalar::I16: return std::to_string(load_unaligned<std::int16_t>(p));
        case Scalar::I32: return std::to_string(load_unaligned<std::int32_t>(p));
        case Scalar::I64: return std::to_string(load_unaligned<std::int64_t>(p));
        case Scalar::F32:
        case Scalar::F64: {
            const double d = s == Scalar::F32 ? load_unaligned<float>(p) : load_unaligned<double>(p);
            if (!std::isfinite(d)) return "null";
            return s == Scalar::F32 ? fmt::format("{}", static_cast<float>(d)) : fmt::format("{}", d);
        }
        case Scalar::Bool: return load_unaligned<std::uint8_t>(p) != 0 ? "true" : "false";
    }
    return "null";
}

/// `[u8; N]` as a JSON string: "0x" and lowercase hex.
std::string hex_json(const std::byte* p, std::size_t n) {
    static constexpr char DIGITS[] = "0123456789abcdef";
    std::string out = "\"0x";
    out.reserve(n * 2 + 4);
    for (std::size_t i = 0; i < n; ++i) {
        const auto b = std::to_integer<unsigned>(p[i]);
        out.push_back(DIGITS[b >> 4]);
        out.push_back(DIGITS[b & 0xf]);
    }
    return out + "\"";
}

/// A big-endian U256's decimal digits, by long division by 10 (78 digits at most).
std::string u256_decimal(const std::byte* p) {
    std::array<std::uint8_t, U256_SIZE> n{};
    std::memcpy(n.data(), p, U256_SIZE);
    std::string digits;
    for (;;) {
        unsigned remainder = 0;
        bool zero = true;
        for (auto& byte : n) {
            const unsigned cur = remainder * 256 + byte;
            byte = static_cast<std::uint8_t>(cur / 10);
            remainder = cur % 10;
            zero = zero && byte == 0;
        }
        digits.push_back(static_cast<char>('0' + remainder));
        if (zero) break;
    }
    return {digits.rbegin(), digits.rend()};
}

/// A U256 as a JSON string of decimal digits.
std::string u256_json(const std::byte* p) { return fmt::format("\"{}\"", u256_decimal(p)); }

/// One element of an array or a vector: a number, a U256's decimal string, or hex bytes.
std::string element_json(const Field& f, const std::byte* p) {
    switch (f.element_kind) {
        case ElementKind::Scalar: return scalar_json(f.element, p);
        case ElementKind::U256: return u256_json(p);
        case ElementKind::Bytes: return hex_json(p, f.element_size);
    }
    return "null";
}

bool is_byte_array(const Field& f) {
    return f.kind == FieldKind::Array && f.element_kind == ElementKind::Scalar && f.element == Scalar::U8;
}

// ---------------------------------------------------------------- a small parser

struct Value {
    enum class Kind { Null, Bool, Number, String, Array } kind = Kind::Null;
    bool boolean = false;
    std::string text;  ///< the number as written, or the decoded string
    std::vector<Value> items;
};

class Parser {
public:
    explicit Parser(std::string_view text) : text_(text) {}

    Result<std::map<std::string, Value>, std::string> object() {
        std::map<std::string, Value> fields;
        skip_space();
        if (!consume('{')) return fail("expected '{'");
        skip_space();
        if (consume('}')) return finish(std::move(fields));
        for (;;) {
            skip_space();
            auto key = string();
            if (!key) return Err{key.error()};
            skip_space();
            if (!consume(':')) return fail("expected ':'");
            auto value = parse_value(0);
            if (!value) return Err{value.error()};
            if (!fields.emplace(*key, std::move(*value)).second) return fail("duplicate key '" + *key + "'");
            skip_space();
            if (consume(',')) continue;
            if (consume('}')) return finish(std::move(fields));
            return fail("expected ',' or '}'");
        }
    }

private:
    Result<std::map<std::string, Value>, std::string> finish(std::map<std::string, Value> fields) {
        skip_space();
        if (pos_ != text_.size()) return fail("unexpected text after the object");
        return fields;
    }

    Err<std::string> fail(const std::string& what) const {
        return Err{fmt::format("invalid JSON at offset {}: {}", pos_, what)};
    }

    void skip_space() {
        while (pos_ < text_.size() && std::strchr(" \t\r\n", text_[pos_]) != nullptr && text_[pos_] != '\0') ++pos_;
    }
    bool consume(char c) {
        if (pos_ < text_.size() && text_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    bool consume_word(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    Result<Value, std::string> parse_value(int depth) {
        skip_space();
        Value v;
        if (pos_ >= text_.size()) return fail("unexpected end");
        const char c = text_[pos_];
        if (c == '"') {
            auto s = string();
            if (!s) return Err{s.error()};
            v.kind = Value::Kind::String;
            v.text = std::move(*s);
        } else if (c == '[') {
            if (depth > 1) return fail("arrays nest at most two deep");
            ++pos_;
            v.kind = Value::Kind::Array;
            skip_space();
            if (!consume(']')) {
                for (;;) {
                    auto item = parse_value(depth + 1);
                    if (!item) return Err{item.error()};
                    v.items.push_back(std::move(*item));
                    skip_space();
                    if (consume(',')) continue;
                    if (consume(']')) break;
                    return fail("expected ',' or ']'");
                }
            }
        } else if (consume_word("true")) {
            v.kind = Value::Kind::Bool;
            v.boolean = true;
        } else if (consume_word("false")) {
            v.kind = Value::Kind::Bool;
        } else if (consume_word("null")) {
            v.kind = Value::Kind::Null;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            const std::size_t start = pos_;
            while (pos_ < text_.size() && std::strchr("+-.eE0123456789", text_[pos_]) != nullptr &&
                   text_[pos_] != '\0') {
                ++pos_;
            }
            v.kind = Value::Kind::Number;
            v.text = std::string(text_.substr(start, pos_ - start));
        } else {
            return fail(std::string("unexpected character '") + c + "'");
        }
        return v;
    }

    Result<std::string, std::string> string() {
        if (!consume('"')) return fail("expected a string");
        std::string out;
        while (pos_ < text_.size()) {
            const char c = text_[pos_++];
            if (c == '"') return out;
            if (c != '\\') {
                out.push_back(c);
                continue;
            }
            if (pos_ >= text_.size()) break;
            const char e = text_[pos_++];
            switch (e) {
                case '"': out.push_back('"'); break;
                case '\\': out.push_back('\\'); break;
                case '/': out.push_back('/'); break;
                case 'b': out.push_back('\b'); break;
                case 'f': out.push_back('\f'); break;
                case 'n': out.push_back('\n'); break;
                case 'r': out.push_back('\r'); break;
                case 't': out.push_back('\t'); break;
                case 'u': {
                    unsigned code = 0;
                    const auto hex = text_.substr(pos_, 4);
                    const auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), code, 16);
                    if (ec != std::errc{} || end != hex.data() + 4) return fail("bad \\u escape");
                    pos_ += 4;
                    // Basic Multilingual Plane only; enough for names and notes.
                    if (code < 0x80) {
                        out.push_back(static_cast<char>(code));
                    } else if (code < 0x800) {
                        out.push_back(static_cast<char>(0xc0 | (code >> 6)));
                        out.push_back(static_cast<char>(0x80 | (code & 0x3f)));
                    } else {
                        out.push_back(static_cast<char>(0xe0 | (code >> 12)));
                        out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3f)));
                        out.push_back(static_cast<char>(0x80 | (code & 0x3f)));
                    }
                    break;
                }
                default: return fail(std::string("bad escape '\\") + e + "'");
            }
        }
        return fail("unterminated string");
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

// ---------------------------------------------------------------- encoding values

/// Where a value goes, for errors: "PoolState.reserve" or "PoolState.hops[1]". A
/// sensitive message's values are not repeated in errors (docs/contracts.md).
struct Target {
    std::string where;
    bool sensitive = false;

    /// `text` quoted for an error, shortened, or "the value" for a sensitive message.
    std::string shown(std::string_view text) const {
        if (sensitive) return "the value";
        if (text.size() > 80) return fmt::format("'{}...'", text.substr(0, 77));
        return fmt::format("'{}'", text);
    }
    Target at(std::size_t index) const { return {fmt::format("{}[{}]", where, index), sensitive}; }
};

std::optional<std::string> encode_scalar(const Target& t, Scalar s, const Value& v, std::byte* p) {
    const std::string& where = t.where;
    if (s == Scalar::Bool) {
        if (v.kind != Value::Kind::Bool) return where + ": expected true or false";
        store_unaligned(p, static_cast<std::uint8_t>(v.boolean));
        return std::nullopt;
    }
    if (v.kind != Value::Kind::Number) return where + ": expected a number";
    if (s == Scalar::F32 || s == Scalar::F64) {
        double d = 0;
        const auto [end, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), d);
        if (ec != std::errc{} || end != v.text.data() + v.text.size()) return where + ": " + t.shown(v.text) + " is not a number";
        if (s == Scalar::F32) {
            // Out of range for f32, as 1e400 is for f64 (from_chars refuses that one): it
            // would become an infinity, which tap prints as null. The bound is the largest
            // f32 plus half its last step; anything below rounds to a finite f32.
            constexpr double F32_OVERFLOW = 0x1.ffffffp+127;
            if (std::fabs(d) >= F32_OVERFLOW) return where + ": " + t.shown(v.text) + " is not a f32";
            store_unaligned(p, static_cast<float>(d));
        } else {
            store_unaligned(p, d);
        }
        return std::nullopt;
    }
    const bool is_signed = s == Scalar::I8 || s == Scalar::I16 || s == Scalar::I32 || s == Scalar::I64;
    const std::size_t size = schema::scalar_size(s);
    std::uint64_t bits = 0;
    bool ok = false;
    if (is_signed) {
        std::int64_t x = 0;
        const auto [end, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), x);
        const std::int64_t lo = size == 8 ? std::numeric_limits<std::int64_t>::min() : -(std::int64_t{1} << (size * 8 - 1));
        const std::int64_t hi = size == 8 ? std::numeric_limits<std::int64_t>::max() : (std::int64_t{1} << (size * 8 - 1)) - 1;
        ok = ec == std::errc{} && end == v.text.data() + v.text.size() && x >= lo && x <= hi;
        bits = static_cast<std::uint64_t>(x);
    } else {
        std::uint64_t x = 0;
        const auto [end, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), x);
        const std::uint64_t hi = size == 8 ? std::numeric_limits<std::uint64_t>::max() : (std::uint64_t{1} << (size * 8)) - 1;
        ok = ec == std::errc{} && end == v.text.data() + v.text.size() && x <= hi;
        bits = x;
    }
    if (!ok) return where + ": " + t.shown(v.text) + " is not a " + std::string(schema::scalar_name(s));
    switch (size) {
        case 1: store_unaligned(p, static_cast<std::uint8_t>(bits)); break;
        case 2: store_unaligned(p, static_cast<std::uint16_t>(bits)); break;
        case 4: store_unaligned(p, static_cast<std::uint32_t>(bits)); break;
        default: store_unaligned(p, bits); break;
    }
    return std::nullopt;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool has_0x(std::string_view s) { return s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'); }

/// `size` bytes from a hex string ("0x" optional, exactly 2 * size digits) or, as before
/// hex was accepted, from an array of `size` numbers 0-255.
std::optional<std::string> encode_bytes(const Target& t, std::size_t size, const Value& v, std::byte* p) {
    if (v.kind == Value::Kind::Array) {
        if (v.items.size() != size) return fmt::format("{}: expected {} bytes, got {} values", t.where, size, v.items.size());
        for (std::size_t i = 0; i < size; ++i) {
            if (auto e = encode_scalar(t.at(i), Scalar::U8, v.items[i], p + i)) return e;
        }
        return std::nullopt;
    }
    if (v.kind != Value::Kind::String) return fmt::format("{}: expected {} bytes as a hex string", t.where, size);
    std::string_view hex = v.text;
    if (has_0x(hex)) hex.remove_prefix(2);
    for (char c : hex) {
        if (hex_digit(c) < 0) return t.where + ": " + t.shown(v.text) + " is not hex";
    }
    if (hex.size() != size * 2) {
        return fmt::format("{}: expected {} bytes ({} hex digits), got {} hex digits", t.where, size, size * 2, hex.size());
    }
    for (std::size_t i = 0; i < size; ++i) {
        p[i] = static_cast<std::byte>(hex_digit(hex[2 * i]) * 16 + hex_digit(hex[2 * i + 1]));
    }
    return std::nullopt;
}

/// A U256 from a JSON integer or a string of decimal digits, or of hex digits after "0x";
/// stored big-endian, as Mycelium stores it.
std::optional<std::string> encode_u256(const Target& t, const Value& v, std::byte* p) {
    if (v.kind != Value::Kind::Number && v.kind != Value::Kind::String) {
        return t.where + ": expected a U256 as an integer, a decimal string or a 0x-hex string";
    }
    const std::string not_u256 = t.where + ": " + t.shown(v.text) + " is not a U256 (decimal or 0x-hex, 0 to 2**256-1)";
    std::string_view digits = v.text;
    const bool hex = v.kind == Value::Kind::String && has_0x(digits);
    if (hex) digits.remove_prefix(2);
    if (digits.empty()) return not_u256;
    std::array<unsigned, U256_SIZE> n{};  // big-endian bytes, each < 256 between steps
    const unsigned base = hex ? 16 : 10;
    for (char c : digits) {
        const int d = hex_digit(c);
        if (d < 0 || static_cast<unsigned>(d) >= base) return not_u256;
        unsigned carry = static_cast<unsigned>(d);
        for (std::size_t i = U256_SIZE; i-- > 0;) {
            const unsigned cur = n[i] * base + carry;
            n[i] = cur & 0xff;
            carry = cur >> 8;
        }
        if (carry != 0) return t.where + ": " + t.shown(v.text) + " is above the largest U256 (2**256-1)";
    }
    for (std::size_t i = 0; i < U256_SIZE; ++i) p[i] = static_cast<std::byte>(n[i]);
    return std::nullopt;
}

/// One element of an array or a vector.
std::optional<std::string> encode_element(const Target& t, const Field& f, const Value& v, std::byte* p) {
    switch (f.element_kind) {
        case ElementKind::Scalar: return encode_scalar(t, f.element, v, p);
        case ElementKind::U256: return encode_u256(t, v, p);
        case ElementKind::Bytes: return encode_bytes(t, f.element_size, v, p);
    }
    return std::nullopt;
}

/// A String or Vec longer than its capacity cannot be encoded, so the registry never sees
/// it: say what its max_length rule would, in the registry's words (and the in-host classes').
std::string too_long(const std::string& where, std::size_t length, std::size_t capacity) {
    return fmt::format("{}: max_length: length {} is above {}", where, length, capacity);
}

std::optional<std::string> encode_field(const Target& t, const Field& f, const Value& v, std::byte* base) {
    std::byte* p = base + f.offset;
    const std::string& where = t.where;
    switch (f.kind) {
        case FieldKind::Scalar: return encode_scalar(t, f.element, v, p);
        case FieldKind::U256: return encode_u256(t, v, p);
        case FieldKind::String:
            if (v.kind != Value::Kind::String) return where + ": expected a string";
            if (v.text.size() > f.capacity) {
                return too_long(where, v.text.size(), f.capacity);
            }
            store_unaligned(p, static_cast<std::uint16_t>(v.text.size()));
            std::memcpy(p + schema::FIXED_HEADER_SIZE, v.text.data(), v.text.size());
            return std::nullopt;
        case FieldKind::Array:
        case FieldKind::Vec: {
            if (is_byte_array(f)) return encode_bytes(t, f.capacity, v, p);
            if (v.kind != Value::Kind::Array) return where + ": expected an array";
            const bool is_vec = f.kind == FieldKind::Vec;
            if (!is_vec && v.items.size() != f.capacity) {
                return fmt::format("{}: expected {} values, got {}", where, f.capacity, v.items.size());
            }
            if (is_vec && v.items.size() > f.capacity) {
                return too_long(where, v.items.size(), f.capacity);
            }
            std::byte* data = p;
            if (is_vec) {
                store_unaligned(p, static_cast<std::uint16_t>(v.items.size()));
                data += schema::FIXED_HEADER_SIZE;
            }
            for (std::size_t i = 0; i < v.items.size(); ++i) {
                if (auto e = encode_element(t.at(i), f, v.items[i], data + i * f.element_size)) return e;
            }
            return std::nullopt;
        }
    }
    return std::nullopt;
}

}  // namespace

PrintedMessage to_json(const schema::MessageSchema& schema, std::span<const std::byte> payload) {
    PrintedMessage printed;
    if (payload.size() != schema.size) {
        printed.json = "{}";
        printed.invalid.push_back(fmt::format("payload is {} bytes, {} is {}", payload.size(), schema.name, schema.size));
        return printed;
    }
    std::string& out = printed.json;
    out = "{";
    // A length prefix read from the payload, or nullopt (and the field marked) when it is
    // above the capacity: clamping it would print a cut string or vector as if whole.
    const auto length_of = [&](const Field& f, const std::byte* p) -> std::optional<std::size_t> {
        const std::size_t n = load_unaligned<std::uint16_t>(p);
        if (n <= f.capacity) return n;
        out += fmt::format("{{\"invalid_length\": {}, \"capacity\": {}}}", n, f.capacity);
        printed.invalid.push_back(fmt::format("{}: length {} is above the capacity {}", f.name, n, f.capacity));
        return std::nullopt;
    };
    for (std::size_t i = 0; i < schema.fields.size(); ++i) {
        const Field& f = schema.fields[i];
        const std::byte* p = payload.data() + f.offset;
        out += (i == 0 ? "" : ", ") + json_quote(f.name) + ": ";
        switch (f.kind) {
            case FieldKind::Scalar: out += scalar_json(f.element, p); break;
            case FieldKind::U256: out += u256_json(p); break;
            case FieldKind::String: {
                const auto n = length_of(f, p);
                if (!n) break;
                const std::byte* data = p + schema::FIXED_HEADER_SIZE;
                const std::string_view text{reinterpret_cast<const char*>(data), *n};
                std::size_t at = 0;
                while (at < text.size()) {
                    const std::size_t step = utf8::sequence_length(text, at);
                    if (step == 0) break;
                    at += step;
                }
                if (at == text.size()) {
                    out += json_quote(text);
                } else {
                    out += "{\"invalid_utf8\": " + hex_json(data, *n) + "}";
                    printed.invalid.push_back(fmt::format("{}: not UTF-8 at offset {} of {} bytes", f.name, at, *n));
                }
                break;
            }
            case FieldKind::Array:
            case FieldKind::Vec: {
                if (is_byte_array(f)) {
                    out += hex_json(p, f.capacity);
                    break;
                }
                std::size_t n = f.capacity;
                const std::byte* data = p;
                if (f.kind == FieldKind::Vec) {
                    const auto length = length_of(f, p);
                    if (!length) break;
                    n = *length;
                    data += schema::FIXED_HEADER_SIZE;
                }
                out += "[";
                for (std::size_t k = 0; k < n; ++k) {
                    out += (k == 0 ? "" : ", ") + element_json(f, data + k * f.element_size);
                }
                out += "]";
                break;
            }
        }
    }
    out += "}";
    return printed;
}

Result<std::vector<std::byte>, std::string> from_json(const schema::MessageSchema& schema, std::string_view json) {
    auto parsed = Parser(json).object();
    if (!parsed) return Err{parsed.error()};
    std::vector<std::byte> payload(schema.size);
    for (const auto& [name, value] : *parsed) {
        const Field* f = schema.find_field(name);
        if (f == nullptr) return Err{fmt::format("{} has no field '{}'", schema.name, name)};
        if (auto error = encode_field(Target{schema.name + "." + name, schema.sensitive}, *f, value, payload.data())) {
            return Err{*error};
        }
    }
    return payload;
}

}  // namespace mycelium::json_message
