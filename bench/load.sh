#!/usr/bin/env bash
# HTTP load benchmark of the sidecar (not a test: it prints figures).
#
#   bench/load.sh [BUILD_DIR]        default BUILD_DIR: $BUILD_DIR, else build
#
# Everything on loopback, in one run, side by side on the same cores:
#
#  load  wrk -t2 -cN -d$DURATION --latency at N = 16, 256, 1024 against
#        nginx `return 200` (bench/nginx-reference.conf, one worker per core:
#        the floor every ratio is read against), the cpp-httplib hello server
#        (bench/hello_server.cc, the old server's reference), and gatehoused's
#        POST /v1/authorize (a token), POST /v1/tokens/verify and
#        GET /v1/forward-auth (nginx-style headers). For every run: the
#        server's CPU time (utime+stime from /proc, all nginx processes summed)
#        over the requests wrk completed = µs of server CPU per request. At 256
#        and 1,024 connections bench/probe runs beside wrk: fresh connections
#        one after another, one request each, timed connect-to-reply; wrk only
#        times what completes, a starved client shows only here. Then, when
#        perf can sample here, a 5 s perf profile of gatehoused under the
#        authorize load (else callgrind over a bounded run), summarised by
#        component.
#  rss   gatehoused with $TOKENS tokens (bench/seed_store): resident memory,
#        start-up time (to listening and to /readyz 200), the first request
#        after a CLI write (feed catch-up) and after a read-only CLI command
#        (SQLite), then the RSS after the first change, after $RSS_CHANGES
#        (seed_store --churn: one token created or deleted per commit, at
#        most $RSS_RATE a second, beside wrk -c16 authorize), after a
#        compaction (one commit creating $COMPACT_BULK tokens, one deleting
#        them: past the overlay threshold, max(4096, tokens / 64)), and after
#        $RSS_CHANGES more.
#  churn the same gatehoused under wrk -c16 on POST /v1/authorize for
#        $CHURN_S seconds quiet, then $CHURN_S seconds while the CLI makes
#        $CHURN_RATE changes a second (token create and revoke, alternating;
#        at most CHURN_RATE * CHURN_S changes; CHURN_BY=api: the same commits
#        through seed_store --churn, for a machine where a CLI process per
#        change cannot keep that pace): p50/p99/max side by side, the
#        change feed's counters, and the RSS after. With STORE=both, first
#        $ROUNDS interleaved rounds of wrk -c16 -d$DURATION authorize on the
#        SQLite and the PostgreSQL sidecar (throughput side by side).
#  shadow the cost of --shadow-policy (issue 13): three gatehoused on one
#        store, side by side in one run: without a shadow, with a candidate
#        that differs in one cell the benchmark request does not reach (the
#        viewer-import edit: every request is decided twice, none diverges),
#        and with one that denies the benchmark request (every request
#        diverges: counted, and its decision-log record carries the shadow
#        object). Each gets wrk -t2 -cN -d$DURATION POST /v1/authorize at N =
#        $SHADOW_CONNECTIONS, $ROUNDS interleaved rounds, all three with
#        --decision-log to a file (the divergences' cost includes writing
#        them); the table shows the median round, the CPU per request and the
#        ratio to the run without a shadow.
#  startup gatehoused with $TOKENS tokens started $STARTUP_RUNS times per
#        backend (interleaved, one at a time, each stopped before the next):
#        seconds to listening (after its first full load) and to /readyz 200,
#        min / median / max per backend (and per backend for $BASELINE,
#        started in the same rounds).
#          STORE=both TOKENS=1000000 MODE=startup bench/load.sh build-release
#  edge  the same gatehoused with $SLOW slow-header connections (trickling a
#        byte every 300 ms, reopened when the server closes them) and $IDLE
#        idle keep-alive connections held open by bench/conn_holder: a probe
#        of fresh authorize requests (p50/p99/max) and the RSS with those
#        connections open.
#
# Use a Release build:
#   cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DGATEHOUSE_BUILD_BENCH=ON
#   ninja -C build-release gatehoused gatehouse hello_server seed_store probe conn_holder
#   bench/load.sh build-release
#
# STORE (rss, edge, churn, startup): sqlite (default), pg, or both. pg starts a
# throwaway PostgreSQL 15 ($PG_BIN) in a temp dir of its own as the postgres
# user (runuser when root), Unix socket only, fsync and synchronous_commit
# off (a benchmark server); seeds it with `gatehouse store copy` from the
# seeded SQLite store; stops it (pg_ctl -m fast, else SIGKILL by the
# postmaster's PID) on exit. both: one sidecar on each, measured in the same
# run, one after the other (the load average is printed with each figure).
#   STORE=both TOKENS=1000000 MODE=rss,churn bench/load.sh build-release
#
# Each load configuration runs ROUNDS times, interleaved (nginx, hello,
# authorize, verify, forward-auth, nginx, ...); the table shows the median
# round by req/s, the median CPU per request, and the probes of all rounds
# together: on a shared 2-core machine neighbours' load moves single runs a lot.
#
# BASELINE=PATH/gatehoused: a second sidecar (e.g. a build of the previous
# commit) on the same store, measured in the same rounds as base-authorize,
# base-verify and base-forward-auth, so a change is read against its
# predecessor on the same noisy machine, not only against nginx.
#
# Environment: DURATION (10s), CONNECTIONS ("16 256 1024"), ROUNDS (3),
# PROBE_AT ("256 1024": connection counts with a probe beside wrk),
# PROBE_COUNT (100), IO_THREADS (gatehoused --io-threads, 0 = one per core),
# HELLO_THREADS (hello_server --threads, 64), TOKENS (100000), IDLE (10000),
# SLOW (1000), CHURN_S (30), CHURN_RATE (20), PROFILE (auto | perf | callgrind | off),
# SHADOW_CONNECTIONS ("16 256"), MODE (all, or a comma-separated list of load,
# rss, edge, churn, shadow, startup), STORE (sqlite | pg | both), RSS_CHANGES (1000),
# RSS_RATE (100), COMPACT_BULK (20000), CHURN_BY (cli | api), PG_BIN (/usr/lib/postgresql/15/bin),
# STARTUP_RUNS (3), PIN (0 | 1: in load, churn and edge, the servers alone on
# CPU 0 (nginx with one worker) and everything else — wrk with one thread,
# the changes, PostgreSQL, conn_holder, the probes — on CPU 1, so that the worst request is not the
# wait for a core the load generator holds; IO_THREADS defaults to 1 then:
# two I/O threads on one core preempt each other mid-request, measured p99
# 4.9 ms against 0.79 ms with one).
# Every loop is bounded (wrk -d, probe counts and deadlines, conn_holder
# --hold-s); every process the script starts is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-${BUILD_DIR:-build}}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16 256 1024}
PROBE_AT=${PROBE_AT:-256 1024}
PROBE_COUNT=${PROBE_COUNT:-100}
PIN=${PIN:-0}
IO_THREADS=${IO_THREADS:-$([ "$PIN" = 1 ] && echo 1 || echo 0)}
HELLO_THREADS=${HELLO_THREADS:-64}
TOKENS=${TOKENS:-100000}
IDLE=${IDLE:-10000}
SLOW=${SLOW:-1000}
CHURN_S=${CHURN_S:-30}
CHURN_RATE=${CHURN_RATE:-20}
ROUNDS=${ROUNDS:-3}
PROFILE=${PROFILE:-auto}
MODE=${MODE:-all}
SHADOW_CONNECTIONS=${SHADOW_CONNECTIONS:-16 256}
NGINX=${NGINX:-/usr/sbin/nginx}
for m in ${MODE//,/ }; do
  case "$m" in all | load | rss | edge | churn | shadow | startup) ;; *) echo "load.sh: MODE is all, or a comma-separated list of load, rss, edge, churn, shadow, startup" >&2; exit 2 ;; esac
