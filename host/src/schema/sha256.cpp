#include <openssl/evp.h>

#include <stdexcept>

#include "mycelium/schema.hpp"

namespace mycelium::schema {

Digest sha256(std::string_view bytes) {
    Digest out{};
    unsigned int length = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), out.data(), &length, EVP_sha256(), nullptr) != 1 ||
        length != out.size()) {
        // Only an OpenSSL built without SHA-256 or out of memory gets here.
        throw std::runtime_error("SHA-256 failed in OpenSSL");
    }
    return out;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char DIGITS[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (std::uint8_t b : bytes) {
        out.push_back(DIGITS[b >> 4]);
        out.push_back(DIGITS[b & 0x0f]);
    }
    return out;
}

}  // namespace mycelium::schema
