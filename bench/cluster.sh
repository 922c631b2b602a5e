#!/usr/bin/env bash
# bench/cluster.sh - issue #15's Cluster figures: the same purchase path on ONE redis-server and on a
# Redis Cluster of three masters, side by side in one run, purchases spread over many activities.
#
#   bash bench/cluster.sh                     # RUNS=3: ~3 minutes (after the cargo build)
#   RUNS=1 BUYERS=30000 bash bench/cluster.sh # smoke
#
# What it measures (all on 127.0.0.1):
#   (s) single:  seckill-backend (role api) on one redis-server, driven by seckill-load --activities
#                ACTIVITIES --buyers BUYERS --connections LOAD_CONNS --json (buyer n buys in activity
#                n mod ACTIVITIES, every buyer once); the purchase phase's figures.
#   (x) cluster: the same backend, load and activities on a Redis Cluster of three masters (no
#                replicas: what is measured is what routing costs, not replication; cluster-node-timeout
#                2000; the activities land on the masters by their {A} hash tag).
# Every Redis: --save '' --appendonly yes --appendfsync everysec, FLUSHALLed (every master) before each
# run; each run starts a fresh backend (SECKILL_REDIS_REPLICAS_ACK=0: no replica to wait for).
#
# Columns: purchases/s (median, min/max over RUNS), p50/p99 ms, Redis CPU % (one server, or the three
#   masters summed; 100 = one core), backend and client CPU %, and Redis CPU per sale in microseconds
#   (Redis CPU time over the purchase phase / purchases accepted); in the checks, how the calls fell on
#   the masters and how many calls one socket read brought (INFO stats total_reads_processed).
# Goals (medians), PASS/FAIL lines:
#   1. (x) purchases/s >= 0.9 x (s)    2. (x) Redis CPU per sale <= 1.1 x (s)'s
# Exit status: 0 all PASS, 3 a goal FAILed, 1 setup error or a run failed its checks (INVALID line).
#
# Environment knobs [defaults]:
#   RUNS [3]  ACTIVITIES [48]  BUYERS [120000]  LOAD_CONNS [64]  LOAD_THREADS [1]
#   REDIS_PORT [16490]  CLUSTER_PORT [16491] (and the next two; buses + 10000)  BACKEND_PORT [18091]
#   OUT [mktemp -d /tmp/seckill-cluster.XXXXXX]   INSTALL [1]   BUILD [1]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-s x}
ACTIVITIES=${ACTIVITIES:-48}
BUYERS=${BUYERS:-120000}
LOAD_CONNS=${LOAD_CONNS:-64}
LOAD_THREADS=${LOAD_THREADS:-1}
REDIS_PORT=${REDIS_PORT:-16490}
CLUSTER_PORT=${CLUSTER_PORT:-16491}
BACKEND_PORT=${BACKEND_PORT:-18091}
INSTALL=${INSTALL:-1}
BUILD=${BUILD:-1}
OUT=${OUT:-$(mktemp -d /tmp/seckill-cluster.XXXXXX)}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BACKEND_BIN="$TARGET_DIR/release/seckill-backend"
LOAD_BIN="$TARGET_DIR/release/seckill-load"
REDIS_ARGS=(--save '' --appendonly yes --appendfsync everysec)

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_setup "$OUT/redis*/appendonlydir"

ensure_tools redis-server=redis-server redis-cli=redis-tools curl=curl jq=jq
[ "$BUILD" = 1 ] && build_release
[ -x "$BACKEND_BIN" ] && [ -x "$LOAD_BIN" ] || die "missing $BACKEND_BIN or $LOAD_BIN (run with BUILD=1)"
alloc_port REDIS_PORT; alloc_port BACKEND_PORT
for i in 0 1 2; do
  p=$((CLUSTER_PORT + i)); port_busy "$p" || port_busy $((p + 10000)) && die "port $p or its bus $((p + 10000)) is busy (set CLUSTER_PORT)"
done
JWT_SECRET=$(rand_hex 24); ADMIN_PASSWORD=$(rand_hex 12); EDGE_SECRET=$(rand_hex 24)

# ---------------------------------------------------------------- the two Redis
start_redis "$OUT/redis" "${REDIS_ARGS[@]}"
SINGLE_PIDS=("$RPID")
MASTERS=()
CLUSTER_PIDS=()
for i in 0 1 2; do
  p=$((CLUSTER_PORT + i)); MASTERS+=("$p"); mkdir -p "$OUT/redis-$p"
  redis-server --bind 127.0.0.1 --port "$p" --protected-mode yes --daemonize no --dir "$OUT/redis-$p" \
    --logfile "$OUT/redis-$p/redis.log" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout 2000 "${REDIS_ARGS[@]}" &
  CLUSTER_PIDS+=("$!"); STARTED+=("$!")
