// Parses contracts.yaml as Mycelium writes it (its codegen.rs is the reference) into message
// layouts. Every rejection and every warning names the file, the line, the message and the
// field, because a contracts file is edited by hand and shared by every process of a
// deployment: "bad contracts" is not an actionable error.

#include "contracts_parser.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <span>

#include "field_types.hpp"
#include "mycelium/suggest.hpp"
#include "reserved_names.hpp"

namespace mycelium::schema::detail {

namespace {

using namespace std::string_view_literals;

// The keys Mycelium's own contracts files use, at each level. `topic` and a field's
// `max_length` are this host's additions. `domains`, `invariants` and `types` are
// documentation to Mycelium and to this host: their contents are not checked.
constexpr std::array TOP_KEYS = {"messages"sv, "schema"sv, "tag_ranges"sv, "domains"sv, "invariants"sv, "types"sv};
constexpr std::array SCHEMA_KEYS = {"id"sv, "version"sv, "min_compatible"sv};
constexpr std::array TAG_RANGE_KEYS = {"core"sv, "app"sv, "experimental"sv};
constexpr std::array MESSAGE_KEYS = {"tlv_type"sv,      "domain"sv,      "description"sv, "fields"sv,
                                     "topic"sv,         "schema_version"sv, "rust_type"sv, "rkyv"sv,
                                     "sensitivity"sv,   "log_payload"sv, "required_prior_messages"sv};
constexpr std::array FIELD_KEYS = {"type"sv, "description"sv, "validation"sv, "optional"sv, "max_length"sv};
constexpr std::array RULES = {"not_empty"sv, "min_length"sv, "max_length"sv, "min"sv,
                              "max"sv,       "not_zero"sv,   "no_0x_prefix"sv};

std::size_t align_up(std::size_t value, std::size_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

std::string snake_case(std::string_view name) {
    std::string out;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        if (std::isupper(static_cast<unsigned char>(c))) {
            const bool after_lower = i > 0 && !std::isupper(static_cast<unsigned char>(name[i - 1])) &&
                                     name[i - 1] != '_';
            const bool before_lower = i > 0 && i + 1 < name.size() &&
                                      std::islower(static_cast<unsigned char>(name[i + 1])) &&
                                      std::isupper(static_cast<unsigned char>(name[i - 1]));
            if (after_lower || before_lower) out.push_back('_');
            out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        } else {
            out.push_back(c);
        }
    }
    return out;
}

/// Mycelium's TOPIC (codegen.rs `topic_from_domain`): the domain lowercased, with
/// "marketdata" spelled "market-data". Not general kebab-casing: "SignalFeed" -> "signalfeed".
std::string topic_from_domain(std::string_view domain) {
    std::string out;
    for (char c : domain) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    constexpr std::string_view FROM = "marketdata";
    constexpr std::string_view TO = "market-data";
    for (std::size_t at = out.find(FROM); at != std::string::npos; at = out.find(FROM, at + TO.size())) {
        out.replace(at, FROM.size(), TO);
    }
    return out;
}

bool is_identifier(std::string_view name) {
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

/// "a-b" as Mycelium writes tag ranges.
struct TagRange {
    std::uint16_t first = 0;
    std::uint16_t last = 0;
    std::string text;
    bool contains(std::uint16_t id) const noexcept { return id >= first && id <= last; }
};

struct TagRanges {
    std::optional<TagRange> core, app, experimental;
};

/// An integer from YAML: decimal, or hex with 0x as Mycelium's `schema.id` is written.
std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
    int base = 10;
    if (text.starts_with("0x") || text.starts_with("0X")) {
        text.remove_prefix(2);
        base = 16;
    }
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

/// A number for `min`/`max`: an integer (exact up to 64 bits) or a float.
struct Number {
    long double value = 0;
    bool integral = false;
};

std::optional<Number> parse_number(std::string_view text) {
    const bool negative = text.starts_with('-');
    std::string_view digits = text;
    if (negative || text.starts_with('+')) digits.remove_prefix(1);
    if (const auto magnitude = parse_unsigned(digits)) {
        const long double v = static_cast<long double>(*magnitude);
        return Number{negative ? -v : v, true};
    }
    if (text.empty()) return std::nullopt;
    const std::string copy(text);
    char* end = nullptr;
    const long double v = std::strtold(copy.c_str(), &end);
    if (end != copy.c_str() + copy.size() || !std::isfinite(v)) return std::nullopt;
    return Number{v, v == std::floor(v) && copy.find_first_of(".eE") == std::string::npos};
}

long double lowest_of(Scalar s) {
    switch (s) {
        case Scalar::I8: return std::numeric_limits<std::int8_t>::min();
        case Scalar::I16: return std::numeric_limits<std::int16_t>::min();
        case Scalar::I32: return std::numeric_limits<std::int32_t>::min();
        case Scalar::I64: return std::numeric_limits<std::int64_t>::min();
        case Scalar::F32: return -std::numeric_limits<float>::max();
        case Scalar::F64: return -std::numeric_limits<double>::max();
        default: return 0;
    }
}

long double highest_of(Scalar s) {
    switch (s) {
        case Scalar::U8: return std::numeric_limits<std::uint8_t>::max();
        case Scalar::U16: return std::numeric_limits<std::uint16_t>::max();
        case Scalar::U32: return std::numeric_limits<std::uint32_t>::max();
        case Scalar::U64: return std::numeric_limits<std::uint64_t>::max();
        case Scalar::I8: return std::numeric_limits<std::int8_t>::max();
        case Scalar::I16: return std::numeric_limits<std::int16_t>::max();
        case Scalar::I32: return std::numeric_limits<std::int32_t>::max();
        case Scalar::I64: return std::numeric_limits<std::int64_t>::max();
        case Scalar::F32: return std::numeric_limits<float>::max();
        case Scalar::F64: return std::numeric_limits<double>::max();
        case Scalar::Bool: return 1;
    }
    return 0;
}

std::string bound_text(long double value, bool integral) {
    // Only a value inside the 64-bit range converts to an integer: one beyond it (a bound
    // of 1e25 on a u64, named in the error that refuses it) would be undefined behaviour.
    const bool fits = value >= static_cast<long double>(std::numeric_limits<long long>::min()) &&
                      value <= static_cast<long double>(std::numeric_limits<unsigned long long>::max());
    if (integral && fits) {
        if (value < 0) return fmt::format("{}", static_cast<long long>(value));
        return fmt::format("{}", static_cast<unsigned long long>(value));
    }
    return fmt::format("{}", static_cast<double>(value));  // shortest text that reads back the same
}

/// min/max: numbers, and arrays and vectors of numbers; a `[u8; N]` is bytes, not numbers.
bool has_numeric_elements(const Field& f) {
    if (f.element_kind != ElementKind::Scalar || f.element == Scalar::Bool) return false;
    if (f.kind == FieldKind::Array) return f.element != Scalar::U8;
    return f.kind == FieldKind::Scalar || f.kind == FieldKind::Vec;
}

bool has_length(const Field& f) { return f.kind == FieldKind::String || f.kind == FieldKind::Vec; }

/// not_zero: an integer, U256, or bytes ([u8; N], [[u8; N]; M]) that must not be all zero.
bool can_be_zero_checked(const Field& f) {
    if (f.kind == FieldKind::Scalar) return is_integer(f.element);
    if (f.kind == FieldKind::U256) return true;
    if (f.kind != FieldKind::Array) return false;
    return f.element_kind == ElementKind::Bytes || (f.element_kind == ElementKind::Scalar && f.element == Scalar::U8);
}

/// Carries the file name and the message being parsed so each error can name them.
class Parser {
public:
    Parser(std::string source_name, const LoadOptions& options)
        : source_(std::move(source_name)), options_(options) {}

    ParsedContracts parse(const YAML::Node& root) {
        if (!root.IsMap()) fail(root, "", "the top level must be a mapping with a 'messages' key");
        check_keys(root, TOP_KEYS, "");
        if (const YAML::Node schema = root["schema"]) out_.version = parse_schema_version(schema);
        if (const YAML::Node ranges = root["tag_ranges"]) tag_ranges_ = parse_tag_ranges(ranges);

        const YAML::Node messages = root["messages"];
        if (!messages) fail(root, "", "missing the top-level 'messages' mapping");
        if (!messages.IsMap()) fail(messages, "", "'messages' must be a mapping of message name to definition");
        for (const auto& entry : messages) {
            message_ = entry.first.Scalar();
            MessageSchema msg = parse_message(entry.first, entry.second);
            for (const MessageSchema& earlier : out_.messages) {
                if (earlier.name == msg.name) {
                    fail(entry.first, "", "duplicate message name (first defined at line " +
                                              std::to_string(earlier.line) + ")");
                }
                if (earlier.type_id == msg.type_id) {
                    fail(entry.second["tlv_type"], "",
                         "tlv_type " + std::to_string(msg.type_id) + " is already used by message '" + earlier.name +
                             "'");
                }
            }
            out_.messages.push_back(std::move(msg));
        }
        message_.clear();
        return std::move(out_);
    }

private:
    [[noreturn]] void fail(const YAML::Node& at, const std::string& field, const std::string& problem) const {
        throw SchemaError(source_, line_of(at), message_, field, problem);
    }

    void warn(const YAML::Node& at, const std::string& field, const std::string& problem) {
        const int line = line_of(at);
        out_.warnings.push_back(SchemaWarning{line, format_location(source_, line, message_, field, problem)});
    }

    static int line_of(const YAML::Node& node) {
        const auto mark = node.Mark();
        return mark.line >= 0 ? mark.line + 1 : 0;
    }

    /// Unknown keys are warnings (Mycelium's serde ignores them), errors with --strict.
    void check_keys(const YAML::Node& map, std::span<const std::string_view> known, const std::string& field) {
        for (const auto& entry : map) {
            const std::string key = entry.first.Scalar();
            if (std::find(known.begin(), known.end(), key) != known.end()) continue;
            std::string problem = "unknown key '" + key + "'";
            const std::string_view suggestion = closest_match(key, known);
            if (!suggestion.empty()) problem += ", did you mean '" + std::string(suggestion) + "'?";
            if (options_.strict) fail(entry.first, field, problem + " (--strict)");
            warn(entry.first, field, problem);
        }
    }

    SchemaVersion parse_schema_version(const YAML::Node& node) {
        if (!node.IsMap()) fail(node, "", "'schema' must be a mapping with 'id' and 'version'");
        check_keys(node, SCHEMA_KEYS, "");
        const auto required = [&](const char* key, std::uint64_t max) -> std::uint64_t {
            const YAML::Node value = node[key];
            if (!value) fail(node, "", std::string("'schema' needs '") + key + "'");
            return unsigned_in_range(value, key, max);
        };
        SchemaVersion version;
        version.id = static_cast<std::uint32_t>(required("id", std::numeric_limits<std::uint32_t>::max()));
        version.version = static_cast<std::uint16_t>(required("version", 65535));
        if (const YAML::Node min = node["min_compatible"]) {
            version.min_compatible = static_cast<std::uint16_t>(unsigned_in_range(min, "min_compatible", 65535));
        }
        return version;
    }

    std::uint64_t unsigned_in_range(const YAML::Node& node, const std::string& what, std::uint64_t max) {
        const auto value = node.IsScalar() ? parse_unsigned(node.Scalar()) : std::nullopt;
        if (!value || *value > max) {
            fail(node, "", "'" + what + "' must be an integer from 0 to " + std::to_string(max));
        }
        return *value;
    }

    TagRanges parse_tag_ranges(const YAML::Node& node) {
        if (!node.IsMap()) fail(node, "", "'tag_ranges' must be a mapping such as 'app: 1000-49999'");
        check_keys(node, TAG_RANGE_KEYS, "");
        const auto range = [&](const char* key) -> std::optional<TagRange> {
            const YAML::Node value = node[key];
            if (!value) return std::nullopt;
            const std::string text = value.IsScalar() ? value.Scalar() : "";
            const auto dash = text.find('-');
            const auto first = dash == std::string::npos ? std::nullopt : parse_unsigned(text.substr(0, dash));
            const auto last = dash == std::string::npos ? std::nullopt : parse_unsigned(text.substr(dash + 1));
            if (!first || !last || *first > *last || *last > 65535) {
                fail(value, "", std::string("tag_ranges.") + key + " must read 'first-last' within 0-65535, not '" +
                                    text + "'");
            }
            return TagRange{static_cast<std::uint16_t>(*first), static_cast<std::uint16_t>(*last), text};
        };
        return TagRanges{range("core"), range("app"), range("experimental")};
    }

    MessageSchema parse_message(const YAML::Node& key, const YAML::Node& body) {
        MessageSchema msg;
        msg.name = key.Scalar();
        msg.line = line_of(key);
        if (!is_identifier(msg.name) || msg.name.front() == '_') {
            fail(key, "", "a message name must be an identifier that starts with a letter");
        }
        if (!body.IsMap()) fail(key, "", "a message must be a mapping with 'tlv_type' and 'fields'");
        check_keys(body, MESSAGE_KEYS, "");
        msg.python_name = python_class_name(msg.name);
        msg.cpp_name = cpp_struct_name(msg.name);

        const YAML::Node tlv = body["tlv_type"];
        if (!tlv) fail(key, "", "missing 'tlv_type'");
        msg.type_id = parse_type_id(tlv);
        msg.domain = optional_string(body, "domain");
        msg.description = optional_string(body, "description");
        msg.topic = optional_string(body, "topic");
        if (msg.topic.empty()) msg.topic = msg.domain.empty() ? snake_case(msg.name) : topic_from_domain(msg.domain);
        const bool has_sensitivity = body["sensitivity"] && !body["sensitivity"].IsNull();
        msg.sensitive = has_sensitivity || !optional_bool(body, "log_payload", true, "");

        const YAML::Node fields = body["fields"];
        if (!fields) fail(key, "", "missing 'fields'");
        if (!fields.IsMap() || fields.size() == 0) {
            fail(fields, "", "'fields' must be a non-empty mapping of field name to definition");
        }

        std::size_t offset = 0;
        for (const auto& f : fields) {
            Field field = parse_field(f.first, f.second);
            for (const Field& earlier : msg.fields) {
                if (earlier.name == field.name) {
                    fail(f.first, field.name, "duplicate field name (first defined at line " +
                                                  std::to_string(earlier.line) + ")");
                }
                const bool same_python = earlier.python_name == field.python_name;
                if (same_python || earlier.cpp_name == field.cpp_name) {
                    fail(f.first, field.name, "its generated name '" +
                                                  (same_python ? field.python_name : field.cpp_name) +
                                                  "' is also the name of field '" + earlier.name + "'");
                }
            }
            field.offset = align_up(offset, field.align);
            offset = field.offset + field.size;
            msg.align = std::max(msg.align, field.align);
            if (offset > options_.max_payload) {
                fail(f.first, field.name, "the message grows to " + std::to_string(offset) +
                                              " bytes here, over the payload limit of " +
                                              std::to_string(options_.max_payload) + " bytes");
            }
            msg.fields.push_back(std::move(field));
        }
        msg.size = align_up(offset, msg.align);
        msg.plain = std::none_of(msg.fields.begin(), msg.fields.end(), [](const Field& field) {
            return field.kind == FieldKind::String || field.kind == FieldKind::Vec || field.validation.any();
        });
        if (msg.size > options_.max_payload) {
            fail(fields, msg.fields.back().name,
                 "the message is " + std::to_string(msg.size) + " bytes, over the payload limit of " +
                     std::to_string(options_.max_payload) + " bytes");
        }
        return msg;
    }

    /// 1-999 are this host's control frames whatever `tag_ranges` says; within 1000-65535,
    /// `tag_ranges` is enforced as Mycelium enforces it.
    std::uint16_t parse_type_id(const YAML::Node& tlv) {
        const auto value = tlv.IsScalar() ? parse_unsigned(tlv.Scalar()) : std::nullopt;
        if (!value || *value > 65535) fail(tlv, "", "'tlv_type' must be an integer from 1000 to 65535");
        const auto id = static_cast<std::uint16_t>(*value);
        if (id < MIN_APP_TYPE_ID) {
            fail(tlv, "", "tlv_type " + std::to_string(id) +
                              " is below 1000: 1-999 are this host's control frames, whatever tag_ranges says; "
                              "number application messages from 1000");
        }
        if (tag_ranges_.core && tag_ranges_.core->contains(id)) {
            fail(tlv, "", "tlv_type " + std::to_string(id) + " is in tag_ranges.core (" + tag_ranges_.core->text +
                              "), which is reserved for the framework");
        }
        const bool experimental = tag_ranges_.experimental && tag_ranges_.experimental->contains(id);
        if (experimental) {
            warn(tlv, "", "tlv_type " + std::to_string(id) + " is in tag_ranges.experimental (" +
                              tag_ranges_.experimental->text + "): it may change without a version bump");
        } else if (tag_ranges_.app && !tag_ranges_.app->contains(id)) {
            warn(tlv, "", "tlv_type " + std::to_string(id) + " is outside tag_ranges.app (" + tag_ranges_.app->text +
                              ") and not in an experimental range");
        }
        return id;
    }

    Field parse_field(const YAML::Node& key, const YAML::Node& body) {
        Field field;
        field.name = key.Scalar();
        field.line = line_of(key);
        if (!is_identifier(field.name)) fail(key, field.name, "a field name must be an identifier");
        if (is_reserved_identifier(field.name)) {
            fail(key, field.name, "names that start with '__' or '_' and a capital are reserved in C++");
        }
        field.python_name = python_field_name(field.name);
        field.cpp_name = cpp_field_name(field.name);

        if (!body.IsScalar() && !body.IsMap()) {
            fail(key, field.name, "a field must be a type name or a mapping with 'type'");
        }
        if (body.IsMap()) check_keys(body, FIELD_KEYS, field.name);
        // Copy-construct from lookups: a missing key is an invalid node that yaml-cpp
        // refuses to assign or reset from, but tests false.
        const YAML::Node type_node = body.IsMap() ? body["type"] : body;  // `price: f64` shorthand
        if (!type_node) fail(key, field.name, "missing 'type'");
        if (!type_node.IsScalar()) fail(type_node, field.name, "'type' must be a string");
        field.type_text = type_node.Scalar();
        auto parsed = parse_type(field.type_text);
        if (auto* reason = std::get_if<std::string>(&parsed)) {
            fail(type_node, field.name, "unknown type '" + field.type_text + "' (" + *reason + ")");
        }
        const TypeShape shape = std::get<TypeShape>(parsed);

        std::optional<std::size_t> capacity;
        if (body.IsMap()) {
            field.description = optional_string(body, "description", field.name);
            field.optional = optional_bool(body, "optional", false, field.name);
            if (const YAML::Node max = body["max_length"]) capacity = parse_size(max, field.name, "max_length");
            if (const YAML::Node rules = body["validation"]) field.validation = parse_validation(rules, field.name);
        }
        // Mycelium's capacity is the validation's max_length, else its default.
        if (!capacity) capacity = field.validation.max_length;
        if (!capacity && (shape.kind == FieldKind::String || shape.kind == FieldKind::Vec)) {
            capacity = default_capacity(shape);
            field.default_capacity = true;
        }
        lay_out(field, shape, capacity.value_or(1));
        check_rules(key, field);
        return field;
    }

    Validation parse_validation(const YAML::Node& node, const std::string& field) {
        Validation rules;
        std::vector<std::string> seen;
        const auto take = [&](const YAML::Node& name_node, const YAML::Node& value) {
            const std::string name = name_node.Scalar();
            if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
                fail(name_node, field, "validation rule '" + name + "' is given twice");
            }
            seen.push_back(name);
            parse_rule(rules, name_node, value, field);
        };
        if (node.IsSequence()) {  // Mycelium's form: `- max_length: 32`
            for (const auto& item : node) {
                if (!item.IsMap() || item.size() == 0) {
                    fail(item, field, "each validation item is a mapping such as '- max_length: 32'");
                }
                for (const auto& rule : item) take(rule.first, rule.second);
            }
        } else if (node.IsMap()) {  // `{max_length: 32, not_empty: true}`
            for (const auto& rule : node) take(rule.first, rule.second);
        } else if (!node.IsNull()) {
            fail(node, field, "'validation' must be a list of rules ('- max_length: 32') or a mapping of rule to value");
        }
        return rules;
    }

    void parse_rule(Validation& rules, const YAML::Node& name_node, const YAML::Node& value, const std::string& field) {
        const std::string name = name_node.Scalar();
        if (name == "not_empty") {
            rules.not_empty = rule_flag(value, field, name);
        } else if (name == "not_zero") {
            rules.not_zero = rule_flag(value, field, name);
        } else if (name == "no_0x_prefix") {
            rules.no_0x_prefix = rule_flag(value, field, name);
        } else if (name == "min_length") {
            rules.min_length = parse_size(value, field, name);
        } else if (name == "max_length") {
            rules.max_length = parse_size(value, field, name);
        } else if (name == "min" || name == "max") {
            const auto number = value.IsScalar() ? parse_number(value.Scalar()) : std::nullopt;
            if (!number) fail(value, field, "validation rule '" + name + "' must be a number");
            Bound bound{number->value, bound_text(number->value, number->integral)};
            (name == "min" ? rules.min : rules.max) = std::move(bound);
        } else {
            // Mycelium's files carry rules it documents but checks nowhere (known_chain,
            // known_venue, monotonic): accepted, said once, listed by `schema`.
            std::string problem = "validation rule '" + name + "' is not enforced by this host";
            const std::string_view suggestion = closest_match(name, RULES);
            if (!suggestion.empty()) problem += " (did you mean '" + std::string(suggestion) + "'?)";
            warn(name_node, field, problem);
            rules.unenforced.push_back(name);
        }
    }

    bool rule_flag(const YAML::Node& value, const std::string& field, const std::string& rule) {
        try {
            return value.as<bool>();
        } catch (const YAML::Exception&) {
            fail(value, field, "validation rule '" + rule + "' must be true or false");
        }
    }

    void check_rules(const YAML::Node& at, const Field& field) {
        const Validation& v = field.validation;
        const auto refuse = [&](const char* rule, const char* applies_to) {
            fail(at, field.name, std::string("validation rule '") + rule + "' applies to " + applies_to + ", not '" +
                                     field.type_text + "'");
        };
        if (!has_length(field)) {
            if (v.not_empty) refuse("not_empty", "String and Vec fields");
            if (v.min_length) refuse("min_length", "String and Vec fields");
            if (v.max_length) refuse("max_length", "String and Vec fields");
        }
        if (v.no_0x_prefix && field.kind != FieldKind::String) refuse("no_0x_prefix", "String fields");
        if (v.not_zero && !can_be_zero_checked(field)) refuse("not_zero", "integers, U256 and byte arrays");
        if ((v.min || v.max) && !has_numeric_elements(field)) {
            refuse(v.min ? "min" : "max", "integer and float fields (and their arrays and vectors)");
        }
        check_bounds(at, field);
        if (!has_length(field)) return;
        if (field.capacity == 0) fail(at, field.name, "max_length must be at least 1");
        if (field.capacity > 65535) {
            fail(at, field.name, "max_length " + std::to_string(field.capacity) +
                                     " does not fit the u16 length prefix (65535 at most)");
        }
        if (v.max_length && *v.max_length > field.capacity) {
            fail(at, field.name, "validation max_length " + std::to_string(*v.max_length) +
                                     " exceeds the field's capacity " + std::to_string(field.capacity));
        }
        if (v.min_length && *v.min_length > (v.max_length ? *v.max_length : field.capacity)) {
            fail(at, field.name, "validation min_length " + std::to_string(*v.min_length) + " exceeds max_length");
        }
    }

    void check_bounds(const YAML::Node& at, const Field& field) {
        const Validation& v = field.validation;
        const auto check = [&](const std::optional<Bound>& bound, const char* rule) {
            if (!bound) return;
            const bool integral = bound->value == std::floor(bound->value);
            if (is_integer(field.element) && !integral) {
                fail(at, field.name, std::string("validation rule '") + rule + "' of an integer field must be an "
                                                                               "integer, not " + bound->text);
            }
            if (bound->value < lowest_of(field.element) || bound->value > highest_of(field.element)) {
                fail(at, field.name, std::string("validation rule '") + rule + "' is " + bound->text +
                                         ", outside the range of " + std::string(scalar_name(field.element)));
            }
        };
        check(v.min, "min");
        check(v.max, "max");
        if (v.min && v.max && v.min->value > v.max->value) {
            fail(at, field.name, "validation min " + v.min->text + " is above max " + v.max->text);
        }
    }

    std::size_t parse_size(const YAML::Node& node, const std::string& field, const std::string& what) {
        const auto value = node.IsScalar() ? parse_unsigned(node.Scalar()) : std::nullopt;
        if (!value || *value > std::numeric_limits<std::uint32_t>::max()) {
            fail(node, field, "'" + what + "' must be a non-negative integer");
        }
        return static_cast<std::size_t>(*value);
    }

    std::string optional_string(const YAML::Node& body, const char* key, const std::string& field = "") {
        const YAML::Node node = body[key];
        if (!node || node.IsNull()) return {};
        if (!node.IsScalar()) fail(node, field, std::string("'") + key + "' must be a string");
        return node.Scalar();
    }

    bool optional_bool(const YAML::Node& body, const char* key, bool fallback, const std::string& field) {
        const YAML::Node node = body[key];
        if (!node || node.IsNull()) return fallback;
        try {
            return node.as<bool>();
        } catch (const YAML::Exception&) {
            fail(node, field, std::string("'") + key + "' must be true or false");
        }
    }

    std::string source_;
    const LoadOptions& options_;
    std::string message_;
    TagRanges tag_ranges_;
    ParsedContracts out_;
};

}  // namespace

std::string format_location(const std::string& file, int line, const std::string& message, const std::string& field,
                            const std::string& problem) {
    std::string out = file;
    if (line > 0) out.append(":").append(std::to_string(line));
    out.append(": ");
    if (!message.empty()) out.append("message '").append(message).append("'");
    if (!message.empty() && !field.empty()) out.append(", ");
    if (!field.empty()) out.append("field '").append(field).append("'");
    if (!message.empty() || !field.empty()) out.append(": ");
    return out.append(problem);
}

ParsedContracts parse_contracts(std::string_view yaml, const std::string& source_name, const LoadOptions& options) {
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        throw SchemaError(source_name, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", "",
                          "YAML syntax error: " + e.msg);
    }
    try {
        return Parser(source_name, options).parse(root);
    } catch (const YAML::Exception& e) {
        // yaml-cpp throws on shapes we did not foresee; keep the position it knows.
        throw SchemaError(source_name, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", "", e.msg);
    }
}

}  // namespace mycelium::schema::detail
