"""Shutdown never loses an accepted message silently (docs/reliability.md, "Shutdown").

A client numbers its CounterUpdates and follows every batch with a PING whose nonce is
the batch's last number: a PONG proves the host has accepted everything up to it
(docs/wire-protocol.md). At SIGTERM the host stops reading, answers ERROR shutting_down,
and drains what it accepted into the in-host script; if the shutdown timeout runs out
first it names what was not delivered, per type, and exits 1."""

import re
import signal
import struct
import threading
import time

from wire import HostProcess, RawClient, counter_update

COUNTER_UPDATE = 1002
HELLO, PING, PONG, ERROR = 2, 5, 6, 1
SHUTTING_DOWN = 10
FRAME = struct.Struct("<HI")

# The script records every value it is given, in order, and prints how many it saw and
# the longest prefix 0, 1, 2, ... without a gap.
RECORDING_SCRIPT = """
import time
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate
seen = []

@mn.subscribe(CounterUpdate)
def on_update(update):
    seen.append(update.value)
    time.sleep({callback_seconds})

@mn.on_stop
def report():
    prefix = 0
    while prefix < len(seen) and seen[prefix] == prefix:
        prefix += 1
    print(f"seen {{len(seen)}} prefix {{prefix}}", flush=True)
"""


class NumberedProducer:
    """Sends CounterUpdate value 0, 1, 2, ... at `rate` per second in batches, each
    followed by PING(last value); records the highest value a PONG covered and the ERROR
    the host closed with."""

    def __init__(self, address, digest, rate=5000, batch=50):
        self.client = RawClient(address, digest, timeout=30)
        name = b"numbered"
        self.client.send(HELLO, struct.pack("<BBH", 1, 0, len(name)) + name)
        self.rate, self.batch = rate, batch
        self.sent = 0
        self.covered = -1
        self.error = None
        self.read_failure = None
        self.closed = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True),
                         threading.Thread(target=self._read, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _send(self):
        interval = self.batch / self.rate
        next_at = time.monotonic()
        while not self.closed.is_set():
            values = range(self.sent, self.sent + self.batch)
            data = b"".join(FRAME.pack(COUNTER_UPDATE, 16) + counter_update(1, v) for v in values)
            data += FRAME.pack(PING, 8) + struct.pack("<Q", values[-1])
            try:
                self.client.send_raw(data)
            except OSError:
                return  # the host closed, or stopped reading for 30 s
            self.sent += self.batch
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _read(self):
        try:
            while True:
                frame = self.client.recv(timeout=60)
                if frame is None:
                    break
                type_id, payload = frame
                if type_id == PONG:
                    self.covered = max(self.covered, struct.unpack("<Q", payload)[0])
                elif type_id == ERROR:
                    self.error = struct.unpack_from("<H", payload)[0]
        except OSError as e:
            self.read_failure = e
        self.closed.set()

    def wait_closed(self, timeout):
        assert self.closed.wait(timeout), "the host did not close the producer's connection"
        for thread in self._threads:
            thread.join(timeout=5)
        self.client.close()


def start_host(host_binary, tmp_path, callback_seconds, *flags):
    script = tmp_path / "recorder.py"
    script.write_text(RECORDING_SCRIPT.format(callback_seconds=callback_seconds))
    return HostProcess(host_binary, "--script", script, "--listen", f"unix:{tmp_path / 'node.sock'}", *flags)


def seen_and_prefix(stdout):
    match = re.search(r"seen (\d+) prefix (\d+)", stdout)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


def test_sigterm_drains_every_accepted_message_into_the_script_and_exits_0(host_binary, tmp_path, digest):
    host = start_host(host_binary, tmp_path, 0.001, "--queue-capacity", "1024")
    producer = NumberedProducer(host.addresses[0], digest)
    time.sleep(3)
    host.proc.send_signal(signal.SIGTERM)
    producer.wait_closed(timeout=30)
    code, out, err = host.stop(timeout=30)

    assert producer.covered > 2000, f"too few PONGs before SIGTERM: {producer.covered}"
    assert producer.error == SHUTTING_DOWN, err
    seen, prefix = seen_and_prefix(out)
    # Everything a PONG covered was accepted, so the script saw it, in order, no gap.
    assert prefix > producer.covered, f"accepted up to {producer.covered}, the script saw {prefix}: {err}"
    assert seen == prefix, "a value was seen out of order or twice"
    assert code == 0, err
    assert "not delivered" not in err


def test_a_drain_cut_short_by_the_timeout_names_what_was_lost_and_exits_1(host_binary, tmp_path, digest):
    # 4,096 queued at 5 ms each take 20 s; the drain has 1 s (half the shutdown timeout).
    host = start_host(host_binary, tmp_path, 0.005, "--shutdown-timeout", "2")
    producer = NumberedProducer(host.addresses[0], digest, rate=20000, batch=200)
    deadline = time.monotonic() + 20
    while producer.covered < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    host.proc.send_signal(signal.SIGTERM)
    producer.wait_closed(timeout=30)
    code, out, err = host.stop(timeout=30)

    assert producer.covered >= 2000, err
    assert code == 1, err
    match = re.search(r"(\d+) accepted messages? not delivered: CounterUpdate (\d+)", err)
    assert match, err
    undelivered = int(match.group(2))
    assert int(match.group(1)) == undelivered
    seen, prefix = seen_and_prefix(out)
    assert seen == prefix
    # The ones the script saw and the ones named as lost add up to what was accepted:
    # at least everything a PONG covered, at most what was sent.
    assert producer.covered + 1 <= seen + undelivered <= producer.sent, err


def test_a_script_thread_publishing_at_shutdown_gets_closed_error_and_loses_nothing(host_binary, tmp_path):
    # Every publish that returned normally reaches the callback; from the stop on, the
    # script's own thread is told (ClosedError) instead of publishing into nowhere.
    script = tmp_path / "threaded.py"
    script.write_text("""
import threading
import mycelium_native as mn
from mycelium_native import ClosedError
from mycelium_native.messages import CounterUpdate
received = []
outcome = {"published": 0, "closed": None}

@mn.subscribe(CounterUpdate)
def on_update(update):
    received.append(update.value)

def produce():
    try:
        while True:
            mn.publish(CounterUpdate(counter_id=2, value=outcome["published"]))
            outcome["published"] += 1
    except ClosedError as e:
        outcome["closed"] = str(e)

producer = threading.Thread(target=produce)
producer.start()

@mn.on_stop
def report():
    producer.join(5)
    in_order = received == list(range(len(received)))
    print(f"published {outcome['published']} received {len(received)} in order {in_order}", flush=True)
    print(f"closed: {outcome['closed']}", flush=True)
""")
    host = HostProcess(host_binary, "--script", script, "--duration", "1.5", listens=0)
    code, out, err = host.stop(timeout=30, sig=0)
    assert code == 0, err
    match = re.search(r"published (\d+) received (\d+) in order (\w+)", out)
    assert match, out + err
    published = int(match.group(1))
    assert published > 1000
    assert match.group(3) == "True"
    # A publish that passed the check just before the stop is still queued when on_stop
    # runs, and is delivered after it: the host's count of callbacks is the total.
    callbacks = re.search(r"python callbacks\s+(\d+)", out)
    assert callbacks and int(callbacks.group(1)) == published, out
    assert "closed: publish CounterUpdate: the host is shutting down" in out
