// `mycelium-host schema`: print the layouts the registry computed, as JSON for tools and
// tests, or as a table for people.

#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "commands.hpp"
#include "mycelium/json.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::app {

namespace {

struct SchemaFlags {
    std::string contracts;
    bool json = false;
};

std::string to_json(const schema::Registry& registry) {
    std::string out = fmt::format("{{\"digest\": \"{}\", \"messages\": [", registry.digest_hex());
    bool first_message = true;
    for (const auto& m : registry.messages()) {
        out += first_message ? "\n  " : ",\n  ";
        first_message = false;
        out += fmt::format(
            "{{\"name\": {}, \"type_id\": {}, \"topic\": {}, \"domain\": {}, \"size\": {}, \"align\": {}, \"fields\": [",
            json_quote(m.name), m.type_id, json_quote(m.topic), json_quote(m.domain), m.size, m.align);
        bool first_field = true;
        for (const auto& f : m.fields) {
            out += first_field ? "" : ", ";
            first_field = false;
            out += fmt::format("{{\"name\": {}, \"type\": {}, \"offset\": {}, \"size\": {}, \"capacity\": {}}}",
                               json_quote(f.name), json_quote(f.type_text), f.offset, f.size, f.capacity);
        }
        out += "]}";
    }
    return out + "\n]}\n";
}

std::string to_table(const schema::Registry& registry) {
    std::string out = fmt::format("contracts {}\ndigest    {}\n", registry.source_name(), registry.digest_hex());
    for (const auto& m : registry.messages()) {
        out += fmt::format("\n{} (type {}, topic {}, {} bytes, align {})\n", m.name, m.type_id, m.topic, m.size,
                           m.align);
        out += fmt::format("  {:>6}  {:>6}  {:<20} {}\n", "offset", "size", "field", "type");
        for (const auto& f : m.fields) {
            out += fmt::format("  {:>6}  {:>6}  {:<20} {}\n", f.offset, f.size, f.name, f.type_text);
        }
    }
    return out;
}

}  // namespace

Command add_schema_command(CLI::App& app) {
    auto flags = std::make_shared<SchemaFlags>();
    CLI::App* cmd = app.add_subcommand("schema", "Print the message layouts of a contracts file");
    cmd->add_option("--contracts", flags->contracts, "contracts.yaml to load")->required()->check(CLI::ExistingFile);
    cmd->add_flag("--json", flags->json, "Print JSON instead of a table");
    return [flags]() {
        try {
            const auto registry = schema::Registry::load_file(flags->contracts);
            const std::string text = flags->json ? to_json(registry) : to_table(registry);
            std::fwrite(text.data(), 1, text.size(), stdout);
            return EXIT_OK;
        } catch (const schema::SchemaError& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_BAD_INPUT;
        }
    };
}

}  // namespace mycelium::app
