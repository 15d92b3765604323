"""The Python half of the built-in module mycelium_native.

Compiled into mycelium-host and executed in the module's namespace when the module is
first imported. The C++ half (embedded/src/native_module.cpp) provides the names with a
leading underscore used here: _log. Callbacks (Stream._push among them) run on the
host's dispatcher thread; the rest runs on whichever thread calls it.
"""

import asyncio
import collections
import logging


class MyceliumError(Exception):
    """Base class of every error mycelium_native raises."""


class SchemaMismatch(MyceliumError, ValueError):
    """The schema digest a script expects is not the one the host loaded."""


class ValidationError(MyceliumError, ValueError):
    """A field breaks a rule of the contracts; names the message, the field and the rule.

    Also made as a plain exception (no arguments, or a text), as Mycelium's code makes it:
    the three names are then None."""

    def __init__(self, *args):
        if len(args) != 4:
            super().__init__(*args)
            self.message = self.field = self.rule = None
            return
        message, field, rule, detail = args
        super().__init__(f"{message}.{field}: {rule}: {detail}")
        self.message = message
        self.field = field
        self.rule = rule


class NotAMessageError(MyceliumError, TypeError, ValueError):
    """An object that is not a message (or a class that is not a message class) where one
    is expected. A TypeError, and a ValueError as Mycelium raised, so either except works."""


class DecodeError(MyceliumError, ValueError):
    """Bytes that are not a valid encoding of the message."""


class QueueFull(MyceliumError):
    """A subscriber's queue is full and its policy is 'fail' (or waiting would deadlock)."""


class ClosedError(MyceliumError, RuntimeError):
    """The Runtime, subscription or host has been closed."""


class HostLogHandler(logging.Handler):
    """Routes Python logging records into the host's log, under the logger's name (the
    root logger's records under the script's), with the script's file name."""

    def emit(self, record):
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
            return
        script = record.pathname.rsplit("/", 1)[-1] if record.pathname else ""
        _log(record.levelno, record.name, text, script)  # noqa: F821 - provided by the C++ half


def _install_log_handler(level):
    root = logging.getLogger()
    if not any(isinstance(h, HostLogHandler) for h in root.handlers):
        handler = HostLogHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level)


# ---------------------------------------------------------------- asyncio
#
# Callbacks run on the host's dispatcher thread, not in the script's event loop. A
# stream's callback queues the message and, when a coroutine waits for one, wakes it
# with call_soon_threadsafe: the loop's own thread-safe door, no polling.


class Stream:
    """`async for msg in rt.stream(Cls)`: messages of one type, in order.

    Buffers up to `maxsize` messages the consumer has not awaited yet; past that the
    oldest is dropped and counted in `dropped` (the host's queue stays bounded either way).
    """

    def __init__(self, runtime, cls, maxsize=65536):
        self._queue = collections.deque()
        self._maxsize = maxsize
        self._waiter = None
        self._closed = False
        self.dropped = 0
        self._subscription = runtime.subscribe(cls, self._push)

    def _push(self, message):
        """The callback, on the dispatcher thread."""
        if len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(message)
        # After the append: a consumer that set its waiter before it sees the message
        # is woken here; one that sets it after sees the message (see __anext__).
        waiter = self._waiter
        if waiter is not None:
            loop = waiter.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, waiter)

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                if not self._queue:  # a message queued before the waiter was visible
                    await waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def get(self, timeout=None):
        """The next message; raises TimeoutError after `timeout` seconds."""
        if timeout is None:
            return await self.__anext__()
        return await asyncio.wait_for(self.__anext__(), timeout)

    def close(self):
        self._closed = True
        self._subscription.close()
        waiter = self._waiter
        if waiter is not None:
            loop = waiter.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, waiter)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _wake(waiter):
    if not waiter.done():
        waiter.set_result(None)


async def _recv(runtime, cls, timeout):
    stream = Stream(runtime, cls, maxsize=1)
    try:
        return await stream.get(timeout)
    finally:
        stream.close()


def _join_script_threads(timeout):
    """Waits up to `timeout` seconds for the scripts' non-daemon threads, then lets the
    interpreter finalize without them: CPython would otherwise join them forever."""
    import threading
    import time

    deadline = time.monotonic() + timeout
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is current or thread.daemon or not thread.is_alive():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            logging.getLogger("mycelium").warning(
                "thread %r is still running at shutdown; exiting without it", thread.name)
    threading._shutdown = lambda: None  # noqa: SLF001 - the host decides when to stop
