"""Classes from `mycelium-host codegen --python` against the host's own description of the
layouts (`mycelium-host schema --json`), and through a host: the SDK publishes, the host's
C++ codec decodes (`tap` prints JSON); the host encodes (`pub --json`), the SDK decodes."""

import json
import math
import re
import struct
import subprocess
import time

import pytest

import mycelium
from sdk_helpers import CONTRACTS

ALL_TYPES = CONTRACTS.parents[1] / "tests" / "fixtures" / "contracts" / "valid" / "all_types.yaml"
SCALARS = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i8": "b", "i16": "h", "i32": "i", "i64": "q",
           "f32": "f", "f64": "d", "bool": "?"}


def scalar_value(kind, index):
    """A value of scalar `kind` that differs per field and exercises the range."""
    if kind == "bool":
        return True
    if kind == "f32":
        return 1.5 + index
    if kind == "f64":
        return -2.25 - index
    bits = struct.calcsize(SCALARS[kind]) * 8
    if kind.startswith("u"):
        return (1 << bits) - 1 - index
    return -(1 << (bits - 1)) + index


def sample(cls, layout):
    """An instance of `cls` with a distinct value in every field, as the layout describes it."""
    values = {}
    for index, field in enumerate(layout["fields"]):
        kind, cap = field["type"], field["capacity"]
        if kind in SCALARS:
            values[field["name"]] = scalar_value(kind, index)
        elif kind == "String":
            values[field["name"]] = ("hé" + "xyz" * cap)[:max(2, cap - 2)]
        elif kind.startswith("["):
            elem = re.match(r"\[(\w+); (\d+)\]", kind).group(1)
            if elem == "u8":
                values[field["name"]] = bytes(range(1, cap + 1))
            else:
                values[field["name"]] = tuple(scalar_value(elem, index + i) for i in range(cap))
        elif kind.startswith("Vec<"):
            elem = kind[4:-1]
            values[field["name"]] = tuple(scalar_value(elem, index + i) for i in range(min(cap, 2)))
        else:
            raise AssertionError(f"unknown field type {kind}")
    return cls(**values)


def decode_field(data, field):
    """A field's value read from `data` with the layout alone (no generated code)."""
    kind, offset, cap = field["type"], field["offset"], field["capacity"]
    if kind in SCALARS:
        return struct.unpack_from("<" + SCALARS[kind], data, offset)[0]
    if kind == "String":
        length = struct.unpack_from("<H", data, offset)[0]
        assert data[offset + 2:offset + 8] == bytes(6)
        return data[offset + 8:offset + 8 + length].decode()
    if kind.startswith("["):
        elem = re.match(r"\[(\w+); (\d+)\]", kind).group(1)
        if elem == "u8":
            return data[offset:offset + cap]
        return struct.unpack_from(f"<{cap}{SCALARS[elem]}", data, offset)
    elem = kind[4:-1]
    count = struct.unpack_from("<H", data, offset)[0]
    assert data[offset + 2:offset + 8] == bytes(6)
    return struct.unpack_from(f"<{count}{SCALARS[elem]}", data, offset + 8)


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("contracts", [CONTRACTS, ALL_TYPES], ids=["demo", "all_types"])
def test_generated_classes_match_the_schema_layouts(run_host, codegen, contracts):
    schema = json.loads(run_host("schema", "--contracts", contracts, "--json").stdout)
    module = codegen(contracts, f"layout_{contracts.stem}")
    assert module.SCHEMA_DIGEST.hex() == schema["digest"]
    for layout in schema["messages"]:
        cls = getattr(module, layout["name"])
        assert (cls.TYPE_ID, cls.SIZE, cls.TOPIC) == (layout["type_id"], layout["size"], layout["topic"])
        msg = sample(cls, layout)
        data = msg.to_bytes()
        assert len(data) == layout["size"]
        covered = bytearray(len(data))
        for field in layout["fields"]:
            value = decode_field(data, field)
            assert same(value, getattr(msg, field["name"])), (layout["name"], field["name"], value)
            if field["type"] in ("String",) or field["type"].startswith("Vec<"):
                covered[field["offset"]:field["offset"] + 2] = b"\x01\x01"
                used = 8 + (len(getattr(msg, field["name"]).encode()) if field["type"] == "String"
                            else len(getattr(msg, field["name"])) * struct.calcsize(SCALARS[field["type"][4:-1]]))
                covered[field["offset"] + 8:field["offset"] + used] = b"\x01" * (used - 8)
            else:
                covered[field["offset"]:field["offset"] + field["size"]] = b"\x01" * field["size"]
        # Every byte no field value occupies is zero: padding and unused capacity.
        assert all(b == 0 for b, c in zip(data, covered) if not c), layout["name"]
        assert cls.from_bytes(data) == msg
        with pytest.raises(ValueError):
            cls.from_bytes(data[:-1])


