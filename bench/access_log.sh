#!/usr/bin/env bash
# What --access-log costs (not a test: it prints figures). gatehoused's
# POST /v1/authorize under wrk -t2 -c16, without an access log, with one to a
# file, and with the decision log too, ROUNDS rounds interleaved; per run the
# requests/s and the server's CPU µs per request (utime+stime from /proc).
#
#   bench/access_log.sh [BUILD_DIR]      (a Release build reads best)
#
# Env: ROUNDS (3), DURATION (5s). Loopback only; every process it starts is
# stopped by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-${BUILD_DIR:-$ROOT/build}}" && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CLI=$BUILD/cli/gatehouse
SIDECAR=$BUILD/sidecar/gatehoused
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

export GATEHOUSE_STORE=$WORK/s.db GATEHOUSE_AS=owner@demo.test
"$CLI" init --org Demo --owner owner@demo.test >/dev/null
"$CLI" workspace create Marketing-Production --type shared >/dev/null
"$CLI" apiuser create prod-importer --workspace Marketing-Production --workspace-role contributor >/dev/null
TOKEN=$("$CLI" token create --apiuser prod-importer --name bench --expires-in 1d)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {  # NAME ARGS...
  local name=$1; shift
  : >"$WORK/err"  # now: the child truncates it only once it runs
  "$SIDECAR" --listen 127.0.0.1:0 --store "$GATEHOUSE_STORE" "$@" >"$WORK/out" 2>>"$WORK/err" &
  PID=$!
  local port=""
  for _ in $(seq 100); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]* (' "$WORK/err" 2>/dev/null | grep -o '[0-9][0-9]*' | tail -1 || true)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "gatehoused did not start: $(cat "$WORK/err")" >&2; exit 1; }
  local t0; t0=$(cpu_ticks "$PID")
  TOKEN=$TOKEN wrk -t2 -c16 -d"$DURATION" -s "$ROOT/bench/wrk/authorize.lua" "http://127.0.0.1:$port" >"$WORK/wrk" ||
    { echo "wrk failed ($name, port $port): $(cat "$WORK/wrk"); gatehoused: $(cat "$WORK/err")" >&2; ps -p "$PID" >&2; exit 1; }
  local t1; t1=$(cpu_ticks "$PID")
  kill "$PID"; wait "$PID" || echo "  (gatehoused exited $?: $(tail -2 "$WORK/err"))"; PID=
  local reqs rps
  reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk")
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk")
  awk -v n="$name" -v r="$rps" -v c=$((t1 - t0)) -v q="$reqs" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "  %-28s %10.0f req/s %8.1f µs CPU/request\n", n, r, c / hz * 1e6 / q}'
  rm -f "$WORK"/*.log
}

echo "POST /v1/authorize, wrk -t2 -c16 -d$DURATION, $ROUNDS rounds interleaved:"
for _ in $(seq "$ROUNDS"); do
  run "no access log"
  run "--access-log FILE" --access-log "$WORK/access.log"
  run "--access-log + --decision-log" --access-log "$WORK/access.log" --decision-log "$WORK/decision.log"
done
