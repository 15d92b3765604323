"""The SDK's typed errors, and a reader thread that no frame can kill: against a real host
where the host can produce the case, against a FakeHost (raw socket) where it cannot."""

import logging
import queue
import struct
import threading

import pytest

import mycelium
from sdk_helpers import (ERROR, PING, PONG, SUBSCRIBE, UNSUBSCRIBE, FakeHost, address_of, frame, wait_until)


@pytest.fixture
def fake_host(sock_dir):
    host = FakeHost(sock_dir / "fake.sock")
    yield host
    host.close()


def test_error_classes():
    assert issubclass(mycelium.TransportError, mycelium.MyceliumError)
    assert issubclass(mycelium.ShmError, mycelium.TransportError)
    assert issubclass(mycelium.SchemaMismatch, mycelium.MyceliumError)
    assert issubclass(mycelium.ValidationError, ValueError)
    assert issubclass(mycelium.Timeout, queue.Empty) and issubclass(mycelium.Timeout, TimeoutError)
    from mycelium import errors
    assert errors.TransportError is mycelium.TransportError


def test_digest_mismatch_raises_with_the_hosts_reason(echo_host, digest):
    wrong = bytes(range(32))
    t = mycelium.UnixTransport(address_of(echo_host, "unix")[5:], wrong)
    with pytest.raises(mycelium.SchemaMismatch) as caught:
        t.connect()
    text = str(caught.value)
    # The host's own words, with both digests: not a bare end of stream.
    assert f"schema digest {wrong.hex()} does not match the host's {digest.hex()}" in text, text
    assert caught.value.code == 2
    # The transport is finished: connecting again raises the same error, no reconnect loop.
    with pytest.raises(mycelium.SchemaMismatch):
        t.connect()


def test_digest_mismatch_over_tcp_and_later_calls(echo_host, messages, digest):
    host, port = address_of(echo_host, "tcp")[4:].rsplit(":", 1)
    t = mycelium.TcpTransport(host, int(port), bytes(32))
    sub = t.subscriber(messages.CounterUpdate)
    with pytest.raises(mycelium.SchemaMismatch, match="does not match the host's"):
        t.connect()
    with pytest.raises(mycelium.SchemaMismatch):
        t.publisher(messages.TextMessage).publish(messages.TextMessage(sender="a", content="b", timestamp=1))
    with pytest.raises(mycelium.SchemaMismatch):
        sub.recv(timeout=1)


def test_bad_digest_arguments():
    with pytest.raises(ValueError, match="64 hex characters"):
        mycelium.UnixTransport("/tmp/x.sock", "abcd")
    with pytest.raises(ValueError, match="32 bytes"):
        mycelium.UnixTransport("/tmp/x.sock", b"\x00" * 31)
    with pytest.raises(ValueError, match="not a hex string"):
        mycelium.UnixTransport("/tmp/x.sock", "zz" * 32)
    with pytest.raises(TypeError):
        mycelium.UnixTransport("/tmp/x.sock", 1234)


def test_connect_to_nothing_raises_transport_error(sock_dir, digest):
    t = mycelium.UnixTransport(str(sock_dir / "nobody.sock"), digest)
    with pytest.raises(mycelium.TransportError, match="cannot connect to unix:"):
        t.connect()
    t2 = mycelium.TcpTransport("127.0.0.1", 1, digest)  # port 1: refused
    with pytest.raises(mycelium.TransportError, match="cannot connect to tcp:127.0.0.1:1"):
        t2.connect()


def test_publish_before_connect_raises(messages, digest, sock_dir):
    t = mycelium.UnixTransport(str(sock_dir / "n.sock"), digest)
    with pytest.raises(mycelium.TransportError, match="not connected"):
        t.publisher(messages.CounterUpdate).publish(messages.CounterUpdate(counter_id=1, value=2))


