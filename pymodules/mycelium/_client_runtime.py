"""The in-host API (`mycelium_native`'s Runtime, publish, subscribe, timers, hooks, asyncio
streams) for a process outside mycelium-host. `mycelium.runtime` picks this module or the
built-in one; scripts import from `mycelium`.

Where a Runtime connects (first match):

1. `endpoint=` given to Runtime (an SDK extension): `unix:PATH`, `shm:PATH` or `tcp:HOST:PORT`;
2. `MYCELIUM_ENDPOINT` (same syntax, set by the host for its workers), else
   `MYCELIUM_SOCKET` (a path, as Mycelium's bridge sets it, or the same syntax);
3. the topology: `topology_path=` or `MYCELIUM_TOPOLOGY`, and the node of `service_name=` or
   `MYCELIUM_SERVICE`: on this host its shared-memory rings when the node enables them
   (`[nodes.shm] enabled = true`), else its Unix socket; on another host its TCP address.

The schema digest: `schema_digest=`, else `MYCELIUM_SCHEMA_DIGEST` (hex), else the
`SCHEMA_DIGEST` of the module that defines the first message class used (codegen output
records it); the connection is made as soon as the digest is known.

Threads. The transport's reader thread decodes messages. One dispatcher thread per
process runs every callback, timer and hook, one at a time, like the host's Python
thread. Callbacks start as soon as a subscription exists (as with Mycelium's Runtime);
`run()` blocks until `stop()` or SIGINT/SIGTERM, running the `on_start` hooks first and,
at the end, draining the queued callbacks, running the `on_stop` hooks and closing every
Runtime. When a script's top level returns without calling `run()` while it has
subscriptions, timers or hooks, the SDK runs it at interpreter exit, so a script written
for `mycelium-host --script` runs unchanged as `python3 script.py`.

A Runtime also delivers what it publishes to its own subscriptions of that type (the host's
bus does the same for scripts inside it); the host never sends a client's frames back.
"""

import asyncio
import atexit
import collections
import heapq
import itertools
import logging
import os
import queue
import signal
import sys
import threading
import time
import weakref

from . import _wire, metrics
from ._classes import digest_of, name_of, type_id_of
from .errors import ClosedError, MyceliumError
from .publisher import Publisher
from .topology import Topology
from .endpoint import transport_for_endpoint

log = logging.getLogger("mycelium")

SHUTDOWN_TIMEOUT = 5.0  # seconds the queued callbacks may take to drain at stop


def _resolve_future(future):
    if not future.done():
        future.set_result(None)


# ------------------------------------------------------------------ the dispatcher


class _Dispatcher:
    """One daemon thread running callbacks, timers and hooks in order."""

    def __init__(self):
        self._queue = queue.SimpleQueue()  # (fn, arg) pairs; (None, None) wakes
        self._timers = []  # heap of (due, seq, timer)
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._thread = None
        self.errors = 0

    def _ensure(self):
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._main, name="mycelium-dispatcher", daemon=True)
                    self._thread.start()

    @property
    def thread(self):
        return self._thread

    def submit(self, fn, arg):
        self._ensure()
        self._queue.put((fn, arg))

    def add_timer(self, timer):
        with self._lock:
            heapq.heappush(self._timers, (timer.due, next(self._seq), timer))
        self.submit(None, None)  # recompute the wait

    def has_timers(self):
        """Whether a script's own timer is active (the SDK's internal ones do not keep a
        script serving)."""
        with self._lock:
            return any(entry[2].active and not entry[2].internal for entry in self._timers)

    def _next_delay(self):
        with self._lock:
            while self._timers and not self._timers[0][2].active:
                heapq.heappop(self._timers)
            if not self._timers:
                return None
            return max(0.0, self._timers[0][0] - time.monotonic())

    def _run_due_timers(self):
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > now:
                    return
                _, _, timer = heapq.heappop(self._timers)
                if not timer.active:
                    continue
                # A late timer runs once and resumes its cadence; it does not burst.
                timer.due += timer.interval
                if timer.due <= now:
                    timer.due = now + timer.interval
                heapq.heappush(self._timers, (timer.due, next(self._seq), timer))
            self.call(timer.fn, None, f"timer {timer.fn!r}")

    def call(self, fn, arg, where):
        try:
            if arg is None:
                fn()
            else:
                fn(arg)
        except Exception:  # noqa: BLE001 - logged and counted; the loop goes on
            self.errors += 1
            log.exception("%s raised", where)

    def _main(self):
        get = self._queue.get
        while True:
            try:
                fn, arg = get(True, self._next_delay())
            except queue.Empty:
                fn = None
            if fn is not None:
                try:
                    fn(arg)
                except Exception:  # noqa: BLE001 - fn catches its own; this is the last resort
                    log.exception("dispatcher: %r failed", fn)
            self._run_due_timers()


