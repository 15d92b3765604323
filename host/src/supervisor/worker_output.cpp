// A worker's output, pipe to log lines (worker_output.hpp).

#include "worker_output.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

#include "mycelium/log.hpp"
#include "mycelium/utf8.hpp"

namespace mycelium::supervisor {

WorkerOutput::WorkerOutput(Fd fd, std::shared_ptr<spdlog::logger> log, spdlog::level::level_enum level,
                           std::string worker)
    : fd_(std::move(fd)), log_(std::move(log)), level_(level), worker_(std::move(worker)) {}

void WorkerOutput::read(std::size_t max_reads) noexcept {
    std::array<char, 16384> buffer;
    for (std::size_t reads = 0; fd_ && reads < max_reads; ++reads) {
        const ssize_t n = ::read(fd_.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {  // end of stream, or an error that ends it
            flush();
            fd_.reset();
            return;
        }
        try {
            partial_.append(buffer.data(), static_cast<std::size_t>(n));
        } catch (...) {
            partial_.clear();
            continue;
        }
        std::size_t start = 0;
        for (;;) {
            const auto newline = partial_.find('\n', start);
            if (newline == std::string::npos) break;
            emit(std::string_view(partial_).substr(start, newline - start));
            start = newline + 1;
        }
        partial_.erase(0, start);
        while (partial_.size() >= MAX_LINE) {
            emit(std::string_view(partial_).substr(0, MAX_LINE));
            partial_.erase(0, MAX_LINE);
        }
    }
}

void WorkerOutput::flush() noexcept {
    if (!partial_.empty()) emit(partial_);
    partial_.clear();
}

void WorkerOutput::emit(std::string_view line) noexcept {
    const log::ScopedFields log_fields{{"worker", worker_}};  // JSON log lines name the worker
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return;
    try {
        const bool ascii = std::all_of(line.begin(), line.end(), [](char c) { return (c & 0x80) == 0; });
        const std::string repaired = ascii ? std::string() : utf8::sanitize(line);  // untrusted output
        if (!ascii) line = repaired;
        log_->log(level_, spdlog::string_view_t(line.data(), line.size()));
    } catch (...) {  // a failing sink loses the line, not the worker
    }
}

}  // namespace mycelium::supervisor
