// Parsing of `unix:PATH` / `tcp:HOST:PORT`. The host:port grammar is the topology's
// (parse_socket_address), so a listener and a topology file accept the same spellings.

#include "mycelium/endpoint.hpp"

#include <stdexcept>
#include <string>

#include "mycelium/topology/topology.hpp"

namespace mycelium::link {

Endpoint parse_endpoint(std::string_view text) {
    const auto fail = [&](std::string_view why) {
        return std::invalid_argument("bad endpoint '" + std::string(text) + "': " + std::string(why));
    };
    Endpoint e;
    if (text.starts_with("unix:")) {
        e.kind = Endpoint::Kind::Unix;
        e.path = std::string(text.substr(5));
        if (e.path.empty()) throw fail("the socket path is empty");
        if (e.path.size() > topology::MAX_UNIX_PATH) {
            throw fail("the socket path is longer than " + std::to_string(topology::MAX_UNIX_PATH) + " bytes");
        }
        if (e.path.find('\0') != std::string::npos) throw fail("the socket path contains a NUL byte");
        return e;
    }
    if (text.starts_with("tcp:")) {
        const auto address = topology::parse_socket_address(text.substr(4));
        if (!address) throw fail("expected tcp:HOST:PORT with a port in 0-65535");
        e.kind = Endpoint::Kind::Tcp;
        e.host = address->host;
        e.port = address->port;
        return e;
    }
    throw fail("expected unix:PATH or tcp:HOST:PORT");
}

std::string to_string(const Endpoint& endpoint) {
    if (endpoint.kind == Endpoint::Kind::Unix) return "unix:" + endpoint.path;
    return "tcp:" + topology::to_string(topology::SocketAddress{endpoint.host, endpoint.port});
}

}  // namespace mycelium::link
