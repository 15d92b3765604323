#pragma once

// Runtime(topology_path=..., service_name=...) inside the host: the host's bus is the node,
// so the call is honoured only when this host is the node the topology puts the service on.

#include <filesystem>
#include <optional>
#include <string>

namespace mycelium::embedded {

/// The topology node this host runs as (`--topology FILE --node NAME`); unset for a
/// plain host.
struct HostNode {
    std::filesystem::path topology;
    std::string name;
};

/// Checks Runtime(topology_path, service_name) against the node this host runs as.
/// Throws std::invalid_argument naming the file, the service and the node to run as when
/// the host cannot route as the topology says for that service: the file does not load,
/// the service is on no node or on another node, or the host is not that topology's node.
void check_runtime_topology(const std::optional<HostNode>& host_node, const std::string& topology_path,
                            const std::optional<std::string>& service_name);

}  // namespace mycelium::embedded
