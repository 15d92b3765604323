"""One soak client: a separate process that publishes numbered CounterUpdates through the
repository's SDK (pymodules/mycelium) over one transport.

    python3 producer.py --connect unix:PATH|tcp:HOST:PORT|shm:PATH|env --digest HEX
                        --messages FILE --id N [--rate M] [--seconds T] [--name NAME] [--ticks]

It publishes CounterUpdate(counter_id=N, value=0, 1, 2, ...) at M messages/s (paced in
5 ms steps; a step that comes late sends everything that is due) for T seconds, or until
SIGTERM when T is 0. Then sync(): the PONG proves the host has accepted every value
(docs/wire-protocol.md). The last line on stdout is a JSON object: id, sent, seconds,
transport. `--connect env` connects as a supervised worker (MYCELIUM_SOCKET,
MYCELIUM_SCHEMA_DIGEST, MYCELIUM_SERVICE); `--id pid` uses the process id, so each
incarnation of a restarted worker has its own stream. `--ticks` subscribes to TextMessage
and prints `PID got tick N` for the first of them and every 20th after, which shows a
(re)started client receives."""

import argparse
import importlib.util
import json
import os
import pathlib
import signal
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "pymodules"))

import mycelium  # noqa: E402

STEP = 0.005


def load_messages(path):
    spec = importlib.util.spec_from_file_location("soak_messages", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak_messages"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def open_transport(where, digest, name):
    if where == "env":
        path = os.environ["MYCELIUM_SOCKET"]
        transport = mycelium.UnixTransport(path, os.environ["MYCELIUM_SCHEMA_DIGEST"],
                                           name=os.environ.get("MYCELIUM_SERVICE", name))
        transport.connect()
        return transport, "unix"
    kind, _, rest = where.partition(":")
    if kind == "unix":
        transport = mycelium.UnixTransport(rest, digest, name=name)
    elif kind == "tcp":
        host, port = rest.rsplit(":", 1)
        transport = mycelium.TcpTransport(host, int(port), digest, name=name)
    elif kind == "shm":
        transport = mycelium.SharedMemoryTransport.open(rest, digest, name=name)
        if not transport.shm_active:
            sys.exit(f"producer {name}: shared memory was not set up: {transport.stats()}")
        return transport, "shm"
    else:
        sys.exit(f"producer: unknown --connect {where!r}")
    transport.connect()
    return transport, kind


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", required=True)
    parser.add_argument("--digest", default=None)
    parser.add_argument("--messages", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--name", default=None)
    parser.add_argument("--ticks", action="store_true")
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    messages = load_messages(args.messages)
    counter_id = os.getpid() if args.id == "pid" else int(args.id)
    name = args.name or f"soak-{counter_id}"
    transport, kind = open_transport(args.connect, args.digest, name)

    if args.ticks:
        ticks = transport.subscriber(messages.TextMessage)

        def read_ticks():
            seen = 0
            while not stop.is_set():
                try:
                    msg = ticks.recv(timeout=0.5)
                except Exception:  # noqa: BLE001  (a timeout, or the transport closing)
                    continue
                if seen % 20 == 0:
                    print(f"{os.getpid()} got tick {msg.timestamp}", flush=True)
                seen += 1

        threading.Thread(target=read_ticks, daemon=True).start()
        transport.sync(timeout=30)

    publisher = transport.publisher(messages.CounterUpdate)
    make = messages.CounterUpdate
    print(f"{os.getpid()} streaming as {counter_id} over {kind}", flush=True)
    sent = 0
    started = time.monotonic()
    end = started + args.seconds if args.seconds > 0 else float("inf")
    while not stop.is_set():
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - started) * args.rate) + 1
        while sent < due:
            publisher.publish(make(counter_id=counter_id, value=sent))
            sent += 1
        time.sleep(STEP)
    elapsed = time.monotonic() - started
    transport.sync(timeout=120)  # everything above is accepted by the host
    print(json.dumps({"id": counter_id, "sent": sent, "seconds": round(elapsed, 3), "transport": kind}), flush=True)
    transport.close()


if __name__ == "__main__":
    main()
