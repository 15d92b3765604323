"""Slow consumers get their policy (docs/wire-protocol.md, "Slow consumers"), against a real
host: a legacy client lags and skips by default, as with Mycelium; `disconnect` closes a
client that falls behind and no one else notices; `block` pauses the producer for at most
--slow-consumer-wait-ms, so another subscriber stalls that long at most and loses nothing."""

import struct
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wire import HostProcess, RawClient, counter_update, unpack_counter_update

COUNTER_UPDATE = 1002
HELLO, SUBSCRIBE, PING, PONG = 2, 3, 5, 6
FRAME = struct.Struct("<HI")


@pytest.fixture
def host(host_binary, tmp_path):
    """host(*flags, env=None) -> a HostProcess listening on a Unix socket, serving /metrics."""
    script = tmp_path / "idle.py"
    script.write_text("import mycelium_native\n")
    started = []

    def start(*flags, env=None):
        h = HostProcess(host_binary, "--script", script, "--listen", f"unix:{tmp_path / 'node.sock'}",
                        "--metrics", "127.0.0.1:0", *flags, env=env)
        h.url = h.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop(timeout=20)


def hello_client(address, digest, name, subscribe=()):
    client = RawClient(address, digest, timeout=30)
    body = name.encode()
    client.send(HELLO, struct.pack("<BBH", 1, 0, len(body)) + body)
    if subscribe:
        client.send(SUBSCRIBE, struct.pack(f"<{len(subscribe)}H", *subscribe))
    sync(client)
    return client


def sync(client, nonce=7):
    client.send(PING, struct.pack("<Q", nonce))
    while True:
        type_id, payload = client.recv(10)
        if type_id == PONG and struct.unpack("<Q", payload)[0] == nonce:
            return


def counters(values):
    return b"".join(FRAME.pack(COUNTER_UPDATE, 16) + counter_update(1, v) for v in values)


def value_of(payload):
    return unpack_counter_update(payload)[1]


def metric(url, name, **labels):
    """The sum of `name`'s samples whose labels include `labels`."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def wait_for_metric(url, name, predicate, timeout=20.0, **labels):
    deadline = time.monotonic() + timeout
    while True:
        now = metric(url, name, **labels)
        if predicate(now) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def feed(client, values, batch=20_000, pause=0.0):
    for at in range(0, len(values), batch):
        client.send_raw(counters(values[at:at + batch]))
        time.sleep(pause)


def read_counters(client, last, out, timeout=60):
    """Appends every CounterUpdate's value to `out` until `last` or the end of the stream;
    parses whole chunks, so that a Python reader keeps up with the host."""
    sock, buffer = client.sock, bytearray(client.buffer)
    sock.settimeout(timeout)
    while True:
        at = 0
        while len(buffer) - at >= FRAME.size:
            type_id, length = FRAME.unpack_from(buffer, at)
            if len(buffer) - at < FRAME.size + length:
                break
            if type_id == COUNTER_UPDATE:
                # The value follows the u32 id: at 8 in C, at 4 packed (a legacy client's default).
                out.append(struct.unpack_from("<Q", buffer, at + FRAME.size + (8 if length == 16 else 4))[0])
                if out[-1] == last:
                    return
            at += FRAME.size + length
        del buffer[:at]
        chunk = sock.recv(1 << 20)
        if not chunk:
            return
        buffer += chunk


def test_a_legacy_client_that_falls_behind_lags_and_skips_by_default(host, digest):
    h = host()
    address = h.addresses[0]
    legacy = RawClient(address, digest, timeout=30)  # Mycelium's SDK: the handshake, then frames
    sync(legacy)  # it is a legacy client now, subscribed to every type
    feeder = hello_client(address, digest, "feeder")
    feed(feeder, list(range(300_000)))  # far more than its queue and its socket hold

    dropped = wait_for_metric(h.url, "mycelium_link_client_dropped_frames_total", lambda v: v > 0)
    assert dropped > 0
    assert metric(h.url, "mycelium_link_disconnects_total", reason="slow_consumer") == 0

    # Still connected: what it reads is in order, with gaps; then what comes next arrives.
    feeder.send_raw(counters([10**9]))
    seen = []
    while True:
        type_id, payload = legacy.recv(20)
        if type_id != COUNTER_UPDATE:
            continue
        seen.append(value_of(payload))
        if seen[-1] == 10**9:
            break
    assert seen == sorted(seen)
    assert len(seen) - 1 + dropped >= 300_000 - 1  # whatever it missed was counted
    h.stop()
    assert not [line for line in h.lines("stderr") if "slow consumer disconnected" in line]


def test_disconnect_closes_the_slow_client_and_the_others_are_served(host, digest):
    h = host("--slow-consumer", "disconnect")
    address = h.addresses[0]
    slow = hello_client(address, digest, "slow", [COUNTER_UPDATE])
    fast = hello_client(address, digest, "fast", [COUNTER_UPDATE])
    received = []
    reader = threading.Thread(target=read_counters, args=(fast, 299_999, received), daemon=True)
    reader.start()
    feeder = hello_client(address, digest, "feeder")
    feed(feeder, list(range(300_000)), batch=5_000, pause=0.01)  # a pace the fast reader keeps
    assert wait_for_metric(h.url, "mycelium_link_disconnects_total", lambda v: v == 1, reason="slow_consumer") == 1
    slow.expect_error_then_close(timeout=20)  # the end of its stream (its ERROR, if the socket took it)
    reader.join(60)
    assert received == list(range(300_000))  # the one that kept up lost nothing
    assert metric(h.url, "mycelium_link_client_dropped_frames_total") == 0
    assert h.wait_for(r"slow consumer disconnected \(disconnect\)", stream="stderr")


def test_block_pauses_the_producer_for_wait_ms_at_most_and_nothing_is_lost(host, digest):
    wait_ms = 600
    h = host("--slow-consumer", "block", "--slow-consumer-wait-ms", str(wait_ms))
    address = h.addresses[0]
    slow = hello_client(address, digest, "slow", [COUNTER_UPDATE])  # never reads
    fast = hello_client(address, digest, "fast", [COUNTER_UPDATE])
    total = 400_000
    arrivals = []  # (monotonic seconds, value)

    def read_fast():
        while True:
            frame = fast.recv(60)
            if frame is None:
                return
            if frame[0] == COUNTER_UPDATE:
                arrivals.append((time.monotonic(), value_of(frame[1])))
                if arrivals[-1][1] == total - 1:
                    return

    reader = threading.Thread(target=read_fast, daemon=True)
    reader.start()
    feeder = hello_client(address, digest, "feeder")
    threading.Thread(target=feed, args=(feeder, list(range(total))), daemon=True).start()
    reader.join(120)

    assert [v for _, v in arrivals] == list(range(total))  # paused, not dropped
    assert metric(h.url, "mycelium_link_disconnects_total", reason="slow_consumer") == 1
    assert metric(h.url, "mycelium_link_flow_pauses_total") >= 1
    worst = max(b[0] - a[0] for a, b in zip(arrivals, arrivals[1:]))
    # The slow one held everyone for about wait_ms, then it was dropped: no longer.
    assert wait_ms / 2000 <= worst <= wait_ms / 1000 + 1.5, worst
    slow.expect_error_then_close(timeout=20)
