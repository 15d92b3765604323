"""Supervised workers: real mycelium-host processes running Python scripts as child
processes (--worker, [[nodes.workers]]). The workers speak the wire protocol by hand, as
docs/wire-protocol.md describes it: the digest handshake, HELLO with their service name,
SUBSCRIBE, TLV frames."""

import json
import os
import re
import signal
import struct
import subprocess
import textwrap
import time

import pytest

from wire import HostProcess, RawClient, unpack_counter_update

TEXT_MESSAGE, COUNTER_UPDATE = 1001, 1002

# The part every worker shares: connect to MYCELIUM_SOCKET with the digest and HELLO.
WORKER_PRELUDE = """
import os, socket, struct, sys, time

HEADER = struct.Struct("<HI")
TEXT_MESSAGE, COUNTER_UPDATE = 1001, 1002


def connect(subscribe=()):
    path = os.environ["MYCELIUM_SOCKET"]  # a plain path, as Mycelium's workers expect
    digest = bytes.fromhex(os.environ["MYCELIUM_SCHEMA_DIGEST"])
    name = os.environ["MYCELIUM_SERVICE"].encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    hello = struct.pack("<BBH", 1, 0, len(name)) + name
    types = b"".join(struct.pack("<H", t) for t in subscribe)
    data = struct.pack("<H", len(digest)) + digest + HEADER.pack(2, len(hello)) + hello
    if types:
        data += HEADER.pack(3, len(types)) + types
    sock.sendall(data)
    return sock


def recv_frame(sock, state={"buffer": b""}):
    while True:
        buffer = state["buffer"]
        if len(buffer) >= HEADER.size:
            type_id, length = HEADER.unpack_from(buffer)
            if len(buffer) >= HEADER.size + length:
                state["buffer"] = buffer[HEADER.size + length:]
                return type_id, buffer[HEADER.size:HEADER.size + length]
        chunk = sock.recv(65536)
        if not chunk:
            return None
        state["buffer"] += chunk


def text_message(sender, content, timestamp):
    data = sender.encode()
    body = struct.pack("<H6x32s", len(data), data)
    data = content.encode()
    body += struct.pack("<H6x256s", len(data), data)
    return body + struct.pack("<Q", timestamp)
"""

ECHO_SCRIPT = """
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate, TextMessage

@mn.subscribe(TextMessage)
def on_text(msg):
    mn.publish(CounterUpdate(counter_id=len(msg.content), value=msg.timestamp * 2))
"""

# Asks the script in the host a question and prints the answer, then stays connected.
PINGER = WORKER_PRELUDE + """
for key in ("MYCELIUM_SOCKET", "MYCELIUM_ENDPOINT", "MYCELIUM_SCHEMA_DIGEST", "MYCELIUM_TOPOLOGY", "MYCELIUM_SERVICE",
            "MYCELIUM_TRACE_ID"):
    print(f"env {key}={os.environ.get(key, '<unset>')}")
print(f"env PYTHONPATH={os.environ['PYTHONPATH']}")
print(f"args {sys.argv[1:]}")
sock = connect(subscribe=[COUNTER_UPDATE])
payload = text_message("worker", "ping", 21)
sock.sendall(HEADER.pack(TEXT_MESSAGE, len(payload)) + payload)
while True:
    frame = recv_frame(sock)
    if frame is None:
        sys.exit(1)
    if frame[0] == COUNTER_UPDATE:
        counter_id, value = struct.unpack("<I4xQ", frame[1])  # HELLO: the C layout
        print(f"worker got CounterUpdate {counter_id} {value}")
        break
while True:
    time.sleep(1)
"""

# Connects, says who it is, and stays.
SLEEPER = WORKER_PRELUDE + """
print(f"topology {os.environ.get('MYCELIUM_TOPOLOGY', '<unset>')}")
sock = connect()
print("connected")
while True:
    time.sleep(1)
"""

CRASHER = """
import sys
print("crashing on purpose", flush=True)
sys.exit(3)
"""

# Starts a child in its own process group (so the host's SIGTERM reaches it), and on
# SIGTERM waits for that child and leaves cleanly.
GRACEFUL = """
import os, signal, subprocess, sys, time

child = subprocess.Popen(["sleep", "60"])

def on_term(signum, frame):
    child.wait(timeout=5)
    print(f"worker got SIGTERM; its child ended with {child.returncode}", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
# Only once the handler is in place: the test stops the host as soon as it reads this.
print(f"pids {os.getpid()} {child.pid}", flush=True)
while True:
    time.sleep(0.1)
"""

