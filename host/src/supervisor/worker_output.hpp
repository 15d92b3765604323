#pragma once
// One output stream of a running worker (its stdout or stderr), read from a pipe and
// logged line by line under the worker's logger. Private header of
// host/src/supervisor/.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "child_process.hpp"

namespace mycelium::supervisor {

/// Thread safety: the supervisor thread only.
class WorkerOutput {
public:
    /// Reads `fd` (non-blocking) and logs each line at `level` on `log`, naming `worker`.
    WorkerOutput(Fd fd, std::shared_ptr<spdlog::logger> log, spdlog::level::level_enum level, std::string worker);

    /// Whether the pipe is still open (not at its end).
    bool open() const noexcept { return static_cast<bool>(fd_); }
    int fd() const noexcept { return fd_.get(); }

    /// Reads what is there (at most `max_reads` reads, so that a worker that writes
    /// without pause cannot hold the thread) and logs the complete lines; a line longer
    /// than MAX_LINE is logged in pieces. At the end of the stream, logs the rest and
    /// closes the pipe.
    void read(std::size_t max_reads = 16) noexcept;
    /// Logs what is left after the last newline.
    void flush() noexcept;

    /// Longest line logged as one.
    static constexpr std::size_t MAX_LINE = 64 * 1024;

private:
    void emit(std::string_view line) noexcept;

    Fd fd_;
    std::string partial_;  // bytes after the last newline
    std::shared_ptr<spdlog::logger> log_;
    spdlog::level::level_enum level_;
    std::string worker_;
};

}  // namespace mycelium::supervisor
