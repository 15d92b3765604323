"""Runtime(topology_path=..., service_name=...) inside the host: honoured on the node the
topology puts the service on (its mesh routes as the file says), a ValueError naming the
node to run as everywhere else. Never silently ignored."""

import textwrap

from wire import HostProcess

PROBE = """
import mycelium_native as mn

def attempt(label, **kwargs):
    try:
        rt = mn.Runtime(**kwargs)
    except ValueError as e:
        print(f"{label}: ValueError: {e}", flush=True)
    else:
        print(f"{label}: ok", flush=True)
        rt.close()

attempt("own", topology_path=TOPOLOGY, service_name="alpha-service")
attempt("other", topology_path=TOPOLOGY, service_name="beta-service")
attempt("missing", topology_path=TOPOLOGY, service_name="nobody")
attempt("no-service", topology_path=TOPOLOGY)
attempt("bad-file", topology_path=TOPOLOGY + ".nope", service_name="alpha-service")
print("probe done", flush=True)
"""


def write_files(tmp_path):
    topology = tmp_path / "topology.toml"
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(PROBE).replace("TOPOLOGY", repr(str(topology))))
    topology.write_text(f'socket_dir = "{tmp_path}"\n'
                        '[[nodes]]\nname = "alpha"\nservices = ["alpha-service"]\nscripts = ["probe.py"]\n'
                        '[[nodes]]\nname = "beta"\nservices = ["beta-service"]\n')
    return topology, script


def results(host):
    host.wait_for(r"^probe done")
    return {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in host.lines() if ": " in line}


def test_on_the_service_node_it_routes_and_elsewhere_it_says_where_to_run(host_binary, tmp_path):
    topology, _ = write_files(tmp_path)
    host = HostProcess(host_binary, "--topology", topology, "--node", "alpha")
    try:
        seen = results(host)
    finally:
        host.stop()
    assert seen["own"] == "ok"
    assert seen["other"].startswith("ValueError: Runtime(topology_path=")
    assert "'beta-service' is a service of node 'beta', but this host is node 'alpha'" in seen["other"]
    assert f"mycelium-host --topology {topology} --node beta" in seen["other"]
    assert f"no node of '{topology}' has the service 'nobody'" in seen["missing"]
    assert "give service_name= too" in seen["no-service"]
    assert "bad-file: ValueError: " in "bad-file: " + seen["bad-file"] and ".nope" in seen["bad-file"]


def test_a_plain_host_refuses_a_topology_it_does_not_run(host_binary, tmp_path):
    topology, script = write_files(tmp_path)
    host = HostProcess(host_binary, "--script", script, "--listen", f"unix:{tmp_path / 'plain.sock'}")
    try:
        seen = results(host)
    finally:
        host.stop()
    assert "this host was not started from a topology" in seen["own"]
    assert f"start it as that node: mycelium-host --topology {topology} --node alpha" in seen["own"]
