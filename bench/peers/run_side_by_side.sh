#!/usr/bin/env bash
# Transport benchmark, side by side in one run on loopback (issue 5):
#   raw UCX (ucx_perftest, error handling on) over TCP and over shared memory,
#   CAF 0.17's own remoting (io middleman, BASP over TCP) with CAF's default
#   scheduler and with work-stealing.moderate-poll-attempts=0, and troupe's
#   transport (bench_transport_peer, when built) over TCP and shared memory,
#   event-driven and busy-polling.
# Tests: request/response round trip of 64 B, one-way rate of 64 B messages,
# bandwidth of 64 KiB, 1 MiB and 16 MiB messages. All raw results go to a JSON
# lines file; one table with the medians over --reps runs and the ratios of the
# issue's goals is printed at the end.
#
# usage: bench/peers/run_side_by_side.sh [--quick] [--reps N] [--out FILE]
#                                        [--bin-dir DIR] [--only ucx,caf,troupe]
#                                        [--inline]
#   --quick    small counts, one repetition (about a minute)
#   --reps N   repeat the whole suite N times, interleaved (default 3; quick 1)
#   --out FILE raw JSON lines (default /tmp/troupe-peers.jsonl)
#   --bin-dir  where bench_caf_basp_peer and bench_transport_peer are
#              (default build/bench)
#   --only     a subset of the systems
#   --inline   troupe peers with transport.inline_delivery = all (actors run
#              on the fabric's progress thread: one thread hand-off less)
#
# Peer contract (bench_caf_basp_peer, bench_transport_peer):
#   PEER --role server --port 0 [ARGS]   prints "ready <port>", serves until
#                                        stdin closes
#   PEER --role client --port P --test rtt|rate|bw --size B --count N [ARGS]
#        [--warmup-bytes B (bw, --quick only)]
#   prints one JSON line: "test", "size", and "median_us" (rtt), "msgs_per_s"
#   (rate) or "gib_per_s" (bw). ARGS: --poll0 (CAF); --transport tcp|shm
#   [--busy-poll] (troupe). Every child runs under `timeout`; all are ended
#   on exit.
#
# ucx_perftest choices (see docs/PERFORMANCE.md, "Transport: peers"):
#   - ucp_am_lat / ucp_am_bw: UCP active messages, the API troupe's transport
#     sends with (small messages eager, large ones AM rendezvous), rather than
#     tag matching, which troupe does not use.
#   - -e: endpoints with peer error handling, as troupe creates them.
#   - am_lat prints HALF the round trip (ping-pong time / 2); the round trip
#     recorded here is twice its median.
#   - shared memory: UCX_TLS=sysv,posix,cma,self with
#     UCX_SYSV_ERROR_HANDLING=y UCX_POSIX_ERROR_HANDLING=y (without them UCX
#     1.13 refuses every shm transport under -e: "no peer failure handler").
#     ucx_perftest exchanges worker addresses over its own socket, so it needs
#     no TCP lane for wire-up; the lanes UCX chose are recorded per run
#     ("lanes", from UCX_LOG_LEVEL=info) and are am(sysv/memory) here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

quick=0
reps=""
out=/tmp/troupe-peers.jsonl
bin_dir="$repo/build/bench"
only="ucx,caf,troupe"
troupe_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --reps) reps="$2"; shift ;;
    --out) out="$2"; shift ;;
    --bin-dir) bin_dir="$2"; shift ;;
    --only) only="$2"; shift ;;
    --inline) troupe_extra+=(--inline) ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "run_side_by_side: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$reps" ]; then
  if [ "$quick" = 1 ]; then reps=1; else reps=3; fi
fi
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "run_side_by_side: --reps wants a positive integer" >&2; exit 2; }
want() { [[ ",$only," == *",$1,"* ]]; }

caf_peer="$bin_dir/bench_caf_basp_peer"
troupe_peer="$bin_dir/bench_transport_peer"

# -- counts -----------------------------------------------------------------
# name: iterations for <system>_<test>[_<size>]. Default counts make the
# whole run take a few minutes on 2 cores.
sizes_bw=(65536 1048576 16777216)
declare -A n
bw_warmup=() # quick: less untimed bulk before bw (the peers default to 256 MiB)
if [ "$quick" = 1 ]; then
  n[ucx_rtt]=20000; n[ucx_rtt_sleep]=5000; n[ucx_rate]=200000
  n[ucx_bw_65536]=4096; n[ucx_bw_1048576]=256; n[ucx_bw_16777216]=16
  n[caf_rtt]=1000; n[caf_local]=10000; n[caf_rate]=30000
  n[caf_bw_65536]=1024; n[caf_bw_1048576]=64; n[caf_bw_16777216]=4
  n[troupe_rtt]=2000; n[troupe_rate]=100000
  n[troupe_bw_65536]=2048; n[troupe_bw_1048576]=128; n[troupe_bw_16777216]=8
  bw_warmup=(--warmup-bytes 33554432)
