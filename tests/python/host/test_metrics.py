"""Prometheus metrics of a real mycelium-host: a live scrape that promtool and
prometheus_client accept, with counters that match the traffic the test sent."""

import shutil
import socket
import struct
import subprocess
import textwrap
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wire import HostProcess, RawClient, counter_update

COUNTER_UPDATE = 1002

SCRIPT = """
import mycelium_native as mn
from mycelium_native import metrics
from mycelium_native.messages import CounterUpdate

seen = metrics.counter("script_updates_total", "Updates seen by the script", labels=["parity"])
last = metrics.gauge("script_last_value", "The last value seen")
sizes = metrics.histogram("script_value", "Values seen", buckets=[10, 100, 1000])
assert metrics.counter("script_updates_total", "Updates seen by the script", labels=["parity"]) is not None

for bad in ("9starts_with_digit", "mycelium_reserved", "has space"):
    try:
        metrics.counter(bad)
    except ValueError as e:
        print("refused:", e, flush=True)
try:
    metrics.gauge("script_updates_total", "Updates seen by the script", labels=["parity"])
except ValueError as e:
    print("refused:", e, flush=True)
try:
    seen.inc()
except ValueError as e:
    print("refused:", e, flush=True)

@mn.subscribe(CounterUpdate)
def on_update(msg):
    seen.labels(parity="even" if msg.value % 2 == 0 else "odd").inc()
    last.set(msg.value)
    sizes.observe(msg.value)
    if msg.value == 13:
        raise RuntimeError("thirteen is unlucky")
"""


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(parsed, name, **labels):
    return parsed[(name, frozenset(labels.items()))]


@pytest.fixture
def metered_node(host_binary, tmp_path):
    script = tmp_path / "metered.py"
    script.write_text(textwrap.dedent(SCRIPT))
    host = HostProcess(host_binary, "--script", script, "--listen", f"unix:{tmp_path / 'node.sock'}",
                       "--metrics", "127.0.0.1:0")
    url = host.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
    yield host, url
    host.stop()


def wait_for_value(url, name, expected, timeout=30.0, **labels):
    deadline = time.monotonic() + timeout
    while True:
        parsed = samples(scrape(url))
        current = parsed.get((name, frozenset(labels.items())))
        if current == expected or time.monotonic() > deadline:
            return parsed
        time.sleep(0.05)


def test_counters_match_the_traffic_sent(metered_node, digest):
    host, url = metered_node
    client = RawClient(host.addresses[0], digest)
    for value_ in range(1, 101):
        client.send(COUNTER_UPDATE, counter_update(1, value_))
    wait_for_value(url, "mycelium_python_callbacks_total", 99, type="CounterUpdate")
    # A run of messages is counted as published once all of it is delivered: on a loaded
    # machine the callbacks can be through it before the count is.
    parsed = wait_for_value(url, "mycelium_bus_published_total", 100, type="CounterUpdate")

    # The host's own account, should the counts disagree (a stalled link shows there).
    log = "\n".join(host.lines("stderr")[-40:])
    assert value(parsed, "mycelium_bus_published_total", type="CounterUpdate") == 100, log
    assert value(parsed, "mycelium_bus_published_bytes_total", type="CounterUpdate") == 1600
    assert value(parsed, "mycelium_python_callbacks_total", type="CounterUpdate") == 99
    assert value(parsed, "mycelium_python_callback_exceptions_total", type="CounterUpdate") == 1
    assert value(parsed, "mycelium_link_frames_received_total", listener="listen") >= 100
    assert value(parsed, "mycelium_link_handshakes_total", listener="listen") == 1
    assert value(parsed, "mycelium_link_connections", listener="listen") == 1
    assert value(parsed, "mycelium_link_send_queue_frames", listener="listen") == 0
    # The script's own metrics, with its labels.
    assert value(parsed, "script_updates_total", parity="even") == 50
    assert value(parsed, "script_updates_total", parity="odd") == 50
    assert value(parsed, "script_last_value") == 100
    assert value(parsed, "script_value_count") == 100
    assert value(parsed, "script_value_bucket", le="10") == 10
    assert value(parsed, "script_value_bucket", le="100") == 100
    # One callback in 16 is timed: the histogram holds a sample, never more than all.
    timed = value(parsed, "mycelium_python_callback_duration_seconds_count", type="CounterUpdate")
    assert 1 <= timed <= 100
    client.close()

    # The script's refusals were clear.
    out = "\n".join(host.lines())
    assert "refused: bad metric name '9starts_with_digit'" in out
    assert "refused: bad metric name 'mycelium_reserved': the 'mycelium_' prefix is the host's own" in out
    assert "refused: metric 'script_updates_total' is already defined as a counter" in out
    assert "refused: script_updates_total has the labels [parity]: call .labels(...) first" in out