@pytest.fixture
def all_types_host(start_host, sock_dir):
    return start_host("--contracts", ALL_TYPES, "--listen", f"unix:{sock_dir / 'all.sock'}")


def test_sdk_publishes_what_the_host_decodes(all_types_host, host_binary, codegen, run_host):
    module = codegen(ALL_TYPES, "all_types_via_host")
    layout = next(m for m in json.loads(run_host("schema", "--contracts", ALL_TYPES, "--json").stdout)["messages"]
                  if m["name"] == "Everything")
    address = all_types_host.addresses[0]
    tap = subprocess.Popen([str(host_binary), "tap", "--connect", address, "--contracts", str(ALL_TYPES),
                            "--type", "Everything", "--count", "1", "--timeout", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        msg = sample(module.Everything, layout)
        with mycelium.UnixTransport(address[5:], module.SCHEMA_DIGEST) as t:
            pub = t.publisher(module.Everything)
            # tap subscribes after it connects: publish until it has printed one.
            deadline = time.monotonic() + 20
            while tap.poll() is None and time.monotonic() < deadline:
                pub.publish(msg)
                t.flush()
                time.sleep(0.05)
        out, err = tap.communicate(timeout=20)
    finally:
        if tap.poll() is None:
            tap.kill()
    assert tap.returncode == 0, err
    fields = json.loads(out.splitlines()[0])["fields"]
    for name, value in fields.items():
        expected = getattr(msg, name)
        if isinstance(expected, bytes):
            expected = "0x" + expected.hex()  # tap prints [u8; N] as hex
        assert same(value, expected), (name, value, expected)


def test_sdk_decodes_what_the_host_encodes(all_types_host, run_host, codegen):
    module = codegen(ALL_TYPES, "all_types_from_host")
    address = all_types_host.addresses[0]
    t = mycelium.UnixTransport(address[5:], module.SCHEMA_DIGEST)
    sub = t.subscriber(module.Everything)
    t.connect()
    fields = {"a_u8": 200, "a_u16": 65000, "a_u32": 4000000000, "a_u64": 2 ** 64 - 1, "a_i8": -100, "a_i16": -30000,
              "a_i32": -2000000000, "a_i64": -(2 ** 62), "a_f32": 0.25, "a_f64": 1e100, "a_bool": True, "name": "héé",
              "raw": [9, 8, 7], "floats": [1.0, -2.5, 4.0], "ids": [1, 2, 3], "samples": [0.125], "flag": True}
    result = run_host("pub", "--connect", address, "--contracts", ALL_TYPES, "--type", "Everything",
                      "--json", json.dumps(fields), timeout=30)
    assert result.returncode == 0, result.stderr
    got = sub.recv(timeout=10)
    for name, value in fields.items():
        actual = getattr(got, name)
        if isinstance(actual, bytes):
            actual = list(actual)
        assert same(actual, value), (name, actual, value)
    t.close()