else
  n[ucx_rtt]=100000; n[ucx_rtt_sleep]=30000; n[ucx_rate]=1000000
  n[ucx_bw_65536]=16384; n[ucx_bw_1048576]=1024; n[ucx_bw_16777216]=64
  n[caf_rtt]=10000; n[caf_local]=50000; n[caf_rate]=300000
  n[caf_bw_65536]=8192; n[caf_bw_1048576]=512; n[caf_bw_16777216]=32
  n[troupe_rtt]=50000; n[troupe_rate]=1000000
  n[troupe_bw_65536]=16384; n[troupe_bw_1048576]=1024; n[troupe_bw_16777216]=64
fi
client_timeout=120 # seconds, per client run
server_timeout=900 # seconds, per server (a whole series of clients)

# -- children and cleanup ---------------------------------------------------
work="$(mktemp -d /tmp/troupe-peers.XXXXXX)"
children=()
cleanup() {
  local pid
  for pid in "${children[@]:-}"; do
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${children[@]:-}"; do
    if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_child() {
  local i
  for i in "${!children[@]}"; do
    [ "${children[$i]}" = "$1" ] && unset 'children[i]'
  done
  return 0
}

# Waits up to $2 seconds for pid $1 to end, then kills it; returns its status.
reap() {
  local pid="$1" deadline=$((SECONDS + $2)) rc=0
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt "$deadline" ]; do sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || rc=$?
  forget_child "$pid"
  return "$rc"
}

warn() { echo "run_side_by_side: $*" >&2; }
phase() { echo "[${SECONDS} s] $*" >&2; } # progress on stderr, seconds since start

# run_child OUT ERR CMD...: runs CMD under `timeout` in the background and
# waits for it, so that a signal to this script is handled at once (the trap
# ends the child); returns CMD's status. OUT and ERR may be the same file.
run_child() {
  local out="$1" err="$2" pid rc=0
  shift 2
  if [ "$out" = "$err" ]; then
    timeout "$client_timeout" "$@" >"$out" 2>&1 &
  else
    timeout "$client_timeout" "$@" >"$out" 2>"$err" &
  fi
  pid=$!
  children+=("$pid")
  wait "$pid" || rc=$?
  forget_child "$pid"
  return "$rc"
}

# -- ports ------------------------------------------------------------------
port_busy() {
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
  else
    # Without ss (the GPU machine's image): a listening socket (state 0A) on
    # that port in /proc/net/tcp*. Connecting to probe would take the
    # single connection ucx_perftest's server accepts.
    local hex
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
      awk -v p="$hex" '$2 ~ (":" p "$") && $4 == "0A" {found = 1} END {exit !found}'
  fi
}
port_listening() {
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ]
  else
    # Without ss (the GPU machine's image): a listening socket (state 0A) on
    # that port in /proc/net/tcp*. Connecting to probe would take the
    # single connection ucx_perftest's server accepts.
    local hex
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
      awk -v p="$hex" '$2 ~ (":" p "$") && $4 == "0A" {found = 1} END {exit !found}'
  fi
}
# A port nobody uses, below the kernel's ephemeral range (ucx_perftest cannot
# bind port 0 and report it; our peers can and do).
free_port() {
  local p i
  for i in $(seq 100); do
    p=$((20000 + RANDOM % 12000))
    if ! port_busy "$p"; then echo "$p"; return 0; fi
  done
  warn "no free port found"
  return 1
}

# -- JSON -------------------------------------------------------------------
: >"$out"
# jget LINE KEY: the value of KEY in a flat JSON object (quotes stripped).
jget() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\)\"\{0,1\}[,}].*/\1/p" <<<"$1"; }

