"""The SDK's typed errors.

Every error the SDK raises derives from `MyceliumError`. Inside `mycelium-host` the names
shared with the built-in module (`MyceliumError`, `SchemaMismatch`, `ValidationError`,
`DecodeError`, `NotAMessageError`, `QueueFull`, `ClosedError`) are `mycelium_native`'s own classes, so one
`except mycelium.SchemaMismatch:` catches what the host raises as well as what the SDK
raises; outside the host they are defined here with the same names and bases.

    MyceliumError
     ├─ TransportError     connecting, writing, a connection that is down (RuntimeError too)
     │   └─ ShmError       shared memory
     ├─ SchemaMismatch     the host runs other contracts (ValueError too, as in Mycelium)
     ├─ ValidationError    a field breaks a rule; .message .field .rule (ValueError too)
     ├─ DecodeError        bytes that are not a valid encoding (ValueError too)
     ├─ NotAMessageError   not a message where one is expected (TypeError and ValueError)
     ├─ QueueFull          a bounded queue refused a message
     └─ ClosedError        the transport, Runtime or subscription is closed (RuntimeError too)

`Timeout` is what `Subscriber.recv(timeout)` raises when nothing arrived in time: it is
both `queue.Empty` (what Mycelium's SDK raised) and `TimeoutError`.
"""

import queue as _queue

try:  # inside mycelium-host: share the built-in module's classes
    from ._native import native as _native_module
except ImportError:
    _native_module = None

if _native_module is not None:
    MyceliumError = _native_module.MyceliumError
    SchemaMismatch = _native_module.SchemaMismatch
    ValidationError = _native_module.ValidationError
    DecodeError = _native_module.DecodeError
    NotAMessageError = _native_module.NotAMessageError
    QueueFull = _native_module.QueueFull
    ClosedError = _native_module.ClosedError
else:

    class MyceliumError(Exception):
        """Base class of every error the SDK raises."""

    class SchemaMismatch(MyceliumError, ValueError):
        """The host loaded other contracts than the ones this process was built from.

        The text is the host's own reason when the host sent one (`ERROR digest_mismatch`)."""

    class ValidationError(MyceliumError, ValueError):
        """A field breaks a rule of the contracts; names the message, the field and the rule.

        Also made as a plain exception (no arguments, or a text), as Mycelium's code makes
        it: the three names are then None."""

        def __init__(self, *args):
            if len(args) != 4:
                super().__init__(*args)
                self.message = self.field = self.rule = None
                return
            message, field, rule, detail = args
            super().__init__(f"{message}.{field}: {rule}: {detail}")
            self.message = message
            self.field = field
            self.rule = rule

    class DecodeError(MyceliumError, ValueError):
        """Bytes that are not a valid encoding of the message."""

    class NotAMessageError(MyceliumError, TypeError, ValueError):
        """An object that is not a message, or a class that is not a message class, where
        one is expected: a TypeError, and a ValueError as Mycelium raised."""

    class QueueFull(MyceliumError):
        """A bounded queue is full and its policy is to refuse."""

    class ClosedError(MyceliumError, RuntimeError):
        """The transport, Runtime or subscription has been closed."""


class TransportError(MyceliumError, RuntimeError):
    """Connecting failed, the connection is down, or the host closed it for bad input.

    `code` and `reason` carry the host's ERROR frame when there was one (wire-protocol.md
    "ERROR"), else `code` is None."""

    def __init__(self, text="", code=None, reason=None):
        super().__init__(text)
        self.code = code
        self.reason = reason


class ShmError(TransportError):
    """Shared memory could not be set up or used."""


class Timeout(_queue.Empty, TimeoutError):
    """Nothing arrived within the timeout: both `queue.Empty` and `TimeoutError`."""


def validation_error_from(message, exc):
    """The SDK's ValidationError for an exception raised by `message.to_bytes()`.

    Generated classes raise their own ValidationError (message, field, rule); anything
    else a value can raise while packing (struct.error, OverflowError, TypeError,
    UnicodeEncodeError) is reported against the message with rule 'encode'."""
    field = getattr(exc, "field", None)
    rule = getattr(exc, "rule", None)
    name = getattr(exc, "message", None)
    if isinstance(field, str) and isinstance(rule, str) and isinstance(name, str):
        text = str(exc)
        prefix = f"{name}.{field}: {rule}: "
        detail = text[len(prefix):] if text.startswith(prefix) else text
        return ValidationError(name, field, rule, detail)
    cls = type(message)
    return ValidationError(getattr(cls, "NAME", cls.__name__), "*", "encode", f"{type(exc).__name__}: {exc}")


__all__ = [
    "ClosedError",
    "DecodeError",
    "MyceliumError",
    "NotAMessageError",
    "QueueFull",
    "SchemaMismatch",
    "ShmError",
    "Timeout",
    "TransportError",
    "ValidationError",
    "validation_error_from",
]
