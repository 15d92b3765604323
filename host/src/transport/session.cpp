// One link connection. Rules that govern this file:
// - Every Asio handler runs on the session's strand and has its own try/catch: a failure
//   ends this session only. operation_aborted means shutdown.
// - Bytes from the socket are untrusted: the handshake and every frame header are
//   checked before anything is allocated or published (codec::FrameDecoder does frames).
// - Bus callbacks run on publishing threads and must stay short: they hand the frame to
//   the Outbox (outbox.hpp) and, for the first frame of a burst, post one write to the
//   strand.

#include "session.hpp"

#include <asio/post.hpp>
#include <asio/write.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>
#include <thread>

#include <fmt/format.h>

#include "forwarding.hpp"
#include "mycelium/log.hpp"
#include "mycelium/shm_os.hpp"

namespace mycelium::link::detail {

namespace {

constexpr std::size_t READ_BUFFER_SIZE = 64u * 1024u;
// A write buffer above this is released after the write instead of kept for reuse, so
// one burst does not pin megabytes for the connection's lifetime.
constexpr std::size_t RETAINED_WRITE_CAPACITY = 1u << 20;
// Ring frames handled per strand turn before the reader yields to other handlers.
constexpr std::size_t SHM_BATCH = 256;
// Application frames read from a ring are published on the bus in runs of up to this many.
constexpr std::size_t SHM_RUN = 64;

bool is_disconnect(const asio::error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::connection_aborted;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Session: lifetime
// ---------------------------------------------------------------------------------------

Session::Session(ServerState& state, Socket socket, std::string peer, std::uint64_t id, bool passes_descriptors,
                 std::optional<Outbound> outbound)
    : state_(state),
      socket_(std::move(socket)),
      peer_(std::move(peer)),
      id_(id),
      handshake_timer_(socket_.get_executor()),
      linger_timer_(socket_.get_executor()),
      handshake_(state.registry.digest()),
      // Only the payload limit breaks the stream; types and sizes are checked per frame
      // (acceptable()), so that one bad frame costs that frame, not the connection.
      decoder_(codec::DecoderOptions{state.options.max_payload, std::nullopt}),
      read_buf_(READ_BUFFER_SIZE),
      client_label_(peer_),
      outbound_(std::move(outbound)),
      shm_(state, *this, socket_.get_executor(), peer_, id, outbound_.has_value(), passes_descriptors),
      filter_(state.registry, state.counters, state.options.log_interval),
      pause_(socket_.get_executor()),
      // A dialed link is a peer's; an accepted connection is a client until it says otherwise.
      outbox_(state.bus, state.options, state.counters,
              outbound_ ? state.options.slow_consumer.peer : state.options.slow_consumer.client) {}

Session::~Session() {
    // Normally finish() did this already; a session destroyed with the io_context (stop()
    // timed out) must still stop its callbacks before its members go.
    interest_.close();
    subs_.clear();
}

void Session::start() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    if (outbound_) return start_outbound();
    try {
        bool counted = false;
        if (!state_.admit(shared_from_this(), id_, counted)) {
            asio::error_code ignored;
            socket_.close(ignored);
            return;
        }
        counted_ = counted;
        if (!counted_) {
            reject_max_connections();
            do_read();  // drains until the client closes or the linger ends
            return;
        }
        state_.log->debug("{}: connected (link {})", peer_, id_);
        handshake_timer_.expires_after(state_.options.handshake_timeout);
        handshake_timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
            try {
                if (ec == asio::error::operation_aborted || self->finished_ || self->closing_) return;
                if (self->phase_ != Phase::Handshake) return;
                Counters::add(self->state_.counters.handshake_timeout);
                self->fail(ErrorCode::HandshakeTimeout,
                           fmt::format("no handshake within {} ms ({} of {} bytes received)",
                                       self->state_.options.handshake_timeout.count(),
                                       self->handshake_.received(), control::HANDSHAKE_SIZE));
            } catch (const std::exception& e) {
                self->state_.log->error("{}: handshake timer: {}", self->peer_, e.what());
                self->finish();
            }
        });
        do_read();
    } catch (const std::exception& e) {
        state_.log->error("{}: cannot start the session: {}", peer_, e.what());
        finish();
    }
}

void Session::reject_max_connections() {
    Counters::add(state_.counters.rejected_max_connections);
    fail(ErrorCode::TooManyConnections,
         fmt::format("the host already serves {} connections", state_.options.max_connections));
}

void Session::start_outbound() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (!state_.admit_outbound(shared_from_this(), id_)) {
            asio::error_code ignored;
            socket_.close(ignored);
            if (outbound_->on_closed) std::exchange(outbound_->on_closed, nullptr)();
            return;
        }
        // The dialer has already written the digest handshake and HELLO role=peer.
        phase_ = Phase::Hello;
        name_ = outbound_->record->name;
        {
            std::lock_guard lock(metrics_mutex_);
            client_label_ = name_;
        }
        role_.store(Role::Peer, std::memory_order_relaxed);
        become_peer();
        if (outbound_->request_shm) shm_.request(outbound_->shm_capacity);
        do_read();
    } catch (const std::exception& e) {
        state_.mesh_log->error("{}: cannot start the link: {}", peer_, e.what());
        finish();
    }
}

void Session::shut_down(std::string reason) {
    asio::post(socket_.get_executor(), [self = shared_from_this(), reason = std::move(reason)] {
        try {
            if (self->closing_ || self->finished_) return;
            self->close_with_error(ErrorCode::ShuttingDown, reason);
        } catch (const std::exception&) {
            self->finish();
        }
    });
}