done
has_mode() { [ "$MODE" = all ] || [[ ",$MODE," == *",$1,"* ]]; }
# PIN=1 (load, churn, edge): the servers alone on CPU 0; wrk (one thread), the
# changes, PostgreSQL (the postmaster and every backend it has forked; new
# ones inherit it), conn_holder and the probe on CPU 1. Undone after.
PIN_OTHERS=() WRK_THREADS=2
if [ "$PIN" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || { echo "load.sh: PIN=1 needs two CPUs" >&2; exit 2; }
  PIN_OTHERS=(taskset -c 1) WRK_THREADS=1
fi
pin_all() {  # pin_all CPUS PID...: every thread of each PID
  local p t
  for p in "${@:2}"; do
    for t in /proc/"$p"/task/*; do taskset -p -c "$1" "${t##*/}" >/dev/null 2>&1 || true; done
  done
}
STORE=${STORE:-sqlite}
case "$STORE" in
  sqlite) BACKENDS=sqlite ;;
  pg) BACKENDS=pg ;;
  both) BACKENDS="sqlite pg" ;;
  *) echo "load.sh: STORE is sqlite, pg or both" >&2; exit 2 ;;
esac
RSS_RATE=${RSS_RATE:-100}
CHURN_BY=${CHURN_BY:-cli}
case "$CHURN_BY" in cli | api) ;; *) echo "load.sh: CHURN_BY is cli or api" >&2; exit 2 ;; esac
RSS_CHANGES=${RSS_CHANGES:-1000}
STARTUP_RUNS=${STARTUP_RUNS:-3}
COMPACT_BULK=${COMPACT_BULK:-20000}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL=$PG_BIN/psql
if [ "$BACKENDS" != sqlite ]; then
  [ -x "$PG_BIN/initdb" ] || { echo "load.sh: $PG_BIN/initdb is missing (Debian postgresql-15)" >&2; exit 1; }
fi
case "$DURATION" in *[0-9]s) ;; *) echo "load.sh: DURATION is in seconds, e.g. 10s" >&2; exit 2 ;; esac
SECONDS_PER_RUN=${DURATION%s}

G=$BUILD/cli/gatehouse
D=$BUILD/sidecar/gatehoused
H=$BUILD/bench/hello_server
S=$BUILD/bench/seed_store
P=$BUILD/bench/probe
K=$BUILD/bench/conn_holder
for f in "$G" "$D" "$H" "$S" "$P" "$K"; do
  [ -x "$f" ] || { echo "load.sh: $f is missing; build it (see the header of this script)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "load.sh: wrk is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "load.sh: $NGINX is missing (Debian nginx-light)" >&2; exit 1; }
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
[ "$build_type" = "Release" ] || echo "load.sh: warning: $BUILD is a '$build_type' build, not Release" >&2

# 1,024 wrk connections, 11,000 held ones: raise the descriptor limit (the
# hard limit when 65536 is refused). Children inherit it.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-load-XXXXXX")
PIDS=()
stop_pid() {
  local p=$1
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
PG_DIR="" PG_PID=""
cleanup() {
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  [ -n "$PG_DIR" ] && stop_pg
  if [ -n "${KEEP:-}" ]; then echo "load.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# The PostgreSQL server programs refuse to run as root: as root, run them as
# the `postgres` user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# start_pg: a throwaway PostgreSQL in a temp dir of its own (the postgres user
# cannot enter $WORK), on a Unix socket only, no TCP; sets PG_DIR, PG_PID and
# PG_LOC. fsync and synchronous_commit off: a benchmark server, not a store
# to keep (the SQLite seed is not durable either).
start_pg() {
  PG_DIR=$(mktemp -d /tmp/gatehouse-load-pg-XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR"
  chmod 700 "$PG_DIR"
  as_pg timeout 120 "$PG_BIN/initdb" -D "$PG_DIR/data" -U gh --auth=trust -E UTF8 --no-instructions --no-sync \
    >"$WORK/initdb.log" 2>&1 || { echo "load.sh: initdb failed:" >&2; cat "$WORK/initdb.log" >&2; exit 1; }
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 \
    -o "-k $PG_DIR -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >"$WORK/pg_ctl.log" 2>&1 || { echo "load.sh: PostgreSQL did not start:" >&2; cat "$PG_DIR/log" >&2; exit 1; }
  PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
  PG_LOC="postgresql:///postgres?host=$PG_DIR&user=gh"
}
# stop_pg: a fast shutdown, bounded; then SIGKILL by the postmaster's PID.
stop_pg() {
  if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 20 stop >/dev/null 2>&1 || kill -KILL "$PG_PID" 2>/dev/null || true
  fi
  rm -rf "$PG_DIR"
  PG_DIR=""
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# rss BACKEND / metric BACKEND NAME: the big sidecar's RSS in MiB / a metric's value.
rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/${BIG_PID[$1]}/status"; }
metric() { curl -fsS "http://127.0.0.1:${BIG_PORT[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# pct A B: A relative to B, as "+x.x%".
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f%%", (a / b - 1) * 100}'; }

# start NAME CMD...: starts a server that prints "listening on HOST:PORT";
# sets PORT and PID.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 300); do
    PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$WORK/$name.out" | head -1)
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "load.sh: $name did not start:" >&2
  cat "$WORK/$name.err" >&2
  exit 1
}

# start_nginx: bench/nginx-reference.conf on a free port; sets PORT and PID.
start_nginx() {
  local dir=$WORK/nginx
  mkdir -p "$dir"
  PORT=$("$P" --free-port)
  local workers
  workers=$(nproc)
  [ "$PIN" = 1 ] && workers=1  # one core: one worker
  sed -e "s|@PORT@|$PORT|; s|@WORKERS@|$workers|; s|@NOFILE@|$NOFILE|; s|@DIR@|$dir|g" \
    "$ROOT/bench/nginx-reference.conf" >"$dir/nginx.conf"
  "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -g "daemon off; pid $dir/nginx.pid;" \
    >"$dir/stdout" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "load.sh: nginx did not start:" >&2
  cat "$dir/stdout" "$dir/error.log" >&2
  exit 1
}

# cpu_ticks PID: utime+stime of PID and its children (nginx's workers), in ticks.
cpu_ticks() {
  local total=0 p t
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    # Fields after the ")" of comm: 14 and 15 of the whole line are 12 and 13 here.
    t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
    total=$((total + ${t:-0}))
  done
  echo "$total"
}

# The demo store: the seed's environment promotion. Prints the token.
export GATEHOUSE_AS=owner@demo.test GATEHOUSE_POLICY=$ROOT/policies
make_store() {
  export GATEHOUSE_STORE=$1
  "$G" init --org Demo --owner owner@demo.test >/dev/null
  "$G" workspace create Marketing-Development --type shared >/dev/null
  "$G" workspace create Marketing-Production --type shared >/dev/null
  "$G" apiuser create prod-importer --workspace Marketing-Production --workspace-role contributor >/dev/null
  "$G" token create --apiuser prod-importer --name bench --expires-in 30d 2>/dev/null
}

# start_until_ready NAME BINARY STORE: starts a sidecar on STORE (sets PORT
# and PID) and waits for /readyz 200 (at most 6 s); t1, t2 and t3 are the
# times before the start, when it listened and when it was ready.
start_until_ready() {
  t1=$(date +%s.%N)
  start "$1" "$2" --listen 127.0.0.1:0 --store "$3" --policy "$ROOT/policies" --io-threads "$IO_THREADS"
  t2=$(date +%s.%N)
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
    sleep 0.01
  done
  t3=$(date +%s.%N)
}

# probe_args LABEL: the probe's request for an endpoint (the request wrk sends).
probe_args() {
  case "$1" in
    nginx) PROBE_REQ=(--path /) ;;
    hello) PROBE_REQ=(--path /hello) ;;
    authorize | base-authorize) PROBE_REQ=(--method POST --path /v1/authorize --header 'Content-Type: application/json'
                 --body "{\"token\":\"$TOKEN\",\"action\":\"project.import\",\"workspace\":\"Marketing-Production\"}") ;;
    verify | base-verify) PROBE_REQ=(--method POST --path /v1/tokens/verify --header 'Content-Type: application/json'
              --body "{\"token\":\"$TOKEN\"}") ;;
    forward-auth | base-forward-auth) PROBE_REQ=(--path /v1/forward-auth --header "Authorization: Bearer $TOKEN"
                    --header 'X-Original-Method: POST'
                    --header 'X-Original-URI: /workspaces/Marketing-Production/projects/p1/import') ;;
  esac
}

