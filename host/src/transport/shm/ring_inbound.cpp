// Reading a connection's incoming shared-memory ring into the bus. Rules that govern
// this file:
// - Every turn runs on the connection's strand and has its own try/catch: a failure ends
//   this connection only.
// - A frame in the ring is untrusted as a frame on the socket is: the connection checks
//   it (Link::acceptable) before anything is published.

#include "ring_inbound.hpp"

#include <asio/post.hpp>

#include <array>
#include <utility>

#include "mycelium/log.hpp"

namespace mycelium::link::detail {

namespace {

// Ring frames handled per strand turn before the reader yields to other handlers.
constexpr std::size_t BATCH = 256;
// Application frames read from a ring are published on the bus in runs of up to this many.
constexpr std::size_t SHM_RUN = 64;

}  // namespace

RingInbound::RingInbound(Link& link, Corkable& corkable, ServerState& state, ShmSetup& shm, LinkTraffic& traffic,
                         asio::any_io_executor strand, const std::string& peer, std::uint64_t id)
    : link_(link),
      corkable_(corkable),
      state_(state),
      shm_(shm),
      traffic_(traffic),
      strand_(std::move(strand)),
      peer_(peer),
      id_(id) {}

void RingInbound::start() { post_turn(); }

void RingInbound::post_turn() {
    asio::post(strand_, [this, alive = link_.keep_alive()] { drain(); });
}

void RingInbound::drain() {
    const log::ScopedFields log_fields{{"peer", peer_}};  // JSON log lines name the peer
    try {
        if (!shm_.active()) return;
        RingReader& reader = *shm_.rings()->reader;
        if (link_.closing() || !link_.keep_reading(true)) return reader.stop_spinning();
        reader.begin_turn();
        for (RingReader::Next next = RingReader::Next::Again; next != RingReader::Next::Park;) {
            std::size_t visited = 0;
            if (!read(BATCH, visited) || link_.closing()) return;
            if (!link_.keep_reading(true)) return reader.stop_spinning();
            next = reader.after_batch(visited, BATCH);
            if (next == RingReader::Next::Yield) return post_turn();
        }
        park(reader);
    } catch (const std::exception& e) {
        state_.error_limited("internal error in the ring reader", "{}: closing after an internal error in the ring reader: {}",
                             peer_, e.what());
        link_.finish();
    }
}

void RingInbound::park(RingReader& reader) {
    const bool parked = reader.park([this, alive = link_.keep_alive()](const asio::error_code& ec) {
        if (ec == asio::error::operation_aborted || link_.closing()) return;
        shm_.rings()->reader->woke();
        if (ec) {
            state_.warn_limited("waiting on the doorbell", "{}: waiting on the shared-memory doorbell: {}", peer_,
                                ec.message());
            return link_.finish();
        }
        drain();
    });
    // Not parked: a frame came (or the client closed its side) while it looked.
    if (!parked) post_turn();
}

void RingInbound::drain_now() {
    for (;;) {
        std::size_t visited = 0;
        if (!read(BATCH, visited) || link_.closing() || visited < BATCH) return;
    }
}

bool RingInbound::read(std::size_t max, std::size_t& visited) {
    CorkScope cork(corkable_, state_);
    reading_ = true;
    // Application frames are published in runs (one bus pass, one lock and one ring
    // publish per subscriber for the run); a control frame, a wrap (the run's payloads
    // must be in address order: see Origin) or a full run publishes what came before.
    std::array<MessageView, SHM_RUN> run;
    std::size_t in_run = 0;
    const auto publish_run = [&](bool more) {
        if (in_run == 0) return;
        cork.set_more(more);
        link_.publish_from_link(std::span<const MessageView>(run.data(), std::exchange(in_run, 0)));
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
                return link_.on_frame(frame.type_id, frame.payload);
            }
            if (!link_.acceptable(frame.type_id, frame.payload)) {
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
                state_.error_limited("ring frames not published",
                                     "{}: frames read from the ring were not published (out of memory?)",
                                     peer_);  // never throws (limited_log.hpp)
            }
            cork.end();
        });
    reading_ = false;
    if (!read) {
        if (!link_.closing()) on_failure(*consumer.failure());
        return false;
    }
    visited = *read;
    if (visited > 0) {
        traffic_.received_frames(visited);
        Counters::add(state_.counters.shm_frames_received, visited);
    }
    return true;
}

void RingInbound::on_failure(const shm::RingFailure& failure) {
    // Bad frames are bad input as on the socket; a broken ring structure is corruption.
    switch (failure.error) {
        case shm::RingError::Oversize:
            Counters::add(state_.counters.oversize);
            return link_.fail(ErrorCode::Oversize, "in the shared-memory ring: " + shm::to_string(failure));
        case shm::RingError::UnknownType:
            Counters::add(state_.counters.unknown_type);
            return link_.fail(ErrorCode::UnknownType, "in the shared-memory ring: " + shm::to_string(failure));
        case shm::RingError::SizeMismatch:
            Counters::add(state_.counters.size_mismatch);
            return link_.fail(ErrorCode::SizeMismatch, "in the shared-memory ring: " + shm::to_string(failure));
        default:
            break;
    }
    Counters::add(state_.counters.shm_corrupt);
    state_.error_limited("client's ring corrupt", "{}: the client's shared-memory ring is corrupt, closing link {}: {}",
                         peer_, id_, shm::to_string(failure));
    link_.close_with_error(ErrorCode::ShmCorrupt, "shared-memory ring corrupt: " + shm::to_string(failure));
}

}  // namespace mycelium::link::detail
