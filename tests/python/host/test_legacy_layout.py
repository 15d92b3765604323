"""Legacy clients and padded types (docs/wire-protocol.md "Legacy clients and padded
types"), against a real host. CounterUpdate (u32, u64) is 16 bytes in C and 12 as
Mycelium's Python SDK packs it. A legacy client written to that SDK's behaviour sends it
packed and reads it packed; the host converts, per connection, and everyone else sees the
C layout. A legacy client that sends the C size is a Rust client: it gets C from then on."""

import struct
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wire import HostProcess, RawClient, counter_update, counter_update_packed

COUNTER_UPDATE = 1002
HELLO, SUBSCRIBE, PING, PONG = 2, 3, 5, 6

# Echoes every CounterUpdate below 100 as counter_id + 100, same value.
ECHO = """
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate

@mn.subscribe(CounterUpdate)
def echo(msg):
    if msg.counter_id < 100:
        mn.publish(CounterUpdate(counter_id=msg.counter_id + 100, value=msg.value))
"""


@pytest.fixture
def host(host_binary, tmp_path):
    script = tmp_path / "echo.py"
    script.write_text(ECHO)
    started = []

    def start(*flags):
        h = HostProcess(host_binary, "--script", script, "--listen", f"unix:{tmp_path / 'node.sock'}",
                        "--metrics", "127.0.0.1:0", *flags)
        h.url = h.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop(timeout=20)


def sync(client, nonce=7):
    client.send(PING, struct.pack("<Q", nonce))
    while True:
        type_id, payload = client.recv(10)
        if type_id == PONG and struct.unpack("<Q", payload)[0] == nonce:
            return


def legacy_client(address, digest):
    client = RawClient(address, digest, timeout=10)  # the handshake, then frames: no HELLO
    sync(client)
    return client


def hello_client(address, digest):
    client = RawClient(address, digest, timeout=10)
    client.send(HELLO, struct.pack("<BBH", 1, 0, 4) + b"view")
    client.send(SUBSCRIBE, struct.pack("<H", COUNTER_UPDATE))
    sync(client)
    return client


def next_counter(client, wanted_id):
    """The payload of the CounterUpdate whose u32 counter_id is `wanted_id`, in whatever
    order it came: the script's echo of a frame may reach a client before the frame does
    (they are published from different threads). Others read meanwhile are kept."""
    stash = client.__dict__.setdefault("counters", {})
    deadline = time.monotonic() + 10
    while wanted_id not in stash:
        type_id, payload = client.recv(max(0.0, deadline - time.monotonic()))
        if type_id == COUNTER_UPDATE:
            stash[struct.unpack_from("<I", payload)[0]] = payload
    return stash.pop(wanted_id)


def metric(url, name, **labels):
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


BIG = 2**40 + 5  # a value whose bytes show where the u64 landed


def test_a_packed_frame_is_converted_for_everyone_and_the_legacy_client_reads_packed(host, digest):
    h = host()
    address = h.addresses[0]
    legacy = legacy_client(address, digest)
    view = hello_client(address, digest)

    legacy.send(COUNTER_UPDATE, counter_update_packed(1, BIG))
    # A HELLO client sees it in the C layout; the script decoded it right (its echo).
    assert next_counter(view, 1) == counter_update(1, BIG)
    assert next_counter(view, 101) == counter_update(101, BIG)
    # The legacy client gets the echo packed, as Mycelium's Python SDK reads it.
    assert next_counter(legacy, 101) == counter_update_packed(101, BIG)

    assert metric(h.url, "mycelium_link_legacy_packed_frames_total", direction="in") == 1
    assert metric(h.url, "mycelium_link_legacy_packed_frames_total", direction="out") >= 1
    assert metric(h.url, "mycelium_link_decode_errors_total", reason="size_mismatch") == 0
    assert metric(h.url, "mycelium_link_legacy_layout_switches_total") == 0


def test_a_legacy_client_that_sends_the_c_size_is_switched_to_c_and_no_one_else_is(host, digest):
    h = host()
    address = h.addresses[0]
    rust = legacy_client(address, digest)
    python = legacy_client(address, digest)

    rust.send(COUNTER_UPDATE, counter_update(2, BIG))  # Mycelium's Rust SDK: the C layout
    assert next_counter(rust, 102) == counter_update(102, BIG)
    # The other legacy connection keeps the default.
    assert next_counter(python, 2) == counter_update_packed(2, BIG)
    assert next_counter(python, 102) == counter_update_packed(102, BIG)
    assert metric(h.url, "mycelium_link_legacy_layout_switches_total") == 1
    # Packed input is still taken from the switched client.
    rust.send(COUNTER_UPDATE, counter_update_packed(3, BIG))
    assert next_counter(rust, 103) == counter_update(103, BIG)
    assert next_counter(python, 3) == counter_update_packed(3, BIG)
    h.stop()
    assert h.wait_for(r"at its C size, 16 bytes: it gets padded types in the C layout", stream="stderr")


def test_legacy_layout_c_sends_the_c_layout_and_still_takes_packed(host, digest):
    h = host("--legacy-layout", "c")
    legacy = legacy_client(h.addresses[0], digest)
    legacy.send(COUNTER_UPDATE, counter_update_packed(4, BIG))
    assert next_counter(legacy, 104) == counter_update(104, BIG)
    assert metric(h.url, "mycelium_link_legacy_packed_frames_total", direction="in") == 1
    assert metric(h.url, "mycelium_link_legacy_packed_frames_total", direction="out") == 0


def test_a_hello_client_gets_no_conversion(host, digest):
    # Only legacy clients may use the packed size: from a HELLO client it is a bad frame.
    h = host()
    view = hello_client(h.addresses[0], digest)
    view.send(COUNTER_UPDATE, counter_update_packed(5, BIG))
    type_id, payload = view.recv_type(1)  # ERROR size_mismatch; the connection stays
    assert b"CounterUpdate (type 1002) of 12 bytes, expected 16" in payload
    view.send(COUNTER_UPDATE, counter_update(6, BIG))
    assert next_counter(view, 106) == counter_update(106, BIG)


def test_a_hello_in_a_later_read_than_the_handshake_gets_the_c_layout(host, digest):
    # The host took the connection for a legacy client (the handshake came alone); its
    # HELLO switches it over, and padded types then reach it in the C layout, not packed.
    h = host()
    late = RawClient(h.addresses[0], digest, timeout=10)
    h.wait_for(r"legacy client connected", stream="stderr")
    late.send(HELLO, struct.pack("<BBH", 1, 0, 4) + b"late")
    late.send(SUBSCRIBE, struct.pack("<H", COUNTER_UPDATE))
    sync(late)
    legacy = legacy_client(h.addresses[0], digest)
    legacy.send(COUNTER_UPDATE, counter_update_packed(7, BIG))
    assert next_counter(late, 7) == counter_update(7, BIG)
    assert next_counter(late, 107) == counter_update(107, BIG)


def test_a_bad_legacy_layout_flag_is_refused(run_host):
    result = run_host("--legacy-layout", "padded", timeout=30)
    assert result.returncode != 0
    assert "bad legacy layout 'padded': expected packed or c" in result.stderr
