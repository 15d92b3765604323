#pragma once
// Internal to host/src/transport: a blocking connect with a deadline, for the transports'
// `connect` operation (LinkClient). POSIX sockets, not Asio: the caller wants one
// descriptor and plain blocking calls.

#include <sys/socket.h>

#include <chrono>
#include <string>

namespace mycelium::link::detail {

/// Connects a new stream socket of `family` to `addr` by `deadline` and returns it in
/// blocking mode (close-on-exec). Throws std::system_error naming `what`.
int connect_with_deadline(int family, const sockaddr* addr, socklen_t length,
                          std::chrono::steady_clock::time_point deadline, const std::string& what);

}  // namespace mycelium::link::detail
