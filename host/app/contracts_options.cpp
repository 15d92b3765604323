#include "contracts_options.hpp"

#include <cstdio>

#include "mycelium/host.hpp"

namespace mycelium::app {

void add_contracts_options(CLI::App& cmd, ContractsOptions& options, bool required) {
    auto* contracts = cmd.add_option("--contracts", options.path,
                                     required ? "contracts.yaml to load"
                                              : "contracts.yaml (default: the bundled demo contracts)")
                          ->check(CLI::ExistingFile);
    if (required) contracts->required();
    cmd.add_flag("--strict", options.strict, "Unknown keys in the contracts are errors, not warnings");
}

schema::Registry load_contracts(const ContractsOptions& options) {
    schema::LoadOptions load;
    load.strict = options.strict;
    schema::Registry registry = options.path.empty()
                                    ? schema::Registry::load_string(bundled_contracts(), "contracts.yaml (bundled)", load)
                                    : schema::Registry::load_file(options.path, load);
    for (const schema::SchemaWarning& warning : registry.warnings()) {
        std::fprintf(stderr, "mycelium-host: warning: %s\n", warning.text.c_str());
    }
    return registry;
}

}  // namespace mycelium::app
