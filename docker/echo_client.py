#!/usr/bin/env python3
"""An out-of-process SDK client that drives scripts/examples/sdk_echo.py through a node.

    PYTHONPATH=pymodules:scripts/examples python3 docker/echo_client.py /run/mycelium/node.sock \
        --count 5 --bye

Connects to the node's Unix socket with the pure-Python SDK (retrying until --timeout,
since the node may still be starting), probes until the echo script answers (it may be
in the host, in a sidecar container or a supervised worker: the client cannot tell),
then sends --count TextMessages and checks that each comes back as the CounterUpdate the
script computes (counter_id = len(content), value = 2 * timestamp); with --bye it finally
sends "bye", which makes the script stop. docker/test-image.sh runs it on the machine
that runs the containers, against a socket in a mounted folder.

Prints what it checked; exit status 0 when every answer came back, 1 otherwise.
"""

import argparse
import sys
import time

import mycelium
from demo_messages import SCHEMA_DIGEST, CounterUpdate, TextMessage


def connect(path, deadline):
    while True:
        transport = mycelium.UnixTransport(path, SCHEMA_DIGEST, name="echo-client", connect_timeout=2.0)
        answers = transport.subscriber(CounterUpdate)
        try:
            transport.connect()
            return transport, answers
        except mycelium.TransportError as e:
            transport.close()
            if time.monotonic() > deadline:
                raise SystemExit(f"echo-client: FAIL: cannot connect to {path}: {e}")
            time.sleep(0.2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket", help="the node's Unix socket (a path, or unix:PATH)")
    parser.add_argument("--count", type=int, default=5, help="messages to send after the probe")
    parser.add_argument("--bye", action="store_true", help='finally send "bye" (stops sdk_echo.py)')
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole exchange")
    args = parser.parse_args()
    path = args.socket.removeprefix("unix:")
    deadline = time.monotonic() + args.timeout

    transport, answers = connect(path, deadline)
    print(f"echo-client: connected to unix:{path} (schema {SCHEMA_DIGEST.hex()[:16]}...)", flush=True)
    pub = transport.publisher(TextMessage)
    got = set()

    def wait_for(done, resend=None):
        """Receives answers until done() is true (True) or the deadline passes (False);
        calls resend() every 0.5 s meanwhile."""
        last = 0.0
        while not done():
            if time.monotonic() > deadline:
                return False
            if resend is not None and time.monotonic() - last > 0.5:
                resend()
                last = time.monotonic()
            try:
                msg = answers.recv(timeout=0.1)
            except mycelium.Timeout:
                continue
            got.add((msg.counter_id, msg.value))
        return True

    # Probe (timestamps 1, 2, ...) until the echo script is subscribed and answers.
    probes = []

    def probe():
        probes.append(len(probes) + 1)
        pub.publish(TextMessage(sender="probe", content="probe", timestamp=probes[-1]))
        transport.flush()

    if not wait_for(lambda: any((5, 2 * ts) in got for ts in probes), resend=probe):
        raise SystemExit(f"echo-client: FAIL: the echo script answered none of {len(probes)} probes")
    print(f"echo-client: the echo script answers (after {len(probes)} probe(s))", flush=True)

    started = time.monotonic()
    expected = set()
    for i in range(args.count):
        content, ts = f"message-{i}", 1_000_000 + i
        pub.publish(TextMessage(sender="echo-client", content=content, timestamp=ts))
        expected.add((len(content), 2 * ts))
    transport.flush()
    if not wait_for(lambda: expected <= got):
        missing = sorted(expected - got)
        raise SystemExit(f"echo-client: FAIL: {len(missing)} of {args.count} answers missing: {missing[:5]}")
    print(f"echo-client: {args.count} messages answered correctly in "
          f"{(time.monotonic() - started) * 1e3:.1f} ms", flush=True)

    if args.bye:
        ts = 2_000_000
        pub.publish(TextMessage(sender="echo-client", content="bye", timestamp=ts))
        transport.flush()
        if not wait_for(lambda: (3, 2 * ts) in got):
            raise SystemExit('echo-client: FAIL: no answer to "bye"')
        print('echo-client: "bye" answered', flush=True)
    transport.close()
    print("echo-client: OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
