#pragma once
// Internal to host/src/transport: reading a connection's socket.

#include <asio/error_code.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "shm/shm_setup.hpp"
#include "transport.hpp"

namespace mycelium::link::detail {

/// One asynchronous read at a time into the connection's read buffer. While the
/// shared-memory setup expects descriptors (an SHM_OFFER may come) it reads with
/// recvmsg and hands what came with the bytes to the setup: a plain read would make the
/// kernel drop (close) them.
///
/// Threading: the connection's strand.
class SocketReader {
public:
    /// What the reader asks of its connection.
    class Link {
    public:
        /// A read completed: `bytes` (valid until the next read) or the error.
        virtual void on_read(const asio::error_code& ec, std::span<const std::byte> bytes) = 0;
        /// Keeps the connection alive while a read is in flight.
        virtual std::shared_ptr<void> keep_alive() = 0;

    protected:
        ~Link() = default;
    };

    SocketReader(Link& link, Pipe& socket, ShmSetup& shm);

    /// Starts the next read.
    void read();

private:
    void read_with_fds();

    Link& link_;
    Pipe& socket_;
    ShmSetup& shm_;
    std::vector<std::byte> buffer_;
};

}  // namespace mycelium::link::detail
