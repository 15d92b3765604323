#!/usr/bin/env bash
# scripts/fuzz.sh BUILD_DIR [SECONDS]
#
# Runs every libFuzzer target of a clang build (tests/fuzz, `ninja -C BUILD_DIR
# mycelium_fuzz`) for SECONDS each (default 20), two at a time. Each target starts from
# a scratch copy of its seed corpus, tests/fuzz/corpus/<name>/, so the repository's
# corpus never grows. Prints one line per target with its executions and exec/s, and
# exits non-zero if any target crashed (a sanitizer report, a failed check, a timeout, a
# leak) or is missing; the crashing input is kept under the scratch folder and named in
# the output. docs/reliability.md, "Fuzzing", has the targets and the hand-run figures.
#
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DMYCELIUM_SANITIZE=address \
#         -DPython_EXECUTABLE=/usr/bin/python3 && ninja -C build-fuzz mycelium_fuzz
#   scripts/fuzz.sh build-fuzz 20
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 BUILD_DIR [SECONDS]" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
corpora=$root/tests/fuzz/corpus
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mycelium-fuzz.XXXXXX")

targets=()
for dir in "$corpora"/*/; do targets+=("$(basename "$dir")"); done

# One target: the fuzzer's output goes to scratch/<name>.log, its verdict to
# scratch/<name>.result ("ok RUNS EXEC_PER_S" or "FAIL why").
run_one() {
  local name=$1
  local binary=$build/tests/fuzz/mycelium_${name}_fuzz
  local work=$scratch/$name
  if [[ ! -x $binary ]]; then
    echo "FAIL missing $binary" > "$scratch/$name.result"
    return
  fi
  mkdir -p "$work/corpus" "$work/artifacts"
  cp "$corpora/$name"/* "$work/corpus/"
  local status=0
  # -timeout: one input taking longer than 10 s is a hang, reported as a crash.
  "$binary" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" > "$scratch/$name.log" 2>&1 || status=$?
  local runs rate
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$name.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$scratch/$name.log" | tail -1)
  if [[ $status -ne 0 ]] || compgen -G "$work/artifacts/*" > /dev/null; then
    echo "FAIL exit $status, input: $(ls "$work/artifacts" 2>/dev/null | head -1) (log: $scratch/$name.log)" \
      > "$scratch/$name.result"
  else
    echo "ok ${runs:-?} ${rate:-?}" > "$scratch/$name.result"
  fi
}

# Two at a time: start one, and when two run, wait for either before the next.
running=0
for name in "${targets[@]}"; do
  run_one "$name" &
  running=$((running + 1))
  if [[ $running -ge 2 ]]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
for name in "${targets[@]}"; do
  read -r verdict rest < "$scratch/$name.result"
  if [[ $verdict == ok ]]; then
    read -r runs rate <<< "$rest"
    printf 'fuzz %-16s ok    %12s executions in %ss (%s exec/s)\n' "$name" "$runs" "$seconds" "$rate"
  else
    printf 'fuzz %-16s FAIL  %s\n' "$name" "$rest"
    failed=1
  fi
done
if [[ $failed -ne 0 ]]; then
  echo "fuzz: a target failed; scratch corpora, logs and inputs are in $scratch" >&2
  exit 1
fi
rm -rf "$scratch"
