"""Nodes of one topology in separate mycelium-host processes, linked as a mesh."""

import json
import re
import signal
import textwrap
import time

import pytest

from wire import HostProcess, RawClient, unpack_counter_update

COUNTER_UPDATE = 1002

PUBLISHER = """
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate
state = {"next": 1}

@mn.every(0.02)
def tick():
    if state["next"] <= COUNT:
        mn.publish(CounterUpdate(counter_id=ID, value=state["next"]))
        state["next"] += 1
"""

# PUBLISHER that holds back the values after HOLD until the file GO_FILE exists: the links
# come up while the first values go out, and the last go out once the test has seen every
# link up, however slowly the nodes start (under AddressSanitizer a node starts several
# times slower, and all 30 values once left before the last node had dialed).
GATED_PUBLISHER = """
import os
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate
state = {"next": 1}

@mn.every(0.02)
def tick():
    if state["next"] > HOLD and not os.path.exists("GO_FILE"):
        return
    if state["next"] <= COUNT:
        mn.publish(CounterUpdate(counter_id=ID, value=state["next"]))
        state["next"] += 1
"""

SUBSCRIBER = """
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate
seen = {}

@mn.subscribe(CounterUpdate)
def on_counter(msg):
    seen.setdefault(msg.counter_id, []).append(msg.value)
    print(f"got {msg.counter_id} {msg.value}", flush=True)

@mn.on_stop
def report():
    print("seen " + json.dumps({str(k): v for k, v in seen.items()}), flush=True)

import json
"""


def write_topology(tmp_path, nodes):
    """nodes: {name: {"scripts": [...], "tcp": bool, "host": str}}; a tcp node listens on
    <host>:0, 127.0.0.1 by default. Nodes on one host link over the Unix socket unless
    --peer names a TCP address; another host (127.0.0.2 is one too) is reached over TCP."""
    lines = [f'socket_dir = "{tmp_path}"']
    for name, spec in nodes.items():
        lines += ["[[nodes]]", f'name = "{name}"', f'services = ["{name}-service"]']
        scripts = ", ".join(f'"{s}"' for s in spec.get("scripts", []))
        lines.append(f"scripts = [{scripts}]")
        if spec.get("host"):
            lines.append(f'host = "{spec["host"]}"')
        if spec.get("tcp"):
            lines.append(f'endpoint = {{ kind = "tcp", addr = "{spec.get("host", "127.0.0.1")}:0" }}')
    path = tmp_path / "topology.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def script(tmp_path, name, body, **values):
    text = textwrap.dedent(body)
    for key, value in values.items():
        text = text.replace(key, str(value))
    path = tmp_path / name
    path.write_text(text)
    return path.name


def start_node(host_binary, topology, name, *extra, listens=1):
    """A node of `topology`; `listens` is how many addresses it prints (Unix, then TCP)."""
    return HostProcess(host_binary, "--topology", topology, "--node", name, *extra, listens=listens)


def seen_of(out):
    match = re.search(r"^seen (.*)$", out, re.M)
    assert match, out
    return json.loads(match.group(1))


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_script_on_one_node_receives_from_a_script_on_another(host_binary, tmp_path, transport):
    pub = script(tmp_path, "pub.py", PUBLISHER, COUNT=20, ID=1)
    sub = script(tmp_path, "sub.py", SUBSCRIBER)
    tcp = transport == "tcp"
    topology = write_topology(tmp_path, {"alpha": {"scripts": [pub], "tcp": tcp},
                                         "beta": {"scripts": [sub], "tcp": tcp}})
    # alpha's name sorts first, so alpha dials beta: over TCP at the port beta bound.
    beta = start_node(host_binary, topology, "beta", listens=2 if tcp else 1)
    peer = ["--peer", f"beta={beta.addresses[1]}"] if tcp else []
    alpha = start_node(host_binary, topology, "alpha", *peer, listens=2 if tcp else 1)
    try:
        beta.wait_for(r"^got 1 20$")
    finally:
        alpha.stop()
        code, out, err = beta.stop()
    assert code == 0, err
    assert seen_of(out)["1"] == list(range(1, 21))
    if tcp:
        assert beta.addresses[1].startswith("tcp:127.0.0.1:")
        assert re.search(r"peer 'alpha' .*tcp:127\.0\.0\.1:", err), err


