// fork and exec of one worker (child_process.hpp). Everything the child needs is built
// before fork(): in the child of a multi-threaded process only async-signal-safe calls
// are allowed.

#include "child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace mycelium::supervisor {

void Fd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

std::system_error os_error(int error, const std::string& what) {
    return std::system_error(error, std::generic_category(), what);
}

namespace {

/// Moves `fd` to a number >= 3 (close-on-exec), so that dup2() onto 0-2 in the child
/// never clobbers another of its descriptors, even in a host started with closed stdio.
Fd above_stdio(int fd) {
    if (fd < 0) throw os_error(errno, "cannot open a descriptor for a worker");
    if (fd >= 3) return Fd(fd);
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    const int error = errno;
    ::close(fd);
    if (moved < 0) throw os_error(error, "cannot move a worker's descriptor above 2");
    return Fd(moved);
}

struct Pipe {
    Fd read, write;
};

Pipe make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw os_error(errno, "cannot create a pipe for a worker");
    Pipe p{above_stdio(fds[0]), above_stdio(fds[1])};
    return p;
}

/// What the child needs between fork() and exec(): prepared before fork(), because only
/// async-signal-safe calls are allowed in the child of a multi-threaded process.
struct ChildSetup {
    const char* path;
    char* const* argv;
    char* const* envp;
    int devnull, out, err, status;  // status: close-on-exec pipe that reports exec errors
    pid_t parent;
};

[[noreturn]] void exec_child(const ChildSetup& c) noexcept {
    // Own process group, so SIGTERM/SIGKILL to -pid reach the worker's own children.
    ::setpgid(0, 0);
    // A host that dies without stopping us (crash, SIGKILL, its shutdown watchdog) takes
    // the worker along. The signal follows the death of the forking thread: that is the
    // supervisor's thread, which lives until every child has been reaped.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != c.parent) ::_exit(127);  // the host died before prctl()
    // The host blocks SIGINT/SIGTERM in every thread (a watchdog waits for them), and a
    // blocked mask or ignored dispositions survive exec: reset both.
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // EINVAL for glibc's own
    }
    if (::dup2(c.devnull, 0) < 0 || ::dup2(c.out, 1) < 0 || ::dup2(c.err, 2) < 0) {
        const int error = errno;
        [[maybe_unused]] const auto n = ::write(c.status, &error, sizeof error);
        ::_exit(127);
    }
    // Nothing of the host's (sockets, memfds, pipes of other workers) reaches the worker.
    if (c.status > 3) ::close_range(3, static_cast<unsigned>(c.status - 1), 0);
    ::close_range(static_cast<unsigned>(c.status + 1), ~0u, 0);
    ::execve(c.path, c.argv, c.envp);
    const int error = errno;
    [[maybe_unused]] const auto n = ::write(c.status, &error, sizeof error);
    ::_exit(127);
}

}  // namespace

ChildProcess start_child(std::vector<std::string> args, std::vector<std::string> env) {
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    Pipe out = make_pipe(), err = make_pipe(), status = make_pipe();
    Fd devnull = above_stdio(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    for (const int fd : {out.read.get(), err.read.get()}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    const ChildSetup setup{argv[0], argv.data(), envp.data(), devnull.get(), out.write.get(), err.write.get(),
                           status.write.get(), ::getpid()};

    const pid_t pid = ::fork();
    if (pid < 0) throw os_error(errno, "fork failed");
    if (pid == 0) exec_child(setup);

    // Also from this side, so that a stop right after the fork reaches the group.
    ::setpgid(pid, pid);
    out.write.reset();
    err.write.reset();
    status.write.reset();
    ChildProcess child;
    child.pid = pid;
    child.pidfd = Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    child.out = std::move(out.read);
    child.err = std::move(err.read);
    child.started = std::chrono::steady_clock::now();
    // The status pipe closes on a successful exec, or carries exec's errno.
    int exec_error = 0;
    ssize_t got = 0;
    do {
        got = ::read(status.read.get(), &exec_error, sizeof exec_error);
    } while (got < 0 && errno == EINTR);
    if (got == static_cast<ssize_t>(sizeof exec_error)) child.exec_error = exec_error;
    return child;
}

}  // namespace mycelium::supervisor
