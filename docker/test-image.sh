#!/usr/bin/env bash
# Builds the mycelium-host image with podman and checks it, on a machine without a
# Docker engine (issue 8; docs/deployment.md):
#
#   1. the debian:bookworm-slim base: reused from podman's store if there; else pulled;
#      else made here with `debootstrap --variant=minbase bookworm` and `podman import`
#   2. the image: `podman build` of docker/Dockerfile (layer cache and a ccache cache
#      mount make rebuilds quick)
#   3. the image itself: non-root user, every shared library found, python3 + numpy +
#      the SDK importable, a health check declared
#   4. the bundled demo in a container: exit status 0 and its summary
#   5. in-process script: the node's socket in a mounted folder, an SDK client on this
#      machine talks to scripts/examples/sdk_echo.py inside the containerised host;
#      the health check passes
#   6. sidecar: the host in one container, sdk_echo.py (SDK client) in another, sharing
#      the socket folder (no --ipc=host); the client on this machine drives it; a memfd
#      and an eventfd passed between two containers over that folder (docker/memfd_probe.py);
#      two nodes in two containers whose peer link runs over shared memory
#   7. managed subprocess: the host supervises sdk_echo.py (--worker)
#   8. independent process: sdk_echo.py on this machine (as the systemd unit of
#      docs/deployment.md runs it) joins the containerised host through the folder
#
# Exits non-zero on the first failure and removes its containers either way. Needs root,
# podman, runc, python3 and (for step 1 without a registry) debootstrap: the Debian
# packages podman buildah runc debootstrap.
#
# Environment: MYCELIUM_IMAGE (default localhost/mycelium-host:test), APT_MIRROR (a Debian
# mirror for debootstrap and the build, default http://deb.debian.org), JOBS (compile
# jobs in the build), http_proxy/https_proxy/no_proxy (debootstrap reads them; passed to
# the build as build arguments when set),
# MYCELIUM_TEST_KEEP_LOGS=1 (keep the log folder after a success).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${MYCELIUM_IMAGE:-localhost/mycelium-host:test}
base=docker.io/library/debian:bookworm-slim
mirror=${APT_MIRROR:-http://deb.debian.org}
# runc is the OCI runtime that works in this sandbox (crun and the default need cgroup and mount rights the sandbox lacks); without the
# ulimits podman asks for a larger open-files limit than the sandbox grants, and runc
# refuses to start the container ("error setting rlimit type 7: operation not permitted").
podman_opts=(--runtime runc --ulimit nofile=1024:20000 --ulimit nproc=1024:4096)
run_id=$$
label=mycelium-test=$run_id
logs=$(mktemp -d /tmp/mycelium-image-test.XXXXXX)
python=/usr/bin/python3
[ -x "$python" ] || python=python3
started=$SECONDS
checks=0

say() { printf '\n==> %s\n' "$*"; }
ok() { checks=$((checks + 1)); printf '  ok   %s\n' "$*"; }
fail() {
    printf '  FAIL %s\n' "$*" >&2
    exit 1
}
elapsed() { printf '%dm%02ds' $(((SECONDS - $1) / 60)) $(((SECONDS - $1) % 60)); }

cleanup() {
    local status=$?
    local ids
    if [ -n "${worker_pid:-}" ]; then kill "$worker_pid" 2>/dev/null || true; fi
    ids=$(podman ps -aq --filter "label=$label" 2>/dev/null || true)
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086  # one id per word
        podman rm -f -t 0 $ids >/dev/null 2>&1 || true
    fi
    rm -rf "$logs/sockets"
    if [ "$status" -eq 0 ] && [ "${MYCELIUM_TEST_KEEP_LOGS:-0}" != 1 ]; then
        rm -rf "$logs"
    else
        printf '\nlogs kept in %s\n' "$logs" >&2
    fi
    if [ "$status" -eq 0 ]; then
        printf '\nPASS: %d checks in %s\n' "$checks" "$(elapsed "$started")"
    else
        printf '\nFAILED after %s (exit %d)\n' "$(elapsed "$started")" "$status" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a container in the background: run_bg NAME [podman run options...] IMAGE [ARGS...]
run_bg() {
    local name=$1
    shift
    # Podman's health-check timers need systemd, which may not run here: it says so on
    # stderr and runs the container anyway (the test runs the check with `podman
    # healthcheck run`), so that message goes to a log and only a failure is shown.
    podman run -d "${podman_opts[@]}" --label "$label" --name "mycelium-test-$run_id-$name" "$@" \
        >/dev/null 2>"$logs/$name.run.log" || {
        cat "$logs/$name.run.log" >&2
        fail "podman run of $name failed"
    }
}
cname() { printf 'mycelium-test-%s-%s' "$run_id" "$1"; }

# Waits up to $3 seconds for the container's output to contain the text $2.
wait_for_log() {
    local name deadline
    name=$(cname "$1")
    deadline=$((SECONDS + $3))
    until podman logs "$name" 2>&1 | grep -qF -- "$2"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            podman logs "$name" >"$logs/$1.log" 2>&1 || true
            tail -n 30 "$logs/$1.log" >&2
            fail "$1: no '$2' in its output within $3 s"
        fi
        if [ "$(podman inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
            podman logs "$name" >"$logs/$1.log" 2>&1 || true
            tail -n 30 "$logs/$1.log" >&2
            fail "$1: the container stopped before printing '$2'"
        fi
        sleep 0.2
    done
}

# Waits up to $2 seconds for the container to exit; prints its exit code.
wait_exit() {
    local name code
    name=$(cname "$1")
    if ! code=$(timeout "$2" podman wait "$name" 2>/dev/null); then
        podman logs "$name" >"$logs/$1.log" 2>&1 || true
        tail -n 30 "$logs/$1.log" >&2
        fail "$1: still running after $2 s"
    fi
    podman logs "$name" >"$logs/$1.log" 2>&1 || true
    printf '%s' "$code"
}

expect_log() { # expect_log NAME TEXT WHAT
    grep -qF -- "$2" "$logs/$1.log" || {
        tail -n 30 "$logs/$1.log" >&2
        fail "$3: no '$2' in the output of $1"
    }
    ok "$3"
}

# A fresh socket folder, writable by the image's user (uid 10001).
socket_dir() {
    local dir=$logs/sockets/$1
    mkdir -p "$dir"
    chmod 0777 "$dir"
    printf '%s' "$dir"
}

# The out-of-process SDK client, on this machine: docker/echo_client.py.
echo_client() {
    PYTHONPATH="$repo/pymodules:$repo/scripts/examples" "$python" "$repo/docker/echo_client.py" "$@"
}

# ------------------------------------------------------------------------------------
say "tools"
for tool in podman runc "$python"; do
    command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install podman buildah runc debootstrap)"
done
[ "$(id -u)" -eq 0 ] || fail "run as root: rootless podman cannot use --runtime runc with these ulimits here"
ok "$(podman --version), $(runc --version | head -n 1), $("$python" --version)"

# ------------------------------------------------------------------------------------
say "base image $base"
t=$SECONDS
if podman image exists "$base"; then
    ok "reusing $base from podman's store"
elif timeout 60 podman pull -q "$base" >"$logs/pull.log" 2>&1; then
    ok "pulled $base"
else
    printf '  (no registry: %s)\n' "$(tail -n 1 "$logs/pull.log")"
    command -v debootstrap >/dev/null || fail "debootstrap is missing (apt-get install debootstrap)"
    rootfs=$logs/rootfs
    printf '  debootstrap --variant=minbase bookworm from %s/debian\n' "$mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror/debian" >"$logs/debootstrap.log" 2>&1 || {
        tail -n 20 "$logs/debootstrap.log" >&2
        fail "debootstrap failed"
    }
    # Make it look like the official slim image: its apt sources (with updates and
    # security), no documentation or manual pages installed later, empty caches.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/log/* "$rootfs"/usr/share/man/*
    tar --numeric-owner -C "$rootfs" -c . |
        podman import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase bookworm" - "$base" \
            >"$logs/import.log" 2>&1 || fail "podman import failed: $(tail -n 1 "$logs/import.log")"
    rm -rf "$rootfs"
    ok "made $base with debootstrap and podman import ($(elapsed "$t"))"
fi

# ------------------------------------------------------------------------------------
say "podman build -f docker/Dockerfile -t $image (log: $logs/build.log)"
t=$SECONDS
build_args=()
[ -z "${APT_MIRROR:-}" ] || build_args+=(--build-arg "APT_MIRROR=$APT_MIRROR")
[ -z "${JOBS:-}" ] || build_args+=(--build-arg "JOBS=$JOBS")
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -z "${!var:-}" ] || build_args+=(--build-arg "$var=${!var}")
done
# --format docker keeps the HEALTHCHECK (the OCI format has none); --pull=never uses the
# base from the store; the .dockerignore next to the Dockerfile keeps build*/ out.
if ! timeout 900 podman build "${podman_opts[@]}" --format docker --layers --pull=never \
    --ignorefile "$repo/docker/Dockerfile.dockerignore" -f "$repo/docker/Dockerfile" \
    "${build_args[@]}" -t "$image" "$repo" >"$logs/build.log" 2>&1; then
    tail -n 40 "$logs/build.log" >&2
    fail "podman build failed"
fi
ok "built $image in $(elapsed "$t") ($(podman image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"

# ------------------------------------------------------------------------------------
say "the image"
user=$(podman image inspect -f '{{.Config.User}}' "$image")
[ "$user" = mycelium ] || fail "the image runs as '$user', not as the user mycelium"
ok "runs as the user mycelium"
health=$(podman image inspect -f '{{.HealthCheck}}' "$image")
case "$health" in *healthcheck.py*) ok "declares a HEALTHCHECK (docker/healthcheck.py)" ;;
*) fail "no HEALTHCHECK in the image: '$health'" ;; esac
podman run --rm "${podman_opts[@]}" --label "$label" "$image" bash -c '
    set -e
    echo "uid=$(id -u)"
    ldd /usr/local/bin/mycelium-host | grep "not found" || echo "libraries: all found"
    python3 -c "import numpy, mycelium, sys; print(\"python\", sys.version.split()[0], \"numpy\", numpy.__version__, \"sdk\", mycelium.__name__)"
    mycelium-host --version
    mycelium-host schema --contracts /opt/mycelium/scripts/contracts.yaml | head -n 1
