// Endpoints as text: `SCHEME:ADDRESS`, the scheme naming a transport that parses the rest.

#include "mycelium/endpoint.hpp"

#include <stdexcept>
#include <string>

#include "transport.hpp"

namespace mycelium::link {

Endpoint parse_endpoint(std::string_view text) {
    const auto fail = [&](std::string_view why) {
        return std::invalid_argument("bad endpoint '" + std::string(text) + "': " + std::string(why));
    };
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        throw fail("expected SCHEME:ADDRESS, one of " + detail::known_schemes());
    }
    const std::string_view scheme = text.substr(0, colon);
    const detail::Transport* transport = detail::find_transport(scheme);
    if (transport == nullptr) {
        throw fail("this build has no '" + std::string(scheme) + "' transport (it has " + detail::known_schemes() + ")");
    }
    Endpoint e;
    e.scheme = std::string(scheme);
    try {
        transport->parse(text.substr(colon + 1), e);
    } catch (const std::invalid_argument& why) {
        throw fail(why.what());
    }
    return e;
}

std::string to_string(const Endpoint& endpoint) {
    const detail::Transport* transport = detail::find_transport(endpoint.scheme);
    if (transport == nullptr) return endpoint.scheme + ":?";
    return endpoint.scheme + ":" + transport->format(endpoint);
}

}  // namespace mycelium::link
