#!/usr/bin/env bash
# bench/rush.sh - issue #17's rush: a real flash-sale crowd through the edge, measured whole, through
# Envoy and through seckill-edge side by side in one run.
#
#   bash bench/rush.sh                                   # RUNS=1: ~2-3 minutes after the build
#   RUNS=3 bash bench/rush.sh                            # 3 interleaved runs of each edge, medians
#   BUYERS=20000 STOCK=2000 REQUESTS=200000 bash bench/rush.sh   # smoke, ~30 s
#
# What runs (all on 127.0.0.1, started once, stopped at exit):
#   one redis-server --save '' --appendonly yes --appendfsync everysec (persistent, as deployed);
#   one release seckill-backend, SECKILL_ROLE=BACKEND_ROLE (all: the HTTP API and the order worker in one
#     process, as `cargo xtask start` runs it), a private SQLite order DB, SECKILL_TRUSTED_PROXIES=127.0.0.1/32;
#   the two edges in front of it, each with the release filter .wasm and envoy/filter-config.json rendered as
#     `cargo xtask start` does, EDGE_WORKERS (2) worker threads each (the machine's cores, their default):
#       (v) Envoy, envoy/envoy.yaml as shipped (rendered by `cargo xtask envoy-config`)
#       (w) seckill-edge
#   The edge rules are the backend's defaults (the seed's gateway: per IP 10/s burst 20, token and purchase
#   routes 5/s burst 10 per IP and 2/s burst 5 per user, 10 in flight per IP, 1000 in total).
# Each run: seckill-load --crowd --url <edge> --admin-url <backend> --database-url <the order DB> --json with
#   --buyers BUYERS (100000; honest 85 %, eager 10 %, blacklisted 3 %, forged 2 %, each from an address of
#   its own in 127.16.0.0/12), --refreshers REFRESHERS (20000, --refreshes 5 each), --bots BOTS (8, one
#   address each, --bot-connections 4), --requests REQUESTS (1000000: the bots fill up to it), one new
#   activity of STOCK (10000) units, limit 1 per user, --connections LOAD_CONNS (256) for the arrivals,
#   --threads LOAD_THREADS (1).
# Figures per edge (median over RUNS, min/max): the crowd's duration (first request to last answer) and
#   requests/s, time to sell out (first request to the sale of the last unit), the last order row after the
#   last sale (the worker's trail: the order rows' own times), the share of answers the edge gave by itself,
#   CPU % (100 = one core) of Redis, the backend, the edge and the client over the crowd.
# Checks, the load tool's (a run failing one is INVALID): sold == stock exactly, nobody past the limit, no
#   blacklisted or forged purchase, every 202 an order row (within ROWS_DEADLINE s), inventory + sold == total.
# Goals (issue #17, per edge, on the medians), PASS/FAIL lines:
#   1. sold out, exactly (every run's checks passed, sold == STOCK)
#   2. the whole REQUESTS answered in under 30 s (duration < 30 s, nothing unanswered)
#   3. every order a row within 5 s of the last sale
# Exit status: 0 all PASS, 3 a goal FAILed, 1 setup error or a run failed its checks (INVALID line).
#
# Environment knobs [defaults]:
#   RUNS [1]  BUYERS [100000]  STOCK [10000]  REFRESHERS [20000]  REFRESHES [5]  BOTS [8]  BOT_CONNS [4]
#   REQUESTS [1000000]  LOAD_CONNS [256]  LOAD_THREADS [1]  EDGE_WORKERS [2]  BACKEND_ROLE [all]
#   ROWS_DEADLINE [120]  SCENARIOS [v w]
#   REDIS_PORT [16590]  BACKEND_PORT [18281]  EDGE_PORT [18280]  EDGE_ADMIN_PORT [19931]  ENVOY_PORT [18290]
#   ENVOY_ADMIN_PORT [19940]  (the next free port is taken if busy)
#   OUT [mktemp -d /tmp/seckill-rush.XXXXXX]   INSTALL [1]   BUILD [1]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-1}
SCENARIOS=${SCENARIOS:-v w}
BUYERS=${BUYERS:-100000}
STOCK=${STOCK:-10000}
REFRESHERS=${REFRESHERS:-20000}
REFRESHES=${REFRESHES:-5}
BOTS=${BOTS:-8}
BOT_CONNS=${BOT_CONNS:-4}
REQUESTS=${REQUESTS:-1000000}
LOAD_CONNS=${LOAD_CONNS:-256}
LOAD_THREADS=${LOAD_THREADS:-1}
EDGE_WORKERS=${EDGE_WORKERS:-2}
BACKEND_ROLE=${BACKEND_ROLE:-all}
ROWS_DEADLINE=${ROWS_DEADLINE:-120}
REDIS_PORT=${REDIS_PORT:-16590}
BACKEND_PORT=${BACKEND_PORT:-18281}
EDGE_PORT=${EDGE_PORT:-18280}
EDGE_ADMIN_PORT=${EDGE_ADMIN_PORT:-19931}
ENVOY_PORT=${ENVOY_PORT:-18290}
ENVOY_ADMIN_PORT=${ENVOY_ADMIN_PORT:-19940}
INSTALL=${INSTALL:-1}
BUILD=${BUILD:-1}
OUT=${OUT:-$(mktemp -d /tmp/seckill-rush.XXXXXX)}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BACKEND_BIN="$TARGET_DIR/release/seckill-backend"
EDGE_BIN="$TARGET_DIR/release/seckill-edge"
LOAD_BIN="$TARGET_DIR/release/seckill-load"
WASM="$TARGET_DIR/wasm32-unknown-unknown/release/seckill_edge_filter.wasm"
REDIS_ARGS=(--save '' --appendonly yes --appendfsync everysec)

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_setup "$OUT/redis/appendonlydir"

