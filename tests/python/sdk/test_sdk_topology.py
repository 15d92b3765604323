"""Topology and MessageBus: the SDK reads the same topology.toml as the host and picks the
same routes (checked against `mycelium-host check`), and MessageBus connects by it."""

import pathlib
import re

import pytest

import mycelium
from mycelium import Topology, TopologyError, TransportType
from sdk_helpers import ECHO_SCRIPT, write_script

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "topologies"
EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "topology" / "examples"
VALID = sorted(FIXTURES.glob("valid/*.toml")) + sorted(EXAMPLES.glob("*.toml"))
INVALID = sorted(FIXTURES.glob("invalid/*.toml"))
STRICT = sorted(FIXTURES.glob("strict/*.toml"))  # unknown keys: warnings, errors with strict

# Invalid fixtures whose problem is in a section the SDK does not read (the host checks
# them; routing does not depend on them): the SDK loads these files.
NOT_CHECKED_BY_THE_SDK = {
    "backoff_max_below_initial", "backoff_multiplier_low", "bad_legacy_layout", "bad_queue_policy", "bad_restart_policy",
    "bad_trust_payloads",
    "bad_socket_mode", "bind_bad_port", "bind_without_port", "duplicate_worker", "limits_zero_timeout",
    "max_payload_too_large", "metrics_ipv6_unbracketed", "metrics_no_port", "negative_link_capacity",
    "port_conflict", "ring_not_power_of_two", "ring_too_small", "scripts_empty_entry", "socket_mode_integer",
    "spin_too_long", "worker_missing_script", "zero_capacity",
}
# Refused by both, in other words: TOML syntax (tomllib and toml++ word it differently).
OTHER_WORDS = {"duplicate_key", "toml_syntax"}


def host_routes(run_host, path):
    """{(from, to): text} from `mycelium-host check`'s routes section."""
    result = run_host("check", "--topology", path)
    assert result.returncode == 0, result.stderr
    routes = {}
    for line in result.stdout.split("\nroutes\n", 1)[1].splitlines():
        match = re.match(r"^  (\S+) -> (\S+): (.*)$", line)
        if match:
            routes[(match.group(1), match.group(2))] = match.group(3)
    return routes


def sdk_route_text(topology, source, target):
    try:
        route = topology.route_between(source, target)
    except ValueError as e:
        return f"unreachable ({e})"
    if route.kind is TransportType.TCP:
        host = f"[{route.host}]" if ":" in route.host else route.host
        return f"tcp {host}:{route.port}"
    if route.kind is TransportType.SHM:
        return f"shm via {route.socket_path}"
    return f"unix {route.socket_path}"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_routes_match_the_host(run_host, path):
    topology = Topology.load(path)
    routes = host_routes(run_host, path)
    names = [n.name for n in topology.nodes]
    assert len(routes) == len(names) * (len(names) - 1)
    for (source, target), text in routes.items():
        ours = sdk_route_text(topology, source, target)
        assert text.startswith(ours), f"{source} -> {target}: host says {text!r}, the SDK {ours!r}"


def host_nodes(run_host, path):
    """{name: {"services": [...], "host": str, "unix": path}} from `mycelium-host check`."""
    result = run_host("check", "--topology", path)
    assert result.returncode == 0, result.stderr
    nodes = {}
    for block in result.stdout.split("\nroutes\n", 1)[0].split("\nnode ")[1:]:
        name, *lines = block.splitlines()
        fields = dict(re.match(r"^  (\w+): +(.*)$", line).groups() for line in lines if line.strip())
        services = [] if fields["services"] == "(none)" else fields["services"].split(", ")
        host = "" if fields["host"] == "(this host)" else fields["host"]
        nodes[name] = {"services": services, "host": host, "unix": fields["unix"].split(" (mode")[0]}
    return nodes


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_nodes_match_the_host(run_host, path):
    topology = Topology.load(path)
    ours = {n.name: {"services": n.services, "host": n.host or "", "unix": str(topology.socket_path(n.name))}
            for n in topology.nodes}
    assert ours == host_nodes(run_host, path)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_fixtures(path):
    expected = re.match(r"^# error: (.*?)(?: \((?:at line \d+, column \d+ of|in) '\{file\}'\))?$",
                        path.read_text().splitlines()[0]).group(1)
    if path.stem in NOT_CHECKED_BY_THE_SDK:
        Topology.load(path)  # routing does not depend on what is wrong here
        return
    with pytest.raises(TopologyError) as caught:
        Topology.load(path)
    if path.stem in OTHER_WORDS:
        return
    # The host's description; the SDK may stop before the host's "(first defined at ...)".
    assert expected.startswith(caught.value.description), (expected, caught.value.description)
    assert str(path) in str(caught.value)


