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

#include <malloc.h>

#include <map>
#include <utility>

#include <fmt/format.h>

#include "forwarding.hpp"
#include "mycelium/log.hpp"

namespace mycelium::link::detail {

namespace {

/// A client whose METRICS frames were at least this large gives its memory back to the
/// system when it leaves (malloc_trim).
constexpr std::size_t TRIM_AFTER_METRICS_BYTES = 64 * 1024;

// The keys of ServerState::log_limits for lines of one ErrorCode (limited_log.hpp).
std::string closing_reason(ErrorCode code) { return fmt::format("closing: {}", to_string(code)); }
std::string bad_frame_reason(ErrorCode code) { return fmt::format("bad frame: {}", to_string(code)); }

/// Whether a client's (or a peer's) application payloads are validated (ServerOptions::trust_payloads).
bool validates_payloads(TrustPayloads trust, bool peer) {
    return trust == TrustPayloads::None || (trust == TrustPayloads::Peers && !peer);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Session: lifetime
// ---------------------------------------------------------------------------------------

Session::Session(ServerState& state, Socket socket, std::string peer, std::uint64_t id, bool passes_descriptors,
                 std::optional<Outbound> outbound, ConnectionSlot slot)
    : state_(state),
      socket_(std::move(socket)),
      peer_(std::move(peer)),
      id_(id),
      outbound_(std::move(outbound)),
      slot_(std::move(slot)),
      // Only the payload limit breaks the stream; types and sizes are checked per frame
      // (acceptable()), so that one bad frame costs that frame, not the connection.
      decoder_(codec::DecoderOptions{state.options.max_payload, std::nullopt}),
      linger_timer_(socket_.get_executor()),
      handshake_(*this, state, socket_.get_executor(), peer_),
      traffic_(state.counters),
      shm_(state, *this, socket_.get_executor(), peer_, id, outbound_.has_value(), passes_descriptors),
      // A dialed link is a peer's; an accepted connection is a client until it says otherwise.
      filter_(state.registry, state.counters, state.options.log_interval,
              validates_payloads(state.options.trust_payloads, outbound_.has_value())),
      pause_(socket_.get_executor()),
      idle_(*this, state.counters, socket_.get_executor(), state.options.idle_timeout),
      // A dialed link is a peer's; an accepted connection is a client until it says otherwise.
      outbox_(state.bus, state.options, state.counters,
              outbound_ ? state.options.slow_consumer.peer : state.options.slow_consumer.client),
      reader_(*this, socket_, shm_),
      writer_(*this, socket_, outbox_, shm_, traffic_, state.log, state.log_limits, peer_),
      control_(*this, state, outbox_, shm_, filter_, *this, peer_, id),
      ring_(*this, *this, state, shm_, traffic_, socket_.get_executor(), peer_, id) {}

Session::~Session() {
    // Normally finish() did this already; a session destroyed with the io_context (stop()
    // timed out) must still stop its callbacks before its members go.
    control_.close();
}

void Session::start() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    if (outbound_) return start_outbound();
    try {
        const Admission admission = state_.admit(shared_from_this(), id_, slot_, socket_.native_handle());
        if (admission == Admission::Stopped) {
            asio::error_code ignored;
            socket_.close(ignored);
            return;
        }
        counted_ = admission == Admission::Admitted;
        if (!counted_) {
            refuse(admission);
            reader_.read();  // drains until the client closes or the linger ends
            return;
        }
        state_.log->debug("{}: connected (link {})", peer_, id_);
        handshake_.start();
        idle_.start();
        reader_.read();
    } catch (const std::exception& e) {
        state_.error_limited("cannot start the session", "{}: cannot start the session: {}", peer_, e.what());
        finish();
    }
}

void Session::refuse(Admission why) {
    const ServerOptions& options = state_.options;
    switch (why) {
        case Admission::OutOfDescriptors:
            Counters::add(state_.counters.rejected_out_of_descriptors);
            return fail(ErrorCode::TooManyConnections, "the host is out of file descriptors");
        case Admission::TooManyOnListener:
            Counters::add(state_.counters.rejected_per_listener);
            return fail(ErrorCode::TooManyConnections,
                        fmt::format("this endpoint already serves {} connections (max_connections_per_listener)",
                                    options.max_connections_per_listener));
        case Admission::TooManyFromClient:
            Counters::add(state_.counters.rejected_per_client);
            return fail(ErrorCode::TooManyConnections,
                        fmt::format("{} already holds {} connections (max_connections_per_client)", slot_.identity,
                                    options.max_connections_per_client));
        case Admission::TooManyConnections:
        case Admission::Admitted:
        case Admission::Stopped:
            break;
    }
    Counters::add(state_.counters.rejected_max_connections);
    fail(ErrorCode::TooManyConnections, fmt::format("the host already serves {} connections", options.max_connections));
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
        control_.start_as_peer(outbound_->record->name);
        if (outbound_->request_shm) shm_.request(outbound_->shm_capacity);
        idle_.start();
        reader_.read();
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

void Session::stop_intake() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->intake_stopped_ = true; });
}

