#pragma once
// Helpers shared by the topology sources; not installed, not part of the API.

#include <string_view>

namespace mycelium::topology::detail {

/// An IPv4 address, an IPv6 address (without brackets) or an RFC 1123 host name.
bool valid_host(std::string_view host);

}  // namespace mycelium::topology::detail