def test_publish_while_disconnected_raises_transport_error(start_host, sock_dir, messages, digest):
    path = sock_dir / "gone.sock"
    host = start_host("--listen", f"unix:{path}")
    t = mycelium.UnixTransport(str(path), digest)
    t.connect()
    pub = t.publisher(messages.CounterUpdate)
    pub.publish(messages.CounterUpdate(counter_id=1, value=1))
    host.stop()
    wait_until(lambda: not t.connected, what="the transport to notice the host stopped")
    with pytest.raises(mycelium.TransportError, match="disconnected"):
        pub.publish(messages.CounterUpdate(counter_id=1, value=2))
    t.close()
    with pytest.raises(mycelium.ClosedError):
        pub.publish(messages.CounterUpdate(counter_id=1, value=3))


def test_without_reconnect_a_drop_is_final(start_host, sock_dir, messages, digest):
    path = sock_dir / "once.sock"
    host = start_host("--listen", f"unix:{path}")
    t = mycelium.UnixTransport(str(path), digest, reconnect=False)
    sub = t.subscriber(messages.CounterUpdate)
    t.connect()
    host.stop()
    with pytest.raises(mycelium.TransportError, match="reconnect=False"):
        sub.recv(timeout=10)
    with pytest.raises(mycelium.TransportError):
        t.publisher(messages.CounterUpdate).publish(messages.CounterUpdate(counter_id=1, value=2))
    t.close()


def test_validation_error_names_message_field_and_rule(echo_host, messages, digest):
    with mycelium.UnixTransport(address_of(echo_host, "unix")[5:], digest) as t:
        sub = t.subscriber(messages.CounterUpdate)
        t.sync()
        pub = t.publisher(messages.TextMessage)
        with pytest.raises(mycelium.ValidationError) as caught:
            pub.publish(messages.TextMessage(sender="", content="x", timestamp=1))
        e = caught.value
        assert (e.message, e.field, e.rule) == ("TextMessage", "sender", "not_empty")
        assert str(e) == "TextMessage.sender: not_empty: must not be empty"
        assert isinstance(e, ValueError) and isinstance(e, mycelium.MyceliumError)
        with pytest.raises(mycelium.ValidationError, match="TextMessage.timestamp: range"):
            pub.publish(messages.TextMessage(sender="a", content="x", timestamp=-1))
        with pytest.raises(mycelium.ValidationError, match="TextMessage"):
            pub.publish(messages.TextMessage(sender="a", content=5, timestamp=1))
        with pytest.raises(TypeError, match="publisher for TextMessage received CounterUpdate"):
            pub.publish(messages.CounterUpdate())
        # Mycelium raised ValueError here: `except ValueError` keeps working.
        with pytest.raises(ValueError, match="publisher for TextMessage received str"):
            pub.publish("not a message")
        # Nothing bad was sent: the connection still works.
        pub.publish(messages.TextMessage(sender="a", content="ok", timestamp=4))
        assert sub.recv(timeout=10) == messages.CounterUpdate(counter_id=2, value=8)


def test_a_class_whose_bytes_have_the_wrong_size_is_refused(echo_host, messages, digest):
    class Short(messages.CounterUpdate):
        __slots__ = ()

        def to_bytes(self):
            return b"\x00" * 8

    with mycelium.UnixTransport(address_of(echo_host, "unix")[5:], digest) as t:
        with pytest.raises(mycelium.ValidationError, match="to_bytes\\(\\) returned 8 bytes, the message is 16"):
            t.publisher(Short).publish(Short())
        t.sync()  # still connected: the host never saw it


def test_not_a_message_class(digest, sock_dir):
    t = mycelium.UnixTransport(str(sock_dir / "n.sock"), digest)
    with pytest.raises(TypeError, match="no integer TYPE_ID"):
        t.publisher(int)
    with pytest.raises(TypeError, match="no integer TYPE_ID"):
        t.subscriber(dict)


def connect_to_fake(fake_host, transport):
    """Connects `transport` to the FakeHost, answering its preamble; returns (conn, preamble)."""
    result = {}
    index = len(fake_host.accepted)

    def serve():
        result["conn"] = fake_host.connection(index)
        result["preamble"] = result["conn"].read_preamble()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    transport.connect()
    thread.join(timeout=10)
    return result["conn"], result["preamble"]


