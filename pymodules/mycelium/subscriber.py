"""Subscriber: the messages of one class that arrive on one transport."""

import asyncio
import queue

from ._classes import name_of
from .errors import ClosedError, Timeout

_FAILED = object()  # queued after the last message when the transport fails or closes
#: What a transport's receive_spinning() returns when it has no message to hand over
#: directly (the caller takes from its queue): None could be a message.
NOTHING = object()


def _resolve(future):
    if not future.done():
        future.set_result(None)


class Subscriber:
    """Messages of one class, in arrival order, from the transport's reader thread.

    `recv(timeout)` blocks (raises `Timeout`, a `queue.Empty`, when nothing came in
    time), `recv_nowait()` raises `queue.Empty` at once, `await recv_async()` waits
    without blocking the event loop (no executor thread). When the transport fails for
    good (schema mismatch) or is closed, the messages already queued are still returned,
    then every call raises that error.

    By default the queue is unbounded, as in Mycelium's SDK. With `maxsize=N` it keeps the
    newest N messages and counts the ones it dropped in `dropped`.

    Made by `transport.subscriber(cls)`. `Subscriber(message_cls, message_queue)`,
    Mycelium's own signature, works too: it receives what its owner puts in that
    `queue.Queue` (decoded messages).

    Thread safety: any number of threads (and event loops) may receive from one
    subscriber; each message goes to one of them.
    """

    def __init__(self, message_cls, message_queue):
        """Mycelium's signature: the messages come from `message_queue`, filled by its owner."""
        self._setup(None, message_cls, message_queue, 0)

    @classmethod
    def _on_transport(cls, transport, message_cls, maxsize=0):
        """The subscriber a transport feeds (through _push) from its reader thread."""
        sub = cls.__new__(cls)
        sub._setup(transport, message_cls, queue.SimpleQueue(), maxsize)
        return sub

    def _setup(self, transport, message_cls, message_queue, maxsize):
        self._transport = transport
        self._cls = message_cls
        self._queue = message_queue
        self._maxsize = maxsize
        self._waiters = []
        self._failure = None
        self.dropped = 0
        # A shared-memory transport lets recv() read the ring from the calling thread for a
        # while before it blocks: no hand-over from the reader thread, no wake-up.
        self._receive_spinning = transport.receive_spinning if transport is not None else None
        self._recv_spin = transport.recv_spin if transport is not None else 0.0

    @property
    def message_cls(self):
        return self._cls

    def queued(self):
        """How many messages wait in this subscriber's queue (a transport reading for it
        in recv() may hand a message over directly only when none wait, to keep order)."""
        return self._queue.qsize()

    # ------------------------------------------------------------- reader thread side

    def _push(self, message):
        q = self._queue
        if self._maxsize and q.qsize() >= self._maxsize:
            try:
                q.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
        q.put(message)
        if self._waiters:
            self._wake()

    def _fail(self, exc):
        if self._failure is None:
            self._failure = exc
            self._queue.put(_FAILED)
        self._wake()

    def _wake(self):
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass

    # ------------------------------------------------------------- consumer side

    def _raise_failure(self):
        self._queue.put(_FAILED)  # for the next caller
        raise self._failure

    def recv(self, timeout=None):
        """The next message; blocks up to `timeout` seconds (None: for ever).

        Raises `Timeout` (a `queue.Empty` and a `TimeoutError`) when nothing arrived,
        `SchemaMismatch`/`TransportError` when the transport failed, `ClosedError` after
        close()."""
        spin = self._recv_spin
        if spin > 0 and self._receive_spinning is not None:
            if timeout is not None and timeout < spin:
                spin = timeout
            message = self._receive_spinning(self, spin)
            if message is not NOTHING:
                return message
        try:
            message = self._queue.get(True, timeout)
        except queue.Empty:
            raise Timeout(f"no {name_of(self._cls)} within {timeout} s") from None
        if message is _FAILED:
            self._raise_failure()
        return message

    def recv_nowait(self):
        """The next message if one is queued; raises `queue.Empty` otherwise."""
        if self._receive_spinning is not None:
            message = self._receive_spinning(self, 0.0)  # one look at the ring
            if message is not NOTHING:
                return message
        message = self._queue.get_nowait()
        if message is _FAILED:
            self._raise_failure()
        return message

    async def recv_async(self, timeout=None):
        """The next message, awaited on the running event loop; `Timeout` after `timeout` s."""
        loop = asyncio.get_running_loop()
        if self._transport is None:
            # A queue someone else fills wakes no event loop: wait in an executor thread,
            # as Mycelium's Subscriber does.
            return await loop.run_in_executor(None, self.recv, timeout)
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                return self.recv_nowait()
            except queue.Empty:
                pass
            waiter = (loop, loop.create_future())
            self._waiters.append(waiter)
            try:
                if not self._queue.empty():
                    continue  # arrived between the check and the registration
                if deadline is None:
                    await waiter[1]
                else:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise Timeout(f"no {name_of(self._cls)} within {timeout} s")
                    try:
                        await asyncio.wait_for(waiter[1], remaining)
                    except asyncio.TimeoutError:
                        raise Timeout(f"no {name_of(self._cls)} within {timeout} s") from None
            finally:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass

    def __iter__(self):
        """Yields messages until the subscriber or its transport is closed."""
        while True:
            try:
                yield self.recv()
            except ClosedError:
                return

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.recv_async()
        except ClosedError:
            raise StopAsyncIteration from None

    def close(self):
        """Stops delivery to this subscriber (UNSUBSCRIBE when it was the type's last one);
        queued messages can still be received, then ClosedError. Idempotent."""
        if self._transport is not None:
            self._transport.remove_sink(self._cls, self)
        self._fail(ClosedError(f"the {name_of(self._cls)} subscriber is closed"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["Subscriber"]
