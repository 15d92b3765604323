"""One shared-memory ring, driven from pure Python (docs/wire-protocol.md, "Shared-memory
rings"): the memfd region, its checks, a producer and a consumer; and the two rings of
one connection with their doorbells, as one SHM_OFFER brings them (`ConnectionRings`).

The host formats the rings and passes their descriptors (SHM_OFFER); this module maps
them and moves frames. Everything read from the region is checked before use: a ring
that breaks a rule raises RingError with the stable name the host uses for the same
case, and nothing outside the mapping is ever touched.

Word access. Index and flag words go through a `memoryview` cast to "Q" / "I": item
access is one aligned load or store of the native little-endian word (CPython copies
the item with a fixed-size memcpy, which compiles to one mov), never byte by byte.
Fences: Python has none; acquiring and releasing a `threading.Lock` executes a locked
compare-and-swap (glibc's semaphore), a full barrier on x86-64.
"""

import fcntl
import mmap
import os
import sys
import threading

from . import _wire
from .errors import ShmError

HEADER_BYTES = 256
MAGIC = b"MYC-RING"
VERSION = 1
MIN_CAPACITY = 64
MAX_CAPACITY = 1 << 30
WRAP_LENGTH = 0xFFFFFFFF

# Word numbers of the header fields (byte offset / word size).
_Q_CAPACITY = 16 // 8
_Q_PRODUCER = 64 // 8
_Q_CONSUMER = 128 // 8
_I_VERSION = 8 // 4
_I_HEADER_SIZE = 12 // 4
_I_SLEEPING = 192 // 4
_I_WAITING = 196 // 4
_I_PRODUCER_CLOSED = 200 // 4
_I_CONSUMER_CLOSED = 204 // 4

_WRAP_MARKER = (WRAP_LENGTH << 16).to_bytes(8, "little")  # type 0, length 0xFFFFFFFF


class RingError(ShmError):
    """A ring broke a rule; `name` is the host's name for it (wire-protocol.md, "What a
    reader rejects"): bad_magic, bad_producer_index, frame_overrun, ..."""

    def __init__(self, name="ring_error", detail=""):
        super().__init__(f"shared-memory ring: {name}: {detail}")
        self.name = name


class MappedRing:
    """The mapping of one ring's memfd, checked. Closing it unmaps; the descriptor is the
    caller's."""

    def __init__(self, fd, capacity, digest):
        if sys.byteorder != "little":
            raise ShmError("shared-memory rings need a little-endian machine")
        if capacity & (capacity - 1) or not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
            raise RingError("bad_capacity", f"{capacity} is not a power of two in [64, 2^30]")
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError as e:
            raise ShmError(f"the ring descriptor is not a sealable memfd: {e.strerror}") from None
        if not (seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_GROW):
            raise ShmError("the ring's memfd is not sealed against shrinking and growing")
        size = os.fstat(fd).st_size
        if size != HEADER_BYTES + capacity:
            raise RingError("region_too_small", f"the memfd has {size} bytes, expected {HEADER_BYTES + capacity}")
        self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.q = memoryview(self._mm).cast("Q")
        self.w = memoryview(self._mm).cast("I")
        self.capacity = capacity
        try:
            self._check_header(digest)
        except Exception:
            self.close()
            raise

    @property
    def mm(self):
        return self._mm

    def _check_header(self, digest):
        mm, w = self._mm, self.w
        if mm[0:8] != MAGIC:
            raise RingError("bad_magic", f"magic {bytes(mm[0:8])!r}")
        if w[_I_VERSION] != VERSION:
            raise RingError("bad_version", f"version {w[_I_VERSION]}")
        if w[_I_HEADER_SIZE] != HEADER_BYTES:
            raise RingError("bad_header_size", f"header size {w[_I_HEADER_SIZE]}")
        if self.q[_Q_CAPACITY] != self.capacity:
            raise RingError("bad_capacity", f"the header says {self.q[_Q_CAPACITY]}, the offer {self.capacity}")
        if mm[32:64] != digest:
            raise RingError("digest_mismatch", "the ring was made for other contracts")

    def close(self):
        """Unmaps. Idempotent."""
        if self._mm is None:
            return
        self.q.release()
        self.w.release()
        self._mm.close()
        self._mm = None


class _RingEnd:
    """What both ends of a ring keep: the mapping's views, the geometry, a fence, and the
    two indices as found (checked: a ring handed over with inconsistent indices is refused)."""

    def __init__(self, ring):
        self._ring = ring
        self._mm, self._q, self._w = ring.mm, ring.q, ring.w
        self._cap = ring.capacity
        self._mask = ring.capacity - 1
        self._limit = min(4 << 20, ring.capacity - 6)
        fence = threading.Lock()  # only ever taken and released at once: see fence()
        self._fence_acquire, self._fence_release = fence.acquire, fence.release
        p, r = self._q[_Q_PRODUCER], self._q[_Q_CONSUMER]
        if p % 8 or r % 8 or p < r or p - r > self._cap:
            raise RingError("bad_producer_index", f"the ring starts with P={p}, R={r}")
        self._start_p, self._start_r = p, r

    def fence(self):
        """A full barrier (x86-64: a locked compare-and-swap)."""
        self._fence_acquire()
        self._fence_release()


