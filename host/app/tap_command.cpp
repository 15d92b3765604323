// `mycelium-host tap`: connect to a node and print every message it relays as one JSON
// line: {"type": "TradeTick", "type_id": 1100, "fields": {...}}. A message that breaks its
// schema (a String that is not UTF-8, a length above the capacity) is printed too, its bad
// fields as objects and the line with "invalid": [...] (mycelium/json_message.hpp), and
// said on stderr: tap shows what crossed the node, and never as if it were valid.

#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdio>

#include "commands.hpp"
#include "seconds_flag.hpp"
#include "mycelium/json.hpp"
#include "mycelium/json_message.hpp"
#include "mycelium/link_protocol.hpp"
#include "tool_connection.hpp"

namespace mycelium::app {

namespace {

struct TapFlags {
    std::string connect;
    ContractsOptions contracts;
    std::vector<std::string> types;
    std::size_t count = 0;
    double timeout = 0;
};

/// How many invalid messages tap names on stderr one by one; the rest are only counted.
constexpr std::size_t INVALID_LINES = 10;

volatile std::sig_atomic_t tap_interrupted = 0;
extern "C" void on_tap_signal(int) { tap_interrupted = 1; }

}  // namespace

Command add_tap_command(CLI::App& app) {
    auto flags = std::make_shared<TapFlags>();
    CLI::App* cmd = app.add_subcommand("tap", "Print the messages a node relays, one JSON line each");
    add_connection_options(*cmd, flags->connect, flags->contracts);
    cmd->add_option("--type", flags->types, "Only this message type (repeatable; default: all)");
    cmd->add_option("--count", flags->count, "Exit after this many messages");
    cmd->add_option("--timeout", flags->timeout, "Exit after this many seconds")->check(seconds_up_to(MAX_RUN_SECONDS));
    return [flags]() {
        const auto registry = load_tool_contracts(flags->contracts);
        if (!registry) return EXIT_BAD_INPUT;
        std::vector<std::uint16_t> ids;
        for (const auto& name : flags->types) {
            const auto* m = find_tool_message(*registry, name);
            if (m == nullptr) return EXIT_BAD_INPUT;
            ids.push_back(m->type_id);
        }

        link::LinkClient client;
        try {
            client = connect_tool(flags->connect, *registry);
            // A named client, subscribed to the --type types or to all: it gets every type in
            // the C layout (a legacy client would get padded types packed, as Mycelium's
            // Python reads them).
            if (ids.empty())
                for (const auto& message : registry->messages()) ids.push_back(message.type_id);
            if (!client.hello(link::Role::Client, "tap") || !client.subscribe(ids) || !client.sync()) {
                throw std::runtime_error("the node closed the connection during set-up");
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_FAILURE_RUNTIME;
        }

        std::signal(SIGINT, on_tap_signal);
        std::signal(SIGTERM, on_tap_signal);
        const auto deadline = flags->timeout > 0
                                  ? std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                                           std::chrono::duration<double>(flags->timeout))
                                  : std::chrono::steady_clock::time_point::max();
        std::size_t printed = 0;
        std::size_t invalid = 0;
        // The total goes to stderr however tap ends, once the last line is out.
        const auto report_invalid = [&]() {
            if (invalid == 0) return;
            std::fprintf(stderr,
                         "mycelium-host: warning: tap: %zu of %zu messages broke their schema "
                         "(their lines carry \"invalid\")\n",
                         invalid, printed);
        };
        while (!tap_interrupted && (flags->count == 0 || printed < flags->count) &&
               std::chrono::steady_clock::now() < deadline) {
            auto frame = client.receive_message(std::chrono::milliseconds(100));
            if (!frame) {
                if (frame.error() == link::ReceiveError::Timeout) continue;
                report_invalid();
                std::fprintf(stderr, "mycelium-host: error: the node at %s closed the connection\n", flags->connect.c_str());
                return EXIT_FAILURE_RUNTIME;
            }
            if (frame->type_id == link::control::ERROR) {
                auto error = link::decode_error(frame->payload);
                report_invalid();
                std::fprintf(stderr, "mycelium-host: error: the node refused the connection: %s\n",
                             error ? error->reason.c_str() : "(unreadable error frame)");
                return EXIT_FAILURE_RUNTIME;
            }
            const auto* m = registry->find(frame->type_id);
            if (m == nullptr) continue;  // the node checked the digest; cannot happen
            const json_message::PrintedMessage message = json_message::to_json(*m, frame->payload);
            std::string line = fmt::format("{{\"type\": {}, \"type_id\": {}, \"fields\": {}", json_quote(m->name),
                                           m->type_id, message.json);
            if (!message.valid()) {
                line += ", \"invalid\": [";
                for (std::size_t k = 0; k < message.invalid.size(); ++k)
                    line += (k == 0 ? "" : ", ") + json_quote(message.invalid[k]);
                line += "]";
            }
            line += "}\n";
            std::fwrite(line.data(), 1, line.size(), stdout);
            std::fflush(stdout);
            ++printed;
            if (!message.valid()) {
                ++invalid;
                if (invalid <= INVALID_LINES) {
                    std::string what;
                    for (const auto& entry : message.invalid) what += (what.empty() ? "" : "; ") + entry;
                    std::fprintf(stderr, "mycelium-host: warning: tap: message %zu (%s) breaks its schema: %s%s\n",
                                 printed, m->name.c_str(), what.c_str(),
                                 invalid == INVALID_LINES ? " (further invalid messages are only counted)" : "");
                }
            }
        }
        report_invalid();
        return EXIT_OK;
    };
}

}  // namespace mycelium::app
