#!/usr/bin/env bash
# bench/script-cost.sh - what lua/purchase.lua costs Redis per sale, by batch size, with nothing else
# on the box: Redis's own time (INFO commandstats) and the AOF bytes each sale writes; called with
# EVALSHA (as the backend calls it) and as a Redis function with FCALL; and, as the yardstick, the
# seed's bench/reference/decrease.lua (stock, a per-user key, sold; no token, no order) in the same run.
#
#   bash bench/script-cost.sh                          # batches of 1, 9 and 32, EVALSHA and FCALL; ~90 s
#   SCRIPT=/tmp/variant.lua bash bench/script-cost.sh  # the same for an edited copy of the script
#   CALLS=evalsha BATCHES=9 BUYERS=50000 bash bench/script-cost.sh   # a quick look
#
# Why: compare.sh's (c) shows Redis time per call under the whole HTTP load, where every figure
# moves with the others. Changing the script is cheaper to judge here, in seconds: one private
# redis-server (AOF everysec as in compare.sh, rewrites off so that the AOF growth is exactly what
# the sales wrote), BUYERS distinct buyers, each with a live token issued by the real lua/token.lua,
# then every buyer buys 1 unit, BATCH buyers per call, sent through `redis-cli --pipe`.
# A fresh database for each batch size. Checks: every call answered, sold == BUYERS afterwards.
# FCALL runs the same file as the body of a function (library seckill_cost, function purchase):
# the body reads KEYS and ARGV, which become the function's two parameters.
#
# Columns: call, batch, calls, Redis usec per call and per sale, AOF bytes per sale, wall-clock usec
# per sale (the pipe's duration over the sales: Redis's time plus its AOF writes and fsyncs, which
# commandstats leaves out).
# Goal (issue #17), one PASS/FAIL line per call kind: <= GOAL_USEC (12) Redis usec per sale at every
# batch >= 8 measured. Exit status: 0 all PASS, 3 a goal FAILed, 1 a run failed its checks.
# Environment knobs [defaults]:
#   BATCHES ["1 9 32"]   purchases per call (compare.sh's (c) averages about 9)
#   CALLS ["evalsha fcall"]   how the script is called
#   BUYERS [180000]      sales per batch size (rounded down to a multiple of the batch)
#   REFERENCE [1]        also run decrease.lua, one sale per call, BUYERS distinct users
#   SCRIPT [lua/purchase.lua]   REDIS_PORT [16395] (the next free port is taken if busy)
#   FSYNC [everysec]     appendfsync; `FSYNC=always` prices the sale's Redis as `cargo xtask start`
#                        runs it (every acknowledged sale on disk; redis's time then includes the fsyncs)
#   GOAL_USEC [12]
#   OUT [mktemp -d /tmp/seckill-script-cost.XXXXXX]   INSTALL [1] apt-get install redis-server redis-tools
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BATCHES=${BATCHES:-1 9 32}
CALLS=${CALLS:-evalsha fcall}
BUYERS=${BUYERS:-180000}
REFERENCE=${REFERENCE:-1}
SCRIPT=${SCRIPT:-$REPO/lua/purchase.lua}
TOKEN_LUA="$REPO/lua/token.lua"
REF_LUA="$HERE/reference/decrease.lua"
REDIS_PORT=${REDIS_PORT:-16395}
INSTALL=${INSTALL:-1}
GOAL_USEC=${GOAL_USEC:-12}
OUT=${OUT:-$(mktemp -d /tmp/seckill-script-cost.XXXXXX)}
A=7   # activity id
FSYNC=${FSYNC:-everysec}   # appendfsync: everysec, or always (what the sale's Redis runs with)

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_setup "$OUT/redis" "$OUT/*.resp"
ensure_tools redis-server=redis-server redis-cli=redis-tools
[ -r "$SCRIPT" ] || die "no script at $SCRIPT"
for call in $CALLS; do case $call in evalsha|fcall) ;; *) die "CALLS: '$call' is neither evalsha nor fcall" ;; esac; done
alloc_port REDIS_PORT

