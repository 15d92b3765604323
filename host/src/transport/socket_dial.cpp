#include "socket_dial.hpp"

#include <asio/bind_executor.hpp>

namespace mycelium::link::detail {

void SocketDialState::finish(std::optional<Pipe> connected, std::string error) {
    if (!done) return;
    const DialDone call = std::exchange(done, nullptr);
    call(std::move(connected), std::move(error));
}

void connect_next(const std::shared_ptr<SocketDialState>& state) {
    if (state->cancelled) return state->finish(std::nullopt, "cancelled");
    if (state->next >= state->targets.size()) {
        return state->finish(std::nullopt, state->last_error.empty() ? "no address to connect to" : state->last_error);
    }
    state->pipe.emplace(state->strand);
    state->pipe->async_connect(state->targets[state->next],
                               asio::bind_executor(state->strand, [state](const asio::error_code& ec) {
                                   if (state->cancelled) return state->finish(std::nullopt, "cancelled");
                                   if (ec) {
                                       state->last_error = ec.message();
                                       ++state->next;
                                       return connect_next(state);
                                   }
                                   if (state->configure) state->configure(*state->pipe);
                                   std::optional<Pipe> connected = std::move(state->pipe);
                                   state->pipe.reset();
                                   state->finish(std::move(connected), {});
                               }));
}

void SocketDial::cancel() noexcept {
    if (!state_ || state_->cancelled) return;
    state_->cancelled = true;
    if (state_->on_cancel) state_->on_cancel();
    if (state_->pipe) {
        asio::error_code ignored;
        state_->pipe->close(ignored);
    }
}

}  // namespace mycelium::link::detail
