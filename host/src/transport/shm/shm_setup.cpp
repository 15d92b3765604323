// Shared-memory setup (shm_setup.hpp). Everything the other side sends here is untrusted:
// a bad payload or a frame out of turn is a protocol violation; a well-formed offer this
// side cannot use is declined with SHM_REFUSE, and the link stays on the socket.

#include "shm_setup.hpp"

#include <asio/posix/stream_descriptor.hpp>

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <system_error>

#include <fmt/format.h>

#include "mycelium/codec.hpp"

namespace mycelium::link {

bool shared_memory_built() noexcept { return true; }

}  // namespace mycelium::link

namespace mycelium::link::detail {

void ShmSetup::keep_descriptors(std::vector<shm::UniqueFd> fds) {
    for (shm::UniqueFd& fd : fds)
        if (received_fds_.size() < shm::MAX_PASSED_FDS) received_fds_.push_back(std::move(fd));
}

void ShmSetup::request(std::uint32_t capacity) {
    if (!passes_descriptors_) return;
    state_ = State::Requested;
    link_.send_control(control::SHM_REQUEST, encode_shm_request(ShmRequest{control::SHM_VERSION, 0, capacity}));
}

std::size_t ShmSetup::capacity_for(std::uint32_t requested) const {
    // Every frame this link can carry must fit in the ring, twice over, so that a frame
    // never waits for the whole ring to drain: the largest message in the contracts, and
    // the largest control frame the host sends (an ERROR with its longest reason).
    std::size_t largest = 2 + control::MAX_REASON_BYTES;
    for (const auto& message : server_.registry.messages()) largest = std::max(largest, message.size);
    const std::size_t floor = std::bit_ceil(std::max<std::size_t>(4096, 2 * shm::ring_frame_size(largest)));
    const std::size_t ceiling = std::bit_ceil(std::clamp(server_.options.shm_ring_bytes, shm::MIN_RING_CAPACITY,
                                                         shm::MAX_RING_CAPACITY));
    std::size_t capacity = requested == 0 ? ceiling
                                          : std::bit_ceil(std::min<std::size_t>(requested, shm::MAX_RING_CAPACITY));
    capacity = std::min(capacity, ceiling);
    return std::min(std::max(capacity, floor), shm::MAX_RING_CAPACITY);
}

void ShmSetup::refuse(ShmRefusal reason, const std::string& text) {
    Counters::add(server_.counters.shm_refused);
    server_.log->info("{}: shared memory refused ({}): {}", peer_, to_string(reason), text);
    link_.send_control(control::SHM_REFUSE, encode_shm_refuse(reason, text));
}

void ShmSetup::on_request(std::span<const std::byte> payload) {
    const auto request = decode_shm_request(payload);
    if (!request) return link_.protocol_violation(fmt::format("malformed SHM_REQUEST ({} bytes)", payload.size()));
    if (state_ != State::None) return refuse(ShmRefusal::AlreadyActive, "shared memory is already set up");
    if (request->version != control::SHM_VERSION)
        return refuse(ShmRefusal::UnsupportedVersion,
                      fmt::format("shared-memory version {}, this host speaks {}", request->version,
                                  control::SHM_VERSION));
    if (!server_.options.shm_enabled) return refuse(ShmRefusal::Disabled, "shared memory is disabled on this node");
    if (!passes_descriptors_)
        return refuse(ShmRefusal::NotLocal, "shared memory needs a local socket that passes descriptors");
    const std::size_t capacity = capacity_for(request->capacity);
    auto rings = std::make_unique<ShmLink>();
    try {
        const auto& digest = server_.registry.digest();
        rings->in_ring = shm::MappedRing::create(capacity, digest, "mycelium-link-in");
        rings->out_ring = shm::MappedRing::create(capacity, digest, "mycelium-link-out");
        rings->peer_bell = shm::EventFd::create();
        rings->own_bell = shm::EventFd::create();
    } catch (const std::exception& e) {
        // Out of memory, a memory cgroup, out of descriptors: the socket still works.
        server_.warn_limited("cannot allocate rings", "{}: cannot allocate shared-memory rings of {} bytes: {}", peer_,
                             capacity, e.what());
        return refuse(ShmRefusal::NoMemory, fmt::format("cannot allocate the rings: {}", e.what()));
    }
    ShmOffer offer;
    offer.client_to_host = capacity;
    offer.host_to_client = capacity;
    const auto encoded = encode_shm_offer(offer);
    offer_frame_.resize(codec::frame_size(encoded.size()));
    codec::encode_header(control::SHM_OFFER, static_cast<std::uint32_t>(encoded.size()),
                         std::span<std::byte, codec::HEADER_SIZE>(offer_frame_.data(), codec::HEADER_SIZE));
    std::copy(encoded.begin(), encoded.end(), offer_frame_.begin() + codec::HEADER_SIZE);
    rings_ = std::move(rings);
    state_ = State::Offered;
    link_.offer_waiting();
}

std::vector<std::byte> ShmSetup::take_offer(std::array<int, 4>& fds) {
    if (offer_frame_.empty()) return {};
    // Order of docs/wire-protocol.md: ring client->host, ring host->client, the client's
    // doorbell, the host's doorbell.
    fds = {rings_->in_ring.fd(), rings_->out_ring.fd(), rings_->peer_bell.fd(), rings_->own_bell.fd()};
    return std::exchange(offer_frame_, {});
}

void ShmSetup::on_refuse(std::span<const std::byte> payload, const std::string& name) {
    const auto refusal = decode_shm_refuse(payload);
    const bool expected = state_ == State::Offered || (dialed_ && state_ == State::Requested);
    if (!expected || !refusal)
        return link_.protocol_violation(refusal ? "SHM_REFUSE without a pending shared-memory setup"
                                                : "malformed SHM_REFUSE");
    Counters::add(server_.counters.shm_refused);
    if (state_ == State::Requested) {
        // A dialed peer link stays on the socket.
        server_.mesh_log->info("peer '{}': shared memory refused ({}): {}; staying on the socket", name,
                               to_string(refusal->reason), refusal->text);
        received_fds_.clear();
    } else {
        server_.log->info("{}: the client declined the shared-memory offer ({}): {}", peer_,
                          to_string(refusal->reason), refusal->text);
        rings_.reset();  // our mappings and descriptors; the memory goes with the client's too
    }
    state_ = State::None;
}

void ShmSetup::start_reader() {
    ShmLink& rings = *rings_;
    // This side reads in_ring (its doorbell rung by the other side when it sleeps) and
    // writes out_ring (ringing the other side when that one sleeps). It never parks on a
    // doorbell for room: a full ring follows the slow-consumer policy (Block sleeps in
    // slices, see RingOutbox::wait_and_stage). The accepting side rings a client that
    // waits for room in in_ring (LinkClient does); a dialed peer's other side is a host,
    // which never waits, so no barrier is paid for it.
    shm::ConsumerOptions options;
    options.max_payload = server_.options.max_payload;
    // Types and sizes are checked per frame, as on the socket.
    options.wait_fd = rings.own_bell.fd();
    options.notify_fd = dialed_ ? -1 : rings.peer_bell.fd();
    options.spin = server_.options.shm_spin;
    const int bell = ::dup(rings.own_bell.fd());
    if (bell < 0) throw std::system_error(errno, std::system_category(), "cannot watch the shared-memory doorbell");
    rings.reader.emplace(rings.in_ring.region(), options, asio::posix::stream_descriptor(executor_, bell),
                         server_.ring_spinners);
}

void ShmSetup::on_ready(std::span<const std::byte> payload) {
    if (state_ != State::Offered || !decode_empty(payload))
        return link_.protocol_violation(state_ != State::Offered ? "SHM_READY without a SHM_OFFER"
                                                                 : "SHM_READY with a payload");
    start_reader();
    state_ = State::Active;
    Counters::add(server_.counters.shm_links);
    server_.log->info("{}: frames go through shared memory now ({}-byte rings, link {})", peer_,
                      rings_->in_ring.capacity(), id_);
    link_.switch_output(control::SHM_SWITCH);
    link_.start_reading_ring();
}

void ShmSetup::on_offer(std::span<const std::byte> payload, const std::string& name) {
    std::vector<shm::UniqueFd> fds = std::exchange(received_fds_, {});
    if (!dialed_ || state_ != State::Requested) return link_.protocol_violation("SHM_OFFER without a SHM_REQUEST");
    const auto decline = [&](const std::string& why) {
        Counters::add(server_.counters.shm_refused);
        server_.mesh_log->warn("peer '{}': declining its shared-memory offer: {}; staying on the socket", name, why);
        state_ = State::None;
        link_.send_control(control::SHM_REFUSE, encode_shm_refuse(ShmRefusal::BadOffer, why));
    };
    const auto offer = decode_shm_offer(payload);
    if (!offer) return decline("malformed SHM_OFFER");
    if (offer->version != control::SHM_VERSION) return decline("unsupported shared-memory version");
    if (offer->fd_count != control::SHM_OFFER_FDS || fds.size() != control::SHM_OFFER_FDS)
        return decline(fmt::format("SHM_OFFER came with {} descriptors, expected 4", fds.size()));
    if (!shm::valid_ring_capacity(offer->client_to_host) || !shm::valid_ring_capacity(offer->host_to_client))
        return decline("invalid ring capacity");
    auto rings = std::make_unique<ShmLink>();
    try {
        const auto& digest = server_.registry.digest();
        rings->out_ring = shm::MappedRing::attach(std::move(fds[0]), digest, offer->client_to_host);
        rings->in_ring = shm::MappedRing::attach(std::move(fds[1]), digest, offer->host_to_client);
        rings->own_bell = shm::EventFd::adopt(std::move(fds[2]));
        rings->peer_bell = shm::EventFd::adopt(std::move(fds[3]));
    } catch (const std::exception& e) {
        return decline(e.what());
    }
    rings_ = std::move(rings);
    start_reader();
    state_ = State::Readied;
    // SHM_READY is our last frame on the socket; the far host's frames move to the ring
    // at its SHM_SWITCH.
    link_.switch_output(control::SHM_READY);
}

void ShmSetup::on_switch(std::span<const std::byte> payload, const std::string& name) {
    if (!dialed_ || state_ != State::Readied || !decode_empty(payload))
        return link_.protocol_violation("SHM_SWITCH without a SHM_READY");
    state_ = State::Active;
    Counters::add(server_.counters.shm_links);
    server_.mesh_log->info("peer '{}': frames go through shared memory now ({}-byte rings, link {})", name,
                           rings_->in_ring.capacity(), id_);
    link_.start_reading_ring();
}

}  // namespace mycelium::link::detail
