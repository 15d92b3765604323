"""The runtime Mycelium-generated message modules import (see the package docstring).

Field encoders pack fields one after another with no padding, as Mycelium's generator
laid them out; `MessageDef.size` is the sum of the field sizes. Each generated class gets
`TYPE_ID`, `to_bytes()` and `from_bytes()`, which is all the SDK's transports need.
"""

import struct

__all__ = ["FieldDef", "FixedBytes", "FixedStr", "FixedVecBytes", "MessageDef", "Primitive", "get_message_definition",
           "register_message"]


class FieldType:
    """A field's encoder: `size`, `encode(value, buffer, offset) -> end`, `decode(view, offset) -> (value, end)`."""

    size = 0

    def encode(self, value, buffer, offset):
        raise NotImplementedError

    def decode(self, view, offset):
        raise NotImplementedError


class PrimitiveField(FieldType):
    def __init__(self, fmt):
        self._struct = struct.Struct(fmt)
        self.size = self._struct.size

    def encode(self, value, buffer, offset):
        self._struct.pack_into(buffer, offset, value)
        return offset + self.size

    def decode(self, view, offset):
        return self._struct.unpack_from(view, offset)[0], offset + self.size


class FixedBytesField(FieldType):
    def __init__(self, length):
        self.size = length

    def encode(self, value, buffer, offset):
        data = bytes(value)
        if len(data) != self.size:
            raise ValueError(f"expected {self.size} bytes, got {len(data)}")
        buffer[offset:offset + self.size] = data
        return offset + self.size

    def decode(self, view, offset):
        return bytes(view[offset:offset + self.size]), offset + self.size


_U16 = struct.Struct("<H")


class FixedStrField(FieldType):
    """u16 length, 6 zero bytes, `capacity` bytes of UTF-8, zero-padded."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.size = 8 + capacity

    def encode(self, value, buffer, offset):
        data = value.encode("utf-8")
        if len(data) > self.capacity:
            raise ValueError(f"string exceeds capacity {self.capacity}")
        _U16.pack_into(buffer, offset, len(data))
        buffer[offset + 2:offset + self.size] = bytes(6 + self.capacity)
        buffer[offset + 8:offset + 8 + len(data)] = data
        return offset + self.size

    def decode(self, view, offset):
        length = _U16.unpack_from(view, offset)[0]
        if length > self.capacity:
            raise ValueError(f"string length {length} exceeds capacity {self.capacity}")
        return bytes(view[offset + 8:offset + 8 + length]).decode("utf-8"), offset + self.size


class FixedVecBytesField(FieldType):
    """u16 count, 6 zero bytes, `capacity` elements of `element_size` bytes (ints for size 1)."""

    def __init__(self, element_size, capacity):
        self.element_size = element_size
        self.capacity = capacity
        self.size = 8 + element_size * capacity

    def encode(self, value, buffer, offset):
        if len(value) > self.capacity:
            raise ValueError(f"vector exceeds capacity {self.capacity}: attempted {len(value)}")
        _U16.pack_into(buffer, offset, len(value))
        buffer[offset + 2:offset + self.size] = bytes(self.size - 2)
        start = offset + 8
        for index, element in enumerate(value):
            at = start + index * self.element_size
            if self.element_size == 1:
                buffer[at] = int(element) & 0xFF
            else:
                chunk = bytes(element)
                if len(chunk) != self.element_size:
                    raise ValueError(f"element {index} must be {self.element_size} bytes, got {len(chunk)}")
                buffer[at:at + self.element_size] = chunk
        return offset + self.size

    def decode(self, view, offset):
        count = _U16.unpack_from(view, offset)[0]
        if count > self.capacity:
            raise ValueError(f"vector count {count} exceeds capacity {self.capacity}")
        start = offset + 8
        values = []
        for index in range(count):
            chunk = bytes(view[start + index * self.element_size:start + (index + 1) * self.element_size])
            values.append(chunk[0] if self.element_size == 1 else chunk)
        return values, offset + self.size


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
    """A message: name, type id, topic, fields, and the class instances are made of."""

    def __init__(self, name, type_id, topic, fields, dataclass):
        self.name = name
        self.type_id = type_id
        self.topic = topic
        self.fields = tuple(fields)
        self.dataclass = dataclass
        self.size = sum(field.field_type.size for field in self.fields)

    def encode(self, obj):
        buffer = bytearray(self.size)
        offset = 0
        for field in self.fields:
            offset = field.field_type.encode(getattr(obj, field.name), buffer, offset)
        return bytes(buffer)

    def decode(self, cls, payload):
        if len(payload) != self.size:
            raise ValueError(f"payload size mismatch: expected {self.size}, got {len(payload)}")
        view = memoryview(payload)
        offset = 0
        values = {}
        for field in self.fields:
            values[field.name], offset = field.field_type.decode(view, offset)
        return cls(**values)


_BY_TYPE_ID = {}


def register_message(definition):
    if definition.type_id in _BY_TYPE_ID:
        raise ValueError(f"duplicate message type {definition.type_id}")
    _BY_TYPE_ID[definition.type_id] = definition


def get_message_definition(type_id):
    return _BY_TYPE_ID[type_id]
