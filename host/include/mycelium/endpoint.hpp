#pragma once
/// Link endpoints as written on command lines and in tools: `unix:PATH` and
/// `tcp:HOST:PORT` (IPv6 hosts in brackets: `tcp:[::1]:9000`; port 0 = any free port when
/// listening). Pure parsing and formatting: no socket is opened here.
///
/// Thread safety: value types and reentrant free functions.

#include <cstdint>
#include <string>
#include <string_view>

namespace mycelium::link {

/// A Unix socket path or a TCP host and port.
/// Thread safety: a value type; distinct objects safe, shared objects unsafe.
struct Endpoint {
    /// Which kind of stream socket.
    enum class Kind : std::uint8_t {
        Unix,  ///< `path` is a Unix socket path
        Tcp,   ///< `host` and `port`
    };
    /// Which kind of stream socket.
    Kind kind = Kind::Unix;
    /// Unix: the socket path (at most 107 bytes, the size of sockaddr_un::sun_path).
    std::string path;
    /// Tcp: a host name or an IPv4/IPv6 address, without brackets.
    std::string host;
    /// Tcp: the port; 0 = any free port (listeners only).
    std::uint16_t port = 0;

    /// Member-wise equality.
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

/// Parses `unix:PATH` or `tcp:HOST:PORT`. Throws std::invalid_argument naming the text and
/// what is wrong: an unknown scheme, an empty or too long path, a missing host, a port
/// outside 0-65535. Thread safety: reentrant.
Endpoint parse_endpoint(std::string_view text);

/// Formats an endpoint back to `unix:PATH` / `tcp:HOST:PORT` (IPv6 hosts bracketed), so
/// that parse_endpoint(to_string(e)) == e. Thread safety: reentrant.
std::string to_string(const Endpoint& endpoint);

}  // namespace mycelium::link
