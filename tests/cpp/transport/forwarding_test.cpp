// The forwarding rules (host/src/transport/forwarding.hpp): no echo, no peer-to-peer relay,
// only frames of their type's size, and the rest of a run in the longest pieces.

#include <doctest/doctest.h>

#include <array>
#include <string>
#include <vector>

#include "forwarding.hpp"

using namespace mycelium;
using namespace mycelium::link;
using namespace mycelium::link::detail;

namespace {

struct Outcome {
    std::vector<std::size_t> pieces;  // sizes of the pieces sent, in order
    std::string skipped;              // 'e' echo, 'u' unsendable, in order
};

Outcome offer(std::span<const MessageView> run, const Origin& origin, ForwardingLink link,
              std::optional<std::size_t> size) {
    Outcome out;
    forward_run(
        run, origin, link, size, [&](std::span<const MessageView> piece) { out.pieces.push_back(piece.size()); },
        [&](const MessageView&, Skipped why) { out.skipped += why == Skipped::Echo ? 'e' : 'u'; });
    return out;
}

}  // namespace

TEST_SUITE("transport.protocol") {
    TEST_CASE("a run is forwarded whole unless it came from this link or from a peer to a peer") {
        std::array<std::byte, 64> buffer{};
        const std::array<MessageView, 3> run{MessageView{1000, std::span(buffer).subspan(0, 16)},
                                             MessageView{1000, std::span(buffer).subspan(16, 16)},
                                             MessageView{1000, std::span(buffer).subspan(32, 16)}};
        const Origin local{};
        const Origin from_client{7, Role::Client, run[0].payload.data(), run[2].payload.data()};
        const Origin from_peer{8, Role::Peer, run[0].payload.data(), run[2].payload.data()};
        CHECK(offer(run, local, {7, Role::Client}, 16).pieces == std::vector<std::size_t>{3});
        CHECK(offer(run, from_client, {9, Role::Client}, 16).pieces == std::vector<std::size_t>{3});
        const Outcome echo = offer(run, from_client, {7, Role::Client}, 16);
        CHECK(echo.pieces.empty());
        CHECK(echo.skipped == "eee");
        CHECK(offer(run, from_peer, {9, Role::Client}, 16).pieces == std::vector<std::size_t>{3});
        CHECK(offer(run, from_peer, {9, Role::Peer}, 16).skipped == "eee");
    }

    TEST_CASE("a nested publish under a link's origin is not an echo, and bad sizes cost only their frame") {
        std::array<std::byte, 64> buffer{};
        std::array<std::byte, 16> reply{};
        const std::array<MessageView, 4> run{MessageView{1000, std::span(buffer).subspan(0, 16)},
                                             MessageView{1000, std::span(buffer).subspan(16, 15)},
                                             MessageView{1000, std::span(buffer).subspan(32, 16)},
                                             MessageView{1000, std::span(buffer).subspan(48, 16)}};
        const Outcome sizes = offer(run, Origin{}, {1, Role::Client}, 16);
        CHECK(sizes.pieces == std::vector<std::size_t>{1, 2});
        CHECK(sizes.skipped == "u");
        const Outcome unknown = offer(run, Origin{}, {1, Role::Client}, std::nullopt);
        CHECK(unknown.pieces.empty());
        CHECK(unknown.skipped == "uuuu");
        // A reply published from inside the link's callback: another buffer, so it goes back.
        const std::array<MessageView, 1> nested{MessageView{1000, reply}};
        const Origin origin{1, Role::Client, run[0].payload.data(), run[0].payload.data()};
        CHECK(offer(nested, origin, {1, Role::Client}, 16).pieces == std::vector<std::size_t>{1});
    }
}