def test_handshake_hello_subscribe_ping_in_one_preamble(fake_host, messages, digest):
    t = mycelium.UnixTransport(fake_host.path, digest, name="probe-client")
    t.subscriber(messages.TextMessage)
    t.subscriber(messages.CounterUpdate)
    conn, (got_digest, name, subscribed) = connect_to_fake(fake_host, t)
    assert got_digest == digest
    assert name == "probe-client"
    assert subscribed == [1001, 1002]
    # A new type is declared at once; closing a type's last subscriber withdraws it.
    sub = t.subscriber(messages.TradeTick)
    assert conn.read_frame() == (SUBSCRIBE, struct.pack("<H", 1100))
    sub.close()
    assert conn.read_frame() == (UNSUBSCRIBE, struct.pack("<H", 1100))
    t.close()


def test_bad_frames_are_logged_and_skipped(fake_host, messages, digest, caplog):
    caplog.set_level(logging.WARNING, logger="mycelium")
    t = mycelium.UnixTransport(fake_host.path, digest)
    counters = t.subscriber(messages.CounterUpdate)
    texts = t.subscriber(messages.TextMessage)
    conn, _ = connect_to_fake(fake_host, t)
    good_text = messages.TextMessage(sender="ok", content="fine", timestamp=3)
    bad_utf8 = bytearray(good_text.to_bytes())
    bad_utf8[8:10] = b"\xff\xfe"  # the sender's bytes: not UTF-8
    conn.send(frame(1002, b"\x01" * 8)             # wrong size for CounterUpdate
              + frame(1001, bytes(bad_utf8))       # a TextMessage that does not decode
              + frame(4321, b"zz")                 # a type nobody subscribed to
              + frame(77, b"?")                    # an unknown control frame
              + frame(PING, struct.pack("<Q", 99))  # answered with PONG 99
              + frame(1002, messages.CounterUpdate(counter_id=1, value=2).to_bytes())
              + frame(1001, good_text.to_bytes()))
    assert counters.recv(timeout=10) == messages.CounterUpdate(counter_id=1, value=2)
    assert texts.recv(timeout=10) == good_text
    assert conn.read_frame() == (PONG, struct.pack("<Q", 99))
    assert t.decode_errors == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "mycelium"]
    assert any("skipped a CounterUpdate frame of 8 bytes that did not decode" in w for w in warnings), warnings
    assert any("skipped a TextMessage frame of 312 bytes" in w and "UTF-8" in w for w in warnings), warnings
    # The reader is alive and the connection still up.
    conn.send(frame(1002, messages.CounterUpdate(counter_id=5, value=6).to_bytes()))
    assert counters.recv(timeout=10).counter_id == 5
    assert t.connected
    t.close()


def test_a_frame_split_across_reads_and_a_large_frame(fake_host, messages, digest):
    t = mycelium.UnixTransport(fake_host.path, digest)
    texts = t.subscriber(messages.TextMessage)
    conn, _ = connect_to_fake(fake_host, t)
    data = frame(1001, messages.TextMessage(sender="s", content="split", timestamp=9).to_bytes())
    for i in range(len(data)):
        conn.send(data[i:i + 1])
    assert texts.recv(timeout=10).content == "split"
    # 3 MB in one frame (larger than the 1 MiB read buffer) of a type nobody decodes, then a good one.
    conn.send(frame(2000, b"\x00" * 3_000_000) + data)
    assert texts.recv(timeout=10).content == "split"
    t.close()


