#pragma once
/// OS plumbing of the shared-memory links (docs/wire-protocol.md, "Shared-memory setup"): file
/// descriptors, sealed memfds, shared mappings, eventfd doorbells and SCM_RIGHTS
/// fd passing over a Unix socket. Linux only. No GIL needed anywhere.
///
/// Nothing here touches /dev/shm or the file system: a memfd lives only as long as a
/// descriptor or a mapping refers to it, so a crashed peer leaves nothing behind.
///
/// Errors: setup-time calls throw std::system_error whose what() names the call that
/// failed and the size or descriptor involved; a failure to obtain the ring's memory
/// throws ShmAllocError (a std::system_error) so that the caller can fall back to the
/// socket. The hot-path calls (EventFd::notify/drain) never throw.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

namespace mycelium::shm {

/// An owned file descriptor, closed by the destructor. -1 means none.
/// Thread safety: distinct objects safe; shared objects unsafe.
class UniqueFd {
public:
    UniqueFd() noexcept = default;
    /// Takes ownership of `fd` (-1 for none).
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    /// The descriptor, still owned; -1 when empty.
    int get() const noexcept { return fd_; }
    /// Gives up ownership and returns the descriptor.
    int release() noexcept {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }
    /// Closes the owned descriptor (if any) and takes `fd`.
    void reset(int fd = -1) noexcept;
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

/// The kernel could not provide the shared memory (memfd_create, ftruncate, fallocate or
/// mmap failed: out of memory, a memory cgroup limit, RLIMIT_FSIZE, out of descriptors).
/// The caller should fall back to the socket. code() is the errno; what() names the call
/// and the size.
class ShmAllocError : public std::system_error {
public:
    using std::system_error::system_error;
};

/// Creates an anonymous memory file (memfd_create with MFD_CLOEXEC | MFD_ALLOW_SEALING)
/// of exactly `size` bytes, allocates its pages up front (fallocate, so that touching
/// them later cannot SIGBUS for lack of memory) and seals it with F_SEAL_SHRINK |
/// F_SEAL_GROW | F_SEAL_SEAL: neither side can change its size afterwards, so a mapping of
/// `size` bytes stays valid whatever the peer does. `name` appears in /proc/<pid>/maps as
/// "/memfd:<name>". Throws ShmAllocError on any failure (std::invalid_argument when
/// `size` is 0). Thread safety: any thread.
UniqueFd create_sealed_memfd(const char* name, std::size_t size);

/// Checks a memfd received from a peer before it is mapped: it must carry F_SEAL_SHRINK
/// and F_SEAL_GROW (a file the peer could shrink would SIGBUS our reads) and be a regular
/// file; returns its size. Throws std::system_error naming what is wrong (EINVAL for a
/// descriptor that is not a sealed memfd). Thread safety: any thread.
std::size_t check_sealed_memfd(int fd);

/// A MAP_SHARED read-write mapping, unmapped by the destructor. Does not own the fd.
/// Thread safety: distinct objects safe; shared objects unsafe (the mapped bytes are
/// shared by design; see RingProducer/RingConsumer).
class Mapping {
public:
    Mapping() noexcept = default;
    /// Maps `size` bytes of `fd` from offset 0, pre-faulted (MAP_POPULATE). Throws
    /// ShmAllocError when mmap fails.
    static Mapping map(int fd, std::size_t size);
    ~Mapping();
    Mapping(Mapping&& other) noexcept;
    Mapping& operator=(Mapping&& other) noexcept;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;

    /// The mapped bytes (page-aligned start).
    std::span<std::byte> bytes() const noexcept { return {base_, size_}; }
    std::byte* data() const noexcept { return base_; }
    std::size_t size() const noexcept { return size_; }

private:
    Mapping(std::byte* base, std::size_t size) noexcept : base_(base), size_(size) {}
    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
};

/// An eventfd used as a doorbell: a counter that notify() adds 1 to and a waiter sees as
/// readable (poll POLLIN) until drain() resets it. Non-blocking and close-on-exec.
/// Thread safety: notify() from any thread or process; wait()/drain() by one waiter.
class EventFd {
public:
    EventFd() noexcept = default;
    /// A new eventfd (counter 0). Throws std::system_error when eventfd() fails.
    static EventFd create();
    /// Takes a descriptor received from a peer after checking that it really is an
    /// eventfd (through /proc/self/fd when /proc is mounted) and making it non-blocking.
    /// Throws std::system_error (EINVAL) for anything else: a hostile peer could pass a
    /// pipe or a socket that blocks our writes.
    static EventFd adopt(UniqueFd fd);

