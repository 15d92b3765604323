#include "tool_connection.hpp"

#include <cstdio>
#include <stdexcept>

#include "mycelium/endpoint.hpp"
#include "mycelium/host.hpp"

namespace mycelium::app {

void add_connection_options(CLI::App& cmd, std::string& connect, std::string& contracts) {
    cmd.add_option("--connect", connect, "unix:PATH or tcp:HOST:PORT")->required();
    cmd.add_option("--contracts", contracts, "contracts.yaml (default: the bundled demo contracts)")
        ->check(CLI::ExistingFile);
}

std::shared_ptr<const schema::Registry> load_tool_contracts(const std::string& path) {
    try {
        if (path.empty()) {
            return std::make_shared<schema::Registry>(
                schema::Registry::load_string(bundled_contracts(), "contracts.yaml (bundled)"));
        }
        return std::make_shared<schema::Registry>(schema::Registry::load_file(path));
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
