// One link connection. Rules that govern this file:
// - Every Asio handler runs on the session's strand and has its own try/catch: a failure
//   ends this session only (STYLE.md section 4). operation_aborted means shutdown.
// - Bytes from the socket are untrusted: the handshake and every frame header are
//   checked before anything is allocated or published (codec::FrameDecoder does frames).
// - Bus callbacks run on publishing threads and must stay short: they copy the frame into
//   the send queue and, for the first frame of a burst, post one write to the strand.

#include "session.hpp"

#include <asio/post.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "mycelium/log.hpp"

namespace mycelium::link::detail {

namespace {

constexpr std::size_t READ_BUFFER_SIZE = 64u * 1024u;
constexpr std::size_t HANDSHAKE_SIZE = 34;
constexpr std::size_t DIGEST_SIZE = 32;
// A write buffer above this is released after the write instead of kept for reuse, so
// one burst does not pin megabytes for the connection's lifetime.
constexpr std::size_t RETAINED_WRITE_CAPACITY = 1u << 20;

bool is_disconnect(const asio::error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::connection_aborted;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// ServerState
// ---------------------------------------------------------------------------------------

ServerState::ServerState(Bus& b, const schema::Registry& r, ServerOptions o)
    : bus(b), registry(r), options(o), log(mycelium::log::get("link")), mesh_log(mycelium::log::get("mesh")) {
    options.max_payload = std::min({options.max_payload, schema::DEFAULT_MAX_PAYLOAD, bus.max_payload()});
    options.threads = std::max<std::size_t>(options.threads, 1);
    options.send_queue_frames = std::max<std::size_t>(options.send_queue_frames, 1);
    options.send_queue_bytes =
        std::max(options.send_queue_bytes, codec::frame_size(options.max_payload));
}

bool ServerState::admit(const std::shared_ptr<Session>& session, std::uint64_t id, bool& counted) {
    std::lock_guard lock(mutex);
    if (stopped) return false;
    sessions.emplace(id, session);
    counted = active < options.max_connections;
    if (counted) ++active;
    return true;
}

bool ServerState::admit_outbound(const std::shared_ptr<Session>& session, std::uint64_t id) {
    std::lock_guard lock(mutex);
    if (stopped) return false;
    sessions.emplace(id, session);
    return true;
}

std::shared_ptr<PeerRecord> ServerState::peer_record(const std::string& name, bool dialed) {
    std::lock_guard lock(mutex);
    auto& record = peers[name];
    if (!record) record = std::make_shared<PeerRecord>(name, dialed);
    return record;
}

void ServerState::release(std::uint64_t id, bool counted) noexcept {
    {
        std::lock_guard lock(mutex);
        sessions.erase(id);
        if (counted) --active;
    }
    sessions_changed.notify_all();
}

void ServerState::notify_client(const std::string& name, bool connected) noexcept {
    try {
        std::lock_guard lock(client_observer_mutex);
        if (client_observer) client_observer(name, connected);
    } catch (const std::exception& e) {
        log->error("client observer failed for '{}': {}", name, e.what());
    } catch (...) {
        log->error("client observer failed for '{}'", name);
    }
}

// ---------------------------------------------------------------------------------------
// Session: lifetime
// ---------------------------------------------------------------------------------------

Session::Session(ServerState& state, Socket socket, std::string peer, std::uint64_t id,
                 std::optional<Outbound> outbound)
    : state_(state),
      socket_(std::move(socket)),
      peer_(std::move(peer)),
      id_(id),
      handshake_timer_(socket_.get_executor()),
      linger_timer_(socket_.get_executor()),
      decoder_(codec::DecoderOptions{state.options.max_payload, codec::TypeSizes::of(state.registry)}),
      read_buf_(READ_BUFFER_SIZE),
      outbound_(std::move(outbound)) {}

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
                                       self->handshake_have_, HANDSHAKE_SIZE));
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
        role_.store(Role::Peer, std::memory_order_relaxed);
        become_peer();
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
    interest_.close();  // waits for a listener call in progress on another thread
    try {
        subs_.clear();  // waits for callbacks running on other threads
    } catch (...) {     // Subscription::close is noexcept; map clear cannot throw
    }
    {
        std::lock_guard lock(send_mutex_);
        send_closed_ = true;
        pending_.clear();
        pending_.shrink_to_fit();
        pending_head_ = 0;
        pending_frames_ = 0;
    }
    asio::error_code ignored;
    handshake_timer_.cancel();
    linger_timer_.cancel();
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    state_.log->debug("{}: closed (link {})", peer_, id_);
    if (peer_record_) {
        bool current = false;
        {
            std::lock_guard lock(peer_record_->mutex);
            const auto now = peer_record_->current.lock();
            current = !now || now.get() == this;
            if (current) peer_record_->current.reset();
        }
        if (current) peer_record_->connected.store(false, std::memory_order_relaxed);
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
    socket_.async_read_some(asio::buffer(read_buf_),
                            [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                                self->on_read(ec, n);
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
        if (finished_) return;
        do_read();  // while closing, this discards input until the client closes
    } catch (const std::exception& e) {
        state_.log->error("{}: closing after an internal error: {}", peer_, e.what());
        finish();
    }
}

void Session::on_end_of_stream() {
    if (phase_ == Phase::Handshake) {
        Counters::add(state_.counters.truncated);
        state_.log->warn("{}: connection closed inside the handshake ({} of {} bytes received)", peer_,
                         handshake_have_, HANDSHAKE_SIZE);
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
    while (!bytes.empty() && phase_ == Phase::Handshake) {
        const std::size_t want = (handshake_have_ < 2 ? 2 : HANDSHAKE_SIZE) - handshake_have_;
        const std::size_t take = std::min(want, bytes.size());
        std::memcpy(handshake_.data() + handshake_have_, bytes.data(), take);
        handshake_have_ += take;
        bytes = bytes.subspan(take);
        if (handshake_have_ == 2) {
            const std::uint16_t length = codec::detail::load_le16(handshake_.data());
            if (length != DIGEST_SIZE) {
                Counters::add(state_.counters.bad_digest_length);
                fail(ErrorCode::BadDigestLength, fmt::format("digest length {}, expected {}", length, DIGEST_SIZE));
                return {};
            }
        } else if (handshake_have_ == HANDSHAKE_SIZE) {
            const auto& expected = state_.registry.digest();
            if (std::memcmp(handshake_.data() + 2, expected.data(), DIGEST_SIZE) != 0) {
                Counters::add(state_.counters.digest_mismatch);
                std::array<std::uint8_t, DIGEST_SIZE> got{};
                std::memcpy(got.data(), handshake_.data() + 2, DIGEST_SIZE);
                fail(ErrorCode::DigestMismatch,
                     fmt::format("schema digest {} does not match the host's {}", schema::to_hex(got),
                                 state_.registry.digest_hex()));
                return {};
            }
            handshake_timer_.cancel();
            phase_ = Phase::Undecided;
            Counters::add(state_.counters.handshakes_ok);
        }
    }
    return bytes;
}

void Session::feed(std::span<const std::byte> bytes) {
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
    if (type_id < schema::MIN_APP_TYPE_ID) {
        on_control(type_id, payload);
        frames_seen_ = true;
        return;
    }
    frames_seen_ = true;
    const OriginScope origin(Origin{id_, role_.load(std::memory_order_relaxed), payload.data()});
    const auto published = state_.bus.publish(type_id, payload);
    if (!published && published.error() == PublishError::Closed) {
        close_with_error(ErrorCode::ShuttingDown, "the bus is shut down");
    }
    // QueueFull (a Fail subscriber) and TooLarge (limit already enforced) are counted by
    // the bus; the frame was accepted from this client.
}

void Session::on_control(std::uint16_t type_id, std::span<const std::byte> payload) {
    switch (type_id) {
        case control::HELLO:
            return on_hello(payload);
        case control::SUBSCRIBE:
            return on_type_list(true, payload);
        case control::UNSUBSCRIBE:
            return on_type_list(false, payload);
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
            if (role_.load(std::memory_order_relaxed) == Role::Peer && error &&
                error->code == ErrorCode::ShuttingDown) {
                // A peer node that stops (or replaces this link) says so: not bad input.
                state_.mesh_log->info("peer '{}' ({}) closed the link: {}", name_, peer_, error->reason);
                return finish();
            }
            Counters::add(state_.counters.protocol_errors);
            state_.log->warn("{}: the client reported an error and is disconnected: {} {}", peer_,
                             error ? to_string(error->code) : std::string_view("(malformed ERROR frame)"),
                             error ? error->reason : std::string());
            return finish();
        }
        default:
            Counters::add(state_.counters.unknown_type);
            return fail(ErrorCode::UnknownType,
                        type_id >= control::SHM_FIRST && type_id <= control::SHM_LAST
                            ? fmt::format("control type {} (shared-memory setup) is not served by this host", type_id)
                            : fmt::format("unknown control type {}", type_id));
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
    subs_.clear();  // a legacy client whose HELLO came in a later read
    name_ = hello->name;
    role_.store(hello->role, std::memory_order_relaxed);
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
    std::shared_ptr<Session> replaced;
    {
        std::lock_guard lock(peer_record_->mutex);
        replaced = peer_record_->current.lock();
        peer_record_->current = shared_from_this();
        if (!outbound_) peer_record_->endpoint = peer_;
    }
    peer_record_->connected.store(true, std::memory_order_relaxed);
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
    for (const auto& message : state_.registry.messages()) subscribe_type(message.type_id);
    state_.log->info("{}: legacy client connected (link {})", peer_, id_);
}

void Session::subscribe_type(std::uint16_t type_id) {
    if (subs_.contains(type_id)) return;
    // `this` outlives the subscription: finish() and the destructor close it first, and
    // close() waits for callbacks in flight.
    // What a peer subscribes to is not this node's interest: declaring it to other peers
    // would relay between peers.
    const SubscribeOptions options{.counts_as_interest = role_.load(std::memory_order_relaxed) != Role::Peer};
    subs_.emplace(type_id, state_.bus.subscribe(
                               type_id, [this](const MessageView& view) { on_bus_message(view); }, options));
}

// ---------------------------------------------------------------------------------------
// Session: writing
// ---------------------------------------------------------------------------------------

void Session::on_bus_message(const MessageView& view) {
    const Origin origin = current_origin();
    if (origin.describes(view)) {
        if (origin.link_id == id_) return;  // never echo a client's own frames
        // A frame crosses at most one node-to-node link: a peer never relays to a peer.
        if (origin.role == Role::Peer && role_.load(std::memory_order_relaxed) == Role::Peer) return;
    }
    // The bus does not check sizes; the far side does and would close the whole link
    // over one bad frame. A local publisher's mistake costs only its own frame.
    const schema::MessageSchema* message = state_.registry.find(view.type_id);
    if (message == nullptr || message->size != view.payload.size()) [[unlikely]] {
        const log::ScopedFields log_fields{{"peer", peer_}};
        if (Counters::bump(state_.counters.unsendable) == 0)
            state_.log->warn("not sending type {} with a {}-byte payload to {}: its contracts size is {} "
                             "(warned once; see LinkStats::unsendable)",
                             view.type_id, view.payload.size(), peer_,
                             message ? std::to_string(message->size) : std::string("unknown"));
        return;
    }
    enqueue(view.type_id, view.payload);
}

void Session::drop_oldest_locked() noexcept {
    const codec::FrameHeader h = codec::detail::read_header(pending_.data() + pending_head_);
    pending_head_ += codec::frame_size(h.payload_length);
    --pending_frames_;
    Counters::add(state_.counters.dropped_frames);
}

void Session::enqueue(std::uint16_t type_id, std::span<const std::byte> payload) {
    const std::size_t size = codec::frame_size(payload.size());
    const std::size_t max_frames = state_.options.send_queue_frames;
    const std::size_t max_bytes = state_.options.send_queue_bytes;
    bool kick = false;
    bool slow = false;
    {
        std::lock_guard lock(send_mutex_);
        if (send_closed_) return;
        const auto full = [&] {
            return pending_frames_ + 1 > max_frames || (pending_.size() - pending_head_) + size > max_bytes;
        };
        if (full()) {
            if (state_.options.slow_consumer == SlowConsumerPolicy::DropOldest) {
                while (pending_frames_ > 0 && full()) drop_oldest_locked();
            } else {
                send_closed_ = true;
                slow = true;
            }
        }
        if (!slow) {
            if (pending_head_ == pending_.size()) {
                pending_.clear();
                pending_head_ = 0;
            }
            const std::size_t at = pending_.size();
            pending_.resize(at + size);
            codec::encode_header(type_id, static_cast<std::uint32_t>(payload.size()),
                                 std::span<std::byte, codec::HEADER_SIZE>(pending_.data() + at, codec::HEADER_SIZE));
            if (!payload.empty()) std::memcpy(pending_.data() + at + codec::HEADER_SIZE, payload.data(), payload.size());
            ++pending_frames_;
            kick = !write_scheduled_;
            write_scheduled_ = true;
        }
    }
    if (!slow && !kick) return;
    auto self = weak_from_this().lock();
    if (!self) return;
    if (slow) {
        asio::post(socket_.get_executor(), [self] { self->on_slow_consumer(); });
    } else if (on_own_strand()) {
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
    } else {
        asio::post(socket_.get_executor(), [self] {
            try {
                self->start_write();
            } catch (const std::exception& e) {
                self->state_.log->error("{}: write failed: {}", self->peer_, e.what());
                self->finish();
            }
        });
    }
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
    {
        std::lock_guard lock(send_mutex_);
        if (pending_head_ == pending_.size()) {
            write_scheduled_ = false;
            pending_.clear();
            pending_head_ = 0;
        } else {
            inflight_.swap(pending_);  // pending_ takes the old (empty) buffer and its capacity
            pending_.clear();
            inflight_frames_ = pending_frames_;
            pending_frames_ = 0;
            const std::size_t head = pending_head_;
            pending_head_ = 0;
            if (head != 0) inflight_.erase(inflight_.begin(), inflight_.begin() + static_cast<std::ptrdiff_t>(head));
        }
    }
    if (!inflight_.empty()) return true;
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
    finish();
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

void Session::on_slow_consumer() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (finished_) return;
        Counters::add(state_.counters.slow_consumers);
        state_.log->warn("{}: slow consumer disconnected: its send queue is full ({} frames / {} bytes)", peer_,
                         state_.options.send_queue_frames, state_.options.send_queue_bytes);
        // No ERROR frame: the socket's buffer is full, so it could not be delivered.
        finish();
    } catch (...) {
        finish();
    }
}

// ---------------------------------------------------------------------------------------
// Session: closing
// ---------------------------------------------------------------------------------------

void Session::fail(ErrorCode code, const std::string& reason) {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    if (closing_) return;
    state_.log->warn("{}: closing the connection: {}: {}", peer_, to_string(code), reason);
    close_with_error(code, reason);
}

void Session::close_with_error(ErrorCode code, const std::string& reason) {
    if (closing_) return;
    closing_ = true;
    handshake_timer_.cancel();
    interest_.close();
    subs_.clear();
    const auto payload = encode_error(code, reason);
    bool kick = false;
    {
        std::lock_guard lock(send_mutex_);
        // Frames still queued for a client we are throwing out are not worth sending.
        pending_.clear();
        pending_head_ = 0;
        pending_frames_ = 0;
        const std::size_t size = codec::frame_size(payload.size());
        pending_.resize(size);
        codec::encode_header(control::ERROR, static_cast<std::uint32_t>(payload.size()),
                             std::span<std::byte, codec::HEADER_SIZE>(pending_.data(), codec::HEADER_SIZE));
        std::memcpy(pending_.data() + codec::HEADER_SIZE, payload.data(), payload.size());
        pending_frames_ = 1;
        send_closed_ = true;
        kick = !write_scheduled_;
        write_scheduled_ = true;
    }
    close_after_flush_ = true;
    linger_timer_.expires_after(state_.options.close_linger);
    linger_timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
        if (ec != asio::error::operation_aborted) self->finish();
    });
    if (kick) start_write();
}

}  // namespace mycelium::link::detail
