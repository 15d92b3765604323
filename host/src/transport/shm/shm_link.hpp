#pragma once
// Internal to host/src/transport: the shared memory of one connection.

#include <optional>

#include "ring_reader.hpp"
#include "mycelium/shm_os.hpp"
#include "mycelium/shm_ring.hpp"

namespace mycelium::link::detail {

/// The shared-memory side of one connection (docs/wire-protocol.md, "Shared-memory
/// setup"), from this side's point of view: on an accepted connection the host made the
/// rings; on a dialed peer link this side received them in SHM_OFFER. Owned by the
/// Session and freed with it (unmapped, descriptors closed): the memory goes with the
/// last fd. out_ring's writer is the Outbox's RingOutbox.
struct ShmLink {
    shm::MappedRing in_ring;     // this side consumes
    shm::MappedRing out_ring;    // this side produces
    shm::EventFd own_bell;       // rung by the other side: data in in_ring
    shm::EventFd peer_bell;      // rung by this side: data in out_ring (room in in_ring)
    std::optional<RingReader> reader;  // of in_ring, from the switch on; strand only
};

}  // namespace mycelium::link::detail
