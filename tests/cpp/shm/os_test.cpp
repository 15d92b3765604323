#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "mycelium/shm_os.hpp"
#include "mycelium/shm_ring.hpp"

using namespace mycelium;
using namespace mycelium::shm;
using namespace std::chrono_literals;

namespace {

schema::Digest test_digest(std::uint8_t seed = 0x5a) {
    schema::Digest d{};
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::uint8_t>(seed + i * 7);
    return d;
}

std::size_t open_fd_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

struct SocketPair {
    SocketPair() {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        a.reset(sv[0]);
        b.reset(sv[1]);
    }
    UniqueFd a, b;
};

std::span<const std::byte> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Forks a child that runs `fn` and _exits with its result; it never returns into doctest.
pid_t spawn(const std::function<int()>& fn) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int code = 100;
        try {
            code = fn();
        } catch (...) {
            code = 101;
        }
        ::_exit(code);
    }
    return pid;
}

// The child's exit status; -1 if it had to be killed after `limit`, -2 if a signal ended it.
int wait_child(pid_t pid, std::chrono::seconds limit = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    for (;;) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 || std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(1ms);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
}

int run_in_child(const std::function<int()>& fn) { return wait_child(spawn(fn)); }

// Kills and reaps a child that a failed REQUIRE left behind.
struct ChildGuard {
    pid_t pid;
    ~ChildGuard() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

template <class F>
std::error_code error_of(F&& f) {
    try {
        f();
    } catch (const std::system_error& e) {
        return e.code();
    }
    return {};
}

}  // namespace

