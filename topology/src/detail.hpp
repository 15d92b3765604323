#pragma once
// Helpers shared by the topology sources; not installed, not part of the API.

#include <string>
#include <string_view>

namespace mycelium::topology {
struct Node;
}

namespace mycelium::topology::detail {

/// An IPv4 address, an IPv6 address (without brackets) or an RFC 1123 host name.
bool valid_host(std::string_view host);

/// The machine a node runs on, as same_host sees it: "" for every local node, else its
/// `host` in lower case (never empty: an empty host is local). Two nodes are on the same
/// host exactly when their keys are equal, so per-host maps replace pairwise same_host.
std::string host_key(const Node& node);

}  // namespace mycelium::topology::detail
