#pragma once
/// Link endpoints as written on command lines and in tools: `unix:PATH` and
/// `tcp:HOST:PORT` (IPv6 hosts in brackets: `tcp:[::1]:9000`; port 0 = any free port when
/// listening). Each scheme is a transport's (host/src/transport/transport.hpp), which
/// parses its own addresses. Pure parsing and formatting: no socket is opened here.
///
/// Thread safety: value types and reentrant free functions.

#include <cstdint>
#include <string>
#include <string_view>

namespace mycelium::link {

/// Where a link listens or connects: a scheme (the transport) and its address.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct Endpoint {
    /// The transport: `unix`, `tcp`, or one registered by an embedder or a test.
    std::string scheme = "unix";
    /// unix: the socket path (at most 107 bytes, the size of sockaddr_un::sun_path); a
    /// transport of local names (a test's `pair:`) keeps its name here.
    std::string path;
    /// tcp: a host name or an IPv4/IPv6 address, without brackets.
    std::string host;
    /// tcp: the port; 0 = any free port (listeners only).
    std::uint16_t port = 0;

    /// Member-wise equality.
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

/// Parses `unix:PATH`, `tcp:HOST:PORT` or another registered transport's `SCHEME:ADDRESS`.
/// Throws std::invalid_argument naming the text and what is wrong: a scheme this build
/// does not have (and those it has), an empty or too long path, a missing host, a port
/// outside 0-65535. Thread safety: reentrant.
Endpoint parse_endpoint(std::string_view text);

/// Formats an endpoint back to `unix:PATH` / `tcp:HOST:PORT` (IPv6 hosts bracketed), so
/// that parse_endpoint(to_string(e)) == e. An endpoint of a scheme this build does not
/// have is `SCHEME:?`. Thread safety: reentrant.
std::string to_string(const Endpoint& endpoint);

}  // namespace mycelium::link
