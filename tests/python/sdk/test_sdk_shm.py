"""SharedMemoryTransport against real mycelium-host nodes with `[nodes.shm] enabled`, and
against a fake host for the offers and rings a real host never makes
(docs/wire-protocol.md, "Shared-memory setup" and "Shared-memory rings")."""

import array
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import types

import pytest

import mycelium
from mycelium import _ring, _wire
from sdk_helpers import (CONTRACTS, ECHO_SCRIPT, HEADER, HELLO, PING, PONG, SUBSCRIBE, FakeHost, frame,
                         make_ring_fd, wait_until, write_script)

SHM_LINE = "frames go through shared memory now"


def write_topology(folder, enabled=True, ring_bytes=65536, script=None, service="worker", spin_us=20):
    scripts = f'scripts = ["{script}"]\n' if script else ""
    text = (f'socket_dir = "{folder}"\ncontracts = "{CONTRACTS}"\n'
            f'[[nodes]]\nname = "node"\nservices = ["{service}"]\n{scripts}'
            f'[nodes.shm]\nenabled = {"true" if enabled else "false"}\nring_bytes = {ring_bytes}\nspin_us = {spin_us}\n')
    path = folder / "topology.toml"
    path.write_text(text)
    return path


@pytest.fixture
def shm_node(start_host, sock_dir):
    """shm_node(enabled=True, ring_bytes=65536) -> (HostProcess, socket path): a node whose
    script answers TextMessage with CounterUpdate(len(content), 2 * timestamp)."""

    def start(enabled=True, ring_bytes=65536):
        script = write_script(sock_dir, "echo.py", ECHO_SCRIPT)
        topology = write_topology(sock_dir, enabled, ring_bytes, script)
        host = start_host("--topology", topology, "--node", "node")
        return host, sock_dir / "node.sock"

    return start


def ring_mappings():
    with open("/proc/self/maps") as maps:
        return sum("memfd:mycelium-link" in line for line in maps)


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def exchange(transport, messages, count, start=0):
    """Publishes `count` TextMessages and returns the CounterUpdate values that came back."""
    sub = transport.subscriber(messages.CounterUpdate)
    transport.sync()
    pub = transport.publisher(messages.TextMessage)
    for i in range(start, start + count):
        pub.publish(messages.TextMessage(sender="sdk", content="abc", timestamp=i))
    values = [sub.recv(timeout=20).value for _ in range(count)]
    sub.close()
    return values


def test_open_moves_to_shared_memory_and_traffic_flows_both_ways(shm_node, messages, digest):
    host, path = shm_node()
    fds_before = open_fds()
    t = mycelium.SharedMemoryTransport.open(str(path), digest, name="shm-client")
    try:
        assert t.shm_active and t.connected
        assert t.stats()["shm"].startswith("active (65536+65536-byte rings")
        assert t.describe() == f"shm:{path}"
        assert ring_mappings() == 2
        assert exchange(t, messages, 500) == [2 * i for i in range(500)]
    finally:
        t.close()
    assert ring_mappings() == 0, "the rings stay mapped after close()"
    wait_until(lambda: open_fds() <= fds_before, timeout=5, what="descriptors closed")
    assert any(SHM_LINE in line for line in host.lines("stderr"))


def test_many_frames_through_a_small_ring_wait_for_room_and_stay_in_order(shm_node, messages, digest):
    """4096-byte rings (the host's minimum) hold ~100 frames: the publisher laps the ring
    thousands of times, waiting for room whenever the host has not read yet."""
    host, path = shm_node(ring_bytes=4096)
    t = mycelium.SharedMemoryTransport.open(str(path), digest)
    try:
        assert t.stats()["shm"].startswith("active (4096+4096-byte rings")
        got = []
        sub = t.subscriber(messages.CounterUpdate)
        t.sync()
        pub = t.publisher(messages.TextMessage)
        for i in range(20000):
            pub.publish(messages.TextMessage(sender="sdk", content="abc", timestamp=i))
            if i % 50 == 49:  # keep the host's answers flowing too (its ring is 4096 bytes)
                while len(got) < i - 60:
                    got.append(sub.recv(timeout=20).value)
        while len(got) < 20000:
            got.append(sub.recv(timeout=20).value)
        assert got == [2 * i for i in range(20000)]
    finally:
        t.close()


