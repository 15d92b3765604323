"""Helpers shared by the SDK tests (imported by name; conftest.py holds the fixtures)."""

import fcntl
import importlib.util
import mmap
import os
import pathlib
import socket
import struct
import sys
import textwrap
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[3]
CONTRACTS = REPO / "scripts" / "contracts.yaml"


def load_module(name, path):
    """Imports the file `path` as module `name` (registered in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_script(folder, name, body):
    path = pathlib.Path(folder) / name
    path.write_text(textwrap.dedent(body))
    return path


ECHO_SCRIPT = """
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate, TextMessage

@mn.subscribe(TextMessage)
def on_text(msg):
    mn.publish(CounterUpdate(counter_id=len(msg.content), value=msg.timestamp * 2))
"""


def address_of(host, kind):
    """The first address a HostProcess printed for `kind` ('unix' or 'tcp')."""
    return next(a for a in host.addresses if a.startswith(kind + ":"))


def wait_until(predicate, timeout=10.0, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


HEADER = struct.Struct("<HI")
ERROR, HELLO, SUBSCRIBE, UNSUBSCRIBE, PING, PONG = 1, 2, 3, 4, 5, 6


def frame(type_id, payload=b""):
    return HEADER.pack(type_id, len(payload)) + payload


class FakeConnection:
    """One accepted connection of a FakeHost: raw bytes in, frames out."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(10)
        self.buffer = b""

    def read_exact(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.buffer) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection ended after {len(self.buffer)} of {n} bytes")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_handshake(self):
        length = struct.unpack("<H", self.read_exact(2))[0]
        return self.read_exact(length)

    def read_frame(self, timeout=10.0):
        type_id, length = HEADER.unpack(self.read_exact(6, timeout))
        return type_id, self.read_exact(length, timeout)

    def read_preamble(self):
        """The handshake and the frames up to the first PING, which it answers.
        Returns (digest, name, subscribed type ids)."""
        digest = self.read_handshake()
        type_id, payload = self.read_frame()
        assert type_id == HELLO, type_id
        version, role, length = struct.unpack_from("<BBH", payload)
        assert (version, role) == (1, 0)
        name = payload[4:4 + length].decode()
        subscribed = []
        while True:
            type_id, payload = self.read_frame()
            if type_id == SUBSCRIBE:
                subscribed += struct.unpack(f"<{len(payload) // 2}H", payload)
            elif type_id == PING:
                self.send(frame(PONG, payload))
                return digest, name, sorted(subscribed)
            else:
                raise AssertionError(f"unexpected frame {type_id} in the preamble")

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class FakeHost:
    """A Unix-socket server that speaks just enough of the wire protocol to feed the SDK
    frames a real host never sends (bad payloads, oversize headers, PINGs)."""

    def __init__(self, path):
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.accepted = []
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop:
            try:
                sock, _ = self.server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._changed:
                self.accepted.append(FakeConnection(sock))
                self._changed.notify_all()

    def connection(self, index=0, timeout=10.0):
        """The index-th accepted connection, waiting for it."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.accepted) > index, timeout):
                raise AssertionError(f"no connection #{index} within {timeout} s")
            return self.accepted[index]

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.server.close()
        for conn in self.accepted:
            conn.close()


def make_ring_fd(capacity, digest, sealed=True, size=None, patch=None):
    """A memfd formatted as a fresh shared-memory ring (docs/wire-protocol.md, "The region"),
    as the host makes one: header, digest, indices 0, sealed against shrinking and growing."""
    fd = os.memfd_create("test-ring", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    os.ftruncate(fd, size if size is not None else 256 + capacity)
    with mmap.mmap(fd, 256) as mm:
        mm[0:8] = b"MYC-RING"
        mm[8:16] = struct.pack("<II", 1, 256)
        mm[16:24] = struct.pack("<Q", capacity)
        mm[32:64] = digest
        for offset, data in (patch or {}).items():  # header fields to break, {offset: bytes}
            mm[offset:offset + len(data)] = data
    if sealed:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    return fd
