// LinkServer: io threads, Unix and TCP listeners, accept loops, orderly stop.

#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "mycelium/link.hpp"
#include "peer_dialer.hpp"
#include "session.hpp"

namespace mycelium::link {

namespace detail {

namespace {

std::system_error system_error(int error, const std::string& what) {
    return std::system_error(error, std::generic_category(), what);
}

// "tcp:127.0.0.1:53211" for TCP peers; for Unix peers, which are usually unnamed, the
// listening path and the peer's pid (SO_PEERCRED), so a log line points at a process.
std::string describe_peer(Session::Socket& socket, const std::string& listener) {
    sockaddr_storage addr{};
    socklen_t length = sizeof addr;
    const int fd = socket.native_handle();
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
        char text[INET6_ADDRSTRLEN] = {};
        if (addr.ss_family == AF_INET) {
            const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
            ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
            return fmt::format("tcp:{}:{}", text, ntohs(in->sin_port));
        }
        if (addr.ss_family == AF_INET6) {
            const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
            ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
            return fmt::format("tcp:[{}]:{}", text, ntohs(in6->sin6_port));
        }
    }
    ucred cred{};
    socklen_t cred_length = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_length) == 0) {
        return fmt::format("{} (pid {})", listener, cred.pid);
    }
    return listener;
}

// An existing file at a Unix socket path is replaced only when it is a socket nobody
// answers on: connecting tells a stale file (ECONNREFUSED) from a live server.
void clear_stale_socket(const std::string& path, spdlog::logger& log) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw system_error(errno, "cannot inspect '" + path + "'");
    }
    if (!S_ISSOCK(st.st_mode)) throw system_error(EEXIST, "'" + path + "' exists and is not a socket");
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw system_error(errno, "socket()");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int error = errno;
    ::close(fd);
    if (rc == 0) throw system_error(EADDRINUSE, "a server is answering on '" + path + "'");
    if (error != ECONNREFUSED) throw system_error(error, "cannot tell whether '" + path + "' is stale");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw system_error(errno, "cannot remove stale '" + path + "'");
    log.info("replaced the stale socket file '{}'", path);
}

// A socket in a directory that does not exist yet (Mycelium's `/dev/shm/mycelium/NAME.shm`)
// gets it, as Mycelium makes it: with the process's umask, as `mkdir -p` would.
void make_socket_directory(const std::string& path, spdlog::logger& log) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (parent.empty()) return;
    std::error_code ec;
    if (std::filesystem::create_directories(parent, ec)) {
        log.info("created the directory '{}' for the socket '{}'", parent.string(), path);
    } else if (ec) {
        throw system_error(ec.value(), "cannot create the directory '" + parent.string() + "' for '" + path + "'");
    }
}

/// An accept loop over one acceptor, for either protocol.
template <class Protocol>
class AcceptorListener final : public Listener {
public:
    AcceptorListener(ServerState& state, typename Protocol::acceptor acceptor, std::string where)
        : state_(state), acceptor_(std::move(acceptor)), where_(std::move(where)), retry_(state.io) {}

    void start() override {
        asio::post(acceptor_.get_executor(), [this] { accept_one(); });
    }

    void close() noexcept override {
        asio::error_code ignored;
        acceptor_.close(ignored);
        retry_.cancel();
    }

private:
    void accept_one() {
        // Each connection gets its own strand, so any number of io threads serve it safely.
        auto socket = std::make_shared<Session::Socket>(asio::make_strand(state_.io));
        acceptor_.async_accept(*socket, [this, socket](const asio::error_code& ec) {
            try {
                on_accept(ec, std::move(*socket));
            } catch (const std::exception& e) {
                state_.log->error("{}: accept handler failed: {}", where_, e.what());
                if (acceptor_.is_open()) accept_one();
            }
        });
    }

