// loopback_peer_uid: one SOCK_DIAG_BY_FAMILY request for the far end's socket, looked up
// by its exact 4-tuple (no dump of every socket).

#include "loopback_owner.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

namespace mycelium::link::detail {

namespace {

bool is_loopback(const sockaddr_storage& addr) noexcept {
    if (addr.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
        return (ntohl(in.sin_addr.s_addr) >> 24) == 127;
    }
    if (addr.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
        if (IN6_IS_ADDR_LOOPBACK(&in6.sin6_addr)) return true;
        return IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr) && in6.sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

// Port and address of one end, as inet_diag_sockid wants them (network order).
void fill_end(const sockaddr_storage& addr, __be16& port, __be32 (&out)[4]) noexcept {
    if (addr.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
        port = in.sin_port;
        out[0] = in.sin_addr.s_addr;
    } else {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
        port = in6.sin6_port;
        std::memcpy(out, &in6.sin6_addr, sizeof in6.sin6_addr);
    }
}

class NetlinkSocket {
public:
    NetlinkSocket() noexcept : fd_(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) {}
    ~NetlinkSocket() {
        if (fd_ >= 0) ::close(fd_);
    }
    NetlinkSocket(const NetlinkSocket&) = delete;
    NetlinkSocket& operator=(const NetlinkSocket&) = delete;
    int fd() const noexcept { return fd_; }

private:
    int fd_;
};

}  // namespace

std::optional<uid_t> loopback_peer_uid(int fd) noexcept {
    sockaddr_storage ours{}, theirs{};
    socklen_t ours_length = sizeof ours, theirs_length = sizeof theirs;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ours), &ours_length) != 0) return std::nullopt;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&theirs), &theirs_length) != 0) return std::nullopt;
    if (!is_loopback(theirs) || theirs.ss_family != ours.ss_family) return std::nullopt;

    NetlinkSocket netlink;
    if (netlink.fd() < 0) return std::nullopt;
    // The kernel answers at once; the timeout only bounds a kernel that does not.
    const timeval timeout{0, 100'000};
    ::setsockopt(netlink.fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

    struct Request {
        nlmsghdr header;
        inet_diag_req_v2 diag;
    } request{};
    request.header.nlmsg_len = sizeof request;
    request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    request.header.nlmsg_flags = NLM_F_REQUEST;
    request.diag.sdiag_family = static_cast<__u8>(theirs.ss_family);
    request.diag.sdiag_protocol = IPPROTO_TCP;
    request.diag.idiag_states = ~0u;
    // The far end's socket: its source is their address, its destination ours.
    fill_end(theirs, request.diag.id.idiag_sport, request.diag.id.idiag_src);
    fill_end(ours, request.diag.id.idiag_dport, request.diag.id.idiag_dst);
    request.diag.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    request.diag.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(netlink.fd(), &request, sizeof request, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) !=
        static_cast<ssize_t>(sizeof request))
        return std::nullopt;

    alignas(nlmsghdr) char answer[1024];
    const ssize_t n = ::recv(netlink.fd(), answer, sizeof answer, 0);
    if (n < static_cast<ssize_t>(NLMSG_LENGTH(sizeof(inet_diag_msg)))) return std::nullopt;
    const auto* header = reinterpret_cast<const nlmsghdr*>(answer);
    if (!NLMSG_OK(header, static_cast<unsigned>(n)) || header->nlmsg_type != SOCK_DIAG_BY_FAMILY) return std::nullopt;
    const auto* message = static_cast<const inet_diag_msg*>(NLMSG_DATA(header));
    return static_cast<uid_t>(message->idiag_uid);
}

}  // namespace mycelium::link::detail