start_redis "$OUT/redis" --save '' --appendonly yes --appendfsync "$FSYNC" --auto-aof-rewrite-percentage 0
SHA_BUY=$(rcli SCRIPT LOAD "$(cat "$SCRIPT")")
SHA_TOKEN=$(rcli SCRIPT LOAD "$(cat "$TOKEN_LUA")")
SHA_REF=$(rcli SCRIPT LOAD "$(cat "$REF_LUA")")
if [ ${#SHA_BUY} != 40 ] || [ ${#SHA_TOKEN} != 40 ] || [ ${#SHA_REF} != 40 ]; then
  die "SCRIPT LOAD failed: $SHA_BUY / $SHA_TOKEN / $SHA_REF"
fi
# The same file as a function: FUNCTION LOAD keeps it (AOF, replicas) and FCALL names it.
LIB=$(printf '#!lua name=seckill_cost\nredis.register_function("purchase", function(KEYS, ARGV)\n%s\nend)\n' "$(cat "$SCRIPT")")
[ "$(rcli FUNCTION LOAD REPLACE "$LIB")" = seckill_cost ] || die "FUNCTION LOAD of $SCRIPT failed"

# A RESP array per line of words (no word holds a space).
resp() { awk '{ printf "*%d\r\n", NF; for (i = 1; i <= NF; i++) printf "$%d\r\n%s\r\n", length($i), $i }'; }
pipe() {  # file: send it, fail unless every reply came and none was an error
  local res; res=$(rcli --pipe < "$1" 2>&1 | tail -1)
  case $res in *"errors: 0,"*) ;; *) die "redis-cli --pipe: $res" ;; esac
}
aof_size() { info_field persistence aof_current_size; }

# Buyer i is "buyer-<i>" with token "<i as 32 hex digits>", as the backend's tokens look.
seed() {  # buyers now
  local n=$1 now=$2
  rcli FLUSHDB >/dev/null
  rcli HSET "seckill:activity:{$A}" id "$A" name cost price_cents 100 total_stock "$n" limit_per_user 2 \
    starts_at_ms $((now - 60000)) ends_at_ms $((now + 86400000)) >/dev/null
  rcli SET "seckill:inventory:{$A}" "$n" >/dev/null
  rcli SET "seckill:sold:{$A}" 0 >/dev/null
  rcli XGROUP CREATE "queue:seckill_order:{$A}" order-writers '$' MKSTREAM >/dev/null
  awk -v n="$n" -v a="$A" -v sha="$SHA_TOKEN" -v now="$now" 'BEGIN{ for (i = 1; i <= n; i++) { u = "buyer-" i
      printf "EVALSHA %s 7 seckill:activity:{%s} seckill:inventory:{%s} seckill:user_limit:{%s} seckill:user_token:{%s} seckill:token:{%s} seckill:live_tokens:{%s} seckill:user_token:{%s}:%s %s %032x %s 600000 1500\n",
        sha, a, a, a, a, a, a, a, u, u, i, now } }' | resp > "$OUT/tokens.resp"
  pipe "$OUT/tokens.resp"
  [ "$(rcli ZCARD "seckill:live_tokens:{$A}")" = "$n" ] || die "the token script did not issue $n tokens"
}

purchases() {  # call buyers batch now: one line per batch (the key and argument layout of purchase.lua)
  local verb=EVALSHA name=$SHA_BUY
  [ "$1" = fcall ] && verb=FCALL name=purchase
  awk -v verb="$verb" -v name="$name" -v n="$2" -v b="$3" -v a="$A" -v now="$4" 'BEGIN{
    for (first = 1; first <= n; first += b) {
      printf "%s %s 8 seckill:activity:{%s} seckill:inventory:{%s} seckill:sold:{%s} queue:seckill_order:{%s} seckill:live_tokens:{%s} seckill:user_limit:{%s} seckill:user_order:{%s} seckill:token:{%s}",
        verb, name, a, a, a, a, a, a, a, a
      printf " 900000 86400000"
      for (i = first; i < first + b; i++) printf " buyer-%d %032x 1 %s", i, i, now
      printf "\n" } }' | resp
}