def test_a_listen_host_offers_shared_memory_with_the_shm_flag(start_host, sock_dir, messages, digest):
    script = write_script(sock_dir, "echo.py", ECHO_SCRIPT)
    with_shm = start_host("--script", script, "--listen", f"unix:{sock_dir / 'a.sock'}", "--shm",
                          "--shm-ring-bytes", "8192")
    without = start_host("--listen", f"unix:{sock_dir / 'b.sock'}")
    t = mycelium.SharedMemoryTransport.open(str(sock_dir / "a.sock"), digest)
    try:
        assert t.shm_active and t.stats()["shm"].startswith("active (8192+8192-byte rings")
        assert exchange(t, messages, 50) == [2 * i for i in range(50)]
    finally:
        t.close()
    with pytest.raises(mycelium.ShmError, match="refused by the host: disabled"):
        mycelium.SharedMemoryTransport.open(str(sock_dir / "b.sock"), digest, fallback=False)
    assert any(SHM_LINE in line for line in with_shm.lines("stderr"))
    assert without.proc.poll() is None


def test_ring_open_and_create_and_the_endpoint_forms(shm_node, messages, digest):
    _, path = shm_node()
    for transport in (mycelium.SharedMemoryTransport.create(str(path), digest, ring_bytes=8192),
                      mycelium.endpoint.transport_for_endpoint(f"shm:{path}", digest),
                      mycelium.SharedMemoryTransport.open(f"unix:{path}", digest)):
        try:
            if not transport.connected:
                transport.connect()
            assert transport.shm_active
            assert exchange(transport, messages, 3) == [0, 2, 4]
        finally:
            transport.close()


def test_a_node_without_shared_memory_leaves_the_connection_on_the_socket(shm_node, messages, digest, caplog):
    _, path = shm_node(enabled=False)
    with caplog.at_level(logging.WARNING, logger="mycelium"):
        t = mycelium.SharedMemoryTransport.open(str(path), digest)
    try:
        assert t.connected and not t.shm_active
        assert "refused by the host: disabled" in t.stats()["shm"]
        assert "staying on the Unix socket" in caplog.text
        assert exchange(t, messages, 10) == [2 * i for i in range(10)]
    finally:
        t.close()
    with pytest.raises(mycelium.ShmError, match="shared memory unavailable: refused by the host: disabled"):
        mycelium.SharedMemoryTransport.open(str(path), digest, fallback=False)


def test_sigkill_of_the_host_is_noticed_and_a_restart_gets_fresh_rings(start_host, sock_dir, messages, digest):
    script = write_script(sock_dir, "echo.py", ECHO_SCRIPT)
    topology = write_topology(sock_dir, script=script)
    host = start_host("--topology", topology, "--node", "node")
    t = mycelium.SharedMemoryTransport.open(str(sock_dir / "node.sock"), digest, backoff_initial=0.05, backoff_max=0.2)
    try:
        sub = t.subscriber(messages.CounterUpdate)
        t.sync()
        pub = t.publisher(messages.TextMessage)
        pub.publish(messages.TextMessage(sender="sdk", content="abc", timestamp=1))
        assert sub.recv(timeout=10).value == 2
        killed = time.monotonic()
        host.proc.send_signal(signal.SIGKILL)
        wait_until(lambda: not t.connected, timeout=5, what="the transport noticed")
        noticed = time.monotonic() - killed
        assert noticed < 1.0, f"noticed after {noticed:.3f} s"
        assert ring_mappings() == 0, "the dead host's rings are still mapped"
        with pytest.raises(mycelium.TransportError):
            pub.publish(messages.TextMessage(sender="sdk", content="abc", timestamp=2))
        host.stop()
        start_host("--topology", topology, "--node", "node")
        wait_until(lambda: t.connected and t.shm_active, timeout=15, what="reconnected over shared memory")
        assert t.reconnects == 1
        assert ring_mappings() == 2
        for attempt in range(200):  # the new host's script may still be starting
            pub.publish(messages.TextMessage(sender="sdk", content="abc", timestamp=3))
            try:
                assert sub.recv(timeout=0.1).value == 6
                break
            except mycelium.Timeout:
                continue
        else:
            pytest.fail("no answer over the new rings")
    finally:
        t.close()


