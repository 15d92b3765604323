#include "frame_filter.hpp"

#include <fmt/format.h>

namespace mycelium::link::detail {

std::optional<FrameFilter::Refusal> FrameFilter::check_slowly(std::uint16_t type_id,
                                                              std::span<const std::byte> payload) {
    const schema::MessageSchema* message = registry_.find(type_id);
    if (message == nullptr)
        return Refusal{ErrorCode::UnknownType,
                       fmt::format("type {} is not in the contracts ({} bytes dropped)", type_id, payload.size())};
    if (message->size != payload.size())
        return Refusal{ErrorCode::SizeMismatch, fmt::format("{} (type {}) of {} bytes, expected {}; dropped",
                                                            message->name, type_id, payload.size(), message->size)};
    const schema::MessageSchema* to_validate = validate_ && !message->plain ? message : nullptr;
    if (to_validate != nullptr) {
        // Not remembered as passed: the next frame of this type is checked as this one.
        if (auto refusal = check_payload(*to_validate, payload)) return refusal;
    }
    passed_type_ = type_id;
    passed_size_ = payload.size();
    passed_to_validate_ = to_validate;
    return std::nullopt;
}

std::optional<FrameFilter::Refusal> FrameFilter::check_payload(const schema::MessageSchema& message,
                                                               std::span<const std::byte> payload) const {
    const auto valid = registry_.validate(message, payload);
    if (valid) [[likely]] return std::nullopt;
    // The failure's text names the message, the field and the rule; it never holds a
    // sensitive message's values (schema.hpp), so it may go into the log and the ERROR.
    return Refusal{ErrorCode::InvalidPayload,
                   fmt::format("{} (type {}); dropped", valid.error().text(), message.type_id)};
}

std::optional<std::uint64_t> FrameFilter::count(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::UnknownType:
            Counters::add(counters_.unknown_type);
            unknown_types_.fetch_add(1, std::memory_order_relaxed);
            return unknown_type_log_.admit();
        case ErrorCode::InvalidPayload:
            Counters::add(counters_.invalid_payload);
            invalid_payloads_.fetch_add(1, std::memory_order_relaxed);
            return invalid_payload_log_.admit();
        default:  // SizeMismatch
            Counters::add(counters_.size_mismatch);
            size_mismatches_.fetch_add(1, std::memory_order_relaxed);
            return size_mismatch_log_.admit();
    }
}

FrameFilter::Refusal FrameFilter::broken_stream(const codec::DecodeFailure& failure) {
    ErrorCode code = ErrorCode::ProtocolViolation;
    switch (failure.error) {
        case codec::DecodeError::Oversize:
            Counters::add(counters_.oversize);
            code = ErrorCode::Oversize;
            break;
        case codec::DecodeError::UnknownType:
            Counters::add(counters_.unknown_type);
            code = ErrorCode::UnknownType;
            break;
        case codec::DecodeError::SizeMismatch:
            Counters::add(counters_.size_mismatch);
            code = ErrorCode::SizeMismatch;
            break;
        case codec::DecodeError::Truncated:  // only from finish()
            Counters::add(counters_.truncated);
            break;
    }
    // to_string(failure) reads "oversize: type ..."; the code already names the kind.
    std::string reason = codec::to_string(failure);
    if (const auto colon = reason.find(": "); colon != std::string::npos) reason.erase(0, colon + 2);
    return Refusal{code, std::move(reason)};
}

}  // namespace mycelium::link::detail
