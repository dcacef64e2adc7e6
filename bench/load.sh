#!/usr/bin/env bash
# HTTP load benchmark of the sidecar (not a test: it prints figures).
#
#   bench/load.sh [BUILD_DIR]        default BUILD_DIR: $BUILD_DIR, else build
#
# Creates its own demo store in a temp dir with the real CLI, starts the real
# gatehoused and the reference hello_server (cpp-httplib hello-world, same
# tuning) on free ports, and drives each with
#   wrk -t2 -c16 -d10s --latency   and   -c64
# against POST /v1/authorize (a token), POST /v1/tokens/verify,
# GET /v1/forward-auth (nginx-style headers) and the hello server. Then it
# measures gatehoused's resident memory with 100,000 tokens in the store.
# Prints one table. Use a Release build:
#   cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release
#   ninja -C build-release gatehoused gatehouse hello_server seed_store
#   bench/load.sh build-release
#
# Each configuration runs ROUNDS times, interleaved (hello, authorize, verify,
# forward-auth, hello, ...), and the table shows the median round by req/s:
# on a shared 2-core machine neighbours' load moves single runs a lot.
#
# Environment: DURATION (10s), CONNECTIONS ("16 64"), ROUNDS (3), THREADS
# (gatehoused --threads, 64), TOKENS (100000), MODE (all | load | rss).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-${BUILD_DIR:-build}}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16 64}
THREADS=${THREADS:-64}
TOKENS=${TOKENS:-100000}
ROUNDS=${ROUNDS:-3}
MODE=${MODE:-all}

G=$BUILD/cli/gatehouse
D=$BUILD/sidecar/gatehoused
H=$BUILD/bench/hello_server
S=$BUILD/bench/seed_store
for f in "$G" "$D" "$H" "$S"; do
  [ -x "$f" ] || { echo "load.sh: $f is missing; build it (see the header of this script)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "load.sh: wrk is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
[ "$build_type" = "Release" ] || echo "load.sh: warning: $BUILD is a '$build_type' build, not Release" >&2

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-load-XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

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

# run_wrk LABEL CONNS ROUND PORT [SCRIPT] [PATH]: one wrk run, kept in a file.
declare -A RPS
row() { printf '%-14s %5s %12s %9s %9s %9s %9s\n' "$@"; }
run_wrk() {
  local label=$1 conns=$2 round=$3 port=$4 script=${5:-} path=${6:-/}
  local args=(-t2 "-c$conns" "-d$DURATION" --latency)
  [ -n "$script" ] && args+=(-s "$ROOT/bench/wrk/$script")
  TOKEN=$TOKEN wrk "${args[@]}" "http://127.0.0.1:$port$path" >"$WORK/wrk-$label-$conns-$round.txt"
}
# report LABEL CONNS: the median round's row.
report() {
  local label=$1 conns=$2 best="" f
  # Sort the rounds by req/s and take the middle one.
  best=$(for f in "$WORK"/wrk-"$label"-"$conns"-*.txt; do
           echo "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$f") $f"
         done | sort -n | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}')
  local out rps p50 p99 errors
  out=$(cat "$best")
  rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errors=$(cat "$WORK"/wrk-"$label"-"$conns"-*.txt | awk '/Non-2xx/ {n += $NF} /Socket errors/ {for (i = 4; i <= NF; i += 2) n += $i} END {print n + 0}')
  RPS[$label-$conns]=$rps
  local vs="-"
  if [ "$label" != "hello" ] && [ -n "${RPS[hello-$conns]:-}" ]; then
    vs=$(awk -v a="$rps" -v b="${RPS[hello-$conns]}" 'BEGIN {printf "%.0f%%", 100 * a / b}')
  fi
  row "$label" "$conns" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$errors" "$vs"
}
# wrk prints 512.00us / 1.20ms / 1.01s; convert to ms.
ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else print v }'
}

echo "machine: $(nproc) cores, $(sed -n 's/model name\s*: //p' /proc/cpuinfo | head -1); build: $BUILD ($build_type)"
echo "wrk -t2 -d$DURATION --latency; gatehoused --threads $THREADS; wrk runs on the same cores as the servers"
echo