' >"$logs/inspect.log" 2>&1 || {
    cat "$logs/inspect.log" >&2
    fail "the image's tools do not run"
}
grep -qx 'uid=10001' "$logs/inspect.log" || fail "not uid 10001: $(head -n 1 "$logs/inspect.log")"
ok "uid 10001 (not root)"
grep -qx 'libraries: all found' "$logs/inspect.log" || fail "missing libraries: $(grep 'not found' "$logs/inspect.log")"
ok "ldd mycelium-host: every shared library found"
grep -q '^python 3\.11.* numpy .* sdk mycelium$' "$logs/inspect.log" || fail "python: $(cat "$logs/inspect.log")"
ok "$(grep '^python' "$logs/inspect.log")"
ok "$(grep '^mycelium-host' "$logs/inspect.log")"

# ------------------------------------------------------------------------------------
say "the bundled demo: feed -> model.py (in the host) -> C++ sink, 4 s"
run_bg demo -e MYCELIUM_DURATION=4 -e MYCELIUM_DEMO_FEED=20000 "$image"
code=$(wait_exit demo 60)
[ "$code" = 0 ] || {
    tail -n 30 "$logs/demo.log" >&2
    fail "the demo exited with status $code"
}
ok "exit status 0"
sed -n '/^mycelium-host summary/,$p' "$logs/demo.log" | grep -v '^20..-' | sed 's/^/       | /'
expect_log demo "metrics on http://0.0.0.0:9100/metrics" "metrics served on 0.0.0.0:9100"
num() { # num REGEX: the first number captured by the regex's group in demo.log
    sed -nE "s/$1/\\1/p" "$logs/demo.log" | head -n 1
}
ticks=$(num '^  feed ticks published +([0-9]+) .*')
calls=$(num '^  python callbacks +([0-9]+) .*')
errors=$(num '^  python callbacks +[0-9]+ +\(errors ([0-9]+),.*')
decode=$(num '^  python callbacks .*decode errors ([0-9]+)\).*')
signals=$(num '^  signals to the C\+\+ sink +([0-9]+).*')
model=$(num '^model: ([0-9]+) ticks in, [0-9]+ signals out')
[ -n "$ticks" ] && [ "$ticks" -gt 0 ] || fail "summary: no feed ticks published"
ok "summary: $ticks feed ticks published"
[ -n "$calls" ] && [ "$calls" -gt 0 ] && [ "$errors" = 0 ] && [ "$decode" = 0 ] ||
    fail "summary: python callbacks '$calls', errors '$errors', decode errors '$decode'"
