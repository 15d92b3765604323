// `mycelium-host codegen`: write the C++ header and/or the Python module for a contracts
// file. Files are written whole to a temporary name and renamed, so a build never sees a
// half-written header. With --check nothing is written: the command says whether the
// files are what the contracts produce now (Mycelium's plan for CI drift checks).

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "contracts_options.hpp"
#include "mycelium/codegen.hpp"

namespace mycelium::app {

namespace {

struct CodegenFlags {
    ContractsOptions contracts;
    std::string cpp_out;
    std::string python_out;
    std::string cpp_namespace = "mycelium::messages";
    bool check = false;
};

void write_file(const std::filesystem::path& path, const std::string& text) {
    const auto tmp = std::filesystem::path(path.string() + ".tmp");
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out.flush()) throw std::runtime_error("cannot write '" + tmp.string() + "'");
    }
    std::filesystem::rename(tmp, path);
}

/// The first line where `path` differs from `expected`, or 0 when they are the same.
/// A missing or unreadable file differs at line 1.
std::size_t first_difference(const std::filesystem::path& path, const std::string& expected) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return 1;
    const std::string actual((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (actual == expected) return 0;
    const auto mismatch = std::mismatch(actual.begin(), actual.end(), expected.begin(), expected.end());
    return 1 + static_cast<std::size_t>(std::count(actual.begin(), mismatch.first, '\n'));
}

/// --check: exit 0 when every file is current, else 1 naming the first file and line that differ.
int check_files(const std::vector<std::pair<std::string, std::string>>& outputs, const std::string& contracts) {
    for (const auto& [path, expected] : outputs) {
        const std::size_t line = first_difference(path, expected);
        if (line == 0) continue;
        const bool missing = !std::filesystem::exists(path);
        std::fprintf(stderr, "mycelium-host: %s:%zu: %s what %s generates now; regenerate it with "
                             "mycelium-host codegen\n",
                     path.c_str(), line, missing ? "missing, not" : "differs from", contracts.c_str());
        return EXIT_FAILURE_RUNTIME;
    }
    return EXIT_OK;
}

}  // namespace

Command add_codegen_command(CLI::App& app) {
    auto flags = std::make_shared<CodegenFlags>();
    CLI::App* cmd = app.add_subcommand("codegen", "Generate C++ and Python message code from a contracts file");
    add_contracts_options(*cmd, flags->contracts, true);
    cmd->add_option("--cpp", flags->cpp_out, "Write the C++ header here");
    cmd->add_option("--python", flags->python_out, "Write the Python module here");
    cmd->add_option("--namespace", flags->cpp_namespace, "C++ namespace of the generated structs")
        ->capture_default_str();
    cmd->add_flag("--check", flags->check,
                  "Write nothing; exit 1 naming the first file and line that differ from what the contracts "
                  "generate now");
    return [flags]() {
        if (flags->cpp_out.empty() && flags->python_out.empty()) {
            std::fprintf(stderr, "mycelium-host: error: codegen needs --cpp FILE and/or --python FILE\n");
            return EXIT_BAD_INPUT;
        }
        try {
            const auto registry = load_contracts(flags->contracts);
            std::vector<std::pair<std::string, std::string>> outputs;
            if (!flags->cpp_out.empty()) {
                outputs.emplace_back(flags->cpp_out, codegen::generate_cpp(registry, {flags->cpp_namespace}));
            }
            if (!flags->python_out.empty()) outputs.emplace_back(flags->python_out, codegen::generate_python(registry));
            if (flags->check) return check_files(outputs, flags->contracts.path);
            for (const auto& [path, text] : outputs) write_file(path, text);
            return EXIT_OK;
        } catch (const schema::SchemaError& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_BAD_INPUT;
        } catch (const std::filesystem::filesystem_error& e) {
            std::fprintf(stderr, "mycelium-host: error: %s\n", e.what());
            return EXIT_BAD_INPUT;
        }
    };
}

}  // namespace mycelium::app
