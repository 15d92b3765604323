#pragma once
// Internal to host/src/transport: what a transport provides, as a table of operations
// (the shape of NNG's `struct nni_sp_tran`). A transport knows how to spell an address,
// listen, dial, and connect a blocking client; everything after the connection (the
// handshake, frames, shared memory, flow control) is the link's and the same for all.
//
// The contracts every transport keeps:
// - Pipes. Every transport here carries a byte stream over a stream socket, so the pipe
//   is Asio's generic stream socket, bound to a strand of the server's io_context: the
//   Session that takes it reads, writes, shuts down and closes it on that strand. Once a
//   pipe is handed over (to ListenContext::accept, or to DialDone) the transport keeps
//   nothing of it.
// - Threads. listen() runs on the caller's thread (LinkServer::listen) and throws on
//   failure; the listener's accept loop, dial() handlers and DialDone run on io threads.
//   Listener::close() runs on an io thread or, once they are joined, on the stopping one.
//   connect() blocks its caller (LinkClient) until the deadline at most.
// - Blocking. Nothing on an io thread blocks: accept, resolve and connect are
//   asynchronous. A transport never publishes on the bus and never calls back into a bus
//   from inside a bus callback: it only hands pipes to the link.
// - Buffers. A transport owns no frame buffer: the Session owns what it reads and
//   writes. `parse` fills an Endpoint the caller owns.
// - Descriptors. `passes_descriptors` says the pipe can carry file descriptors
//   (SCM_RIGHTS): the link then offers shared-memory rings over it.
// - Errors. parse() throws std::invalid_argument saying what is wrong with the address
//   (the caller names the whole endpoint); listen() and connect() throw
//   std::system_error naming the endpoint; a dial reports its error text to DialDone.
//
// Registering: the built-in transports are in the table when their CMake option
// (MYCELIUM_TRANSPORT_UNIX, MYCELIUM_TRANSPORT_TCP) is on; a test or an embedder adds its
// own with register_transport() before it listens or dials (tests/cpp/transport/pair).

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/logger.h>

#include "mycelium/endpoint.hpp"

namespace mycelium::link::detail {

/// A connected byte stream: what a Session reads and writes.
using Pipe = asio::generic::stream_protocol::socket;
/// The strand a pipe or a dial runs its handlers on.
using Strand = asio::strand<asio::io_context::executor_type>;

/// Who is on the other side of an accepted pipe, as far as its transport can tell.
struct AcceptedPeer {
    /// What log lines call it: `unix:/run/node.sock (pid 4242)`, `tcp:10.0.0.7:51234`.
    std::string description;
    /// What the per-client connection limit counts it under: `uid 1000` for a local user
    /// (a Unix socket's SO_PEERCRED, the owner of a loopback TCP socket), `address
    /// 10.0.0.7` for a remote one.
    std::string identity;
};

/// What a listener needs from the server it listens for.
struct ListenContext {
    asio::io_context& io;
    spdlog::logger& log;
    /// Unix socket files: the mode set before anyone can connect.
    unsigned socket_mode = 0660;
    /// Takes one accepted connection: `pipe` on its own strand of `io`. Runs on an io
    /// thread; must not throw.
    std::function<void(Pipe pipe, AcceptedPeer peer)> accept;
    /// Longest silence between two lines about the same repeated failure (accept()
    /// failing with EMFILE, ...): ServerOptions::log_interval.
    std::chrono::milliseconds log_interval{10'000};
    /// When accept() fails for want of descriptors (EMFILE, ENFILE), the listener accepts
    /// the connection with a descriptor it keeps in reserve, writes these bytes (an ERROR
    /// too_many_connections frame), closes it, and calls `refused`: the client is told
    /// instead of waiting in the backlog. Runs on an io thread; must not throw.
    std::vector<std::byte> out_of_descriptors_reply;
    std::function<void()> refused;
};

/// A listening endpoint's accept loop.
class Listener {
public:
    virtual ~Listener() = default;
    /// Starts accepting (posts to the io thread).
    virtual void start() = 0;
    /// Stops accepting and releases what the listener made (a Unix socket file).
    /// Idempotent. An io thread, or any thread once the io threads are joined.
    virtual void close() noexcept = 0;
};

/// An outbound connection in progress; destroying it cancels it.
class Dial {
public:
    virtual ~Dial() = default;
    /// Ends the attempt: DialDone is then called with an error, or not at all if it was
    /// called already. The dial's strand only.
    virtual void cancel() noexcept = 0;
};

/// Called once, on the dial's strand: a connected pipe, or nullopt and why not.
using DialDone = std::function<void(std::optional<Pipe> pipe, std::string error)>;

/// One transport's operations. Plain function pointers: a transport is a constant table,
/// never an object with state of its own.
struct Transport {
    /// The endpoint's scheme: `unix` in `unix:/run/node.sock`.
    std::string_view scheme;
    /// Pipes can carry file descriptors (shared-memory rings can be set up over them).
    bool passes_descriptors = false;
    /// Fills `out` from the text after `scheme:`; throws std::invalid_argument(why).
    void (*parse)(std::string_view address, Endpoint& out) = nullptr;
    /// The text after `scheme:`, so that parsing it gives `endpoint` back.
    std::string (*format)(const Endpoint& endpoint) = nullptr;
    /// Why `endpoint` cannot be dialed (a listener-only address such as port 0), or
    /// nullopt. May be null: every address can be dialed.
    std::optional<std::string> (*cannot_dial)(const Endpoint& endpoint) = nullptr;
    /// Binds and listens; `bound` is the endpoint as bound (port 0 resolved).
    std::unique_ptr<Listener> (*listen)(const ListenContext& context, Endpoint& bound) = nullptr;
    /// Starts connecting to `endpoint`; `done` runs on `strand`.
    std::unique_ptr<Dial> (*dial)(Strand strand, const Endpoint& endpoint, DialDone done) = nullptr;
    /// Connects a blocking socket by `deadline` and returns its descriptor (LinkClient).
    int (*connect)(const Endpoint& endpoint, std::chrono::steady_clock::time_point deadline) = nullptr;
};

/// Adds a transport to the process's table; replaces one of the same scheme. Call before
/// anything listens or dials on it. Thread safety: safe.
void register_transport(const Transport& transport);
/// The transport of `scheme`, or null. Thread safety: safe.
const Transport* find_transport(std::string_view scheme) noexcept;
/// The transport of `endpoint`; throws std::invalid_argument naming the scheme and those
/// this build has.
const Transport& transport_of(const Endpoint& endpoint);
/// "tcp:, unix:": the schemes this build has, for error messages.
std::string known_schemes();

}  // namespace mycelium::link::detail
