"""Cross-language codegen test for Mycelium's own constructs: the C++ header and the
Python module generated at build time from tests/fixtures/contracts/valid/mycelium_syntax.yaml
(U256, [u8; N], Vec<[u8; N]>, arrays of arrays, default capacities, padding) encode the
same values to the same bytes, and each decodes the other's output."""

import json
import struct
import subprocess

import pytest

from test_codegen import load_module

NAMES = ["TokenInfo", "PoolSnapshot", "RouteSignal", "MerkleProof", "PaddedQuote"]


@pytest.fixture(scope="module")
def generated(build_dir):
    return load_module("mycelium_syntax", build_dir / "generated" / "mycelium_syntax.py")


@pytest.fixture(scope="module")
def cpp_bytes(build_dir):
    sample = build_dir / "tests" / "cpp" / "codegen" / "codegen_mycelium_sample"
    out = subprocess.run([str(sample)], capture_output=True, text=True, timeout=30, check=True).stdout
    return {name: (bytes.fromhex(value) if name != "digest" else value) for name, value in json.loads(out).items()}


def counting(n, first):
    """n bytes counting up from `first`, as codegen_mycelium_sample.cpp's counting<N>()."""
    return bytes((first + i) & 0xFF for i in range(n))


def sample_values(m):
    """The values codegen_mycelium_sample.cpp sets, built with the generated Python classes."""
    return {
        "TokenInfo": m.TokenInfo(address=counting(20, 1), ticker="WETH", precision=18, network=1),
        "PoolSnapshot": m.PoolSnapshot(pool=counting(20, 0xA0), venue=7, reserve_a=10**18,
                                       reserve_b=counting(32, 0xC0), tick=-887272, block=19000000),
        "RouteSignal": m.RouteSignal(id=42, hops=[counting(20, 0x10), counting(20, 0x30), counting(20, 0x50)],
                                     profit=0.125, gas=21000, deadline=19000100),
        "MerkleProof": m.MerkleProof(root=counting(32, 0x80), siblings=[counting(32, i * 32) for i in range(6)],
                                     memo="prüf", flags=[1, 0, 1], digests=[counting(32, 0x40)], leaf_index=5),
        "PaddedQuote": m.PaddedQuote(flag=1, price=-3.5, qty=4000000000, side=2),
    }


@pytest.mark.parametrize("name", NAMES)
def test_python_bytes_equal_cpp_bytes(generated, cpp_bytes, name):
    assert sample_values(generated)[name].to_bytes() == cpp_bytes[name]


@pytest.mark.parametrize("name", NAMES)
def test_python_decodes_cpp_bytes(generated, cpp_bytes, name):
    decoded = getattr(generated, name).from_bytes(cpp_bytes[name])
    assert decoded == sample_values(generated)[name]


def test_u256_is_32_big_endian_bytes_in_both_languages(generated, cpp_bytes):
    data = cpp_bytes["PoolSnapshot"]
    assert data[22:54] == (10**18).to_bytes(32, "big")   # reserve_a at 22: alignment 1, no padding
    decoded = generated.PoolSnapshot.from_bytes(data)
    assert decoded.reserve_a == (10**18).to_bytes(32, "big")
    assert isinstance(decoded.reserve_b, bytes) and len(decoded.reserve_b) == 32


def test_vectors_of_arrays_decode_to_lists_of_bytes(generated, cpp_bytes):
    route = generated.RouteSignal.from_bytes(cpp_bytes["RouteSignal"])
    assert route.hops == [counting(20, 0x10), counting(20, 0x30), counting(20, 0x50)]
    assert isinstance(route.hops, list)
    proof = generated.MerkleProof.from_bytes(cpp_bytes["MerkleProof"])
    assert proof.siblings == [counting(32, i * 32) for i in range(6)]
    assert proof.flags == [1, 0, 1]


def test_padding_is_where_rust_puts_it(cpp_bytes):
    """PaddedQuote by hand: u8, 7 zero bytes, f64, u32, u8, 3 zero bytes of tail padding."""
    expected = struct.pack("<B7xdIB3x", 1, -3.5, 4000000000, 2)
    assert len(expected) == 24
    assert cpp_bytes["PaddedQuote"] == expected


def test_default_capacities_shape_the_bytes(cpp_bytes):
    data = cpp_bytes["MerkleProof"]
    assert len(data) == 426
    assert data[224:226] == struct.pack("<H", len("prüf".encode()))   # memo: String, capacity 32
    assert data[264:266] == struct.pack("<H", 3)                      # flags: Vec<u8>, capacity 16
    assert data[288:290] == struct.pack("<H", 1)                      # digests: Vec<[u8; 32]>, capacity 4


def test_digest_is_the_same_in_both_languages(generated, cpp_bytes):
    assert generated.SCHEMA_DIGEST.hex() == cpp_bytes["digest"]
