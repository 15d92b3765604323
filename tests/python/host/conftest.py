"""Shared fixtures: the mycelium-host binary and the build folder, from CTest's environment."""

import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


def _build_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("MYCELIUM_BUILD_DIR", REPO / "build"))


@pytest.fixture(scope="session")
def build_dir() -> pathlib.Path:
    return _build_dir()


@pytest.fixture(scope="session")
def host_binary() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("MYCELIUM_HOST", _build_dir() / "host" / "app" / "mycelium-host"))
    if not path.exists():
        pytest.fail(f"mycelium-host not built at {path}; build first or set MYCELIUM_HOST")
    return path


@pytest.fixture(scope="session")
def repo() -> pathlib.Path:
    return REPO


@pytest.fixture
def run_host(host_binary):
    """Runs mycelium-host to completion with a timeout and returns the CompletedProcess."""

    def run(*args, timeout=60, **kwargs):
        return subprocess.run([str(host_binary), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, **kwargs)

    return run


@pytest.fixture
def digest(run_host, repo):
    """The schema digest of the bundled contracts (scripts/contracts.yaml)."""
    result = run_host("schema", "--contracts", repo / "scripts" / "contracts.yaml", "--json")
    return bytes.fromhex(json.loads(result.stdout)["digest"])
