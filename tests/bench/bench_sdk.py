#!/usr/bin/python3
"""bench_sdk: the pure-Python SDK (pymodules/mycelium) against a real mycelium-host, with
pyzmq measured in the same run as the peer (convention: docs/benchmarks.md).

Entries (32-byte messages: four u64 fields, from a contracts file written to a temp dir):

- sdk.unix_publish_32B (M msg/s): an SDK publisher (this process) -> a mycelium-host over
  Unix. A repetition publishes N messages (`publish(msg)` encodes and validates each), then
  `sync()`s: the host has taken every frame off the socket, decoded it in C++ and published
  it on its bus. The host's own counter (`mycelium_bus_published_total`, read from its
  /metrics) must have grown by exactly N. Peer: pyzmq PUSH -> PULL over ipc, the sender
  packing the same four u64 per message with a precompiled struct, the receiver a Python
  process calling recv() N times.
- sdk.shm_publish_32B (M msg/s): the same over shared memory (SharedMemoryTransport to a
  node with `[nodes.shm] enabled`); reported: each publish goes into the ring at once.
- sdk.{shm,unix,tcp}_one_way_32B (ns): Python -> host -> Python ping-pong, halved: this
  process publishes a BenchPing, a second SDK process answers each with a BenchPong, both
  with a plain publish() (no flush(): the frame leaves by the write-coalescing rule;
  calling flush() measured within noise of it). A sample is the mean of a batch of round
  trips. Over shm both connect with SharedMemoryTransport to a node with
  `[nodes.shm] enabled` (its default spin, 50 us). Peer: pyzmq PAIR over ipc between two
  Python processes, same batches (one hop fewer: there is no host in the middle), with the
  echo process where the SDK's pong process is; the other placement is reported too
  (`peer_other_placement`).

Pinning: this process (publisher, ping) on CPU 0; the hosts, the pyzmq receivers and the
pong process on CPU 1, except over shm, where the pong process (and the peer's echo) share
CPU 0 and the node's spinning io thread has CPU 1.
"""

import json
import os
import pathlib
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "pymodules"))

import mycelium  # noqa: E402

CONTRACTS = """
messages:
  BenchPing:
    tlv_type: 1500
    fields: {seq: u64, a: u64, b: u64, ts: u64}
  BenchPong:
    tlv_type: 1501
    fields: {seq: u64, a: u64, b: u64, ts: u64}
"""

SHM_TOPOLOGY = """
socket_dir = "{dir}"
contracts = "{contracts}"
[[nodes]]
name = "bench"
services = ["bench"]
[nodes.shm]
enabled = true
"""

PONG = r"""
import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import mycelium
from bench_messages import SCHEMA_DIGEST, BenchPing, BenchPong
t = mycelium.endpoint.transport_for_endpoint(sys.argv[3], SCHEMA_DIGEST, name="pong")
sub = t.subscriber(BenchPing)
t.connect()
pub = t.publisher(BenchPong)
print("ready", flush=True)
pong = BenchPong()
while True:
    ping = sub.recv()
    if ping.a == 1:
        break
    pong.seq = ping.seq
    pub.publish(pong)
t.close()
"""

ZMQ_PULL = r"""
import sys, zmq
ctx = zmq.Context()
pull = ctx.socket(zmq.PULL); pull.bind(sys.argv[1])
ctl = ctx.socket(zmq.PAIR); ctl.bind(sys.argv[2])
print("ready", flush=True)
recv = pull.recv
while True:
    n = int(ctl.recv())
    if n == 0:
        break
    for _ in range(n):
        recv()
    ctl.send(b"done")
"""

ZMQ_PONG = r"""
import sys, zmq
ctx = zmq.Context()
pair = ctx.socket(zmq.PAIR); pair.bind(sys.argv[1])
print("ready", flush=True)
while True:
    m = pair.recv()
    if m == b"stop":
        break
    pair.send(m)
"""


def log(text):
    print(f"bench_sdk: {text}", file=sys.stderr, flush=True)


def pinned(cpu):
    if os.cpu_count() and cpu < os.cpu_count():
        return lambda: os.sched_setaffinity(0, {cpu})
    return None


