#pragma once
// The subcommands of mycelium-host. Each registers its flags on the CLI11 app and returns
// the function that runs it, so main() stays a dispatcher.

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace mycelium::app {

/// Exit codes shared by every command.
inline constexpr int EXIT_OK = 0;
inline constexpr int EXIT_FAILURE_RUNTIME = 1;  ///< the job ran and failed
inline constexpr int EXIT_BAD_INPUT = 2;        ///< a flag, file or configuration is wrong

using Command = std::function<int()>;

Command add_schema_command(CLI::App& app);
Command add_codegen_command(CLI::App& app);
Command add_demo_command(CLI::App& app);
Command add_check_command(CLI::App& app);
Command add_tap_command(CLI::App& app);
Command add_pub_command(CLI::App& app);
/// The default command (no subcommand): run scripts in the embedded host.
/// `pymodules_dir` is put on sys.path for the scripts.
Command add_run_options(CLI::App& app, std::string pymodules_dir);

}  // namespace mycelium::app
