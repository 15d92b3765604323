// OS plumbing for shared-memory links: memfd, mmap, eventfd, SCM_RIGHTS. Every failure
// names the call and the numbers involved, because the person reading the log line has
// to tell "out of memory" from "the peer sent us the wrong descriptor".

#include "mycelium/shm_os.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mycelium::shm {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

[[noreturn]] void throw_alloc(int err, const std::string& what) {
    throw ShmAllocError(err, std::generic_category(), what);
}

timespec to_timespec(std::chrono::nanoseconds d) {
    if (d < std::chrono::nanoseconds::zero()) d = std::chrono::nanoseconds::zero();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(secs.count());
    ts.tv_nsec = static_cast<long>((d - secs).count());
    return ts;
}

// poll() one descriptor for `events` until `deadline`; false on timeout. EINTR restarts
// with the remaining time.
bool poll_until(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        const timespec ts = to_timespec(deadline - Clock::now());
        const int r = ::ppoll(&p, 1, &ts, nullptr);
        if (r > 0) return true;
        if (r == 0) return false;
        if (errno != EINTR) throw_errno(errno, "poll on descriptor " + std::to_string(fd));
    }
}

}  // namespace

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0 && fd_ != fd) ::close(fd_);
    fd_ = fd;
}

// --- memfd -----------------------------------------------------------------------------

UniqueFd create_sealed_memfd(const char* name, std::size_t size) {
    if (size == 0) throw std::invalid_argument("create_sealed_memfd: size 0");
    const std::string what_size = std::to_string(size) + "-byte shared-memory ring";
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd) throw_alloc(errno, "cannot create the memfd for a " + what_size + " (memfd_create)");
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
        throw_alloc(errno, "cannot size the memfd of a " + what_size + " (ftruncate)");
    // A memfd's pages are otherwise allocated on first touch, and a failure then is a
    // SIGBUS in whichever process touched it (a memory cgroup at its limit, say). Taking
    // them now turns that into this clear error, at setup, while the socket still works.
    int r;
    do r = ::fallocate(fd.get(), 0, 0, static_cast<off_t>(size));
    while (r != 0 && errno == EINTR);
    if (r != 0 && errno != EOPNOTSUPP)
        throw_alloc(errno, "cannot allocate the memory of a " + what_size + " (fallocate)");
    // The peer maps the same file: once its size is sealed, a mapping of `size` bytes can
    // never lose its backing (ftruncate by either side would fail with EPERM). F_SEAL_SEAL
    // stops the peer from adding seals of its own (F_SEAL_FUTURE_WRITE, say).
    if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        throw_alloc(errno, "cannot seal the memfd of a " + what_size + " (F_ADD_SEALS)");
    return fd;
}

std::size_t check_sealed_memfd(int fd) {
    const std::string which = "descriptor " + std::to_string(fd);
    const int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0) {
        // EINVAL: the file does not support sealing, so it is not a memfd.
        if (errno == EINVAL) throw_errno(EINVAL, which + " is not a sealable memfd (F_GET_SEALS)");
        throw_errno(errno, "cannot read the seals of " + which + " (F_GET_SEALS)");
    }
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        throw_errno(EINVAL, fmt::format("memfd {} is not sealed against shrinking and growing (seals {:#x})",
                                        which, static_cast<unsigned>(seals)));
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw_errno(errno, "cannot stat " + which);
    if (!S_ISREG(st.st_mode) || st.st_size < 0) throw_errno(EINVAL, which + " is not a regular memory file");
    return static_cast<std::size_t>(st.st_size);
}

// --- mapping ---------------------------------------------------------------------------

Mapping Mapping::map(int fd, std::size_t size) {
    if (size == 0) throw std::invalid_argument("Mapping::map: size 0");
    // MAP_POPULATE: fault the pages in now, not on the first frame of the hot path.
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED)
        throw_alloc(errno, "cannot map " + std::to_string(size) + " bytes of descriptor " + std::to_string(fd) +
                               " (mmap)");
    return Mapping(static_cast<std::byte*>(p), size);
}

Mapping::~Mapping() {
    if (base_ != nullptr) ::munmap(base_, size_);
}

Mapping::Mapping(Mapping&& other) noexcept : base_(other.base_), size_(other.size_) {
    other.base_ = nullptr;
    other.size_ = 0;
}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
    if (this != &other) {
        if (base_ != nullptr) ::munmap(base_, size_);
        base_ = other.base_;
        size_ = other.size_;
        other.base_ = nullptr;
        other.size_ = 0;
    }
    return *this;
}

// --- eventfd ---------------------------------------------------------------------------

EventFd EventFd::create() {
    UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fd) throw_errno(errno, "cannot create an eventfd doorbell (eventfd)");
    return EventFd(std::move(fd));
}

EventFd EventFd::adopt(UniqueFd fd) {
    const std::string which = "descriptor " + std::to_string(fd.get());
    const std::string link = "/proc/self/fd/" + std::to_string(fd.get());
    char target[64];
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n >= 0) {
        target[n] = '\0';
        if (std::strcmp(target, "anon_inode:[eventfd]") != 0)
            throw_errno(EINVAL, which + " is '" + target + "', not an eventfd");
    } else if (::access("/proc/self/fd", F_OK) == 0) {
        throw_errno(errno, "cannot inspect " + which + " (readlink " + link + ")");
    }  // no /proc: the check is skipped; non-blocking below is what keeps us safe
    // Writes must never block us (a full counter answers EAGAIN), whatever the sender set.
    const int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0)
        throw_errno(errno, "cannot make " + which + " non-blocking");
    if (::fcntl(fd.get(), F_SETFD, FD_CLOEXEC) != 0) throw_errno(errno, "cannot set close-on-exec on " + which);
    return EventFd(std::move(fd));
}

