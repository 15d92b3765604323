// The Registry: the loaded contracts, looked up by type id and by name. Parsing lives in
// contracts_parser.cpp, layouts in field_types.cpp, publish-time checks in validation.cpp.

#include <fmt/format.h>

#include "contracts_parser.hpp"
#include "mycelium/file_text.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::schema {

SchemaError::SchemaError(std::string file, int line, std::string message_name, std::string field_name,
                         std::string problem)
    : std::runtime_error(detail::format_location(file, line, message_name, field_name, problem)),
      file_(std::move(file)),
      line_(line),
      message_(std::move(message_name)),
      field_(std::move(field_name)),
      problem_(std::move(problem)) {}

std::string ValidationFailure::text() const {
    std::string out = message;
    if (!field.empty()) out.append(".").append(field);
    return out.append(": ").append(rule).append(": ").append(detail);
}

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

bool is_integer(Scalar s) noexcept { return !is_float(s) && s != Scalar::Bool; }
bool is_float(Scalar s) noexcept { return s == Scalar::F32 || s == Scalar::F64; }

Registry Registry::load_string(std::string_view yaml, std::string source_name, const LoadOptions& options) {
    if (options.max_payload > DEFAULT_MAX_PAYLOAD) {
        throw SchemaError(source_name, 0, "", "", "the payload limit cannot exceed 4 MiB");
    }
    detail::ParsedContracts parsed = detail::parse_contracts(yaml, source_name, options);
    Registry registry;
    registry.messages_ = std::move(parsed.messages);
    registry.version_ = parsed.version;
    registry.warnings_ = std::move(parsed.warnings);
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
    const FileText file = read_file_text(path);
    switch (file.failure) {
        case FileText::Failure::None:
            break;
        case FileText::Failure::TooLarge:
            throw SchemaError(path.string(), 0, "", "", fmt::format("the contracts file is larger than {} bytes, the limit",
                                                                    MAX_CONFIG_FILE_BYTES));
        case FileText::Failure::CannotRead:
            throw SchemaError(path.string(), 0, "", "", "cannot read the contracts file: " + file.reason);
        default:  // cannot open, a directory
            throw SchemaError(path.string(), 0, "", "", "cannot open the contracts file");
    }
    return load_string(file.text, path.string(), options);
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
