#pragma once
// Internal to host/src/transport: which application frames a connection passes to the
// bus, and what a bad one costs: that frame, not the connection.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "server_state.hpp"
#include "mycelium/codec.hpp"
#include "mycelium/link_protocol.hpp"
#include "mycelium/log_limiter.hpp"
#include "mycelium/schema.hpp"

namespace mycelium::link::detail {

/// Passes the contracts' types at their size and, unless the link is trusted, with a
/// payload Registry::validate accepts. A refused frame is counted (for the server and for
/// this connection, which scrapes read) and its log line is rate-limited per kind.
///
/// Thread safety: the connection's strand, but for the counts (any thread).
class FrameFilter {
public:
    /// Why a frame was dropped.
    struct Refusal {
        ErrorCode code;      // UnknownType, SizeMismatch or InvalidPayload (ProtocolViolation, Oversize: broken_stream)
        std::string reason;  // names the type, and its size and the expected one, or the rule it broke
    };

    /// `validate`: whether payloads are checked against the contracts (false: a trusted link).
    FrameFilter(const schema::Registry& registry, Counters& counters, std::chrono::milliseconds log_interval,
                bool validate) noexcept
        : registry_(registry),
          counters_(counters),
          validate_(validate),
          unknown_type_log_(log_interval),
          size_mismatch_log_(log_interval),
          invalid_payload_log_(log_interval) {}

    /// The frame is one of the contracts' types at its size, with a valid payload unless
    /// the link is trusted; nullopt when it passes.
    std::optional<Refusal> check(std::uint16_t type_id, std::span<const std::byte> payload) {
        // A stream of one type pays the schema look-up once; a plain type (no string, no
        // vector, no rule) or a trusted link reads no payload byte.
        if (type_id == passed_type_ && payload.size() == passed_size_) [[likely]] {
            if (passed_to_validate_ == nullptr) return std::nullopt;
            return check_payload(*passed_to_validate_, payload);
        }
        return check_slowly(type_id, payload);
    }
    /// Whether payloads are checked from now on (a connection that turns out to be a peer
    /// takes the peers' setting).
    void set_validate(bool validate) noexcept {
        validate_ = validate;
        passed_type_ = 0;  // the next frame looks its type up again
    }
    bool validates() const noexcept { return validate_; }
    /// Counts a frame that breaks the stream (the decoder's failure; the connection
    /// closes) and says why, in the words of its ERROR.
    Refusal broken_stream(const codec::DecodeFailure& failure);
    /// Counts a dropped frame of `code` (UnknownType, SizeMismatch or InvalidPayload).
    /// Returns whether to log it: the lines held back since the last one, or nullopt to
    /// hold this one back.
    std::optional<std::uint64_t> count(ErrorCode code) noexcept;
    /// Whether to log that the far side dropped one of our frames (the unknown-type line's
    /// limiter: both mean two contracts versions disagree).
    std::optional<std::uint64_t> admit_far_side_drop() noexcept { return unknown_type_log_.admit(); }

    std::uint64_t unknown_types() const noexcept { return unknown_types_.load(std::memory_order_relaxed); }
    std::uint64_t size_mismatches() const noexcept { return size_mismatches_.load(std::memory_order_relaxed); }
    std::uint64_t invalid_payloads() const noexcept { return invalid_payloads_.load(std::memory_order_relaxed); }

private:
    std::optional<Refusal> check_slowly(std::uint16_t type_id, std::span<const std::byte> payload);
    std::optional<Refusal> check_payload(const schema::MessageSchema& message, std::span<const std::byte> payload) const;

    const schema::Registry& registry_;
    Counters& counters_;
    bool validate_;
    std::uint16_t passed_type_ = 0;  // the last frame that passed (none yet: 0 is no type)
    std::size_t passed_size_ = 0;
    // That frame's schema when its payloads are validated; nullptr for a plain type or a
    // trusted link.
    const schema::MessageSchema* passed_to_validate_ = nullptr;
    std::atomic<std::uint64_t> unknown_types_{0};
    std::atomic<std::uint64_t> size_mismatches_{0};
    std::atomic<std::uint64_t> invalid_payloads_{0};
    log::LogLimiter unknown_type_log_;
    log::LogLimiter size_mismatch_log_;
    log::LogLimiter invalid_payload_log_;
};

}  // namespace mycelium::link::detail
