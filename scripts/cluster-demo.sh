#!/usr/bin/env bash
# troupe's main job on an embedded default: a local cluster on this machine
# (a head and three workers as trouped processes on loopback, simulated GPUs
# where there are none), a 4-replica job on it (each replica one GPU, running
# the supervised pi estimator with one injected crash), its table and logs,
# then the cluster goes down. Run by `bash scripts/dev.sh run` after the build.
#   usage: scripts/cluster-demo.sh [BUILD_DIR]   (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
troupe="$PWD/$build/tools/troupe"
dir="$(mktemp -d /tmp/troupe-demo.XXXXXX)"
cleanup() {
  "$troupe" down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
# Loopback only; UCX would also open lanes on every other interface.
export UCX_NET_DEVICES="${UCX_NET_DEVICES:-lo}" UCX_WARN_UNUSED_ENV_VARS=n

"$troupe" up --dir "$dir" --workers 3 --gpus 2
for _ in $(seq 1 100); do
  [ "$("$troupe" nodes --dir "$dir" | grep -c ' up ')" -ge 4 ] && break
  sleep 0.1
done
"$troupe" nodes --dir "$dir"
echo
id=$("$troupe" submit --dir "$dir" --name pi-estimate --replicas 4 --gpus 1 \
  --restart on-failure -- \
  "echo \"replica \$TROUPE_REPLICA on \$TROUPE_NODE, GPU \$CUDA_VISIBLE_DEVICES\"; \
   '$troupe' demo --workers 4 --shards 32 --seed \$((42 + TROUPE_REPLICA)) | grep -E '^(replica|pi)'" |
  cut -d' ' -f1)
echo "submitted $id"
for _ in $(seq 1 300); do
  state=$("$troupe" jobs --dir "$dir" --json | sed -n 's/.*"state": "\([a-z]*\)".*/\1/p' | head -1)
  case "$state" in succeeded | failed | cancelled) break ;; esac
  sleep 0.1
done
"$troupe" job --dir "$dir" "$id"
echo
for r in 0 1 2 3; do
  "$troupe" logs --dir "$dir" "$id" --replica "$r"
done
echo
"$troupe" jobs --dir "$dir"
