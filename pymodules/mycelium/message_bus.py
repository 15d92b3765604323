"""MessageBus: Mycelium's topology-aware entry point."""

from .topology import Topology
from .endpoint import transport_for_endpoint


class MessageBus:
    """Transports chosen by a topology file, one per node this service talks to.

        bus = MessageBus.from_topology("topology.toml", service_name="worker", schema_digest=DIGEST)
        bus.publisher_to("execution", Order).publish(Order(...))
        sub = bus.subscriber(Signal)

    `publisher_to(target, Cls)` connects to the node hosting `target` (a service or node
    name) as `Topology.connection_info(..., shm=True)` says: its shared-memory rings on this
    host when the node enables them, else its Unix socket; its TCP address elsewhere. `subscriber(Cls)` connects to this service's own node. A Python
    process is never inside a node, so where Mycelium refused a target on the same node
    (LOCAL), this bus connects to that node's socket. Transports are shared per node and
    connected on first use; options (`reconnect`, `buffer_while_disconnected`, ...) go to
    every transport.

    Thread safety: distinct objects safe; publishers and subscribers it returns follow
    their transport's rules.
    """

    def __init__(self, topology, service_name, schema_digest, **transport_options):
        self._topology = topology
        self._service_name = service_name
        self._schema_digest = schema_digest
        self._options = transport_options
        self._options.setdefault("name", service_name)
        self._transports = {}
        if topology.find_node(service_name) is None:
            raise ValueError(f"Service '{service_name}' not found in topology. "
                             f"Available services: {topology.services()}")

    @classmethod
    def from_topology(cls, topology_path, service_name, schema_digest, **transport_options):
        """Loads `topology_path` (Topology.load) and makes a bus for `service_name`."""
        return cls(Topology.load(topology_path), service_name, schema_digest, **transport_options)

    @property
    def topology(self):
        return self._topology

    @property
    def service_name(self):
        return self._service_name

    def publisher_to(self, target_service, message_cls):
        """A Publisher of `message_cls` on the transport to `target_service`'s node."""
        return self.transport_to(target_service).publisher(message_cls)

    def subscriber(self, message_cls, maxsize=0):
        """A Subscriber of `message_cls` on this service's own node."""
        return self.transport_to(self._service_name).subscriber(message_cls, maxsize)

    def transport_to(self, target):
        """The connected transport to the node of `target` (a service or node name)."""
        node = self._topology.find_node(target)
        if node is None:
            raise ValueError(f"Service '{target}' not found in topology")
        transport = self._transports.get(node.name)
        if transport is None:
            transport = self._open(target)
            self._transports[node.name] = transport
        return transport

    def close(self):
        """Closes every transport."""
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _open(self, target):
        # shm:PATH for a node on this host that enables shared memory (the transport stays
        # on the node's Unix socket when the node refuses), else unix:PATH or tcp:HOST:PORT.
        info = self._topology.connection_info(target, shm=True)
        transport = transport_for_endpoint(info["endpoint"], self._schema_digest, **self._options)
        transport.connect()
        return transport


__all__ = ["MessageBus"]
