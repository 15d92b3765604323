"""The pieces a transport is made of: the routes table (_routes.py)."""

import queue

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
