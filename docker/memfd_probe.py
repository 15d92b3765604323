#!/usr/bin/env python3
"""Checks that shared memory can cross containers the way the host's shm links set it up.

    python3 memfd_probe.py serve /run/mycelium/memfd.sock     # in one container
    python3 memfd_probe.py connect /run/mycelium/memfd.sock   # in another

The server creates a memfd region and an eventfd doorbell (docs/wire-protocol.md, "Shared-memory setup"), passes
both over the Unix socket with SCM_RIGHTS, and waits for the doorbell; the client maps
the region, checks the server's bytes, writes its answer into the same memory and rings
the doorbell; the server checks the answer. Nothing is created in /dev/shm, so the two
containers need to share only the socket's folder: no --ipc=host. docker/test-image.sh
runs it between two containers.

Prints what it saw; exit status 0 when the memory was shared both ways, 1 otherwise.
"""

import mmap
import os
import select
import socket
import sys
import time

SIZE = 1 << 20  # 1 MiB, the default ring size of a shm link
PING = b"mycelium memfd ping"
PONG = b"mycelium memfd pong"


def serve(path):
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(30)
    print(f"memfd-probe: serving on {path}", flush=True)
    conn, _ = listener.accept()
    region = os.memfd_create("mycelium-probe", os.MFD_CLOEXEC)
    os.ftruncate(region, SIZE)
    bell = os.eventfd(0, os.EFD_CLOEXEC)
    with mmap.mmap(region, SIZE) as mem:
        mem[:len(PING)] = PING
        mem[SIZE - len(PING):] = PING  # the far end of the region too
        socket.send_fds(conn, [b"fds"], [region, bell])
        poller = select.poll()
        poller.register(bell, select.POLLIN)
        if not poller.poll(30_000):
            raise SystemExit("memfd-probe: FAIL: the client never rang the doorbell")
        os.eventfd_read(bell)
        answer = bytes(mem[len(PING):len(PING) + len(PONG)])
    if answer != PONG:
        raise SystemExit(f"memfd-probe: FAIL: the client's answer in shared memory is {answer!r}")
    print(f"memfd-probe: the client wrote {answer.decode()!r} into the shared region", flush=True)
    conn.sendall(b"ok")
    conn.close()
    os.unlink(path)
    return 0


def connect(path):
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(path)
            break
        except OSError:
            conn.close()
            if time.monotonic() > deadline:
                raise SystemExit(f"memfd-probe: FAIL: cannot connect to {path}")
            time.sleep(0.1)
    _, fds, _, _ = socket.recv_fds(conn, 16, 2)
    if len(fds) != 2:
        raise SystemExit(f"memfd-probe: FAIL: received {len(fds)} descriptors, expected 2")
    region, bell = fds
    with mmap.mmap(region, SIZE) as mem:
        if mem[:len(PING)] != PING or mem[SIZE - len(PING):] != PING:
            raise SystemExit("memfd-probe: FAIL: the region does not hold the server's bytes")
        print(f"memfd-probe: mapped the server's {SIZE}-byte memfd, its bytes are there", flush=True)
        mem[len(PING):len(PING) + len(PONG)] = PONG
    os.eventfd_write(bell, 1)
    if conn.recv(2) != b"ok":
        raise SystemExit("memfd-probe: FAIL: the server did not confirm")
    print("memfd-probe: the server read the answer: shared memory works both ways", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("serve", "connect"):
        raise SystemExit("usage: memfd_probe.py serve|connect SOCKET_PATH")
    sys.exit(serve(sys.argv[2]) if sys.argv[1] == "serve" else connect(sys.argv[2]))
