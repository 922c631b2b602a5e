#!/usr/bin/env bash
# bench/compare.sh - issue #2's three purchase figures, side by side, in ONE run on this machine.
#
#   bash bench/compare.sh                       # RUNS=1: ~4 minutes (after the cargo build)
#   RUNS=3 bash bench/compare.sh                # 3 interleaved runs, medians (with min and max), ~14 min
#   RUNS=1 WRK_DURATION=3s N_P1=50000 N_P16=100000 TOKENS=2000000 BUYERS=50000 bash bench/compare.sh  # smoke
#
# What it measures (all on 127.0.0.1, against ONE redis-server configuration, FLUSHALLed before
# every scenario run):
#   (a) script-alone ceiling of OUR purchase script: redis-benchmark EVALSHA of lua/purchase.lua,
#       -c RB_CLIENTS (50), unpipelined (-P 1, -n N_P1) and pipelined (-P 16, -n N_P16).
#       Every call is meant to be a real sale: an activity hash `seckill:activity:{1}` (price 100,
#       stock and limit_per_user 10^12, window now-1min .. now+1day), inventory/sold keys, the order
#       stream with its consumer group, and TOKENS live tokens `seckill:token:{1}:tok<12 digits>`
#       fields `tok<12 digits>` -> "bench:<expiry>" of the token hash seckill:token:{1} are seeded
#       first (HSET batches through `redis-cli --pipe`). The benchmarked call is
#         EVALSHA <sha> 8 seckill:activity:{1} seckill:inventory:{1} seckill:sold:{1}
#           queue:seckill_order:{1} seckill:live_tokens:{1} seckill:user_limit:{1}
#           seckill:user_order:{1}:__rand_int__ seckill:token:{1}
#           900000 86400000 bench tok__rand_int__ 1 <now ms>              with -r TOKENS
#       i.e. one purchase per call (purchase.lua takes a batch; the backend batches concurrent
#       purchases of one activity, so (c)'s calls carry several: see "purchases/call" in its checks).
#       redis-benchmark replaces EACH `__rand_int__` with its own random 12-digit value
#       (random() % TOKENS, zero-padded; verified on redis-tools 7.0.15; it has no shared
#       placeholder), so the buyer is the single user "bench", who owns every token. A buyer's order
#       list is one hash field, rewritten whole at each purchase (fine for a real limit per user), so
#       "bench"'s list, which would hold every order of the run, goes to an order-list hash of its
#       own per call (a new key each: (a) pays a little more than one hash per activity would).
#       A token drawn twice answers 'REPLAY' (cheaper than a sale). The "sales" column counts
#       `sold` after the run; non-sales = n - sales, compared with the birthday-problem expectation
#       n - TOKENS*(1-(1-1/TOKENS)^n), so the replay share is stated for every run. Keep n << TOKENS.
#   (b) the seed's reference design: nginx (worker_processes NGINX_WORKERS=1) + lua-nginx-module
#       calling the seed's reference script decrease.lua via lua-resty-redis (keepalive pool), driven
#       by wrk -t1 -c WRK_CONNS (64) -d WRK_DURATION (10s) --latency, uid random in 1..1M.
#       Files: bench/reference/{decrease.lua,nginx.conf.in,wrk-buy.lua} (copied from the seed).
#       Checks: non-2xx and socket errors (must be 0); "sold" is the sold counter's growth, which
#       also counts the <= WRK_CONNS purchases still in flight when wrk stops.
#   (d) not one of #2's goals, the fair comparison: the same nginx + Lua + lua-resty-redis design
#       doing OUR purchase's Redis work, one buyer per call: EVALSHA of lua/purchase.lua with the
#       contract's keys (activity D=2, 1 per buyer). D_BUYERS buyers d0, d1, ... each hold a seeded
#       live token (token hash field, user_token hash field and live-token set entry, as the token
#       script leaves them), and wrk (same flags as (b), WRK_SEQUENTIAL=1) sends request n as buyer d<n>, so every
#       request is a new buyer's first purchase, as in (c). What (b) leaves out and (d) does: the
#       token check and its consumption, the buyer's order list and count (new fields of the
#       activity's hashes), the order event in the stream. What (d) still leaves out of (c): JWTs, batching.
#       Checks: non-2xx must be 0 (every request a sale; D_BUYERS must exceed wrk's requests).
#   (c) OUR HTTP purchase path: the release `seckill-backend` (JWT check, purchase.lua, JSON answer)
#       driven by `seckill-load` (loadgen/) with --buyers BUYERS --connections LOAD_CONNS (64)
#       --threads LOAD_THREADS (1) --json. Its token phase runs first; the figures are the purchase
#       phase's JSON line (purchases/s = requests/duration, p50/p99/p999). Redis usec/call and the
#       CPU columns cover the purchase phase only (sampled when the token/purchase JSON lines appear).
#       Checks: sold == number of 202 answers, and seckill-load's own invariant line.
#       The backend runs with SECKILL_ROLE=BACKEND_ROLE (api), a private SQLite order DB in OUT, cwd in
#       OUT and a clean environment (env -i); seckill-load too (so no order-row phase).
#       Its log: RUST_LOG [info,seckill::access=off], the backend's own default for text logs: no
#       access line per request, as nginx runs with access_log off in (b) and (d) (RUST_LOG=info turns
#       the lines on: ~12 % of the backend's CPU per purchase, see bench/README.md).
#   (w) issue #15: (c) with every purchase batch acknowledged by a replica before its 202s
#       (SECKILL_REDIS_REPLICAS_ACK=1: `WAIT 1 <ms>` behind each batch's EVALSHA, in one pipeline, as
#       with Sentinel or a Cluster). When w runs, a replica (redis-server REPLICAOF the main one, the
#       same AOF settings) is attached for the WHOLE run, so (c) and (w) differ only in the WAIT.
#       Checks as (c), plus the WAIT calls and the purchases no replica confirmed (must be 0).
#
# Redis (the same for all three): redis-server --save '' --appendonly yes --appendfsync everysec
#   (default auto-aof-rewrite). Before each scenario run: CONFIG SET appendonly no, FLUSHALL, seed,
#   CONFIG SET appendonly yes (= rewrite to a fresh small/seeded base; waited for), CONFIG RESETSTAT.
#   So every measurement runs with AOF everysec from a freshly rewritten AOF; rewrites that happen
#   during a run (auto-aof-rewrite) are counted in the "forks" check.
#
# Columns: purchases/s (median, min/max over RUNS), p50/p99/p999 ms, CPU % of Redis, the server (nginx
#   workers / seckill-backend) and the client over the measured window (100 = one core), "other" = the
#   rest of the box in that window (AOF rewrite children, kernel, anything else running: noise), and
#   Redis's own usec per EVALSHA (INFO commandstats).
# Goals checked (on the medians), printed as PASS/FAIL lines:
#   1. (c) purchases/s > (b) req/s          2. (c) purchases/s >= 1/2 x (a) at -P 1
#   3. (c) p99 < 10 ms at LOAD_CONNS (64) connections
#   and, when (d) ran, two lines that are not #2's goals: (c) purchases/s > (d) req/s, and #17's
#   (c) purchases/s >= 1.5 x (d) req/s;
#   when (w) ran, #15's: (w) purchases/s >= 0.8 x (c), with the cost per sale of the WAIT in usec
# Exit status: 0 all PASS, 3 some goal FAILed, 1 setup error or a run failed its checks (INVALID line).
#
# Environment knobs [defaults]:
#   RUNS [1]            runs per scenario, interleaved (a-P1, a-P16, b, d, c, w, then again); median shown
#   SCENARIOS [a b d c w] which scenarios to run (e.g. "b c" skips the ~1 GB token seeding of (a));
#                       a goal whose figures were not measured is reported as FAIL
#   WRK_DURATION [10s]  wrk duration of (b)          WRK_CONNS [64]  WRK_THREADS [1]
#   RB_CLIENTS [50]     redis-benchmark -c           N_P1 [200000]  N_P16 [300000]  (-n of (a))
#   TOKENS [10000000]   tokens seeded for (a) (~1.1 GB in Redis; replay share ~ n/(2*TOKENS))
#   BUYERS [200000]     seckill-load --buyers (stock = buyers: every buyer can buy once)
#   D_BUYERS [600000]   buyers seeded for (d) (~0.2 GB in Redis; more than wrk's requests in WRK_DURATION)
#   LOAD_CONNS [64]     seckill-load --connections   LOAD_THREADS [1]  seckill-load --threads
#   BACKEND_ROLE [api]  SECKILL_ROLE of the backend: `api` = the purchase path alone; `all` adds the
#                       in-process order worker (stream -> SQLite rows, expiry sweeper, reconciler)
#   NGINX_WORKERS [1]   P99_GOAL_MS [10]
#   REDIS_EXTRA []      more redis-server arguments, for diagnosis only: the goals are set against the
#                       configuration above (e.g. "--auto-aof-rewrite-percentage 0" shows what the AOF
#                       rewrites during a run cost; the summary's redis line names them)
#   REDIS_PORT [16390]  REPLICA_PORT [16391]  HTTP_PORT [18088]  BACKEND_PORT [18081]  (the next free
#                       port is taken if busy)
#   ACK_TIMEOUT_MS [250] (w)'s SECKILL_REDIS_REPLICAS_ACK_TIMEOUT_MS
#   OUT [mktemp -d /tmp/seckill-bench.XXXXXX]  results, logs, raw.tsv; the AOF data is deleted at exit
#   INSTALL [1]         apt-get install -y the missing Debian packages (redis-server redis-tools nginx
#                       wrk curl jq libnginx-mod-http-lua lua-nginx-redis)
#   BUILD [1]           the release build first (bench/lib.sh build_release, the same for every script)
#
# Every server (redis-server, nginx, seckill-backend) is started by this script on 127.0.0.1 and
# only the PIDs it started are stopped (also on exit/interrupt). Shared helpers: bench/lib.sh. Clients
# share the 2 cores with the servers: see bench/README.md for the caveats.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-1}
SCENARIOS=${SCENARIOS:-a b d c w}
WRK_DURATION=${WRK_DURATION:-10s}
WRK_CONNS=${WRK_CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
RB_CLIENTS=${RB_CLIENTS:-50}
N_P1=${N_P1:-200000}
N_P16=${N_P16:-300000}
TOKENS=${TOKENS:-10000000}
BUYERS=${BUYERS:-200000}
D_BUYERS=${D_BUYERS:-600000}
LOAD_CONNS=${LOAD_CONNS:-64}
LOAD_THREADS=${LOAD_THREADS:-1}
BACKEND_ROLE=${BACKEND_ROLE:-api}
NGINX_WORKERS=${NGINX_WORKERS:-1}
P99_GOAL_MS=${P99_GOAL_MS:-10}
REDIS_EXTRA=${REDIS_EXTRA:-}
REDIS_PORT=${REDIS_PORT:-16390}
REPLICA_PORT=${REPLICA_PORT:-16391}
ACK_TIMEOUT_MS=${ACK_TIMEOUT_MS:-250}
HTTP_PORT=${HTTP_PORT:-18088}
BACKEND_PORT=${BACKEND_PORT:-18081}
INSTALL=${INSTALL:-1}
BUILD=${BUILD:-1}
OUT=${OUT:-$(mktemp -d /tmp/seckill-bench.XXXXXX)}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BACKEND_BIN="$TARGET_DIR/release/seckill-backend"
LOAD_BIN="$TARGET_DIR/release/seckill-load"
PURCHASE_LUA="$REPO/lua/purchase.lua"
REF_LUA="$HERE/reference/decrease.lua"
HUGE=1000000000000   # stock and per-user limit of (a) and (b): never runs out
A=1                  # activity id of (a)
D=2                  # activity id of (d)

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"   # log/die, STARTED/stop_pid/stop_all, ports, ticks/pct/..., rcli, record/med/minmax/fmt0/verdict
bench_setup "$OUT/redis/appendonlydir" "$OUT/*.fifo"   # the AOF can be ~1 GB

# ---------------------------------------------------------------- prerequisites
ensure_tools redis-server=redis-server redis-benchmark=redis-tools nginx=nginx wrk=wrk curl=curl jq=jq \
  /usr/lib/nginx/modules/ngx_http_lua_module.so=libnginx-mod-http-lua /usr/share/lua/5.1/nginx/redis.lua=lua-nginx-redis
[ "$BUILD" = 1 ] && build_release
[ -x "$BACKEND_BIN" ] && [ -x "$LOAD_BIN" ] || die "missing $BACKEND_BIN or $LOAD_BIN (run with BUILD=1)"

alloc_port REDIS_PORT; alloc_port REPLICA_PORT; alloc_port HTTP_PORT; alloc_port BACKEND_PORT   # the next free port if busy

# ---------------------------------------------------------------- helpers
usec_per_call() { rcli INFO commandstats | tr -d '\r' | awk -F'[:,=]' '$1=="cmdstat_evalsha"{print $7}'; }
evalsha_calls() { rcli INFO commandstats | tr -d '\r' | awk -F'[:,=]' '$1=="cmdstat_evalsha"{print $3+0}'; }
failed_calls() { rcli INFO commandstats | tr -d '\r' | awk -F'[:,=]' '$1=="cmdstat_evalsha"{print $11+0}'; }
wait_calls() { rcli INFO commandstats | tr -d '\r' | awk -F'[:,=]' '$1=="cmdstat_wait"{print $3+0}'; }
# raw.tsv: scenario run rate/s p50_ms p99_ms p999_ms redis_cpu% server_cpu% client_cpu% usec/call checks other_cpu%

# ---------------------------------------------------------------- redis (one configuration for all)
# shellcheck disable=SC2206  # REDIS_EXTRA is split into words on purpose
REDIS_ARGS=(--save '' --appendonly yes --appendfsync everysec $REDIS_EXTRA)
REDIS_DESC="--save '' --appendonly yes --appendfsync everysec${REDIS_EXTRA:+ $REDIS_EXTRA}"
start_redis "$OUT/redis" "${REDIS_ARGS[@]}"
log "redis-server :$REDIS_PORT PID $RPID ($REDIS_DESC)"
REPLICA_DESC=""
if want w; then
  # (w)'s replica, attached for the whole run: (c) and (w) then differ only in the WAIT.
  mkdir -p "$OUT/replica"
  redis-server --bind 127.0.0.1 --port "$REPLICA_PORT" --protected-mode yes --daemonize no --dir "$OUT/replica" \
    --logfile "$OUT/replica/redis.log" --replicaof 127.0.0.1 "$REDIS_PORT" --repl-diskless-sync-delay 0 "${REDIS_ARGS[@]}" &
  REPLICA_PID=$!; STARTED+=("$REPLICA_PID")
  for i in $(seq 1 100); do
    redis-cli -p "$REPLICA_PORT" INFO replication 2>/dev/null | grep -q 'master_link_status:up' && break; sleep 0.1
  done
  redis-cli -p "$REPLICA_PORT" INFO replication | grep -q 'master_link_status:up' || die "the replica :$REPLICA_PORT did not sync (see $OUT/replica/redis.log)"
  REPLICA_DESC=", with a replica on :$REPLICA_PORT (same settings) for the whole run"
  log "replica redis-server :$REPLICA_PORT PID $REPLICA_PID in sync"
fi
SHA_PURCHASE=$(rcli SCRIPT LOAD "$(cat "$PURCHASE_LUA")")
SHA_REF=$(rcli SCRIPT LOAD "$(cat "$REF_LUA")")
[ ${#SHA_PURCHASE} = 40 ] && [ ${#SHA_REF} = 40 ] || die "SCRIPT LOAD failed ($SHA_PURCHASE / $SHA_REF)"

# FLUSHALL, seed (with AOF off, so seeding is not logged), then AOF on again: a fresh rewrite
# as the base, waited for, then the stats are reset. $1 = seeding function (or :).
prepare_db() {
  local seed=$1 i st
  rcli CONFIG SET appendonly no >/dev/null
  rcli FLUSHALL >/dev/null
  "$seed" || die "seeding ($seed) failed"
  rcli CONFIG SET appendonly yes >/dev/null
  for i in $(seq 1 1200); do
    st=$(rcli INFO persistence | tr -d '\r' | awk -F: '$1=="aof_rewrite_in_progress"||$1=="aof_rewrite_scheduled"{s+=$2} END{print s+0}')
    [ "$st" = 0 ] && break; sleep 0.1
  done
  [ "$(info_field persistence aof_enabled)" = 1 ] && [ "$(info_field persistence aof_last_bgrewrite_status)" = ok ] \
    || die "AOF did not come back on after seeding"
  rcli CONFIG RESETSTAT >/dev/null
}

# ---------------------------------------------------------------- (a) redis-benchmark EVALSHA purchase.lua
NOW_MS=$(date +%s%3N)
# One purchase per call (a batch of one): the activity's 8 keys, then the buyer's 4 arguments.
A_KEYS=("seckill:activity:{$A}" "seckill:inventory:{$A}" "seckill:sold:{$A}" "queue:seckill_order:{$A}"
        "seckill:live_tokens:{$A}" "seckill:user_limit:{$A}" "seckill:user_order:{$A}:__rand_int__"
        "seckill:token:{$A}")
A_ARGS=(900000 86400000 bench tok__rand_int__ 1 "$NOW_MS")
a_call() {  # token -> the script's reply, one line
  local args=("${A_ARGS[@]}"); args[3]=$1
  rcli EVALSHA "$SHA_PURCHASE" 8 "${A_KEYS[@]}" "${args[@]}" | tr '\n' ' ' | sed 's/ $//'
}
seed_a() {
  rcli HSET "seckill:activity:{$A}" id "$A" name bench price_cents 100 total_stock "$HUGE" limit_per_user "$HUGE" \
    starts_at_ms $((NOW_MS - 60000)) ends_at_ms $((NOW_MS + 86400000)) >/dev/null || return 1
  rcli SET "seckill:inventory:{$A}" "$HUGE" >/dev/null
  rcli SET "seckill:sold:{$A}" 0 >/dev/null
  rcli XGROUP CREATE "queue:seckill_order:{$A}" order-writers '$' MKSTREAM >/dev/null
  local owner="bench:$((NOW_MS + 86400000))" res   # "<user>:<expiry ms>", a live token
  rcli HSET "seckill:token:{$A}" tokcheck "$owner" >/dev/null
  res=$(awk -v n="$TOKENS" -v b=1000 -v a="$A" -v o="$owner" 'BEGIN{ k = sprintf("seckill:token:{%s}", a)
      for (i = 0; i < n; i += b) { m = (n - i < b) ? n - i : b; printf "*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n", 2 + 2 * m, length(k), k
        for (j = i; j < i + m; j++) printf "$15\r\ntok%012d\r\n$%d\r\n%s\r\n", j, length(o), o } }' \
    | rcli --pipe 2>&1 | tail -1)
  case $res in *"errors: 0,"*) ;; *) log "token seeding: $res"; return 1 ;; esac
}
A_CHECKED=0
run_a() {  # run pipeline n
  local run=$1 P=$2 n=$3 scen="a_evalsha_P$2"
  local t0=$SECONDS
  prepare_db seed_a
  [ "$(rcli HLEN "seckill:token:{$A}")" -gt "$TOKENS" ] || die "token seeding incomplete ($(rcli HLEN "seckill:token:{$A}") tokens)"
  if [ "$A_CHECKED" = 0 ]; then   # the key layout works: a seeded token sells, a used one replays
    local r1 r2; r1=$(a_call tokcheck); r2=$(a_call tokcheck)
    log "(a) check: 1st call -> '$r1'; 2nd call -> '$r2'"
    [[ $r1 == OK\ * ]] && [[ $r2 == REPLAY\ * ]] || die "purchase.lua did not sell/replay as expected"
    A_CHECKED=1
  fi
  rcli CONFIG RESETSTAT >/dev/null
  log "$scen run $run: seeded $TOKENS tokens in $((SECONDS - t0)) s; redis-benchmark -c $RB_CLIENTS -P $P -n $n -r $TOKENS"
  local sold0 forks0 csv="$OUT/rb.$scen.run$run.csv" tf="$OUT/time.tmp" r0 s0 r1 s1 k0 k1
  sold0=$(rcli GET "seckill:sold:{$A}"); forks0=$(info_field stats total_forks)
  r0=$(ticks "$RPID"); s0=$(now); k0=$(busy)
  { TIMEFORMAT='%U %S %R'; time redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$RB_CLIENTS" -P "$P" -n "$n" \
      -r "$TOKENS" --csv EVALSHA "$SHA_PURCHASE" 8 "${A_KEYS[@]}" "${A_ARGS[@]}" > "$csv" 2>&1; } 2> "$tf"
  s1=$(now); r1=$(ticks "$RPID"); k1=$(busy)
  local wall rps p50 p99 sold sales exp_sales check rc cc
  wall=$(elapsed "$s0" "$s1")
  rps=$(awk -F'","' 'NR==2{print $2}' "$csv" | tr -d '"')
  p50=$(awk -F'","' 'NR==2{print $5}' "$csv" | tr -d '"')
  p99=$(awk -F'","' 'NR==2{print $7}' "$csv" | tr -d '"')
  [ -n "$rps" ] || die "redis-benchmark gave no figures: $(head -c 400 "$csv")"
  sold=$(rcli GET "seckill:sold:{$A}"); sales=$((sold - sold0))
  exp_sales=$(awk -v N="$TOKENS" -v n="$n" 'BEGIN{printf "%.0f", N*(1-exp(n*log(1-1/N)))}')
  check="sales=$sales/$n,non-sales=$(awk -v s="$sales" -v n="$n" 'BEGIN{printf "%.2f%%", 100*(n-s)/n}')"
  check="$check,expected-replays=$(awk -v e="$exp_sales" -v n="$n" 'BEGIN{printf "%.2f%%", 100*(n-e)/n}')"
  check="$check,failed=$(failed_calls),forks=$(( $(info_field stats total_forks) - forks0 ))"
  # a sale count far below the replay expectation means calls failed for another reason
  awk -v s="$sales" -v e="$exp_sales" -v n="$n" 'BEGIN{exit !(e - s > 0.005*n)}' && check="$check,UNEXPECTED-NON-SALES"
  rc=$(pct $((r1 - r0)) "$wall"); cc=$(time_pct "$tf")
  record "$scen" "$run" "$rps" "$p50" "$p99" "-" "$rc" "-" "$cc" "$(usec_per_call)" "$check" "$(other_pct $((k1 - k0)) "$wall" "$rc" "$cc")"
  log "$scen run $run: $(tail -1 "$RAW" | cut -f3-)"
}

# ---------------------------------------------------------------- (b) and (d): nginx + lua-resty-redis, wrk
seed_b() { rcli SET 'seckill:{42}:stock' "$HUGE" >/dev/null; }
# (d): activity D on sale (stock never runs out, 1 per buyer as in (c)), and buyers d0..dD_BUYERS
# (one more than wrk may use: the probe's) each holding a live token, as the token script leaves
# them: token -> "buyer:expiry" and buyer -> "token:expiry" (fields of the activity's two token
# hashes, with the hashes' expiry), and the token in the live set.
# shellcheck disable=SC2317  # called through run_nginx -> prepare_db
seed_d() {
  rcli HSET "seckill:activity:{$D}" id "$D" name bench price_cents 100 total_stock "$HUGE" limit_per_user 1 \
    starts_at_ms $((NOW_MS - 60000)) ends_at_ms $((NOW_MS + 86400000)) >/dev/null || return 1
  rcli SET "seckill:inventory:{$D}" "$HUGE" >/dev/null
  rcli SET "seckill:sold:{$D}" 0 >/dev/null
  rcli XGROUP CREATE "queue:seckill_order:{$D}" order-writers '$' MKSTREAM >/dev/null
  local res
  local ttl=3600000   # ms, as a token lives
  res=$(awk -v n=$((D_BUYERS + 1)) -v a="$D" -v ttl="$ttl" -v ex=$((NOW_MS + ttl)) 'BEGIN{
      for (i = 0; i < n; i++) { t = sprintf("%032d", i); u = "d" i; uv = u ":" ex; tv = t ":" ex
        k = sprintf("seckill:token:{%s}", a); printf "*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$32\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, t, length(uv), uv
        k = sprintf("seckill:user_token:{%s}", a); printf "*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(u), u, length(tv), tv
        k = sprintf("seckill:live_tokens:{%s}", a); printf "*4\r\n$4\r\nZADD\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$32\r\n%s\r\n", length(k), k, length(ex), ex, t } }' \
    | rcli --pipe 2>&1 | tail -1)
  case $res in *"errors: 0,"*) ;; *) log "(d) seeding: $res"; return 1 ;; esac
  local keep=$((NOW_MS + 2 * 86400000))   # the activity's end plus a day, as token.lua sets it
  rcli PEXPIREAT "seckill:token:{$D}" "$keep" >/dev/null; rcli PEXPIREAT "seckill:user_token:{$D}" "$keep" >/dev/null
  [ "$(rcli HLEN "seckill:token:{$D}")" -gt "$D_BUYERS" ] || { log "(d) seeding incomplete: $(rcli HLEN "seckill:token:{$D}") tokens"; return 1; }
}
run_b() { run_nginx "$1" b_nginx_lua seed_b /buy 'seckill:{42}:sold' "uid=1" '"ok":1' 0; }
run_d() { run_nginx "$1" d_nginx_contract seed_d /buy_contract "seckill:sold:{$D}" "n=$D_BUYERS" '"status":"queued"' 1; }
run_nginx() {  # run scenario seed-function path sold-key probe-query probe-expect wrk-sequential
  local run=$1 scen=$2 seed=$3 path=$4 sold_key=$5 probe_q=$6 probe_want=$7 seq=$8
  prepare_db "$seed"
  local NG="$OUT/nginx.$scen.run$run"; mkdir -p "$NG"
  sed -e "s#@RUN@#$NG#g" -e "s#@SHA@#$SHA_REF#g" -e "s#@SCRIPT@#$REF_LUA#g" -e "s#@WORKERS@#$NGINX_WORKERS#g" \
      -e "s#@HTTP_PORT@#$HTTP_PORT#g" -e "s#@REDIS_PORT@#$REDIS_PORT#g" -e "s#@SHA_PURCHASE@#$SHA_PURCHASE#g" \
      -e "s#@ACTIVITY@#$D#g" "$HERE/reference/nginx.conf.in" > "$NG/nginx.conf"
  nginx -t -q -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >>"$LOG" 2>&1 || die "nginx -t failed (see $LOG)"
  nginx -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >>"$LOG" 2>&1 &
  local NPID=$!; STARTED+=("$NPID")
  local U="http://127.0.0.1:$HTTP_PORT$path" i probe=""
  for i in $(seq 1 100); do probe=$(curl -s "$U?$probe_q" 2>/dev/null) && [ -n "$probe" ] && break; sleep 0.1; done
  [[ $probe == *"$probe_want"* ]] || die "($scen) probe $path?$probe_q answered '$probe' (see $NG/error.log)"
  local workers; workers=$(ps -o pid= --ppid "$NPID" | tr -d ' ' | tr '\n' ' ')
  rcli CONFIG RESETSTAT >/dev/null
  log "$scen run $run: nginx PID $NPID (workers $workers), probe -> $probe; wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION"
  local sold0 forks0 out="$OUT/wrk.$scen.run$run.txt" tf="$OUT/time.tmp" r0 n0 s0 r1 n1 s1 k0 k1
  sold0=$(rcli GET "$sold_key"); forks0=$(info_field stats total_forks)
  r0=$(ticks "$RPID"); n0=$(ticks $workers); s0=$(now); k0=$(busy)
  { TIMEFORMAT='%U %S %R'; time WRK_SEQUENTIAL=$seq wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" --latency \
      -s "$HERE/reference/wrk-buy.lua" "$U" > "$out" 2>&1; } 2> "$tf"
  s1=$(now); r1=$(ticks "$RPID"); n1=$(ticks $workers); k1=$(busy)
  sleep 0.2   # let the last in-flight purchases land before reading sold
  local wall rps non2xx line sold check rc nc cc
  wall=$(elapsed "$s0" "$s1")
  rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/{print $NF}' "$out"); non2xx=${non2xx:-0}
  line=$(grep '^BENCH ' "$out")
  [ -n "$rps" ] && [ -n "$line" ] || die "wrk gave no figures: $(head -c 400 "$out")"
  field() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k{print $2}'; }
  ms() { awk -v u="$(field "$1")" 'BEGIN{printf "%.3f", u/1000}'; }
  sold=$(rcli GET "$sold_key")
  check="requests=$(field requests),non2xx=$non2xx,socket-errors=$(( $(field err_connect) + $(field err_read) + $(field err_write) + $(field err_timeout) ))"
  check="$check,sold=$((sold - sold0)),failed=$(failed_calls),forks=$(( $(info_field stats total_forks) - forks0 ))"
  rc=$(pct $((r1 - r0)) "$wall"); nc=$(pct $((n1 - n0)) "$wall"); cc=$(time_pct "$tf")
  record "$scen" "$run" "$rps" "$(ms p50_us)" "$(ms p99_us)" "$(ms p999_us)" "$rc" "$nc" "$cc" "$(usec_per_call)" "$check" \
         "$(other_pct $((k1 - k0)) "$wall" "$rc" "$nc" "$cc")"
  log "$scen run $run: $(tail -1 "$RAW" | cut -f3-)"
  grep -E '\[(error|crit|alert|emerg)\]' "$NG/error.log" | tail -3 | sed 's/^/nginx error.log: /' >&2
  stop_pid "$NPID"
}

# ---------------------------------------------------------------- (c) seckill-backend driven by seckill-load
JWT_SECRET=$(rand_hex 24)
ADMIN_PASSWORD=$(rand_hex 12)
EDGE_SECRET=$(rand_hex 24)
run_c() {  # run [scenario replicas-ack]: (c), or (w) with every purchase batch acknowledged by a replica
  local run=$1 scen=${2:-c_backend} acks=${3:-0} waits0
  prepare_db :
  start_backend "$OUT/backend.run$run" "$OUT/backend.run$run.log" "redis://127.0.0.1:$REDIS_PORT/" "$BACKEND_ROLE" \
    RUST_LOG="${RUST_LOG:-info,seckill::access=off}" SECKILL_REDIS_REPLICAS_ACK="$acks" SECKILL_REDIS_REPLICAS_ACK_TIMEOUT_MS="$ACK_TIMEOUT_MS"
  log "$scen run $run: seckill-backend PID $BPID ready on :$BACKEND_PORT; seckill-load --buyers $BUYERS --connections $LOAD_CONNS --threads $LOAD_THREADS"
  local out="$OUT/load.$scen.run$run.txt" fifo="$OUT/load.run$run.fifo"
  rm -f "$fifo"; mkfifo "$fifo"
  # clean environment: no SECKILL_DATABASE_URL (no order-row phase), no SECKILL_LOAD_* of the caller
  env -i PATH="$PATH" HOME="${HOME:-/root}" SECKILL_JWT_SECRET="$JWT_SECRET" SECKILL_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "$LOAD_BIN" --url "http://127.0.0.1:$BACKEND_PORT" --buyers "$BUYERS" --connections "$LOAD_CONNS" \
    --threads "$LOAD_THREADS" --json > "$fifo" 2> "$out.stderr" &
  local LPID=$! line forks0="" r0="" b0="" l0="" s0="" r1="" b1="" l1="" s1="" k0="" k1=""
  STARTED+=("$LPID")
  : > "$out"
  while IFS= read -r line; do
    printf '%s\n' "$line" >> "$out"
    case $line in
      '{"phase":"token"'*)     # purchase phase starts now
        r0=$(ticks "$RPID"); b0=$(ticks "$BPID"); l0=$(ticks "$LPID"); s0=$(now); k0=$(busy)
        rcli CONFIG RESETSTAT >/dev/null; forks0=$(info_field stats total_forks) ;;
      '{"phase":"purchase"'*)  # purchase phase done
        r1=$(ticks "$RPID"); b1=$(ticks "$BPID"); l1=$(ticks "$LPID"); s1=$(now); k1=$(busy) ;;
    esac
  done < "$fifo"
  wait "$LPID"; local rc=$?; forget "$LPID"; rm -f "$fifo"
  local js; js=$(grep '^{"phase":"purchase"' "$out")
  [ -n "$js" ] && [ -n "$s1" ] || die "seckill-load gave no purchase figures (exit $rc): $(tail -5 "$out" "$out.stderr")"
  local wall ok sold inv check rc bc lc
  wall=$(elapsed "$s0" "$s1")
  ok=$(echo "$js" | jq -r '.statuses["202"] // 0')
  sold=$(rcli GET "seckill:sold:{$(awk '/^activity /{print $2; exit}' "$out")}")
  inv=$(awk '/^invariant:/{print $2; exit}' "$out")
  check="requests=$(echo "$js" | jq -r .requests),202=$ok,other=$(echo "$js" | jq -c '.statuses | with_entries(select(.key != "202"))' | tr -d '"{}' | tr ',' ';')"
  check="$check,transport-errors=$(echo "$js" | jq -r .transport_errors),sold=$sold,invariant=${inv:-?},exit=$rc"
  check="$check,failed=$(failed_calls),forks=$(( $(info_field stats total_forks) - forks0 ))"
  check="$check,purchases/call=$(awk -v n="$ok" -v c="$(evalsha_calls)" 'BEGIN{printf "%.1f", c ? n / c : 0}')"
  [ "$sold" = "$ok" ] || check="$check,SOLD-MISMATCH"
  if [ "$acks" != 0 ]; then
    local missed; missed=$(curl -fs "http://127.0.0.1:$BACKEND_PORT/metrics" | awk '/^seckill_redis_replicas_ack_missed_total/{s+=$2} END{print s+0}')
    check="$check,waits=$(wait_calls),unconfirmed=$missed"
  fi
  rc=$(pct $((r1 - r0)) "$wall"); bc=$(pct $((b1 - b0)) "$wall"); lc=$(pct $((l1 - l0)) "$wall")
  record "$scen" "$run" "$(echo "$js" | jq -r .rps)" "$(echo "$js" | jq -r .p50_ms)" "$(echo "$js" | jq -r .p99_ms)" \
         "$(echo "$js" | jq -r .p999_ms)" "$rc" "$bc" "$lc" "$(usec_per_call)" "$check" "$(other_pct $((k1 - k0)) "$wall" "$rc" "$bc" "$lc")"
  log "$scen run $run: $(tail -1 "$RAW" | cut -f3-)"
  stop_pid "$BPID"
}

