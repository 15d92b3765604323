"""Cross-language codegen test: the C++ header and the Python module generated at build
time from tests/fixtures/contracts/valid/all_types.yaml encode the same values to the
same bytes, and each decodes the other's output."""

import importlib.util
import json
import math
import subprocess
import sys

import pytest


def load_module(name, path):
    """Imports the generated file `path` as module `name` (registered in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(build_dir):
    return load_module("all_types", build_dir / "generated" / "all_types.py")


@pytest.fixture(scope="module")
def cpp_bytes(build_dir):
    out = subprocess.run([str(build_dir / "tests" / "cpp" / "codegen" / "codegen_sample")], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return {name: (bytes.fromhex(value) if name != "digest" else value) for name, value in json.loads(out).items()}


def sample_values(m):
    """The values codegen_sample.cpp sets, built with the generated Python classes."""
    return {
        "TextMessage": m.TextMessage(sender="alice", content="héllo wörld", timestamp=1700000000123456789),
        "CounterUpdate": m.CounterUpdate(counter_id=7, value=0xFFFFFFFFFFFFFFFF),
        "Everything": m.Everything(
            a_u8=255, a_u16=65535, a_u32=4000000000, a_u64=(1 << 63) + 5, a_i8=-128, a_i16=-300,
            a_i32=-70000, a_i64=-(1 << 40), a_f32=1.5, a_f64=-2.25, a_bool=True, name="héy",
            raw=b"\x01\x02\x03", floats=(0.5, -1.0, 3.25), ids=(10, 20), samples=(3.5,), flag=True),
    }


@pytest.mark.parametrize("name", ["TextMessage", "CounterUpdate", "Everything"])
def test_python_bytes_equal_cpp_bytes(generated, cpp_bytes, name):
    assert sample_values(generated)[name].to_bytes() == cpp_bytes[name]


@pytest.mark.parametrize("name", ["TextMessage", "CounterUpdate", "Everything"])
def test_python_decodes_cpp_bytes(generated, cpp_bytes, name):
    cls = getattr(generated, name)
    assert cls.from_bytes(cpp_bytes[name]) == sample_values(generated)[name]


def test_padding_bytes_are_zero(generated, cpp_bytes):
    data = cpp_bytes["Everything"]
    assert data[1] == 0                      # between a_u8 and a_u16
    assert data[58:62] == "héy".encode()     # 'name': header at 50, 4 of its 5 bytes used
    assert data[62:64] == b"\x00\x00"        # the unused byte, then the FixedStr's padding
    assert data[129:136] == bytes(7)         # tail padding to the 8-byte alignment


def test_digest_is_the_same_in_both_languages(generated, cpp_bytes, host_binary, repo):
    assert generated.SCHEMA_DIGEST.hex() == cpp_bytes["digest"]
    contracts = repo / "tests" / "fixtures" / "contracts" / "valid" / "all_types.yaml"
    import hashlib
    assert generated.SCHEMA_DIGEST == hashlib.sha256(contracts.read_bytes()).digest()


def test_layouts_match_schema_json(generated, run_host, repo):
    contracts = repo / "tests" / "fixtures" / "contracts" / "valid" / "all_types.yaml"
    result = run_host("schema", "--contracts", contracts, "--json")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert bytes.fromhex(schema["digest"]) == generated.SCHEMA_DIGEST
    for message in schema["messages"]:
        cls = getattr(generated, message["name"])
        assert cls.TYPE_ID == message["type_id"]
        assert cls.TOPIC == message["topic"]
        assert cls.SIZE == message["size"] == cls._STRUCT.size
        assert list(cls.FIELDS) == [f["name"] for f in message["fields"]]
        assert generated.MESSAGES[cls.TYPE_ID] is cls


def test_validation_names_message_field_and_rule(generated):
    bad = generated.Everything(name="")
    with pytest.raises(generated.ValidationError) as err:
        bad.to_bytes()
    assert str(err.value) == "Everything.name: not_empty: must not be empty"
    assert (err.value.message, err.value.field, err.value.rule) == ("Everything", "name", "not_empty")

    with pytest.raises(generated.ValidationError, match=r"^Everything.name: max_length: length 6 is above 5$"):
        generated.Everything(name="ababab").to_bytes()
    with pytest.raises(generated.ValidationError, match=r"^Everything.ids: max_length: length 4 is above 3$"):
        generated.Everything(name="ok", ids=(1, 2, 3, 4)).to_bytes()
    with pytest.raises(generated.ValidationError, match=r"^Everything.a_u8: range: 256 is outside the range of u8$"):
        generated.Everything(name="ok", a_u8=256).to_bytes()
    with pytest.raises(generated.ValidationError, match=r"^TextMessage.sender: max_length: length 33 is above 32$"):
        generated.TextMessage(sender="x" * 33).to_bytes()


def test_decoding_rejects_corrupt_lengths(generated, cpp_bytes):
    data = bytearray(cpp_bytes["TextMessage"])
    data[0:2] = (33).to_bytes(2, "little")
    with pytest.raises(generated.DecodeError, match="TextMessage.sender: length 33 exceeds the capacity 32"):
        generated.TextMessage.from_bytes(bytes(data))
    with pytest.raises(generated.DecodeError, match="expected 312 bytes, got 311"):
        generated.TextMessage.from_bytes(bytes(data[:-1]))


def test_f32_round_trips_through_bytes(generated):
    msg = generated.Everything(name="ok", a_f32=0.1)
    back = generated.Everything.from_bytes(msg.to_bytes())
    assert math.isclose(back.a_f32, 0.1, rel_tol=1e-7)


def test_committed_demo_header_matches_the_bundled_contracts(run_host, repo, tmp_path):
    """host/src/demo/demo_messages.hpp is generated code checked in: it must not drift."""
    out = tmp_path / "demo_messages.hpp"
    result = run_host("codegen", "--contracts", repo / "scripts" / "contracts.yaml", "--cpp", out,
                      "--namespace", "mycelium::demo")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (repo / "host" / "src" / "demo" / "demo_messages.hpp").read_text(), (
        "regenerate with: mycelium-host codegen --contracts scripts/contracts.yaml "
        "--cpp host/src/demo/demo_messages.hpp --namespace mycelium::demo")


SCALARS = """
messages:
  Scalars:
    tlv_type: 1300
    fields: {u8: u8, u16: u16, u32: u32, u64: u64, i8: i8, i16: i16, i32: i32, i64: i64, f32: f32, f64: f64, flag: bool}