def test_a_spinning_ring_reader_does_not_hold_up_the_other_clients(start_host, sock_dir, messages, digest):
    """Two clients on one node that spins 10 ms on each empty ring: the node must keep
    reading the second client's ring while it spins on the first one's, or every hop of
    this ping-pong would wait for the other spin to end (300 round trips: >= 6 s)."""
    topology = write_topology(sock_dir, spin_us=10000)
    start_host("--topology", topology, "--node", "node")
    path = str(sock_dir / "node.sock")
    a = mycelium.SharedMemoryTransport.open(path, digest, name="a")
    b = mycelium.SharedMemoryTransport.open(path, digest, name="b")
    try:
        replies, requests = a.subscriber(messages.CounterUpdate), b.subscriber(messages.TextMessage)
        a.sync()
        b.sync()
        ask, answer = a.publisher(messages.TextMessage), b.publisher(messages.CounterUpdate)
        started = time.monotonic()
        for i in range(300):
            ask.publish(messages.TextMessage(sender="a", content="?", timestamp=i))
            assert requests.recv(timeout=10).timestamp == i
            answer.publish(messages.CounterUpdate(counter_id=i, value=0))
            assert replies.recv(timeout=10).counter_id == i
        took = time.monotonic() - started
        assert took < 4.0, f"300 round trips took {took:.2f} s: a spinning session held up the other"
    finally:
        a.close()
        b.close()


def test_the_runtime_and_the_message_bus_choose_shared_memory_from_the_topology(start_host, sock_dir, sdk_env,
                                                                                messages, digest):
    topology = write_topology(sock_dir, service="worker")
    host = start_host("--topology", topology, "--node", "node")
    watcher = mycelium.SharedMemoryTransport.open(str(sock_dir / "node.sock"), digest)
    sub = watcher.subscriber(messages.CounterUpdate)
    watcher.sync()
    script = write_script(sock_dir, "worker.py", """
        import mycelium
        from msgs import CounterUpdate
        rt = mycelium.Runtime()  # MYCELIUM_TOPOLOGY, MYCELIUM_SERVICE, MYCELIUM_SCHEMA_DIGEST
        print("endpoint", rt.endpoint, flush=True)
        rt.publish(CounterUpdate(counter_id=42, value=1))
        print("transport", rt.transport.describe(), rt.transport.shm_active, flush=True)
        rt.close()
        """)
    (sock_dir / "msgs.py").write_text(open(messages.__file__).read())
    env = dict(sdk_env, MYCELIUM_TOPOLOGY=str(topology), MYCELIUM_SERVICE="worker",
               MYCELIUM_SCHEMA_DIGEST=digest.hex())
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60,
                            cwd=sock_dir)
    try:
        assert result.returncode == 0, result.stderr
        assert f"endpoint shm:{sock_dir / 'node.sock'}" in result.stdout
        assert f"transport shm:{sock_dir / 'node.sock'} True" in result.stdout
        assert sub.recv(timeout=10).counter_id == 42
        bus = mycelium.MessageBus.from_topology(str(topology), "worker", digest)
        try:
            transport = bus.transport_to("worker")
            assert isinstance(transport, mycelium.SharedMemoryTransport) and transport.shm_active
            bus.publisher_to("worker", messages.CounterUpdate).publish(messages.CounterUpdate(counter_id=7, value=2))
            assert sub.recv(timeout=10).counter_id == 7
        finally:
            bus.close()
    finally:
        watcher.close()
    assert sum(SHM_LINE in line for line in host.lines("stderr")) >= 3


# ---------------------------------------------------------------- a fake host


class FakeShmHost:
    """Accepts one SharedMemoryTransport on a FakeHost, answers its preamble and offers
    whatever rings and descriptors a test gives it."""

    def __init__(self, fake_host, transport):
        self.transport = transport
        self.connect_error = None
        self.thread = threading.Thread(target=self._connect, daemon=True)
        self.thread.start()
        self.conn = fake_host.connection()

    def _connect(self):
        try:
            self.transport.connect()
        except Exception as e:  # noqa: BLE001 - the test looks at it
            self.connect_error = e

    def read_preamble(self):
        """Reads up to SHM_REQUEST and PING; returns the requested capacity and the PING."""
        conn = self.conn
        conn.read_handshake()
        assert conn.read_frame()[0] == HELLO
        requested = ping = None
        while ping is None:
            type_id, payload = conn.read_frame()
            if type_id == _wire.SHM_REQUEST:
                requested = struct.unpack_from("<BBI", payload)[2]
            elif type_id == PING:
                ping = payload
            else:
                assert type_id == SUBSCRIBE, type_id
        return requested, ping

    def offer(self, fds, c1, c2, count=4):
        payload = struct.pack("<BBBBQQ", 1, 0, count, 0, c1, c2)
        data = frame(_wire.SHM_OFFER, payload)
        self.conn.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])