if [ "$MODE" = all ] || [ "$MODE" = load ]; then
  TOKEN=$(make_store "$WORK/demo.db")
  start gatehoused "$D" --listen 127.0.0.1:0 --store "$WORK/demo.db" --policy "$ROOT/policies" --threads "$THREADS"
  SIDECAR=$PORT
  SIDECAR_PID=$PID
  start hello "$H" --listen 127.0.0.1:0 --threads "$THREADS"
  HELLO=$PORT
  # Sanity: each endpoint answers as expected before it is measured.
  curl -fsS -X POST "http://127.0.0.1:$SIDECAR/v1/authorize" -H 'Content-Type: application/json' \
    -d "{\"token\":\"$TOKEN\",\"action\":\"project.import\",\"workspace\":\"Marketing-Production\"}" | grep -q '"allow":true'
  curl -fsS -X POST "http://127.0.0.1:$SIDECAR/v1/tokens/verify" -d "{\"token\":\"$TOKEN\"}" | grep -q '"active":true'
  curl -fsS "http://127.0.0.1:$SIDECAR/v1/forward-auth" -H "Authorization: Bearer $TOKEN" \
    -H 'X-Original-Method: POST' -H 'X-Original-URI: /workspaces/Marketing-Production/projects/p1/import' >/dev/null

  for c in $CONNECTIONS; do
    for r in $(seq 1 "$ROUNDS"); do
      run_wrk hello "$c" "$r" "$HELLO" "" /hello
      run_wrk authorize "$c" "$r" "$SIDECAR" authorize.lua
      run_wrk verify "$c" "$r" "$SIDECAR" verify.lua
      run_wrk forward-auth "$c" "$r" "$SIDECAR" forward_auth.lua
    done
  done
  echo "median of $ROUNDS interleaved rounds (errors: non-2xx answers and socket errors, all rounds)"
  row endpoint conns "req/s" "p50 ms" "p99 ms" "errors" "vs hello"
  for c in $CONNECTIONS; do
    for label in hello authorize verify forward-auth; do report "$label" "$c"; done
  done
  echo
  echo "gatehoused RSS after the runs (3 tokens): $(awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$SIDECAR_PID/status")"
  # Any status but 200, as the sidecar counted it.
  curl -fsS "http://127.0.0.1:$SIDECAR/metrics" | awk '/^gatehouse_http_requests_total/ && !/code="200"/ {print "  non-200 answers: " $0}'
  grep -h "Socket errors" "$WORK"/wrk-*.txt | sed 's/^/  wrk: /' | sort | uniq -c || true
fi

if [ "$MODE" = all ] || [ "$MODE" = rss ]; then
  TOKEN=$(make_store "$WORK/big.db")
  t0=$(date +%s.%N)
  "$S" --store "$WORK/big.db" --apiuser prod-importer --count "$TOKENS" >/dev/null
  t1=$(date +%s.%N)
  start big "$D" --listen 127.0.0.1:0 --store "$WORK/big.db" --policy "$ROOT/policies" --threads "$THREADS"
  t2=$(date +%s.%N)
  BIG=$PORT
  BIGPID=$PID
  # Touch every worker thread and the whole index path.
  TOKEN=$TOKEN wrk -t2 -c64 -d3s -s "$ROOT/bench/wrk/verify.lua" "http://127.0.0.1:$BIG" >/dev/null
  index=$(curl -fsS "http://127.0.0.1:$BIG/metrics" | awk '$1 == "gatehouse_token_index_size" {print $2}')
  rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$BIGPID/status")
  hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$BIGPID/status")
  echo "RSS with $index tokens in the index: $rss MiB (peak $hwm MiB); store $(du -m "$WORK/big.db" | cut -f1) MiB;"
  echo "  seeding $TOKENS tokens took $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s, gatehoused start to listening $(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.2f", b - a}') s"
  # One more token through the CLI: how long the next request waits for the rebuild.
  "$G" --store "$WORK/big.db" token create --apiuser prod-importer --name one-more --expires-in 1d >/dev/null 2>&1
  t3=$(date +%s.%N)
  curl -fsS -X POST "http://127.0.0.1:$BIG/v1/tokens/verify" -d "{\"token\":\"$TOKEN\"}" >/dev/null
  t4=$(date +%s.%N)
  echo "  first request after a CLI write (index rebuild of $((index + 1)) tokens): $(awk -v a="$t3" -v b="$t4" 'BEGIN {printf "%.0f", (b - a) * 1000}') ms"
  # A read-only command only appends an audit record: no rebuild.
  "$G" --store "$WORK/big.db" token list >/dev/null 2>&1
  t5=$(date +%s.%N)
  curl -fsS -X POST "http://127.0.0.1:$BIG/v1/tokens/verify" -d "{\"token\":\"$TOKEN\"}" >/dev/null
  t6=$(date +%s.%N)
  echo "  first request after a read-only CLI command (token list: audit record only): $(awk -v a="$t5" -v b="$t6" 'BEGIN {printf "%.0f", (b - a) * 1000}') ms"
fi