class Timer:
    """A repeating timer on the dispatcher thread; cancel() stops it (idempotent)."""

    def __init__(self, interval, fn, internal=False):
        self.interval = interval
        self.fn = fn
        self.due = time.monotonic() + interval
        self.active = True
        self.internal = internal

    def cancel(self):
        self.active = False


class _Process:
    """Process-wide state: hooks, stop request, the default Runtime, every Runtime."""

    def __init__(self):
        self.dispatcher = _Dispatcher()
        self.start_hooks = []
        self.stop_hooks = []
        self.started = False
        self.running = False
        self.finished = False
        self.stop_event = threading.Event()
        self.stopping = False
        self.exit_code = 0
        self.runtimes = weakref.WeakSet()
        self.default = None
        self.lock = threading.Lock()
        self.atexit_registered = False

    def register_atexit(self):
        if not self.atexit_registered:
            self.atexit_registered = True
            atexit.register(_run_at_exit)
            # Python 3.12+ refuses new threads at interpreter shutdown, where the
            # at-exit serving loop and the on_stop hooks run: start the thread now.
            self.dispatcher._ensure()


_process = _Process()


# ------------------------------------------------------------------ subscriptions


class _CallbackSink:
    """Routes a subscription's messages to the dispatcher thread."""

    def __init__(self, runtime, cls, callback):
        self.runtime = runtime
        self.cls = cls
        self.callback = callback
        self.active = True
        self._where = f"callback {callback!r} for {name_of(cls)}"
        self._submit = _process.dispatcher.submit

    def _push(self, message):  # reader thread, or the publishing thread (loopback)
        if not _process.stopping:  # after stop() only what is already queued is delivered
            self._submit(self._deliver, message)

    def _deliver(self, message):  # dispatcher thread
        if self.active:  # unsubscribed while the message was queued: dropped
            _process.dispatcher.call(self.callback, message, self._where)

    def _fail(self, exc):
        if self.active and not isinstance(exc, ClosedError):
            self.runtime._failed(exc)


