#pragma once
// Internal to host/src/transport: the asynchronous connect of a socket transport, over a
// list of addresses tried in order (a TCP name resolves to several). The state is shared
// with the pending handlers, so that the Dial's owner may drop it from inside DialDone.

#include <asio/generic/stream_protocol.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "transport.hpp"

namespace mycelium::link::detail {

struct SocketDialState {
    SocketDialState(Strand s, DialDone d) : strand(std::move(s)), done(std::move(d)) {}

    Strand strand;
    DialDone done;                      // empty once called
    std::function<void(Pipe&)> configure;  // options for the connected pipe (may be empty)
    std::function<void()> on_cancel;       // stops a step before connecting (a resolve)
    std::optional<Pipe> pipe;           // the socket being connected
    std::vector<asio::generic::stream_protocol::endpoint> targets;
    std::size_t next = 0;
    std::string last_error;
    bool cancelled = false;

    /// Calls `done` once.
    void finish(std::optional<Pipe> connected, std::string error);
};

/// Connects to state->targets in order; calls state->finish. The dial's strand.
void connect_next(const std::shared_ptr<SocketDialState>& state);

/// A Dial over a SocketDialState.
class SocketDial final : public Dial {
public:
    explicit SocketDial(std::shared_ptr<SocketDialState> state) : state_(std::move(state)) {}
    ~SocketDial() override { cancel(); }
    void cancel() noexcept override;

private:
    std::shared_ptr<SocketDialState> state_;
};

}  // namespace mycelium::link::detail
