#pragma once
// Helpers the C++ tests share: a private temporary folder (short, so Unix socket paths
// fit sun_path), polling with a deadline, and the test contracts with their CounterUpdate's
// payload. Every test still makes its own folder, socket paths and ports.

#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace test_support {

/// A fresh folder under /tmp named `<prefix>-XXXXXX`, removed with everything in it.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "myc-test") {
        std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    /// `unix:<folder>/<name>`, an endpoint for LinkServer::listen.
    std::string socket(const std::string& name = "node.sock") const { return "unix:" + (path / name).string(); }

    /// Writes `text` to `name` in the folder and returns its path.
    std::filesystem::path write(const std::string& name, const std::string& text) const {
        const auto file = path / name;
        std::ofstream(file) << text;
        return file;
    }

    std::filesystem::path path;
};

/// Polls `done` every `poll` until it holds (true) or `timeout` passes (false).
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                       std::chrono::microseconds poll = std::chrono::milliseconds(2)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(poll);
    }
    return true;
}

/// The contracts most link tests load: TextMessage (1001, 312 bytes) and CounterUpdate
/// (1002, 16 bytes). A test that needs more messages appends them (same indentation).
inline constexpr const char* TEXT_AND_COUNTER_CONTRACTS = R"(
messages:
  TextMessage:
    tlv_type: 1001
    fields:
      sender: {type: String, max_length: 32}
      content: {type: String, max_length: 256}
      timestamp: u64
  CounterUpdate:
    tlv_type: 1002
    fields:
      counter_id: u32
      value: u64
)";

/// A TextMessage payload (TEXT_AND_COUNTER_CONTRACTS) whose `sender` holds `sender` with
/// the length prefix `length` (its size unless given), an empty `content` and `timestamp`.
/// Bytes that are not UTF-8, or a length above 32, make it one that breaks its contract.
inline std::vector<std::byte> text_message(std::string_view sender, std::optional<std::uint16_t> length = {},
                                           std::uint64_t timestamp = 0) {
    std::vector<std::byte> out(312);
    const std::uint16_t declared = length.value_or(static_cast<std::uint16_t>(sender.size()));
    std::memcpy(out.data(), &declared, 2);
    std::memcpy(out.data() + 8, sender.data(), std::min<std::size_t>(sender.size(), 32));
    std::memcpy(out.data() + 304, &timestamp, 8);
    return out;
}

/// The `sender` of a TextMessage payload, as its length prefix says (at most 32 bytes).
template <typename Bytes>
std::string text_sender(const Bytes& payload) {
    std::uint16_t length = 0;
    std::memcpy(&length, payload.data(), 2);
    return std::string(reinterpret_cast<const char*>(payload.data()) + 8, std::min<std::size_t>(length, 32));
}

/// The counter_id of a CounterUpdate frame (anything with a `payload` of bytes).
template <typename FrameLike>
std::uint32_t counter_id(const FrameLike& frame) {
    std::uint32_t id = 0;
    std::memcpy(&id, frame.payload.data(), 4);
    return id;
}

/// A CounterUpdate payload (`counter_id: u32`, 4 bytes of padding, `value: u64`).
inline std::vector<std::byte> counter(std::uint32_t id, std::uint64_t value) {
    std::vector<std::byte> out(16);
    std::memcpy(out.data(), &id, 4);
    std::memcpy(out.data() + 8, &value, 8);
    return out;
}

}  // namespace test_support