class Subscription:
    """A subscription; close() stops delivery (idempotent)."""

    def __init__(self, sink):
        self._sink = sink

    @property
    def active(self):
        return self._sink.active and not self._sink.runtime.closed

    def close(self):
        if self._sink.active:
            self._sink.active = False
            self._sink.runtime._remove_sink(self._sink.cls, self._sink)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Stream:
    """`async for msg in rt.stream(Cls)`: messages of one type, in order, on an event loop.

    Buffers up to `maxsize` messages not yet awaited; past that the oldest is dropped and
    counted in `dropped`. Messages are handed over by the transport's reader thread with
    `call_soon_threadsafe` only when the consumer waits (no polling, no executor).

    Thread safety: one consumer (one event loop) per stream.
    """

    def __init__(self, runtime, cls, maxsize=65536):
        self._runtime = runtime
        self._cls = cls
        self._queue = collections.deque()
        self._maxsize = maxsize
        self._waiter = None
        self._failure = None
        self._push_lock = threading.Lock()  # the reader and a looping-back publisher push
        self.dropped = 0
        runtime._add_sink(cls, self)

    def _push(self, message):
        with self._push_lock:
            if len(self._queue) >= self._maxsize:
                try:
                    self._queue.popleft()
                    self.dropped += 1
                except IndexError:  # the consumer took it meanwhile
                    pass
            self._queue.append(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            try:
                waiter[0].call_soon_threadsafe(_resolve_future, waiter[1])
            except RuntimeError:  # the loop is closed
                pass

    def _fail(self, exc):
        if self._failure is None:
            self._failure = exc
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                waiter[0].call_soon_threadsafe(_resolve_future, waiter[1])
            except RuntimeError:
                pass

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self._queue:
            if self._failure is not None:
                if isinstance(self._failure, ClosedError):
                    raise StopAsyncIteration
                raise self._failure
            loop = asyncio.get_running_loop()
            waiter = (loop, loop.create_future())
            self._waiter = waiter
            try:
                if self._queue or self._failure is not None:
                    continue
                await waiter[1]
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        try:
            return self._queue.popleft()
        except IndexError:  # a full queue's oldest message was dropped by a push meanwhile
            return await self.__anext__()

    async def get(self, timeout=None):
        """The next message; raises TimeoutError after `timeout` seconds."""
        if timeout is None:
            return await self.__anext__()
        return await asyncio.wait_for(self.__anext__(), timeout)

    def close(self):
        self._runtime._remove_sink(self._cls, self)
        self._fail(ClosedError(f"the {name_of(self._cls)} stream is closed"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------ Runtime


def _endpoint_from_environment(topology_path, service_name):
    # The host sets MYCELIUM_ENDPOINT (unix:PATH) and MYCELIUM_SOCKET (the PATH, as
    # Mycelium's bridge did); an endpoint in MYCELIUM_SOCKET works too.
    socket_spec = os.environ.get("MYCELIUM_ENDPOINT") or os.environ.get("MYCELIUM_SOCKET")
    if socket_spec:
        if not socket_spec.startswith(("unix:", "tcp:", "shm:")):
            socket_spec = "unix:" + socket_spec  # a bare path
        return socket_spec
    topology_path = topology_path or os.environ.get("MYCELIUM_TOPOLOGY")
    if topology_path:
        if not service_name:
            raise MyceliumError(f"Runtime: topology {topology_path} needs a service name "
                                "(service_name= or MYCELIUM_SERVICE) to know which node to join")
        # Shared memory when the node offers it on this host (shm:PATH); the transport
        # stays on the node's Unix socket if the node then refuses.
        info = Topology.load(topology_path).connection_info(service_name, shm=True)
        return info["endpoint"]
    raise MyceliumError("Runtime: nowhere to connect outside mycelium-host: set MYCELIUM_SOCKET "
                        "(unix:PATH, shm:PATH or tcp:HOST:PORT), or MYCELIUM_TOPOLOGY and MYCELIUM_SERVICE, "
                        "or pass endpoint= / topology_path= and service_name=")


class Runtime:
    """The host's bus, from outside the host: Mycelium's `mycelium_native.Runtime` API.

    `Runtime(schema_digest=None, topology_path=None, service_name=None, *, endpoint=None,
    **transport_options)`; see the module docstring for where it connects. `publish(msg)`,
    `subscribe(Cls, cb)` (or `@rt.subscribe(Cls)`), `stream(Cls)`, `await recv(Cls)`,
    `every(s, fn)`, `close()`. After close(), publish/subscribe raise ClosedError.

    Thread safety: distinct objects safe; shared objects safe (publish from any thread).
    """

    def __init__(self, schema_digest=None, topology_path=None, service_name=None, *, endpoint=None,
                 **transport_options):
        self._service_name = service_name or os.environ.get("MYCELIUM_SERVICE") or None
        self._endpoint = endpoint or _endpoint_from_environment(topology_path, self._service_name)
        _wire.parse_endpoint(self._endpoint)  # a bad MYCELIUM_SOCKET fails here
        if schema_digest is None and os.environ.get("MYCELIUM_SCHEMA_DIGEST"):
            schema_digest = os.environ["MYCELIUM_SCHEMA_DIGEST"]
        self._digest = None if schema_digest is None else _wire.parse_digest(schema_digest)
        transport_options.setdefault("name", self._service_name or "python")
        self._options = transport_options
        self._transport = None
        self._metrics_timer = None
        self._lock = threading.Lock()
        self._publishers = {}
        self._sinks = []
        self._closed = False
        _process.runtimes.add(self)
        _process.register_atexit()
        if self._digest is not None:
            self._connect(self._digest)

    @property
    def closed(self):
        return self._closed

    @property
    def service_name(self):
        return self._service_name or ""

    @property
    def endpoint(self):
        return self._endpoint

    @property
    def transport(self):
        """The transport underneath (None until the digest is known)."""
        return self._transport

    # ---------------------------------------------------------------- connection

    def _connect(self, digest):
        transport = transport_for_endpoint(self._endpoint, digest, **self._options)
        transport.connect()
        self._transport = transport
        self._start_metrics_reports()

    def _start_metrics_reports(self):
        """Sends the process's metrics (mycelium.metrics) to the host every
        MYCELIUM_METRICS_INTERVAL seconds (default 5; 0 turns it off)."""
        interval = float(os.environ.get("MYCELIUM_METRICS_INTERVAL", "5"))
        if interval <= 0:
            return

        def report():
            transport = self._transport
            if self._closed or transport is None or metrics._registry.empty():
                return
            try:
                transport.report_metrics(metrics._registry.snapshot())
            except MyceliumError:
                pass  # disconnected: the next report after the reconnect carries it all

        self._metrics_timer = Timer(interval, report, internal=True)
        _process.dispatcher.add_timer(self._metrics_timer)

    def _transport_for(self, cls):
        transport = self._transport
        if transport is not None:
            return transport
        with self._lock:
            self._check_open("connect")
            if self._transport is None:
                digest = digest_of(cls)
                if digest is None:
                    raise MyceliumError(
                        f"Runtime: no schema digest to connect with: pass schema_digest=, set "
                        f"MYCELIUM_SCHEMA_DIGEST, or use message classes from a module with SCHEMA_DIGEST "
                        f"({name_of(cls)} comes from {cls.__module__!r}, which has none)")
                self._digest = digest
                self._connect(digest)
            return self._transport

    def _check_open(self, operation):
        if self._closed:
            raise ClosedError(f"Runtime.{operation}: the Runtime is closed")

    def _failed(self, exc):
        """The transport failed for good (schema mismatch): stop like a host would."""
        log.error("Runtime %s: %s; stopping", self._endpoint, exc)
        stop(1)

    # ---------------------------------------------------------------- publish / subscribe

    def publish(self, message):
        """Publishes `message` to the host and to this Runtime's own subscriptions of its type."""
        publisher = self._publishers.get(type(message))
        if publisher is None:
            publisher = self._publisher_for(type(message))
        publisher.publish(message)

    def _publisher_for(self, cls):
        self._check_open("publish")
        transport = self._transport_for(cls)
        type_id = type_id_of(cls)
        write = transport.frame_writer()
        deliver_locally = transport.deliver_locally

        def write_and_loop_back(header, payload):
            write(header, payload)
            deliver_locally(type_id, payload)

        publisher = Publisher._writing_to(cls, write_and_loop_back)
        self._publishers[cls] = publisher
        return publisher

    def subscribe(self, message_cls, callback=None):
        """`subscribe(Cls, cb)` -> Subscription; `subscribe(Cls)` -> a decorator."""
        if callback is None:
            def decorate(fn):
                self.subscribe(message_cls, fn)
                return fn
            return decorate
        if not callable(callback):
            raise TypeError("subscribe: the callback is not callable")
        self._check_open("subscribe")
        sink = _CallbackSink(self, message_cls, callback)
        self._add_sink(message_cls, sink)
        return Subscription(sink)

    def stream(self, message_cls, maxsize=65536):
        """An asyncio stream of `message_cls` (see Stream)."""
        self._check_open("stream")
        return Stream(self, message_cls, maxsize)

    async def recv(self, message_cls, timeout=None):
        """One message of `message_cls` (arriving after this call), or TimeoutError."""
        self._check_open("recv")
        stream = Stream(self, message_cls, maxsize=1)
        try:
            return await stream.get(timeout)
        finally:
            stream.close()

    def every(self, seconds, fn=None):
        return every(seconds, fn)

    def flush(self):
        """Writes what this Runtime's publishes queued (they leave on their own within ~1 ms)."""
        if self._transport is not None:
            self._transport.flush()

    def _has_callbacks(self):
        with self._lock:
            return any(isinstance(sink, _CallbackSink) and sink.active for _, sink in self._sinks)

    def _add_sink(self, cls, sink):
        transport = self._transport_for(cls)
        with self._lock:
            self._sinks.append((cls, sink))
        transport.add_sink(cls, sink)

    def _remove_sink(self, cls, sink):
        with self._lock:
            try:
                self._sinks.remove((cls, sink))
            except ValueError:
                return
        if self._transport is not None:
            self._transport.remove_sink(cls, sink)

    def close(self):
        """Ends the subscriptions, writes what is queued and disconnects. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sinks, self._sinks = self._sinks, []
        for _, sink in sinks:
            if isinstance(sink, _CallbackSink):
                sink.active = False
        if self._metrics_timer is not None:
            self._metrics_timer.cancel()
        if self._transport is not None:
            self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<mycelium.Runtime {self._endpoint} {'closed' if self._closed else 'open'}>"


# ------------------------------------------------------------------ module-level API


def _default():
    with _process.lock:
        if _process.default is None or _process.default.closed:
            _process.default = Runtime()
        return _process.default


def publish(message):
    """Publishes on the default Runtime."""
    _default().publish(message)


def subscribe(message_cls, callback=None):
    """Subscribes a callback on the default Runtime (or, without one, returns a decorator)."""
    return _default().subscribe(message_cls, callback)


def stream(message_cls, maxsize=65536):
    return _default().stream(message_cls, maxsize)


async def recv(message_cls, timeout=None):
    return await _default().recv(message_cls, timeout)


def every(seconds, fn=None):
    """Calls fn every `seconds` on the dispatcher thread -> Timer (or returns a decorator)."""
    if fn is None:
        def decorate(f):
            every(seconds, f)
            return f
        return decorate
    if not callable(fn):
        raise TypeError("every: the function is not callable")
    if not seconds > 0:
        raise ValueError("every: the interval must be positive")
    timer = Timer(float(seconds), fn)
    _process.dispatcher.add_timer(timer)
    _process.register_atexit()
    return timer


def on_start(fn):
    """Runs fn on the dispatcher thread when run() starts (at once if it has started)."""
    _process.register_atexit()
    with _process.lock:
        if not _process.started:
            _process.start_hooks.append(fn)
            return fn
    _process.dispatcher.submit(lambda f: _process.dispatcher.call(f, None, f"on_start hook {f!r}"), fn)
    return fn


def on_stop(fn):
    """Runs fn at shutdown, after the queued callbacks have drained."""
    _process.register_atexit()
    _process.stop_hooks.append(fn)
    return fn


def stop(exit_code=0):
    """Ends run() (or the run at exit) with `exit_code`; the first non-zero code wins."""
    if exit_code and not _process.exit_code:
        _process.exit_code = int(exit_code)
    _process.stop_event.set()


def run():
    """Delivers callbacks, timers and hooks until stop() or SIGINT/SIGTERM, then drains the
    queued callbacks (up to 5 s), runs the on_stop hooks and closes every Runtime. Returns
    the exit code given to stop(). Call it from the main thread to get the signal handling."""
    with _process.lock:
        if _process.running:
            raise RuntimeError("mycelium.run() is already running")
        _process.running = True
        _process.started = True
        hooks, _process.start_hooks = _process.start_hooks, []
    dispatcher = _process.dispatcher
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda s, f: stop(0))
    try:
        for hook in hooks:
            dispatcher.submit(lambda f: dispatcher.call(f, None, f"on_start hook {f!r}"), hook)
        while not _process.stop_event.wait(0.5):
            pass
        _shutdown()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _process.running = False
    return _process.exit_code


def _shutdown():
    """Drain, on_stop hooks, close: on the dispatcher thread, bounded by SHUTDOWN_TIMEOUT."""
    dispatcher = _process.dispatcher
    _process.stopping = True
    for runtime in list(_process.runtimes):
        if runtime._transport is not None and not runtime.closed:
            try:
                runtime._transport.flush()
            except Exception:  # noqa: BLE001
                pass
    done = threading.Event()

    def finish(_):
        hooks, _process.stop_hooks = _process.stop_hooks, []
        for hook in hooks:
            dispatcher.call(hook, None, f"on_stop hook {hook!r}")
        done.set()

    if dispatcher.thread is threading.current_thread():
        finish(None)
    else:
        dispatcher.submit(finish, None)  # after everything queued before it
        if not done.wait(SHUTDOWN_TIMEOUT):
            log.error("shutdown: callbacks did not drain within %.0f s; closing anyway", SHUTDOWN_TIMEOUT)
    for runtime in list(_process.runtimes):
        try:
            runtime.close()
        except Exception:  # noqa: BLE001
            log.exception("closing %r failed", runtime)
    _process.finished = True


def _serving():
    """True while something would keep a host busy: a callback subscription of an open
    Runtime, an active timer, or on_start hooks that have not run."""
    if _process.start_hooks or _process.dispatcher.has_timers():
        return True
    for runtime in list(_process.runtimes):
        if not runtime.closed and runtime._has_callbacks():
            return True
    return False


def _run_at_exit():
    """atexit: a script whose top level returned without run() keeps serving, as it would
    inside the host, while it has callback subscriptions, timers or on_start hooks; else
    its on_stop hooks run and its Runtimes close."""
    if _process.finished or _process.running:
        return
    if hasattr(sys, "last_value"):  # the top level raised: python3 exits 1, nothing to serve
        _shutdown_quietly()
        return
    if not _process.stop_event.is_set():
        if not _serving():
            _shutdown()
            return
        log.info("the script's top level returned: serving until stop() or SIGINT/SIGTERM")
    code = run()
    if code:
        for stream_ in (sys.stdout, sys.stderr):
            try:
                stream_.flush()
            except Exception:  # noqa: BLE001
                pass
        logging.shutdown()
        os._exit(code)


def _shutdown_quietly():
    for runtime in list(_process.runtimes):
        try:
            runtime.close()
        except Exception:  # noqa: BLE001
            pass
    _process.finished = True


__all__ = ["Runtime", "Stream", "Subscription", "Timer", "every", "on_start", "on_stop", "publish", "recv",
           "run", "stop", "stream", "subscribe"]
