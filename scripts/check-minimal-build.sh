#!/usr/bin/env bash
# Checks a host built without the optional transports (MYCELIUM_TRANSPORT_TCP=OFF,
# MYCELIUM_TRANSPORT_SHM=OFF): it serves on unix: and refuses tcp: and --shm with errors
# that name what is missing.
#
#   scripts/check-minimal-build.sh PATH/TO/mycelium-host
set -euo pipefail
host=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if "$host" --listen tcp:127.0.0.1:0 --duration 1 >"$work/out" 2>&1; then
  echo "check-minimal-build: --listen tcp: was accepted by a build without tcp:" >&2
  exit 1
fi
grep -q "this build has no 'tcp' transport (it has unix:)" "$work/out" || {
  echo "check-minimal-build: the error does not name the missing transport:" >&2
  cat "$work/out" >&2
  exit 1
}
"$host" --listen "unix:$work/node.sock" --duration 1 >"$work/out" 2>&1 || {
  echo "check-minimal-build: the host did not serve on unix:" >&2
  cat "$work/out" >&2
  exit 1
}
grep -q "listening on unix:$work/node.sock" "$work/out" || {
  echo "check-minimal-build: no 'listening on' line for the unix: endpoint:" >&2
  cat "$work/out" >&2
  exit 1
}
if "$host" --listen "unix:$work/shm.sock" --shm --duration 1 >"$work/out" 2>&1; then
  echo "check-minimal-build: --shm was accepted by a build without shared memory" >&2
  exit 1
fi
grep -q -- "--shm: this build has no shared-memory transport" "$work/out" || {
  echo "check-minimal-build: the --shm error does not name the missing transport:" >&2
  cat "$work/out" >&2
  exit 1
}
echo "check-minimal-build: ok (unix: served, tcp: and --shm refused by name)"
