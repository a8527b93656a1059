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
#             pinned host memory: Debian's UCX has no CUDA support).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.gpu-check

pack() {
  bash scripts/install-deps.sh
  [ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu-check: no CUDA toolkit in /usr/local/cuda" >&2; exit 1; }
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_WITH_CUDA=ON \
    -DTROUPE_BUILD_BENCH=OFF ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER}
  cmake --build build-gpu -j"$(nproc)" --target test_transport_device_buffer test_transport_fabric
  rm -rf "$dir"
  mkdir -p "$dir/bin" "$dir/lib"
  cp build-gpu/tests/test_transport_device_buffer build-gpu/tests/test_transport_fabric "$dir/bin/"
  # Debug info would take the folder past the device tool's 64 MiB.
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

run() {
  [ -d "$dir" ] || { echo "gpu-check: $dir missing: run 'pack' here and carry it" >&2; exit 1; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  export LD_LIBRARY_PATH="$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export UCX_MODULE_DIR="$PWD/$dir/ucx"
  export UCX_NET_DEVICES=lo
  rc=0
  "$dir/bin/test_transport_device_buffer" || rc=1
  "$dir/bin/test_transport_fabric" -tc='device buffers*' -s || rc=1
  TROUPE_TEST_UCX_TLS=tcp "$dir/bin/test_transport_fabric" -tc='device buffers*' || rc=1
  echo "gpu-check: rc=$rc"
  exit "$rc"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