void Session::finish() noexcept {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    // Before waiting for callbacks in flight: one of them may be waiting for room (Block);
    // it gives up within a wait slice.
    outbox_.abort_waits();
    interest_.close();  // waits for a listener call in progress on another thread
    try {
        subs_.clear();  // waits for callbacks running on other threads
    } catch (...) {     // Subscription::close is noexcept; map clear cannot throw
    }
    close_shm();
    outbox_.close();
    asio::error_code ignored;
    handshake_timer_.cancel();
    linger_timer_.cancel();
    pause_.cancel();
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    state_.log->debug("{}: closed (link {})", peer_, id_);
    if (peer_record_) {
        bool current = false;
        {
            std::lock_guard lock(peer_record_->mutex);
            const auto now = peer_record_->current.lock();
            current = !now || now.get() == this;
            if (current) {
                peer_record_->current.reset();
                // Under the mutex: a newer link registering meanwhile must not be undone.
                peer_record_->connected.store(false, std::memory_order_relaxed);
            }
        }
        if (!outbound_) state_.mesh_log->info("peer '{}' ({}) disconnected", name_, peer_);
    }
    if (client_announced_) state_.notify_client(name_, false);
    state_.release(id_, counted_);
    // Last: the dialer may schedule a redial, which must not find this session registered.
    if (outbound_ && outbound_->on_closed) std::exchange(outbound_->on_closed, nullptr)();
}

// ---------------------------------------------------------------------------------------
// Session: reading
// ---------------------------------------------------------------------------------------

void Session::do_read() {
    if (shm_.expects_descriptors()) return read_with_fds();
    socket_.async_read_some(asio::buffer(read_buf_),
                            [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                                self->on_read(ec, n);
                            });
}

void Session::read_with_fds() {
    // While a SHM_OFFER may come, read with recvmsg: its descriptors ride on its first
    // byte, and a plain read would make the kernel drop (close) them.
    socket_.async_wait(Socket::wait_read, [self = shared_from_this()](const asio::error_code& ec) {
        if (ec) return self->on_read(ec, 0);
        shm::ReadWithFds read = shm::read_with_fds(self->socket_.native_handle(), self->read_buf_, shm::MAX_PASSED_FDS);
        const long n = read.result;
        self->shm_.keep_descriptors(std::move(read.fds));
        if (n > 0 && read.truncated) self->shm_.drop_descriptors();  // the offer is declined
        if (n < 0 && (read.error == EAGAIN || read.error == EWOULDBLOCK || read.error == EINTR)) return self->do_read();
        if (n < 0) return self->on_read(asio::error_code(read.error, asio::system_category()), 0);
        if (n == 0) return self->on_read(asio::error::eof, 0);
        self->on_read({}, static_cast<std::size_t>(n));
    });
}

void Session::on_read(const asio::error_code& ec, std::size_t n) {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (finished_ || ec == asio::error::operation_aborted) return;
        if (ec) {
            if (closing_) return finish();
            if (is_disconnect(ec)) return on_end_of_stream();
            state_.log->warn("{}: read failed: {}", peer_, ec.message());
            return finish();
        }
        Counters::add(state_.counters.bytes_received, n);
        if (peer_record_) Counters::add(peer_record_->bytes_in, n);
        if (!closing_) {
            std::span<const std::byte> bytes(read_buf_.data(), n);
            if (phase_ == Phase::Handshake) {
                bytes = consume_handshake(bytes);
                // Decide legacy before publishing the frames that came with the handshake:
                // the replies they cause must find this client already subscribed.
                if (!closing_ && phase_ == Phase::Undecided && !starts_with_hello(bytes)) become_legacy();
            }
            if (!closing_ && phase_ != Phase::Handshake && !bytes.empty()) feed(bytes);
            // A client that did not say HELLO in the bytes that completed its handshake
            // is a legacy client: from now on it receives every application type.
            if (!closing_ && phase_ == Phase::Undecided) become_legacy();
        }
        if (finished_ || !keep_reading(false)) return;
        do_read();  // while closing, this discards input until the client closes
    } catch (const std::exception& e) {
        state_.log->error("{}: closing after an internal error: {}", peer_, e.what());
        finish();
    }
}

void Session::on_end_of_stream() {
    // Frames the client put into its ring before it closed the socket still count, as
    // bytes written before a FIN do.
    if (shm_.active() && !closing_) drain_shm_now();
    if (finished_) return;
    if (pause_.paused()) return pause_.hold_end_of_stream();  // ends once the held frames are published
    if (phase_ == Phase::Handshake) {
        Counters::add(state_.counters.truncated);
        state_.log->warn("{}: connection closed inside the handshake ({} of {} bytes received)", peer_,
                         handshake_.received(), control::HANDSHAKE_SIZE);
    } else if (auto done = decoder_.finish(); !done) {
        Counters::add(state_.counters.truncated);
        state_.log->warn("{}: connection closed inside a frame: {}", peer_, codec::to_string(*decoder_.failure()));
    } else {
        state_.log->debug("{}: client closed the connection", peer_);
    }
    finish();
}

bool Session::starts_with_hello(std::span<const std::byte> bytes) {
    // Fewer than two bytes cannot tell; the old rule (decide after this read) applies.
    return bytes.size() < 2 || codec::detail::load_le16(bytes.data()) == control::HELLO;
}

