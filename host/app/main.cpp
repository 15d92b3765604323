// mycelium-host: parse the command line, run one command, map errors to exit codes
// (0 ok, 1 the job failed, 2 bad input: flag, file, contracts or topology).

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "commands.hpp"
#include "mycelium/log.hpp"

#if defined(MYC_SANITIZE_ADDRESS)
// The host embeds CPython, and LeakSanitizer reports the interpreter's own lifetime
// allocations as leaks (DESIGN.md pitfalls). An ASAN_OPTIONS in the environment still
// overrides this default.
extern "C" __attribute__((visibility("default"))) const char* __asan_default_options() { return "detect_leaks=0"; }
#endif

int main(int argc, char** argv) {
    using namespace mycelium::app;

    CLI::App app{"mycelium-host: a typed pub/sub bus with embedded CPython", "mycelium-host"};
    app.set_version_flag("--version", "mycelium-host " MYCELIUM_VERSION);
    app.require_subcommand(0, 1);

    std::string log_level = "info";
    std::string log_format = "text";
    app.add_option("--log-level", log_level, "trace, debug, info, warning, error, critical or off")
        ->capture_default_str()
        ->check([](const std::string& v) {
            return mycelium::log::parse_level(v) ? std::string() : "unknown log level '" + v + "'";
        });
    app.add_option("--log-format", log_format, "text or json (one JSON object per line)")
        ->capture_default_str()
        ->check(CLI::IsMember({"text", "json"}));

    const Command run = add_run_options(app, MYCELIUM_PYMODULES_DIR);
    const Command commands[] = {add_schema_command(app), add_codegen_command(app), add_demo_command(app),
                                add_check_command(app),  add_tap_command(app),     add_pub_command(app)};
    const auto subcommands = app.get_subcommands({});

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "mycelium-host: error: %s (see --help)\n", e.what());
        return EXIT_BAD_INPUT;
    }

    mycelium::log::configure(*mycelium::log::parse_level(log_level), *mycelium::log::parse_format(log_format));
    try {
        for (std::size_t i = 0; i < subcommands.size(); ++i) {
            if (subcommands[i]->parsed()) return commands[i]();
        }
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
        return EXIT_FAILURE_RUNTIME;
    }
}