# ---------------------------------------------------------------- machine info
STAT0=$(cpu_line)
{
  host_lines
  echo "versions: $(redis-server --version | awk '{print $1,$2,$3}'), $(nginx -v 2>&1), lua-nginx-module $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null), lua-resty-redis $(dpkg-query -W -f='${Version}' lua-nginx-redis 2>/dev/null), $(wrk -v 2>&1 | head -1 | awk '{print $1,$2}'), repo $(repo_rev)"
  echo "redis: 127.0.0.1:$REDIS_PORT $REDIS_DESC (FLUSHALL + fresh AOF rewrite before every scenario run)"
  echo "params: RUNS=$RUNS (a) -c$RB_CLIENTS N_P1=$N_P1 N_P16=$N_P16 TOKENS=$TOKENS | (b) wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION, nginx workers $NGINX_WORKERS, :$HTTP_PORT | (d) the same wrk, D_BUYERS=$D_BUYERS | (c) --buyers $BUYERS --connections $LOAD_CONNS --threads $LOAD_THREADS, role $BACKEND_ROLE, :$BACKEND_PORT"
  echo "output: $OUT"
} | tee "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- the runs (interleaved)
for run in $(seq 1 "$RUNS"); do
  want a && run_a "$run" 1 "$N_P1"
  want a && run_a "$run" 16 "$N_P16"
  want b && run_b "$run"
  want d && run_d "$run"
  want c && run_c "$run"
  want w && run_c "$run" w_backend_wait 1