TALKER = """
import sys, time
print("hello from the worker")
print("a warning from the worker", file=sys.stderr)
sys.stdout.buffer.write(b"not utf-8: \\xff\\n")
sys.stdout.flush()
while True:
    time.sleep(1)
"""


def alive(pid):
    """Whether `pid` is a live process (a zombie nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def started_pid(host, worker, nth=1):
    line = host.wait_for(rf"worker '{worker}' started \(pid \d+\)", stream="stderr", nth=nth)
    return int(re.search(r"\(pid (\d+)\)", line).group(1))


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _demo_digest(host_binary, repo):
    """The digest of the bundled contracts, which a host without --contracts serves."""
    result = subprocess.run([str(host_binary), "schema", "--contracts", repo / "scripts" / "contracts.yaml", "--json"],
                            capture_output=True, text=True, timeout=30)
    return json.loads(result.stdout)["digest"]


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_worker_publishes_to_and_receives_from_a_script_in_the_host(host_binary, repo, tmp_path):
    echo = write(tmp_path, "echo.py", ECHO_SCRIPT)
    pinger = write(tmp_path, "pinger.py", PINGER)
    host = HostProcess(host_binary, "--script", echo, "--listen", f"unix:{tmp_path / 'node.sock'}",
                       "--worker", f"pinger={pinger}:--flag,two")
    try:
        host.wait_for(r"\[worker\.pinger\] worker got CounterUpdate 4 42", stream="stderr")
        pid = started_pid(host, "pinger")
        host.wait_for(rf"worker 'pinger' \(pid {pid}\) is ready: connected as 'pinger'", stream="stderr")
        env = {}
        for line in host.lines("stderr"):
            match = re.search(r"\[worker\.pinger\] env (\w+)=(.*)$", line)
            if match:
                env[match.group(1)] = match.group(2)
        assert env["MYCELIUM_SOCKET"] == str(tmp_path / "node.sock")  # a path, as Mycelium's workers expect
        assert env["MYCELIUM_ENDPOINT"] == host.addresses[0] == f"unix:{tmp_path / 'node.sock'}"
        assert re.fullmatch(r"[0-9a-f]{64}", env["MYCELIUM_SCHEMA_DIGEST"])
        assert env["MYCELIUM_TOPOLOGY"] == "<unset>"
        assert env["MYCELIUM_SERVICE"] == "pinger"
        assert re.fullmatch(r"[0-9a-f]{32}", env["MYCELIUM_TRACE_ID"])
        assert env["PYTHONPATH"].split(":")[0] == str(repo / "pymodules")
        assert any("[worker.pinger] args ['--flag', 'two']" in line for line in host.lines("stderr"))
    finally:
        code, _, err = host.stop()
    assert code == 0, err


SDK_WORKER = """
import mycelium
from demo_messages import CounterUpdate, TextMessage

rt = mycelium.Runtime()  # MYCELIUM_SOCKET, MYCELIUM_SCHEMA_DIGEST, MYCELIUM_SERVICE

@rt.subscribe(CounterUpdate)
def on_counter(msg):
    print(f"sdk worker got CounterUpdate {msg.counter_id} {msg.value}", flush=True)

@mycelium.on_stop
def goodbye():
    print("sdk worker stopping", flush=True)

rt.publish(TextMessage(sender="sdk", content="hello", timestamp=5))
"""


def test_an_sdk_worker_needs_nothing_but_its_environment(host_binary, repo, tmp_path):
    if not (repo / "pymodules" / "mycelium" / "__init__.py").exists():
        pytest.skip("the SDK (pymodules/mycelium) is not in this checkout")
    subprocess.run([str(host_binary), "codegen", "--contracts", repo / "scripts" / "contracts.yaml",
                    "--python", tmp_path / "demo_messages.py"], check=True, timeout=30)
    echo = write(tmp_path, "echo.py", ECHO_SCRIPT)
    worker = write(tmp_path, "sdk_worker.py", SDK_WORKER)
    host = HostProcess(host_binary, "--script", echo, "--listen", f"unix:{tmp_path / 'node.sock'}",
                       "--worker", f"sdk-worker={worker}")
    try:
        host.wait_for(r"worker 'sdk-worker' \(pid \d+\) is ready: connected as 'sdk-worker'", stream="stderr")
        host.wait_for(r"\[worker\.sdk-worker\] sdk worker got CounterUpdate 5 10", stream="stderr")
    finally:
        code, _, err = host.stop()
    assert code == 0, err
    assert "[worker.sdk-worker] sdk worker stopping" in err  # its on_stop hook ran on SIGTERM
    assert "worker 'sdk-worker' (pid" in err and "stopped: exit status 0" in err


# A worker written exactly as Mycelium's bridge fixture is: MYCELIUM_SOCKET handed to
# UnixTransport as a path, messages from a `mycelium_protocol` module, publish, then wait
# for a TextMessage that is not its own, and write both to MYCELIUM_TEST_OUTPUT.
MYCELIUM_BRIDGE_WORKER = """
import json
import os
import queue
import sys
import time

