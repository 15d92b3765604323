"""UnixTransport and TcpTransport against a real mycelium-host whose script answers
TextMessage with CounterUpdate: Mycelium's API, both directions, both socket kinds."""

import asyncio
import queue
import threading
import time

import pytest

import mycelium
from sdk_helpers import address_of, write_script


def make_transport(host, kind, digest, **options):
    address = address_of(host, kind)
    if kind == "unix":
        return mycelium.UnixTransport(address[len("unix:"):], digest, **options)
    hostname, port = address[len("tcp:"):].rsplit(":", 1)
    return mycelium.TcpTransport(hostname, int(port), digest, **options)


@pytest.fixture(params=["unix", "tcp"])
def kind(request):
    return request.param


def test_publish_to_a_script_and_receive_its_answer(echo_host, messages, digest, kind):
    t = make_transport(echo_host, kind, digest)
    sub = t.subscriber(messages.CounterUpdate)
    t.connect()
    pub = t.publisher(messages.TextMessage)
    pub.publish(messages.TextMessage(sender="sdk", content="hello", timestamp=21))
    assert sub.recv(timeout=10) == messages.CounterUpdate(counter_id=5, value=42)
    assert t.connected
    t.close()
    assert not t.connected


def test_a_frame_the_host_drops_costs_that_frame_not_the_connection(echo_host, messages, digest, kind):
    from mycelium import _wire

    t = make_transport(echo_host, kind, digest)
    sub = t.subscriber(messages.CounterUpdate)
    t.connect()
    t.frame_writer()(_wire.HEADER.pack(4321, 8), bytes(8))  # a type the host's contracts lack
    t.sync()  # the ERROR came before the PONG
    assert t.stats()["dropped_by_host"] == 1
    pub = t.publisher(messages.TextMessage)
    pub.publish(messages.TextMessage(sender="sdk", content="abc", timestamp=5))
    assert sub.recv(timeout=10) == messages.CounterUpdate(counter_id=3, value=10)
    assert t.connected and t.reconnects == 0
    t.close()


def test_digest_as_hex_string_and_the_api_names(echo_host, messages, digest):
    t = mycelium.UnixTransport(address_of(echo_host, "unix")[5:], digest.hex())
    t.connect()
    sub = t.subscriber(messages.CounterUpdate)
    t.sync()  # the SUBSCRIBE has taken effect
    assert sub.message_cls is messages.CounterUpdate
    t.publisher(messages.TextMessage).publish(messages.TextMessage(sender="a", content="xy", timestamp=1))
    assert sub.recv(timeout=10).value == 2
    t.close()


def test_recv_timeout_and_recv_nowait(echo_host, messages, digest):
    with make_transport(echo_host, "unix", digest) as t:
        sub = t.subscriber(messages.CounterUpdate)
        t.sync()
        started = time.monotonic()
        with pytest.raises(queue.Empty):
            sub.recv(timeout=0.2)
        assert time.monotonic() - started >= 0.19
        with pytest.raises(TimeoutError):  # the same exception: mycelium.Timeout
            sub.recv(timeout=0.01)
        with pytest.raises(queue.Empty):
            sub.recv_nowait()
        t.publisher(messages.TextMessage).publish(messages.TextMessage(sender="a", content="abc", timestamp=5))
        deadline = time.monotonic() + 10
        while True:
            try:
                msg = sub.recv_nowait()
                break
            except queue.Empty:
                assert time.monotonic() < deadline, "no answer within 10 s"
                time.sleep(0.005)
        assert msg == messages.CounterUpdate(counter_id=3, value=10)


def test_recv_async_waits_on_the_event_loop(echo_host, messages, digest, kind):
    t = make_transport(echo_host, kind, digest)
    sub = t.subscriber(messages.CounterUpdate)
    t.connect()
    pub = t.publisher(messages.TextMessage)

    async def main():
        with pytest.raises(TimeoutError):
            await sub.recv_async(timeout=0.05)
        # The loop stays free while waiting: a ticker runs alongside.
        ticks = []

        async def ticker():
            while True:
                ticks.append(1)
                await asyncio.sleep(0.001)

        task = asyncio.ensure_future(ticker())
        asyncio.get_running_loop().call_later(
            0.05, pub.publish, messages.TextMessage(sender="a", content="four", timestamp=8))
        msg = await sub.recv_async(timeout=10)
        task.cancel()
        return msg, len(ticks)

    msg, ticks = asyncio.run(main())
    assert msg == messages.CounterUpdate(counter_id=4, value=16)
    assert ticks > 5
    t.close()


def test_dense_traffic_arrives_complete_and_in_order(echo_host, messages, digest, kind):
    count = 20000
    t = make_transport(echo_host, kind, digest)
    sub = t.subscriber(messages.CounterUpdate)
    t.connect()
    pub = t.publisher(messages.TextMessage)
    msg = messages.TextMessage(sender="bulk", content="x", timestamp=0)
    for i in range(count):
        msg.timestamp = i
        pub.publish(msg)
    values = [sub.recv(timeout=30).value for _ in range(count)]
    assert values == [2 * i for i in range(count)]
    t.close()


class CountingSocket:
    """Wraps a socket and counts sendall calls (the transport's writes)."""

    def __init__(self, sock):
        self._sock = sock
        self.writes = []

    def sendall(self, data):
        self.writes.append((time.monotonic(), len(data)))
        return self._sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class CountingUnixTransport(mycelium.UnixTransport):
    def _open_socket(self):
        self.counting = CountingSocket(super()._open_socket())
        return self.counting


