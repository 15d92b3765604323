"""One client connection to a host (internal), whichever channel carries its frames.

The `Connection` is the state machine of transport.py's module docstring: idle,
connected, reconnecting, failed (final), closed. It dials (the transport's `dial()`),
writes the preamble (digest handshake, HELLO, SUBSCRIBE for every route, the channel's own
setup request, PING), runs the reader thread, answers PING with PONG and wakes sync()
on PONG, keeps the host's ERROR reason, and reconnects with `Backoff` when the connection
drops. What travels on the connection (writing, coalescing, reading frames) is its
channel's: `_socket_channel.SocketChannel` or `_ring_channel.RingChannel`. Channels hand
application frames to `Routes.deliver` and control frames to `Connection.on_control`.

The channel interface the connection uses: `setup_request()`, `dialed()`, `send_lock`,
`attach(sock)`, `detach(sock, final)`, `forget_socket(sock)`, `detach_all()` (these
four under `Connection.lock`), `read(sock)` and `lost()` (reader thread),
`write_control(data)`, `queue_declaration(data)`, `flush()`, `flush_before_close()`,
`start(name)`, `stop()`, `join()`.
"""

import itertools
import logging
import os
import random
import socket
import threading
import time

from . import _wire
from ._classes import type_id_of
from .errors import ClosedError, SchemaMismatch, TransportError

log = logging.getLogger("mycelium")

IDLE = "idle"  # made, connect() not called yet
CONNECTED = "connected"
RECONNECTING = "reconnecting"
FAILED = "failed"  # final: schema mismatch, or the connection dropped with reconnect=False
CLOSED = "closed"

_STABLE_SECONDS = 1.0  # a connection that lived this long resets the backoff


class ConnectionLost(Exception):
    """Why the reader stopped reading one connection: `error` is a final error
    (SchemaMismatch) that ends the transport, or None to reconnect."""

    def __init__(self, text, error=None):
        super().__init__(text)
        self.error = error


