"""Application payloads are validated against the contracts before the host relays them
(docs/reliability.md, "Bad input is refused by name"): a TextMessage whose sender is not
UTF-8, declares more bytes than its capacity or breaks its not_empty rule is dropped, counted
and answered with ERROR invalid_payload; the frames around it reach the subscriber and the
connection stays. With --trust-payloads the host relays them as they came."""

import struct

import pytest

from test_slow_consumer import hello_client, metric, sync
from wire import HostProcess

TEXT_MESSAGE = 1001
ERROR, INVALID_PAYLOAD = 1, 14
PING, PONG = 5, 6


def text_payload(sender, declared=None):
    """A TextMessage of the bundled contracts whose sender holds the bytes `sender` and
    whose length prefix says `declared` (len(sender) unless given); content empty."""
    length = len(sender) if declared is None else declared
    return struct.pack("<H6x32s", length, sender[:32]) + struct.pack("<H6x256s", 0, b"") + struct.pack("<Q", 7)


def sender_of(payload):
    length = struct.unpack_from("<H", payload)[0]
    return payload[8:8 + min(length, 32)]


BROKEN = [
    (text_payload(b"\xff\xfe"), "TextMessage.sender: utf8: is not valid UTF-8"),
    (text_payload(b"x" * 32, declared=33), "TextMessage.sender: max_length: length 33 is above 32"),
    (text_payload(b""), "TextMessage.sender: not_empty: must not be empty"),
]


@pytest.fixture
def start_host(host_binary, tmp_path):
    """start_host(*flags) -> a HostProcess on a Unix socket and a TCP port, serving /metrics."""
    started = []

    def start(*flags):
        h = HostProcess(host_binary, "--listen", f"unix:{tmp_path / 'node.sock'}", "--listen", "tcp:127.0.0.1:0",
                        "--metrics", "127.0.0.1:0", *flags, listens=2)
        h.url = h.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop(timeout=20)


def senders_until_sync(client, nonce=99):
    """The senders of every TextMessage the client receives before the PONG of a PING sent
    now: what the host had queued for it."""
    client.send(PING, struct.pack("<Q", nonce))
    senders = []
    while True:
        frame = client.recv(10)
        assert frame is not None, "the host closed the subscriber"
        if frame[0] == TEXT_MESSAGE:
            senders.append(sender_of(frame[1]))
        elif frame[0] == PONG and struct.unpack("<Q", frame[1])[0] == nonce:
            return senders


def received_senders(client, count):
    senders = []
    for _ in range(count):
        frame = client.recv_type(TEXT_MESSAGE, timeout=10)
        assert frame is not None, "the host closed the subscriber"
        senders.append(sender_of(frame[1]))
    return senders


@pytest.mark.timeout(120)
@pytest.mark.parametrize("listener", [0, 1], ids=["unix", "tcp"])
def test_invalid_payloads_are_dropped_counted_and_told_and_the_connection_stays(start_host, digest, listener):
    h = start_host()
    address = h.addresses[listener]
    reader = hello_client(address, digest, "reader", subscribe=(TEXT_MESSAGE,))
    writer = hello_client(address, digest, "writer")
    writer.send(TEXT_MESSAGE, text_payload(b"before"))
    for payload, _ in BROKEN:
        writer.send(TEXT_MESSAGE, payload)
    writer.send(TEXT_MESSAGE, text_payload(b"after"))

    for _, failure in BROKEN:
        frame = writer.recv_type(ERROR, timeout=10)
        assert frame is not None, "the host closed the writer"
        code = struct.unpack_from("<H", frame[1])[0]
        assert code == INVALID_PAYLOAD
        assert failure in frame[1][2:].decode()
    sync(writer)  # still connected, and every frame before the PING has been handled

    # The subscriber got the valid frames, in order, and nothing else: the writer's PONG
    # came after the host had handled (and relayed) all of them.
    assert senders_until_sync(reader) == [b"before", b"after"]

    assert metric(h.url, "mycelium_link_decode_errors_total", reason="invalid_payload") == 3
    assert metric(h.url, "mycelium_link_client_bad_frames_total", client="writer", reason="invalid_payload") == 3
    assert metric(h.url, "mycelium_link_connections") == 2

    # The writer goes on being served.
    writer.send(TEXT_MESSAGE, text_payload(b"later"))
    assert received_senders(reader, 1) == [b"later"]
    _, _, err = h.stop()
    # One line per connection, reason and interval: the first is whole, the rest held back.
    lines = [line for line in err.splitlines() if "bad frame:" in line]
    assert len(lines) == 1, lines
    assert "TextMessage.sender: utf8: is not valid UTF-8 (type 1001); dropped" in lines[0]


@pytest.mark.timeout(120)
def test_with_trust_payloads_the_host_relays_invalid_payloads_as_they_came(start_host, digest):
    h = start_host("--trust-payloads")
    reader = hello_client(h.addresses[0], digest, "reader", subscribe=(TEXT_MESSAGE,))
    writer = hello_client(h.addresses[1], digest, "writer")
    for payload, _ in BROKEN:
        writer.send(TEXT_MESSAGE, payload)
    writer.send(TEXT_MESSAGE, text_payload(b"after"))
    sync(writer)
    assert senders_until_sync(reader) == [b"\xff\xfe", b"x" * 32, b"", b"after"]
    assert metric(h.url, "mycelium_link_decode_errors_total", reason="invalid_payload") == 0
    # The type and the size are still checked.
    writer.send(TEXT_MESSAGE, text_payload(b"short")[:-1])
    frame = writer.recv_type(ERROR, timeout=10)
    assert struct.unpack_from("<H", frame[1])[0] == 6  # size_mismatch
    sync(writer)
