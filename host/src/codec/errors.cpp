// Names and descriptions of codec errors. The names are stable tokens (metrics labels,
// docs/error-codes.md); the descriptions carry the numbers an operator needs to tell a
// misconfigured limit from a peer speaking another schema.

#include <string>

#include "mycelium/codec.hpp"

namespace mycelium::codec {

std::string_view to_string(EncodeError error) noexcept {
    switch (error) {
        case EncodeError::InvalidType: return "invalid_type";
        case EncodeError::Oversize: return "oversize";
        case EncodeError::BufferTooSmall: return "buffer_too_small";
    }
    return "unknown_encode_error";
}

std::string_view to_string(DecodeError error) noexcept {
    switch (error) {
        case DecodeError::Oversize: return "oversize";
        case DecodeError::Truncated: return "truncated";
        case DecodeError::UnknownType: return "unknown_type";
        case DecodeError::SizeMismatch: return "size_mismatch";
    }
    return "unknown_decode_error";
}

std::string to_string(const DecodeFailure& f) {
    const std::string type = "type " + std::to_string(f.type_id);
    const std::string declares = " declares a " + std::to_string(f.declared_length) + "-byte payload";
    std::string text(to_string(f.error));
    text += ": ";
    switch (f.error) {
        case DecodeError::Oversize:
            text += type + declares + ", limit " + std::to_string(f.limit);
            break;
        case DecodeError::Truncated:
            if (f.received < HEADER_SIZE) {
                text += "stream ended after " + std::to_string(f.received) + " of " +
                        std::to_string(HEADER_SIZE) + " header bytes";
            } else {
                text += "stream ended after " + std::to_string(f.received - HEADER_SIZE) + " of " +
                        std::to_string(f.declared_length) + " payload bytes of " + type;
            }
            break;
        case DecodeError::UnknownType:
            text += f.type_id == RESERVED_TYPE_ID ? type + " is reserved" : type + " is not in the schema";
            text += " (" + std::to_string(f.declared_length) + "-byte payload)";
            break;
        case DecodeError::SizeMismatch:
            text += type + declares + ", its message is " + std::to_string(f.expected_size) + " bytes";
            break;
    }
    return text;
}

}  // namespace mycelium::codec
