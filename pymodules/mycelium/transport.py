"""Unix and TCP transports: Mycelium's `UnixTransport` / `TcpTransport`, on this host's
wire protocol (docs/wire-protocol.md).

One connection per transport. `connect()` writes, in one write, the digest handshake,
`HELLO` (role client, the transport's name), `SUBSCRIBE` for every subscribed class and
a `PING`; it returns once the host has answered the `PING` (so the subscriptions are in
effect) and raises `SchemaMismatch` with the host's own reason when the host refused the
digest.

Threads: each connected transport has two daemon threads.

- The **reader** reads in large chunks (`recv_into` a 1 MiB buffer), splits TLV frames,
  answers `PING` with `PONG`, keeps the host's `ERROR` reason, decodes each application
  frame once per subscribed class and hands it to that class's subscribers. A frame that
  does not decode is logged on the `mycelium` logger and skipped; nothing a frame contains
  ends the reader. When the connection drops it also reconnects (below).
- The **flusher** writes what publishers queued (the write-coalescing rule, below).

Write coalescing. `publish()` appends the frame to the connection's write buffer and
returns; the buffer leaves in one `sendall`:

1. at once, from the publishing thread, when it holds `flush_bytes` (64 KiB) or more:
   dense traffic costs one syscall per ~64 KiB, never one per message;
2. otherwise from the flusher thread, which the publish that made the buffer non-empty
   wakes: everything queued by the time it runs leaves together. A single publish
   leaves within the flusher's wake-up (tens of microseconds) when the publishing thread
   then waits, sleeps or does I/O; if it keeps computing in Python it holds the GIL and
   the flusher gets it after CPython's switch interval (`sys.getswitchinterval()`, 5 ms);
3. on `flush()` (also `sync()` and `close()`), from the calling thread.

A publisher that outpaces the socket blocks in rule 1 until the previous write is done,
so the buffer stays bounded (one `flush_bytes` plus one frame per publishing thread).

Reconnecting. When the connection drops (the host stopped, was killed, or closed it with
`ERROR`), the reader reconnects with exponential backoff and jitter: the first attempt
after 0.1 s, then doubling up to 5 s, each delay drawn from [d/2, d]; a connection that
stayed up for a second starts again from 0.1 s. Each new connection re-sends the
handshake, `HELLO` and `SUBSCRIBE` for every subscriber. A digest mismatch or a bad digest
length is final: the transport fails, and every call raises that `SchemaMismatch`.

While disconnected `publish()` raises `TransportError`, unless the transport was made
with `buffer_while_disconnected=N`: then up to N frames published while disconnected are
kept (with whatever was queued but not yet written when the connection dropped) and
written first on the new connection; the (N+1)th raises `TransportError`. Frames already
handed to a connection that then breaks may be lost: delivery is at most once.
"""

import itertools
import logging
import os
import random
import socket
import threading
import time

from . import _wire
from ._connection import ConnectionLost, shutdown_socket
from ._classes import type_id_of
from ._routes import Routes
from .errors import ClosedError, SchemaMismatch, TransportError
from .publisher import Publisher
from .subscriber import Subscriber

log = logging.getLogger("mycelium")

_IDLE = "idle"  # made, connect() not called yet
_CONNECTED = "connected"
_RECONNECTING = "reconnecting"
_FAILED = "failed"  # final: schema mismatch, or the connection dropped with reconnect=False
_CLOSED = "closed"

_READ_CHUNK = 1 << 20
_STABLE_SECONDS = 1.0  # a connection that lived this long resets the backoff
_CLOSE_FLUSH_SECONDS = 2.0  # close() writes what is queued for at most this long


