// A user's own main(): a mycelium::Host with a C++ subscriber and a Python script.
// C++ publishes Requests, the script answers with Replies, C++ checks them. Host::publish
// checks each Request against the contracts' rules first: id 0 is refused.

#include <mycelium/host.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include "messages.hpp"  // generated: example::Request, example::Reply

int main() {
    using namespace std::chrono_literals;
    mycelium::Host host({
        .contracts = EXAMPLE_DIR "/contracts.yaml",
        .scripts = {EXAMPLE_DIR "/doubler.py"},
        .duration = 10s,  // a safety net: the example stops itself sooner
    });

    int replies = 0;
    bool all_right = true;
    auto sub = host.bus().subscribe<example::Reply>([&](const example::Reply& reply) {
        all_right = all_right && reply.value == reply.id * 2.0 && reply.note.view() == "doubled in Python";
        if (++replies == 3) host.stop();
    });

    std::string refusal;
    host.on_started([&] {
        if (auto r = host.publish(example::Request{.id = 0, .value = 1.0}); !r) refusal = r.error().text();
        for (std::uint32_t id = 1; id <= 3; ++id) (void)host.publish(example::Request{.id = id, .value = double(id)});
    });

    const int code = host.run();
    std::printf("C++ got %d replies from Python, %s; id 0 refused: %s\n", replies,
                all_right ? "all doubled" : "WRONG VALUES", refusal.empty() ? "NO" : refusal.c_str());
    return code == 0 && replies == 3 && all_right && !refusal.empty() ? 0 : 1;
}