ok "summary: $calls python callbacks, 0 errors, 0 decode errors"
[ -n "$signals" ] && [ "$signals" -gt 0 ] || fail "summary: no signals reached the C++ sink"
ok "summary: $signals signals reached the C++ sink"
[ -n "$model" ] && [ "$model" = "$calls" ] || fail "model.py saw '$model' ticks, the host counted '$calls' callbacks"
ok "model.py's on_stop hook ran: $model ticks in"

# ------------------------------------------------------------------------------------
say "in-process script: sdk_echo.py inside the containerised host, an SDK client on this machine"
sockets=$(socket_dir inproc)
run_bg inproc -v "$sockets:/run/mycelium" -e MYCELIUM_LISTEN=unix:/run/mycelium/node.sock \
    -e MYCELIUM_SCRIPTS=/opt/mycelium/scripts/examples/sdk_echo.py "$image"
wait_for_log inproc "listening on unix:/run/mycelium/node.sock" 30
ok "the node listens on /run/mycelium/node.sock ($sockets/node.sock here)"
if podman healthcheck run "$(cname inproc)" >"$logs/health.log" 2>&1; then
    ok "podman healthcheck run: healthy"
else
    # Without systemd podman may not run health checks itself: run the same command.
    podman exec "$(cname inproc)" python3 /opt/mycelium/docker/healthcheck.py >"$logs/health.log" 2>&1 ||
        fail "health check: $(cat "$logs/health.log")"
    ok "health check (podman exec): $(cat "$logs/health.log")"
