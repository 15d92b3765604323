"""The kill -9 matrix (docs/reliability.md, "Soak and faults"): a supervised worker, a
peer node and a shared-memory client, each killed with SIGKILL while every client
streams numbered CounterUpdates into the in-host checker (soak.CHECKER). In each case the
survivor serves on (the other streams go on with no gap and no duplicate), nothing is
left behind (descriptors and ring mappings back to their level, no zombie child, no
socket file and no /dev/shm name after the stop), and the killed party's replacement
connects and is served both ways."""

import os
import signal

import soak
from soak import (CHECKER, checker_stats, dev_shm_entries, fd_count, last_json, ring_mappings, start_node,
                  start_producer, wait_until, write_topology, zombie_children)
from test_slow_consumer import hello_client, metric, sync
from test_workers import alive, started_pid

RATE = 1000  # per client, msg/s


def complete(n):
    """What the checker holds for a stream of n values, all delivered."""
    return {"first": 0, "last": n - 1, "count": n, "gaps": 0, "disorder": 0}


def is_prefix(stream):
    """A stream cut short by a kill: 0, 1, ..., last with nothing missing or repeated."""
    return (stream is not None and stream["first"] == 0 and stream["gaps"] == 0 and stream["disorder"] == 0
            and stream["count"] == stream["last"] + 1)


def count_of(host, key):
    return checker_stats(host).get(str(key), {}).get("count", 0)


def wait_for_count(host, key, at_least, timeout=30):
    assert wait_until(lambda: count_of(host, key) >= at_least, timeout=timeout), \
        f"stream {key}: {count_of(host, key)} values in the script after {timeout} s, wanted {at_least}"


def finish(producer, *hosts):
    """SIGTERM a producer (it syncs: the host has accepted all it sent) and wait until the
    checker of every host in `hosts` holds that many values; returns how many it sent."""
    producer.stop(timeout=60)
    result = last_json(producer)
    assert producer.proc.returncode == 0 and result is not None, producer.lines("stderr")[-10:]
    for host in hosts:
        wait_for_count(host, result["id"], result["sent"], timeout=60)
    return result["sent"]


def write_checker(folder):
    path = folder / "checker.py"
    path.write_text(CHECKER)
    return path


def test_a_worker_killed_mid_stream_is_restarted_and_receives_again(host_binary, digest, messages, sock_dir):
    checker = write_checker(sock_dir)
    worker = {"name": "w", "script": str(soak.HERE / "producer.py"),
              "args": ["--connect", "env", "--messages", str(messages), "--id", "pid", "--rate", str(RATE), "--ticks"],
              "restart": "on-failure", "backoff_initial_ms": 200}
    topology = write_topology(sock_dir, {"solo": {"scripts": [checker], "client_policy": "block", "wait_ms": 60000,
                                                  "workers": [worker]}})
    host = start_node(host_binary, topology, "solo")
    producers = []
    try:
        first = started_pid(host, "w")
        host.wait_for(rf"\[worker\.w\] {first} got tick", stream="stderr", timeout=30)
        other = start_producer(host.addresses[0], digest, messages, 1, RATE)
        producers.append(other)
        wait_for_count(host, first, 500)
        wait_for_count(host, 1, 500)
        fds_before = fd_count(host.proc.pid)

        os.kill(first, signal.SIGKILL)
        host.wait_for(r"worker 'w' .*signal 9 \(SIGKILL\); restarting in", stream="stderr", timeout=10)
        second = started_pid(host, "w", nth=2)
        host.wait_for(rf"worker 'w' \(pid {second}\) is ready", stream="stderr", timeout=30)
        host.wait_for(rf"\[worker\.w\] {second} got tick", stream="stderr", timeout=30)  # it receives again
        wait_for_count(host, second, 500)                                               # and publishes again
        at_kill = count_of(host, 1)
        wait_for_count(host, 1, at_kill + 500)                                          # the other flowed on
        assert not alive(first)
        assert zombie_children(host.proc.pid) == []
        assert wait_until(lambda: fd_count(host.proc.pid) == fds_before), (fd_count(host.proc.pid), fds_before)
        assert metric(host.url, "mycelium_worker_restarts_total", worker="w") == 1
        sent = finish(other, host)
    finally:
        for producer in producers:
            producer.stop()
        code, _, err = host.stop(timeout=30)
    assert code == 0, err
    final = checker_stats(host, "final ")
    assert final["1"] == complete(sent)
    assert is_prefix(final[str(first)]), final[str(first)]     # cut by the kill, nothing lost before it
    assert is_prefix(final[str(second)]), final[str(second)]
    assert not alive(second) and zombie_children(host.proc.pid) == []
    assert not list(sock_dir.glob("*.sock"))