def expected_description(path):
    return re.match(r"^# error: (.*?)(?: \((?:at line \d+, column \d+ of|in) '\{file\}'\))?$",
                    path.read_text().splitlines()[0]).group(1)


@pytest.mark.parametrize("path", STRICT, ids=lambda p: p.stem)
def test_unknown_keys_warn_as_the_host_does_and_fail_with_strict(run_host, path):
    description = expected_description(path)
    with pytest.warns(mycelium.TopologyWarning) as caught:
        topology = Topology.load(path)
    assert [str(w.message) for w in caught] == [f"{description} (in '{path}')"]
    assert topology.warnings == [f"{description} (in '{path}')"]
    with pytest.raises(TopologyError) as err:
        Topology.load(path, strict=True)
    assert err.value.description == description
    # The host says the same: a warning, and an error with --strict.
    loose = run_host("check", "--topology", path)
    assert loose.returncode == 0 and f"mycelium-host: warning: {description} (at line" in loose.stderr
    strict = run_host("check", "--strict", "--topology", path)
    assert strict.returncode == 2 and f"mycelium-host: error: {description} (at line" in strict.stderr


def test_a_unix_endpoint_without_addr_and_routes_that_follow_host():
    t = Topology.load(FIXTURES / "valid" / "mycelium_unix_endpoint.toml")
    assert t.socket_path("adapters") == pathlib.Path("/tmp/mycelium-unix-endpoint/adapters.sock")
    assert t.find_node("adapters").endpoint == mycelium.EndpointConfig(mycelium.EndpointKind.UNIX)
    # strategies gives clients a TCP endpoint; a node on its host still uses the Unix socket.
    assert t.transport_between("polygon-adapter", "flash-arbitrage") is TransportType.UNIX
    assert t.connection_info("flash-arbitrage")["endpoint"] == "tcp:127.0.0.1:9091"
    assert t.route_between("strategies", "remote").endpoint == "tcp:10.0.3.30:9300"


def test_mycelium_shaped_topology(repo):
    t = Topology.load(FIXTURES / "valid" / "mycelium.toml")
    assert [n.name for n in t.nodes] == ["trading", "execution", "analytics"]
    assert t.socket_dir == pathlib.Path("/tmp/mycelium")
    assert t.find_node("strategy").name == "trading"
    assert t.find_node("trading").name == "trading"  # node names work too
    assert t.find_node("nope") is None
    assert t.same_node("market_data", "strategy")
    assert not t.same_node("strategy", "order_router")
    assert not t.same_node("strategy", "nope")
    assert t.transport_between("market_data", "strategy") is TransportType.LOCAL
    assert t.transport_between("strategy", "order_router") is TransportType.UNIX
    assert t.transport_between("strategy", "reporting") is TransportType.TCP
    assert t.socket_path("trading") == pathlib.Path("/tmp/mycelium/trading.sock")
    assert t.socket_path("execution") == pathlib.Path("/tmp/mycelium/exec.sock")  # unix endpoint
    assert t.connection_info("order_router") == {
        "transport": TransportType.UNIX, "node": "execution", "endpoint": "unix:/tmp/mycelium/exec.sock",
        "path": "/tmp/mycelium/exec.sock"}
    assert t.connection_info("reporting") == {
        "transport": TransportType.TCP, "node": "analytics", "endpoint": "tcp:10.0.0.7:9000",
        "host": "10.0.0.7", "port": 9000}
    with pytest.raises(ValueError, match="Service 'nope' not found in topology"):
        t.connection_info("nope")
    with pytest.raises(ValueError, match="no node or service 'nope'"):
        t.transport_between("strategy", "nope")