fi
echo_client "$sockets/node.sock" --count 20 --bye --timeout 30 2>&1 | sed 's/^/       | /' ||
    fail "the SDK client on this machine failed"
ok "SDK client on this machine: 20 messages and \"bye\" answered through the mounted socket"
code=$(wait_exit inproc 20)
[ "$code" = 0 ] || fail "the host exited with status $code after \"bye\""
ok "the host stopped after \"bye\" (mycelium.stop() in the script) with status 0"
expect_log inproc "echo: handled 21 messages" "sdk_echo.py in the host handled the 21 messages"
expect_log inproc "mycelium-host summary" "the host printed its summary"

# ------------------------------------------------------------------------------------
say "sidecar: the host and sdk_echo.py in two containers sharing the socket folder"
sockets=$(socket_dir sidecar)
run_bg node -v "$sockets:/run/mycelium" -e MYCELIUM_LISTEN=unix:/run/mycelium/node.sock "$image"
wait_for_log node "listening on unix:/run/mycelium/node.sock" 30
run_bg sidecar -v "$sockets:/run/mycelium" -e MYCELIUM_SOCKET=unix:/run/mycelium/node.sock \
    -e MYCELIUM_SERVICE=sdk-echo "$image" python3 /opt/mycelium/scripts/examples/sdk_echo.py
