#!/usr/bin/env bash
# Set up a Debian 12 machine for mycelium-host, build it, then run the demo or the tests.
#
#   scripts/setup.sh run     install what is missing, build, run the demo (the main job)
#   scripts/setup.sh test    install what is missing, build, run the whole test suite
#   scripts/setup.sh build   install what is missing and build
#
# Idempotent: packages already installed are not touched, and the build is incremental.
# Environment: BUILD_DIR (default: build), JOBS (default: nproc), DEMO_SECONDS (default: 5),
# MYCELIUM_SKIP_TSAN=1 (test: skip the ThreadSanitizer pass),
# MYCELIUM_SKIP_ASAN=1 (test: skip the AddressSanitizer+UBSan pass, built with clang, and
# the short fuzz runs on the same build), MYCELIUM_FUZZ_SECONDS (each fuzz target, default: 20),
# MYCELIUM_SKIP_IMAGE=1 (test: skip building and checking the container image),
# DEMO_RATE (ticks per second, default: 50000).
set -euo pipefail

mode=${1:-build}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$repo/build}
jobs=${JOBS:-$(nproc)}

# Debian package names only; nothing is downloaded from anywhere else.
build_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  python3 python3-dev libpython3.11-dev pybind11-dev python3-numpy python3-yaml python3-pytest
  libasio-dev libtomlplusplus-dev libspdlog-dev libfmt-dev doctest-dev prometheus-cpp-dev
  libyaml-cpp-dev libcli11-dev libssl-dev
)
test_packages=(
  prometheus python3-prometheus-client python3-zmq python3-pytest-timeout clang libclang-rt-14-dev
  podman buildah runc debootstrap rustc
)

log() { printf '==> %s\n' "$*" >&2; }

install_missing() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}"
    log "run this script as root (or: sudo apt-get install ${missing[*]})"
    exit 2
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  # /usr/bin/python3, never the pyenv interpreter that may be first on PATH.
  log "configuring in $build_dir"
  cmake -S "$repo" -B "$build_dir" -G Ninja -DPython_EXECUTABLE=/usr/bin/python3 >/dev/null
  log "building with $jobs jobs"
  cmake --build "$build_dir" -j "$jobs"
}

case "$mode" in
  build)
    install_missing "${build_packages[@]}"
    build
    ;;
  run)
    install_missing "${build_packages[@]}"
    build
    log "running the demo for ${DEMO_SECONDS:-5} s: feed -> model.py (in the host) -> C++ sink"
    exec "$build_dir/host/app/mycelium-host" --script "$repo/scripts/examples/model.py" \
      --demo-feed "${DEMO_RATE:-50000}" --duration "${DEMO_SECONDS:-5}"
    ;;
  test)
    install_missing "${build_packages[@]}" "${test_packages[@]}"
    build
    if [ "${MYCELIUM_SKIP_TSAN:-0}" != 1 ]; then
      # The C++ unit tests once more under ThreadSanitizer: the bus and its queues are
      # lock-free, and races there would not show in a normal build.
      log "building and running the C++ unit tests under ThreadSanitizer"
      cmake -S "$repo" -B "$build_dir-tsan" -G Ninja -DPython_EXECUTABLE=/usr/bin/python3 \
        -DMYCELIUM_SANITIZE=thread -DMYCELIUM_BUILD_BENCH=OFF >/dev/null
      cmake --build "$build_dir-tsan" -j "$jobs" --target mycelium_cpp_tests
      TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "$build_dir-tsan/tests/mycelium_cpp_tests"
    fi
    if [ "${MYCELIUM_SKIP_ASAN:-0}" != 1 ]; then
      # The C++ tests, the embedded tests and the Python host and SDK tests (against this
      # build's mycelium-host) under AddressSanitizer and UBSan, with clang: the build the
      # fuzz targets share. Every report goes to a file, so one from a host that a Python
      # test started (and whose exit status it may not check) still fails the pass.
      # LeakSanitizer stays on for the C++ tests; it is off (detect_leaks=0) where CPython
      # is embedded, whose own allocations it reports (docs/reliability.md "Sanitizers").
      log "building and running the C++, embedded and Python tests under AddressSanitizer+UBSan (clang)"
      cmake -S "$repo" -B "$build_dir-asan" -G Ninja -DPython_EXECUTABLE=/usr/bin/python3 \
        -DCMAKE_CXX_COMPILER=clang++ -DMYCELIUM_SANITIZE=address -DMYCELIUM_BUILD_BENCH=OFF >/dev/null
      cmake --build "$build_dir-asan" -j "$jobs" --target mycelium_cpp_tests mycelium_embed_tests \
        mycelium-host codegen_sample codegen_mycelium_sample
      asan_logs="$build_dir-asan/sanitizer-reports"
      rm -rf "$asan_logs" && mkdir -p "$asan_logs"
      export UBSAN_OPTIONS="print_stacktrace=1:log_path=$asan_logs/ubsan"
      asan_status=0
      ASAN_OPTIONS="log_path=$asan_logs/asan" "$build_dir-asan/tests/mycelium_cpp_tests" || asan_status=1
      export ASAN_OPTIONS="detect_leaks=0:log_path=$asan_logs/asan"
      "$build_dir-asan/tests/mycelium_embed_tests" || asan_status=1
      ctest --test-dir "$build_dir-asan" --output-on-failure -j "$jobs" --timeout 900 -R '^python\.(host|sdk)$' \
        || asan_status=1
      unset ASAN_OPTIONS UBSAN_OPTIONS
      if [ -n "$(ls -A "$asan_logs")" ]; then
        log "sanitizer reports in $asan_logs:"
        cat "$asan_logs"/* >&2
        asan_status=1
      fi
      [ "$asan_status" = 0 ] || exit 1
      # Every libFuzzer target on the same build, from its seed corpus, for a short run:
      # a parser change that crashes on known inputs, or soon after, fails here. The long
      # runs are by hand (docs/reliability.md, "Fuzzing").
      log "building and running every fuzz target for ${MYCELIUM_FUZZ_SECONDS:-20} s"
      cmake --build "$build_dir-asan" -j "$jobs" --target mycelium_fuzz
      bash "$repo/scripts/fuzz.sh" "$build_dir-asan" "${MYCELIUM_FUZZ_SECONDS:-20}"
    fi
    # Each transport but unix: is optional (host/src/transport/CMakeLists.txt): the host
    # must build and serve without them, and name what is missing.
    log "building the host without the optional transports (MYCELIUM_TRANSPORT_TCP=OFF, MYCELIUM_TRANSPORT_SHM=OFF)"
    cmake -S "$repo" -B "$build_dir-minimal" -G Ninja -DPython_EXECUTABLE=/usr/bin/python3 \
      -DMYCELIUM_TRANSPORT_TCP=OFF -DMYCELIUM_TRANSPORT_SHM=OFF -DMYCELIUM_BUILD_TESTS=OFF -DMYCELIUM_BUILD_BENCH=OFF >/dev/null
    cmake --build "$build_dir-minimal" -j "$jobs" --target mycelium-host
    bash "$repo/scripts/check-minimal-build.sh" "$build_dir-minimal/host/app/mycelium-host"
    log "running the test suite"
    ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 900
    if [ "${MYCELIUM_SKIP_IMAGE:-0}" != 1 ]; then
      log "building and checking the container image with podman (docker/test-image.sh)"
      bash "$repo/docker/test-image.sh"
    fi
    ;;
  *)
    echo "usage: $0 run|test|build" >&2
    exit 2
    ;;
esac