void Session::shut_down_after_flush(std::chrono::milliseconds linger) {
    asio::post(socket_.get_executor(), [self = shared_from_this(), linger] {
        const log::ScopedFields log_fields{{"peer", self->peer_}};
        try {
            if (self->closing_ || self->finished_) return;
            self->intake_stopped_ = true;
            self->flushing_close_ = true;
            self->close_with_error(ErrorCode::ShuttingDown, "the host is shutting down", linger, true);
            // From here on input is read and discarded, so that the client's close is seen.
            if (std::exchange(self->reading_stopped_, false)) self->reader_.read();
        } catch (const std::exception&) {
            self->finish();
        }
    });
}

void Session::sent_fin() {
    if (!flushing_close_ || finished_) return;
    // Everything left: give the ERROR the usual linger, not what was left of the
    // shutdown's, so a client that never closes does not hold the host up.
    finish_after(state_.options.close_linger);
}

void Session::finish_after(std::chrono::milliseconds linger) {
    linger_timer_.expires_after(linger);  // cancels an earlier wait
    linger_timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
        if (ec != asio::error::operation_aborted) self->finish();
    });
}

void Session::count_unsent() {
    std::map<std::uint16_t, std::uint64_t> unsent;
    const auto count = [&](std::uint16_t type_id) {
        if (state_.registry.find(type_id) != nullptr) ++unsent[type_id];
    };
    writer_.for_each_inflight_type(count);
    outbox_.for_each_queued_type(count);
    if (unsent.empty()) return;
    std::lock_guard lock(state_.mutex);
    for (const auto& [type_id, n] : unsent) state_.unsent[type_id] += n;
}

void Session::finish() noexcept {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    if (state_.intake_stopped.load(std::memory_order_acquire)) {
        try {
            count_unsent();
        } catch (const std::exception& e) {
            state_.log->error("{}: counting what was not sent: {}", peer_, e.what());
        }
    }
    // Before waiting for callbacks in flight: one of them may be waiting for room (Block);
    // it gives up within a wait slice.
    outbox_.abort_waits();
    control_.close();  // waits for callbacks running on other threads
    // A large METRICS snapshot is many small allocations, whose pages glibc keeps after
    // they are freed: they are handed back to the system when the client leaves.
    if (control_.report().clear() >= TRIM_AFTER_METRICS_BYTES) malloc_trim(0);
    // Courtesy flags for a client still reading; the memory itself is freed with the
    // Session (after every handler that might still look at it is gone). The ring out is
    // published and closed by outbox_.close().
    if (ShmLink* rings = shm_.rings(); rings != nullptr && rings->reader) rings->reader->close();
    outbox_.close();
    asio::error_code ignored;
    handshake_.cancel();
    idle_.cancel();
    linger_timer_.cancel();
    pause_.cancel();
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    state_.log->debug("{}: closed (link {})", peer_, id_);
    leave_peer_record();
    control_.announce_closed();
    state_.release(id_, counted_ ? &slot_ : nullptr);
    // Last: the dialer may schedule a redial, which must not find this session registered.
    if (outbound_ && outbound_->on_closed) std::exchange(outbound_->on_closed, nullptr)();
}

