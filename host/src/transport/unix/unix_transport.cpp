// The `unix:PATH` transport: stream sockets on the filesystem. Pipes pass descriptors, so
// shared-memory rings can be set up over them.

#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "../acceptor_listener.hpp"
#include "../posix_connect.hpp"
#include "../socket_dial.hpp"
#include "../transport.hpp"
#include "mycelium/topology/topology.hpp"

namespace mycelium::link::detail {

namespace {

using Protocol = asio::local::stream_protocol;

std::system_error system_error(int error, const std::string& what) {
    return std::system_error(error, std::generic_category(), what);
}

void parse(std::string_view address, Endpoint& out) {
    if (address.empty()) throw std::invalid_argument("the socket path is empty");
    if (address.size() > topology::MAX_UNIX_PATH) {
        throw std::invalid_argument("the socket path is longer than " + std::to_string(topology::MAX_UNIX_PATH) +
                                    " bytes");
    }
    if (address.find('\0') != std::string_view::npos) throw std::invalid_argument("the socket path contains a NUL byte");
    out.path = std::string(address);
}

std::string format(const Endpoint& endpoint) { return endpoint.path; }

// Unix peers are usually unnamed: the listening path and the peer's pid (SO_PEERCRED),
// so that a log line points at a process; the per-client limit counts its uid.
AcceptedPeer identify_peer(Pipe& pipe, const std::string& listener) {
    ucred cred{};
    socklen_t length = sizeof cred;
    if (::getsockopt(pipe.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0) {
        return AcceptedPeer{fmt::format("{} (pid {})", listener, cred.pid), fmt::format("uid {}", cred.uid)};
    }
    return AcceptedPeer{listener, "unknown Unix peer"};
}

// An existing file at a socket path is replaced only when it is a socket nobody answers
// on: connecting tells a stale file (ECONNREFUSED) from a live server.
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

std::unique_ptr<Listener> listen(const ListenContext& context, Endpoint& bound) {
    const std::string path = bound.path;
    make_socket_directory(path, context.log);
    clear_stale_socket(path, context.log);
    Protocol::acceptor acceptor(context.io);
    acceptor.open(Protocol());
    acceptor.bind(Protocol::endpoint(path));
    // Before listen(), nobody can connect: the mode is in place before the first client.
    if (::chmod(path.c_str(), static_cast<mode_t>(context.socket_mode)) != 0) {
        const int error = errno;
        ::unlink(path.c_str());
        throw system_error(error, "cannot set the mode of '" + path + "'");
    }
    acceptor.listen();
    struct stat st {};
    const auto inode = ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
    const std::string where = "unix:" + path;
    AcceptHooks hooks;
    hooks.identify = [where](Pipe& pipe) { return identify_peer(pipe, where); };
    hooks.on_close = [path, inode] {
        // Remove only the file this listener made: another server may have replaced it since.
        struct stat now {};
        if (::stat(path.c_str(), &now) == 0 && now.st_ino == inode) ::unlink(path.c_str());
    };
    return std::make_unique<AcceptorListener<Protocol>>(context, std::move(acceptor), where, std::move(hooks));
}

std::unique_ptr<Dial> dial(Strand strand, const Endpoint& endpoint, DialDone done) {
    auto state = std::make_shared<SocketDialState>(strand, std::move(done));
    state->targets.emplace_back(Protocol::endpoint(endpoint.path));
    asio::post(strand, [state] { connect_next(state); });
    return std::make_unique<SocketDial>(state);
}

int connect(const Endpoint& endpoint, std::chrono::steady_clock::time_point deadline) {
    const std::string what = "unix:" + endpoint.path;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (endpoint.path.size() >= sizeof addr.sun_path) throw std::invalid_argument("socket path too long: " + what);
    std::memcpy(addr.sun_path, endpoint.path.data(), endpoint.path.size());
    return connect_with_deadline(AF_UNIX, reinterpret_cast<const sockaddr*>(&addr), sizeof addr, deadline, what);
}

}  // namespace

extern const Transport UNIX_TRANSPORT;
const Transport UNIX_TRANSPORT{
    .scheme = "unix",
    .passes_descriptors = true,
    .parse = parse,
    .format = format,
    .cannot_dial = nullptr,
    .listen = listen,
    .dial = dial,
    .connect = connect,
};

}  // namespace mycelium::link::detail
