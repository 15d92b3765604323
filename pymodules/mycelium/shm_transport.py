"""SharedMemoryTransport: a node's shared-memory rings, from pure Python.

`SharedMemoryTransport.open(path, schema_digest)` connects to the node's Unix
socket as UnixTransport does, then moves the connection's frames to two rings in shared
memory (docs/wire-protocol.md, "Shared-memory setup" and "Shared-memory rings"):

1. after HELLO and the subscriptions it sends SHM_REQUEST (`ring_bytes` per direction,
   0 = the node's default);
2. the host answers SHM_OFFER with four descriptors (SCM_RIGHTS): the memfd of the ring
   client->host, the memfd of the ring host->client, this side's eventfd, the host's
   eventfd. The reader thread checks every one of them (sealed memfds of the announced
   size, ring headers, digest, eventfds) and maps both rings, or answers SHM_REFUSE
   bad_offer and stays on the socket;
3. SHM_READY is the last frame written to the socket: from then on publish() writes
   straight into the ring client->host (no syscall unless the host sleeps);
4. the host's SHM_SWITCH is its last frame on the socket: from then on the reader thread
   reads the ring host->client. When it runs dry the reader spins for `spin` seconds
   (50 us by default) checking the socket between polls, then parks on its eventfd.

The socket stays open as the liveness channel: when the host goes away (even by
SIGKILL) the reader sees end of stream, drops the mappings, and reconnects as
UnixTransport does, asking for fresh rings. A host that refuses shared memory (disabled
on the node, no memory) leaves the connection on the socket: `open()` logs why and
`shm_active` is False; with `fallback=False` it raises ShmError instead. A ring that
breaks its rules ends the connection (the reader logs the rule, as the host does) and
the transport reconnects.

A full ring client->host makes publish() wait (spin, then sleep in 100 us slices) until
the host reads, the connection drops (TransportError) or `full_timeout` seconds pass
(TransportError).

Where the code is: SharedMemoryTransport composes the same `Connection` as UnixTransport
(_connection.py) with a `RingChannel` (_ring_channel.py: the setup, the rings, reading
and writing them, and the socket channel it uses before and without them).
"""

import logging
import os

from . import _ring
from ._base_transport import BaseTransport, Options
from ._ring_channel import RingChannel
from ._socket_channel import dial_unix
from .errors import ShmError

log = logging.getLogger("mycelium")

#: True: this SDK drives the host's shared-memory rings.
AVAILABLE = True


class SharedMemoryTransport(BaseTransport):
    """A node's shared-memory rings, set up over its Unix socket (see the module docstring).

    `SharedMemoryTransport(path, schema_digest, **options)` makes one (not connected);
    `open()` and `create()` make and connect it. Options: those of UnixTransport, plus
    `ring_bytes` (0: the node's default, e.g. 1 MiB), `spin` (seconds the reader thread
    spins on an empty ring before it parks, 50e-6), `recv_spin` (seconds Subscriber.recv()
    reads the ring itself before it blocks, 200e-6), `fallback` (True: stay on the socket
    when the host refuses shared memory), `full_timeout` (seconds publish() waits for room,
    5.0). docs/python-sdk.md, "Shared memory".

    Thread safety: as UnixTransport, every public method may be called from any thread.
    """

    AVAILABLE = AVAILABLE

    def __init__(self, path, schema_digest, *, ring_bytes=0, spin=50e-6, recv_spin=200e-6, fallback=True,
                 full_timeout=5.0, **options):
        path = os.fspath(path)
        if path.startswith(("shm:", "unix:")):
            path = path.split(":", 1)[1]
        self._path = path
        options = Options(**options)
        if not 0 <= int(ring_bytes) <= _ring.MAX_CAPACITY:
            raise ValueError(f"ring_bytes must be in [0, {_ring.MAX_CAPACITY}], got {ring_bytes}")
        self._connect_timeout = options.connect_timeout
        self._fallback = fallback
        self._ring = None

        def ring_channel(socket_channel, connection, routes):
            self._ring = RingChannel(socket_channel, connection, routes, ring_bytes=int(ring_bytes),
                                     spin=float(spin), full_timeout=float(full_timeout))
            return self._ring

        super().__init__(schema_digest, options, lambda: dial_unix(self._path, self._connect_timeout),
                         ring_channel)
        #: Seconds Subscriber.recv() reads the ring itself before it blocks.
        self.recv_spin = float(recv_spin)
        self.receive_spinning = self._ring.receive_spinning

    @classmethod
    def open(cls, path, schema_digest, **options):
        """Connects to the node at `path` (a socket path, or 'unix:PATH' /
        'shm:PATH') and moves to shared memory; returns the connected transport."""
        transport = cls(path, schema_digest, **options)
        transport.connect()
        return transport

    @classmethod
    def create(cls, path, schema_digest, ring_bytes=0, *, capacity=None, **options):
        """As open(), asking the host for rings of `ring_bytes` per direction (rounded up to
        a power of two and bounded by the node's `shm.ring_bytes`). `capacity` is
        Mycelium's name for it: there the caller made the file ring, here the host does."""
        if capacity is not None:
            ring_bytes = capacity
        return cls.open(path, schema_digest, ring_bytes=ring_bytes, **options)

    @property
    def path(self):
        return self._path

    @property
    def shm_active(self):
        """True while frames travel through the rings."""
        return self._ring.active

    @property
    def shm_status(self):
        """How the shared-memory setup went on the current connection."""
        return self._ring.status

    def describe(self):
        return f"shm:{self._path}"

    def stats(self):
        stats = super().stats()
        stats["shm"] = self.shm_status
        return stats

    def connect(self):
        """Connects as UnixTransport.connect() does, then waits until the rings are in use or
        the host refused them (ShmError when refused and `fallback=False`)."""
        super().connect()
        if not self._ring.settled.wait(self._connect_timeout):
            self.close()
            raise ShmError(f"{self.describe()}: the host did not set up shared memory within "
                           f"{self._connect_timeout} s ({self.shm_status})")
        if not self.shm_active:
            if not self._fallback:
                error = ShmError(f"{self.describe()}: shared memory unavailable: {self.shm_status}")
                self.close()
                raise error
            log.warning("%s: shared memory unavailable (%s); staying on the Unix socket", self.describe(),
                        self.shm_status)


__all__ = ["AVAILABLE", "SharedMemoryTransport", "ShmError"]