def test_myceliums_keyword_names_and_constructors():
    """Calls as Mycelium's SDK docs write them."""
    t = Topology.load(FIXTURES / "valid" / "mycelium.toml")
    assert t.find_node(service_name="strategy").name == "trading"
    assert t.same_node(service1="market_data", service2="strategy")
    assert t.transport_between(from_service="strategy", to_service="order_router") is TransportType.UNIX
    assert t.connection_info(target_service="reporting")["port"] == 9000
    assert t.socket_path(node_name="trading") == pathlib.Path("/tmp/mycelium/trading.sock")
    assert t.validate() is None
    assert mycelium.EndpointConfig(mycelium.EndpointKind.TCP).addr is None
    node = mycelium.Node("n", ["s"], "10.0.0.9", 9100, mycelium.EndpointConfig(mycelium.EndpointKind.UNIX))
    assert (node.name, node.services, node.host, node.port) == ("n", ["s"], "10.0.0.9", 9100)


def test_shm_and_tcp_endpoints():
    t = Topology.load(FIXTURES / "valid" / "three_nodes.toml")
    assert t.transport_between("strategy", "risk_check") is TransportType.SHM
    assert t.connection_info("risk_check")["transport"] is TransportType.UNIX  # shm only when asked
    assert t.connection_info("risk_check", shm=True)["transport"] is TransportType.SHM
    assert t.connection_info("risk_check", shm=True)["path"] == "/tmp/mycelium-test/risk.sock"
    full = Topology.load(FIXTURES / "valid" / "full.toml", strict=True)  # every [limits] key the host knows
    assert full.connection_info("fix_gateway")["endpoint"] == "tcp:203.0.113.9:19000"
    assert full.find_node("trading").shm.enabled


def test_relative_paths_resolve_against_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "t.toml"
    path.write_text('socket_dir = "socks"\ncontracts = "c.yaml"\n[[nodes]]\nname = "a"\n'
                    '[[nodes]]\nname = "b"\nendpoint = { kind = "unix", addr = "../b.sock" }\n')
    t = Topology.load(path)
    assert t.socket_path("a") == tmp_path / "sub" / "socks" / "a.sock"
    assert t.socket_path("b") == tmp_path / "b.sock"
    assert t.contracts == tmp_path / "sub" / "c.yaml"
    assert t.connection_info("b")["path"] == str(tmp_path / "b.sock")


def test_loads_from_text():
    t = Topology.loads('[[nodes]]\nname = "x"\nservices = ["s"]\n')
    assert t.connection_info("s")["path"] == "/tmp/mycelium/x.sock"
    with pytest.raises(TopologyError):
        Topology.loads("[[nodes]\n")


@pytest.fixture
def node_topology(sock_dir):
    write_script(sock_dir, "echo.py", ECHO_SCRIPT)
    path = sock_dir / "topology.toml"
    path.write_text('socket_dir = "."\n'
                    '[[nodes]]\nname = "trading"\nservices = ["strategy", "worker"]\nscripts = ["echo.py"]\n'
                    '[[nodes]]\nname = "remote"\nservices = ["reporting"]\nhost = "127.0.0.2"\nport = 1\n')
    return path


def test_message_bus_from_topology(start_host, node_topology, sock_dir, messages, digest):
    host = start_host("--topology", node_topology, "--node", "trading")
    assert host.addresses == [f"unix:{sock_dir / 'trading.sock'}"]
    with mycelium.MessageBus.from_topology(node_topology, service_name="worker", schema_digest=digest) as bus:
        sub = bus.subscriber(messages.CounterUpdate)
        pub = bus.publisher_to("strategy", messages.TextMessage)  # same node: the same transport
        assert bus.transport_to("strategy") is bus.transport_to("worker")
        assert bus.transport_to("worker").describe() == f"unix:{sock_dir / 'trading.sock'}"
        pub.publish(messages.TextMessage(sender="bus", content="hey", timestamp=4))
        assert sub.recv(timeout=10) == messages.CounterUpdate(counter_id=3, value=8)
    with pytest.raises(ValueError, match="Service 'ghost' not found in topology"):
        mycelium.MessageBus.from_topology(node_topology, service_name="ghost", schema_digest=digest)


def test_message_bus_reports_unreachable_nodes(node_topology, digest):
    bus = mycelium.MessageBus.from_topology(node_topology, "worker", digest, connect_timeout=0.5)
    with pytest.raises(mycelium.TransportError, match="cannot connect to tcp:127.0.0.2:1"):
        bus.publisher_to("reporting", object)
    with pytest.raises(ValueError, match="Service 'ghost' not found"):
        bus.publisher_to("ghost", object)
    bus.close()
