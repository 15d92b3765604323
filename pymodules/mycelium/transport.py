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

Where the code is: a transport is a `Connection` (_connection.py: the states, the
reader thread, reconnecting with `Backoff`, PING/PONG, the host's ERROR) composed with a
`SocketChannel` (_socket_channel.py: the write buffer, the flusher thread, reading the
socket) and the `Routes` (_routes.py: decoding frames and handing them to subscribers).
`BaseTransport` (_base_transport.py) builds them and has the methods UnixTransport and
TcpTransport share; this module adds only where each one connects.
"""

import os

from ._base_transport import BaseTransport, Options
from ._socket_channel import dial_tcp, dial_unix
from .errors import TransportError


class UnixTransport(BaseTransport):
    """A connection to a host's Unix socket: `UnixTransport(path, schema_digest)`.

    Options (keywords): `name` (the HELLO name, default "python"), `reconnect` (True),
    `buffer_while_disconnected` (0 frames), `flush_bytes` (65536), `connect_timeout` (5 s),
    `backoff_initial` (0.1 s), `backoff_max` (5 s). See the module docstring for the rules.
    """

    def __init__(self, path, schema_digest, **options):
        path = os.fspath(path)
        # A path, or the endpoint 'unix:PATH' (what MYCELIUM_ENDPOINT holds) alike.
        self._path = path[len("unix:"):] if isinstance(path, str) and path.startswith("unix:") else path
        options = Options(**options)
        self._connect_timeout = options.connect_timeout
        super().__init__(schema_digest, options, self._open_socket)

    @property
    def path(self):
        return self._path

    def describe(self):
        return f"unix:{self._path}"

    def _open_socket(self):
        """A connected, blocking socket; raises TransportError (the connection's dial)."""
        return dial_unix(self._path, self._connect_timeout)


class TcpTransport(BaseTransport):
    """A connection to a host's TCP listener: `TcpTransport(host, port, schema_digest)`.

    Same options as UnixTransport. TCP_NODELAY is set: coalescing happens in the SDK.
    """

    def __init__(self, host, port, schema_digest, **options):
        self._host = host
        self._port = int(port)
        options = Options(**options)
        self._connect_timeout = options.connect_timeout
        super().__init__(schema_digest, options, self._open_socket)

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
        """A connected, blocking socket; raises TransportError (the connection's dial)."""
        return dial_tcp(self._host, self._port, self._connect_timeout, self.describe())


__all__ = ["TcpTransport", "TransportError", "UnixTransport"]
