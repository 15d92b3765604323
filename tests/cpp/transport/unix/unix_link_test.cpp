// The unix: transport: the link conformance suite over Unix sockets in a temp dir, and
// what only socket files have (their mode, stale files, removal at stop).

#include "transport/link_conformance.hpp"

using namespace link_conformance;

namespace {

struct UnixPlace : Place {
    TempDir dir;
    std::string where(const std::string& name) override { return dir.socket(name + ".sock"); }
    bool passes_descriptors() const override { return true; }
};

}  // namespace

MYCELIUM_LINK_CONFORMANCE("unix", UnixPlace)

TEST_SUITE("transport.unix") {
    TEST_CASE("drop_oldest keeps the host's memory bounded while a reader stalls") {
        TempDir dir;
        ServerOptions o;
        o.send_queue_frames = 4;
        o.slow_consumer = SlowConsumerPolicies::all(SlowConsumerPolicy::DropOldest);
        Node node(dir.socket(), o);
        LinkClient stalled = legacy(node.ep);  // never reads
        REQUIRE(stalled.sync());
        const auto in_use = [] {
            const auto m = ::mallinfo2();
            return m.uordblks + m.hblkhd;  // small allocations + mmapped large ones
        };
        // Fill the socket buffer first, so that the write in flight stalls.
        for (std::uint64_t seq = 0; seq < 200; ++seq) REQUIRE(node.bus.publish(BLOB, blob(seq)));
        const std::size_t before = in_use();
        for (std::uint64_t seq = 200; seq < 3200; ++seq) REQUIRE(node.bus.publish(BLOB, blob(seq)));
        const std::size_t after = in_use();
        // 3000 frames of 16 KiB are 48 MiB; what stays queued is 4 of them plus a dead
        // prefix of at most as much as the live part.
        CHECK(after < before + 8 * 1024 * 1024);
        CHECK(node.server.stats().dropped_frames > 2900);
        CHECK(node.server.stats().slow_consumers == 0);
    }
    TEST_CASE("the socket file gets mode 0660, or the configured mode, and is removed at stop") {
        TempDir dir;
        {
            Node node(dir.socket("a.sock"));
            struct stat st {};
            REQUIRE(::stat((dir.path / "a.sock").c_str(), &st) == 0);
            CHECK((st.st_mode & 0777) == 0660);
            node.server.stop();
            CHECK_FALSE(fs::exists(dir.path / "a.sock"));
        }
        ServerOptions o;
        o.socket_mode = 0600;
        Node node(dir.socket("b.sock"), o);
        struct stat st {};
        REQUIRE(::stat((dir.path / "b.sock").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
    }
    TEST_CASE("a stale socket file is replaced but a live one or a regular file is not") {
        TempDir dir;
        const fs::path path = dir.path / "node.sock";
        {
            // A socket file nobody listens on, as a crashed host leaves behind.
            const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
            REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
            ::close(fd);
            REQUIRE(fs::exists(path));
        }
        Node node(dir.socket());
        LinkClient client = legacy(node.ep);

        Bus other_bus;
        LinkServer other(other_bus, registry());
        CHECK_THROWS_AS(other.listen(dir.socket()), std::system_error);
        REQUIRE(node.bus.publish(COUNTER, counter(1, 1)));
        expect_counter(client, 1);  // the live server was left alone

        std::ofstream(dir.path / "file.txt") << "not a socket";
        CHECK_THROWS_AS(other.listen(dir.socket("file.txt")), std::system_error);
        CHECK(fs::exists(dir.path / "file.txt"));
    }
}
