"""One soak subscriber: a separate process that speaks the wire protocol by hand
(docs/wire-protocol.md: the digest handshake, HELLO, SUBSCRIBE CounterUpdate, PING) and
checks every producer's sequence.

    python3 consumer.py --connect unix:PATH --digest HEX --name NAME
                        [--slow-rate FRAMES_PER_S --slow-seconds S]

With --slow-rate it reads at most that many frames' worth of bytes per second for the
first S seconds (a deliberately slow consumer), then as fast as it can. It prints
`ready` once its PONG is back (it is subscribed), `received N` every 0.2 s, and at
SIGTERM or the end of the stream one JSON line: per counter_id the first and last value,
the count, the gaps (values skipped) and the values that came out of order or twice."""

import argparse
import json
import signal
import socket
import struct
import sys
import time

HEADER = struct.Struct("<HI")
HELLO, SUBSCRIBE, PING, PONG = 2, 3, 5, 6
COUNTER_UPDATE = 1002
COUNTER = struct.Struct("<I4xQ")  # a HELLO client gets the C layout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", required=True)
    parser.add_argument("--digest", required=True)
    parser.add_argument("--name", default="soak-consumer")
    parser.add_argument("--slow-rate", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=0.0)
    args = parser.parse_args()

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(args.connect.removeprefix("unix:"))
    digest = bytes.fromhex(args.digest)
    name = args.name.encode()
    hello = struct.pack("<BBH", 1, 0, len(name)) + name
    subscribe = struct.pack("<H", COUNTER_UPDATE)
    sock.sendall(struct.pack("<H", len(digest)) + digest + HEADER.pack(HELLO, len(hello)) + hello
                 + HEADER.pack(SUBSCRIBE, len(subscribe)) + subscribe + HEADER.pack(PING, 8) + struct.pack("<Q", 1))

    streams = {}  # counter_id -> [first, last, count, gaps, disorder]
    received = 0
    ready = False
    buffer = bytearray()
    slow_until = None
    frame_bytes = HEADER.size + COUNTER.size
    sock.settimeout(0.2)
    last_report = time.monotonic()
    ended = False
    while not stopping and not ended:
        budget = 1 << 20
        now = time.monotonic()
        if ready and slow_until is not None and now < slow_until:
            budget = max(frame_bytes, int(args.slow_rate * 0.01) * frame_bytes)
        try:
            chunk = sock.recv(budget)
            if not chunk:
                ended = True
            buffer += chunk
        except socket.timeout:
            pass
        except InterruptedError:
            pass
        at = 0
        while len(buffer) - at >= HEADER.size:
            type_id, length = HEADER.unpack_from(buffer, at)
            if len(buffer) - at < HEADER.size + length:
                break
            if type_id == COUNTER_UPDATE:
                counter_id, value = COUNTER.unpack_from(buffer, at + HEADER.size)
                s = streams.get(counter_id)
                if s is None:
                    streams[counter_id] = [value, value, 1, 0, 0]
                elif value > s[1]:
                    s[3] += value - s[1] - 1
                    s[1] = value
                    s[2] += 1
                else:
                    s[4] += 1
                    s[2] += 1
                received += 1
            elif type_id == PONG and not ready:
                ready = True
                if args.slow_rate > 0:
                    slow_until = time.monotonic() + args.slow_seconds
                print("ready", flush=True)
            at += HEADER.size + length
        del buffer[:at]
        if ready and slow_until is not None and time.monotonic() < slow_until:
            time.sleep(0.01)
        if time.monotonic() - last_report >= 0.2:
            print(f"received {received}", flush=True)
            last_report = time.monotonic()
    result = {str(k): {"first": v[0], "last": v[1], "count": v[2], "gaps": v[3], "disorder": v[4]}
              for k, v in streams.items()}
    print(json.dumps({"received": received, "ended": ended, "streams": result}), flush=True)
    sock.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
