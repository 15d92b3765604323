#include "idle_watch.hpp"

#include <fmt/format.h>

#include "server_state.hpp"

namespace mycelium::link::detail {

IdleWatch::IdleWatch(Link& link, Counters& counters, asio::any_io_executor strand, std::chrono::milliseconds timeout)
    : link_(link), counters_(counters), timeout_(timeout), timer_(std::move(strand)) {}

void IdleWatch::start() {
    if (timeout_.count() > 0) arm();
}

void IdleWatch::arm() {
    timer_.expires_after(timeout_ / 2);
    timer_.async_wait([this, alive = link_.keep_alive()](const asio::error_code& ec) {
        if (ec == asio::error::operation_aborted || link_.closing()) return;
        try {
            look();
        } catch (const std::exception&) {
            link_.finish();
        }
    });
}

void IdleWatch::look() {
    if (heard_ || link_.input_held() || !link_.answers_ping()) {
        heard_ = false;
        pinged_ = false;
        return arm();
    }
    if (!pinged_) {
        pinged_ = true;
        link_.send_control(control::PING, encode_nonce(next_nonce_++));
        return arm();
    }
    Counters::add(counters_.idle_timeouts);
    link_.fail(ErrorCode::IdleTimeout,
               fmt::format("nothing received for {} ms, not even the answer to a PING", timeout_.count()));
}

}  // namespace mycelium::link::detail
