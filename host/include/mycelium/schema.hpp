#pragma once
/// The schema registry: message layouts parsed from contracts.yaml (DESIGN.md section 3).
/// One parser serves every language: the C++ codec, the embedded Python classes and the
/// code generator all read this registry.
///
/// Thread safety: a loaded Registry is immutable; concurrent reads are safe.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mycelium/result.hpp"

namespace mycelium::schema {

/// Largest payload a frame may carry unless configured lower (DESIGN.md section 6).
inline constexpr std::size_t DEFAULT_MAX_PAYLOAD = 4u * 1024u * 1024u;
/// Application type ids; 1-999 are the runtime's control messages.
inline constexpr std::uint16_t MIN_APP_TYPE_ID = 1000;
/// Bytes before the data of a FixedStr or FixedVec: u16 length, 6 zero bytes.
inline constexpr std::size_t FIXED_HEADER_SIZE = 8;

/// Primitive element types.
enum class Scalar : std::uint8_t { U8, U16, U32, U64, I8, I16, I32, I64, F32, F64, Bool };

/// How a field is laid out.
enum class FieldKind : std::uint8_t {
    Scalar,  ///< one element
    Array,   ///< `[T; N]`: N elements, no header
    String,  ///< FixedStr<N>: u16 byte length, 6 zero bytes, N bytes of UTF-8, zero-padded
    Vec,     ///< FixedVec<T, N>: u16 count, 6 zero bytes, N elements of T
};

/// Size in bytes of one element; also its alignment.
std::size_t scalar_size(Scalar s) noexcept;
/// The contracts spelling: "u8", "f64", "bool", ...
std::string_view scalar_name(Scalar s) noexcept;
std::optional<Scalar> parse_scalar(std::string_view name) noexcept;

/// Rules checked on publish; lengths count bytes for String and elements for Vec.
struct Validation {
    bool not_empty = false;
    std::optional<std::size_t> min_length;
    std::optional<std::size_t> max_length;
};

struct Field {
    std::string name;
    FieldKind kind = FieldKind::Scalar;
    Scalar element = Scalar::U8;  ///< the scalar, or the element of an array or vector
    std::size_t capacity = 1;     ///< N of an array, string or vector; 1 for a scalar
    std::size_t offset = 0;
    std::size_t size = 0;
    std::size_t align = 1;
    std::string type_text;        ///< as written: "u64", "String", "Vec<f64>", "[u8; 32]"
    Validation validation;
    int line = 0;                 ///< 1-based line in the contracts file
};

struct MessageSchema {
    std::string name;
    std::uint16_t type_id = 0;
    std::string topic;            ///< `topic:` if given, else the name in snake_case
    std::string domain;
    std::string description;
    std::size_t size = 0;
    std::size_t align = 1;
    std::vector<Field> fields;
    int line = 0;

    const Field* find_field(std::string_view field_name) const noexcept;
};

/// A contracts file that cannot be loaded. what() reads
/// "contracts.yaml:12: message 'Order', field 'qty': unknown type 'u128'".
class SchemaError : public std::runtime_error {
public:
    SchemaError(std::string file, int line, std::string message_name, std::string field_name,
                std::string problem);
    const std::string& file() const noexcept { return file_; }
    int line() const noexcept { return line_; }
    const std::string& message_name() const noexcept { return message_; }
    const std::string& field_name() const noexcept { return field_; }
    const std::string& problem() const noexcept { return problem_; }

private:
    std::string file_;
    int line_;
    std::string message_;
    std::string field_;
    std::string problem_;
};

/// Which rule a payload broke, for an error that names the message, the field and the rule.
struct ValidationFailure {
    std::string message;
    std::string field;
    std::string rule;    ///< "not_empty", "min_length", "max_length", "utf8", "size"
    std::string detail;  ///< "TextMessage.sender: not_empty: must not be empty"
};

struct LoadOptions {
    std::size_t max_payload = DEFAULT_MAX_PAYLOAD;
};

using Digest = std::array<std::uint8_t, 32>;

/// SHA-256 of a byte string (the schema digest is that of the contracts file's bytes).
Digest sha256(std::string_view bytes);
std::string to_hex(std::span<const std::uint8_t> bytes);

class Registry {
public:
    Registry() = default;

    /// Parses a contracts file. Throws SchemaError naming the file, line, message, field.
    static Registry load_file(const std::filesystem::path& path, const LoadOptions& options = {});
    /// Parses contracts text; `source_name` is used in errors in place of a file name.
    static Registry load_string(std::string_view yaml, std::string source_name,
                                const LoadOptions& options = {});

    const MessageSchema* find(std::uint16_t type_id) const noexcept;
    const MessageSchema* find(std::string_view name) const noexcept;
    std::span<const MessageSchema> messages() const noexcept { return messages_; }

    const Digest& digest() const noexcept { return digest_; }
    std::string digest_hex() const { return to_hex(digest_); }
    const std::string& source_name() const noexcept { return source_name_; }
    std::size_t max_payload() const noexcept { return max_payload_; }

    /// Checks a payload of `schema` against its size and validation rules: lengths within
    /// capacity and rules, strings valid UTF-8. Cheap enough for every publish.
    Result<void, ValidationFailure> validate(const MessageSchema& schema,
                                             std::span<const std::byte> payload) const;

private:
    std::vector<MessageSchema> messages_;
    std::unordered_map<std::uint16_t, std::size_t> by_type_;
    std::unordered_map<std::string, std::size_t> by_name_;
    Digest digest_{};
    std::string source_name_;
    std::size_t max_payload_ = DEFAULT_MAX_PAYLOAD;
};

}  // namespace mycelium::schema
