// A connection's control frames. Rules that govern this file:
// - A control frame the protocol forbids here (a second HELLO, SUBSCRIBE before HELLO,
//   a payload of the wrong size) closes the connection with ERROR; one it does not know
//   is dropped as a bad frame and the connection goes on.

#include "control_frames.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "mycelium/link_protocol.hpp"

namespace mycelium::link::detail {

ControlFrames::ControlFrames(Link& link, ServerState& state, Outbox& outbox, ShmSetup& shm, FrameFilter& filter,
                             Subscriptions::Sink& sink, const std::string& peer, std::uint64_t id)
    : link_(link),
      state_(state),
      outbox_(outbox),
      shm_(shm),
      filter_(filter),
      peer_(peer),
      id_(id),
      subscriptions_(state.bus, state.registry, outbox, sink),
      legacy_(state, state.counters, peer),
      report_(peer) {}

void ControlFrames::on_control(std::uint16_t type_id, std::span<const std::byte> payload) {
    dispatch(type_id, payload);
    frames_seen_ = true;
}

void ControlFrames::dispatch(std::uint16_t type_id, std::span<const std::byte> payload) {
    switch (type_id) {
        case control::HELLO:
            return on_hello(payload);
        case control::SUBSCRIBE:
            return on_type_list(true, payload);
        case control::UNSUBSCRIBE:
            return on_type_list(false, payload);
        case control::METRICS:
            return on_metrics(payload);
        case control::PING:
            return on_ping(payload);
        case control::PONG:
            if (!decode_nonce(payload))
                return link_.protocol_violation(fmt::format("PONG payload of {} bytes, expected 8", payload.size()));
            return;  // the idle watch's PINGs: what matters is that something came in
        case control::ERROR:
            return on_error(payload);
        case control::SHM_REQUEST:
            if (phase_ != Phase::Hello) return link_.protocol_violation("SHM_REQUEST before HELLO");
            return shm_.on_request(payload);
        case control::SHM_READY:
            return shm_.on_ready(payload);
        case control::SHM_REFUSE:
            return shm_.on_refuse(payload, name_);
        case control::SHM_OFFER:
            return shm_.on_offer(payload, name_);
        case control::SHM_SWITCH:
            return shm_.on_switch(payload, name_);
        default:
            return on_unknown(type_id);
    }
}

void ControlFrames::on_hello(std::span<const std::byte> payload) {
    if (frames_seen_ || phase_ == Phase::Hello)
        return link_.protocol_violation("HELLO must be the first frame after the handshake");
    const auto hello = decode_hello(payload);
    if (!hello)
        return link_.protocol_violation(
            fmt::format("malformed HELLO ({} bytes): {}", payload.size(), to_string(hello.error())));
    if (hello->version != control::PROTOCOL_VERSION) {
        Counters::add(state_.counters.protocol_errors);
        return link_.fail(ErrorCode::UnsupportedVersion, fmt::format("protocol version {} in HELLO, this host speaks {}",
                                                                     hello->version, control::PROTOCOL_VERSION));
    }
    const auto& accepted = state_.options.accepted_peers;
    if (hello->role == Role::Peer && std::find(accepted.begin(), accepted.end(), hello->name) == accepted.end())
        return link_.protocol_violation(fmt::format("'{}' is not a peer node of this host{}", hello->name,
                                                    accepted.empty() ? " (it accepts no peers)" : ""));
    // A client whose HELLO came in a later read than its handshake was taken for a
    // legacy client: undo what that set up (its subscriptions, the packed layout).
    subscriptions_.clear();
    legacy_.stop();
    take_identity(hello->name, hello->role);
    outbox_.set_policy(hello->role == Role::Peer ? state_.options.slow_consumer.peer
                                                 : state_.options.slow_consumer.client);
    state_.log->info("{}: {} '{}' connected (link {})", peer_, to_string(hello->role), name_, id_);
    if (hello->role == Role::Peer) {
        join_as_peer();
    } else {
        client_announced_ = true;
        state_.notify_client(name_, true);
    }
}

void ControlFrames::start_as_peer(const std::string& name) {
    take_identity(name, Role::Peer);
    join_as_peer();
}

void ControlFrames::take_identity(const std::string& name, Role role) {
    phase_ = Phase::Hello;
    name_ = name;
    report_.set_label(name_);
    role_.store(role, std::memory_order_relaxed);
}

void ControlFrames::join_as_peer() {
    link_.become_peer();
    declare_interest();
}

void ControlFrames::become_legacy() {
    phase_ = Phase::Legacy;
    outbox_.set_policy(state_.options.slow_consumer.legacy);
    legacy_.start(state_.options.legacy_layout);
    subscriptions_.subscribe_all(role());
    state_.log->info("{}: legacy client connected (link {})", peer_, id_);
}

void ControlFrames::declare_interest() {
    // The first calls report the current set.
    subscriptions_.declare_interest([this](std::uint16_t type_id, bool interested) {
        const std::uint16_t ids[] = {type_id};
        const auto payload = encode_type_list(ids);
        link_.send_control(interested ? control::SUBSCRIBE : control::UNSUBSCRIBE, payload);
    });
}

void ControlFrames::on_type_list(bool subscribe, std::span<const std::byte> payload) {
    const char* what = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
    if (phase_ != Phase::Hello) return link_.protocol_violation(fmt::format("{} before HELLO", what));
    const auto ids = decode_type_list(payload);
    if (!ids) return link_.protocol_violation(fmt::format("{} payload of odd length {}", what, payload.size()));
    for (const std::uint16_t id : *ids) {
        if (state_.registry.find(id) == nullptr)
            return link_.protocol_violation(
                fmt::format("{} of type {}, which the contracts do not define", what, id));
    }
    for (const std::uint16_t id : *ids) {
        if (subscribe) {
            subscriptions_.subscribe(id, role());
        } else {
            subscriptions_.unsubscribe(id);
        }
    }
}

void ControlFrames::on_metrics(std::span<const std::byte> payload) {
    if (phase_ != Phase::Hello || role() != Role::Client)
        return link_.protocol_violation("METRICS is for a client that said HELLO role=client");
    const ServerOptions& limits = state_.options;
    if (payload.size() > limits.max_metrics_bytes) {
        return refuse_metrics(fmt::format("METRICS frame of {} bytes is above this host's limit of {} per client",
                                          payload.size(), limits.max_metrics_bytes));
    }
    auto report = decode_metrics_report(payload);
    if (!report) return link_.protocol_violation("bad METRICS frame: " + report.error());
    std::size_t series = 0;
    for (const ReportedFamily& family : *report) series += family.series.size();
    if (series > limits.max_metrics_series) {
        return refuse_metrics(fmt::format("METRICS frame with {} series is above this host's limit of {} per client",
                                          series, limits.max_metrics_series));
    }
    report_.set_metrics(std::move(*report), payload.size());
}

void ControlFrames::refuse_metrics(const std::string& reason) {
    Counters::add(state_.counters.metrics_over_limit);
    if (const auto held_back = metrics_log_.admit()) {
        state_.log->warn("{}: dropped a METRICS frame: {}{}", peer_, reason,
                         *held_back == 0 ? std::string()
                                         : fmt::format(" (and {} more like it since the last line)", *held_back));
    }
    link_.send_control(control::ERROR, encode_error(ErrorCode::LimitExceeded, reason));
}

void ControlFrames::on_ping(std::span<const std::byte> payload) {
    const auto nonce = decode_nonce(payload);
    if (!nonce) return link_.protocol_violation(fmt::format("PING payload of {} bytes, expected 8", payload.size()));
    const auto pong = encode_nonce(*nonce);
    link_.send_control(control::PONG, pong);
}

void ControlFrames::on_error(std::span<const std::byte> payload) {
    const auto error = decode_error(payload);
    if (error && (error->code == ErrorCode::UnknownType || error->code == ErrorCode::SizeMismatch ||
                  error->code == ErrorCode::InvalidPayload)) {
        // The far side dropped one of our frames and goes on (a peer of another contracts
        // version, or one a trusted client of ours sent invalid): worth a line, not the link.
        if (const auto held_back = filter_.admit_far_side_drop()) {
            log_limited(*state_.log, state_.log_limits, spdlog::level::warn, "the far side dropped a frame", *held_back,
                        "{}: the far side dropped a frame: {} {}", peer_, to_string(error->code), error->reason);
        }
        return;
    }
    if (role() == Role::Peer && error) {
        // A peer node that stops (or replaces this link) says so; one that refuses this
        // node (another digest, too many connections) is worth a warning. Neither is bad
        // input from the peer.
        if (error->code == ErrorCode::ShuttingDown) {
            state_.mesh_log->info("peer '{}' ({}) closed the link: {}", name_, peer_, error->reason);
        } else {
            state_.mesh_log->warn("peer '{}' ({}) refused the link: {} {}", name_, peer_, to_string(error->code),
                                  error->reason);
        }
        return link_.finish();
    }
    Counters::add(state_.counters.protocol_errors);
    state_.warn_limited("the client reported an error",
                        "{}: the client reported an error and is disconnected: {} {}", peer_,
                        error ? to_string(error->code) : std::string_view("(malformed ERROR frame)"),
                        error ? error->reason : std::string());
    link_.finish();
}

void ControlFrames::on_unknown(std::uint16_t type_id) {
    link_.bad_frame(ErrorCode::UnknownType,
                    type_id >= control::SHM_FIRST && type_id <= control::SHM_LAST
                        ? fmt::format("control type {} (shared-memory setup) is not served by this host; dropped",
                                      type_id)
                        : fmt::format("unknown control type {}; dropped", type_id));
}

void ControlFrames::announce_closed() noexcept {
    if (client_announced_) state_.notify_client(name_, false);
}

}  // namespace mycelium::link::detail
