"""The ring channel (internal): a connection's frames in a node's shared-memory rings.

It carries the connection on its Unix socket (a `SocketChannel` inside it) until the
rings are set up, then moves the frames to two rings in shared memory (docs/wire-protocol.md,
"Shared-memory setup" and "Shared-memory rings"):

1. the preamble ends with SHM_REQUEST (`ring_bytes` per direction, 0 = the node's default);
2. the host answers SHM_OFFER with four descriptors (SCM_RIGHTS): the memfd of the ring
   client->host, the memfd of the ring host->client, this side's eventfd, the host's
   eventfd. The reader thread checks every one of them (sealed memfds of the announced
   size, ring headers, digest, eventfds) and maps both rings, or answers SHM_REFUSE
   bad_offer and stays on the socket;
3. SHM_READY is the last frame written to the socket: from then on writes go straight into
   the ring client->host (no syscall unless the host sleeps);
4. the host's SHM_SWITCH is its last frame on the socket: from then on the reader thread
   reads the ring host->client. When it runs dry the reader spins for `spin` seconds
   (50 us by default) checking the socket between polls, then parks on its eventfd. A
   thread in Subscriber.recv() may read the ring itself meanwhile (`receive_spinning`).

The socket stays the liveness channel: its end (or the host's ERROR on it) ends the
connection, the rings are dropped with it (`lost()`), and the connection reconnects and
asks for fresh rings. A ring that breaks its rules ends the connection too. A host that
refuses leaves the frames on the socket channel. Application frames go to
`Routes.deliver`, control frames to `Connection.on_control`, as on the socket.

A full ring client->host makes a write wait (spin, then sleep in 100 us slices) until
the host reads, the connection drops (TransportError) or `full_timeout` seconds pass
(TransportError).
"""

import array
import logging
import os
import select
import socket
import threading
import time

from . import _ring, _wire
from ._connection import ConnectionLost
from .errors import ShmError, TransportError
from .subscriber import NOTHING

log = logging.getLogger("mycelium")

_BATCH = 256  # frames read from the ring between two looks at the socket
_MAX_FDS = 8  # descriptors accepted in one read (the offer brings 4)
_WAIT_SLICE = 100e-6  # a publisher waiting for room sleeps this long between looks