# results["system|transport|mode|test|size"] = space-separated values (one per rep)
declare -A results
# record LINE [SYSTEM|TRANSPORT|MODE]: append LINE to --out and remember its
# headline figure, under the given column key or else the line's own fields.
record() {
  local line="$1" colkey="${2:-}" test metric key val
  echo "$line" >>"$out"
  test="$(jget "$line" test)"
  case "$test" in
    rtt|local-rtt) metric=median_us ;;
    rate) metric=msgs_per_s ;;
    bw) metric=gib_per_s ;;
    *) warn "unknown test in: $line"; return 0 ;;
  esac
  val="$(jget "$line" "$metric")"
  if [ -z "$val" ]; then warn "no $metric in: $line"; return 0; fi
  [ -n "$colkey" ] || colkey="$(jget "$line" system)|$(jget "$line" transport)|$(jget "$line" mode)"
  key="$colkey|$test|$(jget "$line" size)"
  results[$key]="${results[$key]:-} $val"
}

# -- ucx_perftest -----------------------------------------------------------
ucx_env() { # ucx_env tcp|shm: the environment for both sides
  case "$1" in
    tcp) echo "UCX_TLS=tcp" ;;
    shm) echo "UCX_TLS=sysv,posix,cma,self UCX_SYSV_ERROR_HANDLING=y UCX_POSIX_ERROR_HANDLING=y" ;;
  esac
}

# ucx_run TRANSPORT TEST SIZE ITERS [sleep]: one server/client pair, one JSON
# line. "sleep": ucx_perftest -E sleep (wait for events instead of polling).
ucx_run() {
  local tr="$1" test="$2" size="$3" iters="$4" wait_mode="${5:-poll}" ptest warm port spid=""
  local mode=err-handling extra=()
  if [ "$wait_mode" = sleep ]; then mode="err-handling-sleep"; extra=(-E sleep); fi
  local env_vars csv lanes rc line
  case "$test" in
    rtt) ptest=ucp_am_lat ;;
    rate|bw) ptest=ucp_am_bw ;;
  esac
  warm=$((iters / 10 > 10 ? iters / 10 : 10))
  read -r -a env_vars <<<"$(ucx_env "$tr") UCX_WARN_UNUSED_ENV_VARS=n"
  for _ in 1 2 3; do
    port="$(free_port)" || return 0
    env "${env_vars[@]}" timeout "$client_timeout" ucx_perftest -p "$port" \
      >"$work/ucx-server.log" 2>&1 &
    spid=$!
    children+=("$spid")
    local deadline=$((SECONDS + 15))
    while ! port_listening "$port" && kill -0 "$spid" 2>/dev/null &&
      [ $SECONDS -lt "$deadline" ]; do sleep 0.05; done
    if port_listening "$port"; then break; fi
    reap "$spid" 1 || true
    spid=""
  done
  if [ -z "$spid" ]; then warn "ucx_perftest server did not start ($tr $test $size)"; return 0; fi
  rc=0
  run_child "$work/ucx-client.log" "$work/ucx-client.log" \
    env "${env_vars[@]}" UCX_LOG_LEVEL=info ucx_perftest 127.0.0.1 \
    -p "$port" -t "$ptest" -s "$size" -n "$iters" -w "$warm" -e -v -f "${extra[@]}" || rc=$?
  reap "$spid" 10 || rc=$((rc == 0 ? 1 : rc))
  if [ "$rc" != 0 ]; then
    warn "ucx_perftest $ptest $tr $size failed (rc $rc):"
    grep -v rdmacm "$work/ucx-client.log" | tail -5 >&2 || true
    return 0
  fi
  # CSV: iterations,p50_lat,avg_lat,overall_lat,avg_bw,overall_bw,avg_mr,overall_mr
  csv="$(grep -E '^ *[0-9]+,' "$work/ucx-client.log" | tail -1 | tr -d ' ')"
  lanes="$(sed -n 's/.*ep_cfg\[[0-9]*\]: *//p' "$work/ucx-client.log" | head -1)"
  local it p50 overall bw_overall mr_overall
  IFS=, read -r it p50 _ overall _ bw_overall _ mr_overall <<<"$csv"
  line="{\"system\":\"ucx-perftest\",\"transport\":\"$tr\",\"mode\":\"$mode\",\"test\":\"$test\",\"size\":$size,\"count\":$it,\"ucx_test\":\"$ptest\",\"lanes\":\"$lanes\""
  case "$test" in
    rtt) line+="$(awk -v a="$p50" -v b="$overall" 'BEGIN{printf ",\"median_us\":%.3f,\"avg_us\":%.3f}", 2*a, 2*b}')" ;;
    *) line+="$(awk -v m="$mr_overall" -v b="$bw_overall" 'BEGIN{printf ",\"msgs_per_s\":%.1f,\"gib_per_s\":%.4f}", m, b/1024}')" ;;
  esac
  record "$line"
}