def test_three_nodes_deliver_once_each_with_no_loops(host_binary, tmp_path):
    go = tmp_path / "go"
    pub_a = script(tmp_path, "pub_a.py", GATED_PUBLISHER, COUNT=30, HOLD=20, GO_FILE=go, ID=1)
    pub_b = script(tmp_path, "pub_b.py", GATED_PUBLISHER, COUNT=30, HOLD=20, GO_FILE=go, ID=2)
    sub = script(tmp_path, "sub.py", SUBSCRIBER)
    # The subscriber loads first: timers run while later scripts load, and a node's own
    # subscriber must not miss its publisher's first value.
    topology = write_topology(tmp_path, {"a": {"scripts": [sub, pub_a]}, "b": {"scripts": [sub, pub_b]},
                                         "c": {"scripts": [sub]}})
    nodes = {name: start_node(host_binary, topology, name) for name in ("c", "b", "a")}
    try:
        # The first name dials: a dials b and c, b dials c.
        for dialer, far in (("a", "b"), ("a", "c"), ("b", "c")):
            nodes[dialer].wait_for(rf"peer '{far}': connected to ", timeout=20, stream="stderr")
        go.touch()
        for node in nodes.values():
            node.wait_for(r"^got 1 30$", timeout=20)
            node.wait_for(r"^got 2 30$", timeout=20)
        time.sleep(0.5)  # anything duplicated or looping would arrive now
    finally:
        results = {name: node.stop() for name, node in nodes.items()}
    for name, (code, out, err) in results.items():
        assert code == 0, f"{name}: {err}"
        seen = seen_of(out)
        # The links came up while the publishers ran, so a node may miss the first few
        # values of the other nodes' publishers; never one twice, never out of order.
        for publisher in ("1", "2"):
            values = seen[publisher]
            assert values == sorted(set(values)), f"{name} saw publisher {publisher} twice or out of order"
            assert values[-1] == 30
    assert seen_of(results["a"][1])["1"] == list(range(1, 31))  # its own, in process
    assert seen_of(results["b"][1])["2"] == list(range(1, 31))


def test_a_legacy_client_on_one_node_gets_frames_published_on_another(host_binary, tmp_path, run_host, repo):
    pub = script(tmp_path, "pub.py", PUBLISHER, COUNT=1000, ID=7)
    topology = write_topology(tmp_path, {"alpha": {"scripts": [pub]}, "beta": {}})
    schema = run_host("schema", "--contracts", repo / "scripts" / "contracts.yaml", "--json")
    digest = bytes.fromhex(json.loads(schema.stdout)["digest"])
    beta = start_node(host_binary, topology, "beta")
    alpha = start_node(host_binary, topology, "alpha")
    try:
        client = RawClient(f"unix:{tmp_path / 'beta.sock'}", digest)
        frame = client.recv_type(COUNTER_UPDATE, timeout=10)
        assert frame is not None, "no CounterUpdate reached the legacy client on beta"
        counter_id, value = unpack_counter_update(frame[1])
        assert counter_id == 7 and value >= 1
        client.close()
    finally:
        alpha.stop()
        beta.stop()


def test_the_link_comes_back_after_the_far_node_is_killed_and_restarted(host_binary, tmp_path):
    pub = script(tmp_path, "pub.py", PUBLISHER, COUNT=100000, ID=3)
    sub = script(tmp_path, "sub.py", SUBSCRIBER)
    topology = write_topology(tmp_path, {"alpha": {"scripts": [pub]}, "beta": {"scripts": [sub]}})
    beta = start_node(host_binary, topology, "beta")
    alpha = start_node(host_binary, topology, "alpha")
    try:
        beta.wait_for(r"^got 3 5$")
        alpha.stop(sig=signal.SIGKILL)
        # The killed node left its socket file behind; the new one replaces it because
        # nothing answers there, and its counter starts again at 1.
        restarted = start_node(host_binary, topology, "alpha")
        try:
            beta.wait_for(r"^got 3 5$", timeout=15, nth=2)
        finally:
            restarted.stop()
    finally:
        alpha.stop()
        code, out, err = beta.stop()
    assert code == 0, err
    assert "disconnected" in err, err


def test_node_mode_refuses_bad_flags_with_the_reason(run_host, tmp_path):
    topology = write_topology(tmp_path, {"alpha": {}, "beta": {"tcp": True, "host": "127.0.0.2"}})
    cases = [
        (["--topology", topology, "--node", "gamma"], r"--node gamma: .* has no such node \(it has: alpha, beta\)"),
        (["--topology", topology], r"--topology and --node go together"),
        (["--node", "alpha"], r"--topology and --node go together"),
        (["--topology", topology, "--node", "alpha", "--peer", "gamma=unix:/tmp/x.sock"],
         r"peer endpoint is given for 'gamma', which is not another node"),
        (["--topology", topology, "--node", "alpha", "--peer", "beta"], r"expected NAME=ENDPOINT"),
        (["--topology", topology, "--node", "alpha"], r"cannot dial node 'beta': its TCP port is 0"),
        (["--listen", f"unix:{tmp_path / 'x.sock'}", "--peer", "beta=tcp:127.0.0.1:1"], r"--peer needs --topology"),
    ]
    for args, message in cases:
        result = run_host(*args, "--duration", "5", timeout=30)
        assert result.returncode == 2, (args, result.stderr)
        assert re.search(message, result.stderr), (args, result.stderr)


def test_node_mode_warns_about_an_unknown_topology_key_and_strict_refuses_it(run_host, tmp_path):
    topology = tmp_path / "typo.toml"
    topology.write_text(f'socket_dir = "{tmp_path}"\n[[nodes]]\nname = "alpha"\nservice = ["a"]\n')
    text = "unknown key 'service' in [[nodes]], did you mean 'services'? (at line 4, column 1 of"
    loose = run_host("--topology", topology, "--node", "alpha", "--duration", "0.2", timeout=30)
    assert loose.returncode == 0, loose.stderr
    assert f"mycelium-host: warning: {text}" in loose.stderr
    strict = run_host("--topology", topology, "--node", "alpha", "--strict", "--duration", "0.2", timeout=30)
    assert strict.returncode == 2
    assert f"mycelium-host: error: {text}" in strict.stderr
