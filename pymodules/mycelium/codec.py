"""Mycelium's TLV framing helpers (`mycelium.codec`), for code that frames by hand.

A frame is a little-endian u16 type id, a u32 payload length, then the payload
(docs/wire-protocol.md, "Frames"). The transports use `_wire`; these names are the ones
Mycelium's SDK exported, with its rules: a type id in 0..65535 and at most 4 MiB of payload.
"""

from . import _wire

HEADER_SIZE = _wire.HEADER_SIZE
MAX_PAYLOAD_SIZE = _wire.MAX_PAYLOAD


def encode_frame(type_id, payload):
    """The frame of `payload` under `type_id`. ValueError for a type id outside
    0..65535 or a payload above MAX_PAYLOAD_SIZE."""
    if not 0 <= type_id <= 0xFFFF:
        raise ValueError(f"type_id {type_id} is outside 0..65535")
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise ValueError(f"a payload of {len(payload)} bytes is above MAX_PAYLOAD_SIZE ({MAX_PAYLOAD_SIZE})")
    return _wire.frame(type_id, bytes(payload))


def read_frame(sock):
    """Reads one frame from a blocking socket: (type_id, payload). ValueError for a
    header declaring more than MAX_PAYLOAD_SIZE (before any payload is read);
    ConnectionError when the stream ends inside a frame."""
    type_id, length = _wire.HEADER.unpack(_read_exactly(sock, HEADER_SIZE))
    if length > MAX_PAYLOAD_SIZE:
        raise ValueError(f"the far side declared a {length}-byte payload (limit {MAX_PAYLOAD_SIZE})")
    return type_id, _read_exactly(sock, length)


def _read_exactly(sock, length):
    buffer = bytearray(length)
    view = memoryview(buffer)
    got = 0
    while got < length:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError(f"the stream ended after {got} of {length} bytes of a frame")
        got += n
    return bytes(buffer)


__all__ = ["HEADER_SIZE", "MAX_PAYLOAD_SIZE", "encode_frame", "read_frame"]
