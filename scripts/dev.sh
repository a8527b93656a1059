#!/usr/bin/env bash
# One entry point for building and running troupe on Debian 12.
#   scripts/dev.sh run    install deps, build, run the main job (troupe demo)
#   scripts/dev.sh test   install deps, build, run the default test suite (ctest -j2, no `long`)
#   scripts/dev.sh long   the long runs: soaks, full-trace replays, and the libFuzzer
#                         targets in a clang build (ctest -L long in build/ and build-fuzz/)
#   scripts/dev.sh bench  build with benchmarks and run them
#   scripts/dev.sh asan|tsan  build with sanitizers into build-asan/build-tsan and run the tests
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"
shift || true

bash scripts/install-deps.sh

jobs="$(nproc)"
configure() {  # configure <dir> [cmake args...]
  local dir="$1"; shift
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
}

case "$mode" in
  run)
    configure build
    cmake --build build -j "$jobs" --target troupe trouped troupe-exec
    # A local cluster (head + 3 workers, simulated GPUs) running a job.
    exec bash scripts/cluster-demo.sh build
    ;;
  test)
    configure build
    cmake --build build -j "$jobs"
    exec ctest --test-dir build -j2 --output-on-failure -LE long "$@"
    ;;
  long)
    # gcc build: soaks and replays; clang build: libFuzzer targets.
    configure build
    cmake --build build -j "$jobs"
    ctest --test-dir build --output-on-failure -L long "$@"
    configure build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DTROUPE_BUILD_FUZZ=ON -DTROUPE_BUILD_TESTS=ON
    cmake --build build-fuzz -j "$jobs"
    exec ctest --test-dir build-fuzz --output-on-failure -L long "$@"
    ;;
  bench)
    configure build-bench -DTROUPE_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release -DTROUPE_BUILD_TESTS=OFF
    cmake --build build-bench -j "$jobs"
    exec ./build-bench/bench/bench_runtime "$@"
    ;;
  asan)
    configure build-asan -DTROUPE_SANITIZE=address,undefined
    cmake --build build-asan -j "$jobs"
    exec ctest --test-dir build-asan -j2 --output-on-failure -LE long "$@"
    ;;
  tsan)
    configure build-tsan -DTROUPE_SANITIZE=thread
    cmake --build build-tsan -j "$jobs"
    TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 suppressions=$PWD/scripts/tsan.supp}" \
      exec ctest --test-dir build-tsan -j2 --output-on-failure -LE long "$@"
    ;;
  *)
    echo "usage: scripts/dev.sh run|test|long|bench|asan|tsan" >&2
    exit 2
    ;;
esac
