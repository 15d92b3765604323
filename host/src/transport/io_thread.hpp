#pragma once
// Internal to host/src/transport: which threads are a LinkServer's io threads. Such a
// thread must never wait for a queue or a ring to have room: the reader that would make
// room may be itself, or another connection it serves.

namespace mycelium::link::detail {

inline thread_local bool t_link_io_thread = false;

/// Whether the calling thread is an io thread of some LinkServer in this process.
inline bool on_link_io_thread() noexcept { return t_link_io_thread; }
/// Marks the calling thread as a LinkServer io thread for its life (server.cpp).
inline void mark_link_io_thread() noexcept { t_link_io_thread = true; }

}  // namespace mycelium::link::detail
