#pragma once
/// Reading a configuration file (contracts, topology) whole, up to a size limit, so that
/// an endless (/dev/zero) or huge file stops with an error instead of filling memory.
/// In the lowest layer, beside wire_limits.hpp, so every library that reads files can
/// reach it.

#include <cstddef>
#include <filesystem>
#include <string>

namespace mycelium {

/// The limit for contracts and topology files: far above any real one (Mycelium's own
/// are tens of kilobytes).
inline constexpr std::size_t MAX_CONFIG_FILE_BYTES = 16u << 20;

/// A file's text, or why it could not be read.
struct FileText {
    enum class Failure { None, CannotOpen, Directory, TooLarge, CannotRead };

    std::string text;
    Failure failure = Failure::None;
    std::string reason;  // the system's words for CannotOpen and CannotRead
    bool ok() const noexcept { return failure == Failure::None; }
};

/// Reads `path` whole when it holds at most `max_bytes`. Reads a character device or a
/// FIFO as far as the limit, never further. Never throws but std::bad_alloc.
FileText read_file_text(const std::filesystem::path& path, std::size_t max_bytes = MAX_CONFIG_FILE_BYTES);

}  // namespace mycelium
