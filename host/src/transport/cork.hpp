#pragma once
// Internal to host/src/transport: corks (docs/wire-protocol.md, "After the switch").
//
// While a cork is installed on a thread, the frames that thread sends into shared-memory
// rings are staged, and each ring is published once, when the cork is flushed, instead of
// once per frame (a publish is a full barrier that waits for the index's cache line while
// the reader polls it).
//
// - An io thread's read batch (the ring reader, the socket's frame decoder) corks the
//   rings of its own server's links (a reply on the same link, a client's frame relayed
//   to another client) while more frames of the batch follow: the frame that comes last
//   publishes at once, with everything staged before it, and the batch's end publishes
//   the rings it did not reach. This is decided from what the reader already knows (no
//   load of the other side's index), so a lone frame, a reply in a ping-pong, leaves as
//   early as before.
// - A PublishBatch (link.hpp) corks every ring its thread sends into, until it ends.
//
// A cork holds the links it must publish (at most CORK_LINKS; past that, frames are
// published at once) and a "batch hold" on each one's server, released after the link
// reference: ~LinkServer waits for the holds, so a link is never destroyed after its
// io_context (on an io thread the hold is released before the thread can be joined).
// Staged frames are never stranded: the cork is flushed on every way out, 64 frames or a
// quarter of the ring publish at once, a full ring publishes before anything else, and
// closing a link publishes what is left.

#include <memory>
#include <vector>

#include "server_state.hpp"

namespace mycelium::link::detail {

/// A link whose ring may hold frames a cork publishes later.
class Corkable {
public:
    /// Publishes what the link's ring holds staged. Any thread; never waits.
    virtual void publish_staged() noexcept = 0;
    /// A reference that keeps the link alive while a cork holds it; null once it is going.
    virtual std::shared_ptr<Corkable> corkable_ref() noexcept = 0;

protected:
    ~Corkable() = default;
};

/// Installs a cork on the calling thread for its lifetime.
/// Thread safety: made, used and destroyed on one thread; nests.
class CorkScope {
public:
    /// An io thread's read batch of `reader`: corks `server`'s links only.
    CorkScope(Corkable& reader, const ServerState& server) noexcept;
    /// A PublishBatch: corks every link.
    CorkScope() noexcept;
    ~CorkScope();
    CorkScope(const CorkScope&) = delete;
    CorkScope& operator=(const CorkScope&) = delete;
    /// Publishes what is staged so far and keeps corking.
    void publish() noexcept;
    /// Publishes and uninstalls (idempotent; the destructor calls it).
    void end() noexcept;
    /// Whether frames of the read batch follow the one about to be handled.
    void set_more(bool more) noexcept { cork_.more = more; }

    /// What a thread's cork leaves to publish.
    struct Cork {
        const ServerState* server = nullptr;  // a read batch: only this server's links; nullptr: any
        Corkable* reader = nullptr;           // the link whose read batch this is
        bool more = true;                     // frames of the batch follow the one being handled
        bool reader_staged = false;
        Cork* outer = nullptr;
        struct Held {
            std::shared_ptr<Corkable> link;
            ServerState* server;  // its batch hold is released after `link`
        };
        std::vector<Held> others;  // links with staged frames
    };

private:
    Cork cork_;
};

/// Whether the frames `link` (of `server`) is about to stage in its ring may stay staged:
/// true when this thread's cork will publish them (it then holds `link` until it does).
bool cork_will_publish(Corkable& link, ServerState& server) noexcept;
/// Publishes and drops what the calling thread's corks hold for `server`'s links
/// (~LinkServer, before it waits for the other threads' holds).
void release_thread_batch_holds(ServerState& server) noexcept;

}  // namespace mycelium::link::detail
