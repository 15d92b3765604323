#pragma once
// Starting one worker process: fork and exec with its output on pipes, nothing of the
// host's descriptors or signal state inherited. Private header of host/src/supervisor/.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace mycelium::supervisor {

/// An owned file descriptor. Thread safety: distinct objects safe, shared objects unsafe.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    void reset(int fd = -1) noexcept;

private:
    int fd_ = -1;
};

/// A std::system_error for `error` (an errno value).
std::system_error os_error(int error, const std::string& what);

/// A started child. Its stdin is /dev/null; its stdout and stderr are the read ends here
/// (non-blocking, close-on-exec).
struct ChildProcess {
    pid_t pid = 0;
    Fd pidfd;  ///< invalid on kernels before 5.3
    Fd out, err;
    std::chrono::steady_clock::time_point started;  ///< right after the fork
    /// exec's errno when the program could not be executed (the child then exits with
    /// 127), else 0.
    int exec_error = 0;
};

/// Forks and executes `args[0]` with `args` and environment `env` (KEY=VALUE entries) in
/// a process group of its own, killed with SIGKILL if the supervisor's thread dies.
/// Returns once exec has succeeded or failed. Throws std::system_error when a pipe,
/// /dev/null or the fork cannot be had.
ChildProcess start_child(std::vector<std::string> args, std::vector<std::string> env);

}  // namespace mycelium::supervisor
