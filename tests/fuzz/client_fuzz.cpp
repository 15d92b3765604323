// libFuzzer target for the client side of the link protocol that `tap` and `pub` use
// (LinkClient, host/src/transport/client.cpp): the input is everything a hostile host
// sends. The client connects over a real Unix socket to this process, which answers
// with the input's bytes (no descriptors: the offer's descriptors are the shm_offer
// target's), then runs one of the tools' conversations:
// - tap: HELLO, SUBSCRIBE, sync(), then receive_message() until nothing is left, each
//   frame handled as tap_command.cpp does (ERROR decoded, messages printed as JSON);
// - pub: frames sent, then sync();
// - shm: request_shm() (SHM_REFUSE decoded, an offer without descriptors declined),
//   then receive() until nothing is left.
// Every wait has a 0 ms timeout: the host's bytes are all there before the client reads.
// Checked: no crash, every frame returned has a payload within the protocol's limit,
// and a client that saw a malformed stream keeps saying so.
//
// Input layout: byte 0 = conversation (0 tap, 1 pub, 2 shm; bit 2: the host closes its
// side after its bytes), then the host's bytes.

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mycelium/json_message.hpp"
#include "mycelium/link_client.hpp"
#include "mycelium/schema.hpp"
#include "fuzz_host.hpp"

namespace {

namespace link = mycelium::link;
using mycelium::fuzz::check;
using mycelium::fuzz::Host;

constexpr const char* CONTRACTS = R"(messages:
  Tick:
    tlv_type: 1000
    fields:
      symbol: {type: String, max_length: 8}
      price: f64
      ids: {type: Vec<u16>, max_length: 3}
  Pair:
    tlv_type: 1001
    fields:
      a: U256
      b: "[u8; 4]"
)";

Host& host() {
    static Host h(CONTRACTS);
    return h;
}

constexpr auto NOW = std::chrono::milliseconds(0);

void tap_frame(const link::Frame& frame) {
    if (frame.type_id == link::control::ERROR) {
        (void)link::decode_error(frame.payload);
        return;
    }
    const auto* m = host().registry.find(frame.type_id);
    if (m == nullptr) return;
    // The client checks no sizes (the host did): tap prints what came, so to_json must
    // survive a payload of the wrong size.
    if (frame.payload.size() == m->size) (void)mycelium::json_message::to_json(*m, frame.payload);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)host();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t mode = data[0];
    Host& h = host();
    auto connection = h.connect();  // not a structured binding: the lambdas below capture it
    link::LinkClient& client = connection.first;
    const int served = connection.second;
    // The socket buffer holds far more than libFuzzer's largest input (4 KiB by default).
    const std::size_t length = std::min<std::size_t>(size - 1, 64 * 1024);
    if (length > 0) check(::send(served, data + 1, length, MSG_NOSIGNAL) == static_cast<ssize_t>(length));
    if (mode & 4u) ::shutdown(served, SHUT_WR);

    const auto drain = [&](bool messages_only) {
        for (int i = 0; i < 1000; ++i) {
            auto frame = messages_only ? client.receive_message(NOW) : client.receive(NOW);
            if (!frame) {
                if (frame.error() == link::ReceiveError::Malformed) {
                    // Poisoned: it says so again.
                    auto again = client.receive(NOW);
                    check(!again && again.error() == link::ReceiveError::Malformed);
                }
                return;
            }
            check(frame->payload.size() <= mycelium::schema::DEFAULT_MAX_PAYLOAD);
            tap_frame(*frame);
        }
    };
    switch (mode % 3) {
        case 0: {  // tap
            const std::uint16_t ids[] = {1000, 1001};
            if (client.hello(link::Role::Client, "tap") && client.subscribe(ids)) (void)client.sync(NOW);
            drain(true);
            break;
        }
        case 1: {  // pub
            const std::vector<std::byte> payload(host().registry.find(1001)->size);
            for (int i = 0; i < 3; ++i) (void)client.send(1001, payload);
            (void)client.sync(NOW);
            drain(false);
            break;
        }
        case 2: {  // shm
            if (client.hello(link::Role::Client, "shm")) {
                const auto setup = client.request_shm(0, NOW);
                if (!setup && setup.error() == link::ShmSetupError::Refused) check(client.shm_refusal().has_value());
                check(!client.shm_active());  // no descriptors came
            }
            drain(false);
            break;
        }
    }
    client.close();
    ::close(served);
    return 0;
}