ok "node and sidecar containers started (no --ipc=host, no shared /dev/shm)"
echo_client "$sockets/node.sock" --count 20 --bye --timeout 30 2>&1 | sed 's/^/       | /' ||
    fail "the SDK client on this machine failed"
ok "SDK client on this machine -> node container -> sidecar container and back"
code=$(wait_exit sidecar 20)
[ "$code" = 0 ] || fail "the sidecar exited with status $code"
expect_log sidecar "echo: handled 21 messages" "the sidecar handled the 21 messages and exited 0"
podman stop -t 15 "$(cname node)" >/dev/null 2>>"$logs/node.run.log"
code=$(wait_exit node 20)
[ "$code" = 0 ] || fail "the node exited with status $code on SIGTERM"
ok "the node stopped on SIGTERM with status 0"
expect_log node "client 'sdk-echo' connected" "the node saw the sidecar connect as 'sdk-echo'"
# What the node's shm links rest on: a memfd ring and an eventfd doorbell made in one
# container, passed over the shared socket folder with SCM_RIGHTS, mapped in the other.
# Each container keeps its own private /dev/shm (64 KiB here, smaller than the 1 MiB
# region): nothing goes through /dev/shm, no --ipc=host.
run_bg memfd-serve -v "$sockets:/run/mycelium" --shm-size 64k "$image" \
    python3 /opt/mycelium/docker/memfd_probe.py serve /run/mycelium/memfd.sock
run_bg memfd-connect -v "$sockets:/run/mycelium" --shm-size 64k "$image" \
    python3 /opt/mycelium/docker/memfd_probe.py connect /run/mycelium/memfd.sock
code=$(wait_exit memfd-connect 40)
sed 's/^/       | /' "$logs/memfd-connect.log"
[ "$code" = 0 ] || fail "memfd probe (connecting side) exited with status $code"
code=$(wait_exit memfd-serve 20)
[ "$code" = 0 ] || fail "memfd probe (serving side) exited with status $code: $(tail -n 1 "$logs/memfd-serve.log")"
ok "a memfd region and an eventfd crossed containers over the socket folder, shared both ways (no --ipc=host)"

# ------------------------------------------------------------------------------------
say "two nodes in two containers, linked over shared memory (no --ipc=host)"
mesh=$(socket_dir shm-mesh)
cat >"$mesh/shm-mesh.toml" <<'TOML'
socket_dir = "/run/mycelium"
[[nodes]]
name = "a"
services = ["a-svc"]
scripts = ["publisher.py"]
[nodes.shm]
enabled = true
[[nodes]]
name = "b"
services = ["b-svc"]
scripts = ["subscriber.py"]
[nodes.shm]
enabled = true
TOML
cat >"$mesh/publisher.py" <<'PY'
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate
state = {"next": 1}

@mn.every(0.01)
def tick():
    mn.publish(CounterUpdate(counter_id=1, value=state["next"]))
    state["next"] += 1
PY
cat >"$mesh/subscriber.py" <<'PY'
import mycelium_native as mn
from mycelium_native.messages import CounterUpdate
seen = []

@mn.subscribe(CounterUpdate)
def on_update(msg):
    seen.append(msg.value)
    if len(seen) == 100:
        steps = {b - a for a, b in zip(seen, seen[1:])}
        print(f"node b got 100 updates from node a, each one once and in order: {steps == {1}}", flush=True)
        mn.stop()