row() {  # label batch sales commandstats-name aof-bytes wall-usec: one table row
  rcli INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v label="$1" -v b="$2" -v n="$3" -v cmd="cmdstat_$4" \
    -v aof="$5" -v wall="$6" \
    '$1 == cmd { printf "| %s | %s | %d | %.1f | %.2f | %.0f | %.2f |\n", label, b, $3, $7, $5 / n, aof / n, wall / n }'
}

{
  host_lines
  echo "redis: $(redis-server --version | awk '{print $3}'), 127.0.0.1:$REDIS_PORT --appendonly yes --appendfsync $FSYNC, rewrites off"
  echo "script: $SCRIPT ($(sha1sum < "$SCRIPT" | cut -c1-12)), repo $(repo_rev)"
  echo
  echo "| call | batch | calls | redis usec/call | redis usec/sale | AOF bytes/sale | wall usec/sale |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT/summary.md"
: > "$OUT/per-sale.tsv"
for call in $CALLS; do
  for batch in $BATCHES; do
    [[ $batch =~ ^[1-9][0-9]*$ ]] || die "BATCHES: '$batch' is not a positive number"
    n=$(( BUYERS / batch * batch ))
    now=$(date +%s%3N)
    log "$call, batch $batch: seeding $n buyers with tokens"
    seed "$n" "$now"
    purchases "$call" "$n" "$batch" "$now" > "$OUT/buy.resp"
    rcli CONFIG RESETSTAT >/dev/null
    aof0=$(aof_size)
    t0=$(date +%s%N)
    pipe "$OUT/buy.resp"
    t1=$(date +%s%N)
    aof1=$(aof_size)
    sold=$(rcli GET "seckill:sold:{$A}")
    [ "$sold" = "$n" ] || die "$call, batch $batch: sold $sold of $n (the script refused some purchases)"
    # The wall time includes what commandstats does not count: the AOF's write and fsync
    # (with FSYNC=always, one per event-loop turn) and the client's pipe.
    row "$call" "$batch" "$n" "$call" $((aof1 - aof0)) $(( (t1 - t0) / 1000 )) | tee -a "$OUT/summary.md"
    tail -1 "$OUT/summary.md" | awk -F' *[|] *' -v c="$call" -v b="$batch" '{ print c "\t" b "\t" $6 }' >> "$OUT/per-sale.tsv"
  done
done
if [ "$REFERENCE" = 1 ]; then
  # The seed's script: one sale per call, a new user each (its per-user key), no token, no order.
  n=$BUYERS
  log "decrease.lua: $n sales, one per call"
  rcli FLUSHDB >/dev/null
  rcli SET "seckill:{$A}:stock" "$n" >/dev/null
  awk -v n="$n" -v a="$A" -v sha="$SHA_REF" 'BEGIN{ for (i = 1; i <= n; i++)
      printf "EVALSHA %s 3 seckill:{%s}:stock seckill:{%s}:user:%d seckill:{%s}:sold 1 1 86400\n", sha, a, a, i, a }' \
    | resp > "$OUT/buy.resp"
  rcli CONFIG RESETSTAT >/dev/null
  aof0=$(aof_size); t0=$(date +%s%N)
  pipe "$OUT/buy.resp"
  t1=$(date +%s%N); aof1=$(aof_size)
  [ "$(rcli GET "seckill:{$A}:sold")" = "$n" ] || die "decrease.lua: sold $(rcli GET "seckill:{$A}:sold") of $n"
  row "decrease.lua (seed, reference)" 1 "$n" evalsha $((aof1 - aof0)) $(( (t1 - t0) / 1000 )) | tee -a "$OUT/summary.md"
fi
{
  echo
  for call in $CALLS; do
    worst=$(awk -F'\t' -v c="$call" '$1 == c && $2 >= 8 { if ($3 > w) w = $3; seen = 1 } END { print seen ? w : "-" }' "$OUT/per-sale.tsv")
    goal "$call: <= $GOAL_USEC Redis usec per sale at batch >= 8 (#17)" "worst $worst usec/sale" "$worst <= $GOAL_USEC" "$worst"
  done
  echo "logs: $OUT"
} | tee -a "$OUT/summary.md"
keep_summary script-cost
grep -q '^FAIL' "$OUT/summary.md" && exit 3
exit 0
