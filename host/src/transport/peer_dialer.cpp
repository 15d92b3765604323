// The outbound side of a peer link. Rules that govern this file:
// - Every handler runs on the dialer's strand and has its own try/catch: a failure ends
//   the current dial and schedules the next one, never the io thread.
// - operation_aborted with stopped_ set is shutdown; with timed_out_ set it is our own
//   connect timeout.
// - Redials back off exponentially with jitter, so that a restarted node is not hit by
//   every peer in the same millisecond, and a dead one costs one attempt per backoff_max.

#include "peer_dialer.hpp"

#include <asio/bind_executor.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "mycelium/codec.hpp"
#include "mycelium/link_protocol.hpp"

namespace mycelium::link::detail {

namespace {

std::vector<std::byte> handshake_and_hello(const schema::Registry& registry, const std::string& self_name) {
    std::vector<std::byte> out = encode_handshake(registry.digest());
    const auto hello = encode_hello(Hello{control::PROTOCOL_VERSION, Role::Peer, self_name});
    if (!codec::append_frame(out, control::HELLO, hello)) throw std::invalid_argument("cannot encode HELLO");
    return out;
}

}  // namespace

PeerDialer::PeerDialer(ServerState& state, std::shared_ptr<PeerRecord> record, Endpoint endpoint,
                       PeerOptions options)
    : state_(state),
      record_(std::move(record)),
      endpoint_(std::move(endpoint)),
      options_(std::move(options)),
      where_(to_string(endpoint_)),
      hello_(handshake_and_hello(state.registry, options_.self_name)),
      strand_(asio::make_strand(state.io)),
      backoff_timer_(strand_),
      connect_timer_(strand_),
      transport_(transport_of(endpoint_)),
      backoff_(std::max(options_.backoff_initial, std::chrono::milliseconds(1))),
      rng_(static_cast<std::minstd_rand::result_type>(
          std::hash<std::string>{}(options_.self_name + "/" + record_->name) ^
          static_cast<std::size_t>(std::chrono::steady_clock::now().time_since_epoch().count()))) {}

void PeerDialer::start() {
    asio::post(strand_, [this] {
        try {
            dial();
        } catch (const std::exception& e) {
            fail(e.what());
        }
    });
}

void PeerDialer::close() {
    stopped_.store(true, std::memory_order_relaxed);
    asio::post(strand_, [this] { cancel_all(); });
}

void PeerDialer::close_now() noexcept {
    stopped_.store(true, std::memory_order_relaxed);
    cancel_all();
}

void PeerDialer::cancel_all() noexcept {
    backoff_timer_.cancel();
    connect_timer_.cancel();
    if (dial_) dial_->cancel();
    if (pipe_) {
        asio::error_code ignored;
        pipe_->close(ignored);
    }
}

void PeerDialer::on_session_closed() {
    if (stopped_.load(std::memory_order_relaxed)) return;
    asio::post(strand_, [this] {
        try {
            if (stopped_.load(std::memory_order_relaxed)) return;
            const auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - up_since_);
            // A link that held for a while was healthy: start over from the first delay.
            if (lasted >= options_.stable_after) backoff_ = std::max(options_.backoff_initial, std::chrono::milliseconds(1));
            state_.mesh_log->info("peer '{}': link to {} lost after {} ms; redialing", record_->name, where_,
                                  lasted.count());
            failures_in_a_row_ = 0;
            schedule();
        } catch (const std::exception& e) {
            state_.mesh_log->error("peer '{}': cannot schedule a redial: {}", record_->name, e.what());
        }
    });
}

void PeerDialer::dial() {
    if (stopped_.load(std::memory_order_relaxed)) return;
    const std::uint64_t attempt = ++attempt_;
    timed_out_ = false;
    connect_timer_.expires_after(options_.connect_timeout);
    connect_timer_.async_wait(asio::bind_executor(strand_, [this, attempt](const asio::error_code& ec) {
        if (ec || stopped_.load(std::memory_order_relaxed) || attempt != attempt_) return;
        timed_out_ = true;
        if (dial_) dial_->cancel();
        if (pipe_) {
            asio::error_code ignored;
            pipe_->close(ignored);
        }
    }));
    dial_ = transport_.dial(strand_, endpoint_, [this, attempt](std::optional<Pipe> pipe, std::string error) {
        on_connect(attempt, std::move(pipe), error);
    });
}