PY
chmod 0644 "$mesh"/*.toml "$mesh"/*.py
run_bg mesh-b -v "$mesh:/run/mycelium" --shm-size 64k -e MYCELIUM_TOPOLOGY=/run/mycelium/shm-mesh.toml \
    -e MYCELIUM_NODE=b "$image"
wait_for_log mesh-b "listening on unix:/run/mycelium/b.sock" 30
run_bg mesh-a -v "$mesh:/run/mycelium" --shm-size 64k -e MYCELIUM_TOPOLOGY=/run/mycelium/shm-mesh.toml \
    -e MYCELIUM_NODE=a "$image"
code=$(wait_exit mesh-b 60)
[ "$code" = 0 ] || fail "node b exited with status $code"
expect_log mesh-b "node b got 100 updates from node a, each one once and in order: True" \
    "a script on node b received a script's messages from node a's container, once each, in order"
expect_log mesh-b "frames go through shared memory now" \
    "the link between the two containers ran over memfd rings (each container's own 64 KiB /dev/shm)"
podman stop -t 15 "$(cname mesh-a)" >/dev/null 2>>"$logs/mesh-a.run.log"
code=$(wait_exit mesh-a 20)
[ "$code" = 0 ] || fail "node a exited with status $code on SIGTERM"
ok "node a stopped on SIGTERM with status 0"

# ------------------------------------------------------------------------------------
say "managed subprocess: the host supervises sdk_echo.py (--worker)"
sockets=$(socket_dir worker)
run_bg supervised -v "$sockets:/run/mycelium" -e MYCELIUM_LISTEN=unix:/run/mycelium/node.sock \
    -e MYCELIUM_WORKERS=sdk-echo=/opt/mycelium/scripts/examples/sdk_echo.py "$image"
# The worker is ready once it has said HELLO with its own name: sdk_echo.py names itself
# "sdk-echo", so that is the worker's name too.
wait_for_log supervised "worker 'sdk-echo'" 30
wait_for_log supervised "is ready" 30
ok "the worker started and connected (ready)"
echo_client "$sockets/node.sock" --count 20 --bye --timeout 30 2>&1 | sed 's/^/       | /' ||
    fail "the SDK client on this machine failed"
ok "SDK client on this machine -> host -> supervised worker and back"
wait_for_log supervised "echo: handled 21 messages" 20
ok "the worker handled the 21 messages (its output is in the host's log)"
podman stop -t 15 "$(cname supervised)" >/dev/null 2>>"$logs/supervised.run.log"
code=$(wait_exit supervised 20)
[ "$code" = 0 ] || fail "the supervising host exited with status $code on SIGTERM"
ok "the host stopped on SIGTERM with status 0"

# ------------------------------------------------------------------------------------
say "independent process: sdk_echo.py on this machine (as the systemd unit runs it), the host in a container"
sockets=$(socket_dir independent)
run_bg independent -v "$sockets:/run/mycelium" -e MYCELIUM_LISTEN=unix:/run/mycelium/node.sock "$image"
wait_for_log independent "listening on unix:/run/mycelium/node.sock" 30
MYCELIUM_SOCKET="unix:$sockets/node.sock" MYCELIUM_SERVICE=sdk-echo PYTHONPATH="$repo/pymodules" \
    "$python" "$repo/scripts/examples/sdk_echo.py" >"$logs/worker-here.log" 2>&1 &
worker_pid=$!
echo_client "$sockets/node.sock" --count 20 --bye --timeout 30 2>&1 | sed 's/^/       | /' ||
    fail "the SDK client on this machine failed"
deadline=$((SECONDS + 20))
while kill -0 "$worker_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
kill -0 "$worker_pid" 2>/dev/null && fail "sdk_echo.py on this machine did not stop after \"bye\""
wait "$worker_pid" || fail "sdk_echo.py on this machine exited with status $?: $(tail -n 3 "$logs/worker-here.log")"
worker_pid=
expect_log worker-here "echo: handled 21 messages" "sdk_echo.py on this machine handled the 21 messages and exited 0"
podman stop -t 15 "$(cname independent)" >/dev/null 2>>"$logs/independent.run.log"
code=$(wait_exit independent 20)
[ "$code" = 0 ] || fail "the host exited with status $code on SIGTERM"
expect_log independent "client 'sdk-echo' connected" "the containerised host saw it connect as 'sdk-echo' and stopped with status 0"
