"""What the SDK needs to know about a message class, whoever generated it.

Three kinds of classes are accepted everywhere a message class is expected:

- the classes `mycelium-host codegen --python` writes (`TYPE_ID`, `SIZE`, `to_bytes()`,
  `from_bytes()`, module-level `SCHEMA_DIGEST`);
- Mycelium's generated dataclasses (`TYPE_ID`, `__definition__` with `type_id`/`size`);
- inside the host, `mycelium_native.messages` classes.

Any class with an integer `TYPE_ID`, `to_bytes()` and a `from_bytes(data)` classmethod works.
"""

import sys

from . import _wire
from .errors import NotAMessageError


def type_id_of(cls):
    """The wire type id of a message class; NotAMessageError (a TypeError and a ValueError)
    when it has none."""
    type_id = getattr(cls, "TYPE_ID", None)
    if type_id is None:
        definition = getattr(cls, "__definition__", None)
        type_id = getattr(definition, "type_id", None)
    if not isinstance(type_id, int) or isinstance(type_id, bool):
        raise NotAMessageError(f"{getattr(cls, '__name__', cls)!r} is not a message class: it has no integer TYPE_ID")
    if not _wire.FIRST_APPLICATION_TYPE <= type_id <= 0xFFFF:
        raise NotAMessageError(f"{cls.__name__}.TYPE_ID {type_id} is outside the application range 1000-65535")
    if not callable(getattr(cls, "from_bytes", None)):
        raise NotAMessageError(f"{cls.__name__} is not a message class: it has no from_bytes()")
    return type_id


def size_of(cls):
    """The payload size of a fixed-size message class, or None when the class does not say."""
    size = getattr(cls, "SIZE", None)
    if size is None:
        size = getattr(getattr(cls, "__definition__", None), "size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def name_of(cls):
    return getattr(cls, "NAME", None) or getattr(cls, "__name__", repr(cls))


def digest_of(cls):
    """The SCHEMA_DIGEST recorded by the module that defines `cls`, or None."""
    module = sys.modules.get(getattr(cls, "__module__", ""), None)
    digest = getattr(module, "SCHEMA_DIGEST", None)
    if digest is None:
        return None
    try:
        return _wire.parse_digest(digest)
    except (TypeError, ValueError):
        return None
