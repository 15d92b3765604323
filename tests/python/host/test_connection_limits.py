"""Connection slots per listener and per client, the idle timeout, and running out of
file descriptors (docs/reliability.md, "Limits per client"), against a real host: one
local user, or one endpoint, cannot take every slot from the others; a client that went
quiet and answers no PING gives its slot back; a client refused for want of descriptors
is told so, and the host serves on."""

import os
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from test_slow_consumer import hello_client, metric, sync
from wire import HostProcess, RawClient, counter_update

HELLO, PING, ERROR = 2, 5, 1
COUNTER_UPDATE = 1002
TOO_MANY_CONNECTIONS, IDLE_TIMEOUT = 8, 15


@pytest.fixture
def node(host_binary, tmp_path):
    """node(*flags, script=None, preexec=None) -> a HostProcess on a Unix socket and a
    loopback TCP port, serving /metrics; addresses[0] is unix:, addresses[1] tcp:."""
    started = []

    def start(*flags, script="import mycelium_native\n", preexec=None):
        path = tmp_path / f"script{len(started)}.py"
        path.write_text(script)
        h = HostProcess(host_binary, "--script", path, "--listen", f"unix:{tmp_path / f'node{len(started)}.sock'}",
                        "--listen", "tcp:127.0.0.1:0", "--metrics", "127.0.0.1:0", *flags, listens=2,
                        preexec_fn=preexec)
        h.url = h.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop(timeout=20)


