#!/usr/bin/env python3
"""Health check of the mycelium-host image (HEALTHCHECK in docker/Dockerfile).

Finds this container's mycelium-host process in /proc, reads its flags, and checks:

- its Prometheus endpoint (--metrics, else the node's `metrics` in --topology) answers
  GET /metrics with 200 and the host's own metrics;
- every Unix socket it serves (--listen unix:PATH, the node's socket in node mode)
  exists and is a socket.

It never connects to the node's socket: a connection that closes without a handshake
is logged by the host as a warning, and a probe every few seconds would fill the log.
Without a mycelium-host process (a sidecar running `python3 worker.py`) it checks that
the socket in MYCELIUM_SOCKET exists. Prints one line; exit status 0 healthy, 1 not.
"""

import os
import stat
import sys
import urllib.request
from pathlib import Path

TIMEOUT_S = 3.0


def find_host():
    """(pid, argv, cwd) of the oldest mycelium-host process running a node, or None."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path("/proc", entry, "cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        if not argv or os.path.basename(argv[0]) != "mycelium-host":
            continue
        # Tools (check, pub, tap, ...) are not the node.
        if len(argv) > 1 and not argv[1].startswith("-"):
            continue
        found.append((int(entry), argv, cwd))
    return min(found) if found else None


def flag_values(argv, name):
    """Values of --name VALUE and --name=VALUE, in order."""
    values = []
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith(name + "="):
            values.append(arg[len(name) + 1:])
    return values


def node_table(topology, node):
    import tomllib

    with open(topology, "rb") as f:
        spec = tomllib.load(f)
    for table in spec.get("nodes", []):
        if table.get("name") == node:
            return spec, table
    return spec, None


def node_socket(topology, node):
    """The node's Unix socket by the SDK's rules (the host's), else by hand."""
    try:
        from mycelium import Topology

        return str(Topology.load(topology).socket_path(node))
    except Exception:  # the SDK is on PYTHONPATH in the image; this is the fallback
        spec, table = node_table(topology, node)
        if table is None:
            return None
        endpoint = table.get("endpoint") or {}
        if endpoint.get("kind") == "unix":
            path = endpoint.get("addr", "")
        else:
            path = os.path.join(spec.get("socket_dir", "/tmp/mycelium"), f"{node}.sock")
        return os.path.join(os.path.dirname(topology), path)


def probe_url(address):
    """http://HOST:PORT/metrics for a listen address; the wildcard becomes loopback."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if port in ("", "0"):
        return None  # port 0: the host picked one; nothing to aim at
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/metrics"


def check_metrics(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
    if b"mycelium_" not in body:
        raise RuntimeError(f"{url}: no mycelium_ metrics in the answer")


def check_socket(path):
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise RuntimeError(f"{path}: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path}: not a socket")


def main():
    checked, failed = [], []

    def run(what, fn, arg):
        try:
            fn(arg)
            checked.append(what)
        except Exception as e:  # any failure is an unhealthy container, said in one line
            failed.append(f"{what}: {e}")

    host = find_host()
    if host is None:
        endpoint = os.environ.get("MYCELIUM_SOCKET", "")
        if endpoint.startswith("unix:") or endpoint.startswith("/"):
            path = endpoint.removeprefix("unix:")
            run(f"socket {path}", check_socket, path)
        else:
            print("healthy: no mycelium-host process here and no MYCELIUM_SOCKET to check")
            return 0
    else:
        pid, argv, cwd = host
        topology = (flag_values(argv, "--topology") or [None])[-1]
        node = (flag_values(argv, "--node") or [None])[-1]
        if topology:
            topology = os.path.join(cwd, topology)
        metrics = (flag_values(argv, "--metrics") or [None])[-1]
        if metrics is None and topology and node:
            try:
                metrics = (node_table(topology, node)[1] or {}).get("metrics")
            except Exception as e:
                failed.append(f"topology {topology}: {e}")
        if metrics:
            url = probe_url(metrics)
            if url:
                run(url, check_metrics, url)
        sockets = [e.removeprefix("unix:") for e in flag_values(argv, "--listen") if e.startswith("unix:")]
        if topology and node:
            path = node_socket(topology, node)
            if path:
                sockets.append(path)
        for path in sockets:
            path = os.path.join(cwd, path)
            run(f"socket {path}", check_socket, path)
        if not checked and not failed:
            print(f"healthy: mycelium-host (pid {pid}) runs; no metrics endpoint or socket to probe")
            return 0

    if failed:
        print("unhealthy: " + "; ".join(failed))
        return 1
    print("healthy: " + ", ".join(checked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
