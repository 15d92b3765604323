"""Soak driver: N client processes x M msg/s x T s through one mycelium-host node whose
in-host script checks every client's sequence (docs/reliability.md, "Soak and faults").

    /usr/bin/python3 tests/soak/soak.py --clients 8 --rate 10000 --seconds 600 --policy block
    /usr/bin/python3 tests/soak/soak.py --clients 8 --rate 10000 --seconds 600 --policy drop_oldest

The node (a topology node: its Unix socket, TCP on 127.0.0.1:0, shared memory, /metrics
on port 0) runs CHECKER, which counts per client the values it gets, the gaps and the
values out of order. The clients are producer.py processes, over unix, tcp and shm in
turn, each publishing CounterUpdate(counter_id=its id, value=0, 1, ...) and ending with a
PONG that proves the host accepted all of it. consumer.py subscribes over the Unix
socket and checks the same sequences after a second hop (host -> client):

- `block` (the clients' slow-consumer policy, wait 60 s): the script and the consumer
  each get every value of every client, once, in order.
- `drop_oldest` with a 256-frame send queue and a consumer that reads slowly for most of
  the run: the script still gets everything (the in-host queue always blocks); the
  consumer's values are in order, and what it misses is exactly what /metrics counts in
  mycelium_link_client_dropped_frames_total for it.

Every interval (1 s; --sample) it samples the host's VmRSS and open descriptors. Memory
is bounded when no sample after the warm-up (the first third of the run) exceeds the
largest sample of the warm-up by more than 10 % + 8 MiB; descriptors must come back to
their level before the clients came once they have left. The summary is one JSON object
on stdout; the exit status is 1 when any check failed, and the failures are listed."""

import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "python" / "host"))

from test_slow_consumer import metric  # noqa: E402
from wire import HostProcess  # noqa: E402

PYTHON = sys.executable
TRANSPORTS = ("unix", "tcp", "shm")
RSS_MARGIN_FRACTION, RSS_MARGIN_KB = 0.10, 8 * 1024

# The in-host script: counts per counter_id, prints `stats {...}` twice a second and
# `final {...}` at the stop, and publishes a TextMessage tick every 50 ms, which shows a
# client that subscribes to it is served.
CHECKER = """
import json
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate, TextMessage

streams = {}   # counter_id -> [first, last, count, gaps, disorder]
ticks = [0]

@mn.subscribe(CounterUpdate)
def on_update(update):
    value = update.value
    s = streams.get(update.counter_id)
    if s is None:
        streams[update.counter_id] = [value, value, 1, 0, 0]
    elif value > s[1]:
        s[3] += value - s[1] - 1
        s[1] = value
        s[2] += 1
    else:
        s[4] += 1
        s[2] += 1

def snapshot():
    return json.dumps({str(k): dict(zip(("first", "last", "count", "gaps", "disorder"), v))
                       for k, v in streams.items()})

@mn.every(0.5)
def report():
    print("stats " + snapshot(), flush=True)

@mn.every(0.05)
def tick():
    ticks[0] += 1
    mn.publish(TextMessage(sender="checker", content="tick", timestamp=ticks[0]))

@mn.on_stop
def final():
    print("final " + snapshot(), flush=True)
"""


# ---- what the host holds: /proc probes ------------------------------------------------

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def ring_mappings(pid):
    """Mappings of the host's shared-memory rings (memfds named mycelium-link-in/out)."""
    with open(f"/proc/{pid}/maps") as maps:
        return sum("memfd:mycelium-link" in line for line in maps)


def zombie_children(pid):
    """Children of `pid` that exited and were not reaped."""
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            zombies.append(int(entry))
    return zombies


def dev_shm_entries():
    """/dev/shm's names, but the SDK tests' `myc-test-*` folders (ctest runs them alongside)."""
    return {name for name in os.listdir("/dev/shm") if not name.startswith("myc-test-")}


def wait_until(done, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class Sampler(threading.Thread):
    """Samples (seconds since start, VmRSS kB, open fds) of `pid` every `interval`."""

    def __init__(self, pid, interval=1.0):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples = []
        self.started = time.monotonic()
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                self.samples.append((time.monotonic() - self.started, rss_kb(self.pid), fd_count(self.pid)))
            except (FileNotFoundError, ProcessLookupError):
                return
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)


