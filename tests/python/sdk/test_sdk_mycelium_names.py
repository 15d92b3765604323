"""The names Mycelium's SDK exported, used as Mycelium's code uses them."""

import socket
import struct

import pytest

import mycelium
from mycelium.codec import HEADER_SIZE, MAX_PAYLOAD_SIZE, encode_frame, read_frame


def test_codec_frames_round_trip_over_a_socket():
    assert HEADER_SIZE == 6 and MAX_PAYLOAD_SIZE == 4 * 1024 * 1024
    frame = encode_frame(1002, b"\x01" * 16)
    assert frame[:HEADER_SIZE] == struct.pack("<HI", 1002, 16)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(frame + encode_frame(0, b""))
        assert read_frame(b) == (1002, b"\x01" * 16)
        assert read_frame(b) == (0, b"")
        a.sendall(frame[:4])
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(ConnectionError, match="ended after 4 of 6 bytes"):
            read_frame(b)


def test_codec_refuses_what_the_wire_refuses():
    with pytest.raises(ValueError, match="outside 0..65535"):
        encode_frame(70000, b"")
    with pytest.raises(ValueError, match="above MAX_PAYLOAD_SIZE"):
        encode_frame(1000, bytes(MAX_PAYLOAD_SIZE + 1))
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack("<HI", 1000, MAX_PAYLOAD_SIZE + 1))
        with pytest.raises(ValueError, match="declared a 4194305-byte payload"):
            read_frame(b)


@pytest.mark.parametrize("name", ["MyceliumError", "TransportError", "ShmError", "SchemaMismatch",
                                  "ValidationError", "DecodeError", "QueueFull", "ClosedError", "TopologyError",
                                  "Timeout"])
def test_every_error_class_can_be_made_with_no_arguments_or_a_text(name):
    cls = getattr(mycelium, name)
    for error in (cls(), cls("what went wrong")):
        assert isinstance(error, Exception)
        with pytest.raises(cls):
            raise error
    assert str(cls("what went wrong")) == "what went wrong"


def test_validation_error_keeps_its_fields_when_made_by_the_sdk():
    error = mycelium.ValidationError("TradeTick", "price", "finite", "nan")
    assert (error.message, error.field, error.rule) == ("TradeTick", "price", "finite")
    assert isinstance(error, ValueError)


def test_endpoint_config_takes_a_kind_alone_or_as_text(tmp_path):
    assert mycelium.EndpointConfig(mycelium.EndpointKind.UNIX).addr is None
    assert mycelium.EndpointConfig("tcp", "127.0.0.1:9000").kind is mycelium.EndpointKind.TCP
    with pytest.raises(ValueError, match="bad endpoint kind 'udp'"):
        mycelium.EndpointConfig("udp")


def test_topology_validate_accepts_a_loaded_file(tmp_path):
    path = tmp_path / "topology.toml"
    path.write_text(f'socket_dir = "{tmp_path}"\n[[nodes]]\nname = "a"\nservices = ["s"]\n')
    topology = mycelium.Topology.load(path)
    assert topology.validate() is None


def test_unix_transport_takes_a_path_or_a_unix_endpoint(tmp_path):
    digest = bytes(32)
    assert mycelium.UnixTransport(str(tmp_path / "n.sock"), digest).path == str(tmp_path / "n.sock")
    assert mycelium.UnixTransport(f"unix:{tmp_path / 'n.sock'}", digest).path == str(tmp_path / "n.sock")
    assert mycelium.UnixTransport(tmp_path / "n.sock", digest).path == str(tmp_path / "n.sock")


def test_publisher_with_mycelium_signature_sends_whole_frames(messages):
    # Mycelium's Publisher(message_cls, sender): sender gets header and payload as one bytes.
    frames = []
    publisher = mycelium.Publisher(messages.CounterUpdate, frames.append)
    assert publisher.message_cls is messages.CounterUpdate
    message = messages.CounterUpdate(counter_id=3, value=9)
    publisher.publish(message)
    assert frames == [encode_frame(messages.CounterUpdate.TYPE_ID, message.to_bytes())]
    with pytest.raises(TypeError, match="publisher for CounterUpdate received str"):
        publisher.publish("not a message")
    assert len(frames) == 1


def test_subscriber_with_mycelium_signature_reads_its_queue(messages):
    # Mycelium's Subscriber(message_cls, message_queue): its owner fills the queue.
    import asyncio
    import queue

    q = queue.Queue()
    subscriber = mycelium.Subscriber(messages.CounterUpdate, q)
    assert subscriber.message_cls is messages.CounterUpdate
    with pytest.raises(queue.Empty):
        subscriber.recv_nowait()
    with pytest.raises(queue.Empty):
        subscriber.recv(timeout=0.01)
    q.put(messages.CounterUpdate(counter_id=1, value=2))
    assert subscriber.recv(timeout=1) == messages.CounterUpdate(counter_id=1, value=2)
    q.put(messages.CounterUpdate(counter_id=4, value=5))
    assert asyncio.run(subscriber.recv_async()) == messages.CounterUpdate(counter_id=4, value=5)
    subscriber.close()
    with pytest.raises(mycelium.ClosedError):
        subscriber.recv(timeout=1)