def shutdown_socket(sock):
    """Shuts `sock` down both ways; a socket already closed is fine."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Backoff:
    """Reconnect delays: exponential from `initial` up to `maximum`, each drawn from
    [d/2, d] (jitter: clients of one host that went away do not come back in step); a
    connection that stayed up for `stable` seconds starts again from `initial`."""

    def __init__(self, initial, maximum, stable=_STABLE_SECONDS, draw=random.uniform):
        self.initial = initial
        self.maximum = max(maximum, initial)
        self._stable = stable
        self._draw = draw
        self._next = initial  # grows while attempts fail, kept across connections that die young

    def restart(self, lived):
        """A connection that lived `lived` seconds ended: the attempts after it begin."""
        if lived >= self._stable:
            self._next = self.initial

    def next_delay(self):
        """Seconds to wait before the next attempt."""
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return self._draw(delay / 2, delay)


class Connection:
    """The state machine of one transport's connection; see the module docstring.

    `describe` is the transport's describe(); `dial()` returns a connected blocking
    socket or raises TransportError.
    """

    def __init__(self, digest, name, routes, dial, describe, *, reconnect, connect_timeout, backoff):
        self.digest = digest
        self.connect_timeout = connect_timeout
        self.describe = describe
        self._name = name
        self._routes = routes
        self._dial = dial
        self._auto_reconnect = reconnect
        self._backoff = backoff
        self._channel = None  # attach_channel()

        # Lock order: _life_lock -> subscription_lock -> (a RingChannel's ring lock) -> the
        # channel's send_lock -> lock.
        self._life_lock = threading.Lock()  # connect() and close()
        #: Held while the routes change and while a preamble declares them: a subscription
        #: is declared exactly once, by SUBSCRIBE on the connection or by the next preamble.
        self.subscription_lock = threading.Lock()
        #: The state, the pongs awaited, and the channel's socket and held frames (which
        #: change with the state).
        self.lock = threading.Lock()
        self.state = IDLE
        self.failure = None  # what every call raises once FAILED or CLOSED
        self.last_error = "not connected yet"
        self.stopping = threading.Event()  # set by close(): a dropped connection ends the reader
        self._reader = None
        self._nonces = itertools.count(int.from_bytes(os.urandom(4), "little") << 16)
        self._pongs = {}  # nonce -> threading.Event (under lock)
        self.reconnects = 0
        self.dropped_by_host = 0  # frames the host answered with ERROR unknown_type / size_mismatch / invalid_payload
        self.metrics_refused = 0  # METRICS snapshots the host answered with ERROR limit_exceeded

    def attach_channel(self, channel):
        """The channel this connection's frames travel on (once, before connect())."""
        self._channel = channel

    # ------------------------------------------------------------------ connect / close

    def connect(self):
        """See the transports' connect(): dials, writes the preamble, waits for its PONG."""
        channel = self._channel
        with self._life_lock:
            if self.state is CONNECTED or self.state is RECONNECTING:
                return
            if self.state is CLOSED or self.state is FAILED:
                raise self.failure  # ClosedError, or what made the transport fail
            sock = self._dial()
            channel.dialed()
            nonce, answered = self._expect_pong()
            with self.subscription_lock:
                try:
                    sock.sendall(self._preamble(nonce))
                except OSError as e:
                    sock.close()
                    raise TransportError(f"{self.describe()}: cannot write the handshake: {e}") from None
                with self.lock:
                    channel.attach(sock)
                    self.state = CONNECTED
            self.stopping.clear()
            self._reader = threading.Thread(target=self._reader_main, args=(sock,), daemon=True,
                                            name=f"mycelium-reader {self.describe()}")
            self._reader.start()
            channel.start(self.describe())
        if not answered.wait(self.connect_timeout):
            self.close()
            raise TransportError(f"{self.describe()}: the host did not answer within {self.connect_timeout} s")
        if self.state is FAILED:
            failure = self.failure
            self.close()
            raise failure
        if self.state is not CONNECTED:
            error = TransportError(f"{self.describe()}: the connection dropped during the handshake: "
                                   f"{self.last_error}")
            self.close()
            raise error

    def close(self):
        """Writes what is queued, closes the connection, stops the threads, fails the sinks."""
        channel = self._channel
        with self._life_lock:
            if self.state is CLOSED:
                return
            self.stopping.set()  # from here on a dropped connection ends the reader
            if self.state is CONNECTED:
                channel.flush_before_close()
            with self.lock:
                self.state = CLOSED
                if self.failure is None:
                    self.failure = ClosedError(f"{self.describe()}: the transport is closed")
                sock = channel.detach_all()
                self._wake_pongs()
            channel.stop()
            if sock is not None:
                shutdown_socket(sock)
            if self._reader is not None and self._reader is not threading.current_thread():
                self._reader.join(timeout=2.0)
            channel.join()
            if sock is not None:
                sock.close()
            self._fail_sinks(self.failure)

    def raise_if_down(self):
        state = self.state
        if state is FAILED or state is CLOSED:
            raise self.failure
        if state is not CONNECTED:
            raise TransportError(f"{self.describe()}: disconnected ({self.last_error})")

    # ------------------------------------------------------------------ subscriptions

    def add_sink(self, cls, sink):
        """Routes `cls` to `sink` and declares the type to the host when it is new."""
        with self.subscription_lock:
            first = self._routes.add(cls, sink)
            if self.failure is not None:
                sink._fail(self.failure)
                return
            if not first:
                return
            # Not connected: the next connection declares it.
            queued = self._channel.queue_declaration(_wire.type_list(_wire.SUBSCRIBE, [type_id_of(cls)]))
        if queued:
            self._channel.flush()

    def remove_sink(self, cls, sink):
        with self.subscription_lock:
            if not self._routes.remove(cls, sink):
                return
            queued = self._channel.queue_declaration(_wire.type_list(_wire.UNSUBSCRIBE, [type_id_of(cls)]))
        if queued:
            self._channel.flush()

    def _fail_sinks(self, exc):
        with self.subscription_lock:
            sinks = self._routes.sinks()
        for sink in sinks:
            sink._fail(exc)

    def _preamble(self, nonce):
        """Under subscription_lock: handshake, HELLO, SUBSCRIBE for every route, the
        channel's request, PING `nonce`."""
        data = _wire.handshake(self.digest) + _wire.hello(self._name)
        type_ids = self._routes.type_ids()
        if type_ids:
            data += _wire.type_list(_wire.SUBSCRIBE, type_ids)
        return data + self._channel.setup_request() + _wire.ping(nonce)

    # ------------------------------------------------------------------ PING / PONG

    def sync(self, timeout):
        """See the transports' sync()."""
        nonce, answered = self._expect_pong()
        self._channel.write_control(_wire.ping(nonce))
        if not answered.wait(timeout):
            with self.lock:
                self._pongs.pop(nonce, None)
            raise TransportError(f"{self.describe()}: no PONG within {timeout} s")
        self.raise_if_down()

    def _expect_pong(self):
        nonce = next(self._nonces) & 0xFFFFFFFFFFFFFFFF
        answered = threading.Event()
        with self.lock:
            self._pongs[nonce] = answered
        return nonce, answered

    def _wake_pongs(self):
        """Under lock: wakes every sync()/connect() waiter (the state tells them why)."""
        for event in self._pongs.values():
            event.set()
        self._pongs.clear()

    def on_control(self, type_id, payload):
        """A control frame from the host (any reading thread). Raises ConnectionLost for an
        ERROR that ends the connection."""
        if type_id == _wire.PING:
            if len(payload) == 8:
                try:
                    self._channel.write_control(_wire.frame(_wire.PONG, payload))
                except Exception:  # noqa: BLE001 - disconnected meanwhile
                    pass
        elif type_id == _wire.PONG:
            if len(payload) == 8:
                nonce = _wire.NONCE.unpack(payload)[0]
                with self.lock:
                    event = self._pongs.pop(nonce, None)
                if event is not None:
                    event.set()
        elif type_id == _wire.ERROR:
            self._on_error(payload)
        else:
            log.debug("%s: ignored control frame type %d (%d bytes)", self.describe(), type_id, len(payload))

    def _on_error(self, payload):
        code, name, reason = _wire.decode_error(payload)
        if code in (_wire.CODE_UNKNOWN_TYPE, _wire.CODE_SIZE_MISMATCH, _wire.CODE_INVALID_PAYLOAD):
            # The host dropped one frame and keeps the connection (another contracts
            # version, a hand-made frame, a payload that breaks its contract): count it,
            # log the first and every 1000th.
            self.dropped_by_host += 1
            if self.dropped_by_host % 1000 == 1:
                log.warning("%s: the host dropped a frame (%d so far): %s: %s", self.describe(),
                            self.dropped_by_host, name, reason)
            return
        if code == _wire.CODE_LIMIT_EXCEEDED:
            # A METRICS snapshot above the host's per-client limits: the host keeps the
            # previous one and the connection.
            self.metrics_refused += 1
            if self.metrics_refused % 100 == 1:
                log.warning("%s: the host refused a METRICS snapshot (%d so far): %s", self.describe(),
                            self.metrics_refused, reason)
            return
        if code in (_wire.CODE_DIGEST_MISMATCH, _wire.CODE_BAD_DIGEST_LENGTH):
            error = SchemaMismatch(f"{self.describe()}: the host refused the schema digest: {reason}")
            error.code, error.reason = code, reason
            raise ConnectionLost(f"ERROR {name}: {reason}", error)
        if code == _wire.CODE_UNSUPPORTED_VERSION:
            raise ConnectionLost(f"ERROR {name}: {reason}", TransportError(
                f"{self.describe()}: the host refused HELLO: {reason}", code, reason))
        raise ConnectionLost(f"the host closed the connection: ERROR {name}: {reason}")

    # ------------------------------------------------------------------ the reader thread

    def _reader_main(self, sock):
        """Reads each connection until it ends, then reconnects; exits on close or failure."""
        while True:
            started = time.monotonic()
            try:
                self._channel.read(sock)
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
                self._backoff.restart(time.monotonic() - started)
                sock = self._reconnect()
            except Exception as e:  # noqa: BLE001 - a bug here must not leave a silent, dead transport
                log.exception("%s: reconnecting failed", self.describe())
                final = TransportError(f"{self.describe()}: reconnecting failed: {e}")
                self._connection_lost(None, ConnectionLost(f"reconnecting failed: {e}", final))
                return
            if sock is None:
                return

    def _connection_lost(self, sock, lost):
        """Marks the connection down; False when the transport is finished (closed or failed)."""
        self._channel.lost()
        with self._channel.send_lock:  # a write in progress ends first
            with self.lock:
                if self.state is CLOSED or self.stopping.is_set():
                    return False
                self.last_error = str(lost)
                final = lost.error
                if final is None and not self._auto_reconnect:
                    final = TransportError(f"{self.describe()}: {lost} (reconnect=False)")
                self._channel.detach(sock, final is not None)
                if final is not None:
                    self.state = FAILED
                    self.failure = final
                else:
                    self.state = RECONNECTING
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

    def _reconnect(self):
        attempts = 0
        channel = self._channel
        while True:
            if self.stopping.wait(self._backoff.next_delay()):
                return None
            attempts += 1
            try:
                sock = self._dial()
            except TransportError as e:
                self.last_error = str(e)
                log.debug("%s: reconnect attempt %d failed: %s", self.describe(), attempts, e)
                continue
            channel.dialed()
            with self.subscription_lock:
                # The PING's PONG is not awaited: it only keeps every preamble alike.
                preamble = self._preamble(next(self._nonces) & 0xFFFFFFFFFFFFFFFF)
                with channel.send_lock:  # nothing queued may reach the socket before the preamble
                    with self.lock:
                        if self.state is not RECONNECTING:
                            sock.close()
                            return None
                        data = preamble + channel.attach(sock)
                        # With the state: whoever sees CONNECTED sees this reconnect counted.
                        self.state = CONNECTED
                        self.reconnects += 1
                    try:
                        sock.sendall(data)
                    except OSError as e:
                        with self.lock:
                            self.state = RECONNECTING
                            self.reconnects -= 1
                            channel.forget_socket(sock)
                        sock.close()
                        self.last_error = f"write failed: {e}"
                        continue
            log.info("%s: reconnected after %d attempt(s)", self.describe(), attempts)
            return sock


__all__ = ["Backoff", "CLOSED", "CONNECTED", "Connection", "ConnectionLost", "FAILED", "IDLE", "RECONNECTING",
           "shutdown_socket"]