class RingProducer(_RingEnd):
    """Writes frames into a ring. Not thread safe: one writer at a time (the transport
    holds a lock around it)."""

    def __init__(self, ring, consumer_bell=None):
        super().__init__(ring)
        self._bell = consumer_bell
        self._write = self._start_p  # the producer index: everything before it is published
        self._consumer = self._start_r  # the last consumer index loaded and checked
        self._max_frame = self._limit + 6
        self._room_end = 0
        self._measure_room()

    def _measure_room(self):
        """Where the next frame may end without a look at the consumer index: before the end
        of the data area, and in the room known free. Only ever too low (the consumer only
        moves forward), so a frame that does not fit under it goes the slow way, never wrong."""
        self._room_end = min(self._consumer + self._cap, (self._write | self._mask) + 1)

    def _load_consumer(self):
        r = self._q[_Q_CONSUMER]
        last = self._consumer
        if r % 8 or r - last > self._write - last or r < last:
            raise RingError("bad_consumer_index", f"R={r} (last {last}, published {self._write})")
        self._consumer = r
        self._measure_room()

    def _publish(self, w):
        """Stores the producer index `w`: one 8-byte store, after the frame bytes."""
        self._write = w
        self._q[_Q_PRODUCER] = w
        self._measure_room()

    def try_write(self, header, payload):
        """Writes one frame (its 6 header bytes and its payload) and publishes it: True, or
        False when the ring has no room now (wait, then try again); RingError for a broken
        ring. Call wake_consumer() after it."""
        n = 6 + len(payload)
        w = self._write
        end = w + ((n + 7) & ~7)
        if end <= self._room_end and n <= self._max_frame:  # the common case, in a few loads
            start = HEADER_BYTES + (w & self._mask)
            mm = self._mm
            mm[start:start + 6] = header
            mm[start + 6:start + n] = payload
            self._write = end
            self._q[_Q_PRODUCER] = end  # one 8-byte store, after the frame bytes
            return True
        return self._try_write_slow(header, payload)

    def _try_write_slow(self, header, payload):
        length = len(payload)
        if length > self._limit:
            raise ShmError(f"a frame of {length} bytes is above the ring's limit of {self._limit}")
        size = (6 + length + 7) & ~7
        w = self._write
        off = w & self._mask
        tail = self._cap - off
        need = size if size <= tail else tail + size
        if self._cap - (w - self._consumer) < need:
            self._load_consumer()
            if self._cap - (w - self._consumer) < need:
                if size > tail and self._cap - (w - self._consumer) >= tail:
                    # Publish the wrap marker alone: a frame as large as the data area only
                    # fits once the consumer has passed it.
                    self._mm[HEADER_BYTES + off:HEADER_BYTES + off + 8] = _WRAP_MARKER
                    self._publish(w + tail)
                return False
        if size > tail:
            self._mm[HEADER_BYTES + off:HEADER_BYTES + off + 8] = _WRAP_MARKER
            w += tail
            off = 0
        start = HEADER_BYTES + off
        self._mm[start:start + 6] = header
        self._mm[start + 6:start + 6 + length] = payload
        self._publish(w + size)
        return True

    def wake_consumer(self):
        """A full barrier, then the consumer's doorbell if it sleeps: call it after
        try_write(). Without the barrier between the index store and the flag load the
        consumer could park unseen (docs/wire-protocol.md, "Sleeping, doorbells and closing")."""
        self._fence_acquire()
        self._fence_release()
        w = self._w
        if w[_I_SLEEPING]:
            w[_I_SLEEPING] = 0
            if self._bell is not None:
                os.eventfd_write(self._bell, 1)

    def consumer_sleeping(self):
        """The consumer's sleeping flag, for a caller that made the full barrier after its
        index store itself; False once the ring is unmapped (its doorbell went with it)."""
        try:
            return bool(self._w[_I_SLEEPING])
        except ValueError:
            return False

    def consumer_closed(self):
        return bool(self._w[_I_CONSUMER_CLOSED])

    def close(self):
        """Sets the producer-closed flag and wakes a sleeping consumer."""
        if self._mm.closed:
            return
        self._w[_I_PRODUCER_CLOSED] = 1
        try:
            self.wake_consumer()
        except OSError:  # the consumer's end is gone already
            pass