std::span<const std::byte> Session::consume_handshake(std::span<const std::byte> bytes) {
    bytes = handshake_.feed(bytes);
    switch (handshake_.state()) {
        case HandshakeReader::State::Reading:
            break;
        case HandshakeReader::State::BadLength:
            Counters::add(state_.counters.bad_digest_length);
            fail(ErrorCode::BadDigestLength,
                 fmt::format("digest length {}, expected {}", handshake_.length(), control::DIGEST_SIZE));
            break;
        case HandshakeReader::State::Mismatch:
            Counters::add(state_.counters.digest_mismatch);
            fail(ErrorCode::DigestMismatch, fmt::format("schema digest {} does not match the host's {}",
                                                        schema::to_hex(handshake_.digest()), state_.registry.digest_hex()));
            break;
        case HandshakeReader::State::Done:
            if (phase_ == Phase::Handshake) {
                handshake_timer_.cancel();
                phase_ = Phase::Undecided;
                Counters::add(state_.counters.handshakes_ok);
            }
            break;
    }
    return bytes;
}

void Session::feed(std::span<const std::byte> bytes) {
    const CorkScope cork(*this, state_);
    const auto fed = decoder_.feed(bytes, [this](std::uint16_t type_id, std::span<const std::byte> payload) {
        on_frame(type_id, payload);
    });
    if (fed) {
        Counters::add(state_.counters.frames_received, *fed);
        if (peer_record_) Counters::add(peer_record_->frames_in, *fed);
        return;
    }
    if (closing_) return;  // a control frame already closed the session
    const codec::DecodeFailure& f = *decoder_.failure();
    ErrorCode code = ErrorCode::ProtocolViolation;
    switch (f.error) {
        case codec::DecodeError::Oversize:
            Counters::add(state_.counters.oversize);
            code = ErrorCode::Oversize;
            break;
        case codec::DecodeError::UnknownType:
            Counters::add(state_.counters.unknown_type);
            code = ErrorCode::UnknownType;
            break;
        case codec::DecodeError::SizeMismatch:
            Counters::add(state_.counters.size_mismatch);
            code = ErrorCode::SizeMismatch;
            break;
        case codec::DecodeError::Truncated:  // only from finish()
            Counters::add(state_.counters.truncated);
            break;
    }
    // to_string(f) reads "oversize: type ..."; the code already names the kind.
    std::string reason = codec::to_string(f);
    if (const auto colon = reason.find(": "); colon != std::string::npos) reason.erase(0, colon + 2);
    fail(code, reason);
}

void Session::on_frame(std::uint16_t type_id, std::span<const std::byte> payload) {
    if (closing_) return;  // the rest of a chunk after a fatal control frame
    // After the switch only a final ERROR may still come on the socket.
    if (shm_.active() && !reading_ring_ && type_id != control::ERROR) [[unlikely]] {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::ProtocolViolation,
                    fmt::format("frame of type {} on the socket after SHM_READY: it must go through the ring", type_id));
    }
    if (type_id < schema::MIN_APP_TYPE_ID) {
        if (pause_.paused()) return pause_.hold(type_id, payload);  // in order with the held frames
        on_control(type_id, payload);
        frames_seen_ = true;
        return;
    }
    if (phase_ == Phase::Legacy && !state_.packed_layouts.empty()) [[unlikely]]
        return on_legacy_frame(type_id, payload);
    // Checked before it is held: held frames are published as they are.
    if (!acceptable(type_id, payload)) return;
    const MessageView message{type_id, payload};
    publish_from_link(std::span<const MessageView>(&message, 1));  // held while paused
}

bool Session::acceptable(std::uint16_t type_id, std::span<const std::byte> payload) {
    auto refusal = filter_.check(type_id, payload);
    if (!refusal) [[likely]] return true;
    bad_frame(refusal->code, refusal->reason);
    return false;
}

void Session::bad_frame(ErrorCode code, const std::string& reason) {
    if (const auto held_back = filter_.count(code)) {
        if (*held_back == 0) {
            state_.log->warn("{}: bad frame: {}", peer_, reason);
        } else {
            state_.log->warn("{}: bad frame: {} (and {} more like it since the last line)", peer_, reason, *held_back);
        }
    }
    // A legacy client does not know control frames; HELLO clients and peers are told.
    if (phase_ == Phase::Hello) enqueue(control::ERROR, encode_error(code, reason));
}

ClientDrops Session::drops() const {
    std::lock_guard lock(metrics_mutex_);
    return ClientDrops{client_label_, filter_.unknown_types(), filter_.size_mismatches(), outbox_.dropped()};
}

void Session::publish_from_link(std::span<const MessageView> run) {
    if (closing_ || run.empty()) return;
    frames_seen_ = true;
    if (pause_.paused()) return pause_.hold(run);  // after the frames held before them
    const OriginScope origin(
        Origin{id_, role_.load(std::memory_order_relaxed), run.front().payload.data(), run.back().payload.data()});
    // Never publish_batch(): its wait for a full Block queue would stop this io thread,
    // and with it every other connection it serves.
    const auto published = state_.bus.publish_batch_if_room(run);
    if (!published) {
        if (published.error() == PublishError::Closed) close_with_error(ErrorCode::ShuttingDown, "the bus is shut down");
        return;  // TooLarge: the limit was enforced when the frame was read
    }
    if (*published < run.size()) {
        Counters::add(state_.counters.flow_pauses);
        pause_.hold(run.subspan(*published));
    }
    // QueueFull (a Fail subscriber) is counted by the bus; the frames were accepted.
}

// Flow control (inbound_pause.hpp): an io thread never waits for a full queue.

