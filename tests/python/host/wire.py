"""A client written from docs/wire-protocol.md alone: the digest handshake, then raw TLV
frames. It is what a legacy Mycelium client does, with no help from this project's code."""

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

HEADER = struct.Struct("<HI")
ERROR = 1


def text_message(sender, content, timestamp):
    """A TextMessage payload of the bundled contracts (String fields: u16 length, 6 bytes
    of padding, the bytes)."""
    data = sender.encode()
    body = struct.pack("<H6x32s", len(data), data)
    data = content.encode()
    body += struct.pack("<H6x256s", len(data), data)
    return body + struct.pack("<Q", timestamp)


def counter_update(counter_id, value):
    """A CounterUpdate payload of the bundled contracts (u32, 4 bytes of padding, u64)."""
    return struct.pack("<I4xQ", counter_id, value)


def counter_update_packed(counter_id, value):
    """CounterUpdate as Mycelium's Python SDK packs it, without the C padding: what a
    legacy client sends and, by default, receives (wire-protocol.md "Legacy clients and
    padded types")."""
    return struct.pack("<IQ", counter_id, value)


def unpack_counter_update(payload):
    """(counter_id, value) of a CounterUpdate in either layout: packed (12 bytes, what a
    legacy client gets by default) or C (16 bytes)."""
    return struct.unpack("<IQ" if len(payload) == 12 else "<I4xQ", payload)


class RawClient:
    def __init__(self, address, digest=None, timeout=5.0, handshake=True):
        if address.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address[len("unix:"):])
        else:
            host, port = address[len("tcp:"):].rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buffer = b""
        if handshake:
            self.send_raw(struct.pack("<H", len(digest)) + digest)

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, type_id, payload):
        self.send_raw(HEADER.pack(type_id, len(payload)) + payload)

    def recv(self, timeout=5.0):
        """The next frame as (type_id, payload); None at end of stream; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= HEADER.size:
                type_id, length = HEADER.unpack_from(self.buffer)
                if len(self.buffer) >= HEADER.size + length:
                    payload = self.buffer[HEADER.size:HEADER.size + length]
                    self.buffer = self.buffer[HEADER.size + length:]
                    return type_id, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def recv_type(self, wanted, timeout=5.0):
        """The next frame of type `wanted`, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.0, deadline - time.monotonic()))
            if frame is None or frame[0] == wanted:
                return frame

    def expect_error_then_close(self, timeout=5.0):
        """Reads until the host closes; returns the ERROR frame's (code, reason) or None."""
        error = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = self.recv(max(0.01, deadline - time.monotonic()))
            except (ConnectionResetError, BrokenPipeError):
                return error
            if frame is None:
                return error
            if frame[0] == ERROR:
                code = struct.unpack_from("<H", frame[1])[0]
                error = (code, frame[1][2:].decode())

    def close(self):
        self.sock.close()


def with_asan_options(options):
    """This environment with `options` appended to ASAN_OPTIONS, for a host built with
    AddressSanitizer (scripts/setup.sh); other builds ignore them."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(part for part in (env.get("ASAN_OPTIONS", ""), options) if part)
    return env


class HostProcess:
    """A running mycelium-host. Threads collect its stdout and stderr, so nothing here
    blocks without a deadline; the bound addresses it prints are in `addresses`."""

    def __init__(self, binary, *args, listens=1, timeout=15.0, preexec_fn=None, env=None):
        self.proc = subprocess.Popen([str(binary), *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn, env=env)
        self._lines = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._collect, args=(stream, name), daemon=True)
                         for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))]
        for reader in self._readers:
            reader.start()
        self.addresses = []
        try:
            for index in range(listens):
                line = self.wait_for(r"^listening on ", timeout=timeout, nth=index + 1)
                self.addresses.append(line.split("listening on ", 1)[1].strip())
        except AssertionError:
            _, _, err = self.stop()
            raise RuntimeError(f"host did not start listening: {err}") from None

    def _collect(self, stream, name):
        for line in stream:
            with self._changed:
                self._lines[name].append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._lines[name].append(None)  # end of stream
            self._changed.notify_all()

    def lines(self, stream="stdout"):
        """The lines printed so far."""
        with self._changed:
            return [line for line in self._lines[stream] if line is not None]

    def wait_for(self, pattern, timeout=15.0, stream="stdout", nth=1):
        """Waits until the `nth` line matching the regex `pattern` has been printed and
        returns it; AssertionError on timeout or when the stream ends first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                lines = self._lines[stream]
                matches = [line for line in lines if line is not None and regex.search(line)]
                if len(matches) >= nth:
                    return matches[nth - 1]
                remaining = deadline - time.monotonic()
                if (lines and lines[-1] is None) or remaining <= 0:
                    raise AssertionError(f"no line matching {pattern!r} on {stream} within {timeout} s; "
                                         f"last lines: {lines[-5:]}")
                self._changed.wait(remaining)

    def stop(self, timeout=15.0, sig=signal.SIGTERM):
        """Sends `sig` (SIGKILL after `timeout`), waits, and returns (exit code, stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        return self.proc.returncode, "\n".join(self.lines("stdout")) + "\n", "\n".join(self.lines("stderr")) + "\n"
