#pragma once
// Internal to host/src/transport: the accept loop of a socket transport (Unix, TCP), over
// an Asio acceptor. Each accepted socket gets its own strand and goes to
// ListenContext::accept. Out of descriptors (EMFILE, ENFILE), the pending connections are
// refused with the reserved descriptor (reserved_descriptor.hpp), each told why. Any
// other failing accept is retried after a pause instead of spinning. Both are logged
// once per listener and log interval with the number since the last line (at 10 retries
// a second, it would otherwise be 36,000 lines an hour).

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "mycelium/log_limiter.hpp"
#include "reserved_descriptor.hpp"
#include "transport.hpp"

namespace mycelium::link::detail {

/// What a transport adds to the common accept loop.
struct AcceptHooks {
    /// Sets options on an accepted pipe (TCP_NODELAY). May be empty.
    std::function<void(Pipe&)> configure;
    /// Who is on the other side of an accepted pipe (AcceptedPeer).
    std::function<AcceptedPeer(Pipe&)> identify;
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
          out_of_descriptors_reply_(context.out_of_descriptors_reply),
          refused_(context.refused),
          acceptor_(std::move(acceptor)),
          where_(std::move(where)),
          hooks_(std::move(hooks)),
          retry_(context.io),
          accept_failed_log_(context.log_interval),
          refused_log_(context.log_interval),
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
        if ((ec == asio::error::no_descriptors || ec.value() == ENFILE) &&
            reserve_.refuse_one(acceptor_.native_handle(), out_of_descriptors_reply_)) {
            if (refused_) refused_();
            if (const auto held_back = refused_log_.admit())
                log_.warn("{}: out of file descriptors: refused a connection ({}){}", where_, ec.message(),
                          log::held_back_note(*held_back));
            return accept_one();  // the next pending one, until the backlog is empty
        }
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
        AcceptedPeer peer = hooks_.identify ? hooks_.identify(pipe) : AcceptedPeer{where_, where_};
        accept_(std::move(pipe), std::move(peer));
        accept_one();
    }

    asio::io_context& io_;
    spdlog::logger& log_;
    std::function<void(Pipe, AcceptedPeer)> accept_;
    std::vector<std::byte> out_of_descriptors_reply_;
    std::function<void()> refused_;
    typename Protocol::acceptor acceptor_;
    std::string where_;
    AcceptHooks hooks_;
    asio::steady_timer retry_;
    ReservedDescriptor reserve_;
    // One accept is outstanding at a time (or the retry timer), so its handlers never run
    // concurrently: unsynchronised limiters are enough.
    log::LogLimiter accept_failed_log_;
    log::LogLimiter refused_log_;
    log::LogLimiter handler_failed_log_;
};

}  // namespace mycelium::link::detail
