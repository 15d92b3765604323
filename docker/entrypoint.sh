#!/bin/bash
# Entrypoint of the mycelium-host image (docker/Dockerfile; docs/deployment.md).
#
#   (no arguments)              run mycelium-host as the environment says; given no
#                               script, listener, worker or topology, the bundled demo:
#                               a synthetic feed -> model.py (inside the host) -> a C++ sink
#   --flag ...                  the same, with these mycelium-host flags after the ones
#                               taken from the environment
#   check|schema|codegen|tap|pub|demo ...
#                               that mycelium-host command, as given
#   mycelium-host ARGS...       mycelium-host with exactly these arguments (no environment)
#   anything else               executed as given: `python3 worker.py` for a sidecar
#
# Environment (each optional; lists are separated by spaces or commas, except
# MYCELIUM_WORKERS, whose entries may contain commas and are separated by spaces):
#   MYCELIUM_TOPOLOGY, MYCELIUM_NODE   --topology FILE --node NAME (node mode; both or neither)
#   MYCELIUM_SCRIPTS                   --script FILE for each
#   MYCELIUM_LISTEN                    --listen ENDPOINT for each (unix:/run/mycelium/node.sock)
#   MYCELIUM_WORKERS                   --worker NAME=SCRIPT[:ARG,...] for each
#   MYCELIUM_METRICS                   --metrics HOST:PORT; default 0.0.0.0:9100, except in node
#                                      mode, where the topology's `metrics` applies; "off": none
#   MYCELIUM_CONTRACTS                 --contracts FILE
#   MYCELIUM_DEMO_FEED                 --demo-feed RATE (the demo's default: 50000)
#   MYCELIUM_DURATION                  --duration SECONDS
#   MYCELIUM_LOG_LEVEL, MYCELIUM_LOG_FORMAT   --log-level, --log-format
#   MYCELIUM_ARGS                      more flags, split on spaces
set -euo pipefail

home=${MYCELIUM_HOME:-/opt/mycelium}
host=${MYCELIUM_HOST_BINARY:-mycelium-host}

die() {
    printf 'entrypoint: error: %s\n' "$*" >&2
    exit 2
}

case "${1:-}" in
    "" | -*) ;;
    check | schema | codegen | tap | pub | demo) exec "$host" "$@" ;;
    mycelium-host) shift; exec "$host" "$@" ;;
    *) exec "$@" ;;
esac

# words TEXT [SEPARATORS]: TEXT split on spaces and commas (or SEPARATORS) into the
# array `words`; read does no globbing.
words=()
words() { IFS=${2:-$', \t\n'} read -r -d '' -a words <<<"$1" || true; }

args=()
if [ -n "${MYCELIUM_TOPOLOGY:-}${MYCELIUM_NODE:-}" ]; then
    [ -n "${MYCELIUM_TOPOLOGY:-}" ] || die "MYCELIUM_NODE=$MYCELIUM_NODE needs MYCELIUM_TOPOLOGY (the topology file)"
    [ -n "${MYCELIUM_NODE:-}" ] || die "MYCELIUM_TOPOLOGY=$MYCELIUM_TOPOLOGY needs MYCELIUM_NODE (the node to run)"
    args+=(--topology "$MYCELIUM_TOPOLOGY" --node "$MYCELIUM_NODE")
fi
[ -z "${MYCELIUM_CONTRACTS:-}" ] || args+=(--contracts "$MYCELIUM_CONTRACTS")

words "${MYCELIUM_SCRIPTS:-}"
for w in "${words[@]}"; do args+=(--script "$w"); done
words "${MYCELIUM_LISTEN:-}"
for w in "${words[@]}"; do args+=(--listen "$w"); done
words "${MYCELIUM_WORKERS:-}" $' \t\n'
for w in "${words[@]}"; do args+=(--worker "$w"); done

[ -z "${MYCELIUM_DEMO_FEED:-}" ] || args+=(--demo-feed "$MYCELIUM_DEMO_FEED")
[ -z "${MYCELIUM_DURATION:-}" ] || args+=(--duration "$MYCELIUM_DURATION")
[ -z "${MYCELIUM_LOG_LEVEL:-}" ] || args+=(--log-level "$MYCELIUM_LOG_LEVEL")
[ -z "${MYCELIUM_LOG_FORMAT:-}" ] || args+=(--log-format "$MYCELIUM_LOG_FORMAT")

words "${MYCELIUM_ARGS:-}" $' \t\n'
args+=("${words[@]}" "$@")

has_flag() { # has_flag --name: is --name (or --name=...) among args?
    local a
    for a in "${args[@]}"; do
        case "$a" in "$1" | "$1"=*) return 0 ;; esac
    done
    return 1
}

# Nothing to serve (no script, listener, worker or topology): the bundled demo.
if ! has_flag --script && ! has_flag --listen && ! has_flag --worker && ! has_flag --topology; then
    args=(--script "$home/scripts/examples/model.py" "${args[@]}")
    has_flag --demo-feed || args+=(--demo-feed 50000)
fi

# Metrics are on by default so that the health check has something to probe; in node
# mode the topology's `metrics` key decides unless MYCELIUM_METRICS is set.
metrics=${MYCELIUM_METRICS-}
if [ -z "$metrics" ] && ! has_flag --topology; then metrics=0.0.0.0:9100; fi
case "$metrics" in
    "" | off | none) ;;
    *) has_flag --metrics || args+=(--metrics "$metrics") ;;
esac

printf 'entrypoint: %s' "$host" >&2
printf ' %q' "${args[@]}" >&2
printf '\n' >&2
exec "$host" "${args[@]}"