# run_wrk LABEL CONNS ROUND PORT PID [SCRIPT] [PATH]: one wrk run, kept in a
# file, with the server's CPU time around it and, at PROBE_AT connection
# counts, a probe of fresh requests beside it (from 1 s in to 0.5 s before
# wrk's end; a probe cut off by that deadline counts as unanswered).
declare -A RPS
run_wrk() {
  local label=$1 conns=$2 round=$3 port=$4 pid=$5 script=${6:-} path=${7:-/}
  local args=("-t$WRK_THREADS" "-c$conns" "-d$DURATION" --latency) base=$WORK/wrk-$label-$conns-$round
  [ -n "$script" ] && args+=(-s "$ROOT/bench/wrk/$script")
  local probe_pid="" before after
  before=$(cpu_ticks "$pid")
  TOKEN=$TOKEN "${PIN_OTHERS[@]}" wrk "${args[@]}" "http://127.0.0.1:$port$path" >"$base.txt" 2>&1 &
  local wrk_pid=$!
  if [[ " $PROBE_AT " == *" $conns "* ]]; then
    probe_args "$label"
    local interval=$(((SECONDS_PER_RUN * 1000 - 2500) / PROBE_COUNT))
    [ "$interval" -lt 1 ] && interval=1
    "${PIN_OTHERS[@]}" "$P" --port "$port" --count "$PROBE_COUNT" --interval-ms "$interval" --start-delay-ms 1000 \
      --timeout-ms 5000 --deadline-s "$(awk -v d="$SECONDS_PER_RUN" 'BEGIN {print d - 0.5}')" \
      --out "$base.probe" "${PROBE_REQ[@]}" >"$base.psum" 2>&1 &
    probe_pid=$!
  fi
  wait "$wrk_pid" || true
  after=$(cpu_ticks "$pid")
  [ -n "$probe_pid" ] && { wait "$probe_pid" || true; }
  local requests
  requests=$(awk '/requests in/ {print $1}' "$base.txt")
  awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="${requests:-0}" \
    'BEGIN {if (n > 0) printf "%.1f\n", t / hz * 1e6 / n; else print "-"}' >"$base.cpu"
}

