#pragma once
// contracts.yaml -> message layouts. Internal to the schema library: Registry::load_string
// is the public door.

#include <string>
#include <string_view>
#include <vector>

#include "mycelium/schema.hpp"

namespace mycelium::schema::detail {

struct ParsedContracts {
    std::vector<MessageSchema> messages;
    std::optional<SchemaVersion> version;
    std::vector<SchemaWarning> warnings;
};

/// Parses contracts text. Throws SchemaError naming the file, line, message and field.
ParsedContracts parse_contracts(std::string_view yaml, const std::string& source_name, const LoadOptions& options);

/// "file:12: message 'Order', field 'qty': problem", the one shape of every error and warning.
std::string format_location(const std::string& file, int line, const std::string& message, const std::string& field,
                            const std::string& problem);

}  // namespace mycelium::schema::detail
