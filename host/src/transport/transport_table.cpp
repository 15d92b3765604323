// The process's table of transports: the built-in ones this build has, then whatever
// register_transport() added.

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "transport.hpp"

namespace mycelium::link::detail {

#if MYCELIUM_TRANSPORT_UNIX
extern const Transport UNIX_TRANSPORT;  // unix/unix_transport.cpp
#endif
#if MYCELIUM_TRANSPORT_TCP
extern const Transport TCP_TRANSPORT;  // tcp/tcp_transport.cpp
#endif

namespace {

struct Table {
    std::mutex mutex;
    std::vector<const Transport*> transports;
};

Table& table() {
    static Table t{{},
                   {
#if MYCELIUM_TRANSPORT_UNIX
                       &UNIX_TRANSPORT,
#endif
#if MYCELIUM_TRANSPORT_TCP
                       &TCP_TRANSPORT,
#endif
                   }};
    return t;
}

}  // namespace

void register_transport(const Transport& transport) {
    auto& t = table();
    std::lock_guard lock(t.mutex);
    const auto same = std::find_if(t.transports.begin(), t.transports.end(),
                                   [&](const Transport* known) { return known->scheme == transport.scheme; });
    if (same != t.transports.end()) {
        *same = &transport;
    } else {
        t.transports.push_back(&transport);
    }
}

const Transport* find_transport(std::string_view scheme) noexcept {
    auto& t = table();
    std::lock_guard lock(t.mutex);
    for (const Transport* known : t.transports) {
        if (known->scheme == scheme) return known;
    }
    return nullptr;
}

const Transport& transport_of(const Endpoint& endpoint) {
    const Transport* transport = find_transport(endpoint.scheme);
    if (transport == nullptr) {
        throw std::invalid_argument("this build has no '" + endpoint.scheme + "' transport (it has " +
                                    known_schemes() + ")");
    }
    return *transport;
}

std::string known_schemes() {
    auto& t = table();
    std::lock_guard lock(t.mutex);
    std::string out;
    for (const Transport* known : t.transports) {
        if (!out.empty()) out += ", ";
        out += std::string(known->scheme) + ":";
    }
    return out.empty() ? "none" : out;
}

}  // namespace mycelium::link::detail
