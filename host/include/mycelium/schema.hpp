#pragma once
/// The schema registry: message layouts parsed from contracts.yaml (docs/contracts.md).
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
#include "mycelium/wire_limits.hpp"

namespace mycelium::schema {

/// Largest payload a frame may carry unless configured lower (docs/wire-protocol.md).
inline constexpr std::size_t DEFAULT_MAX_PAYLOAD = wire::MAX_PAYLOAD;
/// Application type ids; 1-999 are the runtime's control messages.
inline constexpr std::uint16_t MIN_APP_TYPE_ID = 1000;
/// Bytes before the data of a FixedStr or FixedVec: u16 length, 6 zero bytes.
inline constexpr std::size_t FIXED_HEADER_SIZE = 8;

/// Primitive element types.
enum class Scalar : std::uint8_t { U8, U16, U32, U64, I8, I16, I32, I64, F32, F64, Bool };

/// How a field is laid out (Mycelium's Rust `repr(C)` layout: fields in file order, each at
/// its natural alignment, the size rounded up to the largest alignment).
enum class FieldKind : std::uint8_t {
    Scalar,  ///< one number or bool
    U256,    ///< 32 bytes, big-endian (Mycelium stores primitive_types::U256 as [u8; 32]), alignment 1
    Array,   ///< `[E; N]`: N elements, no header
    String,  ///< FixedStr<N>: u16 byte length, 6 zero bytes, N bytes of UTF-8, zero-padded
    Vec,     ///< FixedVec<E, N>: u16 count, 6 zero bytes, N elements of E
};

/// What one element of an Array or a Vec is; for Scalar and U256 fields, the field itself.
enum class ElementKind : std::uint8_t {
    Scalar,  ///< `Field::element`
    U256,    ///< 32 big-endian bytes
    Bytes,   ///< `[u8; element_size]`, as in `Vec<[u8; 20]>` and `[[u8; 32]; 6]`
};

/// Size in bytes of one element; also its alignment.
std::size_t scalar_size(Scalar s) noexcept;
/// The contracts spelling: "u8", "f64", "bool", ...
std::string_view scalar_name(Scalar s) noexcept;
std::optional<Scalar> parse_scalar(std::string_view name) noexcept;
bool is_integer(Scalar s) noexcept;
bool is_float(Scalar s) noexcept;

/// A `min` or `max` rule's bound. long double holds every u64 and i64 exactly, so one
/// comparison serves integer and float fields.
struct Bound {
    long double value = 0;
    std::string text;  ///< canonical spelling for messages and generated code: "1", "0.5"
};

/// Rules checked on publish (docs/contracts.md, "Validation"); lengths count bytes for
/// String and elements for Vec.
struct Validation {
    bool not_empty = false;
    std::optional<std::size_t> min_length;
    std::optional<std::size_t> max_length;
    std::optional<Bound> min;  ///< integer and float scalars, and the elements of their arrays and vectors
    std::optional<Bound> max;
    bool not_zero = false;      ///< integers, U256 and byte arrays: not all zero bytes
    bool no_0x_prefix = false;  ///< String: does not start with "0x" or "0X"
    /// Rule names this host accepts but does not check (Mycelium's `known_chain`,
    /// `monotonic`, ...): each was warned about at load.
    std::vector<std::string> unenforced;

