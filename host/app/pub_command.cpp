// `mycelium-host pub`: publish a message given as JSON to a node, --count times.

#include <cstdio>

#include "commands.hpp"
#include "mycelium/json_message.hpp"
#include "tool_connection.hpp"

namespace mycelium::app {

namespace {

struct PubFlags {
    std::string connect;
    ContractsOptions contracts;
    std::string type;
    std::string json = "{}";
    std::size_t count = 1;
};

}  // namespace

Command add_pub_command(CLI::App& app) {
    auto flags = std::make_shared<PubFlags>();
    CLI::App* cmd = app.add_subcommand("pub", "Publish a message, given as JSON, to a node");
    add_connection_options(*cmd, flags->connect, flags->contracts);
    cmd->add_option("--type", flags->type, "Message name, e.g. TradeTick")->required();
    cmd->add_option("--json", flags->json, "The fields as a JSON object; missing fields are zero")->capture_default_str();
    cmd->add_option("--count", flags->count, "How many times to publish it")->capture_default_str()
        ->check(CLI::PositiveNumber);
    return [flags]() {
        const auto registry = load_tool_contracts(flags->contracts);
        if (!registry) return EXIT_BAD_INPUT;
        const auto* m = find_tool_message(*registry, flags->type);
        if (m == nullptr) return EXIT_BAD_INPUT;
        auto payload = json_message::from_json(*m, flags->json);
        if (!payload) {
            std::fprintf(stderr, "mycelium-host: error: --json: %s\n", payload.error().c_str());
            return EXIT_BAD_INPUT;
        }
        if (auto valid = registry->validate(*m, *payload); !valid) {
            std::fprintf(stderr, "mycelium-host: error: --json: %s\n", valid.error().text().c_str());
            return EXIT_BAD_INPUT;
        }
        try {
            auto client = connect_tool(flags->connect, *registry);
            for (std::size_t i = 0; i < flags->count; ++i) {
                if (!client.send(m->type_id, *payload)) throw std::runtime_error("the node closed the connection");
            }
            // A round trip proves the node read every frame before we close.
            if (!client.sync()) throw std::runtime_error("the node closed the connection");
        } catch (const std::exception& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_FAILURE_RUNTIME;
        }
        return EXIT_OK;
    };
}

}  // namespace mycelium::app
