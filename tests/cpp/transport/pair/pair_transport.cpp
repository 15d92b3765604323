// A test-only transport, `pair:NAME`: every connection is a socketpair(2) made inside this
// process, handed to whichever LinkServer listens on NAME. It proves the transport table
// (host/src/transport/transport.hpp): it touches nothing outside this folder but the one
// line in ../CMakeLists.txt that adds it, and passes the same link conformance suite as
// unix: and tcp:. Its pipes are AF_UNIX, so they pass descriptors (shared memory works).

#include <asio/post.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>

#include "transport.hpp"

namespace {

using namespace mycelium::link;
using namespace mycelium::link::detail;

/// Who listens on a name: the server's io_context and its accept callback.
struct Listening {
    asio::io_context* io = nullptr;
    std::function<void(Pipe, AcceptedPeer)> accept;
    std::uint64_t id = 0;  // tells this listener from a later one on the same name
};

struct Names {
    std::mutex mutex;
    std::map<std::string, Listening> listening;
    std::uint64_t next_id = 1;
};

Names& names() {
    static Names n;
    return n;
}

void parse(std::string_view address, Endpoint& out) {
    if (address.empty()) throw std::invalid_argument("the pair name is empty");
    out.path = std::string(address);
}

std::string format(const Endpoint& endpoint) { return endpoint.path; }

class PairListener final : public Listener {
public:
    PairListener(std::string name, std::uint64_t id) : name_(std::move(name)), id_(id) {}
    ~PairListener() override { close(); }
    void start() override {}  // connections arrive through connect() and dial()
    void close() noexcept override {
        auto& n = names();
        std::lock_guard lock(n.mutex);
        const auto found = n.listening.find(name_);
        if (found != n.listening.end() && found->second.id == id_) n.listening.erase(found);
    }

private:
    std::string name_;
    std::uint64_t id_;
};

std::unique_ptr<Listener> listen(const ListenContext& context, Endpoint& bound) {
    auto& n = names();
    std::lock_guard lock(n.mutex);
    if (n.listening.count(bound.path) != 0) {
        throw std::system_error(EADDRINUSE, std::generic_category(), "pair:" + bound.path + " has a listener");
    }
    const std::uint64_t id = n.next_id++;
    n.listening[bound.path] = Listening{&context.io, context.accept, id};
    return std::make_unique<PairListener>(bound.path, id);
}

/// Makes the pair and hands the server's end to the listener (on its io thread); returns
/// the other end, or -1 with `error` set when nobody listens on the name.
int pair_with_listener(const Endpoint& endpoint, std::string& error) {
    Listening listening;
    {
        auto& n = names();
        std::lock_guard lock(n.mutex);
        const auto found = n.listening.find(endpoint.path);
        if (found == n.listening.end()) {
            error = "nobody listens on pair:" + endpoint.path;
            return -1;
        }
        listening = found->second;
    }
    int fds[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        error = std::string("socketpair failed: ") + std::strerror(errno);
        return -1;
    }
    Pipe server_end(asio::make_strand(*listening.io));
    server_end.assign(asio::generic::stream_protocol(AF_UNIX, 0), fds[1]);
    asio::post(*listening.io, [accept = listening.accept, pipe = std::move(server_end),
                               peer = "pair:" + endpoint.path]() mutable {
        accept(std::move(pipe), AcceptedPeer{peer, peer});
    });
    return fds[0];
}

class PairDial final : public Dial {
public:
    explicit PairDial(std::shared_ptr<std::atomic<bool>> cancelled) : cancelled_(std::move(cancelled)) {}
    void cancel() noexcept override { cancelled_->store(true); }

private:
    std::shared_ptr<std::atomic<bool>> cancelled_;
};

std::unique_ptr<Dial> dial(Strand strand, const Endpoint& endpoint, DialDone done) {
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    std::string error;
    const int fd = pair_with_listener(endpoint, error);
    std::optional<Pipe> pipe;
    if (fd >= 0) {
        pipe.emplace(strand);
        pipe->assign(asio::generic::stream_protocol(AF_UNIX, 0), fd);
    }
    asio::post(strand, [cancelled, done = std::move(done), pipe = std::move(pipe), error]() mutable {
        if (cancelled->load()) return done(std::nullopt, "cancelled");
        done(std::move(pipe), error);
    });
    return std::make_unique<PairDial>(cancelled);
}

int connect(const Endpoint& endpoint, std::chrono::steady_clock::time_point) {
    std::string error;
    const int fd = pair_with_listener(endpoint, error);
    if (fd < 0) throw std::system_error(ECONNREFUSED, std::generic_category(), error);
    return fd;
}

const Transport PAIR_TRANSPORT{
    .scheme = "pair",
    .passes_descriptors = true,
    .parse = parse,
    .format = format,
    .cannot_dial = nullptr,
    .listen = listen,
    .dial = dial,
    .connect = connect,
};

// The test binary links this file directly, so the registration runs before main().
const bool registered = (register_transport(PAIR_TRANSPORT), true);

}  // namespace
