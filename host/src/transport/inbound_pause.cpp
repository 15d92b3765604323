#include "inbound_pause.hpp"

namespace mycelium::link::detail {

void InboundPause::hold(std::span<const MessageView> run) {
    paused_ = true;
    for (const MessageView& frame : run) held_.push(frame.type_id, frame.payload);
}

InboundPause::Stopped InboundPause::resume() noexcept {
    paused_ = false;
    held_.clear();
    return std::exchange(stopped_, {});
}

void InboundPause::cancel() noexcept {
    timer_.cancel();
    held_.clear();
}

}  // namespace mycelium::link::detail
