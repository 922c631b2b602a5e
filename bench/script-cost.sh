#!/usr/bin/env bash
# bench/script-cost.sh - what lua/purchase.lua costs Redis per sale, by batch size, with nothing else
# on the box: Redis's own time (INFO commandstats) and the AOF bytes each sale writes.
#
#   bash bench/script-cost.sh                          # batches of 1, 9 and 32; ~40 s
#   SCRIPT=/tmp/variant.lua bash bench/script-cost.sh  # the same for an edited copy of the script
#
# Why: compare.sh's (c) shows Redis time per call under the whole HTTP load, where every figure
# moves with the others. Changing the script is cheaper to judge here, in seconds: one private
# redis-server (AOF everysec as in compare.sh, rewrites off so that the AOF growth is exactly what
# the sales wrote), BUYERS distinct buyers, each with a live token issued by the real lua/token.lua,
# then every buyer buys 1 unit, BATCH buyers per EVALSHA, sent through `redis-cli --pipe`.
# A fresh database for each batch size. Checks: every call answered, sold == BUYERS afterwards.
#
# Columns: batch, calls, Redis usec per call and per sale, AOF bytes per sale, wall-clock usec per sale
# (the pipe's duration over the sales: Redis's time plus its AOF writes and fsyncs, which
# commandstats leaves out).
# Environment knobs [defaults]:
#   BATCHES ["1 9 32"]   purchases per call (compare.sh's (c) averages about 9)
#   BUYERS [180000]      sales per batch size (rounded down to a multiple of the batch)
#   SCRIPT [lua/purchase.lua]   REDIS_PORT [16395] (the next free port is taken if busy)
#   FSYNC [everysec]     appendfsync; `FSYNC=always` prices the sale's Redis as `cargo xtask start`
#                        runs it (every acknowledged sale on disk; redis's time then includes the fsyncs)
#   OUT [mktemp -d /tmp/seckill-script-cost.XXXXXX]   INSTALL [1] apt-get install redis-server redis-tools
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BATCHES=${BATCHES:-1 9 32}
BUYERS=${BUYERS:-180000}
SCRIPT=${SCRIPT:-$REPO/lua/purchase.lua}
TOKEN_LUA="$REPO/lua/token.lua"
REDIS_PORT=${REDIS_PORT:-16395}
INSTALL=${INSTALL:-1}
OUT=${OUT:-$(mktemp -d /tmp/seckill-script-cost.XXXXXX)}
A=7   # activity id
FSYNC=${FSYNC:-everysec}   # appendfsync: everysec, or always (what the sale's Redis runs with)

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_setup "$OUT/redis" "$OUT/*.resp"
ensure_tools redis-server=redis-server redis-cli=redis-tools
[ -r "$SCRIPT" ] || die "no script at $SCRIPT"
alloc_port REDIS_PORT

start_redis "$OUT/redis" --save '' --appendonly yes --appendfsync "$FSYNC" --auto-aof-rewrite-percentage 0
SHA_BUY=$(rcli SCRIPT LOAD "$(cat "$SCRIPT")")
SHA_TOKEN=$(rcli SCRIPT LOAD "$(cat "$TOKEN_LUA")")
if [ ${#SHA_BUY} != 40 ] || [ ${#SHA_TOKEN} != 40 ]; then die "SCRIPT LOAD failed: $SHA_BUY / $SHA_TOKEN"; fi

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
  rcli FLUSHALL >/dev/null
  rcli HSET "seckill:activity:{$A}" id "$A" name cost price_cents 100 total_stock "$n" limit_per_user 2 \
    starts_at_ms $((now - 60000)) ends_at_ms $((now + 86400000)) >/dev/null
  rcli SET "seckill:inventory:{$A}" "$n" >/dev/null
  rcli SET "seckill:sold:{$A}" 0 >/dev/null
  rcli XGROUP CREATE "queue:seckill_order:{$A}" order-writers '$' MKSTREAM >/dev/null
  awk -v n="$n" -v a="$A" -v sha="$SHA_TOKEN" -v now="$now" 'BEGIN{ for (i = 1; i <= n; i++) { u = "buyer-" i
      printf "EVALSHA %s 6 seckill:activity:{%s} seckill:inventory:{%s} seckill:user_limit:{%s} seckill:user_token:{%s}:%s seckill:token:{%s}:%032x seckill:live_tokens:{%s} %s %032x %s 600000 1500\n",
        sha, a, a, a, a, u, a, i, a, u, i, now } }' | resp > "$OUT/tokens.resp"
  pipe "$OUT/tokens.resp"
  [ "$(rcli ZCARD "seckill:live_tokens:{$A}")" = "$n" ] || die "the token script did not issue $n tokens"
}

purchases() {  # buyers batch now: one EVALSHA line per batch (the key and argument layout of purchase.lua)
  awk -v n="$1" -v b="$2" -v a="$A" -v sha="$SHA_BUY" -v now="$3" 'BEGIN{
    for (first = 1; first <= n; first += b) {
      printf "EVALSHA %s %d seckill:activity:{%s} seckill:inventory:{%s} seckill:sold:{%s} queue:seckill_order:{%s} seckill:live_tokens:{%s} seckill:user_limit:{%s}",
        sha, 6 + 3 * b, a, a, a, a, a, a
      for (i = first; i < first + b; i++) { u = "buyer-" i
        printf " seckill:user_token:{%s}:%s seckill:token:{%s}:%032x seckill:user_order:{%s}:%s", a, u, a, i, a, u }
      printf " 900000 86400000"
      for (i = first; i < first + b; i++) printf " buyer-%d %032x 1 %s", i, i, now
      printf "\n" } }' | resp
}

{
  host_lines
  echo "redis: $(redis-server --version | awk '{print $3}'), 127.0.0.1:$REDIS_PORT --appendonly yes --appendfsync $FSYNC, rewrites off"
  echo "script: $SCRIPT ($(sha1sum < "$SCRIPT" | cut -c1-12)), repo $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)"
  echo
  echo "| batch | calls | redis usec/call | redis usec/sale | AOF bytes/sale | wall usec/sale |"
  echo "|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT/summary.md"
for batch in $BATCHES; do
  [[ $batch =~ ^[1-9][0-9]*$ ]] || die "BATCHES: '$batch' is not a positive number"
  n=$(( BUYERS / batch * batch ))
  now=$(date +%s%3N)
  log "batch $batch: seeding $n buyers with tokens"
  seed "$n" "$now"
  purchases "$n" "$batch" "$now" > "$OUT/buy.resp"
  rcli CONFIG RESETSTAT >/dev/null
  aof0=$(aof_size)
  t0=$(date +%s%N)
  pipe "$OUT/buy.resp"
  t1=$(date +%s%N)
  aof1=$(aof_size)
  sold=$(rcli GET "seckill:sold:{$A}")
  [ "$sold" = "$n" ] || die "batch $batch: sold $sold of $n (the script refused some purchases)"
  # The wall time includes what commandstats does not count: the AOF's write and fsync
  # (with FSYNC=always, one per event-loop turn) and the client's pipe.
  rcli INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v b="$batch" -v n="$n" -v aof=$((aof1 - aof0)) \
    -v wall=$(( (t1 - t0) / 1000 )) \
    '$1 == "cmdstat_evalsha" { printf "| %d | %d | %.1f | %.2f | %.0f | %.2f |\n", b, $3, $7, $5 / n, aof / n, wall / n }' \
    | tee -a "$OUT/summary.md"
done
echo "logs: $OUT" | tee -a "$OUT/summary.md"