run_ucx() {
  local tr s
  if ! command -v ucx_perftest >/dev/null 2>&1; then
    warn "ucx_perftest not found (Debian package ucx-utils); skipping raw UCX"
    return 0
  fi
  for tr in tcp shm; do
    phase "ucx_perftest: $tr"
    ucx_run "$tr" rtt 64 "${n[ucx_rtt]}"
    ucx_run "$tr" rtt 64 "${n[ucx_rtt_sleep]}" sleep
    ucx_run "$tr" rate 64 "${n[ucx_rate]}"
    for s in "${sizes_bw[@]}"; do ucx_run "$tr" bw "$s" "${n[ucx_bw_$s]}"; done
  done
}

# -- peers with our CLI contract (CAF and troupe) ----------------------------
# start_server NAME CMD...: starts a peer server with stdin on a FIFO (closing
# it stops the server); sets srv_pid, srv_fd, srv_port.
start_server() {
  local name="$1" deadline fifo="$work/$1.in"
  shift
  rm -f "$fifo" "$work/$name.out"
  mkfifo "$fifo"
  timeout "$server_timeout" "$@" <"$fifo" >"$work/$name.out" 2>"$work/$name.err" &
  srv_pid=$!
  children+=("$srv_pid")
  exec {srv_fd}>"$fifo"
  rm -f "$fifo"
  srv_port=""
  deadline=$((SECONDS + 30))
  while [ $SECONDS -lt "$deadline" ] && kill -0 "$srv_pid" 2>/dev/null; do
    srv_port="$(sed -n 's/^ready \([0-9][0-9]*\)$/\1/p' "$work/$name.out" | head -1)"
    [ -n "$srv_port" ] && return 0
    sleep 0.05
  done
  warn "$name server did not print 'ready <port>':"
  tail -5 "$work/$name.err" >&2 || true
  stop_server
  return 1
}
stop_server() {
  if [ -n "${srv_fd:-}" ]; then exec {srv_fd}>&-; srv_fd=""; fi
  if [ -n "${srv_pid:-}" ]; then reap "$srv_pid" 10 || true; srv_pid=""; fi
}

# peer_client LABEL COLKEY CMD...: one client run; records its JSON line
# under COLKEY (system|transport|mode; empty: the line's own fields).
peer_client() {
  local label="$1" colkey="$2" line rc=0
  shift 2
  run_child "$work/client.out" "$work/client.err" "$@" || rc=$?
  line="$(tail -1 "$work/client.out")"
  if [ "$rc" != 0 ] || [[ "$line" != "{"* ]]; then
    warn "$label failed (rc $rc): $*"
    tail -3 "$work/client.err" >&2 || true
    return 0
  fi
  record "$line" "$colkey"
}

# peer_suite LABEL COLKEY PREFIX PEER ARGS...: rtt, rate and bw clients
# against a server started with the same ARGS; counts from n[PREFIX_*].
peer_suite() {
  local label="$1" colkey="$2" prefix="$3" peer="$4" s
  shift 4
  start_server "$label" "$peer" --role server --port 0 "$@" || return 0
  local c=("$peer" --role client --port "$srv_port" "$@")
  peer_client "$label rtt" "$colkey" "${c[@]}" --test rtt --size 64 --count "${n[${prefix}_rtt]}"
  peer_client "$label rate" "$colkey" "${c[@]}" --test rate --size 64 --count "${n[${prefix}_rate]}"
  for s in "${sizes_bw[@]}"; do
    peer_client "$label bw $s" "$colkey" "${c[@]}" --test bw --size "$s" \
      --count "${n[${prefix}_bw_$s]}" "${bw_warmup[@]}"
  done
  stop_server
}

run_caf() {
  if [ ! -x "$caf_peer" ]; then
    warn "caf: $caf_peer not built (cmake -DTROUPE_BUILD_BENCH=ON, target bench_caf_basp_peer)"
    return 0
  fi
  phase "caf: default scheduler"
  peer_client "caf local-rtt" "caf-local|local|default" "$caf_peer" --role client --test local-rtt --size 64 \
    --count "${n[caf_local]}"
  peer_suite caf "caf-basp|tcp|default" caf "$caf_peer"
  phase "caf: moderate-poll-attempts=0"
  peer_client "caf local-rtt poll0" "caf-local|local|poll0" "$caf_peer" --role client --test local-rtt --size 64 \
    --count "${n[caf_local]}" --poll0
  peer_suite caf-poll0 "caf-basp|tcp|poll0" caf "$caf_peer" --poll0
}

