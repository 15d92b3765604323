// Reading a connection's socket, with the descriptors an SHM_OFFER carries.

#include "socket_reader.hpp"

#include <cerrno>
#include <utility>

#include "mycelium/shm_os.hpp"

namespace mycelium::link::detail {

namespace {

constexpr std::size_t READ_BUFFER_SIZE = 64u * 1024u;

}  // namespace

SocketReader::SocketReader(Link& link, Pipe& socket, ShmSetup& shm)
    : link_(link), socket_(socket), shm_(shm), buffer_(READ_BUFFER_SIZE) {}

void SocketReader::read() {
    if (shm_.expects_descriptors()) return read_with_fds();
    socket_.async_read_some(asio::buffer(buffer_), [this, alive = link_.keep_alive()](const asio::error_code& ec,
                                                                                       std::size_t n) {
        link_.on_read(ec, std::span<const std::byte>(buffer_.data(), ec ? 0 : n));
    });
}

void SocketReader::read_with_fds() {
    // Its descriptors ride on the offer's first byte.
    socket_.async_wait(Pipe::wait_read, [this, alive = link_.keep_alive()](const asio::error_code& ec) {
        if (ec) return link_.on_read(ec, {});
        shm::ReadWithFds read = shm::read_with_fds(socket_.native_handle(), buffer_, shm::MAX_PASSED_FDS);
        const long n = read.result;
        shm_.keep_descriptors(std::move(read.fds));
        if (n > 0 && read.truncated) shm_.drop_descriptors();  // the offer is declined
        if (n < 0 && (read.error == EAGAIN || read.error == EWOULDBLOCK || read.error == EINTR)) return this->read();
        if (n < 0) return link_.on_read(asio::error_code(read.error, asio::system_category()), {});
        if (n == 0) return link_.on_read(asio::error::eof, {});
        link_.on_read({}, std::span<const std::byte>(buffer_.data(), static_cast<std::size_t>(n)));
    });
}

}  // namespace mycelium::link::detail