done
for p in "${MASTERS[@]}"; do
  for i in $(seq 1 100); do redis-cli -p "$p" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
redis-cli --cluster create "${MASTERS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >>"$LOG" 2>&1 \
  || die "redis-cli --cluster create failed (see $LOG)"
for i in $(seq 1 100); do
  ok=1; for p in "${MASTERS[@]}"; do redis-cli -p "$p" CLUSTER INFO | tr -d '\r' | grep -qx 'cluster_state:ok' || ok=0; done
  [ "$ok" = 1 ] && break; sleep 0.1
done
[ "$ok" = 1 ] || die "the cluster did not reach cluster_state:ok"
CLUSTER_URL=$(printf 'redis://127.0.0.1:%s/,' "${MASTERS[@]}"); CLUSTER_URL=${CLUSTER_URL%,}
log "single redis :$REDIS_PORT, cluster masters ${MASTERS[*]}"

evalsha_calls() {  # port... -> EVALSHA calls summed over those servers since their last RESETSTAT
  local p t=0 n
  for p in "$@"; do
    n=$(redis-cli -p "$p" INFO commandstats | tr -d '\r' | awk -F'[:,=]' '$1=="cmdstat_evalsha"{print $3+0}')
    t=$((t + ${n:-0}))
  done
  echo "$t"
}
reads() {  # port... -> socket reads Redis processed, summed, since their last RESETSTAT
  local p t=0 n
  for p in "$@"; do n=$(redis-cli -p "$p" INFO stats | tr -d '\r' | awk -F: '$1=="total_reads_processed"{print $2}'); t=$((t + ${n:-0})); done
  echo "$t"
}

# ---------------------------------------------------------------- one run
run_one() {  # run scenario
  local run=$1 scen=$2 url ports pids
  if [ "$scen" = s_single ]; then url="redis://127.0.0.1:$REDIS_PORT/"; ports=("$REDIS_PORT"); pids=("${SINGLE_PIDS[@]}")
  else url=$CLUSTER_URL; ports=("${MASTERS[@]}"); pids=("${CLUSTER_PIDS[@]}"); fi
  local p; for p in "${ports[@]}"; do redis-cli -p "$p" FLUSHALL >/dev/null; done
  start_backend "$OUT/backend.$scen.run$run" "$OUT/backend.$scen.run$run.log" "$url" api SECKILL_REDIS_REPLICAS_ACK=0
  local out="$OUT/load.$scen.run$run.txt" fifo="$OUT/load.$scen.run$run.fifo"
  rm -f "$fifo"; mkfifo "$fifo"
  env -i PATH="$PATH" HOME="${HOME:-/root}" SECKILL_JWT_SECRET="$JWT_SECRET" SECKILL_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "$LOAD_BIN" --url "http://127.0.0.1:$BACKEND_PORT" --activities "$ACTIVITIES" --buyers "$BUYERS" \
    --connections "$LOAD_CONNS" --threads "$LOAD_THREADS" --json > "$fifo" 2> "$out.stderr" &
  local LPID=$! line r0="" b0="" l0="" s0="" r1="" b1="" l1="" s1=""
  STARTED+=("$LPID")
  : > "$out"
  while IFS= read -r line; do
    printf '%s\n' "$line" >> "$out"
    case $line in
      '{"phase":"token"'*)
        for p in "${ports[@]}"; do redis-cli -p "$p" CONFIG RESETSTAT >/dev/null; done
        r0=$(ticks "${pids[@]}"); b0=$(ticks "$BPID"); l0=$(ticks "$LPID"); s0=$(now) ;;
      '{"phase":"purchase"'*)
        r1=$(ticks "${pids[@]}"); b1=$(ticks "$BPID"); l1=$(ticks "$LPID"); s1=$(now) ;;
    esac
  done < "$fifo"
  wait "$LPID"; local rc=$?; forget "$LPID"; rm -f "$fifo"
  local js; js=$(grep '^{"phase":"purchase"' "$out")
  [ -n "$js" ] && [ -n "$s1" ] || die "seckill-load gave no purchase figures (exit $rc): $(tail -5 "$out" "$out.stderr")"
  local wall ok inv spread check rc_ bc lc usec
  wall=$(elapsed "$s0" "$s1")
  ok=$(echo "$js" | jq -r '.statuses["202"] // 0')
  inv=$(awk '/^invariant:/{print $2; exit}' "$out")
  spread=$(for p in "${ports[@]}"; do evalsha_calls "$p"; done | paste -sd/)
  # How many calls one read of a socket brought: one server gets the backend's whole pipeline,
  # each master a third of it, so each wake-up of a master does less.
  local per_read; per_read=$(awk -v c="$(evalsha_calls "${ports[@]}")" -v r="$(reads "${ports[@]}")" 'BEGIN{ if (r>0) printf "%.2f", c/r; else print "-" }')
  check="requests=$(echo "$js" | jq -r .requests),202=$ok,other=$(echo "$js" | jq -c '.statuses | with_entries(select(.key != "202"))' | tr -d '"{}' | tr ',' ';')"
  check="$check,transport-errors=$(echo "$js" | jq -r .transport_errors),invariant=${inv:-?},exit=$rc,evalsha-per-master=$spread,calls/read=$per_read"
  rc_=$(pct $((r1 - r0)) "$wall"); bc=$(pct $((b1 - b0)) "$wall"); lc=$(pct $((l1 - l0)) "$wall")
  usec=$(awk -v t=$((r1 - r0)) -v hz="$HZ" -v n="$ok" 'BEGIN{ if (n>0) printf "%.1f", 1e6*t/hz/n; else print "-" }')
  record "$scen" "$run" "$(echo "$js" | jq -r .rps)" "$(echo "$js" | jq -r .p50_ms)" "$(echo "$js" | jq -r .p99_ms)" \
         "$rc_" "$bc" "$lc" "$usec" "$check"
  log "$scen run $run: $(tail -1 "$RAW" | cut -f3-)"
  stop_pid "$BPID"
}