# wrk prints 512.00us / 1.20ms / 1.01s; convert to ms.
ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else print v }'
}
row() { printf '%-17s %5s %8s %7s %7s %8s %7s %7s %7s %7s %9s %8s %8s %8s\n' "$@"; }
# report LABEL CONNS: the median round's row, the median CPU per request, all
# rounds' probes together.
report() {
  local label=$1 conns=$2 best f
  best=$(for f in "$WORK"/wrk-"$label"-"$conns"-*.txt; do
           echo "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$f") $f"
         done | sort -n | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}')
  local out rps p50 p99 max errors cpu vs vh probe="-" pp50="-" pp99="-" pmax="-"
  out=$(cat "$best")
  rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  max=$(echo "$out" | awk '$1 == "Latency" {print $4}')
  errors=$(cat "$WORK"/wrk-"$label"-"$conns"-*.txt | awk '/Non-2xx/ {n += $NF} /Socket errors/ {for (i = 4; i <= NF; i += 2) {v = $i; sub(/,/, "", v); n += v}} END {print n + 0}')
  cpu=$(cat "$WORK"/wrk-"$label"-"$conns"-*.cpu | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  RPS[$label-$conns]=$rps
  CPU[$label-$conns]=$cpu
  vs=$(awk -v a="$rps" -v b="${RPS[nginx-$conns]:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')
  vh=$(awk -v a="$rps" -v b="${RPS[hello-$conns]:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')
  if ls "$WORK"/wrk-"$label"-"$conns"-*.probe >/dev/null 2>&1; then
    # All rounds' probes: answered (any complete reply) of sent, and the
    # percentiles over all with an unanswered probe as infinitely slow.
    local stats
    stats=$(cat "$WORK"/wrk-"$label"-"$conns"-*.probe | awk '$2 >= 0 {print ($2 == 0 ? 1e99 : $1), $2} $2 < 0 {s++} END {print 2e99, s + 0}' | sort -g | awk '
      $1 >= 2e99 {skipped = $2; next}
      {v[++n] = $1; if ($2 != 0) a++; if ($2 != 0 && $1 <= 1000) w1++; if ($2 != 0 && $1 <= 3000) w3++}
      function f(x) {return x >= 1e98 ? "none" : sprintf("%.2f", x)}
      function q(p,  i) {i = int(p * n + 0.999999); if (i < 1) i = 1; return f(v[i])}
      END {printf "%d/%d %d %d %s %s %s %d\n", a, n, w1 + 0, w3 + 0, q(0.5), q(0.99), f(v[n]), skipped}')
    local skipped
    read -r probe w1 w3 pp50 pp99 pmax skipped <<<"$stats"
    PROBE[$label-$conns]="$probe; within 1 s: $w1, within 3 s: $w3; not started before the run's end: $skipped"
  fi
  row "$label" "$conns" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$(ms "$max")" "$errors" "$vs" "$vh" "$cpu" "$probe" "$pp50" "$pp99" "$pmax"
}
declare -A CPU PROBE

echo "machine: $(nproc) cores, $(sed -n 's/model name\s*: //p' /proc/cpuinfo | head -1); build: $BUILD ($build_type); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t$WRK_THREADS -d$DURATION --latency; gatehoused --io-threads $IO_THREADS (0: one per core); hello_server --threads $HELLO_THREADS;"
if [ "$PIN" = 1 ]; then
  echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') with 1 worker; ulimit -n $NOFILE; PIN=1: servers on CPU 0, wrk, probes and the rest on CPU 1"
else
  echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') with $(nproc) workers; ulimit -n $NOFILE; wrk, probes and servers share the same cores"
fi
echo

if has_mode load; then
  TOKEN=$(make_store "$WORK/demo.db")
  start gatehoused "$D" --listen 127.0.0.1:0 --store "$WORK/demo.db" --policy "$ROOT/policies" --io-threads "$IO_THREADS"
  SIDECAR=$PORT
  SIDECAR_PID=$PID
  start hello "$H" --listen 127.0.0.1:0 --threads "$HELLO_THREADS"
  HELLO=$PORT
  HELLO_PID=$PID
  start_nginx
  NGINX_PORT=$PORT
  NGINX_PID=$PID
  # Sanity: each endpoint answers as expected before it is measured.
  curl -fsS -X POST "http://127.0.0.1:$SIDECAR/v1/authorize" -H 'Content-Type: application/json' \
    -d "{\"token\":\"$TOKEN\",\"action\":\"project.import\",\"workspace\":\"Marketing-Production\"}" | grep -q '"allow":true'
  curl -fsS -X POST "http://127.0.0.1:$SIDECAR/v1/tokens/verify" -d "{\"token\":\"$TOKEN\"}" | grep -q '"active":true'
  curl -fsS "http://127.0.0.1:$SIDECAR/v1/forward-auth" -H "Authorization: Bearer $TOKEN" \
    -H 'X-Original-Method: POST' -H 'X-Original-URI: /workspaces/Marketing-Production/projects/p1/import' >/dev/null
  curl -fsS "http://127.0.0.1:$HELLO/hello" | grep -q hello
  LABELS="nginx hello authorize verify forward-auth"
  if [ -n "${BASELINE:-}" ]; then
    [ -x "$BASELINE" ] || { echo "load.sh: BASELINE=$BASELINE is not an executable" >&2; exit 1; }
    start base "$BASELINE" --listen 127.0.0.1:0 --store "$WORK/demo.db" --policy "$ROOT/policies" --io-threads "$IO_THREADS"
    BASE_PORT=$PORT
    BASE_PID=$PID
    curl -fsS -X POST "http://127.0.0.1:$BASE_PORT/v1/authorize" -H 'Content-Type: application/json' \
      -d "{\"token\":\"$TOKEN\",\"action\":\"project.import\",\"workspace\":\"Marketing-Production\"}" | grep -q '"allow":true'
    LABELS="$LABELS base-authorize base-verify base-forward-auth"
  fi
  if [ "$PIN" = 1 ]; then
    # Every server on CPU 0 (nginx with one worker, the sidecars with
    # IO_THREADS, 1 by default), wrk and the probes on CPU 1.
    pin_all 0 "$SIDECAR_PID" "$HELLO_PID" "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true) ${BASE_PID:+"$BASE_PID"}
    echo "pinned: nginx (1 worker), hello and gatehoused (--io-threads $IO_THREADS) on CPU 0; wrk -t1 and the probes on CPU 1"
  fi

  for c in $CONNECTIONS; do
    for r in $(seq 1 "$ROUNDS"); do
      run_wrk nginx "$c" "$r" "$NGINX_PORT" "$NGINX_PID" "" /
      run_wrk hello "$c" "$r" "$HELLO" "$HELLO_PID" "" /hello
      run_wrk authorize "$c" "$r" "$SIDECAR" "$SIDECAR_PID" authorize.lua
      run_wrk verify "$c" "$r" "$SIDECAR" "$SIDECAR_PID" verify.lua
      run_wrk forward-auth "$c" "$r" "$SIDECAR" "$SIDECAR_PID" forward_auth.lua
      if [ -n "${BASELINE:-}" ]; then
        run_wrk base-authorize "$c" "$r" "$BASE_PORT" "$BASE_PID" authorize.lua
        run_wrk base-verify "$c" "$r" "$BASE_PORT" "$BASE_PID" verify.lua
        run_wrk base-forward-auth "$c" "$r" "$BASE_PORT" "$BASE_PID" forward_auth.lua
      fi
    done
  done
  echo "median of $ROUNDS interleaved rounds; errors: non-2xx answers and socket errors, all rounds;"
  echo "cpu: server CPU µs per request (median round); probe: fresh connections beside wrk, all rounds,"
  echo "answered/sent and p50/p99/max ms (none: not answered within 5 s or by the run's end; probes"
  echo "not started because a slow one used up the run are not in 'sent', see the lines below the table)"
  row endpoint conns "req/s" "p50 ms" "p99 ms" "max ms" errors "/nginx" "/hello" "cpu µs" probe "pr p50" "pr p99" "pr max"
  for c in $CONNECTIONS; do
    for label in $LABELS; do report "$label" "$c"; done
  done
  for c in $PROBE_AT; do
    for label in $LABELS; do
      [ -n "${PROBE[$label-$c]:-}" ] && echo "  probe $label at $c connections: answered ${PROBE[$label-$c]}"
    done
  done
  echo
  echo "gatehoused RSS after the runs (3 tokens): $(awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$SIDECAR_PID/status")"
  # Any status but 200, as the sidecar counted it.
  curl -fsS "http://127.0.0.1:$SIDECAR/metrics" | awk '/^gatehouse_http_requests_total/ && !/code="200"/ {print "  non-200 answers: " $0}'
  grep -h "Socket errors" "$WORK"/wrk-*.txt | sed 's/^/  wrk: /' | sort | uniq -c || true

  # Targets (issue 9), from this run's figures.
  a16=${RPS[authorize-16]:-}; a256=${RPS[authorize-256]:-}; a1024=${RPS[authorize-1024]:-}
  echo
  echo "targets:"
  [ -n "$a16" ] && echo "  authorize/nginx at 16: $(awk -v a="$a16" -v b="${RPS[nginx-16]}" 'BEGIN {printf "%.2f", a / b}') (≥ 0.90)"
  [ -n "$a256" ] && echo "  authorize/nginx at 256: $(awk -v a="$a256" -v b="${RPS[nginx-256]}" 'BEGIN {printf "%.2f", a / b}') (≥ 0.90)"
  [ -n "$a1024" ] && [ -n "$a16" ] && echo "  authorize at 1024 / at 16: $(awk -v a="$a1024" -v b="$a16" 'BEGIN {printf "%.2f", a / b}') (≥ 0.90)"
  [ -n "${CPU[nginx-16]:-}" ] && echo "  CPU per request at 16 connections: nginx ${CPU[nginx-16]} µs, hello ${CPU[hello-16]} µs, authorize ${CPU[authorize-16]} µs, verify ${CPU[verify-16]} µs, forward-auth ${CPU[forward-auth-16]} µs"

  # Where gatehoused's CPU goes under the authorize load.
  profiler=$PROFILE
  if [ "$profiler" = auto ]; then
    if command -v perf >/dev/null && perf record -e cpu-clock -o "$WORK/perf-check.data" -- true >/dev/null 2>&1; then
      profiler=perf
    elif command -v valgrind >/dev/null; then
      profiler=callgrind
    else
      profiler=off
    fi
  fi
  echo
  if [ "$profiler" = perf ]; then
    # cpu-clock: a software timer, so this works where the VM exposes no
    # hardware counters (perf stat -e instructions: <not supported>).
    echo "perf record -e cpu-clock -F 2999 -g -p gatehoused, 5 s of wrk -t$WRK_THREADS -c16 authorize:"
    TOKEN=$TOKEN "${PIN_OTHERS[@]}" wrk "-t$WRK_THREADS" -c16 -d6s -s "$ROOT/bench/wrk/authorize.lua" "http://127.0.0.1:$SIDECAR" >"$WORK/wrk-perf.txt" &
    perf_wrk=$!
    sleep 0.5
    perf record -e cpu-clock -F 2999 -g -p "$SIDECAR_PID" -o "$WORK/perf.data" -- sleep 5 >/dev/null 2>"$WORK/perf.err" || true
    wait "$perf_wrk" || true
    perf report -i "$WORK/perf.data" --no-children --percent-limit 2 --stdio -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -40 | cut -c1-150 | sed 's/^/  /' || true
    echo "top 30 symbols (self):"
    perf report -i "$WORK/perf.data" --no-children --stdio -g none --sort dso,sym 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -30 | cut -c1-150 | sed 's/^/  /' || true
    echo "by component (self time, all samples):"
    perf report -i "$WORK/perf.data" --no-children --stdio -g none --sort dso,sym 2>/dev/null | grep -v '^#' |
      awk '
        /%/ {
          pct = $1; sub(/%/, "", pct)
          dso = $2; sym = $0; sub(/^.*\] /, "", sym)
          if (dso ~ /kernel/) {
            if (sym ~ /^(_raw_spin_unlock|sock_def_readable|tcp|__tcp|ip_|__ip|inet|__inet|sock_|sk_|skb|__skb|kfree_skb|net_|__netif|netif|napi|__napi|process_backlog|__dev|dev_|loopback|nf_|dst_|bbr|__sk|release_sock|lock_sock|__local_bh|handle_softirqs|do_softirq|__kfree_skb|kmem_cache|kfree|__kmalloc|kmalloc|__alloc_skb|page_frag)/) c = "kernel: TCP over loopback (incl. the peer wake-up and softirq on send)"
            else if (sym ~ /(epoll|ep_|poll|wake|futex|sched|schedule|switch|pick_|enqueue|dequeue|update_curr|ttwu|timerfd|hrtimer|timer)/) c = "kernel: epoll, timerfd, wake-ups, scheduling"
            else if (sym ~ /(filemap|ext4|vfs_read|pread|page_cache|folio)/) c = "kernel: file reads (one pread64 per request, SQLite)"
            else c = "kernel: syscall entry/exit, copies, other"
          }
          else if (dso ~ /libcrypto/ || sym ~ /(sha256|SHA256|EVP_)/) c = "token verify: SHA-256 (libcrypto)"
          else if (sym ~ /^(malloc|free|cfree|_int_|operator new|operator delete|tcache|arena|__libc_malloc|__libc_free|malloc_consolidate|unlink_chunk)/) c = "allocation (malloc/free/new/delete)"
          else if (sym ~ /(nlohmann|AppendJson|Json|json|Parse[A-Z]|Wire|wire|Serialize|Render)/) c = "JSON: request parsing and reply writing (wire.cc)"
          else if (sym ~ /(CheckTokenFormat|VerifyToken|TokenIndex|Token|Store|sqlite|DataVersion)/ || dso ~ /sqlite/) c = "token verify: format, index, store freshness"
          else if (sym ~ /(Decide|Decision|Policy|Route|Match|Rule|Role|Grant|gatehouse::Authorize|Evaluate)/) c = "decision (engine) and its handler"
          else if (sym ~ /^(boost::|gatehouse::sidecar::\(anonymous namespace\)::Session|gatehouse::sidecar::HttpRequest|gatehouse::sidecar::HttpReply|gatehouse::sidecar::.*Server)/) c = "Beast/Asio: parsing, serialising, async ops, timers"
          else if (sym ~ /^gatehouse::/) c = "handlers, metrics, decision log (other gatehouse code)"
          else if (sym ~ /(_Hashtable|_Hash_bytes|unordered)/) c = "std::unordered_map lookups and hashing"
          else if (dso ~ /vdso/) c = "clock reads (vdso clock_gettime)"
          else if (sym ~ /(printf|vfprintf|snprintf|__printf)/) c = "libc: printf formatting"
          else if (sym ~ /(sendmsg|recvmsg|epoll_wait|__libc_|syscall|timerfd|pread)/) c = "libc: syscall wrappers"
          else if (dso ~ /libc/) c = "libc: memcpy, strings, locks, other"
          else if (dso ~ /libstdc/ || sym ~ /^std::/) c = "libstdc++ (strings, containers)"
          else c = "other"
          sum[c] += pct
        }
        END {for (c in sum) printf "  %6.2f%%  %s\n", sum[c], c}' | sort -rn || true
    awk '/Requests\/sec/ {printf "  (authorize during the profile: %.0f req/s, profiler running)\n", $2}' "$WORK/wrk-perf.txt"
  elif [ "$profiler" = callgrind ]; then
    echo "valgrind --tool=callgrind on a second gatehoused, wrk -t1 -c1 -d5s authorize (bounded by time):"
    start cg valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" "$D" --listen 127.0.0.1:0 \
      --store "$WORK/demo.db" --policy "$ROOT/policies" --io-threads 1
    TOKEN=$TOKEN wrk -t1 -c1 -d5s -s "$ROOT/bench/wrk/authorize.lua" "http://127.0.0.1:$PORT" >"$WORK/wrk-cg.txt" || true
    stop_pid "$PID"
    awk '/requests in/ {print "  " $1 " requests"}' "$WORK/wrk-cg.txt"
    callgrind_annotate "$WORK/callgrind.out" 2>/dev/null | sed -n '1,40p' | sed 's/^/  /' || true
  else
    echo "no profile (PROFILE=$PROFILE; perf sampling and valgrind unavailable)"
  fi
fi

if has_mode shadow; then
  echo
  TOKEN=$(make_store "$WORK/shadow.db")
  # The candidates: the default policy with one permit added (viewers may
  # import; the benchmark's contributor is allowed either way) and with one
  # forbid added (API users may not import: the benchmark request diverges).
  mkdir -p "$WORK/cand-quiet" "$WORK/cand-diverging"
  awk '{print} /^  project.import:$/ {f = 1} f && /^    permit:$/ {print "      - rule: shadow-viewers\n        when: principal.workspace_role == viewer"; f = 0}' \
    "$ROOT/policies/api-tokens.yaml" >"$WORK/cand-quiet/api-tokens.yaml"
  awk '{print} /^  project.import:$/ {print "    forbid:\n      - rule: shadow-no-api-import\n        when: principal.kind == api_user"}' \
    "$ROOT/policies/api-tokens.yaml" >"$WORK/cand-diverging/api-tokens.yaml"
  declare -A SH_PORT SH_PID
  for v in plain quiet diverging; do
    extra=()
    [ "$v" != plain ] && extra=(--shadow-policy "$WORK/cand-$v")
    start "sh-$v" "$D" --listen 127.0.0.1:0 --store "$WORK/shadow.db" --policy "$ROOT/policies" \
      --io-threads "$IO_THREADS" --decision-log "$WORK/sh-$v.jsonl" "${extra[@]}"
    SH_PORT[$v]=$PORT
    SH_PID[$v]=$PID
    curl -fsS -X POST "http://127.0.0.1:$PORT/v1/authorize" -H 'Content-Type: application/json' \
      -d "{\"token\":\"$TOKEN\",\"action\":\"project.import\",\"workspace\":\"Marketing-Production\"}" | grep -q '"allow":true'
  done
  for c in $SHADOW_CONNECTIONS; do
    for r in $(seq 1 "$ROUNDS"); do
      for v in plain quiet diverging; do
        run_wrk "shadow-$v" "$c" "$r" "${SH_PORT[$v]}" "${SH_PID[$v]}" authorize.lua
      done
    done
  done
  echo "shadow: POST /v1/authorize without and with --shadow-policy (median of $ROUNDS interleaved rounds;"
  echo "quiet: a candidate one cell apart that this request does not reach; diverging: every request diverges)"
  printf '%-18s %5s %8s %7s %7s %7s %7s %10s %10s\n' variant conns "req/s" "p50 ms" "p99 ms" errors "cpu µs" "req/s vs" "cpu vs"
  for c in $SHADOW_CONNECTIONS; do
    for v in plain quiet diverging; do
      f=$(for x in "$WORK"/wrk-shadow-$v-$c-*.txt; do echo "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$x") $x"; done |
            sort -n | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}')
      rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$f")
      cpu=$(cat "$WORK"/wrk-shadow-$v-$c-*.cpu | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
      errors=$(cat "$WORK"/wrk-shadow-$v-$c-*.txt | awk '/Non-2xx/ {n += $NF} /Socket errors/ {n += 1} END {print n + 0}')
      RPS[shadow-$v-$c]=$rps
      CPU[shadow-$v-$c]=$cpu
      printf '%-18s %5s %8s %7s %7s %7s %7s %10s %10s\n' "$v" "$c" "$rps" \
        "$(ms "$(awk '$1 == "50%" {print $2}' "$f")")" "$(ms "$(awk '$1 == "99%" {print $2}' "$f")")" "$errors" "$cpu" \
        "$(awk -v a="$rps" -v b="${RPS[shadow-plain-$c]}" 'BEGIN {printf "%.3f", a / b}')" \
        "$(awk -v a="$cpu" -v b="${CPU[shadow-plain-$c]}" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print "-"}')"
    done
  done
  for v in quiet diverging; do
    n=$(curl -fsS "http://127.0.0.1:${SH_PORT[$v]}/metrics" | awk '/^gatehouse_shadow_divergences_total/ {n += $2} END {print n + 0}')
    slow=$(curl -fsS "http://127.0.0.1:${SH_PORT[$v]}/metrics" | awk '$1 == "gatehouse_shadow_slow_decisions_total" {print $2}')
    echo "  $v: $n divergences counted, $slow slow-path shadow decisions, $(grep -c '"shadow":' "$WORK/sh-$v.jsonl" || true) decision-log records with a shadow object"
  done
  echo "target: shadow costs ≤ 10% of /v1/authorize throughput (req/s vs ≥ 0.90)"
  for v in plain quiet diverging; do stop_pid "${SH_PID[$v]}"; done
fi

if has_mode rss || has_mode edge || has_mode churn || has_mode startup; then
  echo
  TOKEN=$(make_store "$WORK/big.db")
  t0=$(date +%s.%N)
  "$S" --store "$WORK/big.db" --apiuser prod-importer --count "$TOKENS" >/dev/null
  t1=$(date +%s.%N)
  echo "seeding $TOKENS tokens into SQLite took $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s; store $(du -m "$WORK/big.db" | cut -f1) MiB; load average $(loadavg)"
  declare -A LOC BIG_PORT BIG_PID BIG_INDEX
  LOC[sqlite]=$WORK/big.db
  if [[ " $BACKENDS " == *" pg "* ]]; then
    start_pg
    LOC[pg]=$PG_LOC
    t0=$(date +%s.%N)
    "$G" store copy --from "$WORK/big.db" --to "$PG_LOC" >"$WORK/copy.out" 2>&1 ||
      { echo "load.sh: store copy into PostgreSQL failed:" >&2; cat "$WORK/copy.out" >&2; exit 1; }
    # The copy's feed rows (one per token) are not what a sidecar reads at
    # start; VACUUM ANALYZE as an operator would after a bulk load.
    "$PSQL" -q -d "$PG_LOC" -c 'VACUUM ANALYZE' >/dev/null
    t1=$(date +%s.%N)
    echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') in $PG_DIR (Unix socket only; fsync=off, synchronous_commit=off: a benchmark server);"
    echo "  store copy of the SQLite store into it + VACUUM ANALYZE: $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
  fi
fi

if has_mode startup; then
  # Start-up alone, STARTUP_RUNS times per backend, interleaved.
  declare -A SU_LISTEN SU_READY
  # With BASELINE: that sidecar too, in the same rounds ("base-sqlite", "base-pg").
  SU_KEYS=$BACKENDS
  [ -n "${BASELINE:-}" ] && for b in $BACKENDS; do SU_KEYS+=" base-$b"; done
  for r in $(seq 1 "$STARTUP_RUNS"); do
    for k in $SU_KEYS; do
      b=${k#base-}
      bin=$D
      [ "$k" != "$b" ] && bin=$BASELINE
      start_until_ready "startup-$k-$r" "$bin" "${LOC[$b]}"
      stop_pid "$PID"
      SU_LISTEN[$k]+="$(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.2f", b - a}') "
      SU_READY[$k]+="$(awk -v a="$t1" -v b="$t3" 'BEGIN {printf "%.2f", b - a}') "
    done
  done
  # min / median / max of a list of seconds.
  spread() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {printf "%.2f / %.2f / %.2f s", a[1], a[int((NR + 1) / 2)], a[NR]}'; }
  for k in $SU_KEYS; do
    echo "$k: gatehoused start-up with $TOKENS tokens, $STARTUP_RUNS runs, min / median / max: to listening $(spread <<<"${SU_LISTEN[$k]}"), to ready $(spread <<<"${SU_READY[$k]}") (runs: ${SU_READY[$k]% }); load average $(loadavg)"
  done
  echo "target: start-up to ready ≤ 5 s from PostgreSQL with 1,000,000 tokens"
fi

if has_mode rss || has_mode edge || has_mode churn; then
  for b in $BACKENDS; do
    # Start-up: to "listening" (the sidecar listens after its first full
    # load) and to /readyz 200, one sidecar starting at a time.
    start_until_ready "big-$b" "$D" "${LOC[$b]}"
    BIG_PORT[$b]=$PORT
    BIG_PID[$b]=$PID
    # Touch every I/O thread and the whole index path.
    TOKEN=$TOKEN wrk -t2 -c64 -d3s -s "$ROOT/bench/wrk/verify.lua" "http://127.0.0.1:$PORT" >/dev/null
    BIG_INDEX[$b]=$(metric "$b" gatehouse_token_index_size)
    echo "$b: RSS with ${BIG_INDEX[$b]} tokens in the index: $(rss "$b") MiB (peak $(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status") MiB);" \
      "gatehoused start to listening $(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.2f", b - a}') s, to ready $(awk -v a="$t1" -v b="$t3" 'BEGIN {printf "%.2f", b - a}') s; load average $(loadavg)"
  done
  first=${BACKENDS%% *}
  BIG=${BIG_PORT[$first]}
  BIGPID=${BIG_PID[$first]}
  index=${BIG_INDEX[$first]}
fi

if has_mode rss; then
  for b in $BACKENDS; do
    port=${BIG_PORT[$b]}
    if [ "$b" = sqlite ]; then
      # One more token through the CLI: how long the next request waits for the catch-up.
      "$G" --store "${LOC[$b]}" token create --apiuser prod-importer --name one-more --expires-in 1d >/dev/null 2>&1
      t3=$(date +%s.%N)
      curl -fsS -X POST "http://127.0.0.1:$port/v1/tokens/verify" -d "{\"token\":\"$TOKEN\"}" >/dev/null
      t4=$(date +%s.%N)
      echo "  sqlite: first request after a CLI write (catch-up from the change feed): $(awk -v a="$t3" -v b="$t4" 'BEGIN {printf "%.0f", (b - a) * 1000}') ms"
      # A read-only command only appends an audit record: no rebuild.
      "$G" --store "${LOC[$b]}" token list >/dev/null 2>&1
      t5=$(date +%s.%N)
      curl -fsS -X POST "http://127.0.0.1:$port/v1/tokens/verify" -d "{\"token\":\"$TOKEN\"}" >/dev/null
      t6=$(date +%s.%N)
      echo "  sqlite: first request after a read-only CLI command (token list: audit record only): $(awk -v a="$t5" -v b="$t6" 'BEGIN {printf "%.0f", (b - a) * 1000}') ms"
    fi
  done
  # Memory after changes, each backend in turn, under wrk -c16 authorize (the
  # SQLite sidecar catches up on the request path): RSS after the first
  # change, after 1,000 (creations and deletions, one commit each), after a
  # compaction (one commit creating $COMPACT_BULK tokens, one deleting them),
  # and after 1,000 more.
  echo
  echo "memory after changes (seed_store --churn: one token created or deleted per commit, ≤ $RSS_RATE/s, beside wrk -c16 authorize):"
  # wrk beside the changes only: the bulk commits are thousands of round
  # trips each on PostgreSQL, which a saturated CPU would stretch to minutes.
  bg_wrk() {
    TOKEN=$TOKEN wrk -t2 -c16 -d300s -s "$ROOT/bench/wrk/authorize.lua" "http://127.0.0.1:${BIG_PORT[$1]}" >/dev/null 2>&1 &
    BG_WRK=$!
    PIDS+=("$BG_WRK")
    sleep 1
  }
  for b in $BACKENDS; do
    bg_wrk "$b"
    r0=$(rss "$b")
    "$S" --store "${LOC[$b]}" --apiuser prod-importer --churn 1 >/dev/null
    sleep 1
    r1=$(rss "$b")
    t0=$(date +%s.%N)
    "$S" --store "${LOC[$b]}" --apiuser prod-importer --churn "$((RSS_CHANGES - 1))" --rate "$RSS_RATE" >/dev/null
    t1=$(date +%s.%N)
    sleep 1
    r1000=$(rss "$b")
    stop_pid "$BG_WRK"
    c0=$(metric "$b" gatehouse_token_compactions_total)
    # VmHWM from here on is the compactions' peak (clear_refs 5 resets it).
    echo 5 >"/proc/${BIG_PID[$b]}/clear_refs" 2>/dev/null || true
    "$S" --store "${LOC[$b]}" --apiuser prod-importer --churn 2 --bulk "$COMPACT_BULK" >/dev/null
    # The SQLite sidecar catches up on a request; the sweeper's tick compacts.
    # Done when a compaction ran and the overlay is back under its floor.
    for _ in $(seq 1 600); do
      curl -fsS -X POST "http://127.0.0.1:${BIG_PORT[$b]}/v1/tokens/verify" -d "{\"token\":\"$TOKEN\"}" >/dev/null
      [ "$(metric "$b" gatehouse_token_compactions_total)" != "$c0" ] &&
        [ "$(metric "$b" gatehouse_token_overlay_entries)" -lt 4096 ] && break
      sleep 0.1
    done
    peak_c=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/${BIG_PID[$b]}/status")
    bg_wrk "$b"
    rc=$(rss "$b")
    "$S" --store "${LOC[$b]}" --apiuser prod-importer --churn "$RSS_CHANGES" --rate "$RSS_RATE" >/dev/null
    sleep 1
    r2000=$(rss "$b")
    stop_pid "$BG_WRK"
    echo "  $b: RSS $r0 MiB before, $r1 after the first change, $r1000 after $RSS_CHANGES ($(pct "$r1000" "$r1"); $(awk -v a="$t0" -v b="$t1" -v n="$((RSS_CHANGES - 1))" 'BEGIN {printf "%.0f", n / (b - a)}') commits/s)," \
      "$rc after a compaction ($(metric "$b" gatehouse_token_compactions_total) compactions; peak while they ran $peak_c), $r2000 after $RSS_CHANGES more ($(pct "$r2000" "$r1"));" \
      "overlay $(metric "$b" gatehouse_token_overlay_entries), full loads $(metric "$b" gatehouse_store_full_loads_total); load average $(loadavg)"
  done
  echo "  target: within 10% of the RSS after the first change; ≤ 160 MiB with 1,000,000 tokens"
fi

if has_mode churn; then
  # Throughput side by side: interleaved quiet rounds on every backend.
  if [ "$BACKENDS" != sqlite ] && [ "$BACKENDS" != pg ]; then
    echo
    echo "throughput: wrk -t2 -c16 -d$DURATION on /v1/authorize, $ROUNDS interleaved rounds per backend ($index tokens)"
    for r in $(seq 1 "$ROUNDS"); do
      # Every other round in the other order: the one measured second in a
      # round was slower more often than not (measured).
      order=$BACKENDS
      [ $((r % 2)) = 0 ] && order=$(tr ' ' '\n' <<<"$BACKENDS" | tac | tr '\n' ' ')
      for b in $order; do
        # The server's CPU per request too: steadier than req/s on a shared
        # machine (what the sidecar spends, whoever else runs).
        c0=$(cpu_ticks "${BIG_PID[$b]}")
        TOKEN=$TOKEN wrk -t2 -c16 "-d$DURATION" --latency -s "$ROOT/bench/wrk/authorize.lua" \
          "http://127.0.0.1:${BIG_PORT[$b]}" >"$WORK/tp-$b-$r.txt" 2>&1
        c1=$(cpu_ticks "${BIG_PID[$b]}")
        awk -v t="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" '/^Requests\/sec/ {n = $2}
          /requests in/ {req = $1} END {printf "%.1f\n", t / hz * 1e6 / req}' "$WORK/tp-$b-$r.txt" >"$WORK/tp-$b-$r.cpu"
        echo "  round $r $b: $(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/tp-$b-$r.txt") req/s, p99 $(awk '$1 == "99%" {print $2}' "$WORK/tp-$b-$r.txt"), server CPU $(cat "$WORK/tp-$b-$r.cpu") µs/request; load average $(loadavg)"
      done
    done
    declare -A TP TPCPU
    for b in $BACKENDS; do
      TP[$b]=$(for r in $(seq 1 "$ROUNDS"); do awk '/Requests\/sec/ {printf "%.0f\n", $2}' "$WORK/tp-$b-$r.txt"; done |
        sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
      TPCPU[$b]=$(cat "$WORK"/tp-$b-*.cpu | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
      echo "  $b median: ${TP[$b]} req/s, server CPU ${TPCPU[$b]} µs/request"
    done
    echo "  pg / sqlite: $(awk -v a="${TP[pg]}" -v b="${TP[sqlite]}" 'BEGIN {printf "%.3f", a / b}') (target ≥ 0.95);" \
      "server CPU per request sqlite / pg: $(awk -v a="${TPCPU[sqlite]}" -v b="${TPCPU[pg]}" 'BEGIN {printf "%.3f", a / b}')"
  fi
  churn_wrk() {
    TOKEN=$TOKEN "${PIN_OTHERS[@]}" wrk "-t$WRK_THREADS" -c16 "-d${CHURN_S}s" --latency -s "$ROOT/bench/wrk/authorize.lua" \
      "http://127.0.0.1:$1" >"$WORK/churn-$2.txt" 2>&1
  }
  # The sidecar's own view of the same requests: its /v1/authorize latency
  # histogram (from the parsed request to the reply, a SQLite catch-up
  # included; not the wait for a CPU), saved before a run and compared after.
  # wrk's max also holds the time its own threads and the server's waited
  # for one of the two cores.
  server_hist() {
    curl -fsS "http://127.0.0.1:$1/metrics" |
      awk '/^gatehouse_http_request_duration_seconds_bucket[{]endpoint="authorize"/ {
             match($0, /le="[^"]*"/); print substr($0, RSTART + 4, RLENGTH - 5), $2 }' >"$WORK/hist-$2.txt"
  }
  # hist_row BEFORE AFTER: how many requests of the run took over 1 ms and
  # 5 ms inside the sidecar, and the bucket that holds the slowest.
  # (FILENAME, not NR == FNR: BEFORE is empty when the sidecar has not yet
  # answered an authorize request.)
  hist_row() {
    awk 'FILENAME == ARGV[1] {b[$1] = $2; next}
         {d = $2 - b[$1]; le[++n] = $1; c[n] = d}
         END {
           total = c[n]; slowest = "+Inf"
           for (i = n; i >= 1; i--) if (c[i] == total) slowest = le[i]
           for (i = 1; i <= n; i++) { if (le[i] == "0.001") o1 = total - c[i]; if (le[i] == "0.005") o5 = total - c[i] }
           printf "in the sidecar: %d requests, %d over 1 ms, %d over 5 ms, slowest <= %s s\n", total, o1, o5, slowest
         }' "$WORK/hist-$1.txt" "$WORK/hist-$2.txt"
  }
  churn_row() {
    local f=$WORK/churn-$1.txt
    printf '  %-12s %8s req/s  p50 %7s ms  p99 %7s ms  max %8s ms  changes %s\n' "$1" \
      "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$f")" "$(ms "$(awk '$1 == "50%" {print $2}' "$f")")" \
      "$(ms "$(awk '$1 == "99%" {print $2}' "$f")")" "$(ms "$(awk '$1 == "Latency" {print $4}' "$f")")" "$2"
  }
  for b in $BACKENDS; do
    port=${BIG_PORT[$b]}
    echo
    echo "churn ($b): wrk -t$WRK_THREADS -c16 -d${CHURN_S}s on /v1/authorize with ${BIG_INDEX[$b]} tokens, quiet, then beside $CHURN_RATE changes/s ($CHURN_BY)"
    if [ "$PIN" = 1 ]; then
      pin_all 0 "${BIG_PID[$b]}"
      [ -n "$PG_PID" ] && pin_all 1 "$PG_PID" $(pgrep -P "$PG_PID" || true)
      echo "  pinned: gatehoused on CPU 0; wrk, the changes and PostgreSQL on CPU 1"
    fi
    rss_churn0=$(rss "$b")
    la0=$(loadavg)
    server_hist "$port" "$b-0"
    churn_wrk "$port" "$b-quiet"
    server_hist "$port" "$b-1"
    loads0=$(metric "$b" gatehouse_store_full_loads_total)
    applied0=$(metric "$b" gatehouse_feed_changes_applied_total)
    refreshes0=$(metric "$b" gatehouse_store_refreshes_total)
    refresh_s0=$(metric "$b" gatehouse_store_refresh_seconds_total)
    la1=$(loadavg)
    churn_wrk "$port" "$b-busy" &
    churn_pid=$!
    made=0 last_id="" t_start=$(date +%s.%N)
    total=$((CHURN_RATE * CHURN_S))
    if [ "$CHURN_BY" = api ]; then
      # The same commits (a token created, then deleted) through the Store
      # API, paced: what the sidecar sees, without a CLI process per change.
      made=$("${PIN_OTHERS[@]}" "$S" --store "${LOC[$b]}" --apiuser prod-importer --churn "$total" --rate "$CHURN_RATE" | awk '{print $2}')
      total=0
    fi
    for i in $(seq 1 "$total"); do
      if [ -z "$last_id" ]; then
        last_id=$("$G" --store "${LOC[$b]}" --json token create --apiuser prod-importer --name churn --expires-in 1d 2>/dev/null |
          sed -n 's/.*"id": *"\(tok_[A-Za-z0-9]*\)".*/\1/p' | head -1)
      else
        "$G" --store "${LOC[$b]}" token revoke "$last_id" >/dev/null 2>&1 || true
        last_id=""
      fi
      made=$i
      # Pace to CHURN_RATE a second; stop with wrk.
      next=$(awk -v s="$t_start" -v i="$i" -v r="$CHURN_RATE" 'BEGIN {printf "%.3f", s + i / r}')
      now=$(date +%s.%N)
      sleep "$(awk -v a="$next" -v b="$now" 'BEGIN {d = a - b; printf "%.3f", (d > 0 ? d : 0)}')"
      kill -0 "$churn_pid" 2>/dev/null || break
    done
    wait "$churn_pid" || true
    server_hist "$port" "$b-2"
    churn_row "$b-quiet" "0 (load average $la0 before)"
    echo "               $(hist_row "$b-0" "$b-1")"
    churn_row "$b-busy" "$made (load average $la1 before, $(loadavg) after)"
    echo "               $(hist_row "$b-1" "$b-2")"
    echo "  feed rows applied $applied0 -> $(metric "$b" gatehouse_feed_changes_applied_total), full loads $loads0 -> $(metric "$b" gatehouse_store_full_loads_total), compactions $(metric "$b" gatehouse_token_compactions_total), overlay $(metric "$b" gatehouse_token_overlay_entries)"
    # The catch-ups' own time (wall clock, preemption included), from the
    # sidecar's counters: on SQLite each runs on the request that found the
    # store changed.
    awk -v n0="$refreshes0" -v n1="$(metric "$b" gatehouse_store_refreshes_total)" \
        -v s0="$refresh_s0" -v s1="$(metric "$b" gatehouse_store_refresh_seconds_total)" \
        'BEGIN {n = n1 - n0; printf "  catch-ups %d, %.0f µs each on average\n", n, (n > 0 ? (s1 - s0) / n * 1e6 : 0)}'
    echo "  RSS $rss_churn0 MiB before the quiet run, $(rss "$b") MiB after the changes"
    if [ "$PIN" = 1 ]; then
      pin_all "0-$(($(nproc) - 1))" "${BIG_PID[$b]}"
      [ -n "$PG_PID" ] && pin_all "0-$(($(nproc) - 1))" "$PG_PID" $(pgrep -P "$PG_PID" || true)
    fi
  done
fi

if has_mode edge; then
  echo
  probe_args authorize
  # Fresh authorize requests, one after another: 200 over ~4 s, so the probe
  # spans the moment the server closes the slow connections at their header
  # deadline and conn_holder opens them again.
  edge_probe() {
    "${PIN_OTHERS[@]}" "$P" --port "$BIG" --count 200 --interval-ms 20 --timeout-ms 5000 --deadline-s 30 "${PROBE_REQ[@]}"
  }
  [ "$PIN" = 1 ] && pin_all 0 "$BIGPID"
  quiet=$(edge_probe)
  echo "edge: gatehoused with $index tokens; probe of 200 fresh authorize requests, 20 ms apart"
  [ "$PIN" = 1 ] && echo "  pinned: gatehoused on CPU 0; conn_holder, the probe and wrk on CPU 1"
  echo "  no held connections:                 $quiet"
  "${PIN_OTHERS[@]}" "$K" --port "$BIG" --idle "$IDLE" --slow "$SLOW" --trickle-ms 300 --hold-s 90 >"$WORK/holder.out" 2>&1 &
  HOLDER=$!
  PIDS+=("$HOLDER")
  for _ in $(seq 1 600); do
    grep -q '^ready' "$WORK/holder.out" && break
    kill -0 "$HOLDER" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^ready' "$WORK/holder.out"; then
    echo "  conn_holder did not hold $IDLE idle + $SLOW slow connections within 60 s: $(tail -1 "$WORK/holder.out")"
  else
    echo "  conn_holder: $(grep '^ready' "$WORK/holder.out")"
    sleep 1
    held=$(edge_probe)
    rss_held=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$BIGPID/status")
    fds=$(find "/proc/$BIGPID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "  $IDLE idle + $SLOW slow-header held:  $held"
    echo "  conn_holder while probing: $(grep '^status' "$WORK/holder.out" | tail -1 | sed 's/^status //')"
    echo "  gatehoused RSS with $index tokens and the connections open: $rss_held MiB ($fds descriptors; target ≤ 64 MiB)"
    TOKEN=$TOKEN "${PIN_OTHERS[@]}" wrk "-t$WRK_THREADS" -c16 -d5s --latency -s "$ROOT/bench/wrk/authorize.lua" "http://127.0.0.1:$BIG" >"$WORK/wrk-edge.txt" || true
    echo "  wrk -t$WRK_THREADS -c16 -d5s authorize beside them: $(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/wrk-edge.txt") req/s, p99 $(awk '$1 == "99%" {print $2}' "$WORK/wrk-edge.txt")"
  fi
  stop_pid "$HOLDER"
  echo "  conn_holder at exit: $(grep '^done' "$WORK/holder.out" | sed 's/^done //')"
  sleep 1
  echo "  gatehoused RSS after they closed: $(awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$BIGPID/status")"
fi