bool Session::keep_reading(bool from_ring) {
    if (!pause_.paused() || closing_) return true;
    pause_.stop(from_ring, [self = shared_from_this()] { self->on_resume(); });
    return false;
}

void Session::on_resume() {
    const log::ScopedFields log_fields{{"peer", peer_}};
    try {
        if (finished_) return;
        if (!closing_ && !publish_held()) return pause_.arm([self = shared_from_this()] { self->on_resume(); });
        const InboundPause::Stopped stopped = pause_.resume();
        if (finished_) return;
        if (stopped.end_of_stream) return on_end_of_stream();
        if (stopped.ring) drain_shm();
        if (stopped.socket && !finished_) do_read();
    } catch (const std::exception& e) {
        state_.log->error("{}: closing after an internal error: {}", peer_, e.what());
        finish();
    }
}

bool Session::publish_held() {
    HeldFrames& held = pause_.held();
    while (!held.empty()) {
        const HeldFrames::Frame frame = held.front();
        if (frame.type_id < schema::MIN_APP_TYPE_ID) {
            on_control(frame.type_id, frame.payload);
            if (finished_) return true;
            held.pop_front();
            continue;
        }
        const MessageView message{frame.type_id, frame.payload};
        const OriginScope origin(Origin{id_, role_.load(std::memory_order_relaxed), frame.payload.data(),
                                        frame.payload.data()});
        const auto published = state_.bus.publish_batch_if_room(std::span<const MessageView>(&message, 1));
        if (!published) {
            if (published.error() == PublishError::Closed) {
                close_with_error(ErrorCode::ShuttingDown, "the bus is shut down");
                return true;
            }
        } else if (*published == 0) {
            return false;  // still no room
        }
        held.pop_front();
    }
    return true;
}

void Session::on_metrics(std::span<const std::byte> payload) {
    if (phase_ != Phase::Hello || role_.load(std::memory_order_relaxed) != Role::Client) {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::ProtocolViolation, "METRICS is for a client that said HELLO role=client");
    }
    auto report = decode_metrics_report(payload);
    if (!report) {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::ProtocolViolation, "bad METRICS frame: " + report.error());
    }
    auto snapshot = std::make_shared<const std::vector<ReportedFamily>>(std::move(*report));
    std::lock_guard lock(metrics_mutex_);
    metrics_client_ = name_;
    metrics_ = std::move(snapshot);
}

std::size_t Session::queued_frames() const { return outbox_.queued_frames(); }

std::pair<std::string, std::shared_ptr<const std::vector<ReportedFamily>>> Session::reported_metrics() const {
    std::lock_guard lock(metrics_mutex_);
    return {metrics_client_, metrics_};
}

void Session::on_control(std::uint16_t type_id, std::span<const std::byte> payload) {
    switch (type_id) {
        case control::HELLO:
            return on_hello(payload);
        case control::SUBSCRIBE:
            return on_type_list(true, payload);
        case control::UNSUBSCRIBE:
            return on_type_list(false, payload);
        case control::METRICS:
            return on_metrics(payload);
        case control::PING: {
            const auto nonce = decode_nonce(payload);
            if (!nonce) {
                Counters::add(state_.counters.protocol_errors);
                return fail(ErrorCode::ProtocolViolation,
                            fmt::format("PING payload of {} bytes, expected 8", payload.size()));
            }
            const auto pong = encode_nonce(*nonce);
            return enqueue(control::PONG, pong);
        }
        case control::PONG:
            if (!decode_nonce(payload)) {
                Counters::add(state_.counters.protocol_errors);
                return fail(ErrorCode::ProtocolViolation,
                            fmt::format("PONG payload of {} bytes, expected 8", payload.size()));
            }
            return;  // the host sends no PING yet; a stray PONG is harmless
        case control::ERROR: {
            const auto error = decode_error(payload);
            if (error && (error->code == ErrorCode::UnknownType || error->code == ErrorCode::SizeMismatch)) {
                // The far side dropped one of our frames and goes on (a peer of another
                // contracts version): worth a line, not the link.
                if (const auto held_back = filter_.admit_far_side_drop()) {
                    state_.log->warn("{}: the far side dropped a frame: {} {} ({} more since the last line)", peer_,
                                     to_string(error->code), error->reason, *held_back);
                }
                return;
            }
            if (role_.load(std::memory_order_relaxed) == Role::Peer && error) {
                // A peer node that stops (or replaces this link) says so; one that refuses
                // this node (another digest, too many connections) is worth a warning.
                // Neither is bad input from the peer.
                if (error->code == ErrorCode::ShuttingDown) {
                    state_.mesh_log->info("peer '{}' ({}) closed the link: {}", name_, peer_, error->reason);
                } else {
                    state_.mesh_log->warn("peer '{}' ({}) refused the link: {} {}", name_, peer_,
                                          to_string(error->code), error->reason);
                }
                return finish();
            }
            Counters::add(state_.counters.protocol_errors);
            state_.log->warn("{}: the client reported an error and is disconnected: {} {}", peer_,
                             error ? to_string(error->code) : std::string_view("(malformed ERROR frame)"),
                             error ? error->reason : std::string());
            return finish();
        }
        case control::SHM_REQUEST:
            if (phase_ != Phase::Hello) return protocol_violation("SHM_REQUEST before HELLO");
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
            return bad_frame(ErrorCode::UnknownType,
                             type_id >= control::SHM_FIRST && type_id <= control::SHM_LAST
                                 ? fmt::format("control type {} (shared-memory setup) is not served by this host; "
                                               "dropped", type_id)
                                 : fmt::format("unknown control type {}; dropped", type_id));
    }
}

