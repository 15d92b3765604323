#pragma once
// `--contracts FILE` and `--strict`, as every command that loads contracts takes them, and
// the one way those commands load them: warnings on stderr, errors as exceptions.

#include <CLI/CLI.hpp>

#include <string>

#include "mycelium/schema.hpp"

namespace mycelium::app {

struct ContractsOptions {
    std::string path;     ///< empty: the bundled demo contracts (where the command allows it)
    bool strict = false;  ///< unknown keys are errors
};

/// Registers --contracts (required or not) and --strict on `cmd`.
void add_contracts_options(CLI::App& cmd, ContractsOptions& options, bool required);

/// Loads the contracts (the bundled ones when no path is given) and prints each warning
/// as "mycelium-host: warning: FILE:LINE: ...". Throws schema::SchemaError.
schema::Registry load_contracts(const ContractsOptions& options);

}  // namespace mycelium::app