def test_dense_publishing_coalesces_writes(echo_host, messages, digest):
    t = CountingUnixTransport(address_of(echo_host, "unix")[5:], digest)
    t.connect()
    sub = t.subscriber(messages.CounterUpdate)
    t.sync()
    writes_before = len(t.counting.writes)
    pub = t.publisher(messages.TextMessage)
    msg = messages.TextMessage(sender="bulk", content="y", timestamp=0)
    count = 10000
    for i in range(count):
        msg.timestamp = i
        pub.publish(msg)
    t.flush()
    writes = t.counting.writes[writes_before:]
    frames_bytes = count * (6 + messages.TextMessage.SIZE)
    assert sum(size for _, size in writes) == frames_bytes
    # 3.2 MB of frames: 64 KiB writes make ~50; allow for flusher wake-ups in between.
    assert len(writes) <= count // 20, f"{len(writes)} writes for {count} publishes"
    for i in range(count):
        assert sub.recv(timeout=30).value == 2 * i
    t.close()


def test_a_single_publish_leaves_without_flush(echo_host, messages, digest):
    t = CountingUnixTransport(address_of(echo_host, "unix")[5:], digest)
    t.connect()
    sub = t.subscriber(messages.CounterUpdate)
    t.sync()
    pub = t.publisher(messages.TextMessage)
    delays = []
    for i in range(20):
        before = len(t.counting.writes)
        published = time.monotonic()
        pub.publish(messages.TextMessage(sender="one", content="z", timestamp=i))
        assert sub.recv(timeout=10).value == 2 * i  # it left: no flush() was called
        written_at = t.counting.writes[before][0]
        delays.append(written_at - published)
    delays.sort()
    print(f"publish -> write: median {delays[10] * 1e6:.0f} us, max {delays[-1] * 1e6:.0f} us")
    # ~50 us when the machine is quiet; the bound only catches a frame left in the buffer.
    assert delays[10] < 0.25
    t.close()


def test_many_subscribers_and_close_unsubscribes(echo_host, messages, digest):
    t = make_transport(echo_host, "unix", digest)
    t.connect()
    a = t.subscriber(messages.CounterUpdate)
    b = t.subscriber(messages.CounterUpdate)
    pub = t.publisher(messages.TextMessage)
    t.sync()
    pub.publish(messages.TextMessage(sender="s", content="ab", timestamp=1))
    assert a.recv(timeout=10) == b.recv(timeout=10) == messages.CounterUpdate(counter_id=2, value=2)
    a.close()
    with pytest.raises(mycelium.ClosedError):
        a.recv(timeout=1)
    pub.publish(messages.TextMessage(sender="s", content="abc", timestamp=2))
    assert b.recv(timeout=10).counter_id == 3
    b.close()
    with pytest.raises(mycelium.ClosedError):
        b.recv_nowait()
    t.close()


def test_script_publishes_to_the_sdk_on_a_timer(start_host, sock_dir, messages, digest, kind):
    script = write_script(sock_dir, "ticker.py", """
        import mycelium_native as mn
        from mycelium_native.messages import TradeTick
        state = {"seq": 0}

        @mn.every(0.01)
        def tick():
            state["seq"] += 1
            mn.publish(TradeTick(symbol="ACME", price=10.5, size=2.0, seq=state["seq"], ts_ns=7))
        """)
    host = start_host("--script", script, "--listen", f"unix:{sock_dir / 'tick.sock'}", "--listen", "tcp:127.0.0.1:0",
                      listens=2)
    t = make_transport(host, kind, digest)
    sub = t.subscriber(messages.TradeTick)
    t.connect()
    seqs = [sub.recv(timeout=10).seq for _ in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    tick = sub.recv(timeout=10)
    assert (tick.symbol, tick.price, tick.size, tick.ts_ns) == ("ACME", 10.5, 2.0, 7)
    t.close()


def test_two_sdk_clients_talk_through_the_host(echo_host, messages, digest):
    a = make_transport(echo_host, "unix", digest, name="alice")
    b = make_transport(echo_host, "tcp", digest, name="bob")
    b_sub = b.subscriber(messages.TextMessage)
    a.connect()
    b.connect()
    a.publisher(messages.TextMessage).publish(messages.TextMessage(sender="alice", content="hi bob", timestamp=3))
    assert b_sub.recv(timeout=10) == messages.TextMessage(sender="alice", content="hi bob", timestamp=3)
    a.close()
    b.close()


def test_publishers_on_many_threads_never_interleave(echo_host, messages, digest):
    t = make_transport(echo_host, "unix", digest)
    sub = t.subscriber(messages.CounterUpdate)
    t.connect()
    pub = t.publisher(messages.TextMessage)
    per_thread, threads = 2000, 4

    def work(index):
        msg = messages.TextMessage(sender=f"t{index}", content="q" * (index + 1), timestamp=0)
        for i in range(per_thread):
            msg.timestamp = i
            pub.publish(msg)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    got = {}
    for _ in range(per_thread * threads):
        m = sub.recv(timeout=30)
        got.setdefault(m.counter_id, []).append(m.value // 2)
    assert {k: v for k, v in got.items()} == {i + 1: list(range(per_thread)) for i in range(threads)}
    t.close()