STAT0=$(cpu_line)
{
  host_lines
  echo "versions: $(redis-server --version | awk '{print $1,$2,$3}'), repo $(repo_rev)"
  echo "params: RUNS=$RUNS ACTIVITIES=$ACTIVITIES BUYERS=$BUYERS LOAD_CONNS=$LOAD_CONNS LOAD_THREADS=$LOAD_THREADS; redis ${REDIS_ARGS[*]}"
  echo "output: $OUT"
} | tee "$OUT/machine.txt" >&2

for run in $(seq 1 "$RUNS"); do
  want s && run_one "$run" s_single
  want x && run_one "$run" x_cluster
done
STAT1=$(cpu_line)

row() { echo "| $2 | **$(fmt0 "$(med "$1" 3)")** | $(minmax "$1") | $(med "$1" 4) | $(med "$1" 5) | $(med "$1" 6) | $(med "$1" 7) | $(med "$1" 8) | $(med "$1" 9) |"; }
checks_all() { awk -F'\t' -v s="$1" '$1==s {printf "%s[run %s] %s", (n++ ? "\n             " : ""), $2, $10} END{print ""}' "$RAW"; }
S=$(med s_single 3); X=$(med x_cluster 3); SU=$(med s_single 9); XU=$(med x_cluster 9)
{
  echo
  echo "## seckill purchases: one Redis vs a 3-master Cluster ($(date -Is), RUNS=$RUNS, medians)"
  echo
  echo "$ACTIVITIES activities, $BUYERS buyers (each buys once, in activity n mod $ACTIVITIES), seckill-load -c$LOAD_CONNS; Redis ${REDIS_ARGS[*]}."
  echo
  echo "| figure | purchases/s | min / max | p50 ms | p99 ms | redis CPU % | backend CPU % | client CPU % | redis CPU usec/sale |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  want s && row s_single "(s) one redis-server"
  want x && row x_cluster "(x) Redis Cluster, 3 masters (CPU summed)"
  echo
  echo "checks:"
  want s && echo "  (s): $(checks_all s_single)"
  want x && echo "  (x): $(checks_all x_cluster)"
  echo
  bad=$(awk -F'\t' '$10 ~ /VIOLATED|exit=[1-9]|transport-errors=[1-9]|other=[^,]/ {printf "%s run %s; ", $1, $2}' "$RAW")
  [ -n "$bad" ] && echo "INVALID  some runs failed their checks (see above): $bad"
  goal "(x) >= 0.9 x (s) purchases/s (#15)" "$(fmt0 "$X") >= 0.9 x $(fmt0 "$S") ($(ratio "$X" "$S")x)" "$X >= 0.9 * $S" "$X" "$S"
  goal "(x) Redis CPU per sale <= 1.1 x (s)'s (#15)" "$XU vs $SU usec/sale ($(ratio "$XU" "$SU")x)" "$XU <= 1.1 * $SU" "$XU" "$SU"
  echo
  whole_run_cpu "$STAT0" "$STAT1"
  echo "raw per-run data: $RAW (scenario run rate p50 p99 redis% backend% client% usec/sale checks); logs: $OUT"
} | tee "$OUT/summary.md"
keep_summary cluster
grep -q '^INVALID' "$OUT/summary.md" && exit 1
grep -q '^FAIL' "$OUT/summary.md" && exit 3
exit 0