void EventFd::notify_fd(int fd) noexcept {
    if (fd < 0) return;
    const std::uint64_t one = 1;
    ssize_t r;
    do r = ::write(fd, &one, sizeof one);
    while (r < 0 && errno == EINTR);
    // EAGAIN: the counter is at its maximum, which already wakes the waiter.
}

std::uint64_t EventFd::drain_fd(int fd) noexcept {
    if (fd < 0) return 0;
    std::uint64_t value = 0;
    ssize_t r;
    do r = ::read(fd, &value, sizeof value);
    while (r < 0 && errno == EINTR);
    return r == static_cast<ssize_t>(sizeof value) ? value : 0;
}

bool EventFd::wait_fd(int fd, std::chrono::nanoseconds timeout) noexcept {
    if (fd < 0) return false;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        const timespec ts = to_timespec(deadline - Clock::now());
        const int r = ::ppoll(&p, 1, &ts, nullptr);
        if (r > 0) return true;
        if (r == 0 || errno != EINTR) return false;
    }
}

// --- SCM_RIGHTS ------------------------------------------------------------------------

void send_fds(int sock, std::span<const std::byte> data, std::span<const int> fds,
              std::chrono::milliseconds timeout) {
    if (data.empty()) throw_errno(EINVAL, "send_fds: at least one byte of data must carry the descriptors");
    if (fds.size() > MAX_PASSED_FDS)
        throw_errno(EINVAL, "send_fds: " + std::to_string(fds.size()) + " descriptors, at most " +
                                std::to_string(MAX_PASSED_FDS));
    const auto deadline = Clock::now() + timeout;
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
    iovec iov{const_cast<std::byte*>(data.data()), data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds.empty()) {
        std::memset(control, 0, sizeof control);
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    const std::string where = " on socket " + std::to_string(sock);
    std::size_t sent = 0;
    for (;;) {
        const ssize_t r = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (r >= 0) {
            sent = static_cast<std::size_t>(r);
            break;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            throw_errno(errno, "sendmsg of " + std::to_string(fds.size()) + " descriptors" + where);
        if (!poll_until(sock, POLLOUT, deadline))
            throw_errno(ETIMEDOUT, "send_fds: the socket stayed full" + where);
    }
    // The descriptors went with the first chunk; the rest of the data is plain bytes.
    while (sent < data.size()) {
        const ssize_t r = ::send(sock, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (r >= 0) {
            sent += static_cast<std::size_t>(r);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) throw_errno(errno, "send" + where);
        if (!poll_until(sock, POLLOUT, deadline))
            throw_errno(ETIMEDOUT, "send_fds: the socket stayed full" + where);
    }
}

ReadWithFds read_with_fds(int sock, std::span<std::byte> buffer, std::size_t max_fds) {
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    // Room for exactly max_fds: more than that sets MSG_CTRUNC, and the kernel closes the
    // descriptors that did not fit (none when max_fds is 0).
    if (max_fds > 0) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * std::min(max_fds, MAX_PASSED_FDS));
    }
    ReadWithFds out;
    out.result = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (out.result < 0) {
        out.error = errno;
        return out;
    }
    // Take ownership of every descriptor first, so that whatever the caller does next
    // closes them.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < n; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            out.fds.emplace_back(fd);
        }
    }
    out.truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
    return out;
}

ReceivedFds recv_fds(int sock, std::span<std::byte> buffer, std::size_t max_fds, std::chrono::milliseconds timeout) {
    if (buffer.empty()) throw_errno(EINVAL, "recv_fds: empty buffer");
    if (max_fds > MAX_PASSED_FDS)
        throw_errno(EINVAL, "recv_fds: max_fds " + std::to_string(max_fds) + " above " +
                                std::to_string(MAX_PASSED_FDS));
    const std::string where = " on socket " + std::to_string(sock);
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (!poll_until(sock, POLLIN, deadline))
            throw_errno(ETIMEDOUT, "recv_fds: nothing arrived within " + std::to_string(timeout.count()) + " ms" +
                                       where);
        ReadWithFds read = read_with_fds(sock, buffer, max_fds);
        if (read.result < 0) {
            if (read.error == EINTR || read.error == EAGAIN || read.error == EWOULDBLOCK) continue;
            throw_errno(read.error, "recvmsg" + where);
        }
        if (read.truncated)
            throw_errno(EPROTO, "recv_fds: the peer sent more than " + std::to_string(max_fds) +
                                    " descriptors (control data truncated)" + where + "; all of them were closed");
        // CMSG_SPACE rounds up, so one more descriptor than asked for can fit.
        if (read.fds.size() > max_fds)
            throw_errno(EPROTO, "recv_fds: the peer sent " + std::to_string(read.fds.size()) +
                                    " descriptors, more than " + std::to_string(max_fds) + where +
                                    "; all of them were closed");
        if (read.result == 0) throw_errno(ECONNRESET, "recv_fds: the peer closed the connection" + where);
        return ReceivedFds{static_cast<std::size_t>(read.result), std::move(read.fds)};
    }
}

}  // namespace mycelium::shm
