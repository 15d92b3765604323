// ShmSetup in a build without shared memory (MYCELIUM_TRANSPORT_SHM=OFF): every request
// is refused, this side never asks, and any other setup frame is out of turn, since
// nothing was offered or asked for. The link stays on its socket.

#include "shm_setup.hpp"

#include <fmt/format.h>

namespace mycelium::link {

bool shared_memory_built() noexcept { return false; }

}  // namespace mycelium::link

namespace mycelium::link::detail {

void ShmSetup::keep_descriptors(std::vector<shm::UniqueFd>) {}  // closed: nothing uses them

void ShmSetup::request(std::uint32_t) {
    server_.mesh_log->info("{}: this build has no shared memory; the link stays on the socket", peer_);
}

void ShmSetup::on_request(std::span<const std::byte> payload) {
    if (!decode_shm_request(payload))
        return link_.protocol_violation(fmt::format("malformed SHM_REQUEST ({} bytes)", payload.size()));
    Counters::add(server_.counters.shm_refused);
    const std::string text = "this build has no shared memory (MYCELIUM_TRANSPORT_SHM=OFF)";
    server_.log->info("{}: shared memory refused ({}): {}", peer_, to_string(ShmRefusal::Disabled), text);
    link_.send_control(control::SHM_REFUSE, encode_shm_refuse(ShmRefusal::Disabled, text));
}

std::vector<std::byte> ShmSetup::take_offer(std::array<int, 4>&) { return {}; }

void ShmSetup::on_refuse(std::span<const std::byte>, const std::string&) {
    link_.protocol_violation("SHM_REFUSE without a pending shared-memory setup");
}

void ShmSetup::on_ready(std::span<const std::byte>) { link_.protocol_violation("SHM_READY without a SHM_OFFER"); }

void ShmSetup::on_offer(std::span<const std::byte>, const std::string&) {
    link_.protocol_violation("SHM_OFFER without a SHM_REQUEST");
}

void ShmSetup::on_switch(std::span<const std::byte>, const std::string&) {
    link_.protocol_violation("SHM_SWITCH without a SHM_READY");
}

}  // namespace mycelium::link::detail