def test_bad_handshakes_are_counted_by_reason(metered_node, digest):
    host, url = metered_node
    wrong = RawClient(host.addresses[0], bytes(32))
    assert wrong.expect_error_then_close() is not None
    short = RawClient(host.addresses[0], b"\x01\x02\x03")
    short.expect_error_then_close()
    parsed = wait_for_value(url, "mycelium_link_handshake_failures_total", 1, listener="listen",
                            reason="digest_mismatch")
    assert value(parsed, "mycelium_link_handshake_failures_total", listener="listen", reason="digest_mismatch") == 1
    assert value(parsed, "mycelium_link_handshake_failures_total", listener="listen", reason="bad_digest_length") == 1


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_a_scrape_passes_promtool(metered_node, digest):
    host, url = metered_node
    client = RawClient(host.addresses[0], digest)
    client.send(COUNTER_UPDATE, counter_update(1, 2))
    wait_for_value(url, "mycelium_python_callbacks_total", 1, type="CounterUpdate")
    result = subprocess.run(["promtool", "check", "metrics"], input=scrape(url), capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    client.close()


def test_a_bad_or_busy_metrics_address_is_refused_with_the_reason(run_host, tmp_path):
    script = tmp_path / "idle.py"
    script.write_text("")
    result = run_host("--script", script, "--metrics", "nonsense", "--duration", "1")
    assert result.returncode == 2
    assert "bad address 'nonsense': expected HOST:PORT" in result.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_host("--script", script, "--metrics", f"127.0.0.1:{port}", "--duration", "1")
    assert result.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr


def test_the_topology_metrics_address_serves_a_node(host_binary, tmp_path):
    (tmp_path / "topology.toml").write_text(textwrap.dedent(f"""
        socket_dir = "{tmp_path}"
        [[nodes]]
        name = "solo"
        services = ["solo-svc"]
        metrics = "127.0.0.1:0"
    """))
    # Node mode and --listen together: two link servers, each family still once.
    host = HostProcess(host_binary, "--topology", tmp_path / "topology.toml", "--node", "solo",
                       "--listen", f"unix:{tmp_path / 'extra.sock'}", listens=2)
    try:
        url = host.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
        text = scrape(url)
        parsed = samples(text)
        assert value(parsed, "mycelium_link_connections", listener="node") == 0
        assert value(parsed, "mycelium_link_connections", listener="listen") == 0
        assert text.count("# TYPE mycelium_link_accepted_total ") == 1
        if shutil.which("promtool"):
            result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                                    timeout=30)
            assert result.returncode == 0, result.stdout + result.stderr
    finally:
        host.stop()


def test_supervised_workers_are_reported(host_binary, tmp_path):
    worker = tmp_path / "idle_worker.py"
    worker.write_text("import time\ntime.sleep(60)\n")
    host = HostProcess(host_binary, "--listen", f"unix:{tmp_path / 'node.sock'}", "--worker", f"idler={worker}",
                       "--metrics", "127.0.0.1:0")
    try:
        url = host.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
        parsed = wait_for_value(url, "mycelium_worker_up", 1, worker="idler")
        assert value(parsed, "mycelium_worker_up", worker="idler") == 1
        assert value(parsed, "mycelium_worker_restarts_total", worker="idler") == 0
        assert value(parsed, "mycelium_worker_given_up", worker="idler") == 0
    finally:
        host.stop()


def test_bad_frames_are_counted_per_client_and_logged_once_per_interval(metered_node, digest):
    host, url = metered_node
    client = RawClient(host.addresses[0], digest)
    name = b"noisy"
    client.send(2, struct.pack("<BBH", 1, 0, len(name)) + name)  # HELLO v1, role 0 (client)
    for _ in range(50):
        client.send(4321, bytes(8))                # not in the contracts
    client.send(COUNTER_UPDATE, bytes(15))         # one byte short
    client.send(COUNTER_UPDATE, counter_update(1, 1))
    parsed = wait_for_value(url, "mycelium_link_client_bad_frames_total", 50,
                            listener="listen", client="noisy", reason="unknown_type")
    assert value(parsed, "mycelium_link_client_bad_frames_total",
                 listener="listen", client="noisy", reason="unknown_type") == 50
    assert value(parsed, "mycelium_link_client_bad_frames_total",
                 listener="listen", client="noisy", reason="size_mismatch") == 1
    # The good frame after them was published: the connection stayed.
    wait_for_value(url, "mycelium_bus_published_total", 1, type="CounterUpdate")
    assert value(samples(scrape(url)), "mycelium_bus_published_total", type="CounterUpdate") == 1
    # One line per reason within the interval (10 s), not 51.
    lines = [line for line in host.lines("stderr") if "bad frame" in line]
    assert len(lines) == 2, lines
    client.close()
