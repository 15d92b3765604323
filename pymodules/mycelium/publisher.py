"""Publisher: encodes messages of one class and hands the frames to its transport."""

import struct

from . import _wire
from ._classes import name_of, size_of, type_id_of
from .errors import NotAMessageError, ValidationError, validation_error_from

# What a value can raise while a message packs itself (a str where a number goes, an int
# where a str goes, out of range): reported as ValidationError.
_ENCODE_ERRORS = (ValueError, TypeError, OverflowError, AttributeError, struct.error)


class Publisher:
    """`publish(msg)` encodes `msg` (validating it) and queues its frame on the transport.

    Raises `ValidationError` for a message that breaks a rule or does not encode (nothing
    is sent), `NotAMessageError` (a TypeError and a ValueError) for an object of another class, and the transport's errors
    (`TransportError` while disconnected, `SchemaMismatch`, `ClosedError`).

    Made by `transport.publisher(cls)`. `Publisher(message_cls, sender)`, Mycelium's own
    signature, works too: `sender(frame)` gets each whole frame (header and payload) as
    bytes.

    Thread safety: distinct objects safe; one publisher may be shared by threads.
    """

    __slots__ = ("_cls", "_write", "_type_id", "_size", "_header", "_max_payload")

    def __init__(self, message_cls, sender, max_payload=_wire.MAX_PAYLOAD):
        """Mycelium's signature: `sender(frame: bytes)` is called once per message."""
        self._setup(message_cls, lambda header, payload: sender(header + payload), max_payload)

    @classmethod
    def _writing_to(cls, message_cls, write, max_payload=_wire.MAX_PAYLOAD):
        """A publisher that calls `write(header, payload)`: a transport's queue takes both
        parts without joining them first."""
        publisher = cls.__new__(cls)
        publisher._setup(message_cls, write, max_payload)
        return publisher

    def _setup(self, message_cls, write, max_payload):
        self._cls = message_cls
        self._write = write
        self._type_id = type_id_of(message_cls)
        self._size = size_of(message_cls)
        # The header of a fixed-size message never changes: pack it once.
        self._header = None if self._size is None else _wire.HEADER.pack(self._type_id, self._size)
        self._max_payload = max_payload

    @property
    def message_cls(self):
        return self._cls

    def publish(self, message):
        if type(message) is not self._cls and not isinstance(message, self._cls):
            raise NotAMessageError(f"publisher for {name_of(self._cls)} received {type(message).__name__}")
        try:
            payload = message.to_bytes()
        except _ENCODE_ERRORS as e:
            raise validation_error_from(message, e) from e
        if len(payload) == self._size:
            self._write(self._header, payload)
            return
        self._write(self._odd_header(payload), payload)

    def _odd_header(self, payload):
        """The header of a payload whose size the class did not declare (or got wrong)."""
        name = name_of(self._cls)
        if self._size is not None:
            # The host would close the connection over it (size_mismatch): refuse here.
            raise ValidationError(name, "*", "size",
                                  f"to_bytes() returned {len(payload)} bytes, the message is {self._size}")
        if len(payload) > self._max_payload:
            raise ValidationError(name, "*", "size",
                                  f"{len(payload)} bytes is above the frame limit of {self._max_payload}")
        return _wire.HEADER.pack(self._type_id, len(payload))


__all__ = ["Publisher"]
