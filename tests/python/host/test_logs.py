"""Logs are bounded (docs/reliability.md): what outside input or a script can repeat, per
connection or per message, is logged once per reason and --log-interval, with the number
of lines held back; the counters count every event.

Each test floods the host, checks the lines are few, then waits out the interval and
repeats the event once more: that line must report everything held back since the last,
so the lines plus their counts add up exactly to the events. Bounds are counts, never
durations: --log-interval 2 and at most 10 lines leave the flood 18 s, on any machine."""

import re
import socket
import textwrap
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from wire import HostProcess, RawClient, counter_update

COUNTER_UPDATE = 1002
INTERVAL = 2.0
MAX_LINES = 10
NOTE = re.compile(r" \(and (\d+) more like it since the last line\)")

QUIET_SCRIPT = """
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate

@mn.subscribe(CounterUpdate)
def on_counter(msg):
    print("got", msg.value, flush=True)
"""

# Every message raises in the callback, and fails to decode for a second subscription
# whose class's from_bytes raises (deliver() in embedded/src/python_runtime.cpp).
RAISING_SCRIPT = """
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate

class Undecodable:
    TYPE_ID = CounterUpdate.TYPE_ID

    @classmethod
    def from_bytes(cls, data):
        raise ValueError("these bytes are not an Undecodable")

mn.subscribe(Undecodable, lambda msg: None)

@mn.subscribe(CounterUpdate)
def on_counter(msg):
    raise RuntimeError(f"no value is welcome, not even {msg.value}")
"""


def start_host(host_binary, tmp_path, script_text):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(script_text))
    host = HostProcess(host_binary, "--script", script, "--listen", f"unix:{tmp_path / 'node.sock'}",
                       "--metrics", "127.0.0.1:0", "--log-interval", INTERVAL)
    url = host.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
    return host, url


def metric(url, name, **labels):
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0


def wait_for_metric(url, name, expected, timeout=60.0, **labels):
    deadline = time.monotonic() + timeout
    while (current := metric(url, name, **labels)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert current == expected, f"{name}{labels} is {current}, expected {expected}"


def wait_for_lines(host, text, count, timeout=30.0):
    """The host's stderr lines containing `text`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while len(lines := [line for line in host.lines("stderr") if text in line]) < count:
        assert time.monotonic() < deadline, f"{len(lines)} lines with {text!r}, expected {count}"
        time.sleep(0.05)
    return lines


def accounted(lines):
    """Events the lines stand for: each line itself and the count it reports."""
    return sum(1 + (int(m.group(1)) if (m := NOTE.search(line)) else 0) for line in lines)


def test_connections_closed_inside_the_handshake_cost_a_bounded_log(host_binary, tmp_path, digest):
    host, url = start_host(host_binary, tmp_path, QUIET_SCRIPT)
    try:
        path = str(tmp_path / "node.sock")
        flood = 2000
        for _ in range(flood):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.send(b"\x20")  # one byte of the handshake's digest length, then gone
            s.close()
        wait_for_metric(url, "mycelium_link_disconnects_total", flood, listener="listen", reason="truncated")
        flood_lines = [line for line in host.lines("stderr") if "closed inside the handshake" in line]
        assert 1 <= len(flood_lines) <= MAX_LINES, flood_lines
        assert "(1 of 34 bytes received)" in flood_lines[0]  # the first one whole

        # After the interval the next one passes and says how many were held back.
        time.sleep(INTERVAL * 1.25)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.close()
        wait_for_metric(url, "mycelium_link_disconnects_total", flood + 1, listener="listen", reason="truncated")
        lines = wait_for_lines(host, "closed inside the handshake", len(flood_lines) + 1)
        assert len(lines) == len(flood_lines) + 1, lines[-3:]
        assert NOTE.search(lines[-1]), lines[-1]
        assert accounted(lines) == flood + 1, lines

        # The host still serves a client.
        client = RawClient(host.addresses[0], digest)
        client.send(COUNTER_UPDATE, counter_update(1, 42))
        host.wait_for(r"^got 42$")
        client.close()
    finally:
        _, _, err = host.stop()
    assert len(err.encode()) < 20_000, f"{len(err.encode())} bytes of log"


def test_a_callback_raising_on_every_message_logs_its_first_traceback_whole_and_counts_every_one(
        host_binary, tmp_path, digest):
    host, url = start_host(host_binary, tmp_path, RAISING_SCRIPT)
    flood = 3000
    try:
        client = RawClient(host.addresses[0], digest)
        for value in range(flood):
            client.send(COUNTER_UPDATE, counter_update(1, value))
        wait_for_metric(url, "mycelium_python_callback_exceptions_total", flood, type="CounterUpdate")
        wait_for_metric(url, "mycelium_python_decode_errors_total", flood, type="CounterUpdate")
        time.sleep(INTERVAL * 1.25)
        client.send(COUNTER_UPDATE, counter_update(1, flood))
        wait_for_metric(url, "mycelium_python_callback_exceptions_total", flood + 1, type="CounterUpdate")
        wait_for_metric(url, "mycelium_python_decode_errors_total", flood + 1, type="CounterUpdate")
        client.close()
    finally:
        code, out, err = host.stop()
    assert code == 0, err[-2000:]

    # Callback exceptions: the first whole, traceback and all; a bounded number of lines.
    raised = [line for line in err.splitlines() if "for CounterUpdate raised" in line]
    assert 2 <= len(raised) <= MAX_LINES + 1, raised
    assert not NOTE.search(raised[0])
    first = err.split(raised[0], 1)[1]
    assert first.lstrip("\n").startswith("Traceback (most recent call last)"), first[:300]
    assert "RuntimeError: no value is welcome, not even 0\n" in err
    assert NOTE.search(raised[-1]), raised[-1]
    assert accounted(raised) == flood + 1, raised
    assert err.count("Traceback (most recent call last)") <= 2 * (MAX_LINES + 1)
    # The exit summary counts every one.
    assert re.search(rf"\(errors {flood + 1}, decode errors {flood + 1}\)", out), out

    # Messages that did not decode: bounded the same way.
    dropped = [line for line in err.splitlines() if "dropped a CounterUpdate that did not decode" in line]
    assert 2 <= len(dropped) <= MAX_LINES + 1, dropped
    assert not NOTE.search(dropped[0])
    assert NOTE.search(dropped[-1]), dropped[-1]
    assert accounted(dropped) == flood + 1, dropped
    assert len(err.encode()) < 60_000, f"{len(err.encode())} bytes of log"