class _SocketTransport:
    """The shared machinery of UnixTransport and TcpTransport.

    Thread safety: every public method may be called from any thread.
    """

    # The SDK's own internal interface: what Runtime and Subscriber may use of a transport.
    #: Seconds Subscriber.recv() reads the transport itself before it blocks (0: never).
    recv_spin = 0.0
    #: receive_spinning(subscriber, seconds) -> a message or subscriber.NOTHING: reads the
    #: transport on the calling thread, for up to `seconds`, for a message for `subscriber`.
    #: None here: the socket transports hand every message over from their reader thread.
    receive_spinning = None

    def frame_writer(self):
        """The function that writes one encoded frame, `write(header, payload)`, to the host
        (what the Runtime's publishers call once per publish)."""
        return self._write

    def deliver_locally(self, type_id, payload):
        """Hands a frame this process published to its own subscriptions of `type_id`, as
        the host hands it to every other subscriber (the Runtime's loop-back)."""
        self._routes.deliver(type_id, payload)

    def add_sink(self, cls, sink):
        """Routes decoded `cls` messages to `sink` (`_push(msg)`, `_fail(exc)`), declaring
        the type to the host (`SUBSCRIBE`) when it is the first of its type."""
        type_id = type_id_of(cls)
        with self._sub_lock:
            first = self._routes.add(cls, sink)
            if self._failure is not None:
                sink._fail(self._failure)
                return
            if not first:
                return
            # Not connected: the next connection declares it.
            queued = self._queue_declaration(_wire.type_list(_wire.SUBSCRIBE, [type_id]))
        if queued:
            self._flush()

    def remove_sink(self, cls, sink):
        """Stops routing to `sink` (`UNSUBSCRIBE` when it was its type's last one)."""
        type_id = type_id_of(cls)
        with self._sub_lock:
            if not self._routes.remove(cls, sink):
                return
            queued = self._queue_declaration(_wire.type_list(_wire.UNSUBSCRIBE, [type_id]))
        if queued:
            self._flush()

    def __init__(self, schema_digest, *, name=None, reconnect=True, buffer_while_disconnected=0,
                 flush_bytes=64 * 1024, connect_timeout=5.0, backoff_initial=0.1, backoff_max=5.0,
                 max_payload=_wire.MAX_PAYLOAD):
        self._digest = _wire.parse_digest(schema_digest)
        self._name = name or "python"
        _wire.hello(self._name)  # validates the name now rather than at connect()
        if buffer_while_disconnected < 0:
            raise ValueError("buffer_while_disconnected must be >= 0")
        self._auto_reconnect = reconnect
        self._buffer_limit = int(buffer_while_disconnected)
        self._flush_bytes = int(flush_bytes)
        self._connect_timeout = connect_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = max(backoff_max, backoff_initial)
        self._max_payload = max_payload

        # Lock order: _life_lock -> _sub_lock -> _send_lock -> _wlock.
        self._life_lock = threading.Lock()  # connect() and close()
        self._sub_lock = threading.Lock()  # subscriber registrations
        self._send_lock = threading.Lock()  # one writer on the socket at a time, in buffer order
        self._wlock = threading.Lock()  # _state, _sock, _pending; taking bytes out of _wbuf
        # Never replaced, only appended to (publishers, without a lock) and cut from the
        # front (flushes, under _send_lock): see _write.
        self._wbuf = bytearray()
        self._pending = 0  # frames published while disconnected
        self._state = _IDLE
        self._failure = None
        self._sock = None
        self._last_error = "not connected yet"

        self._routes = Routes(self.describe)  # changed under _sub_lock

        self._kick = threading.Lock()  # released to wake the flusher
        self._kick.acquire()
        self._stopping = threading.Event()
        self._reader = None
        self._flusher = None
        self._nonces = itertools.count(int.from_bytes(os.urandom(4), "little") << 16)
        self._pongs = {}  # nonce -> threading.Event (under _wlock)

        self._delay = backoff_initial  # the next reconnect delay (grows while attempts fail)
        self.reconnects = 0
        self.dropped_by_host = 0  # frames the host answered with ERROR unknown_type / size_mismatch

    # ------------------------------------------------------------------ public API

    @property
    def connected(self):
        return self._state is _CONNECTED

    @property
    def schema_digest(self):
        return self._digest

    @property
    def decode_errors(self):
        """Frames that did not decode (skipped)."""
        return self._routes.decode_errors

    def describe(self):
        """The endpoint, as 'unix:PATH' or 'tcp:HOST:PORT'."""
        raise NotImplementedError

    def connect(self):
        """Connects, says HELLO, declares the subscriptions and waits for the host's answer.

        Raises `TransportError` when the host cannot be reached or does not answer within
        `connect_timeout`, `SchemaMismatch` (with the host's reason) when it refuses the
        digest, `ClosedError` after close(). Connecting a connected transport does nothing.
        """
        with self._life_lock:
            if self._state is _CONNECTED or self._state is _RECONNECTING:
                return
            if self._state is _CLOSED or self._state is _FAILED:
                raise self._failure  # ClosedError, or what made the transport fail
            sock = self._open_socket()
            nonce, answered = self._expect_pong()
            with self._sub_lock:
                preamble = self._preamble() + _wire.ping(nonce)
                try:
                    sock.sendall(preamble)
                except OSError as e:
                    sock.close()
                    raise TransportError(f"{self.describe()}: cannot write the handshake: {e}") from None
                with self._wlock:
                    self._sock = sock
                    self._state = _CONNECTED
            self._stopping.clear()
            self._reader = threading.Thread(target=self._reader_main, args=(sock,), daemon=True,
                                            name=f"mycelium-reader {self.describe()}")
            self._flusher = threading.Thread(target=self._flusher_main, daemon=True,
                                             name=f"mycelium-flusher {self.describe()}")
            self._reader.start()
            self._flusher.start()
        if not answered.wait(self._connect_timeout):
            self.close()
            raise TransportError(f"{self.describe()}: the host did not answer within {self._connect_timeout} s")
        if self._state is _FAILED:
            failure = self._failure
            self.close()
            raise failure
        if self._state is not _CONNECTED:
            error = TransportError(f"{self.describe()}: the connection dropped during the handshake: "
                                   f"{self._last_error}")
            self.close()
            raise error

    def publisher(self, message_cls):
        """A Publisher of `message_cls` on this transport."""
        return Publisher._writing_to(message_cls, self._write, self._max_payload)

    def subscriber(self, message_cls, maxsize=0):
        """A Subscriber of `message_cls`; declares interest to the host (`SUBSCRIBE`)."""
        sub = Subscriber._on_transport(self, message_cls, maxsize)
        self.add_sink(message_cls, sub)
        return sub

    def publish(self, message):
        """Publishes one message (a Publisher made on the fly; keep a Publisher in loops)."""
        Publisher._writing_to(type(message), self._write, self._max_payload).publish(message)

    def flush(self):
        """Writes everything queued now, from this thread."""
        self._flush()

    def sync(self, timeout=5.0):
        """Round trip to the host: when it returns, the host has handled every frame this
        transport sent before (subscriptions, publishes). Raises TransportError on timeout."""
        nonce, answered = self._expect_pong()
        self._write_control(_wire.ping(nonce))
        if not answered.wait(timeout):
            with self._wlock:
                self._pongs.pop(nonce, None)
            raise TransportError(f"{self.describe()}: no PONG within {timeout} s")
        self._raise_if_down()

    def close(self):
        """Writes what is queued, closes the connection and stops the threads. Subscribers
        return what they hold, then raise ClosedError. Idempotent."""
        with self._life_lock:
            if self._state is _CLOSED:
                return
            self._stopping.set()  # from here on a dropped connection ends the reader
            sock = self._sock
            if self._state is _CONNECTED and sock is not None:
                # A host that stopped reading must not hang close(): past the deadline
                # the socket is shut down, which fails the pending write.
                watchdog = threading.Timer(_CLOSE_FLUSH_SECONDS, shutdown_socket, (sock,))
                watchdog.daemon = True
                try:
                    watchdog.start()
                except RuntimeError:  # interpreter shutdown (3.12+): no new threads
                    watchdog = None
                    sock.settimeout(_CLOSE_FLUSH_SECONDS)
                try:
                    self._flush()
                except Exception:  # noqa: BLE001 - closing anyway
                    pass
                finally:
                    if watchdog is not None:
                        watchdog.cancel()
            with self._wlock:
                self._state = _CLOSED
                if self._failure is None:
                    self._failure = ClosedError(f"{self.describe()}: the transport is closed")
                sock, self._sock = self._sock, None
                del self._wbuf[:]
                self._wake_pongs()
            self._release_kick()
            if sock is not None:
                shutdown_socket(sock)
            current = threading.current_thread()
            for thread in (self._reader, self._flusher):
                if thread is not None and thread is not current:
                    thread.join(timeout=2.0)
            if sock is not None:
                sock.close()
            self._fail_sinks(self._failure)

    def stats(self):
        """Counters: reconnects, decode errors, the state and the last connection error."""
        return {"state": self._state, "reconnects": self.reconnects, "decode_errors": self._routes.decode_errors,
                "dropped_by_host": self.dropped_by_host, "last_error": self._last_error}

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<{type(self).__name__} {self.describe()} {self._state}>"

    # ------------------------------------------------------------------ subclasses

    def _open_socket(self):
        """A connected, blocking socket; raises TransportError."""
        raise NotImplementedError

    # ------------------------------------------------------------------ subscriptions

    def _queue_declaration(self, data):
        """Queues SUBSCRIBE/UNSUBSCRIBE frames (under _sub_lock) when connected; True when
        they wait in the write buffer for a flush."""
        with self._wlock:
            if self._state is not _CONNECTED:
                return False
            self._wbuf += data
            return True

    def _fail_sinks(self, exc):
        with self._sub_lock:
            sinks = self._routes.sinks()
        for sink in sinks:
            sink._fail(exc)

    def _preamble(self):
        """Handshake, HELLO and SUBSCRIBE for every subscribed type (under _sub_lock)."""
        data = _wire.handshake(self._digest) + _wire.hello(self._name)
        type_ids = self._routes.type_ids()
        if type_ids:
            data += _wire.type_list(_wire.SUBSCRIBE, type_ids)
        return data

    # ------------------------------------------------------------------ writing

    def _write(self, header, payload):
        """Queues one frame: the publish hot path, without a lock.

        Relies on the GIL (CPython 3.11): `buf += frame` on a bytearray is one C call, so
        frames from concurrent publishers never interleave; flushes copy a prefix and cut
        exactly that prefix, so nothing appended meanwhile is lost. The publish that finds
        only its own frame in the buffer wakes the flusher; a flush that finds more data
        after its write writes again, so no wake-up is lost either.
        """
        if self._state is not _CONNECTED:
            self._write_disconnected(header, payload)
            return
        frame = header + payload
        buf = self._wbuf
        buf += frame
        size = len(buf)
        if size >= self._flush_bytes:
            self._flush()
        elif size == len(frame):
            self._release_kick()

    def _write_disconnected(self, header, payload):
        """While not connected: buffer the frame or raise."""
        with self._wlock:
            state = self._state
            if state is _CONNECTED:  # connected meanwhile
                self._wbuf += header + payload
            elif state is _FAILED or state is _CLOSED:
                raise self._failure
            elif state is _IDLE:
                raise TransportError(f"{self.describe()}: not connected (call connect() first)")
            elif self._pending < self._buffer_limit:
                self._wbuf += header + payload
                self._pending += 1
                return
            elif self._buffer_limit:
                raise TransportError(f"{self.describe()}: disconnected ({self._last_error}) and the buffer of "
                                     f"{self._buffer_limit} frames is full")
            else:
                raise TransportError(f"{self.describe()}: disconnected ({self._last_error}); reconnecting")
        self._release_kick()

    def report_metrics(self, payload):
        """Sends a METRICS frame (a snapshot from mycelium.metrics) to the host."""
        self._write_control(_wire.HEADER.pack(_wire.METRICS, len(payload)) + payload)

    def _write_control(self, data):
        """Queues a control frame and writes it now."""
        with self._wlock:
            if self._state is not _CONNECTED:
                if self._state is _FAILED or self._state is _CLOSED:
                    raise self._failure
                raise TransportError(f"{self.describe()}: not connected ({self._last_error})")
            self._wbuf += data
        self._flush()

    def _flush(self):
        """Writes the buffer, again while more arrived during the write."""
        buf = self._wbuf
        with self._send_lock:
            while True:
                with self._wlock:
                    if self._state is not _CONNECTED or not buf:
                        return
                    data = bytes(buf)
                    del buf[:len(data)]
                    sock = self._sock
                try:
                    sock.sendall(data)
                except OSError as e:
                    # The reader sees the same connection end and reconnects; what was in
                    # this write is lost (at most once).
                    self._last_error = f"write failed: {e}"
                    log.debug("%s: %s", self.describe(), self._last_error)
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return

    def _release_kick(self):
        try:
            self._kick.release()
        except RuntimeError:  # already released: the flusher has a wake-up pending
            pass

    def _flusher_main(self):
        kick = self._kick
        while True:
            kick.acquire()
            if self._stopping.is_set():
                return
            try:
                self._flush()
            except Exception:  # noqa: BLE001 - the flusher must survive anything
                log.exception("%s: flushing failed", self.describe())

    # ------------------------------------------------------------------ PING / PONG

    def _expect_pong(self):
        nonce = next(self._nonces) & 0xFFFFFFFFFFFFFFFF
        answered = threading.Event()
        with self._wlock:
            self._pongs[nonce] = answered
        return nonce, answered

    def _wake_pongs(self):
        """Under _wlock: wakes every sync()/connect() waiter (the state tells them why)."""
        for event in self._pongs.values():
            event.set()
        self._pongs.clear()

    def _raise_if_down(self):
        state = self._state
        if state is _FAILED or state is _CLOSED:
            raise self._failure
        if state is not _CONNECTED:
            raise TransportError(f"{self.describe()}: disconnected ({self._last_error})")

    # ------------------------------------------------------------------ reading

    def _reader_main(self, sock):
        """Reads each connection until it ends, then reconnects; exits on close or failure."""
        while True:
            started = time.monotonic()
            try:
                self._read_connection(sock)
                lost = ConnectionLost("the host closed the connection")
            except ConnectionLost as e:
                lost = e
            except OSError as e:
                lost = ConnectionLost(f"connection error: {e}")
            except Exception as e:  # noqa: BLE001 - a bug here must not leave a dead transport
                log.exception("%s: reader failed", self.describe())
                lost = ConnectionLost(f"reader error: {e}")
            if not self._connection_lost(sock, lost):
                return
            try:
                sock = self._reconnect(time.monotonic() - started)
            except Exception as e:  # noqa: BLE001 - a bug here must not leave a silent, dead transport
                log.exception("%s: reconnecting failed", self.describe())
                final = TransportError(f"{self.describe()}: reconnecting failed: {e}")
                self._connection_lost(None, ConnectionLost(f"reconnecting failed: {e}", final))
                return
            if sock is None:
                return

    def _connection_lost(self, sock, lost):
        """Marks the connection down; False when the transport is finished (closed or failed)."""
        with self._send_lock:
            with self._wlock:
                if self._state is _CLOSED or self._stopping.is_set():
                    return False
                if self._sock is sock:
                    self._sock = None
                self._last_error = str(lost)
                final = lost.error
                if final is None and not self._auto_reconnect:
                    final = TransportError(f"{self.describe()}: {lost} (reconnect=False)")
                if final is not None:
                    self._state = _FAILED
                    self._failure = final
                    del self._wbuf[:]
                else:
                    self._state = _RECONNECTING
                    self._pending = 0
                    if not self._buffer_limit:
                        del self._wbuf[:]  # lost with the connection (at most once)
                self._wake_pongs()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        if final is not None:
            log.error("%s", final)
            self._fail_sinks(final)
            return False
        log.warning("%s: %s; reconnecting", self.describe(), lost)
        return True

    def _reconnect(self, lived):
        delay = self._backoff_initial if lived >= _STABLE_SECONDS else self._delay
        attempts = 0
        while True:
            if self._stopping.wait(random.uniform(delay / 2, delay)):
                return None
            delay = min(delay * 2, self._backoff_max)
            self._delay = delay
            attempts += 1
            try:
                sock = self._open_socket()
            except TransportError as e:
                self._last_error = str(e)
                log.debug("%s: reconnect attempt %d failed: %s", self.describe(), attempts, e)
                continue
            with self._sub_lock:
                # The PING's PONG is not awaited: it only keeps every preamble alike.
                preamble = self._preamble() + _wire.ping(next(self._nonces) & 0xFFFFFFFFFFFFFFFF)
                with self._send_lock:
                    with self._wlock:
                        if self._state is not _RECONNECTING:
                            sock.close()
                            return None
                        pending = bytes(self._wbuf)
                        del self._wbuf[:len(pending)]
                        data = preamble + pending
                        self._pending = 0
                        self._sock = sock
                        self._state = _CONNECTED
                    try:
                        sock.sendall(data)
                    except OSError as e:
                        with self._wlock:
                            self._state = _RECONNECTING
                            self._sock = None
                        sock.close()
                        self._last_error = f"write failed: {e}"
                        continue
            self.reconnects += 1
            log.info("%s: reconnected after %d attempt(s)", self.describe(), attempts)
            return sock

    def _read_connection(self, sock, received=b""):
        """Reads frames from `sock` until it ends: returns at end of stream, raises ConnectionLost
        when the host sent ERROR or a frame that cannot be framed, OSError on errors.
        `received`: the start of a frame already read from `sock` (less than a frame)."""
        buf = bytearray(max(_READ_CHUNK, 2 * len(received)))
        view = memoryview(buf)
        start, end = 0, len(received)
        buf[:end] = received
        header = _wire.HEADER
        max_payload = self._max_payload
        deliver = self._routes.deliver
        while True:
            if end == len(buf) or (end - start >= 6 and
                                   start + 6 + header.unpack_from(buf, start)[1] > len(buf)):
                # Make room: move the partial frame to the front, grow for a large one.
                need = end - start
                if need >= 6:
                    need = max(need, 6 + header.unpack_from(buf, start)[1])
                if need > len(buf):
                    bigger = bytearray(max(need, 2 * len(buf)))
                    bigger[:end - start] = view[start:end]
                    view.release()
                    buf, view = bigger, memoryview(bigger)
                else:
                    buf[:end - start] = buf[start:end]
                end -= start
                start = 0
            n = sock.recv_into(view[end:])
            if n == 0:
                if end > start:
                    log.warning("%s: the connection ended inside a frame (%d bytes)", self.describe(),
                                end - start)
                return
            end += n
            try:
                for type_id, at, stop in _wire.split_frames(buf, start, end, max_payload):
                    if type_id >= _wire.FIRST_APPLICATION_TYPE:
                        deliver(type_id, bytes(view[at:stop]))
                    else:
                        self._on_control(type_id, bytes(view[at:stop]))
                    start = stop
            except _wire.OversizeFrame as e:
                raise ConnectionLost(f"the host sent {e}: closing the connection") from None
            if start == end:
                start = end = 0

    def _on_control(self, type_id, payload):
        if type_id == _wire.PING:
            if len(payload) == 8:
                try:
                    self._write_control(_wire.frame(_wire.PONG, payload))
                except Exception:  # noqa: BLE001 - disconnected meanwhile
                    pass
        elif type_id == _wire.PONG:
            if len(payload) == 8:
                nonce = _wire.NONCE.unpack(payload)[0]
                with self._wlock:
                    event = self._pongs.pop(nonce, None)
                if event is not None:
                    event.set()
        elif type_id == _wire.ERROR:
            code, name, reason = _wire.decode_error(payload)
            if code in (_wire.CODE_UNKNOWN_TYPE, _wire.CODE_SIZE_MISMATCH):
                # The host dropped one frame and keeps the connection (another contracts
                # version, a hand-made frame): count it, log the first and every 1000th.
                self.dropped_by_host += 1
                if self.dropped_by_host % 1000 == 1:
                    log.warning("%s: the host dropped a frame (%d so far): %s: %s", self.describe(),
                                self.dropped_by_host, name, reason)
                return
            if code in (_wire.CODE_DIGEST_MISMATCH, _wire.CODE_BAD_DIGEST_LENGTH):
                error = SchemaMismatch(f"{self.describe()}: the host refused the schema digest: {reason}")
                error.code, error.reason = code, reason
                raise ConnectionLost(f"ERROR {name}: {reason}", error)
            if code == _wire.CODE_UNSUPPORTED_VERSION:
                raise ConnectionLost(f"ERROR {name}: {reason}", TransportError(
                    f"{self.describe()}: the host refused HELLO: {reason}", code, reason))
            raise ConnectionLost(f"the host closed the connection: ERROR {name}: {reason}")
        else:
            log.debug("%s: ignored control frame type %d (%d bytes)", self.describe(), type_id, len(payload))


