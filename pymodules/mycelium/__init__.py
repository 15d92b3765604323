"""mycelium: the pure-Python SDK of mycelium-host (docs/python-sdk.md).

Mycelium's API, unchanged:

    from mycelium import UnixTransport, TcpTransport, SharedMemoryTransport, MessageBus, Topology
    t = UnixTransport(path, schema_digest); t.connect()          # TcpTransport(host, port, digest)
    pub = t.publisher(TextMessage); pub.publish(TextMessage(...))
    sub = t.subscriber(TextMessage); msg = sub.recv(timeout=1.0)  # recv_nowait(), await recv_async()
    bus = MessageBus.from_topology("topology.toml", service_name="worker", schema_digest=DIGEST)
    Topology.load("topology.toml").connection_info("execution")

and the in-host API (`mycelium_native`'s) in any process:

    from mycelium import Runtime, subscribe, publish, every, on_start, on_stop, stop

Standard library only (numpy optional, used by nothing here).
"""

from .errors import (
    ClosedError,
    DecodeError,
    MyceliumError,
    NotAMessageError,
    QueueFull,
    SchemaMismatch,
    ShmError,
    Timeout,
    TransportError,
    ValidationError,
)
from . import codec, endpoint, metrics
from .message_bus import MessageBus
from .publisher import Publisher
from .runtime import (
    INSIDE_HOST,
    Runtime,
    Stream,
    Subscription,
    Timer,
    every,
    on_start,
    on_stop,
    publish,
    recv,
    run,
    stop,
    stream,
    subscribe,
)
from .shm_transport import SharedMemoryTransport
from .subscriber import Subscriber
from .topology import EndpointConfig, EndpointKind, Node, Route, Topology, TopologyError, TopologyWarning, TransportType
from .transport import TcpTransport, UnixTransport

__version__ = "0.1.0"

__all__ = [
    # Mycelium's SDK
    "MessageBus",
    "Topology",
    "Node",
    "Route",
    "TransportType",
    "EndpointKind",
    "EndpointConfig",
    "TopologyError",
    "TopologyWarning",
    "UnixTransport",
    "TcpTransport",
    "SharedMemoryTransport",
    "Publisher",
    "Subscriber",
    # the in-host API
    "INSIDE_HOST",
    "Runtime",
    "Stream",
    "Subscription",
    "Timer",
    "publish",
    "subscribe",
    "every",
    "on_start",
    "on_stop",
    "stop",
    "stream",
    "recv",
    "run",
    # errors
    "MyceliumError",
    "NotAMessageError",
    "TransportError",
    "ShmError",
    "SchemaMismatch",
    "ValidationError",
    "DecodeError",
    "QueueFull",
    "ClosedError",
    "Timeout",
]