void Session::on_hello(std::span<const std::byte> payload) {
    if (frames_seen_ || phase_ == Phase::Hello) {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::ProtocolViolation, "HELLO must be the first frame after the handshake");
    }
    const auto hello = decode_hello(payload);
    if (!hello) {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::ProtocolViolation,
                    fmt::format("malformed HELLO ({} bytes): {}", payload.size(), to_string(hello.error())));
    }
    if (hello->version != control::PROTOCOL_VERSION) {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::UnsupportedVersion, fmt::format("protocol version {} in HELLO, this host speaks {}",
                                                               hello->version, control::PROTOCOL_VERSION));
    }
    if (hello->role == Role::Peer &&
        std::find(state_.options.accepted_peers.begin(), state_.options.accepted_peers.end(), hello->name) ==
            state_.options.accepted_peers.end()) {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::ProtocolViolation,
                    fmt::format("'{}' is not a peer node of this host{}", hello->name,
                                state_.options.accepted_peers.empty() ? " (it accepts no peers)" : ""));
    }
    // A client whose HELLO came in a later read than its handshake was taken for a
    // legacy client: undo what that set up (its subscriptions, the packed layout).
    subs_.clear();
    send_packed_.store(false, std::memory_order_relaxed);
    name_ = hello->name;
    {
        std::lock_guard lock(metrics_mutex_);
        client_label_ = name_;
    }
    role_.store(hello->role, std::memory_order_relaxed);
    outbox_.set_policy(hello->role == Role::Peer ? state_.options.slow_consumer.peer
                                                 : state_.options.slow_consumer.client);
    phase_ = Phase::Hello;
    state_.log->info("{}: {} '{}' connected (link {})", peer_, to_string(hello->role), name_, id_);
    if (hello->role == Role::Peer) {
        become_peer();
    } else {
        client_announced_ = true;
        state_.notify_client(name_, true);
    }
}

void Session::become_peer() {
    peer_record_ = outbound_ ? outbound_->record : state_.peer_record(name_, false);
    outbox_.set_peer(peer_record_.get());
    std::shared_ptr<Session> replaced;
    {
        std::lock_guard lock(peer_record_->mutex);
        replaced = peer_record_->current.lock();
        peer_record_->current = shared_from_this();
        if (!outbound_) peer_record_->endpoint = peer_;
        peer_record_->connected.store(true, std::memory_order_relaxed);
    }
    Counters::add(peer_record_->connects);
    if (!outbound_) state_.mesh_log->info("peer '{}' connected from {} (link {})", name_, peer_, id_);
    if (replaced && replaced.get() != this) {
        // One link per pair: the newer link wins (the older one is most likely half-open
        // after the far node restarted), so no frame is delivered twice.
        state_.mesh_log->info("peer '{}': a newer link replaces link {}", name_, replaced->id_);
        replaced->shut_down("replaced by a newer link from the same peer");
    }
    // Tell the peer what this node wants; the first calls report the current set.
    interest_ = state_.bus.watch_interest([this](std::uint16_t type_id, bool interested) {
        declare_interest(type_id, interested);
    });
}

void Session::declare_interest(std::uint16_t type_id, bool interested) {
    // Types outside the contracts would be a protocol violation on the far side; local
    // code may subscribe to any id, but only contract types cross a link.
    if (type_id < schema::MIN_APP_TYPE_ID || state_.registry.find(type_id) == nullptr) return;
    const std::uint16_t ids[] = {type_id};
    const auto payload = encode_type_list(ids);
    enqueue(interested ? control::SUBSCRIBE : control::UNSUBSCRIBE, payload);
}

void Session::on_type_list(bool subscribe, std::span<const std::byte> payload) {
    const char* what = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
    if (phase_ != Phase::Hello) {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::ProtocolViolation, fmt::format("{} before HELLO", what));
    }
    const auto ids = decode_type_list(payload);
    if (!ids) {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::ProtocolViolation, fmt::format("{} payload of odd length {}", what, payload.size()));
    }
    for (const std::uint16_t id : *ids) {
        if (state_.registry.find(id) == nullptr) {
            Counters::add(state_.counters.protocol_errors);
            return fail(ErrorCode::ProtocolViolation, fmt::format("{} of type {}, which the contracts do not define", what, id));
        }
    }
    for (const std::uint16_t id : *ids) {
        if (subscribe) {
            subscribe_type(id);
        } else {
            subs_.erase(id);
        }
    }
}

void Session::become_legacy() {
    phase_ = Phase::Legacy;
    outbox_.set_policy(state_.options.slow_consumer.legacy);
    send_packed_.store(state_.options.legacy_layout == LegacyLayout::Packed, std::memory_order_relaxed);
    for (const auto& message : state_.registry.messages()) subscribe_type(message.type_id);
    state_.log->info("{}: legacy client connected (link {})", peer_, id_);
}

void Session::subscribe_type(std::uint16_t type_id) {
    if (subs_.contains(type_id)) return;
    // `this` outlives the subscription: finish() and the destructor close it first, and
    // close() waits for callbacks in flight.
    // What a peer subscribes to is not this node's interest: declaring it to other peers
    // would relay between peers.
    SubscribeOptions options{.counts_as_interest = role_.load(std::memory_order_relaxed) != Role::Peer};
    // Block pauses whoever feeds a full queue; the bus asks before it delivers.
    if (outbox_.policy() == SlowConsumerPolicy::Block) {
        options.has_room = &Outbox::room_probe;
        options.room_context = &outbox_;
    }
    subs_.emplace(type_id, state_.bus.subscribe_batch(
                               type_id, [this](std::span<const MessageView> run) { on_bus_messages(run); }, options));
}