@pytest.fixture
def fake(sock_dir):
    host = FakeHost(sock_dir / "fake.sock")
    yield host
    host.close()


def make_offer_fds(digest, capacity=4096, **broken):
    """[ring c->h, ring h->c, client bell, host bell]; `broken` replaces one of them."""
    fds = [make_ring_fd(capacity, digest), make_ring_fd(capacity, digest), os.eventfd(0), os.eventfd(0)]
    for index, fd in broken.items():
        os.close(fds[int(index[1:])])
        fds[int(index[1:])] = fd
    return fds


@pytest.mark.parametrize("case, reason", [
    ("three descriptors", "came with 3 descriptors"),
    ("an unsealed memfd", "not sealed"),
    ("a ring for other contracts", "digest_mismatch"),
    ("a memfd of the wrong size", "region_too_small"),
    ("a pipe for a doorbell", "not eventfds"),
])
def test_a_bad_offer_is_refused_and_the_connection_stays_on_the_socket(fake, sock_dir, messages, digest, case,
                                                                         reason, caplog):
    t = mycelium.SharedMemoryTransport(str(sock_dir / "fake.sock"), digest, connect_timeout=5)
    sub = t.subscriber(messages.CounterUpdate)
    host = FakeShmHost(fake, t)
    requested, ping = host.read_preamble()
    assert requested == 0
    if case == "three descriptors":
        fds = make_offer_fds(digest)[:3]
    elif case == "an unsealed memfd":
        fds = make_offer_fds(digest, f0=make_ring_fd(4096, digest, sealed=False))
    elif case == "a ring for other contracts":
        fds = make_offer_fds(digest, f1=make_ring_fd(4096, bytes(32)))
    elif case == "a memfd of the wrong size":
        fds = make_offer_fds(digest, f0=make_ring_fd(4096, digest, size=256 + 2048))
    else:
        read_end, write_end = os.pipe()
        os.close(write_end)
        fds = make_offer_fds(digest, f2=read_end)
    with caplog.at_level(logging.WARNING, logger="mycelium"):
        host.offer(fds, 4096, 4096, count=len(fds))
        for fd in fds:
            os.close(fd)
        host.conn.send(frame(PONG, ping))
        type_id, payload = host.conn.read_frame()
        host.thread.join(timeout=10)
    try:
        assert type_id == _wire.SHM_REFUSE
        assert struct.unpack_from("<H", payload)[0] == 6  # bad_offer
        assert reason in payload[2:].decode()
        assert host.connect_error is None and t.connected and not t.shm_active
        assert reason in caplog.text
        # Still served over the socket.
        host.conn.send(frame(messages.CounterUpdate.TYPE_ID, messages.CounterUpdate(counter_id=1, value=2).to_bytes()))
        assert sub.recv(timeout=10).value == 2
        assert ring_mappings() == 0
    finally:
        t.close()


def switched(fake, sock_dir, messages, digest, capacity=4096):
    """A transport on the fake host with rings in place: a namespace with the transport `t`,
    its CounterUpdate subscriber `sub`, the fake `host`, the rings as the host maps them
    (`to_host`, `to_client`), their `producer` (host->client) and `consumer` (client->host),
    and `cleanup()`."""
    t = mycelium.SharedMemoryTransport(str(sock_dir / "fake.sock"), digest, connect_timeout=5, backoff_initial=0.05,
                                       backoff_max=0.1)
    sub = t.subscriber(messages.CounterUpdate)
    host = FakeShmHost(fake, t)
    _, ping = host.read_preamble()
    fds = make_offer_fds(digest, capacity)
    to_host = _ring.MappedRing(fds[0], capacity, digest)
    to_client = _ring.MappedRing(fds[1], capacity, digest)
    host.offer(fds, capacity, capacity)
    host.conn.send(frame(PONG, ping))
    assert host.conn.read_frame()[0] == _wire.SHM_READY
    host.conn.send(frame(_wire.SHM_SWITCH))
    host.thread.join(timeout=10)
    assert host.connect_error is None and t.shm_active

    def cleanup():
        t.close()
        to_host.close()
        to_client.close()
        for fd in fds:
            os.close(fd)

    return types.SimpleNamespace(t=t, sub=sub, host=host, to_host=to_host, to_client=to_client,
                                 producer=_ring.RingProducer(to_client, consumer_bell=fds[2]),
                                 consumer=_ring.RingConsumer(to_host), cleanup=cleanup)