    /// The descriptor, for poll/epoll/Asio and for sending with send_fds.
    int fd() const noexcept { return fd_.get(); }
    explicit operator bool() const noexcept { return static_cast<bool>(fd_); }

    /// Adds 1 to the counter (wakes the waiter). Never blocks or throws; a full counter
    /// (EAGAIN, only if a peer wrote a huge value) already means "rung".
    void notify() const noexcept { notify_fd(fd_.get()); }
    /// Reads and resets the counter; 0 when it was not rung. Never blocks or throws.
    std::uint64_t drain() const noexcept { return drain_fd(fd_.get()); }
    /// Waits until the counter is non-zero or `timeout` passes; true when rung. Does not
    /// reset the counter. Retries on EINTR with the remaining time.
    bool wait(std::chrono::nanoseconds timeout) const noexcept { return wait_fd(fd_.get(), timeout); }

    /// notify() on a raw eventfd descriptor (no-op for fd < 0).
    static void notify_fd(int fd) noexcept;
    /// drain() on a raw eventfd descriptor (0 for fd < 0).
    static std::uint64_t drain_fd(int fd) noexcept;
    /// wait() on a raw descriptor: poll POLLIN with a nanosecond timeout (ppoll).
    static bool wait_fd(int fd, std::chrono::nanoseconds timeout) noexcept;

private:
    explicit EventFd(UniqueFd fd) noexcept : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

/// Most descriptors send_fds/recv_fds pass in one message.
inline constexpr std::size_t MAX_PASSED_FDS = 16;

/// Sends `data` (at least 1 byte: a stream socket carries ancillary data only with data)
/// and `fds` (at most MAX_PASSED_FDS) over the Unix socket `sock` with SCM_RIGHTS. The
/// descriptors ride on the first byte; the rest of `data` follows if the kernel took only
/// part of it. A non-blocking socket is waited for (POLLOUT) up to `timeout` in total.
/// The sender keeps its copies of the descriptors. Throws std::system_error (EINVAL for
/// empty data or too many fds, ETIMEDOUT, EPIPE, ...). Never raises SIGPIPE.
/// Thread safety: one sender per socket at a time.
void send_fds(int sock, std::span<const std::byte> data, std::span<const int> fds,
              std::chrono::milliseconds timeout = std::chrono::seconds(5));

/// What read_with_fds got.
struct ReadWithFds {
    /// recvmsg's result: bytes read, 0 at end of stream, -1 on error (see `error`).
    long result = 0;
    /// errno when result is -1 (EAGAIN when nothing was ready).
    int error = 0;
    /// The kernel truncated the control data (MSG_CTRUNC): descriptors beyond the room
    /// were closed by the kernel and are lost.
    bool truncated = false;
    /// The descriptors that came with the bytes (close-on-exec), owned by the caller now.
    std::vector<UniqueFd> fds;
};

/// One non-blocking recvmsg on the Unix socket `sock` into `buffer`, with room for
/// `max_fds` (≤ MAX_PASSED_FDS) passed descriptors: the one place that reads SCM_RIGHTS.
/// Never blocks; throws only std::bad_alloc. Thread safety: one reader per socket.
ReadWithFds read_with_fds(int sock, std::span<std::byte> buffer, std::size_t max_fds);

/// What recv_fds received.
struct ReceivedFds {
    /// Bytes of data written into the caller's buffer (> 0).
    std::size_t bytes = 0;
    /// The descriptors that came with them (close-on-exec), owned by the caller now.
    std::vector<UniqueFd> fds;
};

/// Receives one message (up to `buffer.size()` bytes of data) and the descriptors passed
/// with it from the Unix socket `sock`, waiting up to `timeout` for it to arrive.
/// At most `max_fds` (≤ MAX_PASSED_FDS) descriptors are accepted: if the peer sent more,
/// or the kernel truncated the control data (MSG_CTRUNC), every descriptor received is
/// closed and std::system_error (EPROTO) is thrown. Other errors: ETIMEDOUT when nothing
/// arrived in time, ECONNRESET when the peer closed the socket (end of stream), EINVAL
/// for an empty buffer, the errno of recvmsg otherwise. On any error no descriptor is
/// left open. Thread safety: one receiver per socket at a time.
ReceivedFds recv_fds(int sock, std::span<std::byte> buffer, std::size_t max_fds,
                     std::chrono::milliseconds timeout);

}  // namespace mycelium::shm