run_troupe() {
  local tr
  if [ ! -x "$troupe_peer" ]; then
    echo "troupe: bench_transport_peer not built"
    return 0
  fi
  for tr in tcp shm; do
    phase "troupe: $tr, event-driven"
    peer_suite "troupe-$tr" "troupe|$tr|event" troupe "$troupe_peer" --transport "$tr" \
      "${troupe_extra[@]}"
    phase "troupe: $tr, busy-poll"
    peer_suite "troupe-$tr-busy" "troupe|$tr|busy-poll" troupe "$troupe_peer" \
      --transport "$tr" --busy-poll "${troupe_extra[@]}"
  done
}

# -- the run ----------------------------------------------------------------
echo "run_side_by_side: $reps repetition(s), $([ "$quick" = 1 ] && echo quick || echo default) counts, raw JSON in $out" >&2
for rep in $(seq "$reps"); do
  phase "== repetition $rep of $reps"
  if want ucx; then run_ucx; fi
  if want caf; then run_caf; fi
  if want troupe; then run_troupe; fi
done

phase "done"

# -- the table --------------------------------------------------------------
# median of the values stored under a key ("" when none)
med() {
  local v="${results[$1]:-}"
  [ -z "${v// /}" ] && { echo ""; return 0; }
  tr ' ' '\n' <<<"$v" | sed '/^$/d' | sort -g |
    awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2 }'
}
# column keys: system|transport|mode
declare -A col=(
  [ucx-tcp]="ucx-perftest|tcp|err-handling"
  [ucx-shm]="ucx-perftest|shm|err-handling"
  [caf]="caf-basp|tcp|default"
  [caf-poll0]="caf-basp|tcp|poll0"
  [troupe-tcp]="troupe|tcp|event"
  [troupe-tcp-busy]="troupe|tcp|busy-poll"
  [troupe-shm]="troupe|shm|event"
  [troupe-shm-busy]="troupe|shm|busy-poll"
)
cols=(ucx-tcp ucx-shm caf caf-poll0 troupe-tcp troupe-tcp-busy troupe-shm troupe-shm-busy)
troupe_cols=(troupe-tcp troupe-tcp-busy troupe-shm troupe-shm-busy)

fmt() { # fmt VALUE SCALE PRECISION
  [ -z "$1" ] && { echo "-"; return 0; }
  awk -v v="$1" -v s="$2" -v p="$3" 'BEGIN{printf "%.*f", p, v/s}'
}
ratio() { # ratio A B: A/B, "-" when either is missing
  if [ -z "$1" ] || [ -z "$2" ]; then echo "-"; return 0; fi
  awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0) print "-"; else printf "%.2f", a/b }'
}
same_tr() { case "$1" in troupe-tcp*) echo ucx-tcp ;; troupe-shm*) echo ucx-shm ;; esac; }

rows=()
row() { local IFS='|'; rows+=("$*"); }
row test size unit "${cols[@]}"
# measured figures
v=(); for c in "${cols[@]}"; do v+=("$(fmt "$(med "${col[$c]}|rtt|64")" 1 1)"); done
row rtt 64 "us p50" "${v[@]}"
v=(); for c in "${cols[@]}"; do
  case "$c" in
    ucx-*) v+=("$(fmt "$(med "ucx-perftest|${c#ucx-}|err-handling-sleep|rtt|64")" 1 1)") ;;
    *) v+=("-") ;;
  esac
done
row "rtt, ucx -E sleep" 64 "us p50" "${v[@]}"
v=(); for c in "${cols[@]}"; do
  case "$c" in
    caf) v+=("$(fmt "$(med "caf-local|local|default|local-rtt|64")" 1 2)") ;;
    caf-poll0) v+=("$(fmt "$(med "caf-local|local|poll0|local-rtt|64")" 1 2)") ;;
    *) v+=("-") ;;
  esac
done
row local-rtt 64 "us p50" "${v[@]}"
v=(); for c in "${cols[@]}"; do v+=("$(fmt "$(med "${col[$c]}|rate|64")" 1e6 3)"); done
row rate 64 "Mmsg/s" "${v[@]}"
for s in "${sizes_bw[@]}"; do
  v=(); for c in "${cols[@]}"; do v+=("$(fmt "$(med "${col[$c]}|bw|$s")" 1 2)"); done
  row bw "$s" "GiB/s" "${v[@]}"