    bool any() const noexcept {
        return not_empty || min_length || max_length || min || max || not_zero || no_0x_prefix;
    }
};

struct Field {
    std::string name;             ///< as in the contracts
    std::string python_name;      ///< `name`, or `name_` where Python reserves it (a keyword, a class attribute)
    std::string cpp_name;         ///< `name`, or `name_` where C++ reserves it (a keyword, a struct member)
    FieldKind kind = FieldKind::Scalar;
    ElementKind element_kind = ElementKind::Scalar;  ///< of an Array or a Vec; of the field for Scalar and U256
    Scalar element = Scalar::U8;  ///< the scalar, or the scalar element of an array or vector
    std::size_t element_size = 1; ///< bytes of one element (the field's own size for Scalar and U256)
    std::size_t capacity = 1;     ///< N of an array, string or vector; 1 for a scalar or U256
    bool default_capacity = false;  ///< a String or Vec without max_length: Mycelium's default was used
    std::size_t offset = 0;
    std::size_t size = 0;
    std::size_t align = 1;
    std::string type_text;        ///< as written: "u64", "String", "Vec<[u8; 20]>", "[[u8; 32]; 6]"
    std::string description;
    bool optional = false;        ///< Mycelium's `optional: true`: documentation only, the layout is the same
    Validation validation;
    int line = 0;                 ///< 1-based line in the contracts file
};

struct MessageSchema {
    std::string name;
    std::string python_name;      ///< `name`, or `name_` where a Python keyword or a generated module's name
    std::string cpp_name;         ///< `name`, or `name_` where a C++ keyword or a generated header's name
    std::uint16_t type_id = 0;
    /// `topic:` if given, else Mycelium's derivation from the domain (lowercased,
    /// "marketdata" -> "market-data"), else the name in snake_case. Not unique per type.
    std::string topic;
    std::string domain;
    std::string description;
    /// `sensitivity:` is set or `log_payload: false`: field values stay out of log lines
    /// and validation errors.
    bool sensitive = false;
    std::size_t size = 0;
    std::size_t align = 1;
    std::vector<Field> fields;
    int line = 0;
    /// No String or Vec field and no rule: any payload of `size` bytes is valid, so
    /// Registry::validate checks only the size (set by the contracts parser; false, the
    /// safe default, reads every field).
    bool plain = false;

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

/// Something a contracts file says that loads but deserves attention: an unknown key, a
/// rule this host does not check, a type id outside `tag_ranges.app`. `text` reads like
/// a SchemaError's what().
struct SchemaWarning {
    int line = 0;
    std::string text;
};

/// Which rule a payload broke. The parts are kept apart; text() builds the one sentence
/// every language shows: "TextMessage.sender: not_empty: must not be empty".
struct ValidationFailure {
    std::string message;
    std::string field;   ///< empty for the message's size
    std::string rule;    ///< a rule name, or "size", "utf8"
    std::string detail;  ///< "must not be empty"; never holds a sensitive message's values

    std::string text() const;
};

struct LoadOptions {
    std::size_t max_payload = DEFAULT_MAX_PAYLOAD;
    /// Unknown keys are errors instead of warnings (`--strict`).
    bool strict = false;
};

/// The optional top-level `schema:` section (Mycelium's schema versioning).
struct SchemaVersion {
    std::uint32_t id = 0;
    std::uint16_t version = 0;
    std::optional<std::uint16_t> min_compatible;
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

    /// The `schema:` section, when the file has one.
    const std::optional<SchemaVersion>& version() const noexcept { return version_; }
    /// What loaded but deserves a look, in file order; the caller logs them.
    std::span<const SchemaWarning> warnings() const noexcept { return warnings_; }

    const Digest& digest() const noexcept { return digest_; }
    std::string digest_hex() const { return to_hex(digest_); }
    const std::string& source_name() const noexcept { return source_name_; }
    std::size_t max_payload() const noexcept { return max_payload_; }

    /// Checks a payload of `schema` against its size and validation rules: lengths within
    /// capacity and rules, strings valid UTF-8, bounds, not_zero, no_0x_prefix. Cheap
    /// enough for every publish.
    Result<void, ValidationFailure> validate(const MessageSchema& schema,
                                             std::span<const std::byte> payload) const;

private:
    std::vector<MessageSchema> messages_;
    std::unordered_map<std::uint16_t, std::size_t> by_type_;
    std::unordered_map<std::string, std::size_t> by_name_;
    std::optional<SchemaVersion> version_;
    std::vector<SchemaWarning> warnings_;
    Digest digest_{};
    std::string source_name_;
    std::size_t max_payload_ = DEFAULT_MAX_PAYLOAD;
};

}  // namespace mycelium::schema
