#!/usr/bin/env bash
# The GPU check of the transport's device-memory path (issue 5), for a
# session that is lent a GPU machine. That machine is bare and offline (no
# apt, no Debian packages), so the tests are built here and carried there
# with the shared libraries they need.
#
# Here:       bash scripts/gpu-check.sh pack
#             (configures build-gpu with TROUPE_WITH_CUDA=ON, builds the
#             device tests, copies them and their non-system libraries and
#             UCX's modules into .gpu-check/, which .git/info/exclude hides)
# There:      bash scripts/gpu-check.sh run      (device tool: carry .gpu-check)
#             nvidia-smi, then the device_buffer unit test and the fabric
#             test's device case with CUDA memory on the GPU (staged through
#             pinned host memory: Debian's UCX has no CUDA support), then
#             the transport benchmark (bench/peers/run_side_by_side.sh
#             --quick --inline) on that machine's 16 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.gpu-check

pack() {
  bash scripts/install-deps.sh
  [ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu-check: no CUDA toolkit in /usr/local/cuda" >&2; exit 1; }
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_WITH_CUDA=ON \
    -DTROUPE_BUILD_BENCH=ON ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER}
  cmake --build build-gpu -j"$(nproc)" --target test_transport_device_buffer test_transport_fabric \
    bench_transport_peer bench_caf_basp_peer
  rm -rf "$dir"
  mkdir -p "$dir/bin" "$dir/lib"
  cp build-gpu/tests/test_transport_device_buffer build-gpu/tests/test_transport_fabric "$dir/bin/"
  # The transport's side-by-side benchmark too: that machine has 16 cores.
  cp build-gpu/bench/bench_transport_peer build-gpu/bench/bench_caf_basp_peer "$dir/bin/"
  cp /usr/bin/ucx_perftest "$dir/bin/" 2>/dev/null || true
  # Debug info would take the folder past the device tool's 64 MiB.
  cp /usr/bin/ucx_info "$dir/bin/" 2>/dev/null || true
  strip --strip-debug "$dir"/bin/*
  # Every library outside glibc and the CUDA driver (the machine has its own).
  for b in "$dir"/bin/*; do
    ldd "$b" | awk '/=> \//{print $3}'
  done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libcuda.so*) ;;
      *) cp -L "$lib" "$dir/lib/" ;;
    esac
  done
  # UCX loads its transports as modules at run time (from UCX_MODULE_DIR).
  mkdir -p "$dir/ucx" && cp -L /usr/lib/x86_64-linux-gnu/ucx/*.so* "$dir/ucx/" 2>/dev/null || true
  grep -qx "/$dir/" .git/info/exclude 2>/dev/null || echo "/$dir/" >>.git/info/exclude
  du -sh "$dir"
}

# Runs one test binary under a time limit; on a hang, prints every
# thread's stack (cuda-gdb, which the GPU machine's image has) and kills it.
bounded() {
  local limit=$1; shift
  stdbuf -oL -eL "$@" &
  local pid=$! waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$limit" ]; do sleep 1; waited=$((waited + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    echo "gpu-check: $1 still running after ${limit}s; stacks:"
    command -v cuda-gdb >/dev/null && timeout 60 cuda-gdb -q -batch -p "$pid" -ex "thread apply all bt 25" 2>&1 | grep -v '^\[New LWP' | head -300
    kill -9 "$pid"; wait "$pid" 2>/dev/null
    return 124
  fi
  wait "$pid"
}

run() {
  [ -d "$dir" ] || { echo "gpu-check: $dir missing: run 'pack' here and carry it" >&2; exit 1; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  uname -r
  export LD_LIBRARY_PATH="$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export UCX_MODULE_DIR="$PWD/$dir/ucx"
  export UCX_NET_DEVICES=lo
  [ -x "$dir/bin/ucx_info" ] && timeout 20 "$dir/bin/ucx_info" -d | grep -E 'Transport|Device' | sort | uniq -c | head -20
  rc=0
  bounded 60 "$dir/bin/test_transport_device_buffer" || rc=1
  TROUPE_TEST_LOG=1 TROUPE_TEST_UCX_TLS=tcp bounded 90 "$dir/bin/test_transport_fabric" -tc='device buffers*' || rc=1
  bounded 90 "$dir/bin/test_transport_fabric" -tc='device buffers*' || rc=1
  # The transport benchmark on a machine with more cores than CI's (quick).
  PATH="$PWD/$dir/bin:$PATH" bounded 200 bash bench/peers/run_side_by_side.sh --quick --inline \
    --bin-dir "$dir/bin" --out "${OUT:-/tmp}/peers.jsonl" || echo "gpu-check: benchmark failed"
  echo "gpu-check: rc=$rc"
  exit "$rc"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
