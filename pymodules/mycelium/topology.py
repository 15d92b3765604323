"""topology.toml for Python: Mycelium's `Topology` API over the host's rules.

Reads the same file as `mycelium-host --topology` (docs/topology.md) with `tomllib`, and
answers with the host's route rules ("Routes" in docs/topology.md):

| condition | TransportType |
|---|---|
| same node | LOCAL (the host's `in_process`) |
| same host, both nodes `shm.enabled` | SHM (set up over the Unix socket) |
| same host | UNIX: the unix endpoint, else `socket_dir/<node>.sock` |
| another host | TCP: the destination's `host` and `port` (its tcp endpoint without a port) |

As in Mycelium, a node's `endpoint` is where clients connect (`connection_info`); routes
between nodes follow `host`.

Names: wherever a node is expected, a node name or a service name (which stands for its
node) is accepted; a node name wins over a service of the same name, as in the host.
Relative paths (`socket_dir`, unix endpoint addresses, `contracts`) are resolved against
the folder of the topology file.

This parser checks what routing needs (nodes, names, services, hosts, ports, endpoints,
socket paths) with the host's messages; the host checks the rest (`[limits]`, queues,
workers, scripts, metrics). `mycelium-host check --topology FILE` is the authority.
"""

import dataclasses
import enum
import os
import pathlib
import re
import tomllib
import warnings as _warnings

from . import _wire

DEFAULT_SOCKET_DIR = "/tmp/mycelium"
MAX_UNIX_PATH = 107
_NODE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")


class TopologyError(ValueError):
    """A topology file that cannot be loaded; the text matches the host's description."""

    def __init__(self, description="", file=None):
        super().__init__(description if file is None else f"{description} (in '{file}')")
        self.description = description
        self.file = file


class TopologyWarning(UserWarning):
    """An unknown key, ignored (as Mycelium ignores it); an error with `strict=True`."""


# Keys accepted in each table, in the order suggestions prefer them (topology/src/parser.cpp).
_TOP_KEYS = ("socket_dir", "nodes", "contracts", "socket_mode", "limits")
_NODE_KEYS = ("name", "services", "host", "port", "endpoint", "bind", "socket_mode", "scripts", "contracts",
              "metrics", "queues", "shm", "workers", "slow_consumer", "legacy_layout", "trust_payloads")
_ENDPOINT_KEYS = ("kind", "addr")
_QUEUE_KEYS = ("capacity", "policy", "link_capacity")
_SHM_KEYS = ("enabled", "ring_bytes", "spin_us", "wait_ms")
_SLOW_CONSUMER_KEYS = ("legacy", "client", "peer", "wait_ms")
_WORKER_KEYS = ("name", "script", "args", "restart", "backoff_initial_ms", "backoff_max_ms", "backoff_multiplier",
                "max_restarts", "restart_window_s", "stop_grace_ms")
# The host's [limits] keys (docs/topology.md); only checked here, the host applies them.
_LIMIT_KEYS = ("max_payload", "handshake_timeout_ms", "max_connections", "max_connections_per_listener",
               "max_connections_per_client", "idle_timeout_ms", "max_metrics_bytes", "max_metrics_series")


class TransportType(enum.Enum):
    """How a frame travels between two nodes (Mycelium's names; SHM is this project's)."""

    LOCAL = "local"  # same node: the host's bus (in_process)
    UNIX = "unix"
    TCP = "tcp"
    SHM = "shm"


class EndpointKind(enum.Enum):
    UNIX = "unix"
    TCP = "tcp"


@dataclasses.dataclass
class EndpointConfig:
    """`endpoint = { kind, addr }`: `path` (unix, resolved; None without `addr`, which
    means `socket_dir/<node>.sock`) or `host`/`port` (tcp)."""

    kind: EndpointKind
    addr: str = None
    path: pathlib.Path = None
    host: str = None
    port: int = None

    def __post_init__(self):
        # EndpointConfig("unix"), as Mycelium's code may write it.
        if not isinstance(self.kind, EndpointKind):
            try:
                self.kind = EndpointKind(str(self.kind).lower())
            except ValueError:
                raise ValueError(f"bad endpoint kind {self.kind!r}, expected 'unix' or 'tcp'") from None


