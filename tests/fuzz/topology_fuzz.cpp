// libFuzzer target for the topology parser (topology/src/parser.cpp, with toml++ under
// it). Differential: the text is loaded twice, leniently and with `strict`, which may
// differ only in the unknown-key warnings: strict accepts exactly the texts that load
// leniently without a warning, and then gives the same nodes. An accepted topology's
// routes and socket paths are resolved for every pair of nodes. A refused one must say
// why with a position inside the text.
//
// Input layout: the TOML text.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "mycelium/topology/topology.hpp"

namespace {

namespace topology = mycelium::topology;

void check(bool ok) {
    if (!ok) std::abort();
}

std::optional<topology::Spec> load(std::string_view text, bool strict) {
    topology::LoadOptions options;
    options.strict = strict;
    try {
        return topology::load_string(text, "fuzz.toml", "/fuzz", options);
    } catch (const topology::TopologyError& e) {
        check(!e.description().empty());
        check(e.line() >= 0 && e.column() >= 0);
        return std::nullopt;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto lenient = load(text, false);
    const auto strict = load(text, true);
    check(static_cast<bool>(strict) == (lenient && lenient->warnings.empty()));
    if (!lenient) return 0;
    if (strict) {
        check(strict->nodes.size() == lenient->nodes.size());
        for (std::size_t i = 0; i < strict->nodes.size(); ++i) check(strict->nodes[i].name == lenient->nodes[i].name);
    }
    check(!lenient->nodes.empty());
    for (const auto& from : lenient->nodes) {
        check(topology::find_node(*lenient, from.name) == &from);
        (void)topology::socket_path(*lenient, from);
        for (const auto& to : lenient->nodes) {
            try {
                (void)topology::route_between(*lenient, from.name, to.name);
            } catch (const std::invalid_argument&) {
                // A remote node without an address reachable from here: refused by name.
            }
        }
    }
    return 0;
}