def test_after_the_switch_frames_go_through_the_rings_only(fake, sock_dir, messages, digest):
    link = switched(fake, sock_dir, messages, digest)
    try:
        # host -> client through the ring, the client's doorbell rung when it sleeps
        for i in range(300):  # laps of a 4096-byte ring
            payload = messages.CounterUpdate(counter_id=i, value=i).to_bytes()
            assert link.producer.try_write(HEADER.pack(messages.CounterUpdate.TYPE_ID, len(payload)), payload)
            link.producer.wake_consumer()
            assert link.sub.recv(timeout=10).counter_id == i
        # client -> host: a publish, then sync()'s PING, both in the ring
        link.t.publisher(messages.TextMessage).publish(messages.TextMessage(sender="a", content="b", timestamp=3))
        synced = []
        pinger = threading.Thread(target=lambda: synced.append(link.t.sync(timeout=10) or "synced"), daemon=True)
        pinger.start()
        got = []

        def two_frames_read():
            frame = link.consumer.read_frame()
            if frame is not None:
                got.append(frame)
            return len(got) >= 2

        wait_until(two_frames_read, timeout=5, what="two frames in the ring")
        assert [type_id for type_id, _ in got[:2]] == [messages.TextMessage.TYPE_ID, PING]
        # The PONG goes back through the ring host->client, and sync() returns.
        assert link.producer.try_write(HEADER.pack(PONG, 8), got[1][1])
        link.producer.wake_consumer()
        pinger.join(timeout=10)
        assert synced == ["synced"]
        link.host.conn.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            link.host.conn.sock.recv(1)  # nothing on the socket after SHM_READY
    finally:
        link.cleanup()


def test_recv_reading_the_ring_keeps_the_order_shares_frames_and_skips_bad_ones(fake, sock_dir, messages, digest,
                                                                             caplog):
    """recv() hands a frame it reads over without the queue only when nothing is queued
    before it and no other subscriber receives it."""
    link = switched(fake, sock_dir, messages, digest)
    cls = messages.CounterUpdate

    def send(payload):
        assert link.producer.try_write(HEADER.pack(cls.TYPE_ID, len(payload)), payload)
        link.producer.wake_consumer()

    try:
        # A frame the reader thread queued comes before the one recv() reads itself.
        send(cls(counter_id=1, value=1).to_bytes())
        wait_until(lambda: link.sub._queue.qsize() == 1, timeout=5, what="the reader thread queues the frame")
        send(cls(counter_id=2, value=2).to_bytes())
        assert [link.sub.recv(timeout=10).counter_id for _ in range(2)] == [1, 2]
        # A frame that does not decode is logged and skipped.
        with caplog.at_level(logging.WARNING, logger="mycelium"):
            send(b"bad")
            send(cls(counter_id=3, value=3).to_bytes())
            assert link.sub.recv(timeout=10).counter_id == 3
        assert link.t.decode_errors == 1 and "did not decode" in caplog.text
        # With a second subscriber of the class, both receive every frame.
        other = link.t.subscriber(cls)
        for i in range(4, 8):
            send(cls(counter_id=i, value=i).to_bytes())
        assert [link.sub.recv(timeout=10).counter_id for _ in range(4)] == [4, 5, 6, 7]
        assert [other.recv(timeout=10).counter_id for _ in range(4)] == [4, 5, 6, 7]
    finally:
        link.cleanup()


def test_a_corrupt_ring_closes_the_connection_with_the_rule_and_reconnects(fake, sock_dir, messages, digest,
                                                                          caplog):
    link = switched(fake, sock_dir, messages, digest)
    try:
        with caplog.at_level(logging.WARNING, logger="mycelium"):
            link.to_client.q[8] = 12  # a producer index that is not a multiple of 8
            link.producer.wake_consumer()
            wait_until(lambda: len(fake.accepted) == 2, timeout=10, what="a reconnect")
        assert "bad_producer_index" in caplog.text
        assert ring_mappings() == 0 or link.t.shm_active is False
    finally:
        link.cleanup()


SLOW_COUNTER_SCRIPT = """
import time
import mycelium_native as mn
from mycelium_native.messages import TextMessage
seen = []

@mn.subscribe(TextMessage)
def slow(msg):
    seen.append(msg.timestamp)
    time.sleep(0.001)          # a 1 ms model

@mn.on_stop
def report():
    print(f"callbacks {len(seen)} ordered {seen == sorted(seen)}", flush=True)
"""


