#!/usr/bin/python3
"""bench_check: `mycelium-host check --topology FILE` on large topologies (issue 16 item 4:
2,400 nodes once took minutes and most of a gigabyte).

Entries, one per size (1,000, 2,500 and 5,000 nodes, written by tests/bench/gen_topology.py:
a quarter of the nodes on this host, the rest on remote hosts of ten nodes each):

- check.topology_<N>_nodes (ms): the wall time of one `check` process, from spawn to exit,
  stdout to /dev/null (above 100 nodes check prints its summary). Samples: 9 runs (3 with
  --quick), each the same file. p99 is the worst run (nearest rank). `peak_rss_mb` is the
  largest peak resident set of those runs (os.wait4's ru_maxrss for that child alone).
  Floor: `check` of a one-node topology, interleaved with the runs: what starting the
  binary and loading any topology costs.

Target: 5,000 nodes in under 2 s (median); the other sizes are reported.
Convention: docs/benchmarks.md.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import gen_topology  # noqa: E402

SIZES = (1000, 2500, 5000)
TARGETS = {5000: "< 2000"}


def log(text):
    print(f"bench_check: {text}", file=sys.stderr, flush=True)


def host_binary():
    if os.environ.get("MYCELIUM_HOST"):
        return pathlib.Path(os.environ["MYCELIUM_HOST"])
    build = pathlib.Path(os.environ.get("MYCELIUM_BUILD_DIR", REPO / "build"))
    binary = build / "host" / "app" / "mycelium-host"
    if not binary.exists():
        log(f"building mycelium-host in {build}")
        subprocess.run(["cmake", "--build", str(build), "--target", "mycelium-host", "-j", str(os.cpu_count() or 2)],
                       check=True, stdout=sys.stderr)
    return binary


def timed_check(binary, topology):
    """(milliseconds, peak RSS in MiB) of one `check` run; raises if it does not exit 0."""
    started = time.perf_counter()
    proc = subprocess.Popen([str(binary), "check", "--topology", str(topology)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = (time.perf_counter() - started) * 1e3
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"check {topology} exited {proc.returncode}: {err[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def entry(nodes, samples, floor_samples, rss):
    ordered = sorted(samples)
    med = statistics.median(samples)
    floor_med = statistics.median(floor_samples)
    return {"name": f"check.topology_{nodes}_nodes", "unit": "ms", "median": round(med, 3),
            "p99": round(ordered[min(len(ordered) - 1, -(-99 * len(ordered) // 100) - 1)], 3),
            "floor": "check of a one-node topology (process start and one load), interleaved",
            "floor_median": round(floor_med, 3), "ratio": round(med / floor_med, 3) if floor_med else 0.0,
            "target": TARGETS.get(nodes, "report"), "peak_rss_mb": round(max(rss), 1)}


def main():
    runs = 3 if "--quick" in sys.argv[1:] else 9
    binary = host_binary()
    entries = []
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        one = pathlib.Path(tmp) / "one.toml"
        one.write_text(gen_topology.topology(1, tmp))
        timed_check(binary, one)  # warm the page cache and the dynamic loader
        for nodes in SIZES:
            path = pathlib.Path(tmp) / f"n{nodes}.toml"
            path.write_text(gen_topology.topology(nodes, tmp))
            timed_check(binary, path)  # warm-up
            samples, floor, rss = [], [], []
            for _ in range(runs):
                floor.append(timed_check(binary, one)[0])
                ms, mb = timed_check(binary, path)
                samples.append(ms)
                rss.append(mb)
            entries.append(entry(nodes, samples, floor, rss))
            log(f"{nodes} nodes: median {statistics.median(samples):.1f} ms, worst {max(samples):.1f} ms, "
                f"peak RSS {max(rss):.1f} MiB")
    print(json.dumps(entries, indent=1))


if __name__ == "__main__":
    main()
