"""A client written from docs/wire-protocol.md alone: the digest handshake, then raw TLV
frames. It is what a legacy Mycelium client does, with no help from this project's code."""

import socket
import struct
import subprocess
import time

HEADER = struct.Struct("<HI")
ERROR = 1


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


class HostProcess:
    """A mycelium-host started with --listen; reads the bound addresses it prints."""

    def __init__(self, binary, *args, listens=1, timeout=15.0):
        self.proc = subprocess.Popen([str(binary), *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.addresses = []
        deadline = time.monotonic() + timeout
        while len(self.addresses) < listens:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"host did not start listening: {self.proc.stderr.read()}")
            line = self.proc.stdout.readline()
            if line.startswith("listening on "):
                self.addresses.append(line.split("listening on ", 1)[1].strip())

    def stop(self, timeout=15.0):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err