@dataclasses.dataclass
class ShmConfig:
    enabled: bool = False
    ring_bytes: int = 1 << 20
    spin_us: int = 50


@dataclasses.dataclass
class Node:
    """A `[[nodes]]` entry: the keys routing uses, and the raw table in `extra`."""

    name: str
    services: list = dataclasses.field(default_factory=list)
    host: str = None
    port: int = None
    endpoint: EndpointConfig = None
    shm: ShmConfig = dataclasses.field(default_factory=ShmConfig)
    contracts: pathlib.Path = None
    extra: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def is_local(self):
        """True when the node runs on this host (`host` absent, localhost, 127.0.0.1, ::1)."""
        return (self.host or "").lower() in _LOCAL_HOSTS


@dataclasses.dataclass
class Route:
    """The answer of `Topology.route_between`."""

    kind: TransportType
    node: str
    socket_path: pathlib.Path = None
    host: str = None
    port: int = None

    @property
    def endpoint(self):
        """'unix:PATH', 'shm:PATH' (rings set up over the Unix socket PATH) or
        'tcp:HOST:PORT' (None for LOCAL)."""
        if self.kind is TransportType.UNIX:
            return f"unix:{self.socket_path}"
        if self.kind is TransportType.SHM:
            return f"shm:{self.socket_path}"
        if self.kind is TransportType.TCP:
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp:{host}:{self.port}"
        return None


