// The `tcp:HOST:PORT` transport. Pipes get TCP_NODELAY: frames are small and latency
// matters more than segment count (the link batches writes itself).

#include <asio/bind_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "../acceptor_listener.hpp"
#include "../posix_connect.hpp"
#include "../socket_dial.hpp"
#include "../transport.hpp"
#include "loopback_owner.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::link::detail {

namespace {

using Protocol = asio::ip::tcp;

void parse(std::string_view address, Endpoint& out) {
    const auto parsed = topology::parse_socket_address(address);
    if (!parsed) throw std::invalid_argument("expected tcp:HOST:PORT with a port in 0-65535");
    out.host = parsed->host;
    out.port = parsed->port;
}

std::string format(const Endpoint& endpoint) {
    return topology::to_string(topology::SocketAddress{endpoint.host, endpoint.port});
}

std::optional<std::string> cannot_dial(const Endpoint& endpoint) {
    if (endpoint.port == 0) return "cannot dial port 0 of '" + endpoint.host + "'";
    return std::nullopt;
}

void no_delay(Pipe& pipe) {
    asio::error_code ignored;
    pipe.set_option(asio::ip::tcp::no_delay(true), ignored);
}

// A remote peer is its address and port in log lines and its address for the per-client
// limit; a local one (loopback) is counted under the uid that owns its socket, as it would
// be on a Unix socket.
AcceptedPeer identify_peer(Pipe& pipe, const std::string& listener) {
    sockaddr_storage addr{};
    socklen_t length = sizeof addr;
    if (::getpeername(pipe.native_handle(), reinterpret_cast<sockaddr*>(&addr), &length) != 0)
        return AcceptedPeer{listener, "unknown TCP peer"};
    char text[INET6_ADDRSTRLEN] = {};
    AcceptedPeer peer{listener, "unknown TCP peer"};
    if (addr.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
        ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        peer = AcceptedPeer{fmt::format("tcp:{}:{}", text, ntohs(in->sin_port)), fmt::format("address {}", text)};
    } else if (addr.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        peer = AcceptedPeer{fmt::format("tcp:[{}]:{}", text, ntohs(in6->sin6_port)), fmt::format("address {}", text)};
    }
    if (const auto uid = loopback_peer_uid(pipe.native_handle())) peer.identity = fmt::format("uid {}", *uid);
    return peer;
}

std::unique_ptr<Listener> listen(const ListenContext& context, Endpoint& bound) {
    Protocol::resolver resolver(context.io);
    const auto results = resolver.resolve(bound.host, std::to_string(bound.port),
                                          asio::ip::resolver_base::passive | asio::ip::resolver_base::numeric_service);
    if (results.empty()) {
        throw std::system_error(EADDRNOTAVAIL, std::generic_category(), "cannot resolve '" + bound.host + "'");
    }
    const Protocol::endpoint address = results.begin()->endpoint();
    Protocol::acceptor acceptor(context.io);
    acceptor.open(address.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(address);
    acceptor.listen();
    bound.port = acceptor.local_endpoint().port();
    const std::string where = "tcp:" + format(bound);
    AcceptHooks hooks;
    hooks.configure = no_delay;
    hooks.identify = [where](Pipe& pipe) { return identify_peer(pipe, where); };
    return std::make_unique<AcceptorListener<Protocol>>(context, std::move(acceptor), where, std::move(hooks));
}

std::unique_ptr<Dial> dial(Strand strand, const Endpoint& endpoint, DialDone done) {
    auto state = std::make_shared<SocketDialState>(strand, std::move(done));
    state->configure = no_delay;
    auto resolver = std::make_shared<Protocol::resolver>(strand);
    state->on_cancel = [resolver] { resolver->cancel(); };
    resolver->async_resolve(
        endpoint.host, std::to_string(endpoint.port), asio::ip::resolver_base::numeric_service,
        asio::bind_executor(strand, [state, resolver](const asio::error_code& ec,
                                                     const Protocol::resolver::results_type& results) {
            if (state->cancelled) return state->finish(std::nullopt, "cancelled while resolving the host");
            if (ec) return state->finish(std::nullopt, "cannot resolve: " + ec.message());
            for (const auto& entry : results) state->targets.emplace_back(entry.endpoint());
            connect_next(state);
        }));
    return std::make_unique<SocketDial>(state);
}

int connect(const Endpoint& endpoint, std::chrono::steady_clock::time_point deadline) {
    const std::string what = "tcp:" + format(endpoint);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(endpoint.port);
    if (const int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
        throw std::invalid_argument("cannot resolve " + what + ": " + ::gai_strerror(rc));
    }
    std::system_error last(ECONNREFUSED, std::generic_category(), "cannot connect to " + what);
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
        try {
            const int fd = connect_with_deadline(a->ai_family, a->ai_addr, a->ai_addrlen, deadline, what);
            ::freeaddrinfo(found);
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        } catch (const std::system_error& e) {
            last = e;
        }
    }
    ::freeaddrinfo(found);
    throw last;
}

}  // namespace

extern const Transport TCP_TRANSPORT;
const Transport TCP_TRANSPORT{
    .scheme = "tcp",
    .passes_descriptors = false,
    .parse = parse,
    .format = format,
    .cannot_dial = cannot_dial,
    .listen = listen,
    .dial = dial,
    .connect = connect,
};

}  // namespace mycelium::link::detail
