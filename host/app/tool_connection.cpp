#include "tool_connection.hpp"

#include <stdexcept>

#include "mycelium/endpoint.hpp"
#include "mycelium/host.hpp"

namespace mycelium::app {

std::shared_ptr<const schema::Registry> load_tool_contracts(const std::string& path) {
    if (path.empty()) {
        return std::make_shared<schema::Registry>(schema::Registry::load_string(bundled_contracts(), "contracts.yaml (bundled)"));
    }
    return std::make_shared<schema::Registry>(schema::Registry::load_file(path));
}

link::LinkClient connect_tool(const std::string& endpoint, const schema::Registry& registry) {
    try {
        return link::LinkClient::connect(link::parse_endpoint(endpoint), registry.digest());
    } catch (const std::exception& e) {
        throw std::runtime_error("cannot connect to " + endpoint + ": " + e.what());
    }
}

}  // namespace mycelium::app
