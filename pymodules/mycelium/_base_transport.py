"""What every transport is made of, and the API they share (internal).

A transport composes three pieces: the `Routes` (which subscribers get a frame, _routes.py),
the `Connection` (state machine, reconnect, PING/PONG, the host's ERROR, _connection.py) and
a channel that carries the frames: the `SocketChannel` (_socket_channel.py) for
UnixTransport and TcpTransport, the `RingChannel` (_ring_channel.py, around a socket
channel) for SharedMemoryTransport. `BaseTransport` builds them and turns the public API
(transport.py's docstring has the rules) into calls on them.
"""

import dataclasses

from . import _wire
from ._connection import CONNECTED, Backoff, Connection
from ._routes import Routes
from ._socket_channel import SocketChannel
from .publisher import Publisher
from .subscriber import Subscriber


@dataclasses.dataclass(frozen=True)
class Options:
    """The keywords every transport takes (the transports' docstrings say what they do)."""

    name: str = None
    reconnect: bool = True
    buffer_while_disconnected: int = 0
    flush_bytes: int = 64 * 1024
    connect_timeout: float = 5.0
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    max_payload: int = _wire.MAX_PAYLOAD


class BaseTransport:
    """The shared API of the transports; see the module docstring.

    `dial()` returns a connected blocking socket (or raises TransportError); `channel`,
    when given, makes the channel from (socket channel, connection, routes).

    Thread safety: every public method may be called from any thread.
    """

    # The SDK's own internal interface: what Runtime and Subscriber may use of a transport.
    #: Seconds Subscriber.recv() reads the transport itself before it blocks (0: never).
    recv_spin = 0.0
    #: receive_spinning(subscriber, seconds) -> a message or subscriber.NOTHING: reads the
    #: transport on the calling thread, for up to `seconds`, for a message for `subscriber`.
    #: None here: the socket channel hands every message over from the reader thread.
    receive_spinning = None

    def __init__(self, schema_digest, options, dial, channel=None):
        digest = _wire.parse_digest(schema_digest)
        name = options.name or "python"
        _wire.hello(name)  # validates the name now rather than at connect()
        if options.buffer_while_disconnected < 0:
            raise ValueError("buffer_while_disconnected must be >= 0")
        self._max_payload = options.max_payload
        self._routes = Routes(self.describe)
        self._connection = Connection(
            digest, name, self._routes, dial, self.describe, reconnect=options.reconnect,
            connect_timeout=options.connect_timeout,
            backoff=Backoff(options.backoff_initial, options.backoff_max))
        socket_channel = SocketChannel(self._connection, self._routes, flush_bytes=options.flush_bytes,
                                       buffer_limit=options.buffer_while_disconnected,
                                       max_payload=options.max_payload)
        self._channel = socket_channel if channel is None else channel(socket_channel, self._connection,
                                                                          self._routes)
        self._connection.attach_channel(self._channel)

    # ------------------------------------------------------------------ internal interface

    def frame_writer(self):
        """The function that writes one encoded frame, `write(header, payload)`, to the host
        (what the Runtime's publishers call once per publish)."""
        return self._channel.write

    def deliver_locally(self, type_id, payload):
        """Hands a frame this process published to its own subscriptions of `type_id`, as
        the host hands it to every other subscriber (the Runtime's loop-back)."""
        self._routes.deliver(type_id, payload)

    def add_sink(self, cls, sink):
        """Routes decoded `cls` messages to `sink` (`_push(msg)`, `_fail(exc)`), declaring
        the type to the host (`SUBSCRIBE`) when it is the first of its type."""
        self._connection.add_sink(cls, sink)

    def remove_sink(self, cls, sink):
        """Stops routing to `sink` (`UNSUBSCRIBE` when it was its type's last one)."""
        self._connection.remove_sink(cls, sink)

    # ------------------------------------------------------------------ public API

    @property
    def connected(self):
        return self._connection.state is CONNECTED

    @property
    def schema_digest(self):
        return self._connection.digest

    @property
    def reconnects(self):
        return self._connection.reconnects

    @property
    def decode_errors(self):
        return self._routes.decode_errors

    @property
    def dropped_by_host(self):
        """Frames the host answered with ERROR unknown_type / size_mismatch / invalid_payload."""
        return self._connection.dropped_by_host

    def describe(self):
        """The endpoint, as 'unix:PATH', 'tcp:HOST:PORT' or 'shm:PATH'."""
        raise NotImplementedError

    def connect(self):
        """Connects, says HELLO, declares the subscriptions and waits for the host's answer.

        Raises `TransportError` when the host cannot be reached or does not answer within
        `connect_timeout`, `SchemaMismatch` (with the host's reason) when it refuses the
        digest, `ClosedError` after close(). Connecting a connected transport does nothing.
        """
        self._connection.connect()

    def publisher(self, message_cls):
        """A Publisher of `message_cls` on this transport."""
        return Publisher._writing_to(message_cls, self._channel.write, self._max_payload)

    def subscriber(self, message_cls, maxsize=0):
        """A Subscriber of `message_cls`; declares interest to the host (`SUBSCRIBE`)."""
        sub = Subscriber._on_transport(self, message_cls, maxsize)
        self.add_sink(message_cls, sub)
        return sub

    def publish(self, message):
        """Publishes one message (a Publisher made on the fly; keep a Publisher in loops)."""
        Publisher._writing_to(type(message), self._channel.write, self._max_payload).publish(message)

    def flush(self):
        """Writes everything queued now, from this thread."""
        self._channel.flush()

    def sync(self, timeout=5.0):
        """Round trip to the host: when it returns, the host has handled every frame this
        transport sent before (subscriptions, publishes). Raises TransportError on timeout."""
        self._connection.sync(timeout)

    def report_metrics(self, payload):
        """Sends a METRICS frame (a snapshot from mycelium.metrics) to the host."""
        self._channel.write_control(_wire.frame(_wire.METRICS, payload))

    def close(self):
        """Writes what is queued, closes the connection and stops the threads. Subscribers
        return what they hold, then raise ClosedError. Idempotent."""
        self._connection.close()

    def stats(self):
        """Counters: reconnects, decode errors, the state and the last connection error."""
        connection = self._connection
        return {"state": connection.state, "reconnects": connection.reconnects,
                "decode_errors": self._routes.decode_errors, "dropped_by_host": connection.dropped_by_host,
                "last_error": connection.last_error}

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<{type(self).__name__} {self.describe()} {self._connection.state}>"


__all__ = ["BaseTransport", "Options"]
