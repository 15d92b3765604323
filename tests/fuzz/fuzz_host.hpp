#pragma once
// What the client-side fuzz targets share: a listening Unix socket in this process that
// plays the host, and the contracts both sides load.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "mycelium/link_client.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::fuzz {

inline void check(bool ok) {
    if (!ok) std::abort();
}

/// Thread safety: one fuzzing thread.
struct Host {
    schema::Registry registry;
    std::string path;
    int listener = -1;

    explicit Host(std::string_view contracts) : registry(schema::Registry::load_string(contracts, "fuzz.yaml")) {
        char dir[] = "/tmp/mycelium-fuzz-XXXXXX";
        check(::mkdtemp(dir) != nullptr);
        path = std::string(dir) + "/host.sock";
        listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        check(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
        check(::listen(listener, 16) == 0);
    }

    /// A client connected with the registry's digest, and the host's end of it.
    std::pair<link::LinkClient, int> connect() {
        link::LinkClient client = link::LinkClient::connect(link::parse_endpoint("unix:" + path), registry.digest());
        const int served = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        check(served >= 0);
        return {std::move(client), served};
    }
};

}  // namespace mycelium::fuzz