    void on_accept(const asio::error_code& ec, Session::Socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
        if (ec) {
            // EMFILE and friends: wait a little instead of spinning on a failing accept.
            state_.log->warn("{}: accept failed: {}", where_, ec.message());
            retry_.expires_after(std::chrono::milliseconds(100));
            retry_.async_wait([this](const asio::error_code& wait_ec) {
                if (!wait_ec && acceptor_.is_open()) accept_one();
            });
            return;
        }
        Counters::add(state_.counters.accepted);
        if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
            asio::error_code ignored;
            socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        }
        std::string peer = describe_peer(socket, where_);
        const std::uint64_t id = state_.next_id.fetch_add(1, std::memory_order_relaxed);
        auto session = std::make_shared<Session>(state_, std::move(socket), std::move(peer), id);
        asio::post(session->socket_executor(), [session] { session->start(); });
        accept_one();
    }

    ServerState& state_;
    typename Protocol::acceptor acceptor_;
    std::string where_;
    asio::steady_timer retry_;
};

}  // namespace

}  // namespace detail

// ---------------------------------------------------------------------------------------
// LinkServer
// ---------------------------------------------------------------------------------------

LinkServer::LinkServer(Bus& bus, const schema::Registry& registry, ServerOptions options)
    : state_(std::make_shared<detail::ServerState>(bus, registry, options)) {
    auto& s = *state_;
    s.work.emplace(asio::make_work_guard(s.io));
    try {
        for (std::size_t i = 0; i < s.options.threads; ++i) {
            s.threads.emplace_back([&s] {
                detail::mark_link_io_thread();  // never waits for room in a ring (session.hpp)
                // Handlers catch their own exceptions; this is the last line of defence so
                // that one escaping handler does not stop the io thread.
                for (;;) {
                    try {
                        s.io.run();
                        return;
                    } catch (const std::exception& e) {
                        s.log->error("io thread: unhandled exception: {}", e.what());
                    }
                }
            });
        }
    } catch (...) {
        stop();
        throw;
    }
}

LinkServer::~LinkServer() {
    stop();
    if (!state_) return;
    // A cork (PublishBatch) on some thread may still hold one of our sessions; it must be
    // dropped while the io_context it belongs to exists. Ours go now, others' at their end.
    detail::Session::release_thread_batch_holds(*state_);
    for (int waited_ms = 1; state_->batch_holds.load(std::memory_order_acquire) != 0; ++waited_ms) {
        if (waited_ms % 1000 == 0)
            state_->log->warn("stopping the link server: waiting for {} link(s) held by an open PublishBatch",
                              state_->batch_holds.load(std::memory_order_relaxed));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

Endpoint LinkServer::listen(std::string_view endpoint) { return listen(parse_endpoint(endpoint)); }

Endpoint LinkServer::listen(const Endpoint& endpoint) {
    auto& s = *state_;
    {
        std::lock_guard lock(s.mutex);
        if (s.stopped) throw std::logic_error("LinkServer::listen after stop()");
    }
    Endpoint bound = endpoint;
    std::unique_ptr<detail::Listener> listener;
    if (endpoint.kind == Endpoint::Kind::Unix) {
        using Protocol = asio::local::stream_protocol;
        detail::make_socket_directory(endpoint.path, *s.log);
        detail::clear_stale_socket(endpoint.path, *s.log);
        Protocol::acceptor acceptor(s.io);
        acceptor.open(Protocol());
        acceptor.bind(Protocol::endpoint(endpoint.path));
        // Before listen(), nobody can connect: the mode is in place before the first client.
        if (::chmod(endpoint.path.c_str(), static_cast<mode_t>(s.options.socket_mode)) != 0) {
            const int error = errno;
            ::unlink(endpoint.path.c_str());
            throw detail::system_error(error, "cannot set the mode of '" + endpoint.path + "'");
        }
        acceptor.listen();
        struct stat st {};
        const unsigned long inode = ::stat(endpoint.path.c_str(), &st) == 0 ? st.st_ino : 0;
        {
            std::lock_guard lock(s.mutex);
            s.socket_files.push_back({endpoint.path, inode});
        }
        listener = std::make_unique<detail::AcceptorListener<Protocol>>(s, std::move(acceptor), to_string(endpoint));
    } else {
        using Protocol = asio::ip::tcp;
        asio::ip::tcp::resolver resolver(s.io);
        const auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port),
                                              asio::ip::resolver_base::passive | asio::ip::resolver_base::numeric_service);
        if (results.empty()) throw detail::system_error(EADDRNOTAVAIL, "cannot resolve '" + endpoint.host + "'");
        const Protocol::endpoint address = results.begin()->endpoint();
        Protocol::acceptor acceptor(s.io);
        acceptor.open(address.protocol());
        acceptor.set_option(asio::socket_base::reuse_address(true));
        acceptor.bind(address);
        acceptor.listen();
        bound.port = acceptor.local_endpoint().port();
        listener = std::make_unique<detail::AcceptorListener<Protocol>>(s, std::move(acceptor), to_string(bound));
    }
    s.log->info("listening on {}", to_string(bound));
    listener->start();
    std::lock_guard lock(s.mutex);
    s.endpoints.push_back(bound);
    s.listeners.push_back(std::move(listener));
    return bound;
}