TEST_SUITE("shm.os") {

TEST_CASE("a sealed memfd has a fixed size that neither side can change" * doctest::timeout(10)) {
    UniqueFd fd = create_sealed_memfd("myc-test", 8192);
    REQUIRE(fd);
    CHECK(check_sealed_memfd(fd.get()) == 8192);
    const int seals = ::fcntl(fd.get(), F_GET_SEALS);
    CHECK((seals & F_SEAL_SHRINK) != 0);
    CHECK((seals & F_SEAL_GROW) != 0);
    CHECK((seals & F_SEAL_SEAL) != 0);
    CHECK(::ftruncate(fd.get(), 4096) != 0);
    CHECK(errno == EPERM);
    CHECK(::ftruncate(fd.get(), 16384) != 0);
    CHECK(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != 0);  // no seals added later
    CHECK((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK_THROWS_AS(create_sealed_memfd("myc-test", 0), std::invalid_argument);
}

TEST_CASE("a descriptor that is not a sealed memfd is refused before mapping" * doctest::timeout(10)) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    UniqueFd r(p[0]), w(p[1]);
    CHECK(error_of([&] { check_sealed_memfd(r.get()); }) == std::errc::invalid_argument);
    UniqueFd unsealed(::memfd_create("myc-unsealed", MFD_CLOEXEC));
    REQUIRE(unsealed);
    REQUIRE(::ftruncate(unsealed.get(), 4096) == 0);
    CHECK(error_of([&] { check_sealed_memfd(unsealed.get()); }) == std::errc::invalid_argument);
    CHECK(error_of([&] { (void)MappedRing::attach(std::move(unsealed), test_digest()); }) ==
          std::errc::invalid_argument);
}

TEST_CASE("two mappings of one ring memfd share the frames" * doctest::timeout(10)) {
    MappedRing mine = MappedRing::create(4096, test_digest());
    CHECK(mine.capacity() == 4096);
    CHECK(mine.bytes().size() == ring_region_size(4096));
    CHECK(check_sealed_memfd(mine.fd()) == ring_region_size(4096));
    MappedRing theirs = MappedRing::attach(UniqueFd(::dup(mine.fd())), test_digest(), 4096);
    CHECK(theirs.bytes().data() != mine.bytes().data());

    RingProducer p(mine.region());
    RingConsumer c(theirs.region());
    const std::array<std::byte, 4> payload{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    REQUIRE(p.try_write(1000, payload).has_value());
    auto r = c.peek();
    REQUIRE(r.has_value());
    REQUIRE(r->has_value());
    CHECK((*r)->type_id == 1000);
    CHECK(std::memcmp((*r)->payload.data(), payload.data(), 4) == 0);
    c.consume();
    CHECK(std::memcmp(mine.bytes().data() + offsets::CONSUMER_INDEX, theirs.bytes().data() + offsets::CONSUMER_INDEX,
                      8) == 0);
}

TEST_CASE("attaching checks the size, the header and the digest" * doctest::timeout(10)) {
    MappedRing ring = MappedRing::create(4096, test_digest());
    // Wrong expected capacity: refused from the file size, before mapping.
    CHECK(error_of([&] { (void)MappedRing::attach(UniqueFd(::dup(ring.fd())), test_digest(), 8192); }) ==
          std::errc::invalid_argument);
    try {
        (void)MappedRing::attach(UniqueFd(::dup(ring.fd())), test_digest(0x11), 4096);
        FAIL("attach accepted a foreign digest");
    } catch (const RingFormatError& e) {
        CHECK(e.failure().error == RingError::DigestMismatch);
        CHECK(std::string(e.what()).find("digest_mismatch") != std::string::npos);
    }
    // A sealed memfd of the right size whose bytes are not a ring.
    UniqueFd blank = create_sealed_memfd("myc-blank", ring_region_size(4096));
    try {
        (void)MappedRing::attach(std::move(blank), test_digest(), 4096);
        FAIL("attach accepted a blank region");
    } catch (const RingFormatError& e) {
        CHECK(e.failure().error == RingError::BadMagic);
    }
    CHECK_THROWS_AS(MappedRing::create(1000, test_digest()), std::invalid_argument);
    CHECK_THROWS_AS(MappedRing::create(MAX_RING_CAPACITY * 2, test_digest()), std::invalid_argument);
}

TEST_CASE("memory that cannot be allocated gives ShmAllocError" * doctest::timeout(30)) {
    // In a child with RLIMIT_FSIZE below the ring's size, the memfd cannot be sized: the
    // same error path as an exhausted memory cgroup, without exhausting anything.
    const int code = run_in_child([] {
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit small{4096, 4096};
        if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return 10;
        try {
            (void)MappedRing::create(DEFAULT_RING_CAPACITY, test_digest());
        } catch (const ShmAllocError& e) {
            if (e.code() != std::errc::file_too_large) return 11;
            if (std::string(e.what()).find("1048832-byte shared-memory ring") == std::string::npos) return 12;
            return 0;
        }
        return 13;
    });
    CHECK(code == 0);
}

TEST_CASE("an eventfd doorbell counts rings until drained" * doctest::timeout(10)) {
    EventFd bell = EventFd::create();
    REQUIRE(bell);
    CHECK((::fcntl(bell.fd(), F_GETFL) & O_NONBLOCK) != 0);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(bell.wait(2ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 2ms);
    CHECK(bell.drain() == 0);
    bell.notify();
    bell.notify();
    CHECK(bell.wait(0ns));
    CHECK(bell.wait(1s));  // waiting does not reset it
    CHECK(bell.drain() == 2);
    CHECK_FALSE(bell.wait(0ns));

    // Adopting a received duplicate: the same counter.
    EventFd twin = EventFd::adopt(UniqueFd(::dup(bell.fd())));
    twin.notify();
    CHECK(bell.drain() == 1);
    // A raw -1 is a no-op everywhere.
    EventFd::notify_fd(-1);
    CHECK(EventFd::drain_fd(-1) == 0);
    CHECK_FALSE(EventFd::wait_fd(-1, 1ms));
}

TEST_CASE("adopting anything but an eventfd is refused" * doctest::timeout(10)) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    UniqueFd w(p[1]);
    CHECK(error_of([&] { (void)EventFd::adopt(UniqueFd(p[0])); }) == std::errc::invalid_argument);
    UniqueFd mem = create_sealed_memfd("myc-not-eventfd", 4096);
    CHECK(error_of([&] { (void)EventFd::adopt(std::move(mem)); }) == std::errc::invalid_argument);
}

TEST_CASE("descriptors pass over a real socketpair with SCM_RIGHTS" * doctest::timeout(10)) {
    SocketPair s;
    MappedRing ring = MappedRing::create(4096, test_digest());
    EventFd bell = EventFd::create();
    const int fds[] = {ring.fd(), bell.fd()};
    send_fds(s.a.get(), bytes_of("shm-setup"), fds);

    std::array<std::byte, 64> buf{};
    ReceivedFds got = recv_fds(s.b.get(), buf, 2, 1s);
    REQUIRE(got.bytes == 9);
    CHECK(std::memcmp(buf.data(), "shm-setup", 9) == 0);
    REQUIRE(got.fds.size() == 2);
    for (const UniqueFd& fd : got.fds) CHECK((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK(got.fds[0].get() != ring.fd());

    // The received memfd is the same memory; the received eventfd the same doorbell.
    MappedRing theirs = MappedRing::attach(std::move(got.fds[0]), test_digest(), 4096);
    RingProducer p(ring.region());
    RingConsumer c(theirs.region());
    REQUIRE(p.try_write(1000, bytes_of("hi")).has_value());
    auto r = c.peek();
    REQUIRE(r.has_value());
    REQUIRE(r->has_value());
    CHECK((*r)->payload.size() == 2);
    EventFd their_bell = EventFd::adopt(std::move(got.fds[1]));
    their_bell.notify();
    CHECK(bell.drain() == 1);

    // Data without descriptors, and a larger message than one read takes.
    send_fds(s.a.get(), bytes_of("plain"), {});
    got = recv_fds(s.b.get(), buf, 2, 1s);
    CHECK(got.bytes == 5);
    CHECK(got.fds.empty());
}

TEST_CASE("recv_fds closes every descriptor when the peer sends more than allowed" * doctest::timeout(10)) {
    SocketPair s;
    std::vector<UniqueFd> keep;
    std::vector<int> fds;
    for (int i = 0; i < 5; ++i) {
        keep.emplace_back(::eventfd(0, EFD_CLOEXEC));
        fds.push_back(keep.back().get());
    }
    std::array<std::byte, 16> buf{};
    for (const std::size_t max : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
        CAPTURE(max);
        send_fds(s.a.get(), bytes_of("x"), fds);
        const std::size_t before = open_fd_count();
        try {
            (void)recv_fds(s.b.get(), buf, max, 1s);
            FAIL("recv_fds accepted too many descriptors");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::protocol_error);
            CHECK(std::string(e.what()).find("descriptors") != std::string::npos);
        }
        CHECK(open_fd_count() == before);  // nothing leaked into this process
    }
    // Exactly as many as allowed is fine.
    send_fds(s.a.get(), bytes_of("y"), std::span<const int>(fds).first(3));
    ReceivedFds got = recv_fds(s.b.get(), buf, 3, 1s);
    CHECK(got.fds.size() == 3);
}

TEST_CASE("recv_fds times out, and reports a peer that closed" * doctest::timeout(10)) {
    SocketPair s;
    std::array<std::byte, 16> buf{};
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(error_of([&] { (void)recv_fds(s.b.get(), buf, 2, 50ms); }) == std::errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
    s.a.reset();
    CHECK(error_of([&] { (void)recv_fds(s.b.get(), buf, 2, 1s); }) == std::errc::connection_reset);
    // Bad arguments.
    CHECK(error_of([&] { (void)recv_fds(s.b.get(), {}, 2, 1s); }) == std::errc::invalid_argument);
    CHECK(error_of([&] { (void)recv_fds(s.b.get(), buf, MAX_PASSED_FDS + 1, 1s); }) ==
          std::errc::invalid_argument);
    SocketPair t;
    CHECK(error_of([&] { send_fds(t.a.get(), {}, {}); }) == std::errc::invalid_argument);
    std::vector<int> many(MAX_PASSED_FDS + 1, t.a.get());
    CHECK(error_of([&] { send_fds(t.a.get(), bytes_of("x"), many); }) == std::errc::invalid_argument);
    // A peer that has gone: EPIPE, not SIGPIPE.
    t.b.reset();
    CHECK(error_of([&] { send_fds(t.a.get(), bytes_of("x"), {}); }) == std::errc::broken_pipe);
}

TEST_CASE("two processes exchange frames over rings and doorbells passed by SCM_RIGHTS" *
          doctest::timeout(60)) {
    constexpr std::uint64_t FRAMES = 200'000;
    constexpr std::size_t CAPACITY = 64 * 1024;
    SocketPair s;
    ChildGuard child{spawn([&]() -> int {
        s.a.reset();
        std::array<std::byte, 16> buf{};
        ReceivedFds got = recv_fds(s.b.get(), buf, 4, 10s);
        if (got.fds.size() != 4 || got.bytes != 4 || std::memcmp(buf.data(), "shm1", 4) != 0) return 20;
        MappedRing in = MappedRing::attach(std::move(got.fds[0]), test_digest(), CAPACITY);
        MappedRing out = MappedRing::attach(std::move(got.fds[1]), test_digest(), CAPACITY);
        EventFd my_bell = EventFd::adopt(std::move(got.fds[2]));
        EventFd parent_bell = EventFd::adopt(std::move(got.fds[3]));
        RingConsumer c(in.region(), ConsumerOptions{.wait_fd = my_bell.fd(), .notify_fd = parent_bell.fd(),
                                                    .spin = 20us});
        RingProducer p(out.region(), ProducerOptions{.notify_fd = parent_bell.fd(), .wait_fd = my_bell.fd()});
        std::uint64_t next = 0;
        bool ok = true;
        for (;;) {
            auto n = c.read_batch([&](const FrameView& v) {
                std::uint64_t seq;
                std::memcpy(&seq, v.payload.data(), 8);
                if (seq != next || v.payload.size() != 8 + seq % 32) ok = false;
                if (seq % 1000 == 999) (void)p.try_write(1001, v.payload.first(8));  // echo
                ++next;
            });
            if (!n) return 21;
            if (*n > 0) continue;
            const RingWait w = c.wait(10s);
            if (w == RingWait::Closed) break;
            if (w != RingWait::Ready) return 22;
        }
        const auto total = std::bit_cast<std::array<std::byte, 8>>(next);
        if (!p.try_write(1002, total)) return 23;
        p.close();
        return ok && next == FRAMES ? 0 : 24;
    })};

    // The parent creates both rings and both doorbells and passes them over the socket.
    s.b.reset();
    MappedRing to_child = MappedRing::create(CAPACITY, test_digest());
    MappedRing to_parent = MappedRing::create(CAPACITY, test_digest());
    EventFd child_bell = EventFd::create();
    EventFd parent_bell = EventFd::create();
    const int fds[] = {to_child.fd(), to_parent.fd(), child_bell.fd(), parent_bell.fd()};
    send_fds(s.a.get(), bytes_of("shm1"), fds);
    RingProducer p(to_child.region(),
                   ProducerOptions{.notify_fd = child_bell.fd(), .wait_fd = parent_bell.fd(), .spin = 20us});
    RingConsumer c(to_parent.region(),
                   ConsumerOptions{.wait_fd = parent_bell.fd(), .notify_fd = child_bell.fd(), .spin = 20us});
    std::array<std::byte, 40> buf{};
    for (std::uint64_t seq = 0; seq < FRAMES;) {
        const std::size_t len = 8 + seq % 32;
        std::memcpy(buf.data(), &seq, 8);
        auto r = p.try_write(1000, {buf.data(), len});
        if (r) {
            if (++seq % 20'000 == 0) std::this_thread::sleep_for(2ms);  // the child parks
            continue;
        }
        REQUIRE(r.error() == WriteError::Full);
        REQUIRE(p.wait_for_space(len, 10s) == RingWait::Ready);
    }
    p.close();

    std::vector<std::uint64_t> echoes;
    std::uint64_t total = 0;
    for (bool closed = false; !closed;) {
        auto n = c.read_batch([&](const FrameView& v) {
            std::uint64_t x;
            std::memcpy(&x, v.payload.data(), 8);
            if (v.type_id == 1001) echoes.push_back(x);
            if (v.type_id == 1002) total = x;
        });
        REQUIRE(n.has_value());
        if (*n > 0) continue;
        const RingWait w = c.wait(10s);
        REQUIRE(w != RingWait::Timeout);
        closed = w == RingWait::Closed;
    }
    CHECK(total == FRAMES);
    REQUIRE(echoes.size() == FRAMES / 1000);
    for (std::size_t i = 0; i < echoes.size(); ++i) CHECK(echoes[i] == i * 1000 + 999);
    CHECK(wait_child(child.pid) == 0);
    child.pid = 0;
}

}  // TEST_SUITE