def spawn(args, cpu=1, env=None, wait_for="ready", timeout=30):
    """Starts a process pinned to `cpu` and waits for its `wait_for` line on stdout."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=pinned(cpu))
    lines = []
    deadline = time.monotonic() + timeout

    def read():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not any(line.startswith(wait_for) for line in lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{args[0]} did not start: {proc.stderr.read()[-2000:]}")
        time.sleep(0.01)
    proc.lines = lines
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def host_binary():
    if os.environ.get("MYCELIUM_HOST"):
        return pathlib.Path(os.environ["MYCELIUM_HOST"])
    build = pathlib.Path(os.environ.get("MYCELIUM_BUILD_DIR", REPO / "build"))
    binary = build / "host" / "app" / "mycelium-host"
    if not binary.exists():  # the bench target does not build the host: build it here
        log(f"building mycelium-host in {build}")
        subprocess.run(["cmake", "--build", str(build), "--target", "mycelium-host", "-j", str(os.cpu_count() or 2)],
                       check=True, stdout=sys.stderr)
    return binary


def metric(url, name, type_name):
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and f'type="{type_name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def summary(name, unit, samples, floor, floor_samples, target, higher_is_better):
    med = statistics.median(samples)
    floor_med = statistics.median(floor_samples)
    ordered = sorted(samples)
    if higher_is_better:  # the slowest 1 % (nearest rank)
        p99 = ordered[max(0, -(-len(ordered) // 100) - 1)]
    else:
        p99 = ordered[min(len(ordered) - 1, -(-99 * len(ordered) // 100) - 1)]
    return {"name": name, "unit": unit, "median": round(med, 3), "p99": round(p99, 3), "floor": floor,
            "floor_median": round(floor_med, 3), "ratio": round(med / floor_med, 3) if floor_med else 0.0,
            "target": target}


def wanted(name):
    """Whether to run entry `name`: all of them, or those starting with `--only PREFIX`."""
    args = sys.argv[1:]
    only = args[args.index("--only") + 1] if "--only" in args[:-1] else ""
    return name.startswith(only)


def main():
    quick = "--quick" in sys.argv[1:]
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="myc-bench-sdk-", dir="/tmp"))
    procs = []
    try:
        binary = host_binary()
        contracts = tmp / "bench.yaml"
        contracts.write_text(CONTRACTS)
        subprocess.run([str(binary), "codegen", "--contracts", str(contracts), "--python", str(tmp / "bench_messages.py")],
                       check=True, stdout=sys.stderr)
        sys.path.insert(0, str(tmp))
        import bench_messages as m

        host = spawn([str(binary), "--contracts", str(contracts), "--listen", f"unix:{tmp / 'h.sock'}",
                      "--listen", "tcp:127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-level", "warn"],
                     wait_for="metrics on")
        procs.append(host)
        unix = next(line.split("listening on ", 1)[1] for line in host.lines if line.startswith("listening on unix:"))
        tcp = next(line.split("listening on ", 1)[1] for line in host.lines if line.startswith("listening on tcp:"))
        metrics_url = next(line.split("metrics on ", 1)[1] for line in host.lines if line.startswith("metrics on"))
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")

        # A node with shared memory enabled, for the shm entries (the --listen mode above
        # has no topology, so no [nodes.shm]).
        topology = tmp / "shm.toml"
        topology.write_text(SHM_TOPOLOGY.format(dir=tmp, contracts=contracts))
        node = spawn([str(binary), "--topology", str(topology), "--node", "bench", "--log-level", "warn",
                      "--metrics", "127.0.0.1:0"], wait_for="metrics on")
        procs.append(node)
        shm = "shm:" + str(tmp / "bench.sock")
        node_metrics = next(line.split("metrics on ", 1)[1] for line in node.lines if line.startswith("metrics on"))

        entries = []
        for kind, address, url in (("unix", unix, metrics_url), ("shm", shm, node_metrics)):
            if wanted(f"sdk.{kind}_publish_32B"):
                entries.append(publish_throughput(m, kind, address, url, tmp, env, quick))
        # Over shm the host's io thread spins: it gets CPU 1 to itself and both Python
        # processes share CPU 0 (three busy parties, two cores); pyzmq is measured with its
        # two processes on CPU 0 as well, and across the cores for reference.
        if wanted("sdk.shm_one_way_32B"):
            entries.append(round_trip(m, "shm", shm, tmp, env, quick, pong_cpu=0))
        for kind, address in (("unix", unix), ("tcp", tcp)):
            if wanted(f"sdk.{kind}_one_way_32B"):
                entries.append(round_trip(m, kind, address, tmp, env, quick))
        print(json.dumps(entries, indent=1))
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def publish_throughput(m, kind, address, metrics_url, tmp, env, quick):
    import zmq

    n = 200_000 if quick else 1_000_000
    reps = 3 if quick else 7
    t = mycelium.endpoint.transport_for_endpoint(address, m.SCHEMA_DIGEST, name="bench")
    t.connect()
    pub = t.publisher(m.BenchPing)
    msg = m.BenchPing(seq=0, a=2, b=3, ts=4)

    pull_at, ctl_at = f"ipc://{tmp}/pull-{kind}.ipc", f"ipc://{tmp}/ctl-{kind}.ipc"
    puller = spawn([sys.executable, "-c", ZMQ_PULL, pull_at, ctl_at], env=env)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(pull_at)
    ctl = ctx.socket(zmq.PAIR)
    ctl.connect(ctl_at)
    pack = struct.Struct("<QQQQ").pack

    sdk, peer = [], []
    try:
        for rep in range(reps):
            before = metric(metrics_url, "mycelium_bus_published_total", "BenchPing")
            publish = pub.publish
            started = time.perf_counter()
            for i in range(n):
                msg.seq = i
                publish(msg)
            t.sync(120)
            elapsed = time.perf_counter() - started
            counted = metric(metrics_url, "mycelium_bus_published_total", "BenchPing") - before
            if counted != n:
                raise RuntimeError(f"the host counted {counted} BenchPing, expected {n}")
            sdk.append(n / elapsed / 1e6)

            send = push.send
            ctl.send(str(n).encode())
            started = time.perf_counter()
            for i in range(n):
                send(pack(i, 2, 3, 4))
            ctl.recv()
            peer.append(n / (time.perf_counter() - started) / 1e6)
            log(f"{kind} publish rep {rep}: sdk {sdk[-1]:.2f} M msg/s, pyzmq {peer[-1]:.2f} M msg/s")
        ctl.send(b"0")
    finally:
        t.close()
        push.close(linger=0)
        ctl.close(linger=0)
        ctx.term()
        stop(puller)
    return summary(f"sdk.{kind}_publish_32B", "M msg/s", sdk,
                   "pyzmq 24 PUSH->PULL over ipc, Python sender packing 4 u64 per message, Python receiver",
                   peer, ">= 1 and >= peer" if kind == "unix" else "report", True)


WARM = 20  # untimed round trips before each sample (see round_trip)


def round_trip(m, kind, address, tmp, env, quick, pong_cpu=1):
    import zmq

    batch = 200 if quick else 1000
    samples_wanted = 10 if quick else 40
    pong = spawn([sys.executable, "-c", PONG, str(REPO / "pymodules"), str(tmp), address], cpu=pong_cpu, env=env)
    t = mycelium.endpoint.transport_for_endpoint(address, m.SCHEMA_DIGEST, name="ping")
    sub = t.subscriber(m.BenchPong)
    t.connect()
    pub = t.publisher(m.BenchPing)
    ping = m.BenchPing()

    zpong = spawn([sys.executable, "-c", ZMQ_PONG, f"ipc://{tmp}/pair-{kind}.ipc"], cpu=pong_cpu, env=env)
    ctx = zmq.Context()
    pair = ctx.socket(zmq.PAIR)
    pair.connect(f"ipc://{tmp}/pair-{kind}.ipc")
    # The other placement of the pyzmq echo process, reported beside the entry.
    other_cpu = 1 - pong_cpu if (os.cpu_count() or 1) > 1 else pong_cpu
    zother = spawn([sys.executable, "-c", ZMQ_PONG, f"ipc://{tmp}/other-{kind}.ipc"], cpu=other_cpu, env=env)
    other = ctx.socket(zmq.PAIR)
    other.connect(f"ipc://{tmp}/other-{kind}.ipc")
    payload = bytes(32)

    sdk, peer, peer_other = [], [], []
    try:
        for _ in range(20):  # warm-up: both paths, and the pong process is subscribed
            ping.seq += 1
            pub.publish(ping)
            sub.recv(timeout=30)
            pair.send(payload)
            pair.recv()
            other.send(payload)
            other.recv()
        def sdk_round_trips(n):
            for _ in range(n):
                ping.seq += 1
                pub.publish(ping)
                got = sub.recv(timeout=30)
                if got.seq != ping.seq:
                    raise RuntimeError(f"pong {got.seq} for ping {ping.seq}")

        def zmq_round_trips(sock, n):
            for _ in range(n):
                sock.send(payload)
                sock.recv()

        # Each path's sample starts after WARM round trips of its own: the paths take turns,
        # and the first round trips after a turn of the others wake parked threads (tens of
        # microseconds each on this VM), which would be charged to whichever path runs next.
        for _ in range(samples_wanted):
            for path, run in ((sdk, sdk_round_trips), (peer, lambda n: zmq_round_trips(pair, n)),
                              (peer_other, lambda n: zmq_round_trips(other, n))):
                run(WARM)
                started = time.perf_counter_ns()
                run(batch)
                path.append((time.perf_counter_ns() - started) / batch / 2)
        log(f"{kind} one-way: sdk median {statistics.median(sdk):.0f} ns, pyzmq {statistics.median(peer):.0f} ns "
            f"(echo on CPU {pong_cpu}), {statistics.median(peer_other):.0f} ns (echo on CPU {other_cpu})")
        ping.a = 1
        pub.publish(ping)
        t.flush()
        pair.send(b"stop")
        other.send(b"stop")
    finally:
        t.close()
        pair.close(linger=0)
        other.close(linger=0)
        ctx.term()
        try:
            pong.wait(timeout=10)  # it exits on the ping with a == 1
        except subprocess.TimeoutExpired:
            pass
        stop(pong)
        stop(zpong)
        stop(zother)
    if kind == "shm":
        floor = "pyzmq 24 PAIR over ipc, the two Python processes on CPU 0 as the SDK's (no host in between)"
        target = ">= 2x lower than the peer"
    else:
        floor = "pyzmq 24 PAIR over ipc, the echo process on CPU 1 as the SDK's (no host in between)"
        target = "report (the shared-memory path has the target)"
    entry = summary(f"sdk.{kind}_one_way_32B", "ns", sdk, floor, peer, target, False)
    entry["peer_other_placement"] = {"echo_cpu": other_cpu, "median": round(statistics.median(peer_other), 3)}
    return entry


if __name__ == "__main__":
    main()