void PeerDialer::on_connect(std::uint64_t attempt, std::optional<Pipe> pipe, const std::string& error) {
    try {
        if (stopped_.load(std::memory_order_relaxed) || attempt != attempt_) return;
        dial_.reset();
        if (!pipe) {
            if (timed_out_) return fail(fmt::format("no connection within {} ms", options_.connect_timeout.count()));
            return fail(error);
        }
        pipe_ = std::move(pipe);
        // The handshake and HELLO go out before the Session exists, so its send queue only
        // ever holds whole frames. The connect timeout still runs: a peer that accepts but
        // never reads is given up on.
        asio::async_write(*pipe_, asio::buffer(hello_),
                          asio::bind_executor(strand_, [this, attempt](const asio::error_code& wec, std::size_t n) {
                              on_hello_written(attempt, wec, n);
                          }));
    } catch (const std::exception& e) {
        fail(e.what());
    }
}

void PeerDialer::on_hello_written(std::uint64_t attempt, const asio::error_code& ec, std::size_t n) {
    try {
        if (stopped_.load(std::memory_order_relaxed) || attempt != attempt_) return;
        if (ec) {
            if (timed_out_) return fail(fmt::format("the handshake was not taken within {} ms", options_.connect_timeout.count()));
            return fail("cannot send the handshake: " + ec.message());
        }
        connect_timer_.cancel();
        Counters::add(state_.counters.bytes_sent, n);
        Counters::add(record_->bytes_out, n);
        const std::uint64_t id = state_.next_id.fetch_add(1, std::memory_order_relaxed);
        Outbound outbound;
        outbound.self_name = options_.self_name;
        outbound.record = record_;
        outbound.request_shm = options_.shm && transport_.passes_descriptors;
        outbound.shm_capacity = options_.shm_ring_bytes;
        outbound.on_closed = [weak = weak_from_this()] {
            if (auto self = weak.lock()) self->on_session_closed();
        };
        auto session = std::make_shared<Session>(state_, std::move(*pipe_),
                                                 fmt::format("peer '{}' at {}", record_->name, where_), id,
                                                 transport_.passes_descriptors, std::move(outbound));
        pipe_.reset();
        up_since_ = std::chrono::steady_clock::now();
        const std::uint64_t before = record_->connects.load(std::memory_order_relaxed);
        if (failures_in_a_row_ > 0 || before > 0) {
            state_.mesh_log->info("peer '{}': connected to {} (link {}, reconnect {}, after {} failed attempts)",
                                  record_->name, where_, id, before, failures_in_a_row_);
        } else {
            state_.mesh_log->info("peer '{}': connected to {} (link {})", record_->name, where_, id);
        }
        failures_in_a_row_ = 0;
        asio::post(session->socket_executor(), [session] { session->start(); });
    } catch (const std::exception& e) {
        fail(e.what());
    }
}

void PeerDialer::fail(const std::string& why) {
    if (stopped_.load(std::memory_order_relaxed)) return;
    connect_timer_.cancel();
    dial_.reset();
    if (pipe_) {
        asio::error_code ignored;
        pipe_->close(ignored);
        pipe_.reset();
    }
    Counters::add(record_->connect_failures);
    ++failures_in_a_row_;
    // The first failure in a row is news; the following ones (a node that is down) are not.
    const auto level = failures_in_a_row_ == 1 ? spdlog::level::warn : spdlog::level::debug;
    state_.mesh_log->log(level, "peer '{}': cannot connect to {}: {}; retrying with backoff (now {} ms)",
                         record_->name, where_, why, backoff_.count());
    try {
        schedule();
    } catch (const std::exception& e) {
        state_.mesh_log->error("peer '{}': cannot schedule a redial: {}", record_->name, e.what());
    }
}

void PeerDialer::schedule() {
    if (stopped_.load(std::memory_order_relaxed)) return;
    // Jitter: a delay drawn from [backoff/2, backoff].
    const auto half = backoff_.count() / 2;
    std::uniform_int_distribution<long long> pick(half, std::max<long long>(backoff_.count(), half));
    const std::chrono::milliseconds delay(pick(rng_));
    backoff_ = std::min(backoff_ * 2, std::max(options_.backoff_max, options_.backoff_initial));
    const std::uint64_t attempt = ++attempt_;
    backoff_timer_.expires_after(delay);
    backoff_timer_.async_wait(asio::bind_executor(strand_, [this, attempt](const asio::error_code& ec) {
        try {
            if (ec == asio::error::operation_aborted || stopped_.load(std::memory_order_relaxed) ||
                attempt != attempt_)
                return;
            dial();
        } catch (const std::exception& e) {
            fail(e.what());
        }
    }));
}

}  // namespace mycelium::link::detail
