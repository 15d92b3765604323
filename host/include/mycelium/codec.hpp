#pragma once
/// The TLV frame codec of the wire protocol (docs/wire-protocol.md):
///
///     frame = u16 LE type id | u32 LE payload length | payload
///
/// The 6-byte header is followed by `payload length` bytes. Type ids 1-999 are the
/// runtime's control frames (variable size, only the payload limit applies); 1000-65535
/// are application frames (with a type table, the payload must be exactly the message's
/// size). Type id 0 is reserved and never valid: a stream of zero bytes is garbage, not a
/// frame.
///
/// Writing: encode_header(), append_frame(), write_frame(). Reading: FrameDecoder, fed
/// bytes in any chunking by a socket reader. Neither needs the GIL.

#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "mycelium/result.hpp"
#include "mycelium/schema.hpp"

#include "mycelium/unaligned.hpp"

namespace mycelium::codec {

/// Bytes of a frame header: u16 type id, u32 payload length.
inline constexpr std::size_t HEADER_SIZE = 6;
/// Reserved type id; a frame carrying it is rejected as DecodeError::UnknownType.
inline constexpr std::uint16_t RESERVED_TYPE_ID = 0;

/// A decoded frame header.
struct FrameHeader {
    std::uint16_t type_id = 0;
    std::uint32_t payload_length = 0;

