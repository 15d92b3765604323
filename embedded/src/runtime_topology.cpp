#include "runtime_topology.hpp"

#include <stdexcept>
#include <system_error>

#include "mycelium/topology/topology.hpp"

namespace mycelium::embedded {

namespace {

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
    std::error_code ec;
    const bool same = std::filesystem::equivalent(a, b, ec);
    return !ec && same;
}

}  // namespace

void check_runtime_topology(const std::optional<HostNode>& host_node, const std::string& topology_path,
                            const std::optional<std::string>& service_name) {
    const std::string call = "Runtime(topology_path='" + topology_path + "'" +
                             (service_name ? ", service_name='" + *service_name + "'" : std::string()) + ")";
    if (!service_name)
        throw std::invalid_argument(call + ": give service_name= too: it says which node's routes the script takes");
    topology::Spec spec;
    try {
        spec = topology::load_file(topology_path);
    } catch (const topology::TopologyError& e) {
        throw std::invalid_argument(call + ": " + e.what());
    }
    const topology::Node* owner = nullptr;
    for (const topology::Node& node : spec.nodes)
        if (node.has_service(*service_name)) owner = &node;
    if (owner == nullptr)
        throw std::invalid_argument(call + ": no node of '" + topology_path + "' has the service '" + *service_name +
                                    "'");
    const std::string run_as = "mycelium-host --topology " + topology_path + " --node " + owner->name;
    if (!host_node)
        throw std::invalid_argument(call + ": this host was not started from a topology, so it cannot route as '" +
                                    topology_path + "' says for '" + *service_name + "' (node '" + owner->name +
                                    "'); start it as that node: " + run_as);
    if (!same_file(host_node->topology, topology_path))
        throw std::invalid_argument(call + ": this host runs node '" + host_node->name + "' of '" +
                                    host_node->topology.string() + "', another topology file");
    if (host_node->name != owner->name)
        throw std::invalid_argument(call + ": '" + *service_name + "' is a service of node '" + owner->name +
                                    "', but this host is node '" + host_node->name + "'; run the script there: " +
                                    run_as);
    // This host is that node: the mesh already routes its bus as the topology says.
}

}  // namespace mycelium::embedded
