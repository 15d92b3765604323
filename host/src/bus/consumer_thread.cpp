// A queued subscription's own consumer thread (consumer_thread.hpp).

#include "consumer_thread.hpp"

#include <pthread.h>
#include <sched.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "bus_impl.hpp"

namespace mycelium::detail {

namespace {

void consume(const std::shared_ptr<ConsumerThread>& w, const std::weak_ptr<BusImpl>& bus_ref) {
    auto visit = [&](const MailboxView& v) {
        if (w->stop.load(std::memory_order_acquire)) return;  // closing: discard the rest
        try {
            w->invoke(w->context, MessageView{v.type_id, v.payload});
        } catch (...) {
            if (auto bus = bus_ref.lock()) bus->count_dropped(v.type_id);
            report_callback_exception(v.type_id);
        }
    };
    while (!w->stop.load(std::memory_order_acquire)) {
        if (w->mailbox->drain(visit, 256) != 0) continue;
        if (w->mailbox->wait(std::chrono::milliseconds(100)) == WaitStatus::Closed) break;
    }
}

void pin_to_cpu(std::thread& t, int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<unsigned>(cpu), &set);
    if (pthread_setaffinity_np(t.native_handle(), sizeof(set), &set) != 0)
        spdlog::warn("bus: could not pin a consumer thread to cpu {}", cpu);
}

}  // namespace

void start_consumer(const std::shared_ptr<ConsumerThread>& consumer, std::weak_ptr<BusImpl> bus, int cpu) {
    consumer->thread = std::thread([w = consumer, bus = std::move(bus)] { consume(w, bus); });
    pin_to_cpu(consumer->thread, cpu);
}

}  // namespace mycelium::detail
