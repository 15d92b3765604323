"""Fixtures of the soak and fault tests: the mycelium-host binary (CTest's MYCELIUM_HOST),
the bundled contracts' digest and generated message classes, a short socket folder."""

import os
import pathlib
import shutil
import sys
import tempfile

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "python" / "host"))  # wire.py and the host tests' helpers

import soak  # noqa: E402


@pytest.fixture(scope="session")
def host_binary():
    build = pathlib.Path(os.environ.get("MYCELIUM_BUILD_DIR", REPO / "build"))
    path = pathlib.Path(os.environ.get("MYCELIUM_HOST", build / "host" / "app" / "mycelium-host"))
    if not path.exists():
        pytest.fail(f"mycelium-host not built at {path}; build first or set MYCELIUM_HOST")
    return path


@pytest.fixture(scope="session")
def digest(host_binary):
    return soak.schema_digest(host_binary)


@pytest.fixture(scope="session")
def messages(host_binary, tmp_path_factory):
    """The path of the demo contracts' Python classes (`codegen --python`), for producer.py."""
    return soak.codegen_messages(host_binary, tmp_path_factory.mktemp("soak-codegen"))


@pytest.fixture
def sock_dir():
    """A folder of its own under /tmp for each test: sockaddr_un holds 107 bytes."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="myc-soak-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
