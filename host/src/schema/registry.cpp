// Parses contracts.yaml into message layouts. Every rejection names the file, the line,
// the message and the field, because a contracts file is edited by hand and shared by
// every process of a deployment: "bad contracts" is not an actionable error.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include "mycelium/schema.hpp"

namespace mycelium::schema {

namespace {

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

bool is_identifier(std::string_view name) {
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

/// Carries the file name and the message being parsed so each error can name them.
class Parser {
public:
    Parser(std::string source_name, const LoadOptions& options)
        : source_(std::move(source_name)), options_(options) {}

    [[noreturn]] void fail(const YAML::Node& at, const std::string& field,
                           const std::string& problem) const {
        fail_at_line(line_of(at), field, problem);
    }

    [[noreturn]] void fail_at_line(int line, const std::string& field,
                                   const std::string& problem) const {
        throw SchemaError(source_, line, message_, field, problem);
    }

    static int line_of(const YAML::Node& node) {
        const auto mark = node.Mark();
        return mark.line >= 0 ? mark.line + 1 : 0;
    }

    std::vector<MessageSchema> parse(const YAML::Node& root) {
        if (!root.IsMap()) fail(root, "", "the top level must be a mapping with a 'messages' key");
        const YAML::Node messages = root["messages"];
        if (!messages) fail(root, "", "missing the top-level 'messages' mapping");
        if (!messages.IsMap()) fail(messages, "", "'messages' must be a mapping of message name to definition");

        std::vector<MessageSchema> out;
        for (const auto& entry : messages) {
            message_ = entry.first.Scalar();
            out.push_back(parse_message(entry.first, entry.second));
            for (std::size_t i = 0; i + 1 < out.size(); ++i) {
                if (out[i].name == out.back().name) {
                    fail(entry.first, "", "duplicate message name (first defined at line " +
                                              std::to_string(out[i].line) + ")");
                }
                if (out[i].type_id == out.back().type_id) {
                    fail(entry.second["tlv_type"], "",
                         "tlv_type " + std::to_string(out.back().type_id) + " is already used by message '" +
                             out[i].name + "'");
                }
            }
        }
        message_.clear();
        return out;
    }

private:
    MessageSchema parse_message(const YAML::Node& key, const YAML::Node& body) {
        MessageSchema msg;
        msg.name = key.Scalar();
        msg.line = line_of(key);
        if (!is_identifier(msg.name)) fail(key, "", "message name must be an identifier");
        if (!body.IsMap()) fail(key, "", "a message must be a mapping with 'tlv_type' and 'fields'");

        const YAML::Node tlv = body["tlv_type"];
        if (!tlv) fail(key, "", "missing 'tlv_type'");
        const auto type_id = parse_integer(tlv, "", "tlv_type");
        if (type_id < MIN_APP_TYPE_ID || type_id > 65535) {
            fail(tlv, "", "tlv_type " + std::to_string(type_id) +
                              " is outside 1000-65535 (1-999 are reserved for the runtime)");
        }
        msg.type_id = static_cast<std::uint16_t>(type_id);
        msg.domain = optional_string(body, "domain");
        msg.description = optional_string(body, "description");
        msg.topic = optional_string(body, "topic");
        if (msg.topic.empty()) msg.topic = snake_case(msg.name);

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
        if (msg.size > options_.max_payload) {
            fail(fields, msg.fields.back().name,
                 "the message is " + std::to_string(msg.size) + " bytes, over the payload limit of " +
                     std::to_string(options_.max_payload) + " bytes");
        }
        return msg;
    }

    Field parse_field(const YAML::Node& key, const YAML::Node& body) {
        Field field;
        field.name = key.Scalar();
        field.line = line_of(key);
        if (!is_identifier(field.name)) fail(key, field.name, "field name must be an identifier");

        if (!body.IsScalar() && !body.IsMap()) {
            fail(key, field.name, "a field must be a type name or a mapping with 'type'");
        }
        // Copy-construct from lookups: a missing key is an invalid node that yaml-cpp
        // refuses to assign or reset from, but tests false.
        const YAML::Node type_node = body.IsMap() ? body["type"] : body;  // `price: f64` shorthand
        if (!type_node) fail(key, field.name, "missing 'type'");
        std::optional<std::size_t> declared_capacity;
        if (body.IsMap() && body["max_length"]) {
            declared_capacity = parse_integer(body["max_length"], field.name, "max_length");
        }
        if (!type_node.IsScalar()) fail(type_node, field.name, "'type' must be a string");
        field.type_text = std::string(trim(type_node.Scalar()));
        if (body.IsMap() && body["validation"]) {
            field.validation = parse_validation(body["validation"], field.name);
        }
        if (!declared_capacity) declared_capacity = field.validation.max_length;

        resolve_type(type_node, field, declared_capacity);
        check_rules(key, field);
        return field;
    }

    void resolve_type(const YAML::Node& at, Field& field, std::optional<std::size_t> capacity) {
        const std::string_view text = field.type_text;
        if (auto scalar = parse_scalar(text)) {
            field.kind = FieldKind::Scalar;
            field.element = *scalar;
            field.capacity = 1;
            field.size = field.align = scalar_size(*scalar);
            return;
        }
        if (text == "String") {
            if (!capacity) fail(at, field.name, "String needs 'max_length'");
            field.kind = FieldKind::String;
            field.element = Scalar::U8;
            field.capacity = *capacity;
            field.align = 2;  // FixedStr starts with a u16 length
            field.size = align_up(FIXED_HEADER_SIZE + field.capacity, field.align);
            return;
        }
        if (text.starts_with("Vec<") && text.ends_with(">")) {
            const auto inner = trim(text.substr(4, text.size() - 5));
            const auto element = parse_scalar(inner);
            if (!element) fail(at, field.name, "unknown Vec element type '" + std::string(inner) + "'");
            if (!capacity) fail(at, field.name, "Vec needs 'max_length'");
            field.kind = FieldKind::Vec;
            field.element = *element;
            field.capacity = *capacity;
            field.align = std::max<std::size_t>(2, scalar_size(*element));
            field.size = align_up(FIXED_HEADER_SIZE + field.capacity * scalar_size(*element), field.align);
            return;
        }
        if (text.starts_with("[") && text.ends_with("]")) {
            const auto inner = text.substr(1, text.size() - 2);
            const auto semicolon = inner.find(';');
            const auto element = semicolon == std::string_view::npos
                                     ? std::nullopt
                                     : parse_scalar(trim(inner.substr(0, semicolon)));
            std::size_t count = 0;
            const auto count_text = semicolon == std::string_view::npos ? std::string_view{}
                                                                        : trim(inner.substr(semicolon + 1));
            const auto [end, ec] = std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
            if (!element || ec != std::errc{} || end != count_text.data() + count_text.size() || count == 0) {
                fail(at, field.name, "unknown type '" + field.type_text + "' (arrays are written '[u8; 32]')");
            }
            field.kind = FieldKind::Array;
            field.element = *element;
            field.capacity = count;
            field.align = scalar_size(*element);
            field.size = count * scalar_size(*element);
            return;
        }
        fail(at, field.name,
             "unknown type '" + field.type_text +
                 "' (expected u8 u16 u32 u64 i8 i16 i32 i64 f32 f64 bool, String, Vec<T> or [T; N])");
    }

    Validation parse_validation(const YAML::Node& node, const std::string& field) {
        if (!node.IsMap()) fail(node, field, "'validation' must be a mapping of rule to value");
        Validation rules;
        for (const auto& rule : node) {
            const std::string name = rule.first.Scalar();
            if (name == "not_empty") {
                try {
                    rules.not_empty = rule.second.as<bool>();
                } catch (const YAML::Exception&) {
                    fail(rule.second, field, "validation rule 'not_empty' must be true or false");
                }
            } else if (name == "min_length") {
                rules.min_length = parse_integer(rule.second, field, "min_length");
            } else if (name == "max_length") {
                rules.max_length = parse_integer(rule.second, field, "max_length");
            } else {
                fail(rule.first, field,
                     "unknown validation rule '" + name + "' (expected not_empty, min_length, max_length)");
            }
        }
        return rules;
    }

    void check_rules(const YAML::Node& at, const Field& field) {
        const Validation& v = field.validation;
        const bool has_length = field.kind == FieldKind::String || field.kind == FieldKind::Vec;
        if (!has_length && (v.not_empty || v.min_length || v.max_length)) {
            fail(at, field.name, "validation rules apply only to String and Vec fields, not '" +
                                     field.type_text + "'");
        }
        if (!has_length) return;
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

    std::size_t parse_integer(const YAML::Node& node, const std::string& field, const std::string& what) {
        if (node.IsScalar()) {
            const std::string& text = node.Scalar();
            std::size_t value = 0;
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
            if (ec == std::errc{} && end == text.data() + text.size()) return value;
        }
        fail(node, field, "'" + what + "' must be a non-negative integer");
    }

    std::string optional_string(const YAML::Node& body, const char* key) {
        const YAML::Node node = body[key];
        if (!node || node.IsNull()) return {};
        if (!node.IsScalar()) fail(node, "", std::string("'") + key + "' must be a string");
        return node.Scalar();
    }

    std::string source_;
    const LoadOptions& options_;
    std::string message_;
};

std::string format_error(const std::string& file, int line, const std::string& message,
                         const std::string& field, const std::string& problem) {
    std::string out = file;
    if (line > 0) out.append(":").append(std::to_string(line));
    out.append(": ");
    if (!message.empty()) out.append("message '").append(message).append("'");
    if (!message.empty() && !field.empty()) out.append(", ");
    if (!field.empty()) out.append("field '").append(field).append("'");
    if (!message.empty() || !field.empty()) out.append(": ");
    return out.append(problem);
}

}  // namespace

SchemaError::SchemaError(std::string file, int line, std::string message_name, std::string field_name,
                         std::string problem)
    : std::runtime_error(format_error(file, line, message_name, field_name, problem)),
      file_(std::move(file)),
      line_(line),
      message_(std::move(message_name)),
      field_(std::move(field_name)),
      problem_(std::move(problem)) {}

const Field* MessageSchema::find_field(std::string_view field_name) const noexcept {
    for (const Field& f : fields) {
        if (f.name == field_name) return &f;
    }
    return nullptr;
}

std::size_t scalar_size(Scalar s) noexcept {
    switch (s) {
        case Scalar::U8: case Scalar::I8: case Scalar::Bool: return 1;
        case Scalar::U16: case Scalar::I16: return 2;
        case Scalar::U32: case Scalar::I32: case Scalar::F32: return 4;
        case Scalar::U64: case Scalar::I64: case Scalar::F64: return 8;
    }
    return 1;
}

std::string_view scalar_name(Scalar s) noexcept {
    switch (s) {
        case Scalar::U8: return "u8";
        case Scalar::U16: return "u16";
        case Scalar::U32: return "u32";
        case Scalar::U64: return "u64";
        case Scalar::I8: return "i8";
        case Scalar::I16: return "i16";
        case Scalar::I32: return "i32";
        case Scalar::I64: return "i64";
        case Scalar::F32: return "f32";
        case Scalar::F64: return "f64";
        case Scalar::Bool: return "bool";
    }
    return "?";
}

std::optional<Scalar> parse_scalar(std::string_view name) noexcept {
    static constexpr Scalar ALL[] = {Scalar::U8,  Scalar::U16, Scalar::U32, Scalar::U64,
                                     Scalar::I8,  Scalar::I16, Scalar::I32, Scalar::I64,
                                     Scalar::F32, Scalar::F64, Scalar::Bool};
    for (Scalar s : ALL) {
        if (scalar_name(s) == name) return s;
    }
    return std::nullopt;
}

Registry Registry::load_string(std::string_view yaml, std::string source_name, const LoadOptions& options) {
    if (options.max_payload > DEFAULT_MAX_PAYLOAD) {
        throw SchemaError(source_name, 0, "", "", "the payload limit cannot exceed 4 MiB");
    }
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        throw SchemaError(source_name, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", "",
                          "YAML syntax error: " + e.msg);
    }

    Registry registry;
    Parser parser(source_name, options);
    try {
        registry.messages_ = parser.parse(root);
    } catch (const YAML::Exception& e) {
        // yaml-cpp throws on shapes we did not foresee; keep the position it knows.
        throw SchemaError(source_name, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", "", e.msg);
    }
    for (std::size_t i = 0; i < registry.messages_.size(); ++i) {
        registry.by_type_.emplace(registry.messages_[i].type_id, i);
        registry.by_name_.emplace(registry.messages_[i].name, i);
    }
    registry.digest_ = sha256(yaml);
    registry.source_name_ = std::move(source_name);
    registry.max_payload_ = options.max_payload;
    return registry;
}

Registry Registry::load_file(const std::filesystem::path& path, const LoadOptions& options) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw SchemaError(path.string(), 0, "", "", "cannot open the contracts file");
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return load_string(bytes.str(), path.string(), options);
}

const MessageSchema* Registry::find(std::uint16_t type_id) const noexcept {
    const auto it = by_type_.find(type_id);
    return it == by_type_.end() ? nullptr : &messages_[it->second];
}

const MessageSchema* Registry::find(std::string_view name) const noexcept {
    const auto it = by_name_.find(std::string(name));
    return it == by_name_.end() ? nullptr : &messages_[it->second];
}

}  // namespace mycelium::schema
