"""The Python module `mycelium-host codegen --python` writes: dataclasses with Mycelium's
keyword constructor, U256 as 32 bytes (an int accepted), lists for sequences, the seven
rules with the registry's own texts (checked against `pub --json`, which validates with
the C++ registry), sensitive messages, and contracts text that cannot break the source."""

import dataclasses
import json
import textwrap

import pytest

from test_codegen import load_module
from test_inhost_types import GOOD, RULES, U256_MAX


def generate(run_host, tmp_path, contracts, name):
    out = tmp_path / f"{name}.py"
    result = run_host("codegen", "--contracts", contracts, "--python", out)
    assert result.returncode == 0, result.stderr
    return load_module(name, out)


@pytest.fixture(scope="module")
def inhost_contracts(repo):
    return repo / "tests" / "fixtures" / "contracts" / "valid" / "inhost_types.yaml"


@pytest.fixture
def inhost(run_host, tmp_path, inhost_contracts):
    return generate(run_host, tmp_path, inhost_contracts, "gen_inhost_types")


@pytest.fixture(scope="module")
def mycelium(build_dir):
    return load_module("mycelium_syntax", build_dir / "generated" / "mycelium_syntax.py")


def pub_error(run_host, tmp_path, contracts, type_name, fields):
    """The registry's text for `fields`, as `pub --json` prints it (it validates before connecting)."""
    pub = run_host("pub", "--connect", f"unix:{tmp_path / 'none.sock'}", "--contracts", contracts,
                   "--type", type_name, "--json", json.dumps(fields), timeout=30)
    assert pub.returncode == 2, pub.stderr
    prefix = "mycelium-host: error: --json: "
    assert pub.stderr.startswith(prefix), pub.stderr
    return pub.stderr.strip()[len(prefix):]


def test_classes_are_dataclasses_with_mycelium_constructor(mycelium):
    m = mycelium
    quote = m.PaddedQuote(1, -3.5, 7, 2)  # positional, in the contracts' order, as Mycelium's dataclasses
    assert quote == m.PaddedQuote(flag=1, price=-3.5, qty=7, side=2)
    assert dataclasses.is_dataclass(quote)
    assert [f.name for f in dataclasses.fields(quote)] == list(m.PaddedQuote.FIELDS) == ["flag", "price", "qty", "side"]
    assert dataclasses.asdict(quote) == {"flag": 1, "price": -3.5, "qty": 7, "side": 2}
    moved = dataclasses.replace(quote, qty=8)
    assert moved.qty == 8 and quote.qty == 7
    assert m.PaddedQuote.from_bytes(moved.to_bytes()) == moved
    assert repr(quote) == "PaddedQuote(flag=1, price=-3.5, qty=7, side=2)"
    with pytest.raises(AttributeError):
        quote.no_such_field = 1  # slots: a typo is an error, not a silent new attribute
    # Defaults are the C++ value-initialisation, and sequences are never shared.
    a, b = m.MerkleProof(), m.MerkleProof()
    assert a.siblings == [bytes(32)] * 6 and a.flags == [] and a.root == bytes(32)
    a.flags.append(1)
    assert b.flags == []
    assert m.MerkleProof.from_bytes(b.to_bytes()) == b


def test_u256_is_32_bytes_and_an_int_is_accepted(mycelium):
    m = mycelium
    pool = m.PoolSnapshot(reserve_a=10**18, reserve_b=(5).to_bytes(32, "big"))
    assert pool.reserve_a == (10**18).to_bytes(32, "big") and pool.reserve_b == (5).to_bytes(32, "big")
    pool.reserve_a = U256_MAX  # assigned later as an int: packed all the same
    assert m.PoolSnapshot.from_bytes(pool.to_bytes()).reserve_a == b"\xff" * 32
    assert m.PoolSnapshot(reserve_a=bytearray(32)).reserve_a == bytes(32)


def test_u256_errors_are_the_in_host_classes_texts(inhost):
    """The same values and texts as test_inhost_types.py's "bad u256" and "bad sequence" cases."""
    range_text = "is outside the range of U256 (0 to 2**256-1)"
    expected = {
        -1: f"PoolState.reserve: range: -1 {range_text}",
        U256_MAX + 1: f"PoolState.reserve: range: {U256_MAX + 1} {range_text}",
        "12": "PoolState.reserve: type: expected 32 bytes or an int, got str",
        b"12": "PoolState.reserve: size: expected 32 bytes, got 2",
        1.0: "PoolState.reserve: type: expected 32 bytes or an int, got float",
    }
    for value, text in expected.items():
        with pytest.raises(inhost.ValidationError) as err:
            inhost.PoolState(reserve=value)
        assert str(err.value) == text
        assert (err.value.message, err.value.field) == ("PoolState", "reserve")
    bad_sequences = {
        "PoolState.hops: size: element 0: expected 20 bytes, got 19": dict(hops=[bytes(19)]),
        "PoolState.siblings: size: expected 6 values, got 5": dict(siblings=[bytes(32)] * 5),
        f"PoolState.amounts: range: element 1: -1 {range_text}": dict(amounts=[1, -1]),
        "PoolState.hops: max_length: length 5 is above 4": dict(hops=[bytes(20)] * 5),
    }
    for text, fields in bad_sequences.items():
        with pytest.raises(inhost.ValidationError) as err:
            inhost.PoolState(**fields).to_bytes()
        assert str(err.value) == text


