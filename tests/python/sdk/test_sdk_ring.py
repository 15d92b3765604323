"""The SDK's pure-Python ring driver (pymodules/mycelium/_ring.py) on real memfd rings made
as the host makes them: wrap, full, empty, every frame size, and every rule a reader
enforces (docs/wire-protocol.md, "What a reader rejects")."""

import os
import random
import struct

import pytest

from sdk_helpers import make_ring_fd
from mycelium import _ring
from mycelium.errors import ShmError

DIGEST = bytes(range(32))
HEADER = struct.Struct("<HI")


@pytest.fixture
def ring_pair():
    """(producer, consumer, mapped ring) on one fresh 4096-byte ring; closed after the test."""
    made = []

    def make(capacity=4096):
        fd = make_ring_fd(capacity, DIGEST)
        ring = _ring.MappedRing(fd, capacity, DIGEST)
        made.append((fd, ring))
        return _ring.RingProducer(ring), _ring.RingConsumer(ring), ring

    yield make
    for fd, ring in made:
        ring.close()
        os.close(fd)


def write(producer, type_id, payload):
    return producer.try_write(HEADER.pack(type_id, len(payload)), payload)


def read_all(consumer):
    out = []
    while (frame := consumer.read_frame()) is not None:
        out.append(frame)
    return out


def test_empty_then_one_frame(ring_pair):
    producer, consumer, _ = ring_pair()
    assert read_all(consumer) == []
    assert write(producer, 1002, b"x" * 16)
    assert read_all(consumer) == [(1002, b"x" * 16)]
    assert read_all(consumer) == []


def test_frames_wrap_and_stay_whole_in_order(ring_pair):
    producer, consumer, _ = ring_pair(capacity=256)
    sent = []
    rng = random.Random(7)
    for i in range(5000):  # many laps of a 256-byte ring, with wrap markers
        payload = bytes([i % 251]) * rng.randint(0, 100)
        if not write(producer, 1000 + i % 7, payload):  # full: the reader catches up
            got = read_all(consumer)
            assert got == sent
            sent.clear()
            assert write(producer, 1000 + i % 7, payload)
        sent.append((1000 + i % 7, payload))
        if rng.random() < 0.5:
            got = read_all(consumer)
            assert got == sent[:len(got)]
            del sent[:len(got)]
    assert read_all(consumer) == sent


def test_full_ring_refuses_and_never_overwrites(ring_pair):
    producer, consumer, _ = ring_pair(capacity=256)
    written = 0
    while write(producer, 1001, struct.pack("<Q", written) * 3):  # 30 bytes -> 32 in the ring
        written += 1
    assert written == 256 // 32
    got = read_all(consumer)
    assert [struct.unpack_from("<Q", p)[0] for _, p in got] == list(range(written))
    assert write(producer, 1001, b"y" * 24)  # room again


def test_every_frame_size_up_to_the_capacity(ring_pair):
    producer, consumer, _ = ring_pair(capacity=512)
    for length in range(0, 512 - 6 + 1):
        payload = os.urandom(length)
        # A frame as large as the data area fits once the consumer passed the wrap marker.
        for _ in range(3):
            if write(producer, 1003, payload):
                break
            read_all(consumer)
        else:
            pytest.fail(f"a frame of {length} bytes never fit")
        assert read_all(consumer) == [(1003, payload)], length
    with pytest.raises(ShmError, match="above the ring's limit"):
        write(producer, 1003, bytes(512 - 5))


def test_the_region_is_checked_before_use():
    fd = make_ring_fd(4096, DIGEST)
    try:
        with pytest.raises(_ring.RingError, match="digest_mismatch"):
            _ring.MappedRing(fd, 4096, bytes(32))
        with pytest.raises(_ring.RingError, match="region_too_small"):
            _ring.MappedRing(fd, 8192, DIGEST)
        with pytest.raises(_ring.RingError, match="bad_capacity"):
            _ring.MappedRing(fd, 1000, DIGEST)
    finally:
        os.close(fd)
    unsealed = make_ring_fd(4096, DIGEST, sealed=False)
    try:
        with pytest.raises(ShmError, match="not sealed"):
            _ring.MappedRing(unsealed, 4096, DIGEST)
    finally:
        os.close(unsealed)
    for patch, error in (({0: b"NOT-RING"}, "bad_magic"), ({8: struct.pack("<I", 2)}, "bad_version"),
                         ({12: struct.pack("<I", 128)}, "bad_header_size"),
                         ({16: struct.pack("<Q", 2048)}, "bad_capacity")):
        bad = make_ring_fd(4096, DIGEST, patch=patch)
        try:
            with pytest.raises(_ring.RingError, match=error):
                _ring.MappedRing(bad, 4096, DIGEST)
        finally:
            os.close(bad)


@pytest.mark.parametrize("case, error", [
    ("producer index not a multiple of 8", "bad_producer_index"),
    ("producer index more than the capacity ahead", "bad_producer_index"),
    ("producer index moved back", "bad_producer_index"),
    ("wrap marker at offset 0", "bad_wrap_marker"),
    ("wrap marker with another length", "bad_wrap_marker"),
    ("length above the limit", "oversize"),
    ("frame past the producer index", "frame_overrun"),
])
def test_a_hostile_producer_is_rejected(ring_pair, case, error):
    producer, consumer, ring = ring_pair(capacity=4096)
    q = ring.q
    assert write(producer, 1002, bytes(16))
    assert read_all(consumer) == [(1002, bytes(16))]  # R = P = 24
    if case == "producer index not a multiple of 8":
        q[8] = 28
    elif case == "producer index more than the capacity ahead":
        q[8] = 24 + 4096 + 8
    elif case == "producer index moved back":
        assert write(producer, 1002, bytes(16))
        assert read_all(consumer) == [(1002, bytes(16))]  # R = P = 48
        q[8] = 40
    elif case == "wrap marker at offset 0":
        # Fill the lap up to its end exactly, so that the next frame is at offset 0.
        for _ in range((4096 - 24) // 8):
            assert write(producer, 1001, b"")
        assert len(read_all(consumer)) == (4096 - 24) // 8
        ring.mm[256:264] = struct.pack("<HI", 0, 0xFFFFFFFF) + bytes(2)
        q[8] = 4096 + 8
    elif case == "wrap marker with another length":
        ring.mm[256 + 24:256 + 32] = struct.pack("<HI", 0, 7) + bytes(2)
        q[8] = 48
    elif case == "length above the limit":
        ring.mm[256 + 24:256 + 30] = struct.pack("<HI", 1002, 5000)
        q[8] = 48
    elif case == "frame past the producer index":
        ring.mm[256 + 24:256 + 30] = struct.pack("<HI", 1002, 100)
        q[8] = 48
    with pytest.raises(_ring.RingError) as raised:
        read_all(consumer)
    assert raised.value.name == error


def test_random_bytes_in_the_region_never_escape_the_checks(ring_pair):
    """Fuzz: garbage in the indices and the data area gives RingError or frames that lie
    inside the published bytes, never an IndexError or a read outside the mapping."""
    rng = random.Random(11)
    for _ in range(300):
        producer, consumer, ring = ring_pair(capacity=256)
        for _ in range(rng.randint(0, 6)):
            write(producer, 1000 + rng.randint(0, 5), os.urandom(rng.randint(0, 40)))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(64, 256 + 256)
            ring.mm[at:at + 1] = os.urandom(1)
        try:
            for type_id, payload in read_all(consumer):
                assert len(payload) <= 256 - 6
        except _ring.RingError as e:
            assert e.name in {"bad_producer_index", "bad_wrap_marker", "oversize", "frame_overrun"}