def test_a_peer_node_killed_mid_stream_leaves_the_survivor_serving_and_the_link_comes_back(
        host_binary, digest, messages, sock_dir):
    checker = write_checker(sock_dir)
    node = {"scripts": [checker], "client_policy": "block", "wait_ms": 60000}
    topology = write_topology(sock_dir, {"alpha": node, "beta": node})
    shm_before = dev_shm_entries()
    beta = start_node(host_binary, topology, "beta")
    alpha = start_node(host_binary, topology, "alpha")
    nodes = [alpha, beta]
    producers = []
    try:
        def link_up(node, peer, up=1):
            return wait_until(lambda: metric(node.url, "mycelium_peer_up", peer=peer) == up, timeout=30)

        assert link_up(alpha, "beta") and link_up(beta, "alpha")
        on_alpha = start_producer(alpha.addresses[0], digest, messages, 1, RATE)
        on_beta = start_producer(beta.addresses[0], digest, messages, 2, RATE)
        producers += [on_alpha, on_beta]
        wait_for_count(alpha, 2, 500)  # beta -> alpha
        wait_for_count(beta, 1, 500)   # alpha -> beta
        fds_before = fd_count(alpha.proc.pid)

        beta.stop(sig=signal.SIGKILL)
        on_beta.stop(sig=signal.SIGKILL)  # its node is gone; it goes with it
        alpha.wait_for(r"peer 'beta': link to .* lost", stream="stderr", timeout=10)
        assert link_up(alpha, "beta", up=0)
        at_kill = count_of(alpha, 1)
        wait_for_count(alpha, 1, at_kill + 500)  # its own client flows on
        late = hello_client(alpha.addresses[0], digest, "late")  # and a new one is served
        sync(late, nonce=9)
        late.close()

        beta = start_node(host_binary, topology, "beta")  # over the dead node's socket file
        nodes.append(beta)
        assert link_up(alpha, "beta") and link_up(beta, "alpha")
        again = start_producer(beta.addresses[0], digest, messages, 3, RATE)
        producers.append(again)
        wait_for_count(alpha, 3, 500)  # beta -> alpha again
        wait_for_count(beta, 1, 500)   # alpha -> beta again
        assert wait_until(lambda: fd_count(alpha.proc.pid) == fds_before), (fd_count(alpha.proc.pid), fds_before)
        assert zombie_children(alpha.proc.pid) == []
        sent_1 = finish(on_alpha, alpha)
        assert wait_until(lambda: checker_stats(beta).get("1", {}).get("last") == sent_1 - 1, timeout=30)
        sent_3 = finish(again, beta, alpha)
    finally:
        for producer in producers:
            producer.stop()
        code, _, err = alpha.stop(timeout=30)
        for node in nodes[1:]:
            node.stop(timeout=30)
    assert code == 0, err
    final = checker_stats(alpha, "final ")
    assert final["1"] == complete(sent_1)
    assert is_prefix(final["2"]), final["2"]   # the dead node's stream, up to the kill
    assert final["3"] == complete(sent_3)       # the new node's, all of it, over the new link
    on_new_beta = checker_stats(beta, "final ")
    assert on_new_beta["3"] == complete(sent_3)
    joined = on_new_beta["1"]                   # alpha's stream from the new link on
    assert joined["gaps"] == 0 and joined["disorder"] == 0 and joined["last"] == sent_1 - 1, joined
    assert not list(sock_dir.glob("*.sock"))
    assert dev_shm_entries() == shm_before


def test_an_shm_client_killed_mid_stream_frees_its_rings_and_a_new_one_is_served(
        host_binary, digest, messages, sock_dir):
    checker = write_checker(sock_dir)
    topology = write_topology(sock_dir, {"shmnode": {"scripts": [checker], "shm": True, "client_policy": "block",
                                                     "wait_ms": 60000}})
    shm_before = dev_shm_entries()
    host = start_node(host_binary, topology, "shmnode")
    path = host.addresses[0][len("unix:"):]
    producers = []
    try:
        steady = start_producer(host.addresses[0], digest, messages, 1, RATE)
        producers.append(steady)
        wait_for_count(host, 1, 300)
        fds_before, maps_before = fd_count(host.proc.pid), ring_mappings(host.proc.pid)
        assert maps_before == 0

        victim = start_producer(f"shm:{path}", digest, messages, 2, RATE, ticks=True)
        producers.append(victim)
        victim.wait_for(r"got tick", timeout=30)
        wait_for_count(host, 2, 500)
        assert ring_mappings(host.proc.pid) == 2  # its two rings, one per direction
        victim.stop(sig=signal.SIGKILL)
        assert wait_until(lambda: ring_mappings(host.proc.pid) == 0), ring_mappings(host.proc.pid)
        assert wait_until(lambda: fd_count(host.proc.pid) == fds_before), (fd_count(host.proc.pid), fds_before)
        at_kill = count_of(host, 1)
        wait_for_count(host, 1, at_kill + 500)  # the other client flows on

        newcomer = start_producer(f"shm:{path}", digest, messages, 3, RATE, ticks=True)
        producers.append(newcomer)
        newcomer.wait_for(r"got tick", timeout=30)  # it receives
        assert ring_mappings(host.proc.pid) == 2
        sent_3 = finish(newcomer, host)
        assert wait_until(lambda: ring_mappings(host.proc.pid) == 0)
        assert wait_until(lambda: fd_count(host.proc.pid) == fds_before), (fd_count(host.proc.pid), fds_before)
        sent_1 = finish(steady, host)
        assert zombie_children(host.proc.pid) == []
    finally:
        for producer in producers:
            producer.stop()
        code, _, err = host.stop(timeout=30)
    assert code == 0, err
    final = checker_stats(host, "final ")
    assert final["1"] == complete(sent_1)
    assert is_prefix(final["2"]), final["2"]
    assert final["3"] == complete(sent_3)
    assert dev_shm_entries() == shm_before
    assert not list(sock_dir.glob("*.sock"))
