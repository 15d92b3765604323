"""Reconnecting: the host is killed (SIGKILL) and started again on the same address; the
SDK reconnects with backoff, declares its subscriptions again, and messages flow."""

import signal
import time

import pytest

import mycelium
from sdk_helpers import ECHO_SCRIPT, address_of, wait_until, write_script


def start_echo(start_host, sock_dir, tcp="tcp:127.0.0.1:0"):
    script = sock_dir / "echo.py"
    if not script.exists():
        write_script(sock_dir, "echo.py", ECHO_SCRIPT)
    return start_host("--script", script, "--listen", f"unix:{sock_dir / 'echo.sock'}", "--listen", tcp, listens=2)


def round_trip(pub, sub, messages, value, timeout=10):
    pub.publish(messages.TextMessage(sender="r", content="abc", timestamp=value))
    got = sub.recv(timeout=timeout)
    assert got == messages.CounterUpdate(counter_id=3, value=2 * value)


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_reconnects_after_the_host_is_killed_and_restarted(start_host, sock_dir, messages, digest, kind):
    host = start_echo(start_host, sock_dir)
    address = address_of(host, kind)
    if kind == "unix":
        t = mycelium.UnixTransport(address[5:], digest, backoff_initial=0.05, backoff_max=0.5)
    else:
        hostname, port = address[4:].rsplit(":", 1)
        t = mycelium.TcpTransport(hostname, int(port), digest, backoff_initial=0.05, backoff_max=0.5)
    sub = t.subscriber(messages.CounterUpdate)
    t.connect()
    pub = t.publisher(messages.TextMessage)
    round_trip(pub, sub, messages, 1)

    host.stop(sig=signal.SIGKILL)
    wait_until(lambda: not t.connected, what="the transport to see the connection end")
    with pytest.raises(mycelium.TransportError, match="disconnected"):
        pub.publish(messages.TextMessage(sender="r", content="abc", timestamp=2))

    # Same socket path (the stale file is replaced) and, for TCP, the same port.
    start_echo(start_host, sock_dir, tcp=address if kind == "tcp" else "tcp:127.0.0.1:0")
    wait_until(lambda: t.connected, timeout=20, what="the transport to reconnect")
    assert t.reconnects == 1
    t.sync()  # the new connection's SUBSCRIBE has taken effect
    round_trip(pub, sub, messages, 3)  # the answer arrives only if CounterUpdate was declared again
    t.close()


def test_subscriber_made_while_disconnected_is_declared_on_reconnect(start_host, sock_dir, messages, digest):
    host = start_echo(start_host, sock_dir)
    t = mycelium.UnixTransport(address_of(host, "unix")[5:], digest, backoff_initial=0.05, backoff_max=0.5)
    t.connect()
    host.stop(sig=signal.SIGKILL)
    wait_until(lambda: not t.connected, what="the drop")
    sub = t.subscriber(messages.CounterUpdate)
    start_echo(start_host, sock_dir)
    wait_until(lambda: t.connected, timeout=20, what="the reconnect")
    t.sync()
    round_trip(t.publisher(messages.TextMessage), sub, messages, 5)
    t.close()


def test_bounded_buffer_keeps_frames_published_while_disconnected(start_host, sock_dir, messages, digest):
    host = start_echo(start_host, sock_dir)
    t = mycelium.UnixTransport(address_of(host, "unix")[5:], digest, buffer_while_disconnected=3,
                               backoff_initial=0.05, backoff_max=0.5)
    sub = t.subscriber(messages.CounterUpdate)
    t.connect()
    pub = t.publisher(messages.TextMessage)
    round_trip(pub, sub, messages, 1)
    host.stop(sig=signal.SIGKILL)
    wait_until(lambda: not t.connected, what="the drop")
    for value in (10, 11, 12):
        pub.publish(messages.TextMessage(sender="r", content="abc", timestamp=value))
    with pytest.raises(mycelium.TransportError, match="the buffer of 3 frames is full"):
        pub.publish(messages.TextMessage(sender="r", content="abc", timestamp=13))
    start_echo(start_host, sock_dir)
    # Written first on the new connection, right after the handshake and SUBSCRIBE.
    assert [sub.recv(timeout=20).value for _ in range(3)] == [20, 22, 24]
    round_trip(pub, sub, messages, 14)
    t.close()


def test_backoff_grows_and_close_stops_reconnecting(sock_dir, start_host, messages, digest):
    host = start_echo(start_host, sock_dir)
    t = mycelium.UnixTransport(address_of(host, "unix")[5:], digest, backoff_initial=0.05, backoff_max=0.2)
    t.connect()
    host.stop(sig=signal.SIGKILL)
    wait_until(lambda: not t.connected, what="the drop")
    time.sleep(0.6)  # several failed attempts: 0.025-0.05, then 0.05-0.1, then 0.1-0.2 s apart
    assert t.stats()["state"] == "reconnecting"
    assert "cannot connect" in t.stats()["last_error"]
    started = time.monotonic()
    t.close()
    assert time.monotonic() - started < 3
    assert t.stats()["state"] == "closed"