@dataclasses.dataclass
class Topology:
    """A loaded topology.toml: Mycelium's `Topology` (`load`, `find_node`, `same_node`,
    `transport_between`, `socket_path`, `connection_info`) with the host's route rules.

    Thread safety: not changed after load; safe to share for reading."""

    nodes: list
    socket_dir: pathlib.Path = pathlib.Path(DEFAULT_SOCKET_DIR)
    contracts: pathlib.Path = None
    path: pathlib.Path = None
    warnings: list = dataclasses.field(default_factory=list)  # texts of the unknown keys, in file order

    @classmethod
    def load(cls, path, strict=False):
        """Parses and checks `path`; raises TopologyError (a ValueError), FileNotFoundError.
        An unknown key is a TopologyWarning (and listed in `warnings`), or with
        `strict=True` a TopologyError, as `mycelium-host check --strict`."""
        path = pathlib.Path(path)
        with open(path, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise TopologyError(str(e), str(path)) from None
        return cls.from_dict(data, base_dir=path.resolve().parent, source=str(path), strict=strict)

    @classmethod
    def loads(cls, text, base_dir=None, source="<string>", strict=False):
        """Parses TOML text; relative paths resolve against `base_dir` (kept as written when None)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise TopologyError(str(e), source) from None
        return cls.from_dict(data, base_dir=None if base_dir is None else pathlib.Path(base_dir), source=source,
                             strict=strict)

    @classmethod
    def from_dict(cls, data, base_dir=None, source="<dict>", strict=False):
        return _Parser(data, base_dir, source, strict).topology(cls)

    def validate(self):
        """Mycelium's check of a loaded topology; `load` has made every check already, so
        this only confirms it (and keeps code written for Mycelium working)."""
        return None

    # ---------------------------------------------------------------- lookups

    # Parameter names are Mycelium's, so its keyword calls work: find_node(service_name=...),
    # transport_between(from_service=..., to_service=...).

    def find_node(self, service_name):
        """The node named `service_name`, else the node hosting that service, else None."""
        for node in self.nodes:
            if node.name == service_name:
                return node
        for node in self.nodes:
            if service_name in node.services:
                return node
        return None

    def same_node(self, service1, service2):
        """True when both names (services or nodes) resolve to the same node."""
        node_a, node_b = self.find_node(service1), self.find_node(service2)
        return node_a is not None and node_a is node_b

    def socket_path(self, node_name):
        """The Unix socket of a node: its unix endpoint, else `socket_dir/<node>.sock`."""
        node = self._resolve(node_name)
        if node.endpoint is not None and node.endpoint.kind is EndpointKind.UNIX and node.endpoint.path is not None:
            return node.endpoint.path
        return self.socket_dir / f"{node.name}.sock"

    def route_between(self, from_service, to_service):
        """The Route from one node (or service) to another, by the host's rules.

        Raises ValueError for an unknown name, or when `to_service` is only reachable from
        its own host and `from_service` runs elsewhere."""
        src, dst = self._resolve(from_service), self._resolve(to_service)
        if src is dst:
            return Route(TransportType.LOCAL, dst.name)
        if _same_host(src, dst):
            kind = TransportType.SHM if src.shm.enabled and dst.shm.enabled else TransportType.UNIX
            return Route(kind, dst.name, socket_path=self.socket_path(dst.name))
        if dst.is_local:
            raise ValueError(f"node '{dst.name}' has no host and port that node '{src.name}' on host "
                             f"'{src.host or ''}' can reach; give it 'host' and 'port'")
        if dst.port is None:  # the parser lets a remote node give a tcp endpoint instead
            return Route(TransportType.TCP, dst.name, host=dst.endpoint.host, port=dst.endpoint.port)
        return Route(TransportType.TCP, dst.name, host=dst.host, port=dst.port)

    def transport_between(self, from_service, to_service):
        """The TransportType between two services (or nodes)."""
        return self.route_between(from_service, to_service).kind

    def connection_info(self, target_service, shm=False):
        """How a process on this host reaches `target_service` (a service or node), as Mycelium's dict:
        `transport` (TransportType.UNIX or TCP; SHM only when `shm=True` and the node enables
        it), `node`, `endpoint` ('unix:...'/'tcp:...') and `path` or `host` and `port`.

        Raises ValueError when `target_service` is unknown or cannot be reached from here."""
        node = self.find_node(target_service)
        if node is None:
            raise ValueError(f"Service '{target_service}' not found in topology")
        if node.endpoint is not None and node.endpoint.kind is EndpointKind.TCP:
            route = Route(TransportType.TCP, node.name, host=node.endpoint.host, port=node.endpoint.port)
        elif node.is_local:
            kind = TransportType.SHM if shm and node.shm.enabled else TransportType.UNIX
            route = Route(kind, node.name, socket_path=self.socket_path(node.name))
        elif node.port:
            route = Route(TransportType.TCP, node.name, host=node.host, port=node.port)
        else:
            raise ValueError(f"node '{node.name}' on host '{node.host}' has no port to connect to")
        info = {"transport": route.kind, "node": route.node, "endpoint": route.endpoint}
        if route.socket_path is not None:
            info["path"] = str(route.socket_path)
        else:
            info["host"], info["port"] = route.host, route.port
        return info

    def services(self):
        return [service for node in self.nodes for service in node.services]

    def _resolve(self, name):
        node = self.find_node(name)
        if node is None:
            raise ValueError(f"topology has no node or service '{name}'")
        return node


def _same_host(a, b):
    if a.is_local or b.is_local:
        return a.is_local and b.is_local
    return a.host.lower() == b.host.lower()


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a floating-point number", bool: "a boolean",
               list: "an array", dict: "a table"}


def _type_name(value):
    for t, name in _TYPE_NAMES.items():
        if type(value) is t:
            return name
    return type(value).__name__


def _edit_distance(a, b):
    """Levenshtein distance with transpositions, as topology/src/suggest.cpp computes it."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def _closest_match(word, candidates):
    """The host's did-you-mean: the nearest key within a few edits, else a prefix match."""
    budget = 3 if len(word) >= 8 else 2
    best, best_distance = None, budget + 1
    for candidate in candidates:
        distance = _edit_distance(word, candidate)
        if distance < best_distance and distance < len(candidate):
            best, best_distance = candidate, distance
    if best is not None:
        return best
    for candidate in candidates:
        if min(len(word), len(candidate)) >= 3 and (word.startswith(candidate) or candidate.startswith(word)):
            return candidate
    return None


class _Parser:
    """The checks routing needs, with the host's texts (topology/src/parser.cpp), and the
    host's rule for unknown keys in every table."""

    def __init__(self, data, base_dir, source, strict=False):
        self.data = data
        self.base_dir = base_dir
        self.source = source
        self.strict = strict
        self.warnings = []

    def fail(self, description):
        raise TopologyError(description, self.source)

    def check_keys(self, table, allowed, context=None):
        if not isinstance(table, dict):
            return  # the type error is the reader's to report
        for key in table:
            if key in allowed:
                continue
            message = f"unknown key '{key}'" + (f" in {context}" if context else "")
            suggestion = _closest_match(key, allowed)
            if suggestion is not None:
                message += f", did you mean '{suggestion}'?"
            if self.strict:
                self.fail(message)
            text = f"{message} (in '{self.source}')"
            self.warnings.append(text)
            _warnings.warn(text, TopologyWarning, stacklevel=5)

    def check_all_keys(self, data):
        self.check_keys(data, _TOP_KEYS)
        self.check_keys(data.get("limits"), _LIMIT_KEYS, "[limits]")
        nodes = data.get("nodes")
        for node in nodes if isinstance(nodes, list) else ():
            if not isinstance(node, dict):
                continue
            self.check_keys(node, _NODE_KEYS, "[[nodes]]")
            self.check_keys(node.get("endpoint"), _ENDPOINT_KEYS, "endpoint")
            self.check_keys(node.get("queues"), _QUEUE_KEYS, "[nodes.queues]")
            self.check_keys(node.get("shm"), _SHM_KEYS, "[nodes.shm]")
            self.check_keys(node.get("slow_consumer"), _SLOW_CONSUMER_KEYS, "[nodes.slow_consumer]")
            workers = node.get("workers")
            for worker in workers if isinstance(workers, list) else ():
                self.check_keys(worker, _WORKER_KEYS, "[[nodes.workers]]")

    def path(self, text):
        p = pathlib.Path(text)
        if self.base_dir is not None and not p.is_absolute():
            p = pathlib.Path(os.path.normpath(self.base_dir / p))
        return p

    def string(self, table, key, default=None):
        value = table.get(key, default)
        if value is not default and not isinstance(value, str):
            self.fail(f"'{key}' must be a string, not {_type_name(value)}")
        return value

    def topology(self, cls):
        data = self.data
        self.check_all_keys(data)
        socket_dir = self.path(self.string(data, "socket_dir", DEFAULT_SOCKET_DIR))
        contracts = self.string(data, "contracts")
        if contracts is not None and not contracts:
            self.fail("'contracts' must not be empty")
        nodes_data = data.get("nodes")
        if nodes_data is None:
            self.fail("no [[nodes]] defined")
        if not isinstance(nodes_data, list):
            self.fail(f"'nodes' must be an array of tables ([[nodes]]), not {_type_name(nodes_data)}")
        for entry in nodes_data:
            if not isinstance(entry, dict):  # the host names the offending element's type
                self.fail(f"'nodes' must be an array of tables ([[nodes]]), not {_type_name(entry)}")
        if not nodes_data:
            self.fail("no [[nodes]] defined")
        nodes = [self.node(n) for n in nodes_data]
        topology = cls(nodes=nodes, socket_dir=socket_dir,
                       contracts=None if contracts is None else self.path(contracts),
                       path=None if self.source.startswith("<") else pathlib.Path(self.source),
                       warnings=self.warnings)
        self.across(topology)
        return topology

    def node(self, table):
        if "name" not in table:
            self.fail("[[nodes]] entry is missing 'name'")
        name = self.string(table, "name")
        if not _NODE_NAME.match(name):
            self.fail(f"node name '{name}' may only use letters, digits, '_', '-' and '.'")
        services = table.get("services", [])
        if not isinstance(services, list):
            self.fail(f"'services' must be an array of strings, not {_type_name(services)}")
        for service in services:
            if not isinstance(service, str):
                self.fail(f"'services' must hold strings, not {_type_name(service)}")
        seen = set()
        for service in services:
            if service in seen:
                self.fail(f"service '{service}' is listed twice on node '{name}'")
            seen.add(service)
        host = self.string(table, "host", "")
        if host and (any(c.isspace() for c in host) or "/" in host):
            self.fail(f"bad host '{host}'")
        port = table.get("port")
        if port is not None:
            if type(port) is not int:
                self.fail(f"'port' must be an integer, not {_type_name(port)}")
            if port < 0:
                self.fail(f"'port' must not be negative, got {port}")
            if port > 65535:
                self.fail(f"'port' must be at most 65535, got {port}")
        endpoint = None
        if "endpoint" in table:
            endpoint = self.endpoint(table["endpoint"])
        shm = ShmConfig()
        shm_table = table.get("shm", {})
        if isinstance(shm_table, dict):
            enabled = shm_table.get("enabled", False)
            if type(enabled) is not bool:
                self.fail(f"'enabled' must be a boolean, not {_type_name(enabled)}")
            shm = ShmConfig(enabled, shm_table.get("ring_bytes", shm.ring_bytes), shm_table.get("spin_us", shm.spin_us))
        contracts = self.string(table, "contracts")
        node = Node(name=name, services=list(services), host=host or None, port=port, endpoint=endpoint, shm=shm,
                    contracts=None if not contracts else self.path(contracts), extra=dict(table))
        if not node.is_local:
            has_tcp_endpoint = endpoint is not None and endpoint.kind is EndpointKind.TCP
            if port is None and not has_tcp_endpoint:
                self.fail(f"node '{name}' is on remote host '{host}' and needs a 'port'")
            if port == 0:
                self.fail(f"node '{name}' is on remote host '{host}': port 0 cannot be reached, give a real 'port'")
        return node

    def endpoint(self, table):
        if not isinstance(table, dict):
            self.fail(f"'endpoint' must be a table, not {_type_name(table)}")
        if "kind" not in table:
            self.fail("endpoint is missing 'kind'")
        kind = self.string(table, "kind")
        if kind not in ("unix", "tcp"):
            self.fail(f"bad endpoint kind '{kind}', expected 'unix' or 'tcp'")
        if "addr" not in table:
            if kind == "unix":  # Mycelium's unix endpoint: socket_dir/<node>.sock
                return EndpointConfig(EndpointKind.UNIX)
            self.fail("endpoint is missing 'addr'")
        addr = self.string(table, "addr")
        if kind == "unix":
            return EndpointConfig(EndpointKind.UNIX, addr, path=self.path(addr))
        try:
            host, port = _wire.parse_host_port(addr)
        except ValueError:
            self.fail(f"bad address '{addr}' for 'addr': expected host:port")
        return EndpointConfig(EndpointKind.TCP, addr, host=host, port=port)

    def across(self, topology):
        first = {}
        owner = {}
        for node in topology.nodes:
            if node.name in first:
                self.fail(f"duplicate node name '{node.name}'")
            first[node.name] = node
            for service in node.services:
                if service in owner:
                    self.fail(f"service '{service}' is on nodes '{owner[service]}' and '{node.name}'")
                owner[service] = node.name
        for i, node in enumerate(topology.nodes):
            path = str(topology.socket_path(node.name))
            if len(path.encode()) > MAX_UNIX_PATH:
                self.fail(f"unix socket path '{path}' of node '{node.name}' is {len(path.encode())} bytes, "
                          f"longer than {MAX_UNIX_PATH}")
            for other in topology.nodes[:i]:
                if _same_host(node, other) and str(topology.socket_path(other.name)) == path:
                    self.fail(f"node '{node.name}' uses unix socket '{path}', already used by node '{other.name}'")


__all__ = ["EndpointConfig", "EndpointKind", "Node", "Route", "ShmConfig", "Topology", "TopologyError",
           "TopologyWarning", "TransportType"]
