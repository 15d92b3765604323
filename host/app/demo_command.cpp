#include "commands.hpp"
namespace mycelium::app {
Command add_demo_command(CLI::App& app) {
    app.add_subcommand("demo", "Run the C++ bus demo");
    return [] { return EXIT_OK; };
}
}  // namespace mycelium::app
