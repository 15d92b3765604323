"""One shared-memory ring, driven from pure Python (docs/wire-protocol.md, "Shared-memory
rings"): the memfd region, its checks, a producer and a consumer.

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

    def __init__(self, name, detail):
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
        self._fence = threading.Lock()
        self._fence_acquire, self._fence_release = self._fence.acquire, self._fence.release
        p, r = self._q[_Q_PRODUCER], self._q[_Q_CONSUMER]
        if p % 8 or r % 8 or p < r or p - r > self._cap:
            raise RingError("bad_producer_index", f"the ring starts with P={p}, R={r}")
        self._start_p, self._start_r = p, r

    def fence(self):
        """A full barrier (x86-64: a locked compare-and-swap)."""
        with self._fence:
            pass


class RingProducer(_RingEnd):
    """Writes frames into a ring. Not thread safe: one writer at a time (the transport
    holds a lock around it)."""

    def __init__(self, ring, consumer_bell=None):
        super().__init__(ring)
        self._bell = consumer_bell
        self._write = self._published = self._start_p
        self._consumer = self._start_r

    def _load_consumer(self):
        r = self._q[_Q_CONSUMER]
        last = self._consumer
        if r % 8 or r - last > self._published - last or r < last:
            raise RingError("bad_consumer_index", f"R={r} (last {last}, published {self._published})")
        self._consumer = r

    def try_write(self, header, payload):
        """Writes one frame (its 6 header bytes and its payload) and publishes it: True, or
        False when the ring has no room now (wait, then try again); RingError for a broken
        ring. Call wake_consumer() after it."""
        n = 6 + len(payload)
        size = (n + 7) & ~7
        w = self._write
        cap = self._cap
        off = w & (cap - 1)
        if size <= cap - off and n <= self._limit + 6 and cap - (w - self._consumer) >= size:
            start = HEADER_BYTES + off  # the common case: it fits before the end, and in the room known
            mm = self._mm
            mm[start:start + 6] = header
            mm[start + 6:start + n] = payload
            w += size
            self._write = self._published = w
            self._q[_Q_PRODUCER] = w  # one 8-byte store, after the frame bytes
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
                    self._write = self._published = w + tail
                    self._q[_Q_PRODUCER] = self._write
                return False
        if size > tail:
            self._mm[HEADER_BYTES + off:HEADER_BYTES + off + 8] = _WRAP_MARKER
            w += tail
            off = 0
        start = HEADER_BYTES + off
        self._mm[start:start + 6] = header
        self._mm[start + 6:start + 6 + length] = payload
        self._write = self._published = w + size
        self._q[_Q_PRODUCER] = self._write
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

    def _load_producer(self):
        p = self._q[_Q_PRODUCER]
        r = self._read
        if p % 8 or p - r > self._cap or p < self._producer or p < r:
            raise RingError("bad_producer_index", f"P={p} (R={r}, last P {self._producer}, capacity {self._cap})")
        self._producer = p
        return p

    def published(self):
        """A hint, unchecked and without a lock: True when the producer index moved past
        what was read. read_batch() does the checks. ValueError once the ring is unmapped."""
        return self._q[_Q_PRODUCER] != self._read

    def has_data(self):
        """True when a frame (or a wrap marker) is published and not read yet."""
        return self._read != self._producer or self._load_producer() != self._read

    def read_batch(self, limit, out):
        """Appends up to `limit` frames to `out` as (type_id, payload bytes) and releases
        them; returns how many. Raises RingError on a broken ring."""
        mm, q = self._mm, self._q
        cap, mask, max_len = self._cap, self._mask, self._limit
        r = self._read
        p = self._producer
        count = 0
        while count < limit:
            if r == p:
                self._read = r
                p = self._load_producer()
                if r == p:
                    break
            off = r & mask
            avail = p - r
            word = q[(HEADER_BYTES + off) >> 3]  # the header, loaded once
            type_id = word & 0xFFFF
            length = (word >> 16) & 0xFFFFFFFF
            if type_id == 0:
                if length != WRAP_LENGTH or off == 0 or cap - off > avail:
                    self._read = r
                    raise RingError("bad_wrap_marker", f"type 0, length {length:#x} at offset {off}, "
                                    f"{avail} bytes published")
                r += cap - off
                self._read = r
                self._release()  # the producer may be waiting for exactly that room
                continue
            if length > max_len:
                self._read = r
                raise RingError("oversize", f"a frame of {length} bytes (type {type_id}), limit {max_len}")
            size = (6 + length + 7) & ~7
            if size > avail or off + size > cap:
                self._read = r
                raise RingError("frame_overrun", f"a frame of {size} bytes at offset {off}, {avail} bytes published")
            start = HEADER_BYTES + off + 6
            out.append((type_id, mm[start:start + length]))  # a copy: the region is shared
            r += size
            count += 1
        self._read = r
        if count:
            self._release()
        return count

    def _release(self):
        self._q[_Q_CONSUMER] = self._read
        if self._producer_bell is not None:
            self.fence()
            if self._w[_I_WAITING]:
                self._w[_I_WAITING] = 0
                os.eventfd_write(self._producer_bell, 1)

    def begin_park(self):
        """Says the consumer sleeps; False (flag cleared) when a frame came meanwhile or the
        producer closed: read again instead of waiting."""
        self._w[_I_SLEEPING] = 1
        self.fence()  # the flag store before the index load
        if self._q[_Q_PRODUCER] != self._read or self._w[_I_PRODUCER_CLOSED]:
            self._w[_I_SLEEPING] = 0
            return False
        return True

    def end_park(self):
        self._w[_I_SLEEPING] = 0

    def close(self):
        """Sets the consumer-closed flag (a waiting producer stops waiting)."""
        if not self._mm.closed:
            self._w[_I_CONSUMER_CLOSED] = 1


__all__ = ["MappedRing", "RingConsumer", "RingError", "RingProducer"]