done
rcli CONFIG SET appendonly no >/dev/null; rcli FLUSHALL >/dev/null   # leave no big AOF behind
STAT1=$(cpu_line)

# ---------------------------------------------------------------- summary
checks_all() { awk -F'\t' -v s="$1" '$1==s {printf "%s[run %s] %s", (n++ ? "\n             " : ""), $2, $11} END{print ""}' "$RAW"; }
row() {  # scenario label
  local s=$1 label=$2
  echo "| $label | **$(fmt0 "$(med "$s" 3)")** | $(minmax "$s") | $(med "$s" 4) | $(med "$s" 5) | $(med "$s" 6) | $(med "$s" 7) | $(med "$s" 8) | $(med "$s" 9) | $(med "$s" 12) | $(med "$s" 10) |"
}
A1=$(med a_evalsha_P1 3); A16=$(med a_evalsha_P16 3); B=$(med b_nginx_lua 3); C=$(med c_backend 3); C99=$(med c_backend 5)
W=$(med w_backend_wait 3)
D_=$(med d_nginx_contract 3)
{
  echo
  echo "## seckill purchase: script ceiling vs reference gateway vs our HTTP path ($(date -Is), RUNS=$RUNS, medians)"
  echo
  echo "Redis for all: \`redis-server $REDIS_DESC\` on 127.0.0.1$REPLICA_DESC, FLUSHALL + fresh AOF before each run."
  echo
  echo "| figure | purchases/s | min / max | p50 ms | p99 ms | p999 ms | redis CPU % | server CPU % | client CPU % | other CPU % | redis usec/call |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  want a && row a_evalsha_P1  "(a) redis-benchmark EVALSHA purchase.lua -c$RB_CLIENTS -P 1"
  want a && row a_evalsha_P16 "(a) redis-benchmark EVALSHA purchase.lua -c$RB_CLIENTS -P 16"
  want b && row b_nginx_lua   "(b) reference: nginx+Lua+lua-resty-redis decrease.lua, wrk -c$WRK_CONNS"
  want d && row d_nginx_contract "(d) equal work: nginx+Lua+lua-resty-redis purchase.lua, a new buyer per request, wrk -c$WRK_CONNS"
  want c && row c_backend     "(c) ours: seckill-backend, seckill-load -c$LOAD_CONNS (purchase phase)"
  want w && row w_backend_wait "(w) ours, each purchase batch acknowledged by a replica (WAIT 1 ${ACK_TIMEOUT_MS}ms)"
  echo
  echo "CPU %: one process over the measured window, 100 = one core (the box has $(nproc)00). server = nginx workers / seckill-backend;"
  echo "client = redis-benchmark / wrk / seckill-load; other = the rest of the box in the window (AOF rewrite children, kernel,"
  echo "anything else running: a noise indicator). usec/call = INFO commandstats of EVALSHA over the window."
  echo "redis-benchmark and wrk do not report p999 the same way: (a) has none, (b) from wrk's histogram, (c) from seckill-load's."
  echo
  echo "checks:"
  echo "  (a) -P 1 : $(checks_all a_evalsha_P1)"
  echo "  (a) -P 16: $(checks_all a_evalsha_P16)"
  echo "  (b)      : $(checks_all b_nginx_lua)"
  echo "  (d)      : $(checks_all d_nginx_contract)"
  echo "  (c)      : $(checks_all c_backend)"
  want w && echo "  (w)      : $(checks_all w_backend_wait)"
  echo
  bad=$(awk -F'\t' '$11 ~ /MISMATCH|VIOLATED|UNEXPECTED|exit=[1-9]|non2xx=[1-9]|socket-errors=[1-9]|transport-errors=[1-9]|failed=[1-9]|unconfirmed=[1-9]/ {printf "%s run %s; ", $1, $2}' "$RAW")
  [ -n "$bad" ] && echo "INVALID  some runs failed their checks (see above): $bad"
  goal "(c) beats (b)" "$(fmt0 "$C") > $(fmt0 "$B") purchases/s ($(ratio "$C" "$B")x)" "$C > $B" "$C" "$B"
  goal "(c) >= half of (a) at -P 1" "$(fmt0 "$C") >= $(fmt0 "$A1")/2 = $(awk -v a="$A1" 'BEGIN{printf "%.0f", a/2}') ($(awk -v c="$C" -v a="$A1" 'BEGIN{ if (a > 0) printf "%.0f%%", 100*c/a; else print "-" }') of (a))" "$C >= $A1 / 2" "$C" "$A1"
  goal "(c) p99 < $P99_GOAL_MS ms at $LOAD_CONNS connections" "$C99 ms" "$C99 < $P99_GOAL_MS" "$C99"
  want d && goal "(c) beats (d) (not one of #2's goals: the reference design doing our purchase's work)" \
    "$(fmt0 "$C") > $(fmt0 "$D_") purchases/s ($(ratio "$C" "$D_")x)" "$C > $D_" "$C" "$D_"
  want d && goal "(c) >= 1.5 x (d): Redis's cost per sale (#17)" \
    "$(fmt0 "$C") >= 1.5 x $(fmt0 "$D_") = $(awk -v d="$D_" 'BEGIN{printf "%.0f", 1.5*d}') purchases/s ($(ratio "$C" "$D_")x)" "$C >= 1.5 * $D_" "$C" "$D_"
  want w && goal "(w) >= 0.8 x (c): a replica acknowledges each purchase batch (#15)" \
    "$(fmt0 "$W") >= 0.8 x $(fmt0 "$C") purchases/s ($(ratio "$W" "$C")x; the WAIT costs $(awk -v w="$W" -v c="$C" 'BEGIN{ if (w > 0 && c > 0) printf "%.1f", 1e6/w - 1e6/c; else print "-" }') usec of wall time per sale)" \
    "$W >= 0.8 * $C" "$W" "$C"
  echo
  whole_run_cpu "$STAT0" "$STAT1"
  echo "uptime at end: $(uptime)"
  echo "raw per-run data: $RAW (scenario run rate p50 p99 p999 redis% server% client% usec/call checks other%); logs: $OUT"
} | tee "$OUT/summary.md"
keep_summary compare
grep -q '^INVALID' "$OUT/summary.md" && exit 1
grep -q '^FAIL' "$OUT/summary.md" && exit 3
exit 0
