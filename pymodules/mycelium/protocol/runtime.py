"""The runtime Mycelium-generated message modules import (see the package docstring).

Such a module lists each message's fields with their encoders (`Primitive.U64`,
`FixedBytes(20)`, `FixedStr(32)`, `FixedVecBytes(element_size, capacity)`). The bytes
on the wire are the message's C layout, Rust's `repr(C)`, as this host and Mycelium's
Rust side lay it out: each field at its alignment, zero padding between fields, and the
size rounded up to the largest alignment. (Mycelium's own runtime packed fields back to
back, so a message with padding did not match its Rust struct.) Each generated class
gets `TYPE_ID`, `to_bytes()` and `from_bytes()`, which is all the SDK's transports need.
"""

import struct

__all__ = ["FieldDef", "FixedBytes", "FixedStr", "FixedVecBytes", "MessageDef", "Primitive", "get_message_definition",
           "register_message"]

_HEADER_SIZE = 8  # a FixedStr's or FixedVec's u16 length, then 6 zero bytes
_U16 = struct.Struct("<H")


def _round_up(value, alignment):
    return (value + alignment - 1) // alignment * alignment


class FieldType:
    """A field's encoder: `size` and `align` (its C layout), `encode(value, buffer, offset)`
    into a zeroed buffer, `decode(view, offset) -> value`."""

    size = 0
    align = 1

    def encode(self, value, buffer, offset):
        raise NotImplementedError

    def decode(self, view, offset):
        raise NotImplementedError


class PrimitiveField(FieldType):
    def __init__(self, fmt):
        self._struct = struct.Struct(fmt)
        self.size = self.align = self._struct.size

    def encode(self, value, buffer, offset):
        self._struct.pack_into(buffer, offset, value)

    def decode(self, view, offset):
        return self._struct.unpack_from(view, offset)[0]


class FixedBytesField(FieldType):
    """`[u8; N]`, and Mycelium's U256 (32 bytes, big-endian): alignment 1."""

    def __init__(self, length):
        self.size = length

    def encode(self, value, buffer, offset):
        data = bytes(value)
        if len(data) != self.size:
            raise ValueError(f"expected {self.size} bytes, got {len(data)}")
        buffer[offset:offset + self.size] = data

    def decode(self, view, offset):
        return bytes(view[offset:offset + self.size])


class FixedStrField(FieldType):
    """u16 length, 6 zero bytes, `capacity` bytes of UTF-8, zero-padded to alignment 2."""

    align = 2

    def __init__(self, capacity):
        self.capacity = capacity
        self.size = _round_up(_HEADER_SIZE + capacity, self.align)

    def encode(self, value, buffer, offset):
        data = value.encode("utf-8")
        if len(data) > self.capacity:
            raise ValueError(f"string exceeds capacity {self.capacity}")
        _U16.pack_into(buffer, offset, len(data))
        start = offset + _HEADER_SIZE
        buffer[start:start + len(data)] = data

    def decode(self, view, offset):
        length = _U16.unpack_from(view, offset)[0]
        if length > self.capacity:
            raise ValueError(f"string length {length} exceeds capacity {self.capacity}")
        start = offset + _HEADER_SIZE
        return bytes(view[start:start + length]).decode("utf-8")


class FixedVecBytesField(FieldType):
    """u16 count, 6 zero bytes, `capacity` elements of `element_size` bytes (ints for
    size 1, as `Vec<u8>`; bytes otherwise, as `Vec<[u8; N]>`), zero-filled to alignment 2."""

    align = 2

    def __init__(self, element_size, capacity):
        self.element_size = element_size
        self.capacity = capacity
        self.size = _round_up(_HEADER_SIZE + element_size * capacity, self.align)

    def encode(self, value, buffer, offset):
        if len(value) > self.capacity:
            raise ValueError(f"vector exceeds capacity {self.capacity}: attempted {len(value)}")
        _U16.pack_into(buffer, offset, len(value))
        start = offset + _HEADER_SIZE
        for index, element in enumerate(value):
            at = start + index * self.element_size
            if self.element_size == 1:
                buffer[at] = int(element) & 0xFF
            else:
                chunk = bytes(element)
                if len(chunk) != self.element_size:
                    raise ValueError(f"element {index} must be {self.element_size} bytes, got {len(chunk)}")
                buffer[at:at + self.element_size] = chunk

    def decode(self, view, offset):
        count = _U16.unpack_from(view, offset)[0]
        if count > self.capacity:
            raise ValueError(f"vector count {count} exceeds capacity {self.capacity}")
        start = offset + _HEADER_SIZE
        if self.element_size == 1:
            return list(view[start:start + count])
        return [bytes(view[start + i * self.element_size:start + (i + 1) * self.element_size]) for i in range(count)]


class _Primitives:
    U8 = PrimitiveField("<B")
    U16 = PrimitiveField("<H")
    U32 = PrimitiveField("<I")
    U64 = PrimitiveField("<Q")
    I8 = PrimitiveField("<b")
    I16 = PrimitiveField("<h")
    I32 = PrimitiveField("<i")
    I64 = PrimitiveField("<q")
    F32 = PrimitiveField("<f")
    F64 = PrimitiveField("<d")
    BOOL = PrimitiveField("<?")


Primitive = _Primitives()


def FixedBytes(length):  # noqa: N802 - Mycelium's name
    return FixedBytesField(length)


def FixedStr(capacity):  # noqa: N802
    return FixedStrField(capacity)


def FixedVecBytes(element_size, capacity):  # noqa: N802
    return FixedVecBytesField(element_size, capacity)


class FieldDef:
    __slots__ = ("name", "field_type")

    def __init__(self, name, field_type):
        self.name = name
        self.field_type = field_type


class MessageDef:
    """A message: name, type id, topic, fields, and the class instances are made of.
    `offsets`, `size` and `align` are its C layout."""

    def __init__(self, name, type_id, topic, fields, dataclass):
        self.name = name
        self.type_id = type_id
        self.topic = topic
        self.fields = tuple(fields)
        self.dataclass = dataclass
        offsets = []
        end = 0
        self.align = 1
        for field in self.fields:
            field_type = field.field_type
            offset = _round_up(end, field_type.align)
            offsets.append(offset)
            end = offset + field_type.size
            self.align = max(self.align, field_type.align)
        self.offsets = tuple(offsets)
        self.size = _round_up(end, self.align)
        self._placed = tuple((field.name, field.field_type, offset) for field, offset in zip(self.fields, offsets))

    def encode(self, obj):
        buffer = bytearray(self.size)  # zeroed: padding and unused capacity stay zero
        for name, field_type, offset in self._placed:
            field_type.encode(getattr(obj, name), buffer, offset)
        return bytes(buffer)

    def decode(self, cls, payload):
        if len(payload) != self.size:
            raise ValueError(f"payload size mismatch: expected {self.size}, got {len(payload)}")
        view = memoryview(payload)
        return cls(**{name: field_type.decode(view, offset) for name, field_type, offset in self._placed})


_BY_TYPE_ID = {}


def register_message(definition):
    if definition.type_id in _BY_TYPE_ID:
        raise ValueError(f"duplicate message type {definition.type_id}")
    _BY_TYPE_ID[definition.type_id] = definition


def get_message_definition(type_id):
    return _BY_TYPE_ID[type_id]