void Session::become_peer() {
    filter_.set_validate(validates_payloads(state_.options.trust_payloads, true));
    const std::shared_ptr<PeerRecord> record =
        outbound_ ? outbound_->record : state_.peer_record(control_.name(), false);
    traffic_.set_peer(record);
    outbox_.set_peer(record.get());
    std::shared_ptr<Session> replaced;
    {
        std::lock_guard lock(record->mutex);
        replaced = record->current.lock();
        record->current = shared_from_this();
        if (!outbound_) record->endpoint = peer_;
        record->connected.store(true, std::memory_order_relaxed);
    }
    Counters::add(record->connects);
    if (!outbound_) state_.mesh_log->info("peer '{}' connected from {} (link {})", control_.name(), peer_, id_);
    if (replaced && replaced.get() != this) {
        // One link per pair: the newer link wins (the older one is most likely half-open
        // after the far node restarted), so no frame is delivered twice.
        state_.mesh_log->info("peer '{}': a newer link replaces link {}", control_.name(), replaced->id_);
        replaced->shut_down("replaced by a newer link from the same peer");
    }
}

void Session::leave_peer_record() noexcept {
    const std::shared_ptr<PeerRecord>& record = traffic_.peer();
    if (!record) return;
    {
        std::lock_guard lock(record->mutex);
        const auto now = record->current.lock();
        if (!now || now.get() == this) {
            record->current.reset();
            // Under the mutex: a newer link registering meanwhile must not be undone.
            record->connected.store(false, std::memory_order_relaxed);
        }
    }
    if (!outbound_) state_.mesh_log->info("peer '{}' ({}) disconnected", control_.name(), peer_);
}

ClientDrops Session::drops() const {
    return ClientDrops{control_.report().label(), filter_.unknown_types(), filter_.size_mismatches(),
                       filter_.invalid_payloads(), outbox_.dropped()};
}

// ---------------------------------------------------------------------------------------
// Session: reading
// ---------------------------------------------------------------------------------------

void Session::on_read(const asio::error_code& ec, std::span<const std::byte> bytes) {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (finished_ || ec == asio::error::operation_aborted) return;
        if (ec) {
            if (closing_) return finish();
            if (is_disconnect(ec)) return on_end_of_stream();
            state_.warn_limited("read failed", "{}: read failed: {}", peer_, ec.message());
            return finish();
        }
        traffic_.received_bytes(bytes.size());
        idle_.heard();
        if (!closing_ && !intake_stopped_) take_bytes(bytes);
        if (finished_ || !keep_reading(false)) return;
        reader_.read();  // while closing, this discards input until the client closes
    } catch (const std::exception& e) {
        state_.error_limited("internal error", "{}: closing after an internal error: {}", peer_, e.what());
        finish();
    }
}

void Session::take_bytes(std::span<const std::byte> bytes) {
    if (control_.phase() == Phase::Handshake) {
        bytes = handshake_.feed(bytes);
        if (handshake_.done()) control_.handshake_done();
        // Decide legacy before publishing the frames that came with the handshake: the
        // replies they cause must find this client already subscribed.
        if (!closing_ && control_.phase() == Phase::Undecided && !starts_with_hello(bytes)) control_.become_legacy();
    }
    if (!closing_ && control_.phase() != Phase::Handshake && !bytes.empty()) feed(bytes);
    // A client that did not say HELLO in the bytes that completed its handshake is a
    // legacy client: from now on it receives every application type.
    if (!closing_ && control_.phase() == Phase::Undecided) control_.become_legacy();
}