from mycelium import UnixTransport
from mycelium_protocol import TextMessage


def as_dict(message):
    if message is None:
        return None
    return {"sender": message.sender, "content": message.content, "timestamp": int(message.timestamp)}


def main():
    transport = UnixTransport(os.environ["MYCELIUM_SOCKET"], bytes.fromhex(os.environ["MYCELIUM_SCHEMA_DIGEST"]))
    transport.connect()
    publisher = transport.publisher(TextMessage)
    subscriber = transport.subscriber(TextMessage)
    outbound = TextMessage(sender="python-writer", content="hello-from-python", timestamp=int(time.time()))
    publisher.publish(outbound)
    inbound = None
    deadline = time.time() + 5.0
    while time.time() < deadline:
        try:
            candidate = subscriber.recv(timeout=1.0)
        except queue.Empty:
            continue
        if as_dict(candidate) == as_dict(outbound):
            continue
        inbound = candidate
        break
    with open(os.environ["MYCELIUM_TEST_OUTPUT"], "w", encoding="utf-8") as handle:
        json.dump({"outbound": as_dict(outbound), "inbound": as_dict(inbound)}, handle)
    transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
"""

# The host's side: answers the writer; again every 50 ms, since the fixture subscribes
# only after it has published.
BRIDGE_REPLIER = """
import mycelium_native as mn
from mycelium_native.messages import TextMessage

heard = []

@mn.subscribe(TextMessage)
def on_text(msg):
    if msg.sender == "python-writer":
        heard.append(msg)

@mn.every(0.05)
def answer():
    for msg in heard[-1:]:
        mn.publish(TextMessage(sender="host", content="echo:" + msg.content, timestamp=msg.timestamp + 1))