def test_a_ring_flooding_a_slow_callback_pauses_only_its_own_link(start_host, sock_dir, messages, digest):
    script = write_script(sock_dir, "slow.py", SLOW_COUNTER_SCRIPT)
    host = start_host("--script", script, "--listen", f"unix:{sock_dir / 'a.sock'}", "--shm",
                      "--queue-capacity", "256", "--shutdown-timeout", "60")
    flooder = mycelium.SharedMemoryTransport.open(str(sock_dir / "a.sock"), digest)
    other = mycelium.UnixTransport(str(sock_dir / "a.sock"), digest)
    other.connect()
    sent = 2000
    try:
        assert flooder.shm_active
        done = threading.Event()

        def flood():
            pub = flooder.publisher(messages.TextMessage)
            for i in range(sent):
                pub.publish(messages.TextMessage(sender="sdk", content="x", timestamp=i))
            done.set()

        threading.Thread(target=flood, daemon=True).start()
        time.sleep(0.3)  # the scripts' queue is full by now
        worst = 0.0
        for _ in range(20):
            begun = time.monotonic()
            other.sync()  # a PING and its PONG
            worst = max(worst, time.monotonic() - begun)
        assert worst < 0.25, f"a PING round trip took {worst * 1000:.0f} ms while a ring flooded"
        assert done.wait(30)
        flooder.sync(timeout=60)  # its PONG: everything it published reached the bus
    finally:
        flooder.close()
        other.close()
    code, out, err = host.stop(timeout=60)
    assert code == 0, err
    assert f"callbacks {sent} ordered True" in out, out + err


def test_mycelium_shm_call_shape_on_a_dev_shm_path(start_host, sock_dir, messages, digest):
    """Code written for Mycelium's shared-memory transport runs unchanged: open() on a
    /dev/shm path (whose directory the host makes), then publisher() and subscriber()."""
    base = f"/dev/shm/myc-test-{os.getpid()}-{sock_dir.name}"
    path = f"{base}/mycelium/service.shm"
    script = write_script(sock_dir, "echo.py", ECHO_SCRIPT)
    try:
        start_host("--script", script, "--listen", f"unix:{path}", "--shm")
        transport = mycelium.SharedMemoryTransport.open(path, schema_digest=digest)
        try:
            pub = transport.publisher(messages.TextMessage)
            sub = transport.subscriber(messages.CounterUpdate)
            assert transport.shm_active
            pub.publish(messages.TextMessage(sender="myc", content="ring", timestamp=8))
            assert sub.recv(timeout=10) == messages.CounterUpdate(counter_id=4, value=16)
        finally:
            transport.close()
        # Its create(path, schema_digest, capacity=...) asks the host for rings that size.
        created = mycelium.SharedMemoryTransport.create(path, schema_digest=digest, capacity=65536)
        try:
            assert created.shm_active
            sub = created.subscriber(messages.CounterUpdate)
            created.publisher(messages.TextMessage).publish(
                messages.TextMessage(sender="myc", content="again", timestamp=1))
            assert sub.recv(timeout=10) == messages.CounterUpdate(counter_id=5, value=2)
        finally:
            created.close()
    finally:
        subprocess.run(["rm", "-rf", base], check=False)


@pytest.mark.parametrize("kind", ["unix", "shm"])
def test_a_quiet_sdk_client_answers_the_hosts_pings_and_stays_through_idle_timeouts(
        start_host, sock_dir, messages, digest, kind):
    # The host pings a quiet HELLO client after half of --idle-timeout and closes it if
    # nothing comes back; the SDK's reader answers, over the socket and over the rings.
    script = write_script(sock_dir, "echo.py", ECHO_SCRIPT)
    path = str(sock_dir / "quiet.sock")
    start_host("--script", script, "--listen", f"unix:{path}", "--shm", "--idle-timeout", "0.4")
    if kind == "shm":
        t = mycelium.SharedMemoryTransport.open(path, digest, fallback=False)
        assert t.shm_active
    else:
        t = mycelium.UnixTransport(path, digest)
        t.connect()
    try:
        assert exchange(t, messages, 5) == [2 * i for i in range(5)]
        time.sleep(2.0)  # five idle timeouts without a frame from the client
        assert exchange(t, messages, 5) == [2 * i for i in range(5)]
        assert t.stats()["reconnects"] == 0  # the same connection all along
    finally:
        t.close()