ensure_tools redis-server=redis-server redis-cli=redis-tools curl=curl jq=jq
[ "$BUILD" = 1 ] && build_release
for f in "$BACKEND_BIN" "$EDGE_BIN" "$LOAD_BIN"; do [ -x "$f" ] || die "missing $f (run with BUILD=1)"; done
[ -f "$WASM" ] || die "missing $WASM (run with BUILD=1)"
if want v; then
  log "cargo xtask envoy (the pinned Envoy; installs it into target/tools the first time)"
  ENVOY_BIN=$(cd "$REPO" && cargo xtask envoy 2>>"$LOG" | tail -1)
  [ -x "$ENVOY_BIN" ] || die "cargo xtask envoy gave no Envoy binary (see $LOG)"
fi
alloc_port REDIS_PORT; alloc_port BACKEND_PORT; alloc_port EDGE_PORT; alloc_port EDGE_ADMIN_PORT
alloc_port ENVOY_PORT; alloc_port ENVOY_ADMIN_PORT
BACKEND="http://127.0.0.1:$BACKEND_PORT"
JWT_SECRET=$(rand_hex 24); ADMIN_PASSWORD=$(rand_hex 12); EDGE_SECRET=$(rand_hex 24)

# ---------------------------------------------------------------- redis and the backend
start_redis "$OUT/redis" "${REDIS_ARGS[@]}"
log "redis-server :$REDIS_PORT PID $RPID (${REDIS_ARGS[*]})"
BDIR="$OUT/backend"
DB_URL="sqlite://$BDIR/orders.db"
start_backend "$BDIR" "$OUT/backend.log" "redis://127.0.0.1:$REDIS_PORT/" "$BACKEND_ROLE" SECKILL_TRUSTED_PROXIES=127.0.0.1/32
log "seckill-backend :$BACKEND_PORT PID $BPID ready (role $BACKEND_ROLE)"

