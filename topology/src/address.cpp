#include <algorithm>
#include <cctype>
#include <charconv>

#include "mycelium/topology/topology.hpp"
#include "detail.hpp"

namespace mycelium::topology {
namespace {

bool is_ipv4_like(std::string_view host) {
    return std::all_of(host.begin(), host.end(),
                       [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

bool valid_ipv4(std::string_view host) {
    int parts = 0;
    while (true) {
        const auto dot = host.find('.');
        const std::string_view part = host.substr(0, dot);
        if (part.empty() || part.size() > 3) return false;
        unsigned value = 0;
        std::from_chars(part.data(), part.data() + part.size(), value);
        if (value > 255) return false;
        ++parts;
        if (dot == std::string_view::npos) break;
        host.remove_prefix(dot + 1);
    }
    return parts == 4;
}

bool valid_ipv6(std::string_view host) {
    if (host.size() < 2 || host.find(':') == std::string_view::npos) return false;
    return std::all_of(host.begin(), host.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
    });
}

// RFC 1123 host names: labels of letters, digits and '-', not starting or ending in '-'.
bool valid_hostname(std::string_view host) {
    if (host.empty() || host.size() > 253) return false;
    std::size_t label = 0;
    char previous = '.';
    for (const char c : host) {
        if (c == '.') {
            if (label == 0 || previous == '-') return false;
            label = 0;
        } else if (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_') {
            if (label == 0 && c == '-') return false;
            if (++label > 63) return false;
        } else {
            return false;
        }
        previous = c;
    }
    return label > 0 && previous != '-';
}

}  // namespace

bool detail::valid_host(std::string_view host) {
    if (is_ipv4_like(host)) return valid_ipv4(host);
    if (host.find(':') != std::string_view::npos) return valid_ipv6(host);
    return valid_hostname(host);
}

std::optional<SocketAddress> parse_socket_address(std::string_view text) {
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        if (!valid_ipv6(host)) return std::nullopt;
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        // An unbracketed IPv6 address would make the port ambiguous.
        if (host.find(':') != std::string_view::npos || !detail::valid_host(host))
            return std::nullopt;
    }
    if (port.empty() || port.size() > 5) return std::nullopt;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value > 65535) return std::nullopt;
    return SocketAddress{std::string(host), static_cast<std::uint16_t>(value)};
}

std::string to_string(const SocketAddress& address) {
    if (address.host.find(':') != std::string::npos)
        return "[" + address.host + "]:" + std::to_string(address.port);
    return address.host + ":" + std::to_string(address.port);
}

bool is_local_host(std::string_view host) noexcept {
    if (host.empty() || host == "127.0.0.1" || host == "::1") return true;
    constexpr std::string_view localhost = "localhost";
    return host.size() == localhost.size() &&
           std::equal(host.begin(), host.end(), localhost.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == b;
           });
}

}  // namespace mycelium::topology
