"""Scripts shaped the way Mycelium documents them: subscribe at the top level, then keep
the top level running. Callbacks must arrive while it waits or computes, one at a time
and in order, and a stop must interrupt the top level as Ctrl-C interrupts python3."""

import os
import signal
import subprocess
import textwrap
import time

import pytest


def write_script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


# Each shape subscribes to the demo feed's ticks (10,000/s), keeps its top level busy in
# its own way, and reports from an `except KeyboardInterrupt:` block what it saw while
# the top level ran. The host stops it with --duration.
COUNTING = """
import threading, time
import mycelium_native as mn
from mycelium_native.messages import TradeTick
rt = mn.Runtime()
seen = []
rt.subscribe(TradeTick, lambda tick: seen.append(tick.seq))
started = time.monotonic()

def report(how):
    ordered = all(b > a for a, b in zip(seen, seen[1:]))
    print(f"{how}: {len(seen)} callbacks during the top level, ordered {ordered}", flush=True)
"""

SHAPES = {
    "sleep loop": """
try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    report("sleep loop")
""",
    "event wait": """
try:
    threading.Event().wait()
except KeyboardInterrupt:
    report("event wait")
""",
    "asyncio": """
import asyncio

async def main():
    await asyncio.sleep(3600)

try:
    asyncio.run(main())
except KeyboardInterrupt:
    report("asyncio")
""",
    "socket read": """
import socket
a, b = socket.socketpair()
try:
    a.recv(1)
except KeyboardInterrupt:
    report("socket read")
""",
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_callbacks_arrive_while_the_top_level_waits(run_host, tmp_path, shape):
    script = write_script(tmp_path, "shape.py", COUNTING + SHAPES[shape])
    begun = time.monotonic()
    result = run_host("--script", script, "--demo-feed", "10000", "--duration", "2", timeout=30)
    elapsed = time.monotonic() - begun
    assert result.returncode == 0, result.stderr
    line = next((l for l in result.stdout.splitlines() if l.startswith(shape + ":")), None)
    assert line is not None, result.stdout + result.stderr
    count = int(line.split(": ")[1].split()[0])
    # About 10,000/s for the ~2 s after the host saw the top level settle.
    assert count > 5000, line
    assert line.endswith("ordered True"), line
    # The stop interrupted the wait at once: no waiting out a sleep or a read.
    assert elapsed < 8, f"the host took {elapsed:.1f} s"


def test_a_computing_top_level_gets_callbacks_at_the_switch_interval(run_host, tmp_path):
    script = write_script(tmp_path, "compute.py", """
        import time
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate
        seen = []
        mn.subscribe(CounterUpdate, lambda m: seen.append(m.value))
        gaps = []
        sent = 0
        end = time.monotonic() + 1.0
        while time.monotonic() < end:        # pure Python: never waits
            if sent < 200:
                mn.publish(CounterUpdate(counter_id=1, value=sent))
                sent += 1
            x = 0
            for i in range(1000):
                x += i
        print("delivered while computing", len(seen), "of", sent, flush=True)
        mn.stop()
        """)
    result = run_host("--script", script, "--duration", "10", timeout=30)
    assert result.returncode == 0, result.stderr
    assert "delivered while computing 200 of 200" in result.stdout, result.stdout


def test_callbacks_never_overlap_even_when_one_releases_the_gil(run_host, tmp_path):
    script = write_script(tmp_path, "overlap.py", """
        import threading, time
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate, TextMessage
        inside = [0]
        overlaps = [0]
        order = {1: [], 2: []}

        def slow(m):
            if inside[0]:
                overlaps[0] += 1
            inside[0] += 1
            time.sleep(0.0005)              # releases the GIL mid-callback
            order[m.counter_id].append(m.value)
            inside[0] -= 1

        mn.subscribe(CounterUpdate, slow)

        def producer(counter_id):
            for i in range(300):
                mn.publish(CounterUpdate(counter_id=counter_id, value=i))

        threads = [threading.Thread(target=producer, args=(c,)) for c in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        while len(order[1]) + len(order[2]) < 600:
            time.sleep(0.01)
        print("overlaps", overlaps[0], "in order",
              order[1] == list(range(300)) and order[2] == list(range(300)), flush=True)
        mn.stop()
        """)
    result = run_host("--script", script, "--duration", "20", timeout=40)
    assert result.returncode == 0, result.stderr
    assert "overlaps 0 in order True" in result.stdout, result.stdout


def start_host(host_binary, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}
    return subprocess.Popen([str(host_binary), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def wait_for_line(stream, text, timeout):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"no {text!r} in output: {''.join(seen)}")


def test_services_start_while_the_top_level_sleeps_and_sigterm_reaches_its_handler(host_binary, tmp_path):
    socket_path = tmp_path / "host.sock"
    script = write_script(tmp_path, "service.py", """
        import signal, sys, time
        import mycelium_native as mn

        def on_term(signum, frame):
            print("SIGTERM handler ran", flush=True)
            sys.exit(0)

        signal.signal(signal.SIGTERM, on_term)
        print("top level ready", flush=True)
        while True:
            time.sleep(60)
        """)
    host = start_host(host_binary, "--script", str(script), "--listen", f"unix:{socket_path}")
    try:
        wait_for_line(host.stdout, "top level ready", 20)
        # The listeners are announced although the top level never returns.
        wait_for_line(host.stdout, "listening on unix:", 20)
        host.send_signal(signal.SIGTERM)
        wait_for_line(host.stdout, "SIGTERM handler ran", 5)
        assert host.wait(timeout=10) == 0
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()


def test_sigint_interrupts_a_long_sleep_at_once(host_binary, tmp_path):
    script = write_script(tmp_path, "sleeper.py", """
        import time
        # The line is printed inside the try: the test signals as soon as it reads it, and
        # the interrupt may land before time.sleep is entered.
        try:
            print("sleeping", flush=True)
            time.sleep(3600)
        except KeyboardInterrupt:
            print("KeyboardInterrupt in the top level", flush=True)
        """)
    host = start_host(host_binary, "--script", str(script))
    try:
        wait_for_line(host.stdout, "sleeping", 20)
        begun = time.monotonic()
        host.send_signal(signal.SIGINT)
        wait_for_line(host.stdout, "KeyboardInterrupt in the top level", 5)
        assert host.wait(timeout=10) == 0
        assert time.monotonic() - begun < 5
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