def memory_check(samples, begin, end):
    """(warm-up max kB, later max kB, bound kB, ok) over the samples in [begin, end]:
    the warm-up is the first third of that window."""
    window = [s for s in samples if begin <= s[0] <= end]
    split = begin + (end - begin) / 3
    warm = [s[1] for s in window if s[0] < split]
    later = [s[1] for s in window if s[0] >= split]
    if not warm or not later:
        return None, None, None, True
    bound = int(max(warm) * (1 + RSS_MARGIN_FRACTION) + RSS_MARGIN_KB)
    return max(warm), max(later), bound, max(later) <= bound


# ---- processes ------------------------------------------------------------------------

def write_topology(folder, nodes):
    """nodes: {name: options}; options: scripts, tcp (listen on 127.0.0.1:0), shm,
    metrics, link_capacity, client_policy, wait_ms, workers ([{name, script, args, ...}])."""
    lines = [f'socket_dir = "{folder}"']
    for name, spec in nodes.items():
        lines += ["[[nodes]]", f'name = "{name}"', f'services = ["{name}-service"]',
                  "scripts = [" + ", ".join(f'"{s}"' for s in spec.get("scripts", [])) + "]"]
        if spec.get("tcp"):
            lines.append('bind = "127.0.0.1:0"')
        if spec.get("metrics", True):
            lines.append('metrics = "127.0.0.1:0"')
        if spec.get("link_capacity"):
            lines += ["[nodes.queues]", f"link_capacity = {spec['link_capacity']}"]
        if spec.get("client_policy"):
            lines += ["[nodes.slow_consumer]", f'client = "{spec["client_policy"]}"',
                      f"wait_ms = {spec.get('wait_ms', 1000)}"]
        if spec.get("shm"):
            lines += ["[nodes.shm]", "enabled = true"]
        for worker in spec.get("workers", []):
            lines.append("[[nodes.workers]]")
            for key, value in worker.items():
                lines.append(f"{key} = {json.dumps(value)}")
    path = pathlib.Path(folder) / "topology.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_node(host_binary, topology, node, listens=1):
    host = HostProcess(host_binary, "--topology", topology, "--node", node, listens=listens, timeout=30)
    host.url = host.wait_for(r"^metrics on http://", timeout=30).split("metrics on ", 1)[1].strip()
    return host


def start_producer(address, digest, messages, client_id, rate, seconds=0.0, ticks=False, name=None):
    """A producer.py process (a HostProcess: its output is collected); `address` is
    unix:PATH, tcp:HOST:PORT or shm:PATH. Waits until it streams."""
    args = [HERE / "producer.py", "--connect", address, "--digest", digest.hex(), "--messages", messages,
            "--id", client_id, "--rate", rate, "--seconds", seconds]
    if ticks:
        args.append("--ticks")
    if name:
        args += ["--name", name]
    proc = HostProcess(PYTHON, *args, listens=0)
    try:
        proc.wait_for(r"streaming as ", timeout=30)
    except AssertionError:
        _, _, err = proc.stop()
        raise AssertionError(f"producer {client_id} over {address} did not start: {err[-2000:]}") from None
    return proc


def start_consumer(address, digest, name, slow_rate=0.0, slow_seconds=0.0):
    proc = HostProcess(PYTHON, HERE / "consumer.py", "--connect", address, "--digest", digest.hex(),
                       "--name", name, "--slow-rate", slow_rate, "--slow-seconds", slow_seconds, listens=0)
    try:
        proc.wait_for(r"^ready$", timeout=30)
    except AssertionError:
        _, _, err = proc.stop()
        raise AssertionError(f"consumer {name} did not start: {err[-2000:]}") from None
    return proc


def last_json(proc, prefix=""):
    """The last stdout line starting with `prefix` that holds a JSON object, decoded."""
    for line in reversed(proc.lines("stdout")):
        if line.startswith(prefix + "{"):
            return json.loads(line[len(prefix):])
    return None


def checker_stats(host, prefix="stats "):
    return last_json(host, prefix) or {}


def received_so_far(consumer):
    for line in reversed(consumer.lines("stdout")):
        match = re.fullmatch(r"received (\d+)", line)
        if match:
            return int(match.group(1))
    return 0


def codegen_messages(host_binary, folder):
    path = pathlib.Path(folder) / "soak_messages.py"
    subprocess.run([str(host_binary), "codegen", "--contracts", REPO / "scripts" / "contracts.yaml",
                    "--python", path], check=True, timeout=60, capture_output=True)
    return path