done
# goal ratios, one value per troupe column
blank=("" "" "" "")
local_rtt="$(med "caf-local|local|default|local-rtt|64")"
v=(); for c in "${troupe_cols[@]}"; do
  t="$(med "${col[$c]}|rtt|64")"; u="$(med "${col[$(same_tr "$c")]}|rtt|64")"
  if [ -n "$u" ] && [ -n "$local_rtt" ]; then
    v+=("$(ratio "$t" "$(awk -v a="$u" -v b="$local_rtt" 'BEGIN{print a+b}')")")
  else v+=("-"); fi
done
row "rtt/(ucx+local)" 64 "<= 1.25" "${blank[@]}" "${v[@]}"
v=(); for c in "${troupe_cols[@]}"; do
  case "$c" in
    *-busy) v+=("") ;;
    *)
      t="$(med "${col[$c]}|rtt|64")"
      u="$(med "ucx-perftest|${c#troupe-}|err-handling-sleep|rtt|64")"
      if [ -n "$u" ] && [ -n "$local_rtt" ]; then
        v+=("$(ratio "$t" "$(awk -v a="$u" -v b="$local_rtt" 'BEGIN{print a+b}')")")
      else v+=("-"); fi ;;
  esac
done
row "rtt/(ucx-sleep+local)" 64 "info" "${blank[@]}" "${v[@]}"
v=(); for c in "${troupe_cols[@]}"; do v+=("$(ratio "$(med "${col[caf]}|rtt|64")" "$(med "${col[$c]}|rtt|64")")"); done
row "caf/troupe rtt" 64 ">= 10" "${blank[@]}" "${v[@]}"
v=(); for c in "${troupe_cols[@]}"; do v+=("$(ratio "$(med "${col[caf-poll0]}|rtt|64")" "$(med "${col[$c]}|rtt|64")")"); done
row "caf-poll0/troupe rtt" 64 ">= 10" "${blank[@]}" "${v[@]}"
v=(); for c in "${troupe_cols[@]}"; do v+=("$(ratio "$(med "${col[$c]}|rate|64")" 1000000)"); done
row "rate/1e6" 64 ">= 1 (shm)" "${blank[@]}" "${v[@]}"
v=(); for c in "${troupe_cols[@]}"; do v+=("$(ratio "$(med "${col[$c]}|rate|64")" "$(med "${col[caf]}|rate|64")")"); done
row "troupe/caf rate" 64 ">= 6" "${blank[@]}" "${v[@]}"
for s in "${sizes_bw[@]}"; do
  v=(); for c in "${troupe_cols[@]}"; do
    v+=("$(ratio "$(med "${col[$c]}|bw|$s")" "$(med "${col[$(same_tr "$c")]}|bw|$s")")")
  done
  target="-"; [ "$s" -ge 1048576 ] && target=">= 0.85"
  row "troupe/ucx bw" "$s" "$target" "${blank[@]}" "${v[@]}"
done

echo
echo "Transport side by side, loopback, medians of $reps repetition(s) (raw: $out)$([ ${#troupe_extra[@]} -gt 0 ] && echo "; troupe with inline delivery")"
# aligned: first three columns left, the rest right; a rule under the header
printf '%s\n' "${rows[@]}" | awk -F'|' '
  { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }
    if (NF > nf) nf = NF }
  END {
    for (r = 1; r <= NR; r++) {
      line = ""
      for (i = 1; i <= nf; i++) {
        c = cell[r, i]
        line = line (i > 1 ? "  " : "") sprintf(i <= 3 ? "%-" w[i] "s" : "%" w[i] "s", c)
      }
      print line
      if (r == 1) { rule = ""; for (i = 1; i <= nf; i++) { rule = rule (i > 1 ? "  " : ""); for (k = 0; k < w[i]; k++) rule = rule "-" }; print rule }
    }
  }'
echo
echo "ucx rtt = 2 x ucx_perftest's am_lat median (it prints half the round trip);"
echo "'rtt, ucx -E sleep': ucx_perftest waiting for events instead of busy-polling;"
echo "ratio rows: troupe columns only; 'ucx' = ucx_perftest on the same transport,"
echo "'local' = CAF request round trip inside one process (default scheduler)."
