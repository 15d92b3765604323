#include "tool_connection.hpp"

#include <cstdio>
#include <stdexcept>

#include "mycelium/endpoint.hpp"
#include "mycelium/host.hpp"

namespace mycelium::app {

void add_connection_options(CLI::App& cmd, std::string& connect, ContractsOptions& contracts) {
    cmd.add_option("--connect", connect, "unix:PATH or tcp:HOST:PORT")->required();
    add_contracts_options(cmd, contracts, false);
}

std::shared_ptr<const schema::Registry> load_tool_contracts(const ContractsOptions& contracts) {
    try {
        return std::make_shared<schema::Registry>(load_contracts(contracts));
    } catch (const schema::SchemaError& e) {
        std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
        return nullptr;
    }
}

const schema::MessageSchema* find_tool_message(const schema::Registry& registry, const std::string& name) {
    const auto* message = registry.find(name);
    if (message == nullptr) {
        std::fprintf(stderr, "mycelium-host: error: --type %s: no such message in %s\n", name.c_str(),
                     registry.source_name().c_str());
    }
    return message;
}

link::LinkClient connect_tool(const std::string& endpoint, const schema::Registry& registry) {
    try {
        return link::LinkClient::connect(link::parse_endpoint(endpoint), registry.digest());
    } catch (const std::exception& e) {
        throw std::runtime_error("cannot connect to " + endpoint + ": " + e.what());
    }
}

}  // namespace mycelium::app