// ---------------------------------------------------------------------------------------
// Session: writing
// ---------------------------------------------------------------------------------------

void Session::on_bus_messages(std::span<const MessageView> run) {
    if (run.empty()) return;  // the bus never hands over an empty run
    // A run is of one type: one look-up.
    const std::uint16_t type_id = run.front().type_id;
    const schema::MessageSchema* message = state_.registry.find(type_id);
    // A legacy client reading with Mycelium's Python gets a padded type packed.
    const schema::PackedLayout* packed =
        send_packed_.load(std::memory_order_relaxed) ? state_.packed_layouts.find(type_id) : nullptr;
    forward_run(
        run, current_origin(), {id_, role_.load(std::memory_order_relaxed)},
        message != nullptr ? std::optional<std::size_t>(message->size) : std::nullopt,
        [&](std::span<const MessageView> piece) {
            if (packed == nullptr) [[likely]] return enqueue_run(piece);
            enqueue_packed_run(piece, *packed);
        },
        [&](const MessageView& view, Skipped why) {
            if (why == Skipped::Unsendable) warn_unsendable(view, message);
        });
}

void Session::warn_unsendable(const MessageView& view, const schema::MessageSchema* message) {
    const log::ScopedFields log_fields{{"peer", peer_}};
    if (Counters::bump(state_.counters.unsendable) == 0)
        state_.log->warn("not sending type {} with a {}-byte payload to {}: its contracts size is {} "
                         "(warned once; see LinkStats::unsendable)",
                         view.type_id, view.payload.size(), peer_,
                         message ? std::to_string(message->size) : std::string("unknown"));
}

void Session::enqueue(std::uint16_t type_id, std::span<const std::byte> payload) {
    const MessageView frame{type_id, payload};
    enqueue_run(std::span<const MessageView>(&frame, 1));
}

void Session::enqueue_run(std::span<const MessageView> frames) {
    // Only frames into the ring are corked; asking the cork first keeps the outbox's lock
    // short (a link it takes is held until the cork publishes).
    const bool corked = outbox_.ring_active() && cork_will_publish(*this, state_);
    after_enqueue(outbox_.enqueue_run(frames, corked));
}

void Session::after_enqueue(Outbox::After after) {
    if (after == Outbox::After::Nothing) [[likely]] return;
    auto self = weak_from_this().lock();
    if (!self) return;
    switch (after) {
        case Outbox::After::Nothing:
            return;
        case Outbox::After::SlowConsumer:
            asio::post(socket_.get_executor(), [self] { self->on_slow_consumer(); });
            return;
        case Outbox::After::Corrupt:
            asio::post(socket_.get_executor(), [self] { self->on_shm_send_corrupt(); });
            return;
        case Outbox::After::Write:
            break;
    }
    if (on_own_strand()) {
        // Called from one of this session's own handlers (a frame read here caused a
        // reply here, as in a request/reply or a ping-pong): write now rather than post,
        // which would cost another round of the io loop before the bytes leave.
        try {
            start_write();
        } catch (const std::exception& e) {
            state_.log->error("{}: write failed: {}", peer_, e.what());
            // Not finish() here: it waits for bus callbacks, and we may be inside one.
            asio::post(socket_.get_executor(), [self] { self->finish(); });
        }
        return;
    }
    asio::post(socket_.get_executor(), [self] {
        try {
            self->start_write();
        } catch (const std::exception& e) {
            self->state_.log->error("{}: write failed: {}", self->peer_, e.what());
            self->finish();
        }
    });
}

bool Session::on_own_strand() noexcept {
    const auto* strand = socket_.get_executor().target<asio::strand<asio::io_context::executor_type>>();
    return strand != nullptr && strand->running_in_this_thread();
}

void Session::start_write() {
    // The first write goes out right here when the socket takes it whole, which saves
    // the completion handler's round of the io loop (a request/reply hop pays one
    // syscall, not a syscall and a loop round). When more is queued by then, traffic is
    // dense: the rest goes the asynchronous way, and frames queued meanwhile leave
    // together in the next, larger write.
    for (bool first = true;; first = false) {
        if (finished_) return;
        // No write is in flight here: the OFFER and its descriptors go out in socket order.
        send_offer();
        if (finished_ || !take_pending()) return;
        std::size_t n = 0;
        if (first) {
            asio::error_code ec;
            if (!socket_.non_blocking()) socket_.non_blocking(true, ec);
            if (!ec) n = socket_.write_some(asio::buffer(inflight_), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                n = 0;
            } else if (ec) {
                return on_write_failed(ec);
            } else if (n == inflight_.size()) {
                count_written(n);
                continue;
            }
        }
        asio::async_write(socket_, asio::buffer(inflight_.data() + n, inflight_.size() - n),
                          [self = shared_from_this(), n](const asio::error_code& e, std::size_t m) {
                              self->on_written(e, n + m);
                          });
        return;
    }
}

bool Session::take_pending() {
    inflight_frames_ = outbox_.take(inflight_);
    if (inflight_frames_ != 0) return true;
    if (close_after_flush_) {
        // The ERROR frame is out: send FIN, then discard input until the client closes
        // (or the linger ends), so that no reset destroys the frame in flight.
        asio::error_code ignored;
        socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    }
    return false;
}