# ---------------------------------------------------------------- the edges
EDIR="$OUT/edge"; mkdir -p "$EDIR"
render_filter_config rush-edge "$EDIR/filter-config.json"
declare -A EDGE_URL=() EDGE_PID=()
if want w; then
  (cd "$EDIR" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" RUST_LOG="${RUST_LOG:-warn}" "$EDGE_BIN" \
    --listen "127.0.0.1:$EDGE_PORT" --backend "127.0.0.1:$BACKEND_PORT" --admin-listen "127.0.0.1:$EDGE_ADMIN_PORT" \
    --wasm "$WASM" --plugin-config "$EDIR/filter-config.json" --workers "$EDGE_WORKERS") > "$OUT/seckill-edge.log" 2>&1 &
  EDGE_PID[w]=$!; STARTED+=("${EDGE_PID[w]}")
  wait_http "http://127.0.0.1:$EDGE_PORT/healthz" "${EDGE_PID[w]}" seckill-edge "$OUT/seckill-edge.log"
  EDGE_URL[w]="http://127.0.0.1:$EDGE_PORT"
  log "seckill-edge :$EDGE_PORT PID ${EDGE_PID[w]} ready ($EDGE_WORKERS workers)"
fi
if want v; then
  VDIR="$OUT/envoy"; mkdir -p "$VDIR"
  (cd "$REPO" && SECKILL_EDGE_SECRET="$EDGE_SECRET" SECKILL_JWT_SECRET="$JWT_SECRET" cargo xtask envoy-config \
    --backend "127.0.0.1:$BACKEND_PORT" --listen "127.0.0.1:$ENVOY_PORT" --admin-port "$ENVOY_ADMIN_PORT" --wasm "$WASM" \
    --edge-id rush-envoy --output "$VDIR/envoy.yaml") >>"$LOG" 2>&1 || die "cargo xtask envoy-config failed (see $LOG)"
  (cd "$VDIR" && exec "$ENVOY_BIN" -c "$VDIR/envoy.yaml" --concurrency "$EDGE_WORKERS" --disable-hot-restart \
    -l warn --log-path "$OUT/envoy.log") >> "$OUT/envoy.log" 2>&1 &
  EDGE_PID[v]=$!; STARTED+=("${EDGE_PID[v]}")
  wait_http "http://127.0.0.1:$ENVOY_ADMIN_PORT/ready" "${EDGE_PID[v]}" envoy "$OUT/envoy.log"
  wait_http "http://127.0.0.1:$ENVOY_PORT/healthz" "${EDGE_PID[v]}" envoy "$OUT/envoy.log"
  EDGE_URL[v]="http://127.0.0.1:$ENVOY_PORT"
  log "envoy :$ENVOY_PORT PID ${EDGE_PID[v]} ready (--concurrency $EDGE_WORKERS)"
fi

# raw.tsv: scenario run duration_s req/s sold_out_s rows_trail_s edge_share% redis% backend% edge% client% checks
run_one() {  # run scenario-letter scenario-name
  local run=$1 s=$2 scen=$3 out="$OUT/crowd-$2-$1.txt" rc
  local r0 b0 e0 t0 r1 b1 e1 t1 wall js
  log "$scen run $run: seckill-load --crowd through ${EDGE_URL[$s]}"
  r0=$(ticks "$RPID"); b0=$(ticks "$BPID"); e0=$(ticks "${EDGE_PID[$s]}"); t0=$(now)
  env -i PATH="$PATH" HOME="${HOME:-/root}" SECKILL_JWT_SECRET="$JWT_SECRET" SECKILL_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    /usr/bin/time -f '%U %S %e' -o "$out.time" "$LOAD_BIN" --crowd --url "${EDGE_URL[$s]}" --admin-url "$BACKEND" \
    --database-url "$DB_URL" --buyers "$BUYERS" --stock "$STOCK" --refreshers "$REFRESHERS" --refreshes "$REFRESHES" \
    --bots "$BOTS" --bot-connections "$BOT_CONNS" --requests "$REQUESTS" --connections "$LOAD_CONNS" \
    --threads "$LOAD_THREADS" --rows-deadline "$ROWS_DEADLINE" --run-id "$s$run$(date +%s)" --json \
    > "$out" 2> "$out.stderr"
  rc=$?
  r1=$(ticks "$RPID"); b1=$(ticks "$BPID"); e1=$(ticks "${EDGE_PID[$s]}"); t1=$(now)
  js=$(grep '^{"crowd"' "$out" | jq -c .crowd)
  [ -n "$js" ] || die "seckill-load gave no crowd figures (exit $rc): $(tail -5 "$out" "$out.stderr")"
  # The CPU window is the whole tool run (set-up and the rows wait included): shares, not exact costs.
  wall=$(elapsed "$t0" "$t1")
  local dur rps sold_out trail share check
  dur=$(echo "$js" | jq -r '.duration_s * 100 | round / 100')
  rps=$(echo "$js" | jq -r 'if .duration_s > 0 then .requests / .duration_s | round else 0 end')
  sold_out=$(echo "$js" | jq -r 'if .sold_out_s then .sold_out_s * 100 | round / 100 else "-" end')
  trail=$(echo "$js" | jq -r 'if .rows_trail_s then .rows_trail_s * 1000 | round / 1000 else "-" end')
  share=$(echo "$js" | jq -r '.edge_share * 1000 | round / 10')
  check="exit=$rc,checks_ok=$(echo "$js" | jq -r .checks_ok),sold=$(echo "$js" | jq -r .sold)/$STOCK"
  check="$check,requests=$(echo "$js" | jq -r .requests),unanswered=$(echo "$js" | jq -r .unanswered)"
  check="$check,$(grep '^check ' "$out" | grep -v ': OK$' | tr '\n' ';')"
  record "$scen" "$run" "$dur" "$rps" "$sold_out" "$trail" "$share" \
    "$(pct $((r1 - r0)) "$wall")" "$(pct $((b1 - b0)) "$wall")" "$(pct $((e1 - e0)) "$wall")" \
    "$(time_pct "$out.time")" "$check"
  log "$scen run $run: $(tail -1 "$RAW" | cut -f3-)"
}

STAT0=$(cpu_line)
{
  host_lines
  echo "versions: $(redis-server --version | awk '{print $1,$2,$3}'), ${ENVOY_BIN:+envoy $("$ENVOY_BIN" --version | grep -o '/[0-9]*\.[0-9]*\.[0-9]*/' | tr -d / | head -1), }repo $(repo_rev)"
  echo "params: RUNS=$RUNS BUYERS=$BUYERS STOCK=$STOCK REFRESHERS=$REFRESHERS x $REFRESHES BOTS=$BOTS x $BOT_CONNS REQUESTS=$REQUESTS LOAD_CONNS=$LOAD_CONNS LOAD_THREADS=$LOAD_THREADS EDGE_WORKERS=$EDGE_WORKERS BACKEND_ROLE=$BACKEND_ROLE"
  echo "output: $OUT"
} | tee "$OUT/machine.txt" >&2

for run in $(seq 1 "$RUNS"); do
  want v && run_one "$run" v v_envoy
  want w && run_one "$run" w w_seckill_edge
done
STAT1=$(cpu_line)

minmax2() {  # scenario column -> "min / max" over runs, two decimals (seconds)
  awk -F'\t' -v s="$1" -v c="$2" '$1==s{ v=$c+0; if (n++==0||v<mn) mn=v; if (n==1||v>mx) mx=v } END{ printf "%.2f / %.2f", mn, mx }' "$RAW"
}
row() {
  echo "| $2 | **$(med "$1" 3)** | $(minmax2 "$1" 3) | $(fmt0 "$(med "$1" 4)") | $(med "$1" 5) | $(med "$1" 6) | $(med "$1" 7) | $(med "$1" 8) | $(med "$1" 9) | $(med "$1" 10) | $(med "$1" 11) |"
}
checks_all() { awk -F'\t' -v s="$1" '$1==s {printf "%s[run %s] %s", (n++ ? "\n             " : ""), $2, $12} END{print ""}' "$RAW"; }
goals_of() {  # scenario label
  local s=$1 label=$2 dur trail bad
  dur=$(med "$s" 3); trail=$(med "$s" 6)
  bad=$(awk -F'\t' -v s="$s" '$1==s && ($12 !~ /exit=0,checks_ok=true/ || $12 !~ /unanswered=0,/) {print $2}' "$RAW" | paste -sd,)
  verdict "$label: sold out, exactly (#17)" "$([ -z "$bad" ] && echo 1 || echo 0) == 1"
  goal "$label: the whole $REQUESTS answered in under 30 s (#17)" "$dur s" "$dur < 30" "$dur"
  goal "$label: every order a row within 5 s of the last sale (#17)" "$trail s" "$trail <= 5" "$trail"
}
{
  echo
  echo "## The rush: a crowd through the edge ($(date -Is), RUNS=$RUNS, medians)"
  echo
  echo "One activity of $STOCK units (limit 1 per user); $BUYERS buyers (honest 85 %, eager 10 %, blacklisted 3 %, forged 2 %), $REFRESHERS refreshers x $REFRESHES page loads, $BOTS bots x $BOT_CONNS connections, $REQUESTS requests in all, every client from its own address; seckill-load -c$LOAD_CONNS --threads $LOAD_THREADS; each edge $EDGE_WORKERS workers; the backend's default (the seed's) edge rules; Redis ${REDIS_ARGS[*]}."
  echo
  echo "| edge | crowd s | min / max | requests/s | sold out at s | last row after the last sale s | answered by the edge % | redis CPU % | backend CPU % | edge CPU % | client CPU % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  want v && row v_envoy "(v) Envoy + our filter"
  want w && row w_seckill_edge "(w) seckill-edge + our filter"
  echo
  echo "checks:"
  want v && echo "  (v): $(checks_all v_envoy)"
  want w && echo "  (w): $(checks_all w_seckill_edge)"
  echo
  bad=$(awk -F'\t' '$12 !~ /exit=0,checks_ok=true/ {printf "%s run %s; ", $1, $2}' "$RAW")
  [ -n "$bad" ] && echo "INVALID  some runs failed their checks (see above and crowd-*.txt): $bad"
  want v && goals_of v_envoy "(v) Envoy"
  want w && goals_of w_seckill_edge "(w) seckill-edge"
  echo
  whole_run_cpu "$STAT0" "$STAT1"
  echo "per class (last run of each edge): crowd-<v|w>-<run>.txt in $OUT"
  echo "raw per-run data: $RAW (scenario run duration req/s sold_out trail edge% redis% backend% edge% client% checks)"
} | tee "$OUT/summary.md"
keep_summary rush
grep -q '^INVALID' "$OUT/summary.md" && exit 1
grep -q '^FAIL' "$OUT/summary.md" && exit 3
exit 0
