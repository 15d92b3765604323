#pragma once
// The thread of a queued subscription that owns one (Bus::subscribe_queued): it drains
// the subscription's mailbox and calls the callback. Private header of host/src/bus/.

#include <atomic>
#include <memory>
#include <thread>

#include "mycelium/bus.hpp"

namespace mycelium::detail {

struct BusImpl;

/// Thread safety: `stop` from any thread; the rest is written before the thread starts.
struct ConsumerThread {
    std::shared_ptr<Mailbox> mailbox;
    std::unique_ptr<CallbackHolder> holder;
    void (*invoke)(void*, const MessageView&) = nullptr;
    void* context = nullptr;
    std::atomic<bool> stop{false};
    std::thread thread;
};

/// Starts `consumer`'s thread, pinned to `cpu` unless it is negative. A callback that
/// throws is logged and counted as dropped on `bus` while the bus lives.
/// Throws std::system_error if the thread cannot be started.
void start_consumer(const std::shared_ptr<ConsumerThread>& consumer, std::weak_ptr<BusImpl> bus, int cpu);

}  // namespace mycelium::detail
