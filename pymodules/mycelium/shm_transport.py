"""SharedMemoryTransport: the seam for the shared-memory driver (issue 5).

The host's memfd rings (DESIGN.md section 7: one ring per direction, eventfd doorbells,
set up over the node's Unix socket with SCM_RIGHTS) are being built; until their pure-Python
driver lands here, `create()` and `open()` raise ShmError and `AVAILABLE` is False.

What the driver must provide to plug in (the rest of the SDK already relies on it):

- `SharedMemoryTransport.open(path_or_endpoint, schema_digest, **options)` returns a
  connected transport with the same surface as UnixTransport: `publisher(Cls)`,
  `subscriber(Cls)`, `flush()`, `sync()`, `close()`, `describe()`, and the sink protocol
  the Runtime uses (`_add_sink(cls, sink)`, `_remove_sink(cls, sink)`, `_routes`,
  `_deliver(entries, payload)`, `_write(header, payload)`).
- `AVAILABLE = True`. `MessageBus` and the out-of-process `Runtime` then ask
  `Topology.connection_info(..., shm=True)` and open shared memory for same-host nodes
  with `[nodes.shm] enabled = true`; today they fall back to the node's Unix socket.
"""

from .errors import ShmError

#: True once the shared-memory driver is in this SDK.
AVAILABLE = False

_REASON = "the pure-Python driver for the host's memfd rings (issue 5) is not in this SDK yet; use UnixTransport"


class SharedMemoryTransport:
    """Shared-memory transport; raises ShmError until the driver lands (see module docstring)."""

    AVAILABLE = AVAILABLE

    def __init__(self, *args, **kwargs):
        raise ShmError(f"shared memory is not available yet: {_REASON}")

    @classmethod
    def open(cls, path_or_endpoint, schema_digest, **options):
        """Attaches to a node's shared-memory rings over its Unix socket (not available yet)."""
        raise ShmError(f"shared memory is not available yet: {_REASON}")

    @classmethod
    def create(cls, path, schema_digest, **options):
        """Creates rings (not available yet)."""
        raise ShmError(f"shared memory is not available yet: {_REASON}")


__all__ = ["AVAILABLE", "SharedMemoryTransport", "ShmError"]
