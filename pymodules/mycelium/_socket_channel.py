"""The socket channel (internal): a connection's frames on a stream socket, Unix or TCP.

It owns the write buffer and the flusher thread (transport.py's write-coalescing rule),
keeps frames published while disconnected when the transport buffers them, and reads the
socket on the connection's reader thread: large `recv_into` chunks, split into TLV frames
(`_wire.split_frames`), application frames to `Routes.deliver`, control frames to
`Connection.on_control`. The socket itself comes from `dial_unix` / `dial_tcp` (the
connection dials) and is handed over with `attach()`.
"""

import logging
import socket
import threading

from . import _wire
from ._connection import CLOSED, FAILED, IDLE, ConnectionLost, shutdown_socket
from .errors import TransportError

log = logging.getLogger("mycelium")

_READ_CHUNK = 1 << 20
_CLOSE_FLUSH_SECONDS = 2.0  # close() writes what is queued for at most this long


def dial_unix(path, timeout):
    """A connected, blocking Unix stream socket; raises TransportError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    except OSError as e:
        sock.close()
        raise TransportError(f"cannot connect to unix:{path}: {e.strerror or e}") from None
    return sock


def dial_tcp(host, port, timeout, describe):
    """A connected, blocking TCP socket with TCP_NODELAY (coalescing happens in the SDK)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise TransportError(f"cannot connect to {describe}: {e.strerror or e}") from None
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class SocketChannel:
    """Writes and reads one connection's frames on its socket; see the module docstring.

    Its socket and held frames change under `connection.lock`, with the connection's state:
    the socket is set exactly while the connection is connected.
    """

    def __init__(self, connection, routes, *, flush_bytes, buffer_limit, max_payload):
        self._connection = connection
        self._routes = routes
        self._flush_bytes = int(flush_bytes)
        self._buffer_limit = int(buffer_limit)
        self.max_payload = max_payload
        #: One writer on the socket at a time, in buffer order.
        self.send_lock = threading.Lock()
        # Never replaced, only appended to (publishers, without a lock) and cut from the
        # front (flushes, under send_lock): see write().
        self.buffer = bytearray()
        self._pending = 0  # frames published while disconnected
        self._sock = None
        self._kick = threading.Lock()  # released to wake the flusher
        self._kick.acquire()
        self._flusher = None

    # ------------------------------------------------------------------ the connection's calls

    def setup_request(self):
        return b""  # a socket needs no setup beyond the preamble

    def dialed(self):
        pass

    def attach(self, sock):
        """Under connection.lock: `sock` carries the frames from now on; returns (and takes
        out of the buffer) the frames held while disconnected, to follow the preamble."""
        held = bytes(self.buffer)
        del self.buffer[:len(held)]
        self._pending = 0
        self._sock = sock
        return held

    def detach(self, sock, final):
        """Under connection.lock: the connection on `sock` ended; the frames queued on it
        are lost (at most once) unless the transport buffers while disconnected and this
        is not `final`."""
        if final:
            self._sock = None  # whichever socket: nothing is written after a failure
        else:
            self.forget_socket(sock)
        self._pending = 0
        if final or not self._buffer_limit:
            del self.buffer[:]

    def forget_socket(self, sock):
        """Under connection.lock: `sock` no longer carries frames (nothing else changes)."""
        if self._sock is sock:
            self._sock = None

    def detach_all(self):
        """Under connection.lock, closing: drops the socket (returned) and every frame."""
        sock, self._sock = self._sock, None
        del self.buffer[:]
        return sock

    def lost(self):
        pass

    def shutdown(self):
        """Shuts the current socket down from any thread: the reader thread sees the end."""
        sock = self._sock
        if sock is not None:
            shutdown_socket(sock)

    def start(self, name):
        """Starts the flusher thread (connect())."""
        self._flusher = threading.Thread(target=self._flusher_main, daemon=True, name=f"mycelium-flusher {name}")
        self._flusher.start()

    def stop(self):
        """Wakes the flusher to see `connection.stopping` and end (close())."""
        self._release_kick()

    def join(self):
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=2.0)

    def flush_before_close(self):
        """Writes what is queued; a host that stopped reading must not hang close(): past
        the deadline the socket is shut down, which fails the pending write."""
        sock = self._sock
        if sock is None:
            return
        watchdog = threading.Timer(_CLOSE_FLUSH_SECONDS, shutdown_socket, (sock,))
        watchdog.daemon = True
        try:
            watchdog.start()
        except RuntimeError:  # interpreter shutdown (3.12+): no new threads
            watchdog = None
            sock.settimeout(_CLOSE_FLUSH_SECONDS)
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        finally:
            if watchdog is not None:
                watchdog.cancel()

    # ------------------------------------------------------------------ writing

    def write(self, header, payload):
        """Queues one frame: the publish hot path, without a lock.

        Relies on the GIL (CPython 3.11): `buf += frame` on a bytearray is one C call, so
        frames from concurrent publishers never interleave; flushes copy a prefix and cut
        exactly that prefix, so nothing appended meanwhile is lost. The publish that finds
        only its own frame in the buffer wakes the flusher; a flush that finds more data
        after its write writes again, so no wake-up is lost either.
        """
        if self._sock is None:
            self._write_disconnected(header, payload)
            return
        frame = header + payload
        buf = self.buffer
        buf += frame
        size = len(buf)
        if size >= self._flush_bytes:
            self.flush()
        elif size == len(frame):
            self._release_kick()

    def _write_disconnected(self, header, payload):
        """While not connected: buffer the frame or raise."""
        connection = self._connection
        with connection.lock:
            state = connection.state
            if self._sock is not None:  # connected meanwhile
                self.buffer += header + payload
            elif state is FAILED or state is CLOSED:
                raise connection.failure
            elif state is IDLE:
                raise TransportError(f"{connection.describe()}: not connected (call connect() first)")
            elif self._pending < self._buffer_limit:
                self.buffer += header + payload
                self._pending += 1
                return
            elif self._buffer_limit:
                raise TransportError(f"{connection.describe()}: disconnected ({connection.last_error}) and the "
                                     f"buffer of {self._buffer_limit} frames is full")
            else:
                raise TransportError(f"{connection.describe()}: disconnected ({connection.last_error}); "
                                     "reconnecting")
        self._release_kick()

    def write_control(self, data):
        """Queues control frames and writes them now."""
        connection = self._connection
        with connection.lock:
            if self._sock is None:
                if connection.state is FAILED or connection.state is CLOSED:
                    raise connection.failure
                raise TransportError(f"{connection.describe()}: not connected ({connection.last_error})")
            self.buffer += data
        self.flush()

    def queue_declaration(self, data):
        """Queues SUBSCRIBE/UNSUBSCRIBE frames when connected (under the connection's
        subscription_lock); True when they wait in the buffer for a flush. Not connected:
        False, the next preamble declares every route."""
        with self._connection.lock:
            if self._sock is None:
                return False
            self.buffer += data
            return True

    def flush(self):
        """Writes the buffer, again while more arrived during the write."""
        buf = self.buffer
        lock = self._connection.lock
        with self.send_lock:
            while True:
                with lock:
                    sock = self._sock
                    if sock is None or not buf:
                        return
                    data = bytes(buf)
                    del buf[:len(data)]
                try:
                    sock.sendall(data)
                except OSError as e:
                    # The reader sees the same connection end and reconnects; what was in
                    # this write is lost (at most once).
                    self._connection.last_error = f"write failed: {e}"
                    log.debug("%s: %s", self._connection.describe(), self._connection.last_error)
                    shutdown_socket(sock)
                    return

    def _release_kick(self):
        try:
            self._kick.release()
        except RuntimeError:  # already released: the flusher has a wake-up pending
            pass

    def _flusher_main(self):
        kick, stopping = self._kick, self._connection.stopping
        while True:
            kick.acquire()
            if stopping.is_set():
                return
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the flusher must survive anything
                log.exception("%s: flushing failed", self._connection.describe())

    # ------------------------------------------------------------------ reading

    def read(self, sock, received=b""):
        """Reads frames from `sock` until it ends: returns at end of stream, raises ConnectionLost
        when the host sent ERROR or a frame that cannot be framed, OSError on errors.
        `received`: the start of a frame already read from `sock` (less than a frame)."""
        buf = bytearray(max(_READ_CHUNK, 2 * len(received)))
        view = memoryview(buf)
        start, end = 0, len(received)
        buf[:end] = received
        header = _wire.HEADER
        max_payload = self.max_payload
        deliver, on_control = self._routes.deliver, self._connection.on_control
        first_application = _wire.FIRST_APPLICATION_TYPE
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
                    log.warning("%s: the connection ended inside a frame (%d bytes)", self._connection.describe(),
                                end - start)
                return
            end += n
            try:
                for type_id, at, stop in _wire.split_frames(buf, start, end, max_payload):
                    if type_id >= first_application:
                        deliver(type_id, bytes(view[at:stop]))
                    else:
                        on_control(type_id, bytes(view[at:stop]))
                    start = stop
            except _wire.OversizeFrame as e:
                raise ConnectionLost(f"the host sent {e}: closing the connection") from None
            if start == end:
                start = end = 0


__all__ = ["SocketChannel", "dial_tcp", "dial_unix"]