"""
RANGES = {"u8": (0, 255), "u16": (0, 65535), "u32": (0, 2**32 - 1), "u64": (0, 2**64 - 1),
          "i8": (-128, 127), "i16": (-32768, 32767), "i32": (-2**31, 2**31 - 1), "i64": (-2**63, 2**63 - 1)}


def test_a_message_of_scalars_packs_first_and_names_a_refused_field(run_host, tmp_path):
    """A class whose fields are all scalars packs before it validates (one call less per
    publish); what it accepts and the errors it raises are those of validate-then-pack."""
    contracts = tmp_path / "scalars.yaml"
    contracts.write_text(SCALARS)
    result = run_host("codegen", "--contracts", contracts, "--python", tmp_path / "scalars.py")
    assert result.returncode == 0, result.stderr
    m = load_module("scalars", tmp_path / "scalars.py")
    assert "self.validate()\n        return" not in (tmp_path / "scalars.py").read_text()  # the pack-first form

    for field, (lo, hi) in RANGES.items():
        for good in (lo, hi):
            msg = m.Scalars(**{field: good}, f32=1.5, f64=-2.25, flag=True)
            assert m.Scalars.from_bytes(msg.to_bytes()) == msg
        for bad in (lo - 1, hi + 1):
            with pytest.raises(m.ValidationError, match=rf"^Scalars.{field}: range: {bad} is outside the range of {field}$"):
                m.Scalars(**{field: bad}).to_bytes()
    # Values of the wrong type are refused as before, by pack (struct.error) or by the range
    # comparison (TypeError); neither is taken for a range error.
    import struct
    with pytest.raises(struct.error):
        m.Scalars(u64=1.5).to_bytes()
    with pytest.raises(TypeError):
        m.Scalars(u64="7").to_bytes()
    with pytest.raises(struct.error):
        m.Scalars(f64="x").to_bytes()
