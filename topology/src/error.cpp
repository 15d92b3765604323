#include "mycelium/topology/topology.hpp"

#include <utility>

namespace mycelium::topology {
namespace {

// Same shape as toml++'s parse_error printout, on one line so it fits a log record.
std::string format_error(const std::string& description, const SourceLocation& where) {
    std::string text = description;
    if (where.line > 0) {
        text += " (at line " + std::to_string(where.line);
        if (where.column > 0) text += ", column " + std::to_string(where.column);
        text += " of '" + where.file + "')";
    } else if (!where.file.empty()) {
        text += " (in '" + where.file + "')";
    }
    return text;
}

}  // namespace

TopologyError::TopologyError(std::string description, SourceLocation where)
    : std::runtime_error(format_error(description, where)),
      description_(std::move(description)),
      where_(std::move(where)) {}

std::string TopologyWarning::text() const { return format_error(description, where); }

}  // namespace mycelium::topology