void Session::on_end_of_stream() {
    // Frames the client put into its ring before it closed the socket still count, as
    // bytes written before a FIN do.
    if (shm_.active() && !closing_) ring_.drain_now();
    if (finished_) return;
    if (pause_.paused()) return pause_.hold_end_of_stream();  // ends once the held frames are published
    if (control_.phase() == Phase::Handshake) {
        Counters::add(state_.counters.truncated);
        state_.warn_limited("closed inside the handshake",
                            "{}: connection closed inside the handshake ({} of {} bytes received)", peer_,
                            handshake_.received(), control::HANDSHAKE_SIZE);
    } else if (auto done = decoder_.finish(); !done) {
        Counters::add(state_.counters.truncated);
        state_.warn_limited("closed inside a frame", "{}: connection closed inside a frame: {}", peer_,
                            codec::to_string(*decoder_.failure()));
    } else {
        state_.log->debug("{}: client closed the connection", peer_);
    }
    finish();
}

bool Session::starts_with_hello(std::span<const std::byte> bytes) {
    // Fewer than two bytes cannot tell; the old rule (decide after this read) applies.
    return bytes.size() < 2 || load_le16(bytes.data()) == control::HELLO;
}

void Session::feed(std::span<const std::byte> bytes) {
    const CorkScope cork(*this, state_);
    const auto fed = decoder_.feed(bytes, [this](std::uint16_t type_id, std::span<const std::byte> payload) {
        on_frame(type_id, payload);
    });
    if (fed) return traffic_.received_frames(*fed);
    if (closing_) return;  // a control frame already closed the session
    on_decode_failure(*decoder_.failure());
}

void Session::on_decode_failure(const codec::DecodeFailure& failure) {
    const FrameFilter::Refusal refusal = filter_.broken_stream(failure);
    fail(refusal.code, refusal.reason);
}

void Session::on_frame(std::uint16_t type_id, std::span<const std::byte> payload) {
    if (closing_) return;  // the rest of a chunk after a fatal control frame
    idle_.heard();         // frames from the ring come only this way
    // After the switch only a final ERROR may still come on the socket.
    if (shm_.active() && !ring_.reading() && type_id != control::ERROR) [[unlikely]] {
        Counters::add(state_.counters.protocol_errors);
        return fail(ErrorCode::ProtocolViolation,
                    fmt::format("frame of type {} on the socket after SHM_READY: it must go through the ring", type_id));
    }
    if (type_id < schema::MIN_APP_TYPE_ID) {
        if (pause_.paused()) return pause_.hold(type_id, payload);  // in order with the held frames
        return control_.on_control(type_id, payload);
    }
    std::optional<MessageView> unpacked;
    if (control_.phase() == Phase::Legacy && !state_.packed_layouts.empty()) [[unlikely]]
        unpacked = control_.legacy().unpack(type_id, payload);
    // Checked before it is held: held frames are published as they are. A frame unpacked
    // to the C layout has the contracts' size.
    if (!unpacked && !acceptable(type_id, payload)) return;
    const MessageView message = unpacked.value_or(MessageView{type_id, payload});
    publish_from_link(std::span<const MessageView>(&message, 1));  // held while paused
}

bool Session::acceptable(std::uint16_t type_id, std::span<const std::byte> payload) {
    auto refusal = filter_.check(type_id, payload);
    if (!refusal) [[likely]] return true;
    bad_frame(refusal->code, refusal->reason);
    return false;
}

void Session::bad_frame(ErrorCode code, const std::string& reason) {
    // This connection's limiter first (a line per client, reason and interval), then the
    // server's: a flood of connections each sending one bad frame is bounded too.
    if (const auto held_back = filter_.count(code)) {
        log_limited(*state_.log, state_.log_limits, spdlog::level::warn, bad_frame_reason(code), *held_back,
                    "{}: bad frame: {}", peer_, reason);
    }
    // A legacy client does not know control frames; HELLO clients and peers are told.
    if (control_.phase() == Phase::Hello) enqueue(control::ERROR, encode_error(code, reason));
}