class RingChannel:
    """A connection's frames in the shared-memory rings, on the socket before and without
    them; see the module docstring. The channel interface is _connection.py's."""

    def __init__(self, socket_channel, connection, routes, *, ring_bytes, spin, full_timeout):
        self._socket = socket_channel
        self._connection = connection
        self._routes = routes
        self._describe = connection.describe
        self._on_control = connection.on_control
        self._ring_bytes = ring_bytes
        self._spin = spin
        self._full_timeout = full_timeout
        # Lock order: the connection's subscription_lock, _ring_lock, then the send lock
        # and the connection's lock. Every frame this side writes passes under _ring_lock,
        # so none can reach the socket after SHM_READY.
        self._ring_lock = threading.Lock()
        self._rings = None  # ConnectionRings while the rings are set up (the reader thread's)
        self._producer = None  # set once SHM_READY is written (under _ring_lock)
        #: Set once the rings are in use, or refused, on the current connection.
        self.settled = threading.Event()
        self._torn_down = threading.Event()  # the current rings are being dropped
        # Reading the ring: the reader thread, or a thread spinning in Subscriber.recv(),
        # whoever holds _consume_lock (taken before _ring_lock when both are).
        self._consume_lock = threading.Lock()
        self._consumer = None  # the ring host->client once SHM_SWITCH came
        self._reader_parked = False  # the reader thread waits on its doorbell
        self._spinners = 0  # threads in receive_spinning
        self._poll_failure = None  # why a receiving thread ended the connection
        #: How the shared-memory setup went on the current connection.
        self.status = "not connected yet"

    @property
    def active(self):
        """True while frames travel through the rings."""
        return self._producer is not None

    # ------------------------------------------------------------------ the connection's calls

    def setup_request(self):
        return _wire.shm_request(self._ring_bytes)

    def dialed(self):
        self.settled.clear()
        self._torn_down.clear()
        self._poll_failure = None
        self.status = "requested"

    @property
    def send_lock(self):
        return self._socket.send_lock

    def attach(self, sock):
        return self._socket.attach(sock)

    def detach(self, sock, final):
        self._socket.detach(sock, final)

    def forget_socket(self, sock):
        self._socket.forget_socket(sock)

    def detach_all(self):
        return self._socket.detach_all()

    def lost(self):
        self._drop_rings()
        self.settled.set()  # connect() waiting on this connection stops waiting

    def start(self, name):
        self._socket.start(name)

    def stop(self):
        self._socket.stop()

    def join(self):
        self._socket.join()

    def flush(self):
        self._socket.flush()  # the rings have no buffer: only what waits for the socket

    def flush_before_close(self):
        self._socket.flush_before_close()

    def _drop_rings(self):
        self._torn_down.set()  # a publisher waiting for room gives up
        with self._consume_lock:  # no receiving thread is inside the ring after this
            self._consumer = None
            self._reader_parked = False
        with self._ring_lock:
            self._producer = None
            rings, self._rings = self._rings, None
        if rings is not None:
            rings.close()
            self.status = "rings dropped with the connection"

    # ------------------------------------------------------------------ writing

    def write(self, header, payload):
        lock = self._ring_lock
        lock.acquire()  # not `with`: the publish hot path, ~35 ns less
        try:
            producer = self._producer
            if producer is None:
                return self._socket.write(header, payload)
            if not producer.try_write(header, payload):
                self._wait_for_room(producer, header, payload)
        except _ring.RingError as e:
            self._writing_failed(e)
        finally:
            lock.release()
        # The release above is the barrier between the index store and the load of the
        # host's sleeping flag (a locked instruction, as RingProducer.fence()), so the flag
        # is read without a second lock round trip. The doorbell is rung under the lock
        # only: once it is released the rings may be dropped and their descriptors closed
        # (and their numbers reused).
        if producer.consumer_sleeping():
            with lock:
                if self._producer is producer:
                    producer.wake_consumer()

    def write_control(self, data):
        with self._ring_lock:
            producer = self._producer
            if producer is None:
                return self._socket.write_control(data)
            self._write_frames(producer, data)

    def queue_declaration(self, data):
        with self._ring_lock:
            producer = self._producer
            if producer is None:
                return self._socket.queue_declaration(data)
            self._write_frames(producer, data)
            return False

    def _write_frames(self, producer, data):
        """Under _ring_lock: writes the frames of `data` (whole TLV frames back to back)."""
        try:
            for _, at, stop in _wire.split_frames(data, 0, len(data)):
                header, payload = data[at - _wire.HEADER_SIZE:at], data[at:stop]
                if not producer.try_write(header, payload):
                    self._wait_for_room(producer, header, payload)
            producer.wake_consumer()
        except _ring.RingError as e:
            self._writing_failed(e)

    def _wait_for_room(self, producer, header, payload):
        """Under _ring_lock: writes one frame that found the ring full, waiting for room."""
        deadline = time.monotonic() + self._full_timeout
        spin_until = time.monotonic() + self._spin
        while not producer.try_write(header, payload):
            if self._torn_down.is_set() or producer.consumer_closed():
                raise TransportError(f"{self._describe()}: the connection dropped while the ring was full")
            now = time.monotonic()
            if now >= deadline:
                raise TransportError(f"{self._describe()}: the ring to the host stayed full for "
                                     f"{self._full_timeout} s")
            if now < spin_until:
                os.sched_yield()
            else:
                time.sleep(_WAIT_SLICE)

    def _writing_failed(self, error):
        """The host broke the ring's rules: ends this connection (the reader reconnects) and
        raises TransportError to the writer."""
        self._end_connection(ConnectionLost(f"closing: {error}"))
        raise TransportError(f"{self._describe()}: {error}") from None

    def _switch_output(self, sock, rings):
        """Writes what is queued and SHM_READY on the socket, then sends through the ring."""
        with self._ring_lock:
            self._socket.flush()
            with self._socket.send_lock:
                sock.sendall(_wire.frame(_wire.SHM_READY))
            self._rings = rings
            self._producer = rings.producer

    # ------------------------------------------------------------------ reading

    def read(self, sock):
        """The socket up to SHM_SWITCH (receiving the offer's descriptors), then the ring;
        the socket only, when the host refused."""
        try:
            rest = self._read_until_switch(sock)
            if rest is not None:
                self.settled.set()
                return self._socket.read(sock, rest)
            self.settled.set()
            self._read_ring(sock)
        finally:
            self._drop_rings()

    def _read_until_switch(self, sock):
        """Frames from the socket until SHM_SWITCH (returns None) or until the host refused
        or the offer failed (returns the start of the next frame, for the plain reader)."""
        buf = bytearray()
        fds = []  # descriptors received and not claimed by an offer yet
        stay_on_socket = False
        ancillary = socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize)
        try:
            while True:
                data, anc, flags, _ = sock.recvmsg(1 << 16, ancillary, socket.MSG_CMSG_CLOEXEC)
                for level, kind, blob in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        passed = array.array("i")
                        passed.frombytes(blob[:len(blob) - len(blob) % passed.itemsize])
                        fds.extend(passed)
                if flags & socket.MSG_CTRUNC:
                    log.warning("%s: descriptors passed by the host were truncated", self._describe())
                if not data:
                    inside = f" inside a frame ({len(buf)} bytes)" if buf else ""
                    raise ConnectionLost(f"the host closed the connection{inside}")
                buf += data
                at = 0
                try:
                    for type_id, start, stop in _wire.split_frames(buf, 0, len(buf), self._socket.max_payload):
                        payload = bytes(buf[start:stop])
                        at = stop
                        if stay_on_socket:
                            self._dispatch(type_id, payload)
                        elif type_id == _wire.SHM_OFFER:
                            claimed, fds = fds, []
                            stay_on_socket = not self._take_offer(sock, payload, claimed)
                        elif type_id == _wire.SHM_REFUSE:
                            reason, text = _wire.decode_shm_refuse(payload)
                            self.status = f"refused by the host: {reason}: {text}"
                            stay_on_socket = True
                        elif type_id == _wire.SHM_SWITCH:
                            if self._producer is None:
                                raise ConnectionLost("the host sent SHM_SWITCH before this side's SHM_READY")
                            if at != len(buf):
                                raise ConnectionLost("the host wrote on the socket after SHM_SWITCH")
                            self.status = f"active ({self._rings.describe()})"
                            return None
                        else:
                            self._dispatch(type_id, payload)
                except _wire.OversizeFrame as e:
                    raise ConnectionLost(f"the host sent {e}: closing the connection") from None
                del buf[:at]
                if stay_on_socket:
                    return bytes(buf)
        finally:
            _ring.close_fds(fds)

    def _take_offer(self, sock, payload, fds):
        """Maps the offered rings and switches the output; False (SHM_REFUSE sent) when
        the offer fails a check."""
        if len(fds) != 4:
            why = f"the offer came with {len(fds)} descriptors, expected 4"
            _ring.close_fds(fds)
            return self._refuse_offer(why)
        try:
            rings = _ring.ConnectionRings(fds, payload, self._connection.digest)  # owns the descriptors, closed on failure
        except (ShmError, OSError, ValueError) as e:
            return self._refuse_offer(str(e))
        try:
            self._switch_output(sock, rings)
        except BaseException:
            rings.close()
            raise
        return True

    def _refuse_offer(self, why):
        self.status = f"offer refused: {why}"
        log.warning("%s: refusing the host's shared-memory offer: %s", self._describe(), why)
        self.write_control(_wire.shm_refuse(_wire.SHM_REFUSE_BAD_OFFER, why))
        return False

    def _dispatch(self, type_id, payload):
        if type_id >= _wire.FIRST_APPLICATION_TYPE:
            self._routes.deliver(type_id, payload)
        else:
            self._on_control(type_id, payload)

    def _read_ring(self, sock):
        """Frames from the ring host->client until the socket ends or carries ERROR."""
        consumer, bell = self._rings.consumer, self._rings.bell
        with self._consume_lock:
            self._consumer = consumer
        sock.setblocking(False)
        watch_socket = select.poll()
        watch_socket.register(sock, select.POLLIN)
        watch_both = select.poll()
        watch_both.register(sock, select.POLLIN)
        watch_both.register(bell, select.POLLIN)
        tail = bytearray()  # an ERROR frame arriving on the socket
        consume_lock = self._consume_lock
        spin = self._spin
        stopping = self._connection.stopping
        idle_since = None
        while not stopping.is_set():
            with consume_lock:
                count = self._read_batch(consumer)
            if self._poll_failure is not None:
                raise self._poll_failure
            if count:
                idle_since = None
                if count == _BATCH and not watch_socket.poll(0):
                    continue  # more is waiting, and the socket is quiet
                # A thread blocked in recv() was just woken by what was delivered: let it
                # have the GIL (and the CPU) now. This thread's spin below drops the GIL
                # only for a poll(0) and takes it back first, so otherwise the woken thread
                # waits until the spin ends (~100 us for the first frame after a pause).
                os.sched_yield()
            elif idle_since is None:
                idle_since = time.monotonic()
            readable = False
            if count == 0 and (self._spinners or time.monotonic() - idle_since >= spin):
                with consume_lock:
                    parked = self._reader_parked = consumer.begin_park()
                    if parked and self._spinners:
                        consumer.end_park()  # a receiving thread watches the ring meanwhile
                if parked:
                    events = watch_both.poll(1000)
                    with consume_lock:
                        self._reader_parked = False
                        consumer.end_park()
                    for fd, _ in events:
                        if fd == bell:
                            try:
                                os.eventfd_read(bell)
                            except BlockingIOError:
                                pass
                        else:
                            readable = True
            else:
                readable = bool(watch_socket.poll(0))  # also lets other threads have the GIL
            if readable and not self._read_socket_after_switch(sock, tail):
                if self._poll_failure is not None:
                    raise self._poll_failure  # this side ended the connection, for that reason
                with consume_lock:
                    while self._read_batch(consumer):  # what the host published before it closed
                        pass
                return

    def _read_batch(self, consumer):
        """Under _consume_lock: reads and delivers up to _BATCH frames; how many. A broken
        ring or an ERROR in it ends the connection (the reader thread raises it)."""
        if self._consumer is not consumer or self._poll_failure is not None:
            return 0
        read_frame, dispatch = consumer.read_frame, self._dispatch
        count = 0
        try:
            while count < _BATCH:
                frame = read_frame()
                if frame is None:
                    break
                count += 1
                dispatch(*frame)
        except (_ring.RingError, ConnectionLost) as e:
            self._reading_failed(e)
            return 0
        return count

    def _take(self, consumer, sink):
        """Under _consume_lock, from a thread in `sink`'s recv(): reads frames until one comes
        that only `sink` receives while nothing is queued for it, and returns it decoded,
        bypassing the queue (the reading thread is the receiving one). Other frames are
        delivered as _read_batch() delivers them. NOTHING when the ring is empty, after
        _BATCH frames, or when the connection ended (as in _read_batch())."""
        if self._consumer is not consumer or self._poll_failure is not None:
            return NOTHING
        read_frame = consumer.read_frame
        own_type, cls, decode = self._routes.alone(sink)
        count = 0
        try:
            while count < _BATCH:
                frame = read_frame()
                if frame is None:
                    break
                count += 1
                type_id, payload = frame
                if type_id == own_type and not sink.queued():
                    try:
                        return decode(payload)
                    except Exception as e:  # noqa: BLE001 - a bad frame is skipped, never fatal
                        self._routes.decode_failed(cls, payload, e)
                        continue
                self._dispatch(type_id, payload)
        except (_ring.RingError, ConnectionLost) as e:
            self._reading_failed(e)
        return NOTHING

    def _reading_failed(self, error):
        """A broken ring (RingError) or the host's ERROR in it (ConnectionLost) ends the connection."""
        self._end_connection(error if isinstance(error, ConnectionLost) else ConnectionLost(f"closing: {error}"))

    def _end_connection(self, lost):
        """Ends the connection from any thread; the reader thread reports `lost`."""
        if self._poll_failure is None:
            self._poll_failure = lost
        self._socket.shutdown()  # the reader thread sees the end and reports `lost`

    def receive_spinning(self, sink, seconds):
        """Reads the ring from the calling thread (in `sink`'s recv()) until a message for
        `sink` comes or `seconds` pass: no hand-over from the reader thread, no wake-up.
        Returns that message when it could skip the queue (see _take()), else NOTHING: look
        in the queue. Meanwhile the reader thread parks, and the host is not asked to ring.

        Plain acquire/release rather than `with`, and the first look, the start of the spin
        and its end each under one acquisition of the lock: every hop passes here."""
        consumer = self._consumer
        if consumer is None:
            return NOTHING
        lock = self._consume_lock
        published = consumer.published
        queued = sink.queued
        take = self._take
        lock.acquire()
        try:
            if self._consumer is not consumer:  # the reader thread dropped the rings meanwhile
                return NOTHING
            message = take(consumer, sink) if published() else NOTHING  # one look first: often enough
            if message is not NOTHING or seconds <= 0 or queued():
                return message
            self._spinners += 1
            if self._reader_parked:
                consumer.end_park()
        finally:
            lock.release()
        deadline = None  # from the first look that finds nothing: one clock read per hop fewer
        spinning = True
        try:
            while True:  # queued() was just looked at, under the lock
                try:
                    if published() and lock.acquire(False):
                        try:
                            message = take(consumer, sink)
                            if message is not NOTHING:
                                spinning = False
                                self._stop_spinning(consumer)
                                return message
                        finally:
                            lock.release()
                        if deadline is None or time.perf_counter() < deadline:
                            continue  # frames for others: look again before yielding
                except ValueError:  # the reader thread dropped the rings: the connection ended
                    return NOTHING
                now = time.perf_counter()
                if deadline is None:
                    deadline = now + seconds
                elif now >= deadline:
                    return NOTHING
                os.sched_yield()  # lets the reader thread, or another process on this CPU, run
                if queued():
                    return NOTHING
        finally:
            if spinning:
                lock.acquire()
                try:
                    self._stop_spinning(consumer)
                finally:
                    lock.release()

    def _stop_spinning(self, consumer):
        """Under _consume_lock: one spinning thread fewer; the last one hands the watch back
        to a parked reader thread (its doorbell must ring again)."""
        self._spinners -= 1
        while (not self._spinners and self._reader_parked and self._consumer is consumer
               and not consumer.begin_park()):
            if not self._read_batch(consumer):
                break  # the host closed its side: the socket's end follows

    def _read_socket_after_switch(self, sock, tail):
        """Reads the socket after the switch: False at end of stream; raises ConnectionLost for the
        host's ERROR (its only frame there) or anything else."""
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return True
        if not data:
            return False
        tail += data
        consumed = 0
        try:
            for type_id, at, stop in _wire.split_frames(tail, 0, len(tail), 1 << 16):
                if type_id != _wire.ERROR:
                    raise ConnectionLost(f"the host wrote a frame of type {type_id} on the socket after SHM_SWITCH")
                consumed = stop
                self._on_control(type_id, bytes(tail[at:stop]))  # raises ConnectionLost with the host's reason
        except _wire.OversizeFrame as e:
            raise ConnectionLost(f"the host wrote {e} on the socket after SHM_SWITCH") from None
        del tail[:consumed]
        # A partial frame waits for the rest, unless its header already says it is not ERROR.
        if len(tail) >= _wire.HEADER_SIZE and _wire.HEADER.unpack_from(tail)[0] != _wire.ERROR:
            type_id = _wire.HEADER.unpack_from(tail)[0]
            raise ConnectionLost(f"the host wrote a frame of type {type_id} on the socket after SHM_SWITCH")
        return True


__all__ = ["RingChannel"]
