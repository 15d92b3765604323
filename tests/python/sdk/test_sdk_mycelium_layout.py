"""A module in the shape Mycelium's codegen writes (dataclasses over
`mycelium.protocol.runtime`) encodes the C layout, padding included: its messages reach
an in-host script through a real host, field for field, and the script's reply decodes."""

import json

import mycelium
import pytest

from sdk_helpers import address_of, load_module, write_script

CONTRACTS = """
messages:
  PaddedQuote:
    tlv_type: 3201
    description: "7 bytes of padding after flag, 3 at the end"
    fields:
      flag: {type: u8}
      price: {type: f64}
      qty: {type: u32}
      side: {type: u8}
  PoolNote:
    tlv_type: 3202
    description: "a String of odd capacity, a U256, a Vec of addresses, then a u64"
    fields:
      kind: {type: u8}
      label:
        type: String
        validation:
          - max_length: 5
      amount: {type: U256}
      pools:
        type: "Vec<[u8; 20]>"
        validation:
          - max_length: 2
      seq: {type: u64}
"""

# What Mycelium's `--python-out` writes for these contracts (its shape; our own text).
MYCELIUM_SHAPED = '''
"""AUTO-GENERATED from contracts.yaml - DO NOT EDIT"""
from __future__ import annotations
from dataclasses import dataclass
from typing import ClassVar, List
from mycelium.protocol.runtime import FieldDef, FixedBytes, FixedStr, FixedVecBytes, MessageDef, Primitive, register_message

@dataclass
class PaddedQuote:
    """7 bytes of padding after flag, 3 at the end"""
    TYPE_ID: ClassVar[int] = 3201
    TOPIC: ClassVar[str] = "padded_quote"
    __definition__: ClassVar[MessageDef]
    flag: int
    price: float
    qty: int
    side: int
    def to_bytes(self) -> bytes:
        return self.__definition__.encode(self)
    @classmethod
    def from_bytes(cls, payload: bytes) -> "PaddedQuote":
        return cls.__definition__.decode(cls, payload)

PaddedQuote.__definition__ = MessageDef(name="PaddedQuote", type_id=3201, topic="padded_quote",
    fields=[FieldDef("flag", Primitive.U8), FieldDef("price", Primitive.F64), FieldDef("qty", Primitive.U32),
            FieldDef("side", Primitive.U8)], dataclass=PaddedQuote)
register_message(PaddedQuote.__definition__)

@dataclass
class PoolNote:
    TYPE_ID: ClassVar[int] = 3202
    TOPIC: ClassVar[str] = "pool_note"
    __definition__: ClassVar[MessageDef]
    kind: int
    label: str
    amount: bytes
    pools: List[bytes]
    seq: int
    def to_bytes(self) -> bytes:
        return self.__definition__.encode(self)
    @classmethod
    def from_bytes(cls, payload: bytes) -> "PoolNote":
        return cls.__definition__.decode(cls, payload)

PoolNote.__definition__ = MessageDef(name="PoolNote", type_id=3202, topic="pool_note",
    fields=[FieldDef("kind", Primitive.U8), FieldDef("label", FixedStr(5)), FieldDef("amount", FixedBytes(32)),
            FieldDef("pools", FixedVecBytes(element_size=20, capacity=2)), FieldDef("seq", Primitive.U64)],
    dataclass=PoolNote)
register_message(PoolNote.__definition__)
'''

# The in-host side: prints what arrived, answers a quote with qty + 1.
SCRIPT = """
import json
import mycelium_native as mn
from mycelium_native.messages import PaddedQuote, PoolNote

@mn.subscribe(PaddedQuote)
def on_quote(q):
    print(json.dumps({"flag": q.flag, "price": q.price, "qty": q.qty, "side": q.side}), flush=True)
    mn.publish(PaddedQuote(flag=q.flag, price=q.price * 2, qty=q.qty + 1, side=q.side))

@mn.subscribe(PoolNote)
def on_note(n):
    print(json.dumps({"kind": n.kind, "label": n.label, "amount": int.from_bytes(n.amount, "big"),
                      "pools": [p.hex() for p in n.pools], "seq": n.seq}), flush=True)
"""


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    """The Mycelium-shaped module, imported once: its register_message() refuses a type id twice."""
    path = tmp_path_factory.mktemp("shaped") / "mycelium_shaped.py"
    path.write_text(MYCELIUM_SHAPED)
    return load_module("mycelium_shaped_messages", path)


def test_layout_equals_the_hosts(run_host, codegen, sock_dir, shaped):
    contracts = sock_dir / "padded.yaml"
    contracts.write_text(CONTRACTS)
    ours = codegen(contracts, "padded_layout_ours")
    schema = json.loads(run_host("schema", "--contracts", contracts, "--json").stdout)
    for message in schema["messages"]:
        definition = getattr(shaped, message["name"]).__definition__
        assert definition.size == message["size"], message["name"]
        assert list(definition.offsets) == [f["offset"] for f in message["fields"]], message["name"]
    assert shaped.PaddedQuote.__definition__.size == 24

    quote = dict(flag=1, price=-3.5, qty=4_000_000_000, side=2)
    assert shaped.PaddedQuote(**quote).to_bytes() == ours.PaddedQuote(**quote).to_bytes()
    note = dict(kind=9, label="héy", amount=(10**18).to_bytes(32, "big"), pools=[b"\x11" * 20], seq=77)
    data = shaped.PoolNote(**note).to_bytes()
    assert data == ours.PoolNote(**note).to_bytes()
    assert shaped.PoolNote.from_bytes(data) == shaped.PoolNote(**note)


def test_padded_messages_reach_an_in_host_script_field_for_field(run_host, start_host, sock_dir, shaped):
    contracts = sock_dir / "padded.yaml"
    contracts.write_text(CONTRACTS)
    digest = bytes.fromhex(json.loads(run_host("schema", "--contracts", contracts, "--json").stdout)["digest"])
    script = write_script(sock_dir, "padded_script.py", SCRIPT)
    host = start_host("--contracts", contracts, "--script", script, "--listen", f"unix:{sock_dir / 'padded.sock'}")

    t = mycelium.UnixTransport(address_of(host, "unix")[5:], digest)
    replies = t.subscriber(shaped.PaddedQuote)
    t.connect()
    try:
        t.publisher(shaped.PaddedQuote).publish(shaped.PaddedQuote(flag=1, price=-3.5, qty=4_000_000_000, side=2))
        t.publisher(shaped.PoolNote).publish(shaped.PoolNote(kind=9, label="héy", amount=(10**18).to_bytes(32, "big"),
                                                             pools=[b"\x11" * 20, b"\x22" * 20], seq=77))
        reply = replies.recv(timeout=10)
        assert reply == shaped.PaddedQuote(flag=1, price=-7.0, qty=4_000_000_001, side=2)
        host.wait_for(r'"kind": 9', timeout=10)
    finally:
        t.close()
    seen = [json.loads(line) for line in host.lines() if line.startswith("{")]
    assert {"flag": 1, "price": -3.5, "qty": 4_000_000_000, "side": 2} in seen
    assert {"kind": 9, "label": "héy", "amount": 10**18, "pools": ["11" * 20, "22" * 20], "seq": 77} in seen
    assert "size_mismatch" not in "\n".join(host.lines("stderr"))
