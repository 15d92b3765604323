// Prints, as JSON, the bytes of one value of each generated message. The same values
// are built in Python by tests/python/host/test_codegen.py; the bytes must agree.

#include <cstdio>
#include <cstring>
#include <string>

#include "all_types.hpp"

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

}  // namespace

int main() {
    using namespace mycelium::messages;

    TextMessage text{};
    text.sender.assign("alice");
    text.content.assign("h\xc3\xa9llo w\xc3\xb6rld");  // "héllo wörld"
    text.timestamp = 1700000000123456789ULL;

    CounterUpdate counter{};
    counter.counter_id = 7;
    counter.value = 0xFFFFFFFFFFFFFFFFULL;

    Everything every{};
    every.a_u8 = 255;
    every.a_u16 = 65535;
    every.a_u32 = 4000000000U;
    every.a_u64 = (1ULL << 63) + 5;
    every.a_i8 = -128;
    every.a_i16 = -300;
    every.a_i32 = -70000;
    every.a_i64 = -(1LL << 40);
    every.a_f32 = 1.5F;
    every.a_f64 = -2.25;
    every.a_bool = true;
    every.name.assign("h\xc3\xa9y");  // "héy": 4 bytes of a 5-byte capacity
    every.raw = {1, 2, 3};
    every.floats = {0.5F, -1.0F, 3.25F};
    every.ids = {10, 20};
    every.samples = {3.5};
    every.flag = true;

    std::printf("{\"digest\": \"%.*s\", \"TextMessage\": \"%s\", \"CounterUpdate\": \"%s\", \"Everything\": \"%s\"}\n",
                static_cast<int>(SCHEMA_DIGEST_HEX.size()), SCHEMA_DIGEST_HEX.data(), hex_of(text).c_str(),
                hex_of(counter).c_str(), hex_of(every).c_str());
    return 0;
}
