"""Flow control per connection: a client that feeds a slow in-host callback is paused,
not the io thread, so every other client keeps being served; and nothing it sent is lost."""

import struct
import textwrap
import threading
import time


from wire import HostProcess, RawClient, counter_update

COUNTER_UPDATE = 1002
PING, PONG = 5, 6

SLOW_SCRIPT = """
import time
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate
seen = []

@mn.subscribe(CounterUpdate)
def slow(update):
    seen.append(update.value)
    time.sleep(0.001)          # a 1 ms model

@mn.on_stop
def report():
    ordered = seen == sorted(seen)
    print(f"callbacks {len(seen)} ordered {ordered} last {seen[-1] if seen else None}", flush=True)
"""


def ping(client, nonce, timeout=10.0):
    """One PING round trip; returns its seconds."""
    begun = time.monotonic()
    client.send(PING, struct.pack("<Q", nonce))
    while True:
        type_id, payload = client.recv(timeout)
        if type_id == PONG and struct.unpack("<Q", payload)[0] == nonce:
            return time.monotonic() - begun


def test_a_flooding_client_is_paused_and_the_others_are_served(host_binary, tmp_path, digest):
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(SLOW_SCRIPT))
    host = HostProcess(host_binary, "--script", script, "--listen", f"unix:{tmp_path / 'node.sock'}",
                       "--queue-capacity", "256", "--shutdown-timeout", "60")
    address = host.addresses[0]
    try:
        flooder = RawClient(address, digest, timeout=30)
        sent = 3000  # 3 s of work for the callback, far more than the queue holds
        done = threading.Event()

        def flood():
            batch = b"".join(struct.pack("<HI", COUNTER_UPDATE, 16) + counter_update(1, v) for v in range(sent))
            flooder.send_raw(batch)
            done.set()

        threading.Thread(target=flood, daemon=True).start()
        time.sleep(0.3)  # the Python queue is full by now

        other = RawClient(address, digest)
        worst_ping = max(ping(other, n) for n in range(1, 21))

        begun = time.monotonic()
        newcomer = RawClient(address, digest)
        ping(newcomer, 99)
        newcomer_seconds = time.monotonic() - begun

        # The flooder's own PING comes after everything it sent: its PONG proves all of it
        # reached the bus (docs/wire-protocol.md).
        assert done.wait(30)
        ping(flooder, 7, timeout=60)
        code, out, err = host.stop(timeout=60)
    finally:
        if host.proc.poll() is None:
            host.stop()
    assert code == 0, err
    assert worst_ping < 0.25, f"a PING round trip took {worst_ping * 1000:.0f} ms while another client flooded"
    assert newcomer_seconds < 0.25, f"a new client's connect + PONG took {newcomer_seconds * 1000:.0f} ms"
    assert f"callbacks {sent} ordered True last {sent - 1}" in out, out + err