std::vector<Endpoint> LinkServer::endpoints() const {
    std::lock_guard lock(state_->mutex);
    return state_->endpoints;
}

void LinkServer::stop() noexcept {
    if (!state_) return;
    auto& s = *state_;
    std::vector<std::shared_ptr<detail::Session>> sessions;
    std::vector<std::shared_ptr<detail::PeerDialer>> dialers;
    {
        std::lock_guard lock(s.mutex);
        if (s.stopped && s.threads.empty()) return;
        s.stopped = true;
        dialers = s.dialers;
    }
    // Dialers first, so that no link is redialed while the sessions close.
    for (auto& dialer : dialers) dialer->close();
    {
        std::lock_guard lock(s.mutex);
        for (auto& [id, weak] : s.sessions) {
            if (auto session = weak.lock()) sessions.push_back(std::move(session));
        }
    }
    try {
        asio::post(s.io, [&s] {
            std::lock_guard listeners_lock(s.mutex);
            for (auto& listener : s.listeners) listener->close();
        });
        for (auto& session : sessions) session->shut_down();
        sessions.clear();
        std::unique_lock lock(s.mutex);
        s.sessions_changed.wait_for(lock, s.options.close_linger + std::chrono::milliseconds(500),
                                    [&] { return s.sessions.empty(); });
    } catch (const std::exception& e) {
        s.log->error("stopping the link server: {}", e.what());
    }
    s.work.reset();
    s.io.stop();
    for (auto& thread : s.threads) {
        if (thread.joinable()) thread.join();
    }
    s.threads.clear();
    // No io thread runs any more: finish the sessions that did not close in time here, so
    // their bus callbacks stop before the state goes away.
    {
        std::unique_lock lock(s.mutex);
        for (auto& [id, weak] : s.sessions) {
            if (auto session = weak.lock()) sessions.push_back(std::move(session));
        }
    }
    for (auto& session : sessions) session->finish();
    sessions.clear();
    for (auto& dialer : dialers) dialer->close_now();
    for (auto& listener : s.listeners) listener->close();
    for (const auto& file : s.socket_files) {
        // Remove only the file we created: another server may have replaced it since.
        struct stat st {};
        if (::stat(file.path.c_str(), &st) == 0 && st.st_ino == file.inode) ::unlink(file.path.c_str());
    }
    s.socket_files.clear();
}

void LinkServer::connect_peer(std::string peer_name, const Endpoint& endpoint, PeerOptions options) {
    auto& s = *state_;
    if (peer_name.empty()) throw std::invalid_argument("connect_peer: empty peer name");
    if (endpoint.kind == Endpoint::Kind::Tcp && endpoint.port == 0)
        throw std::invalid_argument("connect_peer: cannot dial port 0 of '" + endpoint.host + "' for peer '" + peer_name + "'");
    (void)encode_hello(Hello{control::PROTOCOL_VERSION, Role::Peer, options.self_name});  // validates the name
    std::shared_ptr<detail::PeerDialer> dialer;
    {
        std::lock_guard lock(s.mutex);
        if (s.stopped) throw std::logic_error("LinkServer::connect_peer after stop()");
        auto& record = s.peers[peer_name];
        if (record && record->dialed) throw std::invalid_argument("connect_peer: peer '" + peer_name + "' is already dialed");
        // A record created by an earlier inbound link of that peer is replaced: from now on
        // this server dials it.
        record = std::make_shared<detail::PeerRecord>(peer_name, true);
        record->endpoint = to_string(endpoint);
        dialer = std::make_shared<detail::PeerDialer>(s, record, endpoint, std::move(options));
        s.dialers.push_back(dialer);
    }
    s.mesh_log->info("peer '{}': dialing {}", peer_name, to_string(endpoint));
    dialer->start();
}