void Session::count_written(std::size_t n) {
    Counters::add(state_.counters.bytes_sent, n);
    Counters::add(state_.counters.frames_sent, inflight_frames_);
    if (peer_record_) {
        Counters::add(peer_record_->bytes_out, n);
        Counters::add(peer_record_->frames_out, inflight_frames_);
    }
    Counters::add(state_.counters.writes);
    inflight_frames_ = 0;
    inflight_.clear();
    if (inflight_.capacity() > RETAINED_WRITE_CAPACITY) inflight_ = {};
}

void Session::on_write_failed(const asio::error_code& ec) {
    if (!is_disconnect(ec)) state_.log->warn("{}: write failed: {}", peer_, ec.message());
    // Posted: start_write can run inside one of this session's own bus callbacks (a reply
    // written in place), and finish() closes those subscriptions.
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->finish(); });
}

void Session::on_written(const asio::error_code& ec, std::size_t n) {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (finished_ || ec == asio::error::operation_aborted) return;
        if (ec) return on_write_failed(ec);
        count_written(n);
        start_write();
    } catch (const std::exception& e) {
        state_.log->error("{}: write failed: {}", peer_, e.what());
        finish();
    }
}

// ---------------------------------------------------------------------------------------
// Session: closing
// ---------------------------------------------------------------------------------------

void Session::on_slow_consumer() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (finished_ || closing_) return;
        Counters::add(state_.counters.slow_consumers);
        const SlowConsumerPolicy policy = outbox_.policy();
        const std::string after =
            policy == SlowConsumerPolicy::Block
                ? fmt::format(" after pausing its producers for {} ms", state_.options.slow_consumer_wait.count())
                : std::string();
        std::string reason;
        if (shm_.active()) {
            reason = fmt::format("its {}-byte shared-memory ring is full{}", shm_.rings()->out_ring.capacity(), after);
        } else {
            reason = fmt::format("its send queue is full ({} frames / {} bytes){}", state_.options.send_queue_frames,
                                 state_.options.send_queue_bytes, after);
        }
        state_.log->warn("{}: slow consumer disconnected ({}): {}", peer_, to_string(policy), reason);
        // The queue is discarded; the ERROR goes out if the socket takes it soon.
        close_with_error(ErrorCode::SlowConsumer, reason, SLOW_CONSUMER_LINGER);
    } catch (...) {
        finish();
    }
}

void Session::fail(ErrorCode code, const std::string& reason) {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    if (closing_) return;
    state_.log->warn("{}: closing the connection: {}: {}", peer_, to_string(code), reason);
    close_with_error(code, reason);
}

void Session::close_with_error(ErrorCode code, const std::string& reason) {
    close_with_error(code, reason, state_.options.close_linger);
}

void Session::close_with_error(ErrorCode code, const std::string& reason, std::chrono::milliseconds linger) {
    if (closing_) return;
    closing_ = true;
    handshake_timer_.cancel();
    outbox_.abort_waits();  // as in finish()
    interest_.close();
    subs_.clear();
    const bool kick = outbox_.close_with(control::ERROR, encode_error(code, reason));
    close_after_flush_ = true;
    linger_timer_.expires_after(linger);
    linger_timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
        if (ec != asio::error::operation_aborted) self->finish();
    });
    if (kick) start_write();
}

}  // namespace mycelium::link::detail

// ---------------------------------------------------------------------------------------
// Session: shared memory (docs/wire-protocol.md, "Shared-memory setup")
// ---------------------------------------------------------------------------------------

namespace mycelium::link::detail {

void Session::protocol_violation(const std::string& reason) {
    Counters::add(state_.counters.protocol_errors);
    fail(ErrorCode::ProtocolViolation, reason);
}

void Session::offer_waiting() {
    // Otherwise a write is in flight or posted: its start_write() sends the offer first.
    if (outbox_.schedule_write()) start_write();
}

void Session::send_offer() {
    std::array<int, 4> fds{};
    const std::vector<std::byte> frame = shm_.take_offer(fds);
    if (frame.empty()) [[likely]] return;
    try {
        // The socket is non-blocking; send_fds waits (poll) for room, a short bounded time.
        shm::send_fds(socket_.native_handle(), frame, fds, std::chrono::milliseconds(1'000));
    } catch (const std::system_error& e) {
        state_.log->warn("{}: cannot send the shared-memory offer: {}", peer_, e.what());
        return finish();
    }
    Counters::add(state_.counters.bytes_sent, frame.size());
    Counters::add(state_.counters.frames_sent);
    Counters::add(state_.counters.writes);
    if (peer_record_) {
        Counters::add(peer_record_->bytes_out, frame.size());
        Counters::add(peer_record_->frames_out);
    }
}

void Session::switch_output(std::uint16_t last) {
    // `last` (SHM_SWITCH or SHM_READY) is the last frame on the socket; everything
    // enqueued after it goes into the ring, so the other side, which reads the socket up
    // to it and then the ring, sees every frame in order.
    ShmLink& rings = *shm_.rings();
    if (outbox_.switch_to_ring(rings.out_ring.region(), rings.peer_bell.fd(), last)) start_write();
}

void Session::start_reading_ring() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->drain_shm(); });
}

