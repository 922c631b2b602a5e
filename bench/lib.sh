# bench/lib.sh - shell helpers shared by the bench scripts (compare.sh, edge.sh, script-cost.sh); `source` it, don't run it.
#
# The sourcing script sets OUT, REDIS_PORT (for rcli/info_field) and INSTALL (1 = apt-get install
# missing packages), then calls bench_setup, which makes LOG (log/die append to it) and RAW
# (record/med/minmax read it) and installs the EXIT trap (stop_all, then the script's own globs).
# Nothing here starts or stops a process that is not in STARTED.
# shellcheck shell=bash

HZ=$(getconf CLK_TCK)

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- process bookkeeping
STARTED=()   # PIDs the script started and that may still run; only these are ever stopped
forget() { local p keep=(); for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; STARTED=("${keep[@]}"); }
stop_pid() {  # pid: TERM, wait up to 10 s, then KILL; reaps it
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "PID $pid ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
  fi
  wait "$pid" 2>/dev/null
  forget "$pid"
}
stop_all() {  # every PID still in STARTED, the last started first
  local i
  for ((i=${#STARTED[@]}-1; i>=0; i--)); do stop_pid "${STARTED[i]}"; done
}

# ---------------------------------------------------------------- prerequisites
bench_setup() {  # glob...: OUT, RAW and LOG made; on exit, everything started is stopped and these go
  mkdir -p "$OUT"
  RAW="$OUT/raw.tsv"
  LOG="$OUT/run.log"
  : > "$RAW"
  CLEANUP_GLOBS=("$@")
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
# shellcheck disable=SC2317  # called by the trap
bench_cleanup() {  # logs and results stay
  local g
  stop_all
  # shellcheck disable=SC2086  # the globs expand now, at exit
  for g in "${CLEANUP_GLOBS[@]}"; do rm -rf $g 2>/dev/null; done
}

keep_summary() {  # name: the run's summary.md, kept as var/bench/<name>-latest.md for the dashboard's checklist
  mkdir -p "$REPO/var/bench"
  cp "$OUT/summary.md" "$REPO/var/bench/$1-latest.md"
}

ensure_tools() {  # path-or-command=debian-package...: install the packages of those that are missing
  local want pkgs=() what pkg
  for want in "$@"; do
    what=${want%%=*} pkg=${want#*=}
    case $what in
      /*) [ -e "$what" ] && continue ;;
      *) command -v "$what" >/dev/null && continue ;;
    esac
    pkgs+=("$pkg")
  done
  install_pkgs "${pkgs[@]}"
}
install_pkgs() {  # debian-package...: apt-get install -y them (INSTALL=1), else die
  [ $# -gt 0 ] || return 0
  [ "$INSTALL" = 1 ] || die "missing packages: $* (INSTALL=0)"
  log "apt-get install -y $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$LOG" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update >>"$LOG" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$LOG" 2>&1 || die "apt-get install failed (see $LOG)"
  fi
}

# ---------------------------------------------------------------- ports
build_release() {  # the one release build every script runs (BUILD=1): the same packages each time, hence one
  # feature set, so no script rebuilds what another built. The floor filter's writer (an example, which
  # brings the dev-dependencies' features) is in the same cargo run: built apart, it rebuilt wasmtime.
  log "cargo build --release: the backend, seckill-edge, seckill-load, the floor filter's writer; the filter .wasm"
  (cd "$REPO" && cargo build --release -p seckill-backend -p seckill-edge-host -p seckill-load --bins \
    --example floor_filter) >>"$LOG" 2>&1 || die "cargo build failed (see $LOG)"
  (cd "$REPO" && cargo build --release --target wasm32-unknown-unknown -p seckill-edge-filter) >>"$LOG" 2>&1 \
    || die "cargo build of the filter failed (see $LOG; the target: rustup target add wasm32-unknown-unknown)"
}
port_busy() { ss -ltnH "sport = :$1" | grep -q .; }
free_port() { local p=$1; while port_busy "$p"; do p=$((p + 1)); done; echo "$p"; }
TAKEN_PORTS=()
alloc_port() {  # VAR: set VAR to the first free port from $VAR on that no earlier alloc_port took
  local var=$1 p=${!1} t again=1
  while [ "$again" = 1 ]; do
    p=$(free_port "$p"); again=0
    for t in "${TAKEN_PORTS[@]}"; do [ "$t" = "$p" ] && { p=$((p + 1)); again=1; break; }; done
  done
  TAKEN_PORTS+=("$p")
  printf -v "$var" '%s' "$p"
}

# ---------------------------------------------------------------- CPU and time
ticks() {  # summed utime+stime (clock ticks, all threads) of the given PIDs; a PID gone counts 0
  # builtins only (no awk fork per PID), so a sample is taken within microseconds of its trigger
  local t=0 pid s f
  for pid in "$@"; do
    { read -r s < "/proc/$pid/stat"; } 2>/dev/null || continue
    read -ra f <<< "${s##*) }"   # after "pid (comm) ": state=f[0] ... utime=f[11] stime=f[12]
    [ ${#f[@]} -gt 12 ] && t=$(( t + f[11] + f[12] ))
  done
  echo "$t"
}
now() { date +%s.%N; }
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }   # box-wide busy ticks (all cores)
other_pct() {  # busy-ticks wall our-cpu%...: CPU % of everything else on the box in the window
  local b=$1 w=$2; shift 2
  awk -v b="$b" -v hz="$HZ" -v w="$w" -v ours="$*" 'BEGIN{ n=split(ours,a," "); s=0; for(i=1;i<=n;i++) s+=a[i]+0;
    if (w>0) { o=100*b/hz/w - s; printf "%.0f", (o<0?0:o) } else print "-" }'
}
pct() { awk -v d="$1" -v hz="$HZ" -v w="$2" 'BEGIN{ if (w>0) printf "%.0f", 100*d/hz/w; else print "-" }'; }
time_pct() { awk '{ if ($3>0) printf "%.0f", 100*($1+$2)/$3; else print "-" }' "$1"; }   # "user sys real"
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{print b-a}'; }
cpu_line() { grep '^cpu ' /proc/stat; }
host_lines() {  # the two machine.txt lines every script starts with: date and uptime, the host
  echo "date: $(date -Is)   uptime at start: $(uptime)"
  echo "host: nproc=$(nproc), cpu='$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')', mem=$(free -g | awk '/^Mem:/{print $2}')GiB, kernel=$(uname -r), debian=$(cat /etc/debian_version 2>/dev/null)"
}
repo_rev() {  # the work tree's commit, and whether it has local changes (for the machine lines)
  echo "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$( [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ] && echo ' (+local changes)')"
}
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }   # scenario-letter: is it among the SCENARIOS to run?
whole_run_cpu() {  # cpu-line-at-start cpu-line-at-end -> "whole run: CPU busy N% of the cores, steal N%; "
  echo "$1 $2" | awk '{ for (i=2;i<=11;i++) { d=$(i+11)-$i; tot+=d; if (i==9) st=d; if (i==5) idle=d }
    printf "whole run: CPU busy %.0f%% of the cores, steal %.1f%%; ", 100*(tot-idle)/tot, 100*st/tot }'
}

# ---------------------------------------------------------------- redis
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
start_redis() {  # dir redis-server-arg...: a private redis-server on 127.0.0.1:REDIS_PORT, data and log in dir;
  # sets RPID (also in STARTED) and returns once it answers PING (10 s)
  local dir=$1 i; shift
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes --daemonize no \
    --dir "$dir" --logfile "$dir/redis.log" "$@" &
  RPID=$!; STARTED+=("$RPID")
  for i in $(seq 1 100); do rcli PING 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
  die "redis-server :$REDIS_PORT did not start (see $dir/redis.log)"
}
info_field() { rcli INFO "$1" | tr -d '\r' | awk -F: -v k="$2" '$1==k{print $2}'; }

# ---------------------------------------------------------------- raw.tsv and summaries
# ---------------------------------------------------------------- servers the scripts share
wait_http() {  # url pid what logfile: until url answers 2xx, while pid lives (30 s)
  local url=$1 pid=$2 what=$3 logf=$4 i
  for i in $(seq 1 300); do
    curl -fs -o /dev/null "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || die "$what exited (see $logf)"
    sleep 0.1
  done
  die "$what did not answer $url in 30 s (see $logf)"
}
start_backend() {  # dir logfile redis-url role [VAR=value...]: the release seckill-backend (BACKEND_BIN) on
  # 127.0.0.1:BACKEND_PORT with JWT_SECRET, ADMIN_PASSWORD and EDGE_SECRET, in a clean environment (no SECKILL_* of
  # the caller) with its cwd and SQLite order DB in dir, so that nothing relative (the default sqlite://var/orders.db,
  # the UI dir) lands in the work tree; VAR=value add to (or replace) that environment (RUST_LOG: the caller's, else warn).
  # Sets BPID (also in STARTED) and returns once /readyz answers.
  local dir=$1 logf=$2 redis=$3 role=$4; shift 4
  mkdir -p "$dir"
  (cd "$dir" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" RUST_LOG="${RUST_LOG:-warn}" \
    SECKILL_REDIS_URL="$redis" SECKILL_JWT_SECRET="$JWT_SECRET" SECKILL_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    SECKILL_EDGE_SECRET="$EDGE_SECRET" SECKILL_LISTEN="127.0.0.1:$BACKEND_PORT" SECKILL_ROLE="$role" \
    SECKILL_DATABASE_URL="sqlite://$dir/orders.db" "$@" "$BACKEND_BIN") > "$logf" 2>&1 &
  BPID=$!; STARTED+=("$BPID")
  wait_http "http://127.0.0.1:$BACKEND_PORT/readyz" "$BPID" seckill-backend "$logf"
}
render_filter_config() {  # edge-id out: envoy/filter-config.json for the backend on BACKEND_PORT, as `cargo xtask
  # start` renders it (xtask/src/start.rs render_filter_config)
  sed -e "s#\${SECKILL_BACKEND}#127.0.0.1:$BACKEND_PORT#g" -e "s#\${SECKILL_EDGE_ID}#$1#g" \
      -e "s#\${SECKILL_EDGE_SECRET}#$EDGE_SECRET#g" -e "s#\${SECKILL_JWT_SECRET}#$JWT_SECRET#g" \
      "$REPO/envoy/filter-config.json" > "$2"
  # shellcheck disable=SC2016  # a literal ${
  grep -qF '${' "$2" && die "envoy/filter-config.json has a placeholder this script does not know"
  jq -e . "$2" >/dev/null || die "rendered filter config is not JSON ($2)"
}

record() { (IFS=$'\t'; echo "$*") >> "$RAW"; }
med() {  # scenario column -> median over runs, as written in raw.tsv ("-" if not numeric)
  awk -F'\t' -v s="$1" -v c="$2" '$1==s{ if ($c !~ /^[0-9.]+$/) { bad=1 } else a[++n]=$c }
    END{ if (bad || n==0) { print "-"; exit } for (i=1;i<=n;i++) for (j=i+1;j<=n;j++) if (a[j]+0<a[i]+0) {t=a[i];a[i]=a[j];a[j]=t}
         print a[int((n+1)/2)] }' "$RAW"
}
minmax() {  # scenario [column, default 3] -> "min / max" over runs
  awk -F'\t' -v s="$1" -v c="${2:-3}" '$1==s{ v=$c+0; if (n++==0||v<mn) mn=v; if (n==1||v>mx) mx=v } END{ printf "%.0f / %.0f", mn, mx }' "$RAW"
}
fmt0() { awk -v v="$1" 'BEGIN{ if (v=="-") print "-"; else printf "%.0f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-" || b=="-" || b==0) print "-"; else printf "%.2f", a/b }'; }   # a/b, or - without figures
verdict() { if awk "BEGIN{exit !($2)}"; then echo "PASS  $1"; else echo "FAIL  $1"; fi; }   # text awk-condition
goal() {  # label detail awk-condition figure...: a goal's PASS/FAIL line; FAIL "no figures" if a figure is "-"
  local label=$1 detail=$2 cond=$3 f; shift 3
  for f in "$@"; do [ "$f" = - ] && { echo "FAIL  $label: no figures"; return 0; }; done
  verdict "$label: $detail" "$cond"
}
rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }   # bytes -> 2*bytes hex digits
