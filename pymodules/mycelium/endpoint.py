"""The transport for an endpoint string: 'unix:PATH', 'shm:PATH' or 'tcp:HOST:PORT'.

Here, not in transport.py, so that transport.py and shm_transport.py need not import each
other: this module knows both."""

from . import _wire
from .shm_transport import SharedMemoryTransport
from .transport import TcpTransport, UnixTransport


def transport_for_endpoint(endpoint, schema_digest, **options):
    """A UnixTransport, SharedMemoryTransport or TcpTransport for 'unix:PATH', 'shm:PATH' or
    'tcp:HOST:PORT' (not connected)."""
    kind, where = _wire.parse_endpoint(endpoint)
    if kind == "unix":
        return UnixTransport(where, schema_digest, **options)
    if kind == "shm":
        return SharedMemoryTransport(where, schema_digest, **options)
    host, port = where
    return TcpTransport(host, port, schema_digest, **options)


__all__ = ["transport_for_endpoint"]