bool Session::read_ring(std::size_t max, std::size_t& visited) {
    CorkScope cork(*this, state_);
    reading_ring_ = true;
    // Application frames are published in runs (one bus pass, one lock and one ring
    // publish per subscriber for the run); a control frame, a wrap (the run's payloads
    // must be in address order: see Origin) or a full run publishes what came before.
    std::array<MessageView, SHM_RUN> run;
    std::size_t in_run = 0;
    const auto publish_run = [&](bool more) {
        if (in_run == 0) return;
        cork.set_more(more);
        publish_from_link(std::span<const MessageView>(run.data(), std::exchange(in_run, 0)));
    };
    std::size_t seen = 0;
    // What the frames caused leaves before their room is released to the writer: a reply
    // goes out first.
    shm::RingConsumer& consumer = shm_.rings()->reader->consumer();
    const auto read = consumer.read_batch(
        [&](const shm::FrameView& frame) {
            const bool more = ++seen < max && consumer.known_available() != 0;
            if (frame.type_id < schema::MIN_APP_TYPE_ID) {
                publish_run(true);
                cork.set_more(more);
                return on_frame(frame.type_id, frame.payload);
            }
            if (!acceptable(frame.type_id, frame.payload)) {
                if (!more) publish_run(false);
                return;
            }
            if (in_run == run.size() || (in_run != 0 && frame.payload.data() < run[in_run - 1].payload.data()))
                publish_run(true);
            run[in_run++] = MessageView{frame.type_id, frame.payload};
            if (!more) publish_run(false);
        },
        max,
        [&]() noexcept {
            // A ring error after the run began: the frames before it were accepted.
            try {
                publish_run(false);
            } catch (...) {  // a destructor may run this while an exception unwinds
                state_.log->error("{}: frames read from the ring were not published (out of memory?)",
                                  peer_);  // spdlog does not throw
            }
            cork.end();
        });
    reading_ring_ = false;
    if (!read) {
        if (!closing_) on_ring_failure(*consumer.failure());
        return false;
    }
    visited = *read;
    if (visited > 0) {
        Counters::add(state_.counters.frames_received, visited);
        Counters::add(state_.counters.shm_frames_received, visited);
        if (peer_record_) Counters::add(peer_record_->frames_in, visited);
    }
    return true;
}

void Session::drain_shm() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (!shm_.active()) return;
        RingReader& reader = *shm_.rings()->reader;
        if (finished_ || closing_) return reader.stop_spinning();
        reader.begin_turn();
        for (RingReader::Next next = RingReader::Next::Again; next != RingReader::Next::Park;) {
            std::size_t visited = 0;
            if (!read_ring(SHM_BATCH, visited) || finished_ || closing_) return;
            if (!keep_reading(true)) return reader.stop_spinning();
            next = reader.after_batch(visited, SHM_BATCH);
            if (next == RingReader::Next::Yield) {
                asio::post(socket_.get_executor(), [self = shared_from_this()] { self->drain_shm(); });
                return;
            }
        }
        const bool parked = reader.park([self = shared_from_this()](const asio::error_code& ec) {
            if (ec == asio::error::operation_aborted || self->finished_) return;
            self->shm_.rings()->reader->woke();
            if (ec) {
                self->state_.log->warn("{}: waiting on the shared-memory doorbell: {}", self->peer_, ec.message());
                return self->finish();
            }
            self->drain_shm();
        });
        // Not parked: a frame came (or the client closed its side) while it looked.
        if (!parked) asio::post(socket_.get_executor(), [self = shared_from_this()] { self->drain_shm(); });
    } catch (const std::exception& e) {
        state_.log->error("{}: closing after an internal error in the ring reader: {}", peer_, e.what());
        finish();
    }
}

void Session::drain_shm_now() {
    for (;;) {
        std::size_t visited = 0;
        if (!read_ring(SHM_BATCH, visited) || finished_ || closing_ || visited < SHM_BATCH) return;
    }
}

void Session::on_ring_failure(const shm::RingFailure& failure) {
    // Bad frames are bad input as on the socket; a broken ring structure is corruption.
    switch (failure.error) {
        case shm::RingError::Oversize:
            Counters::add(state_.counters.oversize);
            return fail(ErrorCode::Oversize, "in the shared-memory ring: " + shm::to_string(failure));
        case shm::RingError::UnknownType:
            Counters::add(state_.counters.unknown_type);
            return fail(ErrorCode::UnknownType, "in the shared-memory ring: " + shm::to_string(failure));
        case shm::RingError::SizeMismatch:
            Counters::add(state_.counters.size_mismatch);
            return fail(ErrorCode::SizeMismatch, "in the shared-memory ring: " + shm::to_string(failure));
        default:
            break;
    }
    Counters::add(state_.counters.shm_corrupt);
    state_.log->error("{}: the client's shared-memory ring is corrupt, closing link {}: {}", peer_, id_,
                      shm::to_string(failure));
    close_with_error(ErrorCode::ShmCorrupt, "shared-memory ring corrupt: " + shm::to_string(failure));
}

void Session::on_shm_send_corrupt() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (finished_ || closing_) return;
        const std::string what = outbox_.ring_failure();
        Counters::add(state_.counters.shm_corrupt);
        state_.log->error("{}: the host's shared-memory ring to the client is corrupt, closing link {}: {}", peer_, id_,
                          what);
        close_with_error(ErrorCode::ShmCorrupt, "shared-memory ring corrupt: " + what);
    } catch (...) {
        finish();
    }
}

void Session::close_shm() noexcept {
    // Courtesy flags for a client still reading; the memory itself is freed with the
    // Session (after every handler that might still look at it is gone). The ring out is
    // published and closed by outbox_.close().
    if (ShmLink* rings = shm_.rings(); rings != nullptr && rings->reader) rings->reader->close();
}

}  // namespace mycelium::link::detail