    friend constexpr bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

namespace detail {

constexpr FrameHeader read_header(const std::byte* p) noexcept {
    return FrameHeader{load_le16(p), load_le32(p + 2)};
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Writing frames
// ---------------------------------------------------------------------------------------

/// Bytes on the wire of a frame with a `payload_length`-byte payload.
constexpr std::size_t frame_size(std::size_t payload_length) noexcept {
    return HEADER_SIZE + payload_length;
}

/// Writes the 6-byte header of a frame into `out`, little-endian. Checks nothing: the
/// caller vouches for the type id and the length (append_frame() and write_frame() check).
/// Thread safety: pure function.
constexpr void encode_header(std::uint16_t type_id, std::uint32_t payload_length,
                             std::span<std::byte, HEADER_SIZE> out) noexcept {
    store_le16(out.data(), type_id);
    store_le32(out.data() + 2, payload_length);
}

/// Reads a 6-byte header. Checks nothing: FrameDecoder applies the limits.
/// Thread safety: pure function.
constexpr FrameHeader decode_header(std::span<const std::byte, HEADER_SIZE> in) noexcept {
    return detail::read_header(in.data());
}

/// Why a frame could not be written.
enum class EncodeError : std::uint8_t {
    /// The type id is 0, which is reserved and rejected by every decoder.
    InvalidType,
    /// The payload is larger than schema::DEFAULT_MAX_PAYLOAD, the protocol's maximum.
    Oversize,
    /// write_frame(): the output span is smaller than frame_size(payload.size()).
    BufferTooSmall,
};

/// Appends one frame (header and payload) to `out`. On error `out` is unchanged.
/// Errors: InvalidType, Oversize. May throw std::bad_alloc when `out` grows.
/// Thread safety: distinct buffers safe; a shared buffer unsafe.
Result<void, EncodeError> append_frame(std::vector<std::byte>& out, std::uint16_t type_id,
                                       std::span<const std::byte> payload);

/// Writes one frame at the start of `out`; returns the bytes written,
/// frame_size(payload.size()). On error nothing is written.
/// Errors: InvalidType, Oversize, BufferTooSmall. Never allocates.
/// Thread safety: distinct buffers safe; a shared buffer unsafe.
Result<std::size_t, EncodeError> write_frame(std::span<std::byte> out, std::uint16_t type_id,
                                             std::span<const std::byte> payload) noexcept;

/// A stable lower-case name: "invalid_type", "oversize", "buffer_too_small".
std::string_view to_string(EncodeError error) noexcept;

// ---------------------------------------------------------------------------------------
// Reading frames
// ---------------------------------------------------------------------------------------

/// Why a byte stream is not a valid frame sequence. Every one of them ends the
/// connection: the stream cannot be resynchronised.
enum class DecodeError : std::uint8_t {
    /// The header declares a payload longer than the decoder's limit. Detected from the
    /// header alone, before any byte of the payload is buffered.
    Oversize,
    /// The stream ended (finish()) inside a frame: part of a header or of a payload is
    /// pending.
    Truncated,
    /// The type id is 0 (reserved), or an application type id (>= 1000) that the type
    /// table does not know.
    UnknownType,
    /// An application frame whose payload length differs from its message's fixed size.
    SizeMismatch,
};

/// A stable lower-case name for logs and metrics labels: "oversize", "truncated",
/// "unknown_type", "size_mismatch".
std::string_view to_string(DecodeError error) noexcept;

/// The facts behind a DecodeError, for the log line and the error control frame.
struct DecodeFailure {
    DecodeError error = DecodeError::Truncated;
    /// The offending frame's type id; 0 when the header itself was cut short.
    std::uint16_t type_id = 0;
    /// The payload length the header declared; 0 when the header was cut short.
    std::uint32_t declared_length = 0;
    /// The decoder's payload limit.
    std::size_t limit = 0;
    /// SizeMismatch: the message's fixed payload size; otherwise 0.
    std::size_t expected_size = 0;
    /// Truncated: the bytes of the frame (header included) received before the end.
    std::size_t received = 0;
};

/// A one-line description naming the type id, the declared length and the limit, e.g.
/// "oversize: type 1001 declares a 5000000-byte payload, limit 4194304".
std::string to_string(const DecodeFailure& failure);

/// A non-owning view of a type table: the fixed payload size of an application type id,
/// or nullopt when the id is unknown. One indirect call per lookup: a function pointer
/// and the table's address, no virtual base and no std::function.
/// The table must outlive every decoder that uses the view.
/// Thread safety: that of the viewed table (a loaded schema::Registry is immutable).
class TypeSizes {
public:
    using LookupFn = std::optional<std::size_t> (*)(const void* table, std::uint16_t type_id);

    /// Views `table` through `lookup`, which is called as `lookup(table, type_id)`.
    constexpr TypeSizes(LookupFn lookup, const void* table) noexcept
        : lookup_(lookup), table_(table) {
        assert(lookup != nullptr);
    }

    /// Views any callable `table(std::uint16_t) -> std::optional<std::size_t>` (a lambda
    /// over a small array in tests, a flat lookup table in a benchmark).
    template <class Table>
        requires std::is_invocable_r_v<std::optional<std::size_t>, const Table&, std::uint16_t>
    static TypeSizes of(const Table& table) noexcept {
        return TypeSizes(
            [](const void* t, std::uint16_t type_id) -> std::optional<std::size_t> {
                return (*static_cast<const Table*>(t))(type_id);
            },
            &table);
    }

    /// Views the message sizes of a loaded registry.
    static TypeSizes of(const schema::Registry& registry) noexcept {
        return TypeSizes(
            [](const void* r, std::uint16_t type_id) -> std::optional<std::size_t> {
                const schema::MessageSchema* m = static_cast<const schema::Registry*>(r)->find(type_id);
                if (m == nullptr) return std::nullopt;
                return m->size;
            },
            &registry);
    }

    /// A view of a temporary would dangle.
    template <class Table>
    static TypeSizes of(const Table&&) = delete;

    /// The fixed payload size of `type_id`, nullopt when unknown.
    std::optional<std::size_t> operator()(std::uint16_t type_id) const { return lookup_(table_, type_id); }

private:
    LookupFn lookup_;
    const void* table_;
};

/// How a FrameDecoder checks frames.
struct DecoderOptions {
    /// Largest payload accepted. Values above schema::DEFAULT_MAX_PAYLOAD are lowered to it:
    /// the protocol never allows more.
    std::size_t max_payload = schema::DEFAULT_MAX_PAYLOAD;
    /// When set, application frames must have a known type id and exactly its size. When
    /// empty, application frames are only held to the payload limit (a relay that does not
    /// know the schema). Control frames (1-999) are never looked up.
    std::optional<TypeSizes> type_sizes;
};

/// An incremental TLV decoder for one connection. Bytes are fed in whatever chunks the
/// socket returned; each complete frame is handed to a callback.
///
/// - Zero-copy: a frame wholly inside the fed chunk is handed over as a span into that
///   chunk. Only a frame split across chunks is copied into an internal buffer, which is
///   reused: steady-state decoding allocates nothing.
/// - Untrusted input: a header is checked (type id, payload limit, type table) before a
///   single byte of its payload is buffered, so a peer cannot make the decoder allocate
///   more than the limit.
/// - After an error the decoder is poisoned: feed() and finish() return the same error
///   and deliver nothing more. The caller closes the connection (reset() makes the
///   decoder reusable for a new one).
///
/// Thread safety: distinct objects safe; shared objects unsafe.
class FrameDecoder {
public:
    /// A split frame's buffer keeps its capacity up to this size; after a larger frame it is
    /// released, so that one 4 MiB frame does not pin 4 MiB for the connection's lifetime.
    static constexpr std::size_t RETAINED_BUFFER_CAPACITY = 64u * 1024u;

    /// A decoder at the start of a stream. Never fails: a limit above the protocol maximum
    /// is lowered to it. Allocates nothing until a frame is split across chunks.
    explicit FrameDecoder(DecoderOptions options = {});

    /// Consumes all of `bytes` and calls `on_frame(std::uint16_t type_id,
    /// std::span<const std::byte> payload)` for every frame completed, in stream order.
    /// The payload span is valid only during the call (it points into `bytes` or into the
    /// decoder's buffer). Returns the number of frames delivered.
    ///
    /// Errors: Oversize, UnknownType, SizeMismatch, or the earlier error of a poisoned
    /// decoder. Frames before the bad one have already been delivered; nothing after it is.
    /// `on_frame` must not call back into this decoder. If it throws, the exception
    /// propagates and the decoder must be reset() or discarded. May throw std::bad_alloc
    /// when buffering a split frame.
    template <class OnFrame>
    Result<std::size_t, DecodeError> feed(std::span<const std::byte> bytes, OnFrame&& on_frame);

    /// Declares the end of the stream. Errors: Truncated when part of a frame is pending
    /// (the decoder is then poisoned), or the earlier error of a poisoned decoder.
    Result<void, DecodeError> finish();

    /// Forgets all state, the error included, keeping the options.
    void reset() noexcept;

    /// True after an error; failure() then describes it.
    bool poisoned() const noexcept { return failure_.has_value(); }
    /// The error that poisoned the decoder, or nullptr.
    const DecodeFailure* failure() const noexcept { return failure_ ? &*failure_ : nullptr; }
    /// The effective payload limit (the configured one, capped at DEFAULT_MAX_PAYLOAD).
    std::size_t max_payload() const noexcept { return max_payload_; }
    /// Bytes of an unfinished frame held by the decoder (header bytes included).
    std::size_t buffered_bytes() const noexcept { return header_have_ + payload_buf_.size(); }
    /// Capacity of the split-frame buffer: what the decoder has allocated for payloads.
    std::size_t buffer_capacity() const noexcept { return payload_buf_.capacity(); }

private:
    struct SplitFrame {
        std::uint16_t type_id;
        std::span<const std::byte> payload;
    };
    struct Absorbed {
        const std::byte* next;            ///< first byte not consumed
        std::optional<SplitFrame> frame;  ///< a frame completed by these bytes
    };

    bool header_ok(const FrameHeader& header);
    bool fail(DecodeFailure failure);
    bool in_split_frame() const noexcept { return header_have_ != 0; }
    Absorbed absorb(const std::byte* first, const std::byte* last);
    void end_split_frame() noexcept;

    std::size_t max_payload_;
    std::optional<TypeSizes> type_sizes_;
    std::array<std::byte, HEADER_SIZE> header_buf_{};
    std::size_t header_have_ = 0;  ///< bytes of header_buf_ filled; HEADER_SIZE once parsed
    FrameHeader pending_{};        ///< the split frame's header, once header_have_ is full
    std::vector<std::byte> payload_buf_;
    std::optional<DecodeFailure> failure_;
};

// Hot path, inline: per frame, one header read, a few compares, at most one table lookup.
inline bool FrameDecoder::header_ok(const FrameHeader& h) {
    if (h.type_id == RESERVED_TYPE_ID) [[unlikely]] {
        return fail({DecodeError::UnknownType, h.type_id, h.payload_length, max_payload_, 0, 0});
    }
    if (h.payload_length > max_payload_) [[unlikely]] {
        return fail({DecodeError::Oversize, h.type_id, h.payload_length, max_payload_, 0, 0});
    }
    if (h.type_id >= schema::MIN_APP_TYPE_ID && type_sizes_) {
        const std::optional<std::size_t> size = (*type_sizes_)(h.type_id);
        if (!size) [[unlikely]] {
            return fail({DecodeError::UnknownType, h.type_id, h.payload_length, max_payload_, 0, 0});
        }
        if (*size != h.payload_length) [[unlikely]] {
            return fail({DecodeError::SizeMismatch, h.type_id, h.payload_length, max_payload_, *size, 0});
        }
    }
    return true;
}

template <class OnFrame>
Result<std::size_t, DecodeError> FrameDecoder::feed(std::span<const std::byte> bytes, OnFrame&& on_frame) {
    if (failure_) [[unlikely]] return Err{failure_->error};
    const std::byte* p = bytes.data();
    const std::byte* const end = p + bytes.size();
    std::size_t frames = 0;

    // First finish the frame an earlier chunk left open.
    if (in_split_frame()) {
        const Absorbed a = absorb(p, end);
        if (failure_) [[unlikely]] return Err{failure_->error};
        if (!a.frame) return frames;  // the whole chunk went into the open frame
        p = a.next;
        on_frame(a.frame->type_id, a.frame->payload);
        ++frames;
        end_split_frame();
    }

    // Whole frames straight out of the chunk. A frame that runs past the chunk's end is
    // left to absorb(), which checks its header before buffering anything.
    while (static_cast<std::size_t>(end - p) >= HEADER_SIZE) {
        const FrameHeader h = detail::read_header(p);
        if (static_cast<std::size_t>(end - p) - HEADER_SIZE < h.payload_length) break;
        if (!header_ok(h)) [[unlikely]] return Err{failure_->error};
        on_frame(h.type_id, std::span<const std::byte>(p + HEADER_SIZE, h.payload_length));
        ++frames;
        p += HEADER_SIZE + h.payload_length;
    }

    if (p != end) {
        [[maybe_unused]] const Absorbed a = absorb(p, end);
        if (failure_) [[unlikely]] return Err{failure_->error};
        assert(!a.frame && a.next == end);  // the loop took every whole frame
    }
    return frames;
}

}  // namespace mycelium::codec