std::uint64_t LinkServer::queued_frames() const {
    std::vector<std::shared_ptr<detail::Session>> sessions;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [id, weak] : state_->sessions)
            if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
    std::uint64_t total = 0;
    for (const auto& session : sessions) total += session->queued_frames();
    return total;
}

std::vector<std::pair<std::string, std::vector<ReportedFamily>>> LinkServer::client_metrics() const {
    std::vector<std::shared_ptr<detail::Session>> sessions;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [id, weak] : state_->sessions)
            if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
    std::vector<std::pair<std::string, std::vector<ReportedFamily>>> out;
    for (const auto& session : sessions) {
        auto [client, snapshot] = session->reported_metrics();
        if (snapshot) out.emplace_back(std::move(client), *snapshot);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
}

std::vector<ClientDrops> LinkServer::client_drops() const {
    std::vector<std::shared_ptr<detail::Session>> sessions;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [id, weak] : state_->sessions)
            if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
    std::vector<ClientDrops> out;
    for (const auto& session : sessions) {
        ClientDrops bad = session->drops();
        if (bad.unknown_type != 0 || bad.size_mismatch != 0 || bad.slow_consumer != 0) out.push_back(std::move(bad));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.client < b.client; });
    return out;
}

std::vector<PeerStatus> LinkServer::peers() const {
    std::vector<std::shared_ptr<detail::PeerRecord>> records;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [name, record] : state_->peers) records.push_back(record);
    }
    std::vector<PeerStatus> out;
    out.reserve(records.size());
    const auto get = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
    for (const auto& r : records) {
        PeerStatus p;
        p.name = r->name;
        p.dialed = r->dialed;
        {
            std::lock_guard lock(r->mutex);
            p.endpoint = r->endpoint;
        }
        p.connected = r->connected.load(std::memory_order_relaxed);
        p.connects = get(r->connects);
        p.reconnects = p.connects > 0 ? p.connects - 1 : 0;
        p.connect_failures = get(r->connect_failures);
        p.frames_in = get(r->frames_in);
        p.frames_out = get(r->frames_out);
        p.bytes_in = get(r->bytes_in);
        p.bytes_out = get(r->bytes_out);
        out.push_back(std::move(p));
    }
    return out;
}

void LinkServer::set_client_observer(ClientObserver observer) {
    std::lock_guard lock(state_->client_observer_mutex);
    state_->client_observer = std::move(observer);
}

LinkStats LinkServer::stats() const noexcept {
    const auto& c = state_->counters;
    const auto get = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
    LinkStats out;
    out.accepted = get(c.accepted);
    {
        std::lock_guard lock(state_->mutex);
        out.active = state_->active;
    }
    out.rejected_max_connections = get(c.rejected_max_connections);
    out.handshakes_ok = get(c.handshakes_ok);
    out.bad_digest_length = get(c.bad_digest_length);
    out.digest_mismatch = get(c.digest_mismatch);
    out.handshake_timeout = get(c.handshake_timeout);
    out.truncated = get(c.truncated);
    out.oversize = get(c.oversize);
    out.unknown_type = get(c.unknown_type);
    out.size_mismatch = get(c.size_mismatch);
    out.protocol_errors = get(c.protocol_errors);
    out.slow_consumers = get(c.slow_consumers);
    out.flow_pauses = get(c.flow_pauses);
    out.dropped_frames = get(c.dropped_frames);
    out.legacy_packed_in = get(c.legacy_packed_in);
    out.legacy_packed_out = get(c.legacy_packed_out);
    out.legacy_layout_switches = get(c.legacy_layout_switches);
    out.unsendable = get(c.unsendable);
    out.frames_received = get(c.frames_received);
    out.frames_sent = get(c.frames_sent);
    out.bytes_received = get(c.bytes_received);
    out.bytes_sent = get(c.bytes_sent);
    out.writes = get(c.writes);
    out.shm_links = get(c.shm_links);
    out.shm_refused = get(c.shm_refused);
    out.shm_corrupt = get(c.shm_corrupt);
    out.shm_frames_received = get(c.shm_frames_received);
    out.shm_frames_sent = get(c.shm_frames_sent);
    return out;
}

}  // namespace mycelium::link
