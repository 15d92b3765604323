// Prints, as JSON, the bytes of one value of each message of mycelium_syntax.yaml, the
// fixture with Mycelium's own constructs: U256, [u8; N], Vec<[u8; N]>, arrays of arrays,
// default capacities and padding. tests/python/host/test_codegen_mycelium.py builds the
// same values with the generated Python module; the bytes must agree.

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "mycelium_syntax.hpp"

namespace {

template <class T>
std::string hex_of(const T& message) {
    static constexpr char DIGITS[] = "0123456789abcdef";
    unsigned char bytes[sizeof(T)];
    std::memcpy(bytes, &message, sizeof(T));
    std::string out;
    for (unsigned char b : bytes) {
        out.push_back(DIGITS[b >> 4]);
        out.push_back(DIGITS[b & 15]);
    }
    return out;
}

/// N bytes counting up from `first`: easy to tell apart in a failing diff.
template <std::size_t N>
std::array<std::uint8_t, N> counting(std::uint8_t first) {
    std::array<std::uint8_t, N> out{};
    for (std::size_t i = 0; i < N; ++i) out[i] = static_cast<std::uint8_t>(first + i);
    return out;
}

/// A U256 holding `value`, big-endian as Mycelium stores it.
mycelium::U256 u256(std::uint64_t value) {
    mycelium::U256 out{};
    for (std::size_t i = 0; i < 8; ++i) out[31 - i] = static_cast<std::uint8_t>(value >> (8 * i));
    return out;
}

}  // namespace

int main() {
    using namespace mycelium::messages;

    TokenInfo token{};
    token.address = counting<20>(1);
    token.ticker.assign("WETH");
    token.precision = 18;
    token.network = 1;

    PoolSnapshot pool{};
    pool.pool = counting<20>(0xa0);
    pool.venue = 7;
    pool.reserve_a = u256(1000000000000000000ULL);
    pool.reserve_b = counting<32>(0xc0);  // every byte set: the top bytes count too
    pool.tick = -887272;
    pool.block = 19000000;

    RouteSignal route{};
    route.id = 42;
    route.hops.push_back(counting<20>(0x10));
    route.hops.push_back(counting<20>(0x30));
    route.hops.push_back(counting<20>(0x50));
    route.profit = 0.125;
    route.gas = u256(21000);
    route.deadline = 19000100;

    MerkleProof proof{};
    proof.root = counting<32>(0x80);
    for (std::size_t i = 0; i < proof.siblings.size(); ++i)
        proof.siblings[i] = counting<32>(static_cast<std::uint8_t>(i * 32));
    proof.memo.assign("pr\xc3\xbc" "f");  // "prüf"
    proof.flags = {1, 0, 1};
    proof.digests.push_back(counting<32>(0x40));
    proof.leaf_index = 5;

    PaddedQuote quote{};
    quote.flag = 1;
    quote.price = -3.5;
    quote.qty = 4000000000U;
    quote.side = 2;

    std::printf("{\"digest\": \"%.*s\", \"TokenInfo\": \"%s\", \"PoolSnapshot\": \"%s\", \"RouteSignal\": \"%s\", "
                "\"MerkleProof\": \"%s\", \"PaddedQuote\": \"%s\"}\n",
                static_cast<int>(SCHEMA_DIGEST_HEX.size()), SCHEMA_DIGEST_HEX.data(), hex_of(token).c_str(),
                hex_of(pool).c_str(), hex_of(route).c_str(), hex_of(proof).c_str(), hex_of(quote).c_str());
    return 0;
}
