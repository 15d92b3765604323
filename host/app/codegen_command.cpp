// `mycelium-host codegen`: write the C++ header and/or the Python module for a contracts
// file. Files are written whole to a temporary name and renamed, so a build never sees a
// half-written header.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "commands.hpp"
#include "mycelium/codegen.hpp"

namespace mycelium::app {

namespace {

struct CodegenFlags {
    std::string contracts;
    std::string cpp_out;
    std::string python_out;
    std::string cpp_namespace = "mycelium::messages";
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

}  // namespace

Command add_codegen_command(CLI::App& app) {
    auto flags = std::make_shared<CodegenFlags>();
    CLI::App* cmd = app.add_subcommand("codegen", "Generate C++ and Python message code from a contracts file");
    cmd->add_option("--contracts", flags->contracts, "contracts.yaml to load")->required()->check(CLI::ExistingFile);
    cmd->add_option("--cpp", flags->cpp_out, "Write the C++ header here");
    cmd->add_option("--python", flags->python_out, "Write the Python module here");
    cmd->add_option("--namespace", flags->cpp_namespace, "C++ namespace of the generated structs")
        ->capture_default_str();
    return [flags]() {
        if (flags->cpp_out.empty() && flags->python_out.empty()) {
            std::fprintf(stderr, "mycelium-host: error: codegen needs --cpp FILE and/or --python FILE\n");
            return EXIT_BAD_INPUT;
        }
        try {
            const auto registry = schema::Registry::load_file(flags->contracts);
            if (!flags->cpp_out.empty()) {
                write_file(flags->cpp_out, codegen::generate_cpp(registry, {flags->cpp_namespace}));
            }
            if (!flags->python_out.empty()) write_file(flags->python_out, codegen::generate_python(registry));
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