void Session::publish_from_link(std::span<const MessageView> run) {
    if (closing_ || intake_stopped_ || run.empty()) return;
    control_.saw_frame();
    if (pause_.paused()) return pause_.hold(run);  // after the frames held before them
    const OriginScope origin(
        Origin{id_, control_.role(), run.front().payload.data(), run.back().payload.data()});
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
    if (closing_) return true;
    if (intake_stopped_) {
        if (!from_ring) reading_stopped_ = true;
        return false;
    }
    if (!pause_.paused()) return true;
    pause_.stop(from_ring, [self = shared_from_this()] { self->on_resume(); });
    return false;
}

void Session::on_resume() {
    const log::ScopedFields log_fields{{"peer", peer_}};
    try {
        if (finished_) return;
        if (!closing_ && intake_stopped_) {  // what it held was never accepted
            reading_stopped_ = pause_.resume().socket;
            return;
        }
        if (!closing_ && !publish_held()) return pause_.arm([self = shared_from_this()] { self->on_resume(); });
        const InboundPause::Stopped stopped = pause_.resume();
        if (finished_) return;
        if (stopped.end_of_stream) return on_end_of_stream();
        if (stopped.ring) ring_.drain();
        if (stopped.socket && !finished_) reader_.read();
    } catch (const std::exception& e) {
        state_.error_limited("internal error", "{}: closing after an internal error: {}", peer_, e.what());
        finish();
    }
}

