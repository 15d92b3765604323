// libFuzzer target for SHM_OFFER handling on the client side (LinkClient::request_shm,
// host/src/transport/client.cpp): the descriptors that come with the offer over
// SCM_RIGHTS (shm::read_with_fds), their checks (sealed memfd, size, ring header,
// eventfd: MappedRing::attach, EventFd::adopt) and, once the rings are accepted, the
// frames read from the host->client ring. The host in this process sends the input's
// bytes together with descriptors of the input's choosing: valid rings (then patched
// with input bytes), eventfds, pipes, unsealed memfds, /dev/null.
// Checked: no crash or leak of descriptors (the count of open descriptors is the same
// after each run), and a refused offer leaves the client on the socket.
//
// Input layout: byte 0 = descriptor count (n % 7; bit 3: the host closes its side after
// its bytes), then per descriptor a kind byte (k % 5: 0 ring, 1 eventfd, 2 pipe,
// 3 unsealed memfd, 4 /dev/null); a ring also takes a capacity byte (64 << (c % 7)),
// then a patch: u16 offset, u8 length, that many bytes written over the region. The
// rest is the host's byte stream, sent with the descriptors on its first byte.

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_host.hpp"
#include "mycelium/shm_os.hpp"
#include "mycelium/shm_ring.hpp"

namespace {

namespace link = mycelium::link;
namespace shm = mycelium::shm;
using mycelium::fuzz::check;
using mycelium::fuzz::Host;

constexpr const char* CONTRACTS = R"(messages:
  Tick:
    tlv_type: 1000
    fields:
      price: f64
      qty: u32
)";

Host& host() {
    static Host h(CONTRACTS);
    return h;
}

std::size_t open_descriptors() {
    std::size_t n = 0;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return 0;
    while (const dirent* e = ::readdir(dir)) n += e->d_name[0] != '.';
    ::closedir(dir);
    return n;
}

class Input {
public:
    Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::uint8_t u8() { return at_ < size_ ? data_[at_++] : 0; }
    std::span<const std::uint8_t> take(std::size_t n) {
        n = std::min(n, size_ - at_);
        const std::span<const std::uint8_t> out(data_ + at_, n);
        at_ += n;
        return out;
    }
    std::span<const std::uint8_t> rest() { return take(size_ - at_); }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t at_ = 0;
};

/// One descriptor of the input's choosing, owned.
shm::UniqueFd make_descriptor(Input& in, std::vector<shm::UniqueFd>& keep) {
    switch (in.u8() % 5) {
        case 0: {
            const std::size_t capacity = std::size_t{64} << (in.u8() % 7);
            auto ring = shm::MappedRing::create(capacity, host().registry.digest(), "fuzz-ring");
            const std::size_t offset = (in.u8() | (in.u8() << 8)) % ring.bytes().size();
            const auto patch = in.take(in.u8());
            const std::size_t n = std::min(patch.size(), ring.bytes().size() - offset);
            std::memcpy(ring.bytes().data() + offset, patch.data(), n);
            // The mapping goes with `ring`; the memfd's pages stay with the descriptor.
            return shm::UniqueFd(::dup(ring.fd()));
        }
        case 1: return shm::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        case 2: {
            int p[2];
            check(::pipe2(p, O_CLOEXEC) == 0);
            keep.emplace_back(p[1]);
            return shm::UniqueFd(p[0]);
        }
        case 3: {
            shm::UniqueFd fd(::memfd_create("fuzz-unsealed", MFD_CLOEXEC));
            check(::ftruncate(fd.get(), shm::ring_region_size(4096)) == 0);
            return fd;
        }
        default: return shm::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    }
}

constexpr auto NOW = std::chrono::milliseconds(0);

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)host();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::size_t before = open_descriptors();
    {
        Input in(data, size);
        const std::uint8_t head = in.u8();
        std::vector<shm::UniqueFd> fds;
        std::vector<shm::UniqueFd> keep;  // the write ends of pipes, open while the client looks
        for (std::size_t i = 0; i < head % 7u; ++i) fds.push_back(make_descriptor(in, keep));
        auto stream = in.rest();

        auto connection = host().connect();
        link::LinkClient& client = connection.first;
        const shm::UniqueFd served(connection.second);
        client.set_send_timeout(NOW);
        client.set_shm_spin(std::chrono::nanoseconds(0));  // every wait here is for nothing
        check(static_cast<bool>(client.hello(link::Role::Client, "fuzz")));
        if (!stream.empty()) {
            std::vector<int> raw;
            for (const auto& fd : fds) raw.push_back(fd.get());
            const auto bytes = std::as_bytes(std::span(stream.data(), std::min<std::size_t>(stream.size(), 64 * 1024)));
            shm::send_fds(served.get(), bytes, raw, NOW);
        }
        fds.clear();  // the client has its own copies now
        if (head & 8u) ::shutdown(served.get(), SHUT_WR);

        const auto setup = client.request_shm(0, NOW);
        if (!setup) check(!client.shm_active());
        if (client.shm_active()) {
            // The rings are the host's: frames go out into one, come in from the other.
            const std::vector<std::byte> payload(16);
            (void)client.send(1000, payload);
            check(!client.shm_diagnostics().receive_ring.empty());
        }
        for (int i = 0; i < 16; ++i) {
            auto frame = client.receive(NOW);
            if (!frame) break;
            check(frame->payload.size() <= mycelium::schema::DEFAULT_MAX_PAYLOAD);
        }
    }
    // Every descriptor that came with the offer is closed or owned by the (closed) client.
    check(open_descriptors() == before);
    return 0;
}
