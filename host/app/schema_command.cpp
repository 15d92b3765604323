// `mycelium-host schema`: print the layouts the registry computed, as JSON for tools and
// tests, or as a table for people.

#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "contracts_options.hpp"
#include "mycelium/json.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::app {

namespace {

struct SchemaFlags {
    ContractsOptions contracts;
    bool json = false;
};

/// The enforced rules of a field as "name value" items: "max_length 16", "not_empty".
std::vector<std::string> rule_items(const schema::Validation& v) {
    std::vector<std::string> out;
    if (v.not_empty) out.emplace_back("not_empty");
    if (v.min_length) out.push_back(fmt::format("min_length {}", *v.min_length));
    if (v.max_length) out.push_back(fmt::format("max_length {}", *v.max_length));
    if (v.min) out.push_back("min " + v.min->text);
    if (v.max) out.push_back("max " + v.max->text);
    if (v.not_zero) out.emplace_back("not_zero");
    if (v.no_0x_prefix) out.emplace_back("no_0x_prefix");
    return out;
}

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : std::string(separator)) + item;
    return out;
}

std::string rules_json(const schema::Validation& v) {
    std::vector<std::string> members;
    if (v.not_empty) members.emplace_back("\"not_empty\": true");
    if (v.min_length) members.push_back(fmt::format("\"min_length\": {}", *v.min_length));
    if (v.max_length) members.push_back(fmt::format("\"max_length\": {}", *v.max_length));
    if (v.min) members.push_back("\"min\": " + v.min->text);
    if (v.max) members.push_back("\"max\": " + v.max->text);
    if (v.not_zero) members.emplace_back("\"not_zero\": true");
    if (v.no_0x_prefix) members.emplace_back("\"no_0x_prefix\": true");
    return "{" + joined(members, ", ") + "}";
}

std::string strings_json(const std::vector<std::string>& items) {
    std::vector<std::string> quoted;
    for (const auto& item : items) quoted.push_back(json_quote(item));
    return "[" + joined(quoted, ", ") + "]";
}

std::string version_json(const schema::Registry& registry) {
    const auto& v = registry.version();
    if (!v) return "null";
    return fmt::format("{{\"id\": {}, \"version\": {}, \"min_compatible\": {}}}", v->id, v->version,
                       v->min_compatible ? std::to_string(*v->min_compatible) : "null");
}

std::string to_json(const schema::Registry& registry) {
    std::vector<std::string> warnings;
    for (const auto& w : registry.warnings()) warnings.push_back(w.text);
    std::string out = fmt::format("{{\"digest\": \"{}\", \"schema\": {}, \"warnings\": {}, \"messages\": [",
                                  registry.digest_hex(), version_json(registry), strings_json(warnings));
    bool first_message = true;
    for (const auto& m : registry.messages()) {
        out += first_message ? "\n  " : ",\n  ";
        first_message = false;
        out += fmt::format(
            "{{\"name\": {}, \"type_id\": {}, \"topic\": {}, \"domain\": {}, \"description\": {}, "
            "\"sensitive\": {}, \"size\": {}, \"align\": {}, \"fields\": [",
            json_quote(m.name), m.type_id, json_quote(m.topic), json_quote(m.domain), json_quote(m.description),
            m.sensitive ? "true" : "false", m.size, m.align);
        bool first_field = true;
        for (const auto& f : m.fields) {
            out += first_field ? "" : ", ";
            first_field = false;
            out += fmt::format(
                "{{\"name\": {}, \"type\": {}, \"offset\": {}, \"size\": {}, \"align\": {}, \"capacity\": {}, "
                "\"default_capacity\": {}, \"optional\": {}, \"rules\": {}, \"unenforced_rules\": {}}}",
                json_quote(f.name), json_quote(f.type_text), f.offset, f.size, f.align, f.capacity,
                f.default_capacity ? "true" : "false", f.optional ? "true" : "false", rules_json(f.validation),
                strings_json(f.validation.unenforced));
        }
        out += "]}";
    }
    return out + "\n]}\n";
}

std::string to_table(const schema::Registry& registry) {
    std::string out = fmt::format("contracts {}\ndigest    {}\n", registry.source_name(), registry.digest_hex());
    if (const auto& v = registry.version()) {
        out += fmt::format("schema    id {:#010x}, version {}", v->id, v->version);
        if (v->min_compatible) out += fmt::format(", min_compatible {}", *v->min_compatible);
        out += "\n";
    }
    for (const auto& m : registry.messages()) {
        out += fmt::format("\n{} (type {}, topic {}, {} bytes, align {}{})\n", m.name, m.type_id, m.topic, m.size,
                           m.align, m.sensitive ? ", sensitive: values stay out of logs" : "");
        out += fmt::format("  {:>6}  {:>6}  {:<20} {:<24} {}\n", "offset", "size", "field", "type", "rules");
        for (const auto& f : m.fields) {
            std::string type = f.type_text;
            if (f.default_capacity) type += fmt::format(" (capacity {}: Mycelium's default)", f.capacity);
            std::string rules = joined(rule_items(f.validation), ", ");
            if (!f.validation.unenforced.empty()) {
                rules += (rules.empty() ? "" : "; ") + std::string("not enforced: ") +
                         joined(f.validation.unenforced, ", ");
            }
            out += fmt::format("  {:>6}  {:>6}  {:<20} {:<24} {}", f.offset, f.size, f.name, type, rules);
            while (!out.empty() && out.back() == ' ') out.pop_back();
            out += "\n";
        }
    }
    return out;
}

}  // namespace

Command add_schema_command(CLI::App& app) {
    auto flags = std::make_shared<SchemaFlags>();
    CLI::App* cmd = app.add_subcommand("schema", "Print the message layouts of a contracts file");
    add_contracts_options(*cmd, flags->contracts, true);
    cmd->add_flag("--json", flags->json, "Print JSON instead of a table");
    return [flags]() {
        try {
            const auto registry = load_contracts(flags->contracts);
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