bool Session::publish_held() {
    HeldFrames& held = pause_.held();
    while (!held.empty()) {
        const HeldFrames::Frame frame = held.front();
        if (frame.type_id < schema::MIN_APP_TYPE_ID) {
            control_.on_control(frame.type_id, frame.payload);
            if (finished_) return true;
            held.pop_front();
            continue;
        }
        const MessageView message{frame.type_id, frame.payload};
        const OriginScope origin(Origin{id_, control_.role(), frame.payload.data(),
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

// ---------------------------------------------------------------------------------------
// Session: writing
// ---------------------------------------------------------------------------------------

void Session::on_bus_messages(std::span<const MessageView> run) {
    if (run.empty()) return;  // the bus never hands over an empty run
    // A run is of one type: one look-up.
    const std::uint16_t type_id = run.front().type_id;
    const schema::MessageSchema* message = state_.registry.find(type_id);
    // A legacy client reading with Mycelium's Python gets a padded type packed.
    const schema::PackedLayout* packed = control_.legacy().outgoing_layout(type_id);
    forward_run(
        run, current_origin(), {id_, control_.role()},
        message != nullptr ? std::optional<std::size_t>(message->size) : std::nullopt,
        [&](std::span<const MessageView> piece) {
            if (packed == nullptr) [[likely]] return enqueue_run(piece);
            enqueue_run(control_.legacy().pack(piece, *packed));
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
    write_now(self);
}

void Session::write_now(const std::shared_ptr<Session>& self) {
    if (on_own_strand()) {
        // Called from one of this session's own handlers (a frame read here caused a
        // reply here, as in a request/reply or a ping-pong): write now rather than post,
        // which would cost another round of the io loop before the bytes leave.
        try {
            writer_.start();
        } catch (const std::exception& e) {
            state_.error_limited("write failed", "{}: write failed: {}", peer_, e.what());
            // Not finish() here: it waits for bus callbacks, and we may be inside one.
            finish_later();
        }
        return;
    }
    asio::post(socket_.get_executor(), [self] {
        try {
            self->writer_.start();
        } catch (const std::exception& e) {
            self->state_.error_limited("write failed", "{}: write failed: {}", self->peer_, e.what());
            self->finish();
        }
    });
}

std::shared_ptr<Corkable> Session::corkable_ref() noexcept {
    auto self = weak_from_this().lock();
    return self ? std::shared_ptr<Corkable>(std::move(self), static_cast<Corkable*>(this)) : nullptr;
}

void Session::finish_later() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->finish(); });
}

bool Session::on_own_strand() noexcept {
    // target() points into the executor it is asked, so that executor must outlive the
    // pointer: asking a temporary (socket_.get_executor().target<...>()) left the pointer
    // dangling, and AddressSanitizer reported stack-use-after-scope here.
    const auto executor = socket_.get_executor();
    const auto* strand = executor.target<asio::strand<asio::io_context::executor_type>>();
    return strand != nullptr && strand->running_in_this_thread();
}

// ---------------------------------------------------------------------------------------
// Session: closing
// ---------------------------------------------------------------------------------------

void Session::on_slow_consumer() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (finished_ || closing_) return;
        Counters::add(state_.counters.slow_consumers);
        const std::string reason = outbox_.overflow_reason();
        state_.warn_limited("slow consumer", "{}: slow consumer disconnected ({}): {}", peer_,
                            to_string(outbox_.policy()), reason);
        // The queue is discarded; the ERROR goes out if the socket takes it soon.
        close_with_error(ErrorCode::SlowConsumer, reason, SLOW_CONSUMER_LINGER);
    } catch (...) {
        finish();
    }
}

void Session::protocol_violation(const std::string& reason) {
    Counters::add(state_.counters.protocol_errors);
    fail(ErrorCode::ProtocolViolation, reason);
}

void Session::fail(ErrorCode code, const std::string& reason) {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    if (closing_) return;
    state_.warn_limited(closing_reason(code), "{}: closing the connection: {}: {}", peer_, to_string(code), reason);
    close_with_error(code, reason);
}

void Session::close_with_error(ErrorCode code, const std::string& reason) {
    close_with_error(code, reason, state_.options.close_linger);
}

void Session::close_with_error(ErrorCode code, const std::string& reason, std::chrono::milliseconds linger,
                               bool send_queued) {
    if (closing_) return;
    closing_ = true;
    handshake_.cancel();
    // As in finish(), unless what is queued still leaves: then the queue drains anyway.
    if (!send_queued) outbox_.abort_waits();
    control_.close();
    const bool kick = outbox_.close_with(control::ERROR, encode_error(code, reason), send_queued);
    writer_.shut_down_after_flush();
    finish_after(linger);
    if (kick) writer_.start();
}

// ---------------------------------------------------------------------------------------
// Session: shared memory (docs/wire-protocol.md, "Shared-memory setup")
// ---------------------------------------------------------------------------------------

void Session::offer_waiting() {
    // Otherwise a write is in flight or posted: its writer_.start() sends the offer first.
    if (outbox_.schedule_write()) writer_.start();
}

void Session::switch_output(std::uint16_t last) {
    // `last` (SHM_SWITCH or SHM_READY) is the last frame on the socket; everything
    // enqueued after it goes into the ring, so the other side, which reads the socket up
    // to it and then the ring, sees every frame in order.
    ShmLink& rings = *shm_.rings();
    if (outbox_.switch_to_ring(rings.out_ring.region(), rings.peer_bell.fd(), last)) writer_.start();
}

void Session::start_reading_ring() { ring_.start(); }

void Session::on_shm_send_corrupt() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (finished_ || closing_) return;
        const std::string what = outbox_.ring_failure();
        Counters::add(state_.counters.shm_corrupt);
        state_.error_limited("ring to the client corrupt",
                             "{}: the host's shared-memory ring to the client is corrupt, closing link {}: {}", peer_,
                             id_, what);
        close_with_error(ErrorCode::ShmCorrupt, "shared-memory ring corrupt: " + what);
    } catch (...) {
        finish();
    }
}

}  // namespace mycelium::link::detail
