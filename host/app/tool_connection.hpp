#pragma once
// What `tap` and `pub` share: the contracts to use (given, or the bundled demo ones) and
// a connection to a node, with errors turned into one-line messages.

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "contracts_options.hpp"
#include "mycelium/link_client.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::app {

/// Registers --connect (required), --contracts and --strict on a tool's subcommand.
void add_connection_options(CLI::App& cmd, std::string& connect, ContractsOptions& contracts);

/// Loads --contracts, or the bundled demo contracts when no path is given. On failure
/// prints the one-line error and returns nullptr.
std::shared_ptr<const schema::Registry> load_tool_contracts(const ContractsOptions& contracts);

/// The message named `name`; nullptr after printing "--type NAME: no such message".
const schema::MessageSchema* find_tool_message(const schema::Registry& registry, const std::string& name);

/// Connects to `endpoint` (unix:PATH or tcp:HOST:PORT) with the registry's digest.
/// Throws std::runtime_error with a message naming the endpoint.
link::LinkClient connect_tool(const std::string& endpoint, const schema::Registry& registry);

}  // namespace mycelium::app
