#pragma once
// Internal to host/src/transport: setting up shared memory over a link whose pipe passes
// descriptors (docs/wire-protocol.md, "Shared-memory setup"): SHM_REQUEST, SHM_OFFER
// with four descriptors or SHM_REFUSE, SHM_READY, SHM_SWITCH. The socket stays open for
// liveness and a final ERROR.

#include <asio/any_io_executor.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../server_state.hpp"
#include "shm_link.hpp"
#include "mycelium/link_protocol.hpp"

namespace mycelium::link::detail {

/// One connection's shared-memory state machine. On an accepted connection the host
/// makes the rings and offers them; on a link it dialed to a peer it asks for them.
///
/// Thread safety: none; the connection's strand.
class ShmSetup {
public:
    /// What the setup needs from its connection.
    class Link {
    public:
        /// Queues a control frame on the socket, in order.
        virtual void send_control(std::uint16_t type_id, std::span<const std::byte> payload) = 0;
        /// The other side broke the protocol: counted, ERROR protocol_violation, closed.
        virtual void protocol_violation(const std::string& reason) = 0;
        /// An offer waits (take_offer): have the socket writer send it in its turn.
        virtual void offer_waiting() = 0;
        /// `last` is the last frame on the socket; everything after it goes into the ring.
        virtual void switch_output(std::uint16_t last) = 0;
        /// The rings are in use: start reading the incoming one.
        virtual void start_reading_ring() = 0;

    protected:
        ~Link() = default;
    };

    enum class State : std::uint8_t {
        None,       // the socket only
        Requested,  // a dialed link: SHM_REQUEST sent
        Offered,    // an accepted one: SHM_OFFER sent
        Readied,    // a dialed link: SHM_READY sent, waiting for SHM_SWITCH
        Active,     // frames go through the rings
    };

    /// `dialed`: a link this node dialed to a peer. `executor`: the strand the doorbell is
    /// watched on. `peer` names the other side in log lines.
    ShmSetup(ServerState& state, Link& link, asio::any_io_executor executor, std::string peer, std::uint64_t id,
             bool dialed, bool passes_descriptors)
        : server_(state),
          link_(link),
          executor_(std::move(executor)),
          peer_(std::move(peer)),
          id_(id),
          dialed_(dialed),
          passes_descriptors_(passes_descriptors) {}

    State state() const noexcept { return state_; }
    bool active() const noexcept { return state_ == State::Active; }
    /// Whether reads must keep descriptors (recvmsg): a SHM_OFFER may come.
    bool expects_descriptors() const noexcept { return state_ == State::Requested; }
    /// Keeps descriptors read with the socket's bytes (at most shm::MAX_PASSED_FDS).
    void keep_descriptors(std::vector<shm::UniqueFd> fds);
    /// The bytes that came with descriptors were cut short: the offer is declined.
    void drop_descriptors() noexcept { received_fds_.clear(); }
    /// The rings, from the offer on; null before.
    ShmLink* rings() noexcept { return rings_.get(); }

    /// A dialed link: asks for rings of `capacity` bytes per direction (0: the far
    /// node's default).
    void request(std::uint32_t capacity);
    /// An accepted connection that said HELLO asks for rings.
    void on_request(std::span<const std::byte> payload);
    /// The SHM_OFFER and its descriptors (ring in, ring out, the other side's doorbell,
    /// ours) to send now, in socket order; an empty frame when none waits.
    std::vector<std::byte> take_offer(std::array<int, 4>& fds);
    void on_refuse(std::span<const std::byte> payload, const std::string& name);
    void on_ready(std::span<const std::byte> payload);
    void on_offer(std::span<const std::byte> payload, const std::string& name);
    void on_switch(std::span<const std::byte> payload, const std::string& name);

private:
    /// The ring size for a request of `requested` bytes: within the node's bounds, and
    /// large enough that every frame this link can carry fits twice.
    std::size_t capacity_for(std::uint32_t requested) const;
    void refuse(ShmRefusal reason, const std::string& text);
    /// Makes the reader of the incoming ring; throws std::system_error.
    void start_reader();

    ServerState& server_;
    Link& link_;
    asio::any_io_executor executor_;
    const std::string peer_;
    const std::uint64_t id_;
    const bool dialed_;
    const bool passes_descriptors_;
    State state_ = State::None;
    std::unique_ptr<ShmLink> rings_;
    std::vector<std::byte> offer_frame_;       // the SHM_OFFER waiting for take_offer()
    std::vector<shm::UniqueFd> received_fds_;  // descriptors read with the socket's bytes
};

}  // namespace mycelium::link::detail
