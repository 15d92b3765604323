#pragma once
// What `tap` and `pub` share: the contracts to use (given, or the bundled demo ones) and
// a connection to a node, with errors turned into one-line messages.

#include <memory>
#include <string>

#include "mycelium/link_client.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::app {

/// Loads --contracts, or the bundled demo contracts when `path` is empty.
/// Throws schema::SchemaError.
std::shared_ptr<const schema::Registry> load_tool_contracts(const std::string& path);

/// Connects to `endpoint` (unix:PATH or tcp:HOST:PORT) with the registry's digest.
/// Throws std::runtime_error with a message naming the endpoint.
link::LinkClient connect_tool(const std::string& endpoint, const schema::Registry& registry);

}  // namespace mycelium::app
