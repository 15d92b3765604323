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
