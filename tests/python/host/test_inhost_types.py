"""Mycelium's types, names and rules in real mycelium-host processes: the in-host classes
(mycelium_native.messages) and the JSON of tap and pub. Contracts:
tests/fixtures/contracts/valid/inhost_types.yaml."""

import json
import subprocess
import textwrap
import time

import pytest

from wire import HostProcess

U256_MAX = 2 ** 256 - 1


@pytest.fixture(scope="module")
def contracts(repo):
    return repo / "tests" / "fixtures" / "contracts" / "valid" / "inhost_types.yaml"


def run_script(run_host, tmp_path, contracts, body, *extra):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return run_host("--contracts", contracts, "--script", script, *extra, timeout=60)


def results(stdout):
    """The script's `print(json.dumps(...))` lines, in order."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_new_types_have_python_values_names_and_mycelium_topics(run_host, tmp_path, contracts):
    result = run_script(run_host, tmp_path, contracts, """
        import json
        import mycelium_native as mn
        from mycelium_native.messages import OrderRules, PoolState, SecretOrder

        def out(**kw):
            print(json.dumps(kw), flush=True)

        p = PoolState()
        out(case="defaults", pool=type(p.pool).__name__, pool_len=len(p.pool), reserve=type(p.reserve).__name__,
            reserve_len=len(p.reserve), hops=type(p.hops).__name__, siblings=type(p.siblings).__name__,
            sibling_types=sorted({type(s).__name__ for s in p.siblings}), sibling_lens=[len(s) for s in p.siblings],
            amounts=type(p.amounts).__name__, bounds=[b.hex() for b in p.bounds], weights=type(p.weights).__name__)

        p = PoolState(pool=bytes(range(20)), reserve=258, hops=[b"\\x01" * 20, bytearray(b"\\x02" * 20)],
                      siblings=[bytes([i]) * 32 for i in range(6)], amounts=[1, (2).to_bytes(32, "big")],
                      bounds=[0, U256_MAX], class_=3, weights=[0.5, 1.5])
        out(case="from int", reserve=p.reserve.hex(), is_bytes=type(p.reserve) is bytes,
            amounts=[a.hex() for a in p.amounts], bounds=[int.from_bytes(b, "big") == v for b, v in
                                                          zip(p.bounds, (0, U256_MAX))])
        p.reserve = U256_MAX
        out(case="assigned", reserve=p.reserve.hex())

        back = PoolState.from_bytes(p.to_bytes())
        out(case="decoded", equal=back == p, pool=type(back.pool).__name__, reserve=int.from_bytes(back.reserve, "big"),
            hops=type(back.hops).__name__, hop_types=[type(h).__name__ for h in back.hops],
            hops_hex=[h.hex() for h in back.hops], siblings=[s[:1].hex() for s in back.siblings],
            sibling_type=type(back.siblings).__name__, amounts=[int.from_bytes(a, "big") for a in back.amounts],
            amounts_type=type(back.amounts).__name__, class_=back.class_, weights=type(back.weights).__name__,
            weight_values=back.weights.tolist(), read_only=not back.weights.flags.writeable)

        out(case="names", fields=list(PoolState.FIELDS), name=PoolState.NAME, cls=PoolState.__name__,
            has_class_=hasattr(p, "class_"), topics=[PoolState.TOPIC, OrderRules.TOPIC, SecretOrder.TOPIC],
            type_ids=[PoolState.TYPE_ID, OrderRules.TYPE_ID, SecretOrder.TYPE_ID])
        try:
            PoolState(**{"class": 1})
        except TypeError as e:
            out(case="contracts name is not a keyword", error=str(e))

        for bad in (-1, U256_MAX + 1, "12", b"12", 1.0):
            try:
                PoolState(reserve=bad)
                out(case="bad u256", error=None)
            except Exception as e:
                out(case="bad u256", kind=type(e).__name__, value_error=isinstance(e, ValueError), error=str(e))
        try:
            p.reserve = -5
        except ValueError as e:
            out(case="bad assignment", error=str(e), reserve_kept=p.reserve.hex())
        for field, value in (("hops", [b"\\x01" * 19]), ("siblings", [bytes(32)] * 5), ("amounts", [1, -1]),
                             ("hops", [b"\\x01" * 20] * 5)):
            try:
                mn.publish(PoolState(**{field: value}))
                out(case="bad sequence", error=None)
            except ValueError as e:
                out(case="bad sequence", error=str(e))
        mn.stop()
        """.replace("U256_MAX", str(U256_MAX)))
    assert result.returncode == 0, result.stderr
    by_case = {}
    for r in results(result.stdout):
        by_case.setdefault(r.pop("case"), []).append(r)

    assert by_case["defaults"] == [{
        "pool": "bytes", "pool_len": 20, "reserve": "bytes", "reserve_len": 32, "hops": "list",
        "siblings": "list", "sibling_types": ["bytes"], "sibling_lens": [32] * 6, "amounts": "list",
        "bounds": ["00" * 32] * 2, "weights": "list"}]
    assert by_case["from int"] == [{
        "reserve": "00" * 30 + "0102", "is_bytes": True, "amounts": ["00" * 31 + "01", "00" * 31 + "02"],
        "bounds": [True, True]}]
    assert by_case["assigned"] == [{"reserve": "ff" * 32}]
    assert by_case["decoded"] == [{
        "equal": True, "pool": "bytes", "reserve": U256_MAX, "hops": "list", "hop_types": ["bytes", "bytes"],
        "hops_hex": ["01" * 20, "02" * 20], "siblings": ["00", "01", "02", "03", "04", "05"], "sibling_type": "list",
        "amounts": [1, 2], "amounts_type": "list", "class_": 3, "weights": "ndarray", "weight_values": [0.5, 1.5],
        "read_only": True}]
    assert by_case["names"] == [{
        "fields": ["pool", "reserve", "hops", "siblings", "amounts", "bounds", "class_", "weights"],
        "name": "PoolState", "cls": "PoolState", "has_class_": True,
        "topics": ["market-data", "risk", "signal"], "type_ids": [2101, 2102, 2103]}]
    assert by_case["contracts name is not a keyword"] == [
        {"error": "PoolState() got an unexpected keyword argument 'class'"}]
    range_text = "is outside the range of U256 (0 to 2**256-1)"
    assert by_case["bad u256"] == [
        {"kind": "ValidationError", "value_error": True, "error": f"PoolState.reserve: range: -1 {range_text}"},
        {"kind": "ValidationError", "value_error": True,
         "error": f"PoolState.reserve: range: {U256_MAX + 1} {range_text}"},
        {"kind": "ValidationError", "value_error": True,
         "error": "PoolState.reserve: type: expected 32 bytes or an int, got str"},
        {"kind": "ValidationError", "value_error": True, "error": "PoolState.reserve: size: expected 32 bytes, got 2"},
        {"kind": "ValidationError", "value_error": True,
         "error": "PoolState.reserve: type: expected 32 bytes or an int, got float"},
    ]
    assert by_case["bad assignment"] == [
        {"error": f"PoolState.reserve: range: -5 {range_text}", "reserve_kept": "ff" * 32}]
    assert by_case["bad sequence"] == [
        {"error": "PoolState.hops: size: element 0: expected 20 bytes, got 19"},
        {"error": "PoolState.siblings: size: expected 6 values, got 5"},
        {"error": f"PoolState.amounts: range: element 1: -1 {range_text}"},
        {"error": "PoolState.hops: max_length: length 5 is above 4"},
    ]


# Each of the seven rules: a change to a message that passes all of them, and the one
# text every language shows (the registry's ValidationFailure::text()).
GOOD = {"account": "ab", "qty": 1, "nonce": 1, "owner": "01" * 20}
RULES = [
    ("not_empty", {"account": ""}, "OrderRules.account: not_empty: must not be empty"),
    ("min_length", {"account": "a"}, "OrderRules.account: min_length: length 1 is below 2"),
    ("max_length", {"account": "abcdefghi"}, "OrderRules.account: max_length: length 9 is above 8"),
    ("no_0x_prefix", {"account": "0xab"}, "OrderRules.account: no_0x_prefix: '0xab' starts with 0x"),
    ("min", {"qty": 0}, "OrderRules.qty: min: value 0 is below 1"),
    ("max", {"qty": 101}, "OrderRules.qty: max: value 101 is above 100"),
    ("not_zero", {"nonce": 0}, "OrderRules.nonce: not_zero: must not be zero"),
    ("not_zero", {"owner": "00" * 20}, "OrderRules.owner: not_zero: must not be zero"),
]


def test_publishing_enforces_the_seven_rules_with_the_same_text_as_pub(run_host, tmp_path, contracts):
    cases = [(rule, {**GOOD, **change}) for rule, change, _ in RULES]
    result = run_script(run_host, tmp_path, contracts, """
        import json
        import mycelium_native as mn
        from mycelium_native.messages import OrderRules

        def make(fields):
            fields = dict(fields)
            fields["owner"] = bytes.fromhex(fields["owner"])
            return OrderRules(**fields)

        mn.publish(make(GOOD))  # passes every rule
        for rule, fields in CASES:
            try:
                mn.publish(make(fields))
                print(json.dumps({"rule": rule, "error": None}), flush=True)
            except mn.ValidationError as e:
                print(json.dumps({"rule": rule, "error": str(e), "attr": e.rule, "value_error": isinstance(e, ValueError),
                                  "message": e.message, "field": e.field}), flush=True)
        mn.stop()
        """.replace("GOOD", repr(GOOD)).replace("CASES", repr(cases)))
    assert result.returncode == 0, result.stderr
    got = results(result.stdout)
    assert [(g["rule"], g["error"]) for g in got] == [(rule, text) for rule, _, text in RULES]
    for g, (rule, _, text) in zip(got, RULES):
        assert g["attr"] == rule and g["value_error"] and g["message"] == "OrderRules"
        assert text.startswith(f"OrderRules.{g['field']}: ")

    # pub checks the same rules before it connects, and prints the same text.
    for (rule, fields), (_, _, text) in zip(cases, RULES):
        pub = run_host("pub", "--connect", f"unix:{tmp_path / 'none.sock'}", "--contracts", contracts,
                       "--type", "OrderRules", "--json", json.dumps({**fields, "owner": "0x" + fields["owner"]}),
                       timeout=30)
        assert pub.returncode == 2, rule
        assert pub.stderr.strip() == f"mycelium-host: error: --json: {text}", rule


def test_a_sensitive_message_keeps_its_values_out_of_errors_and_the_log(run_host, tmp_path, contracts):
    result = run_script(run_host, tmp_path, contracts, """
        import mycelium_native as mn
        from mycelium_native.messages import SecretOrder

        SECRET = -987000 - 654  # never on a line a traceback shows
        try:
            SecretOrder(size=SECRET)
        except ValueError as e:
            print("size:", e, flush=True)

        @mn.every(0.01)
        def leak():
            mn.stop()
            mn.publish(SecretOrder(limit=SECRET))  # raises: logged with its traceback
        """)
    assert "size: SecretOrder.size: range: value is outside the range of U256 (0 to 2**256-1)" in result.stdout
    assert "SecretOrder.limit: min: value is below 0" in result.stderr
    assert "987654" not in result.stdout + result.stderr


def test_pub_to_tap_round_trip_of_u256_bytes_and_byte_arrays(host_binary, run_host, tmp_path, contracts):
    # A script in the host sees what pub sent, as Python values, and tap prints it back.
    script = tmp_path / "seen.py"
    script.write_text(textwrap.dedent("""
        import json
        import mycelium_native as mn
        from mycelium_native.messages import PoolState

        @mn.subscribe(PoolState)
        def seen(p):
            print(json.dumps({"reserve": int.from_bytes(p.reserve, "big"), "pool": p.pool.hex(),
                              "hops": [h.hex() for h in p.hops], "siblings": [s.hex() for s in p.siblings],
                              "types": sorted({type(v).__name__ for v in (p.pool, p.reserve, *p.hops, *p.siblings)}),
                              "class_": p.class_}), flush=True)
        """))
    socket_path = tmp_path / "node.sock"
    host = HostProcess(host_binary, "--contracts", contracts, "--script", script, "--listen", f"unix:{socket_path}")
    sent = {
        "pool": "0x" + "ab" * 20,
        "reserve": str(U256_MAX - 1),
        "hops": ["0x" + "01" * 20, "02" * 20, "0x" + "EF" * 20],
        "siblings": ["0x" + f"{i:02x}" * 32 for i in range(5)] + ["0x" + "ff" * 32],
        "amounts": ["0x10", 32],
        "bounds": [0, "1000000000000000000000"],
        "class": 7,
    }
    tap = subprocess.Popen([str(host_binary), "tap", "--connect", f"unix:{socket_path}", "--contracts", str(contracts),
                            "--type", "PoolState", "--count", "1", "--timeout", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # tap subscribes after it connects: publish until it has printed one message.
        deadline = time.monotonic() + 20
        while tap.poll() is None and time.monotonic() < deadline:
            pub = run_host("pub", "--connect", f"unix:{socket_path}", "--contracts", contracts, "--type", "PoolState",
                           "--json", json.dumps(sent), timeout=30)
            assert pub.returncode == 0, pub.stderr
            time.sleep(0.2)
        out, err = tap.communicate(timeout=20)
    finally:
        if tap.poll() is None:
            tap.kill()
        code, host_out, host_err = host.stop()
    assert tap.returncode == 0, err
    assert code == 0, host_err
    line = json.loads(out.splitlines()[0])
    assert line["type"] == "PoolState" and line["type_id"] == 2101
    assert line["fields"] == {
        "pool": "0x" + "ab" * 20,
        "reserve": str(U256_MAX - 1),
        "hops": ["0x" + "01" * 20, "0x" + "02" * 20, "0x" + "ef" * 20],
        "siblings": sent["siblings"],
        "amounts": ["16", "32"],
        "bounds": ["0", "1000000000000000000000"],
        "class": 7,
        "weights": [],
    }
    seen = results(host_out)
    assert seen, host_out
    assert seen[0] == {"reserve": U256_MAX - 1, "pool": "ab" * 20, "hops": ["01" * 20, "02" * 20, "ef" * 20],
                       "siblings": [s[2:] for s in sent["siblings"]], "types": ["bytes"], "class_": 7}


def test_pub_refuses_a_u256_out_of_range_naming_the_field(run_host, tmp_path, contracts):
    cases = {
        json.dumps({"reserve": str(U256_MAX + 1)}):
            f"PoolState.reserve: '{U256_MAX + 1}' is above the largest U256 (2**256-1)",
        json.dumps({"reserve": -1}): "PoolState.reserve: '-1' is not a U256 (decimal or 0x-hex, 0 to 2**256-1)",
        json.dumps({"hops": ["0x12"]}): "PoolState.hops[0]: expected 20 bytes (40 hex digits), got 2 hex digits",
        json.dumps({"siblings": ["00" * 32]}): "PoolState.siblings: expected 6 values, got 1",
    }
    for text, message in cases.items():
        pub = run_host("pub", "--connect", f"unix:{tmp_path / 'none.sock'}", "--contracts", contracts,
                       "--type", "PoolState", "--json", text, timeout=30)
        assert pub.returncode == 2, text
        assert pub.stderr.strip() == f"mycelium-host: error: --json: {message}", text
