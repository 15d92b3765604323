// libFuzzer target for the control-frame payloads a host or a client reads
// (mycelium/link_protocol.hpp; METRICS has its own target): HELLO, SUBSCRIBE and
// UNSUBSCRIBE, PING and PONG, ERROR, SHM_REQUEST, SHM_OFFER, SHM_REFUSE, SHM_READY and
// SHM_SWITCH. Besides "no crash", each accepted payload must encode back to the bytes it
// came from (the part the layout covers; reserved trailing bytes are ignored), and what
// the encoder makes must decode to the same value.
//
// Input layout: byte 0 selects the frame, the rest is the payload.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "mycelium/link_protocol.hpp"

namespace {

namespace link = mycelium::link;
using Bytes = std::span<const std::byte>;

void check(bool ok) {
    if (!ok) std::abort();
}

bool same(Bytes a, Bytes b) { return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin()); }

// ERROR and SHM_REFUSE share a layout: u16 code, then text cut to MAX_REASON_BYTES.
template <class Decoded, class Decode, class Encode>
void code_and_text(Bytes payload, Decode decode, Encode encode) {
    const auto decoded = decode(payload);
    check(static_cast<bool>(decoded) == (payload.size() >= 2));
    if (!decoded) return;
    const std::vector<std::byte> again = encode(*decoded);
    if (payload.size() - 2 <= link::control::MAX_REASON_BYTES) {
        check(same(again, payload));
    } else {
        // Cut before the limit, at a byte that does not continue a UTF-8 sequence (for
        // text that is not UTF-8 that may be far back): a prefix.
        check(again.size() >= 2 && again.size() <= 2 + link::control::MAX_REASON_BYTES);
        check(same(again, payload.first(again.size())));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    // An exact-size copy, so that reading past the payload is a heap overflow.
    const std::vector<std::byte> copy(reinterpret_cast<const std::byte*>(data) + 1,
                                      reinterpret_cast<const std::byte*>(data) + size);
    const Bytes payload(copy);

    switch (data[0] % 8) {
        case 0: {  // HELLO
            const auto hello = link::decode_hello(payload);
            if (!hello) return 0;
            (void)link::to_string(hello->role);
            const auto again = link::encode_hello(*hello);  // throws (a crash) for a name decode let through
            check(same(again, payload.first(4 + hello->name.size())));
            break;
        }
        case 1: {  // SUBSCRIBE, UNSUBSCRIBE
            const auto ids = link::decode_type_list(payload);
            check(static_cast<bool>(ids) == (payload.size() % 2 == 0));
            if (ids) check(same(link::encode_type_list(*ids), payload));
            break;
        }
        case 2: {  // PING, PONG
            const auto nonce = link::decode_nonce(payload);
            check(static_cast<bool>(nonce) == (payload.size() == 8));
            if (nonce) check(same(link::encode_nonce(*nonce), payload));
            break;
        }
        case 3:  // ERROR
            code_and_text<link::ErrorFrame>(
                payload, [](Bytes p) { return link::decode_error(p); },
                [](const link::ErrorFrame& e) {
                    (void)link::to_string(e.code);
                    return link::encode_error(e.code, e.reason);
                });
            break;
        case 4: {  // SHM_REQUEST
            const auto request = link::decode_shm_request(payload);
            check(static_cast<bool>(request) == (payload.size() >= 6));
            if (request) check(same(link::encode_shm_request(*request), payload.first(6)));
            break;
        }
        case 5: {  // SHM_OFFER
            const auto offer = link::decode_shm_offer(payload);
            check(static_cast<bool>(offer) == (payload.size() >= 20));
            if (!offer) return 0;
            auto expected = std::vector<std::byte>(payload.begin(), payload.begin() + 20);
            expected[3] = std::byte{0};  // reserved: not kept
            check(same(link::encode_shm_offer(*offer), expected));
            break;
        }
        case 6:  // SHM_REFUSE
            code_and_text<link::ShmRefuse>(
                payload, [](Bytes p) { return link::decode_shm_refuse(p); },
                [](const link::ShmRefuse& r) {
                    (void)link::to_string(r.reason);
                    return link::encode_shm_refuse(r.reason, r.text);
                });
            break;
        case 7:  // SHM_READY, SHM_SWITCH
            check(static_cast<bool>(link::decode_empty(payload)) == payload.empty());
            break;
    }
    return 0;
}