def test_oversize_frame_closes_and_reconnects(fake_host, messages, digest, caplog):
    caplog.set_level(logging.INFO, logger="mycelium")
    t = mycelium.UnixTransport(fake_host.path, digest, backoff_initial=0.05)
    t.subscriber(messages.CounterUpdate)
    conn, _ = connect_to_fake(fake_host, t)
    conn.send(struct.pack("<HI", 1002, 5_000_000))  # declares 5 MB: above the 4 MiB limit
    second = fake_host.connection(1, timeout=10)
    _, _, subscribed = second.read_preamble()
    assert subscribed == [1002]  # subscriptions declared again
    wait_until(lambda: t.connected and t.reconnects == 1, what="the reconnect")
    assert any("above the limit of 4194304" in r.getMessage() for r in caplog.records)
    t.close()


def test_error_frame_from_the_host_is_logged_with_its_reason_then_reconnects(fake_host, messages, digest, caplog):
    caplog.set_level(logging.WARNING, logger="mycelium")
    t = mycelium.UnixTransport(fake_host.path, digest, backoff_initial=0.05)
    sub = t.subscriber(messages.CounterUpdate)
    conn, _ = connect_to_fake(fake_host, t)
    conn.send(frame(ERROR, struct.pack("<H", 7) + b"SUBSCRIBE before HELLO"))
    conn.close()
    second = fake_host.connection(1, timeout=10)
    second.read_preamble()
    wait_until(lambda: t.connected and t.reconnects == 1, what="the reconnect")
    assert any("ERROR protocol_violation: SUBSCRIBE before HELLO" in r.getMessage() for r in caplog.records)
    second.send(frame(1002, messages.CounterUpdate(counter_id=8, value=9).to_bytes()))
    assert sub.recv(timeout=10).counter_id == 8
    t.close()


def test_digest_error_frame_is_final(fake_host, messages, digest):
    t = mycelium.UnixTransport(fake_host.path, digest, backoff_initial=0.05)
    sub = t.subscriber(messages.CounterUpdate)
    conn, _ = connect_to_fake(fake_host, t)
    conn.send(frame(1002, messages.CounterUpdate(counter_id=1, value=1).to_bytes())
              + frame(ERROR, struct.pack("<H", 2) + b"the contracts changed"))
    assert sub.recv(timeout=10).counter_id == 1  # what came before is still delivered
    with pytest.raises(mycelium.SchemaMismatch, match="the contracts changed"):
        sub.recv(timeout=10)
    with pytest.raises(mycelium.SchemaMismatch):
        t.publisher(messages.CounterUpdate).publish(messages.CounterUpdate())
    assert len(fake_host.accepted) == 1  # no reconnect
    t.close()


def test_shared_memory_to_nothing_raises_transport_error(digest, sock_dir):
    assert mycelium.SharedMemoryTransport.AVAILABLE is True
    with pytest.raises(mycelium.TransportError, match="cannot connect to unix:"):
        mycelium.SharedMemoryTransport.open(str(sock_dir / "none.sock"), digest)
    with pytest.raises(ValueError, match="ring_bytes"):
        mycelium.SharedMemoryTransport(str(sock_dir / "x.sock"), digest, ring_bytes=-1)


def test_close_does_not_hang_on_a_host_that_stopped_reading(fake_host, messages, digest):
    import time

    t = mycelium.UnixTransport(fake_host.path, digest)
    conn, _ = connect_to_fake(fake_host, t)  # the fake host never reads again
    pub = t.publisher(messages.TextMessage)
    msg = messages.TextMessage(sender="flood", content="x" * 200, timestamp=1)
    progress = [0]
    outcome = {}

    def flood():
        try:
            for i in range(10_000_000):
                progress[0] = i
                pub.publish(msg)
        except mycelium.MyceliumError as e:
            outcome["error"] = e

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    # The publisher stops making progress: blocked by backpressure, not filling memory.
    deadline = time.monotonic() + 30
    last = -1
    while progress[0] != last:
        last = progress[0]
        time.sleep(0.5)
        assert time.monotonic() < deadline, "the publisher never blocked"
    assert thread.is_alive()
    assert len(t._channel.buffer) < 2 * 65536 + 1024
    started = time.monotonic()
    t.close()
    assert time.monotonic() - started < 10
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), mycelium.ClosedError)
    conn.close()
