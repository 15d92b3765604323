"""Two mycelium-host processes on one host linked over shared-memory rings
(docs/wire-protocol.md, "Shared-memory setup"): traffic, SIGKILL of either side while
it flows, reconnect with fresh rings, nothing left behind."""

import os
import re
import signal
import time

from test_mesh import PUBLISHER, SUBSCRIBER, script, seen_of, start_node

SHM_LINE = r"frames go through shared memory now"



def hosts_entries_in_dev_shm():
    """/dev/shm's entries, but those other tests make there at the same time (the SDK's
    `/dev/shm/myc-test-*` socket folders of Mycelium's call shape): ctest runs the host and
    SDK suites side by side."""
    return {name for name in os.listdir("/dev/shm") if not name.startswith("myc-test-")}

def write_shm_topology(tmp_path, nodes, shm=True):
    lines = [f'socket_dir = "{tmp_path}"']
    for name, spec in nodes.items():
        lines += ["[[nodes]]", f'name = "{name}"', f'services = ["{name}-service"]']
        scripts = ", ".join(f'"{s}"' for s in spec.get("scripts", []))
        lines.append(f"scripts = [{scripts}]")
        lines += ["[nodes.shm]", f"enabled = {'true' if shm else 'false'}", "ring_bytes = 65536", "spin_us = 20"]
    path = tmp_path / "topology.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for_stderr(node, pattern, timeout=15, nth=1):
    return node.wait_for(pattern, timeout=timeout, stream="stderr", nth=nth)


def link_mappings(pid):
    with open(f"/proc/{pid}/maps") as maps:
        return sum("memfd:mycelium-link" in line for line in maps)


def wait_until(done, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_two_nodes_exchange_over_shared_memory(host_binary, tmp_path):
    pub = script(tmp_path, "pub.py", PUBLISHER, COUNT=50, ID=1)
    sub = script(tmp_path, "sub.py", SUBSCRIBER)
    topology = write_shm_topology(tmp_path, {"alpha": {"scripts": [pub]}, "beta": {"scripts": [sub]}})
    shm_before = hosts_entries_in_dev_shm()
    beta = start_node(host_binary, topology, "beta")
    alpha = start_node(host_binary, topology, "alpha")
    try:
        wait_for_stderr(alpha, r"peer 'beta': " + SHM_LINE)  # alpha dials: it asked for rings
        wait_for_stderr(beta, SHM_LINE)                       # beta made them
        beta.wait_for(r"^got 1 50$")
        assert link_mappings(alpha.proc.pid) == 2 and link_mappings(beta.proc.pid) == 2
    finally:
        alpha.stop()
        code, out, err = beta.stop()
    assert code == 0, err
    assert seen_of(out)["1"] == list(range(1, 51))
    assert hosts_entries_in_dev_shm() == shm_before


def test_a_node_with_shared_memory_disabled_keeps_the_unix_socket(host_binary, tmp_path):
    pub = script(tmp_path, "pub.py", PUBLISHER, COUNT=20, ID=1)
    sub = script(tmp_path, "sub.py", SUBSCRIBER)
    topology = write_shm_topology(tmp_path, {"alpha": {"scripts": [pub]}, "beta": {"scripts": [sub]}}, shm=False)
    beta = start_node(host_binary, topology, "beta")
    alpha = start_node(host_binary, topology, "alpha")
    try:
        beta.wait_for(r"^got 1 20$")
    finally:
        _, _, alpha_err = alpha.stop()
        code, out, err = beta.stop()
    assert code == 0, err
    assert seen_of(out)["1"] == list(range(1, 21))
    assert SHM_LINE not in err and SHM_LINE not in alpha_err


def test_sigkill_of_the_dialing_node_while_frames_flow_then_fresh_rings(host_binary, tmp_path):
    pub = script(tmp_path, "pub.py", PUBLISHER, COUNT=100000, ID=3)
    sub = script(tmp_path, "sub.py", SUBSCRIBER)
    topology = write_shm_topology(tmp_path, {"alpha": {"scripts": [pub]}, "beta": {"scripts": [sub]}})
    beta = start_node(host_binary, topology, "beta")
    alpha = start_node(host_binary, topology, "alpha")
    try:
        beta.wait_for(r"^got 3 5$")
        assert link_mappings(beta.proc.pid) == 2
        killed_at = time.monotonic()
        alpha.stop(sig=signal.SIGKILL)
        # The survivor sees the socket close at once and frees its rings.
        wait_for_stderr(beta, r"peer 'alpha' .*disconnected", timeout=5)
        assert time.monotonic() - killed_at < 2.0
        assert wait_until(lambda: link_mappings(beta.proc.pid) == 0)
        restarted = start_node(host_binary, topology, "alpha")
        try:
            wait_for_stderr(beta, SHM_LINE, nth=2)  # new rings for the new link
            beta.wait_for(r"^got 3 5$", timeout=15, nth=2)
        finally:
            restarted.stop()
    finally:
        alpha.stop()
        code, _, err = beta.stop()
    assert code == 0, err


def test_sigkill_of_the_accepting_node_while_frames_flow_then_redial(host_binary, tmp_path):
    pub = script(tmp_path, "pub.py", PUBLISHER, COUNT=100000, ID=4)
    sub = script(tmp_path, "sub.py", SUBSCRIBER)
    # alpha dials beta and publishes to it; beta (the ring maker) is the one killed.
    topology = write_shm_topology(tmp_path, {"alpha": {"scripts": [pub]}, "beta": {"scripts": [sub]}})
    beta = start_node(host_binary, topology, "beta")
    alpha = start_node(host_binary, topology, "alpha")
    try:
        beta.wait_for(r"^got 4 5$")
        beta.stop(sig=signal.SIGKILL)
        wait_for_stderr(alpha, r"peer 'beta': link to .* lost", timeout=5)
        assert wait_until(lambda: link_mappings(alpha.proc.pid) == 0)
        beta = start_node(host_binary, topology, "beta")
        wait_for_stderr(alpha, r"peer 'beta': " + SHM_LINE, nth=2)
        beta.wait_for(r"^got 4 ", timeout=15)
    finally:
        code, _, err = alpha.stop()
        beta.stop()
    assert code == 0, err
    assert re.search(r"peer 'beta': " + SHM_LINE, err)