# Each callable Mycelium's SDK exports, with its parameters there (dawsh2/Mycelium,
# python-sdk/mycelium). Code written for Mycelium calls these positionally or by keyword.
MYCELIUM_SIGNATURES = [
    ("codec.encode_frame", ["type_id", "payload"]),
    ("codec.read_frame", ["sock"]),
    ("publisher.Publisher", ["message_cls", "sender"]),
    ("subscriber.Subscriber", ["message_cls", "message_queue"]),
    ("transport.UnixTransport", ["path", "schema_digest"]),
    ("transport.TcpTransport", ["host", "port", "schema_digest"]),
    ("shm_transport.SharedMemoryTransport.create", ["path", "schema_digest", "capacity"]),
    ("shm_transport.SharedMemoryTransport.open", ["path", "schema_digest"]),
    ("message_bus.MessageBus", ["topology", "service_name", "schema_digest"]),
    ("message_bus.MessageBus.from_topology", ["topology_path", "service_name", "schema_digest"]),
    ("message_bus.MessageBus.publisher_to", ["self", "target_service", "message_cls"]),
    ("message_bus.MessageBus.subscriber", ["self", "message_cls"]),
    ("topology.Topology", ["nodes", "socket_dir"]),
    ("topology.Topology.load", ["path"]),
    ("topology.Topology.find_node", ["self", "service_name"]),
    ("topology.Topology.same_node", ["self", "service1", "service2"]),
    ("topology.Topology.transport_between", ["self", "from_service", "to_service"]),
    ("topology.Topology.socket_path", ["self", "node_name"]),
    ("topology.Topology.connection_info", ["self", "target_service"]),
    ("topology.Node", ["name", "services", "host", "port", "endpoint"]),
    ("topology.EndpointConfig", ["kind", "addr"]),
    ("protocol.runtime.PrimitiveField", ["fmt"]),
    ("protocol.runtime.FixedBytes", ["length"]),
    ("protocol.runtime.FixedStr", ["capacity"]),
    ("protocol.runtime.FixedVecBytes", ["element_size", "capacity"]),
    ("protocol.runtime.FieldDef", ["name", "field_type"]),
    ("protocol.runtime.MessageDef", ["name", "type_id", "topic", "fields", "dataclass"]),
    ("protocol.runtime.register_message", ["definition"]),
    ("protocol.runtime.get_message_definition", ["type_id"]),
]


def _resolve(dotted):
    import importlib

    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module("mycelium." + ".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            target = getattr(target, name)
        return target
    raise ImportError(dotted)


@pytest.mark.parametrize("dotted, mycelium_params", MYCELIUM_SIGNATURES, ids=[s[0] for s in MYCELIUM_SIGNATURES])
def test_a_mycelium_callable_takes_mycelium_parameters_in_mycelium_order(dotted, mycelium_params):
    import inspect

    params = list(inspect.signature(_resolve(dotted)).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    named = {p.name: p for p in params}
    # Every one of Mycelium's parameters is here by its name; the leading ones keep their place.
    for place, name in enumerate(mycelium_params):
        assert name in named, f"{dotted} has no parameter '{name}'"
        if place < len(positional) and positional[place].name == name:
            continue
        # Only a parameter Mycelium's callers could not have passed positionally may move: a
        # trailing one with a default that is keyword here (create's `capacity`).
        assert named[name].default is not inspect.Parameter.empty, f"{dotted}: '{name}' moved from place {place}"
    # What this SDK adds can be left out: Mycelium's calls still bind.
    for p in params:
        if p.name in mycelium_params or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        assert p.default is not inspect.Parameter.empty, f"{dotted}: added parameter '{p.name}' has no default"


def test_mycelium_enums_and_constants_have_its_members():
    from mycelium import shm_transport, topology

    assert {m.name: m.value for m in topology.TransportType}.items() >= {
        "LOCAL": "local", "UNIX": "unix", "TCP": "tcp"}.items()
    assert {m.name: m.value for m in topology.EndpointKind} == {"TCP": "tcp", "UNIX": "unix"}
    assert issubclass(shm_transport.ShmError, Exception)
    from mycelium.protocol.runtime import Primitive

    for name, size in {"U8": 1, "U16": 2, "U32": 4, "U64": 8, "I32": 4, "F64": 8}.items():
        assert getattr(Primitive, name).size == size