def refusal(address, digest):
    """Connects, says HELLO, and returns the ERROR (code, reason) the host closes with."""
    client = RawClient(address, timeout=10, handshake=False)
    body = b"refused"
    try:  # a host refusing for want of descriptors may close before it has read a byte
        client.send_raw(struct.pack("<H", len(digest)) + digest)
        client.send(HELLO, struct.pack("<BBH", 1, 0, len(body)) + body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        return client.expect_error_then_close(timeout=10)
    finally:
        client.close()


def test_one_local_user_holds_at_most_its_share_over_unix_and_loopback_tcp(node, digest):
    h = node("--max-connections-per-client", "3")
    unix, tcp = h.addresses
    held = [hello_client(unix, digest, "u1"), hello_client(unix, digest, "u2"), hello_client(tcp, digest, "t1")]
    me = f"uid {os.getuid()}"
    # A loopback TCP connection counts under the uid that owns it, as a Unix one does.
    for address in (tcp, unix):
        code, reason = refusal(address, digest)
        assert code == TOO_MANY_CONNECTIONS
        assert f"{me} already holds 3 connections (max_connections_per_client)" in reason
    assert metric(h.url, "mycelium_link_disconnects_total", reason="max_connections_per_client") == 2
    for client in held:
        sync(client)  # the three stay served
    held.pop().close()
    deadline = time.monotonic() + 10
    while True:  # the slot is given back once the host has seen the close
        try:
            held.append(hello_client(tcp, digest, "t2"))
            break
        except (ConnectionResetError, BrokenPipeError, TimeoutError, AssertionError, TypeError):
            assert time.monotonic() < deadline, "the closed connection's slot never came back"
            time.sleep(0.05)
    for client in held:
        client.close()


CONNECT_AS_NOBODY = r"""
import socket, struct, sys
host, port, digest = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
s = socket.create_connection((host, port), timeout=10)
s.sendall(struct.pack("<H", 32) + digest + struct.pack("<HI", 2, 8) + struct.pack("<BBH", 1, 0, 4) + b"else"
          + struct.pack("<HIQ", 5, 8, 99))
data = b""
while len(data) < 14:
    chunk = s.recv(64)
    if not chunk:
        break
    data += chunk
type_id, length = struct.unpack_from("<HI", data)
print("PONG" if type_id == 6 else f"type {type_id}: {data[6:]!r}")
"""


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_a_user_at_its_limit_does_not_lock_out_another_user(node, digest):
    h = node("--max-connections-per-client", "2")
    tcp = h.addresses[1]
    held = [hello_client(tcp, digest, "a"), hello_client(tcp, digest, "b")]
    assert refusal(tcp, digest)[0] == TOO_MANY_CONNECTIONS
    host, port = tcp[len("tcp:"):].rsplit(":", 1)

    def as_nobody():
        os.setgid(65534)
        os.setuid(65534)

    other = subprocess.run([sys.executable, "-c", CONNECT_AS_NOBODY, host, port, digest.hex()], capture_output=True,
                           text=True, timeout=30, preexec_fn=as_nobody)
    assert other.stdout.strip() == "PONG", other.stderr
    for client in held:
        client.close()


def test_one_endpoint_cannot_take_every_slot_from_another(node, digest):
    h = node("--max-connections-per-listener", "2", "--max-connections-per-client", "0")
    unix, tcp = h.addresses
    held = [hello_client(tcp, digest, "t1"), hello_client(tcp, digest, "t2")]
    code, reason = refusal(tcp, digest)
    assert code == TOO_MANY_CONNECTIONS
    assert "this endpoint already serves 2 connections (max_connections_per_listener)" in reason
    held += [hello_client(unix, digest, "u1"), hello_client(unix, digest, "u2")]  # the other endpoint serves on
    assert metric(h.url, "mycelium_link_disconnects_total", reason="max_connections_per_listener") == 1
    for client in held:
        client.close()


def test_a_quiet_client_that_answers_no_ping_is_closed_and_one_that_answers_stays(node, digest):
    h = node("--idle-timeout", "1")
    unix = h.addresses[0]
    deaf = hello_client(unix, digest, "deaf")
    answering = hello_client(unix, digest, "answering")
    answered = []

    def answer_pings(seconds=4.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                frame = answering.recv_type(PING, timeout=max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                continue
            if frame is not None:
                answering.send(6, frame[1])  # PONG with the PING's nonce
                answered.append(frame[1])

    answerer = threading.Thread(target=answer_pings)
    answerer.start()
    legacy = RawClient(unix, digest, timeout=10)  # handshake only: it cannot answer a PING
    started = time.monotonic()
    assert deaf.recv_type(PING, timeout=5) is not None  # after half the timeout
    code, reason = deaf.expect_error_then_close(timeout=10)
    waited = time.monotonic() - started
    assert code == IDLE_TIMEOUT
    assert "nothing received for 1000 ms" in reason
    assert waited < 8
    # The one that answers every PING, and the legacy one, are still served.
    answerer.join()
    assert answered, "the quiet client that answers was never pinged"
    sync(answering)
    legacy.send(COUNTER_UPDATE, counter_update(1, 1))
    legacy.sock.settimeout(0.2)
    with pytest.raises(socket.timeout):  # nothing comes back, not even an end of stream
        legacy.sock.recv(1)
    assert metric(h.url, "mycelium_link_disconnects_total", reason="idle_timeout") == 1
    answering.close()
    legacy.close()


SLOW_COUNTING_SCRIPT = """
import time
import mycelium_native
from mycelium_native.messages import CounterUpdate

seen = []

@mycelium_native.subscribe(CounterUpdate)
def on_counter(message):
    time.sleep(0.002)
    seen.append(message.value)
    if len(seen) == 1500:
        print("seen", len(seen), "in order" if seen == list(range(1500)) else "OUT OF ORDER", flush=True)
"""


def test_a_connection_the_host_holds_back_is_never_idle(node, digest):
    # A small Python queue and a 2 ms callback: the host stops reading the producer for
    # about 3 s, three times the idle timeout, while the client sends nothing more.
    h = node("--idle-timeout", "1", "--queue-capacity", "16", script=SLOW_COUNTING_SCRIPT)
    producer = hello_client(h.addresses[0], digest, "producer")
    frames = b"".join(struct.pack("<HI", COUNTER_UPDATE, 16) + counter_update(1, v) for v in range(1500))
    producer.send_raw(frames)
    line = h.wait_for(r"^seen ", timeout=60)
    assert line == "seen 1500 in order"
    assert metric(h.url, "mycelium_link_flow_pauses_total") >= 1
    # Once everything is read, and the producer still answers nothing, it is idle.
    code, _ = producer.expect_error_then_close(timeout=10)
    assert code == IDLE_TIMEOUT


def test_clients_beyond_the_descriptors_left_are_refused_and_told_and_metrics_answer(node, digest):
    def few_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    h = node("--max-connections-per-client", "0", preexec=few_descriptors)
    unix = h.addresses[0]
    served, refused = [], []
    for i in range(200):
        client = RawClient(unix, digest, timeout=10)
        body = f"c{i}".encode()
        client.send(HELLO, struct.pack("<BBH", 1, 0, len(body)) + body)
        client.send(PING, struct.pack("<Q", 1))
        frame = client.recv(10)
        if frame is not None and frame[0] == 6:
            served.append(client)
            continue
        assert frame is not None and frame[0] == ERROR, frame
        assert struct.unpack_from("<H", frame[1])[0] == TOO_MANY_CONNECTIONS
        assert "out of file descriptors" in frame[1][2:].decode()
        refused.append(client)
        if len(refused) == 5:
            break
    assert len(refused) == 5, f"served {len(served)}, none refused"
    assert len(served) > 20
    # /metrics answers while the descriptors are taken, and counts the refusals.
    assert metric(h.url, "mycelium_link_disconnects_total", reason="out_of_descriptors") >= 5
    for client in served:
        sync(client)
    for client in served + refused:
        client.close()
    time.sleep(0.5)
    sync(hello_client(unix, digest, "after"))


EXHAUSTING_SCRIPT = """
import threading
import time

held = []

def exhaust():
    time.sleep(1)
    try:
        while True:
            held.append(open("/dev/null"))
    except OSError as e:
        print("exhausted", e.errno, flush=True)
    time.sleep(3)
    for f in held:
        f.close()
    held.clear()
    print("released", flush=True)

threading.Thread(target=exhaust, daemon=True).start()
"""


# UBSan's vptr check (in the address build) probes an object's memory through a pipe of
# its own; out of descriptors the probe fails, and every virtual call is reported invalid.
@pytest.mark.skipif(os.environ.get("MYCELIUM_SANITIZE") == "address",
                    reason="the sanitizer runtime needs descriptors of its own")
def test_at_emfile_a_connection_is_accepted_with_the_reserve_told_and_closed(node, digest):
    # Something else in the process (here a script) takes every descriptor: accept()
    # fails with EMFILE, and the listener refuses with its reserved descriptor.
    def few_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    h = node(preexec=few_descriptors, script=EXHAUSTING_SCRIPT)
    unix = h.addresses[0]
    assert h.wait_for(r"^exhausted ", timeout=20) == "exhausted 24"  # EMFILE
    code, reason = refusal(unix, digest)
    assert code == TOO_MANY_CONNECTIONS
    assert reason == "the host is out of file descriptors"
    h.wait_for(r"^released", timeout=20)
    sync(hello_client(unix, digest, "after"))
    assert metric(h.url, "mycelium_link_disconnects_total", reason="out_of_descriptors") >= 1
    assert "out of file descriptors: refused a connection" in "\n".join(h.lines("stderr"))