class RingConsumer(_RingEnd):
    """Reads frames from a ring. Not thread safe: the transport's reader thread alone."""

    def __init__(self, ring, producer_bell=None):
        super().__init__(ring)
        self._producer_bell = producer_bell
        self._read = self._start_r
        self._producer = self._start_r  # the last producer index loaded and checked

    def published(self):
        """A hint, unchecked and without a lock: True when the producer index moved past
        what was read. read_frame() does the checks. ValueError once the ring is unmapped."""
        return self._q[_Q_PRODUCER] != self._read

    def read_frame(self):
        """The next frame as (type_id, payload bytes), released; None when none is published.
        The producer index is loaded (and checked) only once what was loaded before is read:
        the common case, one frame, costs one load. Raises RingError on a broken ring."""
        r = self._read
        p = self._producer
        q = self._q
        if r == p:
            p = q[_Q_PRODUCER]
            if p == r:
                return None
            if p % 8 or p < r or p - r > self._cap:
                raise RingError("bad_producer_index", f"P={p} (R={r}, last P {self._producer}, capacity {self._cap})")
            self._producer = p
        off = r & self._mask
        word = q[(HEADER_BYTES + off) >> 3]  # the header, loaded once
        type_id = word & 0xFFFF
        length = (word >> 16) & 0xFFFFFFFF
        if type_id == 0:
            self._pass_wrap_marker(off, length, p - r)
            return self.read_frame()  # at offset 0 now, where a wrap marker is refused
        if length > self._limit:
            raise RingError("oversize", f"a frame of {length} bytes (type {type_id}), limit {self._limit}")
        size = (6 + length + 7) & ~7
        if size > p - r or off + size > self._cap:
            raise RingError("frame_overrun", f"a frame of {size} bytes at offset {off}, {p - r} bytes published")
        start = HEADER_BYTES + off + 6
        payload = self._mm[start:start + length]  # a copy: the region is shared
        # Released at once (inline: this is the receive hot path).
        r += size
        self._read = r
        q[_Q_CONSUMER] = r
        if self._producer_bell is not None:
            self._wake_producer()
        return type_id, payload

    def _pass_wrap_marker(self, off, length, avail):
        if length != WRAP_LENGTH or off == 0 or self._cap - off > avail:
            raise RingError("bad_wrap_marker", f"type 0, length {length:#x} at offset {off}, {avail} bytes published")
        self._read += self._cap - off
        self._q[_Q_CONSUMER] = self._read
        if self._producer_bell is not None:
            self._wake_producer()  # it may be waiting for exactly that room

    def _wake_producer(self):
        """After a consumer index store: a full barrier, then the producer's doorbell if it
        waits for room."""
        self.fence()
        if self._w[_I_WAITING]:
            self._w[_I_WAITING] = 0
            os.eventfd_write(self._producer_bell, 1)

    def begin_park(self):
        """Says the consumer sleeps; False (flag cleared) when a frame came meanwhile or the
        producer closed: read again instead of waiting."""
        w = self._w
        w[_I_SLEEPING] = 1
        self._fence_acquire()  # a full barrier between the flag store and the index load
        self._fence_release()
        if self._q[_Q_PRODUCER] != self._read or w[_I_PRODUCER_CLOSED]:
            w[_I_SLEEPING] = 0
            return False
        return True

    def end_park(self):
        self._w[_I_SLEEPING] = 0

    def close(self):
        """Sets the consumer-closed flag (a waiting producer stops waiting)."""
        if not self._mm.closed:
            self._w[_I_CONSUMER_CLOSED] = 1


def _is_eventfd(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]"
    except OSError:
        return True  # no /proc: the kernel will refuse a read of the wrong size later


def close_fds(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class ConnectionRings:
    """The two mapped rings and the two doorbells of one connection. It owns the four
    descriptors from the start: a failed check closes them all (and unmaps) before it
    raises."""

    def __init__(self, fds, offer, digest):
        to_host_fd, to_client_fd, own_bell, host_bell = fds
        self.fds = list(fds)
        self.to_host = self.from_host = self.producer = self.consumer = None
        try:
            if len(offer) < _wire.SHM_OFFER_BODY.size:
                raise ShmError(f"SHM_OFFER of {len(offer)} bytes, expected {_wire.SHM_OFFER_BODY.size}")
            version, _flags, count, _reserved, c1, c2 = _wire.SHM_OFFER_BODY.unpack_from(offer)
            if version != _wire.SHM_VERSION or count != 4:
                raise ShmError(f"SHM_OFFER version {version} with {count} descriptors, expected version 1 with 4")
            if not (_is_eventfd(own_bell) and _is_eventfd(host_bell)):
                raise ShmError("the offered doorbells are not eventfds")
            os.set_blocking(own_bell, False)
            self.to_host = MappedRing(to_host_fd, c1, digest)
            self.from_host = MappedRing(to_client_fd, c2, digest)
            self.producer = RingProducer(self.to_host, consumer_bell=host_bell)
            # The host never parks for room in this ring (it sleeps in slices instead), so
            # the consumer has no producer doorbell to ring.
            self.consumer = RingConsumer(self.from_host)
        except Exception:
            self.close()
            raise
        self.bell = own_bell

    def describe(self):
        return f"{self.to_host.capacity}+{self.from_host.capacity}-byte rings"

    def close(self):
        """Says goodbye in the flags, unmaps, closes the descriptors. Idempotent."""
        for ring, end in ((self.to_host, self.producer), (self.from_host, self.consumer)):
            if ring is not None and ring.mm is not None:
                try:
                    if end is not None:
                        end.close()
                finally:
                    ring.close()
        close_fds(self.fds)
        self.fds = []


__all__ = ["ConnectionRings", "MappedRing", "RingConsumer", "RingError", "RingProducer", "close_fds"]
