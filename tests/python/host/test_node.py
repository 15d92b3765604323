"""A node serving clients: real mycelium-host processes with --listen, legacy clients
written from the wire document, bad input, and the tap and pub tools."""

import json
import struct
import subprocess
import textwrap
import time

import pytest

from wire import HostProcess, RawClient, counter_update, text_message, unpack_counter_update

TEXT_MESSAGE, COUNTER_UPDATE, TRADE_TICK, SIGNAL = 1001, 1002, 1100, 1200


@pytest.fixture(scope="module")
def digest(run_host_module):
    result = run_host_module("schema", "--contracts", run_host_module.repo / "scripts" / "contracts.yaml", "--json")
    return bytes.fromhex(json.loads(result.stdout)["digest"])


@pytest.fixture(scope="module")
def run_host_module(host_binary, repo):
    def run(*args, timeout=30):
        return subprocess.run([str(host_binary), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    run.repo = repo
    return run


ECHO_SCRIPT = """
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate, TextMessage

@mn.subscribe(TextMessage)
def on_text(msg):
    mn.publish(CounterUpdate(counter_id=len(msg.content), value=msg.timestamp * 2))
"""


@pytest.fixture
def echo_node(host_binary, tmp_path):
    script = tmp_path / "echo.py"
    script.write_text(textwrap.dedent(ECHO_SCRIPT))
    host = HostProcess(host_binary, "--script", script, "--listen", f"unix:{tmp_path / 'node.sock'}",
                       "--listen", "tcp:127.0.0.1:0", "--handshake-timeout", "0.5", listens=2)
    yield host
    host.stop()


def round_trip(client, value, timeout=5.0):
    """Sends a TextMessage and waits for the script's reply to it (replies to other
    clients' messages, which a legacy client also gets, are skipped)."""
    client.send(TEXT_MESSAGE, text_message("legacy", "hello", value))
    deadline = time.monotonic() + timeout
    while True:
        frame = client.recv_type(COUNTER_UPDATE, timeout=max(0.01, deadline - time.monotonic()))
        assert frame is not None, "the node closed a good client"
        if unpack_counter_update(frame[1]) == (5, value * 2):
            return


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_a_legacy_client_exchanges_with_a_script(echo_node, digest, kind):
    address = next(a for a in echo_node.addresses if a.startswith(kind))
    client = RawClient(address, digest)
    round_trip(client, 21)
    client.close()


def test_legacy_clients_get_everything_but_their_own_frames(echo_node, digest):
    unix, tcp = echo_node.addresses
    a, b = RawClient(unix, digest), RawClient(tcp, digest)
    round_trip(b, 1)             # b is served (a legacy client gets no other acknowledgement)
    round_trip(a, 2)             # a too; the script's reply to a goes to b as well
    round_trip_seen = b.recv_type(COUNTER_UPDATE)
    assert unpack_counter_update(round_trip_seen[1]) == (5, 4)  # b saw the script's reply to a
    a.send(COUNTER_UPDATE, counter_update(9, 99))
    frame = b.recv_type(COUNTER_UPDATE)
    assert unpack_counter_update(frame[1]) == (9, 99)
    with pytest.raises(TimeoutError):
        a.recv_type(COUNTER_UPDATE, timeout=0.3)  # a does not get its own frame back
    a.close()
    b.close()


BAD_INPUTS = {
    "wrong digest": (lambda d: struct.pack("<H", 32) + bytes(32), 2),
    "digest length 31": (lambda d: struct.pack("<H", 31) + d[:31], 1),
    "oversize length": (lambda d: struct.pack("<H", 32) + d + struct.pack("<HI", TEXT_MESSAGE, 5_000_000), 4),
    "garbage": (lambda d: struct.pack("<H", 32) + d + b"\x00" * 64, 5),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_closes_only_that_connection(echo_node, digest, case):
    unix, tcp = echo_node.addresses
    good = RawClient(unix, digest)
    round_trip(good, 3)
    make_bytes, expected_code = BAD_INPUTS[case]
    bad = RawClient(tcp, handshake=False)
    bad.send_raw(make_bytes(digest))
    error = bad.expect_error_then_close()
    assert error is not None and error[0] == expected_code, error
    bad.close()
    round_trip(good, 4)         # the other client is still served
    good.close()


BAD_FRAMES = {
    "unknown type id": (struct.pack("<HI", 4321, 8) + bytes(8), 5),
    "payload size mismatch": (struct.pack("<HI", COUNTER_UPDATE, 8) + bytes(8), 6),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_a_bad_frame_is_dropped_and_the_connection_stays(echo_node, digest, case):
    """As Mycelium's bridge does: the frame is dropped and the client goes on. A legacy
    client is not told; a HELLO client gets an ERROR and stays connected."""
    unix, tcp = echo_node.addresses
    frame, code = BAD_FRAMES[case]
    legacy = RawClient(tcp, digest)
    legacy.send_raw(frame)
    round_trip(legacy, 6)  # its next frame is served

    hello = RawClient(unix, digest)
    name = b"sdk-client"
    hello.send(2, struct.pack("<BBH", 1, 0, len(name)) + name)  # HELLO v1, role 0 (client)
    hello.send(3, struct.pack("<H", COUNTER_UPDATE))            # SUBSCRIBE CounterUpdate
    hello.send_raw(frame)
    type_id, payload = hello.recv_type(1)
    assert struct.unpack_from("<H", payload)[0] == code, payload
    hello.send(TEXT_MESSAGE, text_message("sdk", "hello", 7))
    reply = hello.recv_type(COUNTER_UPDATE)
    assert reply is not None and unpack_counter_update(reply[1]) == (5, 14)
    legacy.close()
    hello.close()


@pytest.mark.parametrize("case", ["truncated handshake", "slow handshake"])
def test_incomplete_handshakes_time_out(echo_node, digest, case):
    unix, tcp = echo_node.addresses
    good = RawClient(unix, digest)
    bad = RawClient(tcp, handshake=False)
    if case == "truncated handshake":
        bad.send_raw(struct.pack("<H", 32) + digest[:10])
    started = time.monotonic()
    error = bad.expect_error_then_close(timeout=5)
    assert error is not None and error[0] == 3  # handshake_timeout
    assert time.monotonic() - started < 3
    round_trip(good, 5)
    good.close()
    _, _, err = echo_node.stop()
    assert "handshake" in err


def test_pub_and_tap_round_trip_through_a_script(host_binary, run_host_module, tmp_path):
    script = tmp_path / "signal.py"
    script.write_text(textwrap.dedent("""
        import mycelium_native as mn
        from mycelium_native.messages import Signal, TradeTick

        @mn.subscribe(TradeTick)
        def on_tick(tick):
            mn.publish(Signal(symbol=tick.symbol, fast_ema=tick.price, slow_ema=0, direction=1,
                              tick_seq=tick.seq, ts_ns=tick.ts_ns))
        """))
    socket_path = tmp_path / "tools.sock"
    host = HostProcess(host_binary, "--script", script, "--listen", f"unix:{socket_path}")
    try:
        tap = subprocess.Popen([str(host_binary), "tap", "--connect", f"unix:{socket_path}", "--type", "Signal",
                                "--count", "2", "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        time.sleep(0.5)  # tap subscribes before we publish
        pub = run_host_module("pub", "--connect", f"unix:{socket_path}", "--type", "TradeTick", "--json",
                              '{"symbol": "AAPL", "price": 189.5, "seq": 7}', "--count", "2")
        assert pub.returncode == 0, pub.stderr
        out, err = tap.communicate(timeout=25)
        assert tap.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == 2
        assert lines[0]["type"] == "Signal" and lines[0]["type_id"] == SIGNAL
        assert lines[0]["fields"]["symbol"] == "AAPL"
        assert lines[0]["fields"]["fast_ema"] == 189.5
        assert lines[0]["fields"]["tick_seq"] == 7
    finally:
        code, _, err = host.stop()
    assert code == 0, err


def test_tap_marks_a_string_that_is_not_utf8_or_too_long_and_says_so(host_binary, digest, tmp_path):
    # A node that trusts its clients (--trust-payloads) relays a frame of the right type and
    # size without reading its strings; tap must not print it as if it were valid (no
    # U+FFFD, no silently cut string).
    socket_path = tmp_path / "node.sock"
    host = HostProcess(host_binary, "--listen", f"unix:{socket_path}", "--trust-payloads")
    tap = subprocess.Popen([str(host_binary), "tap", "--connect", f"unix:{socket_path}", "--type", "TextMessage",
                            "--count", "3", "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        time.sleep(0.5)  # tap subscribes before we publish
        client = RawClient(f"unix:{socket_path}", digest)
        bad_utf8 = bytearray(text_message("legacy", "hello", 1))
        bad_utf8[48:53] = b"caf\xc3("  # content: 'caf' and a two-byte sequence cut short
        too_long = bytearray(text_message("legacy", "hi", 2))
        too_long[0:2] = struct.pack("<H", 300)  # sender: length 300 in a 32-byte field
        for payload in (bytes(bad_utf8), bytes(too_long), text_message("legacy", "fine", 3)):
            client.send(TEXT_MESSAGE, payload)
        out, err = tap.communicate(timeout=25)
        client.close()
    finally:
        if tap.poll() is None:
            tap.kill()
        code, _, host_err = host.stop()
    assert code == 0, host_err
    assert tap.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]  # every line is still JSON
    assert len(lines) == 3, out
    assert lines[0]["fields"]["content"] == {"invalid_utf8": "0x" + b"caf\xc3(".hex()}
    assert lines[0]["fields"]["sender"] == "legacy"
    assert lines[0]["invalid"] == ["content: not UTF-8 at offset 3 of 5 bytes"]
    assert lines[1]["fields"]["sender"] == {"invalid_length": 300, "capacity": 32}
    assert lines[1]["fields"]["content"] == "hi"
    assert lines[1]["invalid"] == ["sender: length 300 is above the capacity 32"]
    assert lines[2]["fields"]["content"] == "fine" and "invalid" not in lines[2]
    assert "\ufffd" not in out
    assert ("mycelium-host: warning: tap: message 1 (TextMessage) breaks its schema: "
            "content: not UTF-8 at offset 3 of 5 bytes") in err
    assert "mycelium-host: warning: tap: message 2 (TextMessage) breaks its schema: sender: length 300" in err
    assert 'mycelium-host: warning: tap: 2 of 3 messages broke their schema (their lines carry "invalid")' in err


def test_pub_rejects_bad_json_with_one_line(run_host_module, tmp_path):
    cases = {
        '{"symbol": ""}': "--json: TradeTick.symbol: not_empty: must not be empty",
        '{"sym": 1}': "--json: TradeTick has no field 'sym'",
        '{"seq": -1, "symbol": "A"}': "--json: TradeTick.seq: '-1' is not a u64",
        '{"symbol": "A"': "--json: invalid JSON at offset 14: expected ',' or '}'",
    }
    for text, message in cases.items():
        result = run_host_module("pub", "--connect", f"unix:{tmp_path / 'none.sock'}", "--type", "TradeTick",
                                 "--json", text)
        assert result.returncode == 2, text
        assert result.stderr.strip() == f"mycelium-host: error: {message}", text


def test_listen_on_a_bad_endpoint_is_a_one_line_error(run_host_module):
    result = run_host_module("--listen", "udp:1.2.3.4:5")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "udp:1.2.3.4:5" in result.stderr


def test_json_log_lines_name_the_peer_of_a_refused_client(host_binary, tmp_path):
    socket_path = tmp_path / "node.sock"
    host = HostProcess(host_binary, "--log-format", "json", "--listen", f"unix:{socket_path}")
    try:
        client = RawClient(f"unix:{socket_path}", bytes(32))
        assert client.expect_error_then_close() is not None
        line = host.wait_for(r"digest", stream="stderr")
    finally:
        host.stop()
    record = json.loads(line)
    assert record["component"] == "link"
    assert record["level"] == "warning"
    assert record["peer"].startswith(f"unix:{socket_path}")
