#pragma once
/// Code generation from the schema registry: a C++ header and a Python module that lay
/// messages out byte for byte as the registry does (docs/contracts.md).
/// Thread safety: pure functions of their arguments.

#include <string>

#include "mycelium/schema.hpp"

namespace mycelium::codegen {

struct CppOptions {
    std::string namespace_name = "mycelium::messages";  ///< namespace of the generated structs
};

/// A header with one struct per message, static_asserts on size and every offset,
/// TYPE_ID, TOPIC, NAME and the SCHEMA_DIGEST. Includes <mycelium/fixed.hpp>.
std::string generate_cpp(const schema::Registry& registry, const CppOptions& options = {});

/// A standard-library-only Python module: one class per message with TYPE_ID, TOPIC,
/// NAME, SIZE, to_bytes(), from_bytes(), validate(); ValidationError; SCHEMA_DIGEST as
/// bytes; MESSAGES mapping type id to class.
std::string generate_python(const schema::Registry& registry);

}  // namespace mycelium::codegen