def test_the_seven_rules_have_the_registrys_texts(inhost, run_host, tmp_path, inhost_contracts):
    def make(fields):
        return inhost.OrderRules(**{**fields, "owner": bytes.fromhex(fields["owner"])})

    make(GOOD).to_bytes()  # passes every rule
    for rule, change, text in RULES:
        fields = {**GOOD, **change}
        with pytest.raises(inhost.ValidationError) as err:
            make(fields).to_bytes()
        assert str(err.value) == text, rule
        assert err.value.rule == rule and isinstance(err.value, ValueError)
        assert text == pub_error(run_host, tmp_path, inhost_contracts, "OrderRules",
                                 {**fields, "owner": "0x" + fields["owner"]})


BOUNDS = """
messages:
  Bounded:
    tlv_type: 3000
    fields:
      ratio: {type: f32, validation: [{min: 0.1}, {max: 2.5}]}
      price: {type: f64, validation: [{min: -1}, {max: 1e16}]}
      weights:
        type: "Vec<f64>"
        validation: [{max_length: 4}, {min: 0.5}]
      levels:
        type: "[i16; 3]"
        validation: [{min: -3}, {max: 3}]
      count: {type: u64, validation: [{not_zero: true}, {max: 18446744073709551615}]}
"""


@pytest.mark.parametrize("fields", [
    {"ratio": 0.09999999},        # below 0.1 as sent: the f32 nearest to it
    {"ratio": 2.5000003},         # the f32 above 2.5
    {"price": -2},                # an int given for a float: '-2' as C++ prints it
    {"price": 2e16},
    {"price": -1.5},
    {"weights": [1, 0.25]},
    {"weights": [1, 2, 3, 4, 5]},
    {"levels": [0, 4, 0]},
    {"levels": [-4, 0, 0]},
    {"count": 0},
])
def test_bounds_have_the_registrys_texts(run_host, tmp_path, fields):
    contracts = tmp_path / "bounds.yaml"
    contracts.write_text(BOUNDS)
    m = generate(run_host, tmp_path, contracts, "gen_bounds")
    good = {"ratio": 1.0, "price": 0.0, "weights": [], "levels": [0, 0, 0], "count": 1}
    m.Bounded(**good).to_bytes()
    m.Bounded(**{**good, "ratio": 2.5000001}).to_bytes()  # sent as the f32 2.5: within the bound, as C++ sees it
    with pytest.raises(m.ValidationError) as err:
        m.Bounded(**{**good, **fields}).to_bytes()
    assert str(err.value) == pub_error(run_host, tmp_path, contracts, "Bounded", {**good, **fields})


def test_nan_is_refused_by_a_bound(run_host, tmp_path):
    contracts = tmp_path / "bounds.yaml"
    contracts.write_text(BOUNDS)
    m = generate(run_host, tmp_path, contracts, "gen_bounds_nan")
    with pytest.raises(m.ValidationError, match=r"^Bounded.price: min: value nan cannot be compared with -1$"):
        m.Bounded(price=float("nan"), ratio=1.0, count=1).to_bytes()


def test_a_sensitive_message_hides_its_values(inhost, mycelium):
    secret = -987654
    with pytest.raises(inhost.ValidationError) as err:
        inhost.SecretOrder(limit=secret).to_bytes()
    assert str(err.value) == "SecretOrder.limit: min: value is below 0"
    with pytest.raises(inhost.ValidationError) as err:
        inhost.SecretOrder(size=secret)
    assert str(err.value) == "SecretOrder.size: range: value is outside the range of U256 (0 to 2**256-1)"
    route = mycelium.RouteSignal(id=secret & 0xFFFF, hops=[bytes(20)] * 2, gas=1)
    assert repr(route) == "RouteSignal(<5 fields of a sensitive message>)"
    assert str(secret & 0xFFFF) not in repr(route)


def test_schema_section_becomes_constants(mycelium):
    assert (mycelium.SCHEMA_ID, mycelium.SCHEMA_VERSION, mycelium.SCHEMA_MIN_COMPATIBLE) == (0x5445535, 3, 2)


def test_text_from_the_contracts_cannot_break_the_python_module(run_host, tmp_path):
    hostile = "ends here \"\"\"\nimport os; os._exit(99)\r\n' \\ \x0b tail"
    contracts = tmp_path / "hostile.yaml"
    contracts.write_text(textwrap.dedent(f"""
        messages:
          Hostile:
            tlv_type: 3100
            description: {json.dumps(hostile)}
            fields:
              class:
                type: u8
                description: {json.dumps(hostile)}
              from: {{type: "Vec<u8>", validation: [{{max_length: 2}}]}}
        """))
    m = generate(run_host, tmp_path, contracts, "gen_hostile")  # importing it ran nothing
    assert m.Hostile.__doc__.startswith(hostile + "\n\nFields:\n")
    msg = m.Hostile(class_=3, from_=[1, 2])
    assert m.Hostile.FIELDS == ("class_", "from_")
    assert m.Hostile.from_bytes(msg.to_bytes()) == msg
    with pytest.raises(m.ValidationError, match=r"^Hostile.from: max_length: length 3 is above 2$"):
        m.Hostile(from_=[1, 2, 3]).to_bytes()