def schema_digest(host_binary):
    result = subprocess.run([str(host_binary), "schema", "--contracts", REPO / "scripts" / "contracts.yaml",
                             "--json"], check=True, timeout=60, capture_output=True, text=True)
    return bytes.fromhex(json.loads(result.stdout)["digest"])


# ---- the soak -------------------------------------------------------------------------

def run_soak(host_binary, folder, clients=3, rate=2000.0, seconds=8.0, policy="block", sample=1.0,
             digest=None, messages=None, slow_rate=1500.0, link_capacity=256):
    """Runs one soak and returns its summary; summary["failures"] lists what went wrong."""
    folder = pathlib.Path(folder)
    digest = digest or schema_digest(host_binary)
    messages = messages or codegen_messages(host_binary, folder)
    checker = folder / "checker.py"
    checker.write_text(CHECKER)
    node = {"scripts": [checker], "tcp": True, "shm": True, "client_policy": policy}
    if policy == "block":
        node["wait_ms"] = 60000  # the consumer is a Python reader on a shared machine: let it lag
    else:
        node["link_capacity"] = link_capacity
    topology = write_topology(folder, {"soak": node})
    failures = []
    shm_before = dev_shm_entries()
    host = start_node(host_binary, topology, "soak", listens=2)
    sampler = Sampler(host.proc.pid, sample)
    processes = []
    try:
        unix = next(a for a in host.addresses if a.startswith("unix:"))
        tcp = next(a for a in host.addresses if a.startswith("tcp:"))
        addresses = {"unix": unix, "tcp": tcp, "shm": "shm:" + unix[len("unix:"):]}
        time.sleep(0.5)  # the script's first timers have run
        fds_before = fd_count(host.proc.pid)
        sampler.start()
        consumer_name = f"soak-consumer-{policy}"
        consumer = start_consumer(unix, digest, consumer_name,
                                  slow_rate=slow_rate if policy == "drop_oldest" else 0.0,
                                  slow_seconds=seconds * 0.8 if policy == "drop_oldest" else 0.0)
        processes.append(consumer)
        stream_begin = time.monotonic() - sampler.started
        producers = []
        for index in range(clients):
            kind = TRANSPORTS[index % len(TRANSPORTS)]
            producers.append(start_producer(addresses[kind], digest, messages, index + 1, rate, seconds))
        processes += producers
        fds_streaming = fd_count(host.proc.pid)
        results = {}
        for index, producer in enumerate(producers):
            producer.proc.wait(timeout=seconds + 120)
            result = last_json(producer)
            if producer.proc.returncode != 0 or result is None:
                failures.append(f"producer {index + 1} failed: {producer.lines('stderr')[-5:]}")
                continue
            results[str(result["id"])] = result
        stream_end = time.monotonic() - sampler.started
        sent = {k: r["sent"] for k, r in results.items()}
        total = sum(sent.values())

        def script_has_all():
            stats = checker_stats(host)
            return all(stats.get(k, {}).get("count", -1) >= n for k, n in sent.items())

        if not wait_until(script_has_all, timeout=120):
            failures.append(f"the script did not get every value within 120 s: {checker_stats(host)}")
        dropped_of = lambda: metric(host.url, "mycelium_link_client_dropped_frames_total", client=consumer_name)
        if not wait_until(lambda: received_so_far(consumer) + dropped_of() >= total, timeout=120):
            failures.append(f"the consumer got {received_so_far(consumer)} + {dropped_of()} dropped of {total}")
        time.sleep(0.3)  # a value beyond `total` would show now
        dropped = int(dropped_of())
        disconnected = metric(host.url, "mycelium_link_disconnects_total", reason="slow_consumer")
        consumer.stop(timeout=10)
        seen = last_json(consumer) or {"received": 0, "streams": {}, "ended": None}
        fds_back = wait_until(lambda: fd_count(host.proc.pid) <= fds_before, timeout=15)
        fds_after = fd_count(host.proc.pid)
        sampler.stop()
        code, _, err = host.stop(timeout=30)
        final = checker_stats(host, "final ")

        # What the script saw: under either policy, every value of every client, once, in order.
        for k, n in sent.items():
            s = final.get(k)
            if s != {"first": 0, "last": n - 1, "count": n, "gaps": 0, "disorder": 0}:
                failures.append(f"script: client {k} sent {n}, the script saw {s}")
        if set(final) - set(sent):
            failures.append(f"script: streams nobody sent: {sorted(set(final) - set(sent))}")
        # What the consumer saw after a second hop.
        streams = seen["streams"]
        if policy == "block":
            for k, n in sent.items():
                s = streams.get(k)
                if s != {"first": 0, "last": n - 1, "count": n, "gaps": 0, "disorder": 0}:
                    failures.append(f"consumer (block): client {k} sent {n}, it saw {s}")
            if dropped != 0:
                failures.append(f"block: {dropped} frames counted as dropped")
        else:
            missed = 0
            for k, n in sent.items():
                s = streams.get(k, {"first": n, "last": n - 1, "count": 0, "gaps": 0, "disorder": 0})
                if s["disorder"] != 0 or s["last"] != n - 1:
                    failures.append(f"consumer (drop_oldest): client {k} sent {n}, it saw {s}")
                missed += n - s["count"]
            if missed != dropped:
                failures.append(f"drop_oldest: the consumer missed {missed} values, /metrics counts {dropped} drops")
            if dropped == 0:
                failures.append("drop_oldest: the consumer never fell behind (nothing dropped): the test tested nothing")
        if set(streams) - set(sent):
            failures.append(f"consumer: streams nobody sent: {sorted(set(streams) - set(sent))}")
        if seen.get("ended") is not False or disconnected != 0:
            failures.append(f"the consumer was disconnected (ended {seen.get('ended')}, slow_consumer {disconnected})")
        if code != 0:
            failures.append(f"host exit {code}: {err[-2000:]}")
        warm_max, later_max, bound, memory_ok = memory_check(sampler.samples, stream_begin, stream_end)
        if not memory_ok:
            failures.append(f"memory grew: {later_max} kB after the warm-up > bound {bound} kB "
                            f"(warm-up max {warm_max} kB)")
        if not fds_back:
            failures.append(f"descriptors: {fds_after} after the clients left, {fds_before} before")
        if dev_shm_entries() != shm_before:
            failures.append(f"/dev/shm changed: {sorted(dev_shm_entries() ^ shm_before)}")
        leftovers = sorted(p.name for p in folder.glob("*.sock"))
        if leftovers:
            failures.append(f"socket files left behind: {leftovers}")

        rss = [s[1] for s in sampler.samples]
        duration = max((r["seconds"] for r in results.values()), default=0.0)
        return {
            "policy": policy, "clients": clients, "rate_per_client": rate, "seconds": seconds,
            "transports": [TRANSPORTS[i % len(TRANSPORTS)] for i in range(clients)],
            "messages_sent": total, "achieved_rate": round(total / duration) if duration else 0,
            "script_received": sum(s.get("count", 0) for s in final.values()),
            "consumer_received": seen["received"], "consumer_dropped_per_metrics": dropped,
            "rss_kb": {"min": min(rss, default=0), "max": max(rss, default=0), "warm_up_max": warm_max,
                       "after_warm_up_max": later_max, "bound": bound},
            "fds": {"before_clients": fds_before, "streaming": fds_streaming,
                    "max": max((s[2] for s in sampler.samples), default=0), "after_clients": fds_after},
            "samples": len(sampler.samples), "failures": failures,
        }
    finally:
        sampler.stop()
        for proc in processes:
            proc.stop(timeout=10)
        host.stop(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("MYCELIUM_HOST", REPO / "build" / "host" / "app" /
                                                          "mycelium-host"), help="the mycelium-host binary")
    parser.add_argument("--clients", type=int, default=int(os.environ.get("SOAK_CLIENTS", 3)), help="N")
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", 2000)),
                        help="M: messages/s per client")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 8)), help="T")
    parser.add_argument("--policy", choices=("block", "drop_oldest"), default="block")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between RSS/fd samples")
    parser.add_argument("--slow-rate", type=float, default=1500.0,
                        help="drop_oldest: frames/s the slow consumer reads for 80 %% of the run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="myc-soak-", dir="/tmp") as folder:
        summary = run_soak(pathlib.Path(args.host), folder, args.clients, args.rate, args.seconds, args.policy,
                           args.sample, slow_rate=args.slow_rate)
    print(json.dumps(summary, indent=2))
    sys.exit(1 if summary["failures"] else 0)


if __name__ == "__main__":
    main()
