"""Fixtures for the SDK tests: real mycelium-host processes (tests/python/host/wire.py's
HostProcess), the SDK from pymodules/, message classes from `mycelium-host codegen`.

Each test gets its own short socket folder under /tmp (sockaddr_un holds 107 bytes, and
pytest's tmp_path can be longer) and TCP port 0.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
PYMODULES = REPO / "pymodules"
sys.path.insert(0, str(PYMODULES))
sys.path.insert(0, str(REPO / "tests" / "python" / "host"))  # wire.py
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # sdk_helpers.py

from sdk_helpers import CONTRACTS, ECHO_SCRIPT, load_module, write_script  # noqa: E402
from wire import HostProcess  # noqa: E402



def _build_dir():
    return pathlib.Path(os.environ.get("MYCELIUM_BUILD_DIR", REPO / "build"))


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def host_binary():
    path = pathlib.Path(os.environ.get("MYCELIUM_HOST", _build_dir() / "host" / "app" / "mycelium-host"))
    if not path.exists():
        pytest.fail(f"mycelium-host not built at {path}; build first or set MYCELIUM_HOST")
    return path


@pytest.fixture(scope="session")
def run_host(host_binary):
    """Runs mycelium-host to completion (with a timeout); returns the CompletedProcess."""

    def run(*args, timeout=60, **kwargs):
        return subprocess.run([str(host_binary), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, **kwargs)

    return run


@pytest.fixture(scope="session")
def codegen(run_host, tmp_path_factory):
    """codegen(contracts_path, module_name) -> the imported module `codegen --python` wrote."""
    out = tmp_path_factory.mktemp("codegen")

    def generate(contracts, name):
        path = out / f"{name}.py"
        result = run_host("codegen", "--contracts", contracts, "--python", path)
        assert result.returncode == 0, result.stderr
        return load_module(name, path)

    return generate


@pytest.fixture(scope="session")
def messages(codegen):
    """The demo contracts' classes (TextMessage, CounterUpdate, TradeTick, Signal, FeatureVector)."""
    return codegen(CONTRACTS, "sdk_test_messages")


@pytest.fixture(scope="session")
def digest(run_host):
    result = run_host("schema", "--contracts", CONTRACTS, "--json")
    return bytes.fromhex(json.loads(result.stdout)["digest"])


@pytest.fixture
def sock_dir():
    path = pathlib.Path(tempfile.mkdtemp(prefix="myc-sdk-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_host(host_binary):
    """start_host(*args, listens=1) -> a running HostProcess, stopped after the test."""
    hosts = []

    def start(*args, listens=1, timeout=20.0):
        host = HostProcess(host_binary, *args, listens=listens, timeout=timeout)
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop(timeout=10)


@pytest.fixture
def sdk_env():
    """The environment for a `python3 script.py` using the SDK from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PYMODULES), env.get("PYTHONPATH")]))
    env.pop("MYCELIUM_SOCKET", None)
    env.pop("MYCELIUM_ENDPOINT", None)
    env.pop("MYCELIUM_TOPOLOGY", None)
    env.pop("MYCELIUM_SERVICE", None)
    env.pop("MYCELIUM_SCHEMA_DIGEST", None)
    return env


@pytest.fixture
def echo_host(start_host, sock_dir):
    """A host whose script answers TextMessage with CounterUpdate(len(content), 2 * timestamp),
    listening on unix:<sock_dir>/echo.sock and tcp:127.0.0.1:0."""
    script = write_script(sock_dir, "echo.py", ECHO_SCRIPT)
    return start_host("--script", script, "--listen", f"unix:{sock_dir / 'echo.sock'}",
                      "--listen", "tcp:127.0.0.1:0", listens=2)
