"""`mycelium-host check --topology FILE`: nodes, endpoints and routes; exit 0, or 2 with the error."""

import pathlib
import re
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
TOPOLOGIES = REPO / "tests" / "fixtures" / "topologies"


def invalid_fixtures():
    return sorted((TOPOLOGIES / "invalid").glob("*.toml"))


def valid_fixtures():
    return sorted((TOPOLOGIES / "valid").glob("*.toml"))


def expected_error(path: pathlib.Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# error: "), f"{path.name} has no '# error:' line"
    return first.removeprefix("# error: ").replace("{file}", str(path))


@pytest.mark.parametrize("path", valid_fixtures(), ids=lambda p: p.name)
def test_every_valid_topology_passes_and_lists_its_nodes(run_host, path):
    result = run_host("check", "--topology", path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"topology {path}: ")
    assert "\nroutes\n" in result.stdout


@pytest.mark.parametrize("path", invalid_fixtures(), ids=lambda p: p.name)
def test_every_invalid_topology_exits_2_with_its_message(run_host, path):
    result = run_host("check", "--topology", path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"mycelium-host: error: {expected_error(path)}"


def test_there_are_enough_fixtures():
    assert len(invalid_fixtures()) >= 10
    assert len(valid_fixtures()) >= 3


def test_three_nodes_prints_endpoints_and_the_route_of_every_pair(run_host):
    path = TOPOLOGIES / "valid" / "three_nodes.toml"
    result = run_host("check", "--topology", path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"topology {path}: 3 nodes\n")
    for name in ("trading", "risk", "gateway"):
        assert f"\nnode {name}\n" in out
    assert "  unix:     /tmp/mycelium-test/trading.sock (mode 0660)\n" in out
    assert "  tcp:      10.0.0.5:9000 (listen)\n" in out
    assert "  shm:      enabled, 1048576-byte rings, spin 50 us\n" in out
    assert "  slow:     legacy drop_oldest, client disconnect, peer disconnect\n" in out
    routes = out.split("\nroutes\n", 1)[1].splitlines()
    assert "  trading -> risk: shm via /tmp/mycelium-test/risk.sock" in routes
    assert "  risk -> trading: shm via /tmp/mycelium-test/trading.sock" in routes
    assert "  trading -> gateway: tcp 10.0.0.5:9000" in routes
    assert "  risk -> gateway: tcp 10.0.0.5:9000" in routes
    # The remote node cannot dial a local node without an address: the local side dials.
    unreachable = [line for line in routes if line.startswith("  gateway -> trading: unreachable (")]
    assert len(unreachable) == 1 and unreachable[0].endswith("; trading dials instead")
    assert len(routes) == 6  # every ordered pair of distinct nodes


def test_mycelium_topology_routes_over_unix_and_tcp(run_host):
    path = TOPOLOGIES / "valid" / "mycelium.toml"
    result = run_host("check", "--topology", path)
    assert result.returncode == 0, result.stderr
    assert "  trading -> execution: unix /tmp/mycelium/exec.sock\n" in result.stdout
    assert "  execution -> analytics: tcp 10.0.0.7:9000\n" in result.stdout


def test_a_single_node_has_no_routes(run_host):
    result = run_host("check", "--topology", TOPOLOGIES / "valid" / "minimal.toml")
    assert result.returncode == 0
    assert result.stdout.endswith("\nroutes\n")
    assert "\nnode solo\n" in result.stdout


def test_a_missing_file_exits_2_naming_it(run_host, tmp_path):
    missing = tmp_path / "nope.toml"
    result = run_host("check", "--topology", missing)
    assert result.returncode == 2
    assert result.stderr.strip() == f"mycelium-host: error: cannot open topology file: No such file or directory (in '{missing}')"


def test_topology_flag_is_required(run_host):
    result = run_host("check")
    assert result.returncode == 2
    assert "--topology" in result.stderr


@pytest.mark.parametrize("tables, expected, warning", [
    ('[nodes.queues]\npolicy = "block"',
     "legacy drop_oldest, client block, peer block (block: pause producers up to 250 ms, then disconnect)", None),
    ('[nodes.queues]\npolicy = "drop_oldest"', "legacy drop_oldest, client drop_oldest, peer drop_oldest", None),
    ('[nodes.queues]\npolicy = "fail"', "legacy drop_oldest, client disconnect, peer disconnect",
     '[nodes.queues] policy = "fail" reads as "disconnect" for links'),
    ('[nodes.slow_consumer]\nlegacy = "disconnect"\nclient = "drop_oldest"\npeer = "block"\nwait_ms = 40',
     "legacy disconnect, client drop_oldest, peer block (block: pause producers up to 40 ms, then disconnect)", None),
    ('', "legacy drop_oldest, client disconnect, peer disconnect", None),
])
def test_check_prints_the_slow_consumer_policy_of_each_kind(run_host, tmp_path, tables, expected, warning):
    topology = tmp_path / "shm.toml"
    topology.write_text(f"""
socket_dir = "{tmp_path}"
[[nodes]]
name = "a"
services = ["a"]
{tables}
[nodes.shm]
enabled = true
wait_ms = 250
""")
    result = run_host("check", "--topology", topology)
    assert result.returncode == 0, result.stderr
    assert f"  slow:     {expected}\n" in result.stdout
    if warning is None:
        assert result.stderr == ""
    else:
        assert f"mycelium-host: warning: {warning}" in result.stderr


def generated(tmp_path, nodes, extra=""):
    """A topology of `nodes` nodes from tests/bench/gen_topology.py (a quarter on this host,
    the rest on remote hosts of ten), with `extra` TOML appended."""
    sys.path.insert(0, str(REPO / "tests" / "bench"))
    try:
        import gen_topology
    finally:
        sys.path.pop(0)
    path = tmp_path / f"n{nodes}.toml"
    path.write_text(gen_topology.topology(nodes, str(tmp_path)) + extra)
    return path


def route_lines(out):
    return [line for line in out.split("\nroutes\n", 1)[1].splitlines() if " -> " in line]


def test_up_to_100_nodes_check_prints_every_node_and_pair(run_host, tmp_path):
    result = run_host("check", "--topology", generated(tmp_path, 100))
    assert result.returncode == 0, result.stderr
    assert "summary" not in result.stdout
    assert result.stdout.count("\nnode n") == 100
    assert len(route_lines(result.stdout)) == 100 * 99


def test_above_100_nodes_check_prints_a_summary_with_the_counts_of_every_pair(run_host, tmp_path):
    path = generated(tmp_path, 120)
    result = run_host("check", "--topology", path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert out.startswith(f"topology {path}: 120 nodes\n\nsummary (120 nodes, more than 100; --routes prints")
    assert " -> " not in out and "\nnode " not in out
    assert "  hosts:     30 nodes on this host, 90 on 9 other hosts\n" in out
    assert "\nroutes: 14280 ordered pairs\n" in out
    counts = dict(re.findall(r"^  (shm|unix|tcp|unreachable): +(\d+)", out, re.MULTILINE))
    # The same numbers as walking every pair with --routes.
    every = run_host("check", "--topology", path, "--routes")
    assert every.returncode == 0, every.stderr
    assert every.stdout.count("\nnode n") == 120
    lines = route_lines(every.stdout)
    assert len(lines) == 120 * 119
    walked = {kind: str(sum(1 for line in lines if line.split(": ", 1)[1].startswith(kind + " ")))
              for kind in ("shm", "unix", "tcp", "unreachable")}
    assert counts == walked
    assert "the 30 nodes on this host (n00000, n00001," in out and "and 20 more) cannot be dialled from the 90" in out


def test_above_100_nodes_problems_are_still_reported_in_full(run_host, tmp_path):
    warned = run_host("check", "--topology", generated(tmp_path, 150, "typo_key = 1\n"))
    assert warned.returncode == 0, warned.stderr
    assert "summary (150 nodes" in warned.stdout
    assert "mycelium-host: warning: unknown key 'typo_key'" in warned.stderr
    # Node 150 takes node 30's Unix socket (both on this host): exit 2, nothing on stdout.
    late = f'\n[[nodes]]\nname = "late"\nendpoint = {{ kind = "unix", addr = "{tmp_path}/n00030.sock" }}\n'
    clash = generated(tmp_path, 150, late)
    result = run_host("check", "--topology", clash)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"node 'late' uses unix socket '{tmp_path}/n00030.sock', already used by node 'n00030'" in result.stderr


def test_5000_nodes_are_checked_in_linear_time(run_host, tmp_path):
    # Once the lookups per pair made this minutes (2,400 nodes: 145 s); tests/bench/bench_check.py times it.
    result = run_host("check", "--topology", generated(tmp_path, 5000), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "\nroutes: 24995000 ordered pairs\n" in result.stdout


def test_check_help_names_the_routes_flag(run_host):
    result = run_host("check", "--help")
    assert result.returncode == 0
    assert "--routes" in result.stdout