class UnixTransport(_SocketTransport):
    """A connection to a host's Unix socket: `UnixTransport(path, schema_digest)`.

    Options (keywords): `name` (the HELLO name, default "python"), `reconnect` (True),
    `buffer_while_disconnected` (0 frames), `flush_bytes` (65536), `connect_timeout` (5 s),
    `backoff_initial` (0.1 s), `backoff_max` (5 s). See the module docstring for the rules.
    """

    def __init__(self, path, schema_digest, **options):
        super().__init__(schema_digest, **options)
        path = os.fspath(path)
        # A path, or the endpoint 'unix:PATH' (what MYCELIUM_ENDPOINT holds) alike.
        self._path = path[len("unix:"):] if isinstance(path, str) and path.startswith("unix:") else path

    @property
    def path(self):
        return self._path

    def describe(self):
        return f"unix:{self._path}"

    def _open_socket(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._connect_timeout)
            sock.connect(self._path)
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        except OSError as e:
            sock.close()
            raise TransportError(f"cannot connect to unix:{self._path}: {e.strerror or e}") from None
        return sock


class TcpTransport(_SocketTransport):
    """A connection to a host's TCP listener: `TcpTransport(host, port, schema_digest)`.

    Same options as UnixTransport. TCP_NODELAY is set: coalescing happens in the SDK.
    """

    def __init__(self, host, port, schema_digest, **options):
        super().__init__(schema_digest, **options)
        self._host = host
        self._port = int(port)

    @property
    def host(self):
        return self._host

    @property
    def port(self):
        return self._port

    def describe(self):
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"tcp:{host}:{self._port}"

    def _open_socket(self):
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout)
        except OSError as e:
            raise TransportError(f"cannot connect to {self.describe()}: {e.strerror or e}") from None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


__all__ = ["TcpTransport", "TransportError", "UnixTransport"]
