#pragma once
// Internal to host/src/transport: the accept loop of a socket transport (Unix, TCP), over
// an Asio acceptor. Each accepted socket gets its own strand and goes to
// ListenContext::accept; a failing accept (EMFILE and friends) is retried after a pause
// instead of spinning, and logged once per listener and log interval with the number of
// failures since the last line (at 10 retries a second, it would otherwise be 36,000
// lines an hour).

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "mycelium/log_limiter.hpp"
#include "transport.hpp"

namespace mycelium::link::detail {

/// What a transport adds to the common accept loop.
struct AcceptHooks {
    /// Sets options on an accepted pipe (TCP_NODELAY). May be empty.
    std::function<void(Pipe&)> configure;
    /// What log lines call the other side of an accepted pipe.
    std::function<std::string(Pipe&)> describe;
    /// Runs once when the listener closes (removes a Unix socket file). May be empty.
    std::function<void()> on_close;
};

template <class Protocol>
class AcceptorListener final : public Listener {
public:
    AcceptorListener(const ListenContext& context, typename Protocol::acceptor acceptor, std::string where,
                     AcceptHooks hooks)
        : io_(context.io),
          log_(context.log),
          accept_(context.accept),
          acceptor_(std::move(acceptor)),
          where_(std::move(where)),
          hooks_(std::move(hooks)),
          retry_(context.io),
          accept_failed_log_(context.log_interval),
          handler_failed_log_(context.log_interval) {}

    ~AcceptorListener() override { close(); }

    void start() override {
        asio::post(acceptor_.get_executor(), [this] { accept_one(); });
    }

    void close() noexcept override {
        asio::error_code ignored;
        acceptor_.close(ignored);
        retry_.cancel();
        if (hooks_.on_close) std::exchange(hooks_.on_close, nullptr)();
    }

private:
    void accept_one() {
        // Each connection gets its own strand, so any number of io threads serve it safely.
        auto pipe = std::make_shared<Pipe>(asio::make_strand(io_));
        acceptor_.async_accept(*pipe, [this, pipe](const asio::error_code& ec) {
            try {
                on_accept(ec, std::move(*pipe));
            } catch (const std::exception& e) {
                if (const auto held_back = handler_failed_log_.admit())
                    log_.error("{}: accept handler failed: {}{}", where_, e.what(), log::held_back_note(*held_back));
                if (acceptor_.is_open()) accept_one();
            }
        });
    }

    void on_accept(const asio::error_code& ec, Pipe pipe) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
        if (ec) {
            if (const auto held_back = accept_failed_log_.admit())
                log_.warn("{}: accept failed: {}{}", where_, ec.message(), log::held_back_note(*held_back));
            retry_.expires_after(std::chrono::milliseconds(100));
            retry_.async_wait([this](const asio::error_code& wait_ec) {
                if (!wait_ec && acceptor_.is_open()) accept_one();
            });
            return;
        }
        if (hooks_.configure) hooks_.configure(pipe);
        std::string peer = hooks_.describe ? hooks_.describe(pipe) : where_;
        accept_(std::move(pipe), std::move(peer));
        accept_one();
    }

    asio::io_context& io_;
    spdlog::logger& log_;
    std::function<void(Pipe, std::string)> accept_;
    typename Protocol::acceptor acceptor_;
    std::string where_;
    AcceptHooks hooks_;
    asio::steady_timer retry_;
    // One accept is outstanding at a time (or the retry timer), so its handlers never run
    // concurrently: unsynchronised limiters are enough.
    log::LogLimiter accept_failed_log_;
    log::LogLimiter handler_failed_log_;
};

}  // namespace mycelium::link::detail
