"""The pieces a transport is made of: the routes table (_routes.py), the reconnect
schedule (_connection.Backoff), and the declared sink interface (add_sink / remove_sink)
on a real host, over the socket channel and the ring channel alike."""

import queue

import pytest

from sdk_helpers import CONTRACTS, ECHO_SCRIPT, address_of, wait_until, write_script

import mycelium
from mycelium._connection import Backoff
from mycelium._routes import NOT_ALONE, Routes


class Sink:
    """What a transport hands messages to: `_push(msg)`, `_fail(exc)`."""

    def __init__(self):
        self.messages = queue.SimpleQueue()
        self.failure = None

    def _push(self, message):
        self.messages.put(message)

    def _fail(self, exc):
        self.failure = exc


def test_routes_say_when_a_type_must_be_declared_and_undeclared(messages):
    routes = Routes(lambda: "test")
    a, b = Sink(), Sink()
    assert routes.add(messages.CounterUpdate, a) is True  # first of its type: SUBSCRIBE
    assert routes.add(messages.CounterUpdate, b) is False
    assert routes.type_ids() == [messages.CounterUpdate.TYPE_ID]
    assert routes.remove(messages.CounterUpdate, a) is False  # b still receives it
    assert routes.remove(messages.CounterUpdate, a) is False  # not routed any more: nothing to say
    assert routes.remove(messages.CounterUpdate, b) is True  # the last one: UNSUBSCRIBE
    assert routes.type_ids() == [] and routes.sinks() == []


def test_routes_decode_once_per_class_and_skip_what_does_not_decode(messages, caplog):
    routes = Routes(lambda: "test")
    a, b, other = Sink(), Sink(), Sink()
    routes.add(messages.CounterUpdate, a)
    routes.add(messages.CounterUpdate, b)
    routes.add(messages.TextMessage, other)
    message = messages.CounterUpdate(counter_id=7, value=8)
    routes.deliver(messages.CounterUpdate.TYPE_ID, message.to_bytes())
    assert a.messages.get_nowait() == message and b.messages.get_nowait() == message
    assert other.messages.empty()
    routes.deliver(messages.CounterUpdate.TYPE_ID, b"\x01")  # too short to decode
    assert routes.decode_errors == 1 and "did not decode" in caplog.text
    assert a.messages.empty()
    routes.deliver(64999, b"")  # a type nobody subscribes to is dropped
    assert routes.decode_errors == 1


def test_a_sink_is_alone_only_while_no_other_sink_shares_its_type(messages):
    routes = Routes(lambda: "test")
    a, b = Sink(), Sink()
    routes.add(messages.CounterUpdate, a)
    type_id, cls, _ = routes.alone(a)
    assert (type_id, cls) == (messages.CounterUpdate.TYPE_ID, messages.CounterUpdate)
    routes.add(messages.CounterUpdate, b)
    assert routes.alone(a) is NOT_ALONE and routes.alone(b) is NOT_ALONE
    routes.remove(messages.CounterUpdate, a)
    assert routes.alone(b)[0] == messages.CounterUpdate.TYPE_ID


def test_backoff_doubles_to_its_maximum_and_restarts_after_a_stable_connection():
    backoff = Backoff(0.1, 1.0, stable=1.0, draw=lambda low, high: (low, high))
    assert [backoff.next_delay() for _ in range(6)] == [
        (0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 0.8), (0.5, 1.0), (0.5, 1.0)]
    backoff.restart(lived=0.5)  # died young: the delays keep growing from where they were
    assert backoff.next_delay() == (0.5, 1.0)
    backoff.restart(lived=1.0)
    assert backoff.next_delay() == (0.05, 0.1)


def test_backoff_draws_each_delay_between_half_and_all_of_it():
    backoff = Backoff(0.2, 0.2)
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.1 <= d <= 0.2 for d in delays)
    assert len(set(delays)) > 1  # jitter: not one fixed delay
    assert Backoff(0.5, 0.1).maximum == 0.5  # a maximum below the start is the start


@pytest.mark.parametrize("kind", ["unix", "shm"])
def test_a_sink_added_through_the_declared_interface_gets_the_hosts_frames(start_host, sock_dir, messages, digest,
                                                                          kind):
    script = write_script(sock_dir, "echo.py", ECHO_SCRIPT)
    if kind == "shm":
        topology = sock_dir / "topology.toml"
        topology.write_text(f'socket_dir = "{sock_dir}"\ncontracts = "{CONTRACTS}"\n[[nodes]]\nname = "node"\n'
                            f'services = ["s"]\nscripts = ["{script}"]\n[nodes.shm]\nenabled = true\n')
        start_host("--topology", topology, "--node", "node")
        t = mycelium.SharedMemoryTransport(sock_dir / "node.sock", digest)
    else:
        host = start_host("--script", script, "--listen", f"unix:{sock_dir / 'echo.sock'}")
        t = mycelium.UnixTransport(address_of(host, "unix")[5:], digest)
    sink = Sink()
    t.add_sink(messages.CounterUpdate, sink)
    t.connect()
    assert kind != "shm" or t.shm_active
    t.publish(messages.TextMessage(sender="sdk", content="abcd", timestamp=21))
    assert sink.messages.get(timeout=10) == messages.CounterUpdate(counter_id=4, value=42)
    t.remove_sink(messages.CounterUpdate, sink)
    t.sync()  # the UNSUBSCRIBE is in effect
    t.publish(messages.TextMessage(sender="sdk", content="ab", timestamp=1))
    t.sync()
    with pytest.raises(queue.Empty):
        sink.messages.get(timeout=0.2)
    t.close()
    assert sink.failure is None  # removed before the close: not failed with the others
    wait_until(lambda: not t.connected, what="the close")