"""


def test_a_worker_written_like_myceliums_bridge_fixture_gets_the_reply(host_binary, repo, tmp_path, monkeypatch):
    subprocess.run([str(host_binary), "codegen", "--contracts", repo / "scripts" / "contracts.yaml",
                    "--python", tmp_path / "mycelium_protocol.py"], check=True, timeout=30)
    worker = write(tmp_path, "python_bridge_echo.py", MYCELIUM_BRIDGE_WORKER)
    replier = write(tmp_path, "replier.py", BRIDGE_REPLIER)
    output = tmp_path / "bridge.json"
    monkeypatch.setenv("MYCELIUM_TEST_OUTPUT", str(output))
    host = HostProcess(host_binary, "--script", replier, "--listen", f"unix:{tmp_path / 'node.sock'}",
                       "--worker", f"bridge={worker}")
    try:
        host.wait_for(r"worker 'bridge' \(pid \d+\) .*exit status 0", stream="stderr", timeout=30)
    finally:
        code, _, err = host.stop()
    assert code == 0, err
    result = json.loads(output.read_text())
    assert result["outbound"]["content"] == "hello-from-python"
    assert result["inbound"] == {"sender": "host", "content": "echo:hello-from-python",
                                 "timestamp": result["outbound"]["timestamp"] + 1}, err


def test_a_worker_killed_with_sigkill_comes_back_after_its_backoff(host_binary, tmp_path):
    write(tmp_path, "sleeper.py", SLEEPER)
    topology = write(tmp_path, "solo.toml", f"""
        socket_dir = "{tmp_path}"

        [[nodes]]
        name = "solo"

        [[nodes.workers]]
        name = "sleeper"
        script = "sleeper.py"
        restart = "on-failure"
        backoff_initial_ms = 400
        backoff_multiplier = 2.0
        max_restarts = 5
        """)
    host = HostProcess(host_binary, "--log-format", "json", "--topology", topology, "--node", "solo")
    try:
        assert host.addresses == [f"unix:{tmp_path / 'solo.sock'}"]
        ready = r'"message": "worker \'sleeper\' \(pid \d+\) is ready'
        host.wait_for(ready, stream="stderr")
        delays = []
        for restart in (1, 2):
            pid = started_pid(host, "sleeper", nth=restart)
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            new_pid = started_pid(host, "sleeper", nth=restart + 1)
            seen_after = time.monotonic() - killed
            assert new_pid != pid and not alive(pid)
            host.wait_for(ready, stream="stderr", nth=restart + 1)  # it reconnected under its name
            delays.append(seen_after)
        _, _, err = host.stop()
    finally:
        host.stop()
    records = json_lines(err)
    ended = [r for r in records if r["component"] == "supervisor" and "restarting in" in r["message"]]
    started = [r for r in records if r["component"] == "supervisor" and "started (pid" in r["message"]]
    assert len(ended) == 2 and len(started) == 3
    for index, (base, record) in enumerate(zip((400, 800), ended)):
        assert "signal 9 (SIGKILL)" in record["message"]
        planned = int(re.search(r"restarting in (\d+) ms", record["message"]).group(1))
        assert base <= planned <= base * 1.2 + 1, record   # the delay plus 0-20 % jitter
        # Measured on the host's own clock, from the line saying it died to the new start.
        def stamp(r):
            return time.mktime(time.strptime(r["time"][:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + r["time"][20:26])
        measured_ms = (stamp(started[index + 1]) - stamp(record)) * 1000
        print(f"restart {index + 1}: planned {planned} ms, measured {measured_ms:.1f} ms in the host, "
              f"{delays[index] * 1000:.1f} ms from SIGKILL to the test seeing the new pid")
        # Never early; the upper bound only catches a delay gone wrong (a shared 2-core
        # machine can be a few hundred ms late to wake a timer under load).
        assert planned - 1 <= measured_ms <= planned + 500
        assert delays[index] * 1000 >= base
    topology_lines = [r["message"] for r in records if r["component"] == "worker.sleeper"
                      and r["message"].startswith("topology ")]
    assert topology_lines and all(m == f"topology {topology}" for m in topology_lines)


def test_a_crash_looping_worker_stops_after_the_limit_and_the_host_keeps_running(host_binary, repo, tmp_path):
    echo = write(tmp_path, "echo.py", ECHO_SCRIPT)
    crasher = write(tmp_path, "crasher.py", CRASHER)
    sleeper = write(tmp_path, "sleeper.py", SLEEPER)
    host = HostProcess(host_binary, "--script", echo, "--listen", f"unix:{tmp_path / 'node.sock'}",
                       "--worker", f"crasher={crasher}", "--worker", f"steady={sleeper}")
    try:
        line = host.wait_for(r"worker 'crasher' .*giving up", stream="stderr", timeout=30)
        assert "error" in line
        assert "exit status 3" in line
        assert "restarted 5 times within 60 s" in line
        starts = [l for l in host.lines("stderr") if "worker 'crasher' started" in l]
        assert len(starts) == 6  # the first start and 5 restarts
        time.sleep(0.5)
        assert len([l for l in host.lines("stderr") if "worker 'crasher' started" in l]) == 6
        # Everything else still runs: the other worker, the script, the listener.
        assert host.proc.poll() is None
        host.wait_for(r"worker 'steady' \(pid \d+\) is ready", stream="stderr")
        digest = bytes.fromhex(_demo_digest(host_binary, repo))
        client = RawClient(host.addresses[0], digest)
        payload = struct.pack("<H6x32s", 6, b"legacy") + struct.pack("<H6x256s", 5, b"hello") + struct.pack("<Q", 7)
        client.send(TEXT_MESSAGE, payload)
        frame = client.recv_type(COUNTER_UPDATE)
        assert frame is not None and unpack_counter_update(frame[1]) == (5, 14)
        client.close()
    finally:
        code, _, err = host.stop()
    assert code == 0, err


def test_sigterm_on_the_host_stops_its_workers_gracefully_and_leaves_no_process(host_binary, tmp_path):
    graceful = write(tmp_path, "graceful.py", GRACEFUL)
    host = HostProcess(host_binary, "--listen", f"unix:{tmp_path / 'node.sock'}", "--worker", f"graceful={graceful}")
    line = host.wait_for(r"\[worker\.graceful\] pids \d+ \d+", stream="stderr")
    worker_pid, child_pid = map(int, line.rsplit("pids ", 1)[1].split())
    assert alive(worker_pid) and alive(child_pid)
    assert os.getpgid(worker_pid) == worker_pid == os.getpgid(child_pid)  # its own group
    started = time.monotonic()
    code, _, err = host.stop()
    took = time.monotonic() - started
    assert code == 0, err
    assert "worker got SIGTERM; its child ended with -15" in err
    assert re.search(rf"worker 'graceful' \(pid {worker_pid}\) stopped: exit status 0", err)
    assert "did not stop within" not in err  # no SIGKILL was needed
    assert took < 5
    assert not alive(worker_pid)
    assert not alive(child_pid)


def test_worker_output_becomes_json_log_lines_under_the_workers_logger(host_binary, tmp_path):
    talker = write(tmp_path, "talker.py", TALKER)
    host = HostProcess(host_binary, "--log-format", "json", "--listen", f"unix:{tmp_path / 'node.sock'}",
                       "--worker", f"talker={talker}")
    try:
        host.wait_for(r"a warning from the worker", stream="stderr")
        host.wait_for(r"hello from the worker", stream="stderr")
        host.wait_for(r"not utf-8: ", stream="stderr")  # the last line the worker prints
    finally:
        code, _, err = host.stop()
    assert code == 0, err
    records = json_lines(err)
    assert len(records) == len([l for l in err.splitlines() if l.strip()])  # every stderr line is JSON
    mine = {(r["level"], r["message"]) for r in records if r["component"] == "worker.talker"}
    assert ("info", "hello from the worker") in mine
    assert ("warning", "a warning from the worker") in mine
    assert ("info", "not utf-8: \ufffd") in mine  # bytes that are not UTF-8 are replaced
    assert all(r.get("worker") == "talker" for r in records if r["component"] == "worker.talker")
    started = [r for r in records if r["component"] == "supervisor" and "started (pid" in r["message"]]
    assert started and started[0]["worker"] == "talker"
    for record in records:
        assert set(record) >= {"time", "level", "component", "message"}
    assert any(r["component"] == "supervisor" and "worker 'talker' started" in r["message"] for r in records)


@pytest.mark.parametrize("args, message", [
    (["--worker", "w={worker}"], "--worker needs a Unix listener to give its workers as MYCELIUM_SOCKET: "
                                 "add --listen unix:PATH (there is no --listen)"),
    (["--worker", "w={worker}", "--listen", "tcp:127.0.0.1:0"], "(--listen has only TCP addresses)"),
    (["--worker", "w={missing}", "--listen", "unix:{socket}"], "worker 'w': script '{missing}' does not exist"),
    (["--worker", "w", "--listen", "unix:{socket}"], "--worker: 'w' is not NAME=SCRIPT[:ARG,ARG...]"),
    (["--worker", "a b={worker}", "--listen", "unix:{socket}"], "bad worker name 'a b'"),
    (["--worker", "w=", "--listen", "unix:{socket}"], "'w=': no script after '='"),
    (["--worker", "w={worker}", "--worker", "w={worker}", "--listen", "unix:{socket}"],
     "two workers are named 'w': worker names must be unique"),
])
def test_bad_worker_input_is_refused_at_start_with_a_clear_error(run_host, tmp_path, args, message):
    places = {"worker": write(tmp_path, "worker.py", "print('hi')\n"), "missing": tmp_path / "missing.py",
              "socket": tmp_path / "n.sock"}
    result = run_host(*(a.format(**places) for a in args), timeout=30)
    assert result.returncode == 2, result.stderr
    assert message.format(**places) in result.stderr
    assert not places["socket"].exists()  # nothing started


def test_a_topology_worker_whose_script_is_missing_is_refused_with_its_place(run_host, tmp_path):
    topology = write(tmp_path, "solo.toml", f"""
        socket_dir = "{tmp_path}"

        [[nodes]]
        name = "solo"

        [[nodes.workers]]
        name = "ghost"
        script = "ghost.py"
        """)
    result = run_host("--topology", topology, "--node", "solo", timeout=30)
    assert result.returncode == 2, result.stderr
    assert f"worker 'ghost': script '{tmp_path / 'ghost.py'}' does not exist (at line 7" in result.stderr
