#!/usr/bin/env bash
# Many hosts (issue 11): a database host, three sidecar hosts (plus one with
# --feed-notify off) and a CLI host, each a network namespace on one bridge.
#
#   tests/e2e/multihost.sh GATEHOUSED GATEHOUSE POLICY_DIR
#
# The whole test runs inside its own `unshare --net --mount --pid` sandbox:
# the script re-executes itself there. The sandbox's network namespace has no
# route anywhere (only its own veth into the bridge), /run/netns is a tmpfs
# private to it, and every process started here dies with the sandbox's PID
# namespace, so no packet to a 10.x address can leave the machine and nothing
# outlives the test. Every process is started with `ip netns exec HOST` and
# stopped by its PID; every wait is bounded.
#
# Cases: a revocation, an API-user deletion and the toggle turned off, made
# with the CLI on the CLI host, are refused on every sidecar host; a host
# partitioned by unplugging its bridge port denies (rule store-unavailable)
# and reports not ready within the staleness bound, the others keep serving,
# and after the heal it serves again and refuses what was revoked meanwhile;
# the postmaster killed with SIGKILL and restarted; NOTIFY off. Prints the
# commit -> refusal latency per host (min/median/max); asserts only the
# bounds the design states (staleness bound + margin).
#
# It fails (never skips) when unshare, ip, curl, jq or PostgreSQL 15 is
# missing, or when it is not run as root (namespaces need CAP_SYS_ADMIN).
set -uo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

if [[ "${GH_MULTIHOST_INSIDE:-}" != 1 ]]; then
  [[ $# -eq 3 ]] || fail "usage: $0 GATEHOUSED GATEHOUSE POLICY_DIR"
  for tool in unshare ip jq runuser; do
    command -v "$tool" >/dev/null || fail "$tool is missing (scripts/setup.sh installs it)"
  done
  [[ -x /usr/lib/postgresql/15/bin/initdb ]] ||
    fail "PostgreSQL 15 is not installed (scripts/setup.sh installs postgresql-15)"
  getent passwd postgres >/dev/null || fail "no postgres user (is postgresql-15 installed?)"
  [[ $(id -u) -eq 0 ]] || fail "must run as root: network namespaces need CAP_SYS_ADMIN"
  [[ -x "$1" && -x "$2" && -d "$3" ]] || fail "not found: $1, $2 or $3"
  GH_MULTIHOST_INSIDE=1 exec timeout -s KILL "${GH_MULTIHOST_TIMEOUT:-240}" \
    unshare --net --mount --pid --fork --kill-child --mount-proc -- "$BASH" "$0" "$@"
fi

# ---- inside the sandbox -----------------------------------------------------
GATEHOUSED=$(realpath "$1"); GATEHOUSE=$(realpath "$2"); POLICY=$(realpath "$3")
PGBIN=/usr/lib/postgresql/15/bin
NET=10.231.7
DB_IP=$NET.10
MGMT=10.232  # the test's own links to the sidecar hosts: 10.232.N.0/24
declare -A ASK=()  # host -> the address the test asks it at
declare -A IP=([db]=$NET.10 [cli]=$NET.20 [s1]=$NET.11 [s2]=$NET.12 [s3]=$NET.13 [n1]=$NET.14)
SIDECARS=(s1 s2 s3)           # followed by LISTEN/NOTIFY + heartbeat
STALE_MS=300 HEARTBEAT_MS=50  # the lease the sidecars are started with
MARGIN_MS=700                 # generous: a shared 2-core machine
PORT=7878
LOC="postgresql://gh@$DB_IP:5432/postgres?connect_timeout=2"

D=$(mktemp -d /tmp/gh-multihost-XXXXXX) && chmod 711 "$D"
declare -A PID=()
PG_PID=""
cleanup() {
  for h in "${!PID[@]}"; do kill -TERM "${PID[$h]}" 2>/dev/null; done
  [[ -n "$PG_PID" ]] && kill -QUIT "$PG_PID" 2>/dev/null
  sleep 0.2
  for h in "${!PID[@]}"; do kill -KILL "${PID[$h]}" 2>/dev/null; done
  [[ -n "$PG_PID" ]] && kill -KILL "$PG_PID" 2>/dev/null
  if [[ -n "${GH_MULTIHOST_KEEP:-}" ]]; then echo "logs kept in $D" >&2; else rm -rf "$D"; fi
}
trap cleanup EXIT

dump_logs() {
  for f in "$D"/*.log "$D"/pg/log; do
    [[ -f "$f" ]] && { echo "--- $f (last 15 lines)"; tail -n 15 "$f"; }
  done >&2
}
die() { echo "FAIL: $*" >&2; dump_logs; exit 1; }



# ---- hosts ------------------------------------------------------------------
setup_network() {
  mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns || return 1
  ip link set lo up || return 1
  ip netns add br || return 1
  ip -n br link set lo up && ip -n br link add br0 type bridge && ip -n br link set br0 up || return 1
  local h
  for h in "${!IP[@]}"; do
    ip netns add "$h" && ip -n "$h" link set lo up || return 1
    ip link add "v-$h" type veth peer name "p-$h" || return 1
    ip link set "v-$h" netns "$h" && ip link set "p-$h" netns br || return 1
    ip -n br link set "p-$h" master br0 up || return 1
    ip -n "$h" addr add "${IP[$h]}/24" dev "v-$h" && ip -n "$h" link set "v-$h" up || return 1
  done
  # The test process (this sandbox's own namespace) asks each sidecar over a
  # link of its own, not through the bridge: unplugging a host's bridge port
  # cuts it from the database but not from the test.
  local i=1
  for h in "${SIDECARS[@]}" n1; do
    ip link add "m-$h" type veth peer name mgmt && ip link set mgmt netns "$h" || return 1
    ip addr add "$MGMT.$i.1/24" dev "m-$h" && ip link set "m-$h" up || return 1
    ip -n "$h" addr add "$MGMT.$i.2/24" dev mgmt && ip -n "$h" link set mgmt up || return 1
    ASK[$h]=$MGMT.$i.2
    i=$((i + 1))
  done
}

pg_start() {
  ip netns exec db runuser -u postgres -- "$PGBIN/pg_ctl" -D "$D/pg/data" -l "$D/pg/log" -w -t 30 \
    -o "-k $D/pg -c listen_addresses=$DB_IP -c port=5432 -c fsync=off" start >"$D/pg_ctl.log" 2>&1 ||
    return 1
  PG_PID=$(head -n1 "$D/pg/data/postmaster.pid")
}

setup_postgres() {
  mkdir -p "$D/pg" && chown postgres:postgres "$D/pg" && chmod 700 "$D/pg" || return 1
  runuser -u postgres -- "$PGBIN/initdb" -D "$D/pg/data" -U gh --auth=trust -E UTF8 \
    --locale=C.UTF-8 --no-instructions --no-sync >"$D/initdb.log" 2>&1 || return 1
  echo "host all all $NET.0/24 trust" >>"$D/pg/data/pg_hba.conf"
  pg_start
}

cli() {  # cli ARGS...: the CLI on the CLI host
  ip netns exec cli env GATEHOUSE_STORE="$LOC" GATEHOUSE_POLICY="$POLICY" \
    GATEHOUSE_AS=owner@acme.test "$GATEHOUSE" "$@" 2>>"$D/cli.log"
}

start_sidecar() {  # start_sidecar HOST EXTRA...
  local h=$1; shift
  ip netns exec "$h" "$GATEHOUSED" --store "$LOC" --policy "$POLICY" --listen "0.0.0.0:$PORT" \
    --max-staleness-ms "$STALE_MS" --feed-heartbeat-ms "$HEARTBEAT_MS" --sweep-interval 3600 \
    --io-threads 1 "$@" >"$D/$h.log" 2>&1 &
  PID[$h]=$!
}

# ---- asking a sidecar ---------------------------------------------------------
# Plain HTTP/1.1 over bash's /dev/tcp, without a fork per request (curl and jq
# cost a fork each, ~100 ms on a loaded 2-core machine: too coarse for a
# 300 ms lease). Every read is bounded (1 s). Sets CODE and BODY.
ask() {  # ask HOST METHOD PATH [BODY]
  CODE=000 BODY=""
  local req=${4:-} fd line len=0 t=$((${EPOCHREALTIME/./}/1000))
  SENT=$t
  { exec {fd}<>"/dev/tcp/${ASK[$1]}/$PORT"; } 2>/dev/null || return 1
  printf '%s %s HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$2" "$3" "${#req}" "$req" >&"$fd" 2>/dev/null
  if IFS= read -r -t 1 -u "$fd" line && [[ $line =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]]; then
    CODE=${BASH_REMATCH[1]}
    while IFS= read -r -t 1 -u "$fd" line && [[ $line != $'\r' ]]; do
      [[ ${line,,} =~ ^content-length:\ *([0-9]+) ]] && len=${BASH_REMATCH[1]}
    done
    ((len > 0)) && IFS= read -r -t 1 -N "$len" -u "$fd" BODY
  fi
  exec {fd}>&-
  [[ -n ${GH_MULTIHOST_TRACE:-} ]] && echo "$(( $((${EPOCHREALTIME/./}/1000)) - t_start )) $1 $3 $(( $((${EPOCHREALTIME/./}/1000)) - t )) ms $CODE ${BODY:0:60}" >>"$D/trace"
  [[ $CODE != 000 ]]
}
# ANS: "allow", "deny:RULE" (the first reason's rule) or "error".
decode() {
  if [[ $CODE == 200 && $BODY == '{"allow":true'* ]]; then ANS=allow
  elif [[ $CODE == 200 && $BODY =~ ^\{\"allow\":false,\"reasons\":\[\{\"rule\":\"([^\"]*)\" ]]; then
    ANS=deny:${BASH_REMATCH[1]}
  else ANS=error; fi
}
# The checks the cases use; each sets ANS.
check_import() {  # check_import HOST TOKEN
  ask "$1" POST /v1/authorize "{\"token\":\"$2\",\"action\":\"project.import\",\"workspace\":\"Production\"}"
  decode
}
check_toggle() {  # check_toggle HOST: may alice (workspace admin) create a token?
  ask "$1" POST /v1/authorize '{"user":"alice@acme.test","action":"token.create","workspace":"Development","params":{"lifetime_seconds":"1d"}}'
  decode
}
readyz() { ask "$1" GET /readyz; READY=$CODE; }

# ---- latency bookkeeping -------------------------------------------------------
declare -A LAT=()  # host -> space-separated latencies in ms
# wait_refused BOUND_MS T0_MS CHECK ARG HOST...: polls every host (round robin)
# until CHECK HOST ARG answers a denial other than store-unavailable; records
# now - T0 per host. Fails on a host still allowing after BOUND_MS.
wait_refused() {
  local bound=$1 t0=$2 check=$3 arg=$4; shift 4
  local -a pending=("$@")
  local deadline=$(( $((${EPOCHREALTIME/./}/1000)) + bound ))
  while ((${#pending[@]} > 0)); do
    local -a still=()
    local h
    for h in "${pending[@]}"; do
      $check "$h" "$arg"; local a=$ANS
      if [[ $a == deny:* && $a != deny:store-unavailable ]]; then
        LAT[$h]+="$(( $((${EPOCHREALTIME/./}/1000)) - t0 )) "
      elif [[ $a == allow ]] && (( SENT > t0 + STALE_MS )); then
        # The design's guarantee: a change committed at C is refused by C +
        # max staleness. This request left after the CLI had returned + the bound.
        die "$h allowed a request sent $(( SENT - t0 )) ms after the change's CLI returned" \
          "(--max-staleness-ms $STALE_MS)"
      else
        still+=("$h")
      fi
    done
    pending=("${still[@]}")
    ((${#pending[@]} == 0)) && break
    (( $((${EPOCHREALTIME/./}/1000)) > deadline )) && die "$check still not refused after ${bound} ms on: ${pending[*]}"
  done
}

# expect HOST WANT CHECK ARG: one answer, exactly as wanted.
expect() {
  $3 "$1" "$4"; local a=$ANS
  [[ $a == "$2" ]] || die "$3 on $1: expected $2, got $a"
}

stats() {  # stats "LATENCIES...": min / median / max
  sort -n | awk '{v[NR]=$1} END {if (NR==0) {print "none"; exit}
    printf "min %d ms, median %d ms, max %d ms (n=%d)\n", v[1], v[int((NR+1)/2)], v[NR], NR}'
}

# ---- the scenario -----------------------------------------------------------------
t_start=$((${EPOCHREALTIME/./}/1000)); phase() { echo "  [$(( $((${EPOCHREALTIME/./}/1000)) - t_start )) ms] $*"; }
setup_network || die "creating the namespaces and the bridge failed"
setup_postgres || die "PostgreSQL did not start on the db host"
phase "network and PostgreSQL up"

cli init --org Acme --owner owner@acme.test >/dev/null || die "gatehouse init"
cli user add alice@acme.test --org-role contributor >/dev/null || die "user add"
cli workspace create Production --type shared >/dev/null || die "workspace create"
cli workspace create Development --type shared >/dev/null || die "workspace create"
cli member add alice@acme.test --workspace Development --role admin >/dev/null || die "member add"
cli settings set workspace-admins-can-create-tokens true >/dev/null || die "settings set"
cli apiuser create importer --workspace Production --workspace-role contributor >/dev/null ||
  die "apiuser create"
cli apiuser create doomed --workspace Production --workspace-role contributor >/dev/null ||
  die "apiuser create"

declare -A TOK_ID=() TOK=()
new_token() {  # new_token NAME APIUSER
  local out; out=$(cli token create --apiuser "$2" --name "$1" --expires-in 30d --json) ||
    die "token create $1"
  TOK[$1]=$(jq -r .token <<<"$out"); TOK_ID[$1]=$(jq -r .id <<<"$out")
  [[ ${TOK[$1]} == gat_* && -n ${TOK_ID[$1]} ]] || die "token create $1: unexpected output: $out"
}
new_token live importer
for n in r1 r2 r3 r4 partition notify; do new_token "$n" importer; done
new_token doomed doomed

phase "store populated by the CLI"
for h in "${SIDECARS[@]}"; do start_sidecar "$h"; done
start_sidecar n1 --feed-notify off
ALL=("${SIDECARS[@]}" n1)
for h in "${ALL[@]}"; do
  deadline=$(( $((${EPOCHREALTIME/./}/1000)) + 10000 ))
  until readyz "$h"; [[ $READY == 200 ]]; do
    kill -0 "${PID[$h]}" 2>/dev/null || die "gatehoused on $h exited"
    (( $((${EPOCHREALTIME/./}/1000)) > deadline )) && die "gatehoused on $h not ready after 10 s"
    sleep 0.05
  done
  expect "$h" allow check_import "${TOK[live]}"
  expect "$h" allow check_import "${TOK[doomed]}"
  expect "$h" allow check_toggle -
done
echo "setup: $(( $((${EPOCHREALTIME/./}/1000)) - t_start )) ms (5 hosts + bridge, PostgreSQL, 4 sidecars)"

# Benchmark mode (bench/multihost.sh): GH_MULTIHOST_BENCH=N revocations, each
# of a token every sidecar host has been seen to allow, commit -> refusal
# measured on s1..s3; prints p50/p99/max and stops (no cases run).
if [[ -n ${GH_MULTIHOST_BENCH:-} ]]; then
  n=$GH_MULTIHOST_BENCH
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "GH_MULTIHOST_BENCH must be a positive count, not '$n'"
  LAT=()
  for ((i = 1; i <= n; i++)); do
    new_token "b$i" importer
    for h in "${SIDECARS[@]}"; do
      deadline=$(( $((${EPOCHREALTIME/./}/1000)) + 2000 ))
      until check_import "$h" "${TOK[b$i]}"; [[ $ANS == allow ]]; do
        (( $((${EPOCHREALTIME/./}/1000)) > deadline )) && die "$h never allowed new token b$i"
      done
    done
    if [[ -n ${GH_MULTIHOST_PROBE:-} ]]; then
      # One compiled poller per host, polling (a request every 1 ms on a
      # keep-alive connection) from before the revocation: no shell loop's own
      # latency in the figure. Each prints when the first refusal arrived.
      body="{\"token\":\"${TOK[b$i]}\",\"action\":\"project.import\",\"workspace\":\"Production\"}"
      pids=()
      for h in "${SIDECARS[@]}"; do
        "$GH_MULTIHOST_PROBE" --host "${ASK[$h]}" --port "$PORT" --until-refused --deadline-s 5 \
          --method POST --path /v1/authorize --header 'Content-Type: application/json' \
          --body "$body" >"$D/refused.$h" &
        pids+=($!)
      done
      cli token revoke "${TOK_ID[b$i]}" >/dev/null || die "token revoke b$i"
      t0us=${EPOCHREALTIME/./}
      for k in "${!pids[@]}"; do
        h=${SIDECARS[$k]}
        wait "${pids[$k]}" || die "$h never refused revoked token b$i"
        at=$(sed -n 's/^refused_at_unix_ms=//p' "$D/refused.$h")
        # A refusal before the CLI returned (after its commit) counts as 0.
        LAT[$h]+="$(awk -v a="$at" -v t="$t0us" 'BEGIN {d = a - t / 1000; printf "%d", d < 0 ? 0 : d + 0.5}') "
      done
    else
      cli token revoke "${TOK_ID[b$i]}" >/dev/null || die "token revoke b$i"
      t0=$((${EPOCHREALTIME/./}/1000))
      wait_refused 2000 "$t0" check_import "${TOK[b$i]}" "${SIDECARS[@]}"
    fi
  done
  pct() {  # pct: p50 / p99 / max of the numbers on stdin
    sort -n | awk '{v[NR]=$1} END {p50=v[int(NR*0.50+0.999)]; p99=v[int(NR*0.99+0.999)];
      printf "p50 %d ms, p99 %d ms, max %d ms (n=%d)\n", p50, p99, v[NR], NR}'
  }
  if [[ -n ${GH_MULTIHOST_PROBE:-} ]]; then how="one poller per host, a request every 1 ms on a keep-alive connection"
  else how="hosts polled round robin by this script"; fi
  echo "commit -> refusal over $n revocations (CLI returned -> first refused answer; $how):"
  all=""
  for h in "${SIDECARS[@]}"; do
    echo "  $h: $(tr ' ' '\n' <<<"${LAT[$h]}" | grep . | pct)"
    all+="${LAT[$h]}"
  done
  echo "  all hosts: $(tr ' ' '\n' <<<"$all" | grep . | pct)"
  exit 0
fi

# (1) Changes on the CLI host are refused on every sidecar host.
for n in r1 r2 r3 r4; do
  cli token revoke "${TOK_ID[$n]}" >/dev/null || die "token revoke $n"
  t0=$((${EPOCHREALTIME/./}/1000))
  wait_refused 2000 "$t0" check_import "${TOK[$n]}" "${SIDECARS[@]}"
done
cli apiuser delete doomed >/dev/null || die "apiuser delete"
t0=$((${EPOCHREALTIME/./}/1000))
wait_refused 2000 "$t0" check_import "${TOK[doomed]}" "${SIDECARS[@]}"
cli settings set workspace-admins-can-create-tokens false >/dev/null || die "settings set false"
t0=$((${EPOCHREALTIME/./}/1000))
wait_refused 2000 "$t0" check_toggle - "${SIDECARS[@]}"
for h in "${SIDECARS[@]}"; do expect "$h" allow check_import "${TOK[live]}"; done
echo "case 1 ok: revocations, an API-user deletion and the toggle off refused on ${SIDECARS[*]}"

# (4) NOTIFY off: the heartbeat alone carries the change.
lat_before=${LAT[n1]:-}
cli token revoke "${TOK_ID[notify]}" >/dev/null || die "token revoke notify"
t0=$((${EPOCHREALTIME/./}/1000))
wait_refused $(( HEARTBEAT_MS + MARGIN_MS )) "$t0" check_import "${TOK[notify]}" n1
expect n1 allow check_import "${TOK[live]}"
echo "case 4 ok: --feed-notify off refused a revocation after $(( ${LAT[n1]#"$lat_before"} )) ms" \
  "(heartbeat $HEARTBEAT_MS ms)"

# (2) Partition s2 by unplugging its bridge port.
ip -n br link set p-s2 nomaster || die "unplugging s2"
t0=$((${EPOCHREALTIME/./}/1000))
deadline=$(( t0 + STALE_MS + MARGIN_MS ))
first_deny=""
while :; do
  check_import s2 "${TOK[live]}"; a=$ANS; readyz s2; r=$READY
  [[ $a == deny:store-unavailable && -z $first_deny ]] && first_deny=$(( $((${EPOCHREALTIME/./}/1000)) - t0 ))
  [[ $a == deny:store-unavailable && $r == 503 ]] && break
  (( $((${EPOCHREALTIME/./}/1000)) > deadline )) &&
    die "partitioned s2 still serving $(( STALE_MS + MARGIN_MS )) ms after the unplug (authorize: $a, /readyz: $r)"
  sleep 0.01
done
echo "case 2: partitioned s2 denies (store-unavailable) after ${first_deny} ms, /readyz 503 after $(( $((${EPOCHREALTIME/./}/1000)) - t0 )) ms" \
  "(bound $STALE_MS ms)"
cli token revoke "${TOK_ID[partition]}" >/dev/null || die "token revoke during the partition"
t0=$((${EPOCHREALTIME/./}/1000))
wait_refused 2000 "$t0" check_import "${TOK[partition]}" s1 s3
for h in s1 s3; do expect "$h" allow check_import "${TOK[live]}"; done
expect s2 deny:store-unavailable check_import "${TOK[live]}"
ip -n br link set p-s2 master br0 || die "plugging s2 back"
t0=$((${EPOCHREALTIME/./}/1000))
deadline=$(( t0 + 10000 ))
while :; do
  check_import s2 "${TOK[live]}"; a=$ANS
  [[ $a == allow ]] && break
  [[ $a == deny:store-unavailable ]] || die "s2 during the heal: $a"
  (( $((${EPOCHREALTIME/./}/1000)) > deadline )) && die "s2 not serving 10 s after the heal"
  sleep 0.01
done
healed=$(( $((${EPOCHREALTIME/./}/1000)) - t0 ))
check_import s2 "${TOK[partition]}"; a=$ANS
[[ $a == deny:* && $a != deny:store-unavailable ]] ||
  die "s2 after the heal answers $a for the token revoked during the partition"
readyz s2; [[ $READY == 200 ]] || die "s2 serves but /readyz is not 200"
echo "case 2 ok: s1/s3 served throughout; s2 serving ${healed} ms after the heal and refuses" \
  "the token revoked meanwhile"

# (3) The database host's postmaster killed with SIGKILL, then restarted.
kill -KILL "$PG_PID" || die "killing the postmaster"
t0=$((${EPOCHREALTIME/./}/1000))
deadline=$(( t0 + STALE_MS + MARGIN_MS ))
pending=("${ALL[@]}")
while ((${#pending[@]} > 0)); do
  still=()
  last=""
  for h in "${pending[@]}"; do
    check_import "$h" "${TOK[live]}"; a=$ANS; readyz "$h"; r=$READY
    [[ $a == deny:store-unavailable && $r == 503 ]] || { still+=("$h"); last+=" $h: $a, /readyz $r;"; }
  done
  pending=("${still[@]}")
  ((${#pending[@]} == 0)) && break
  (( $((${EPOCHREALTIME/./}/1000)) > deadline )) && die "still serving $(( STALE_MS + MARGIN_MS )) ms after the kill:$last"
  sleep 0.01
done
echo "case 3: every sidecar denies (store-unavailable) $(( $((${EPOCHREALTIME/./}/1000)) - t0 )) ms after SIGKILL"
# The orphaned backends notice the postmaster's death and exit; only then
# does the shared memory segment free for a new postmaster.
deadline=$(( $((${EPOCHREALTIME/./}/1000)) + 10000 ))
while pgrep -u postgres >/dev/null; do  # this PID namespace's processes only
  (( $((${EPOCHREALTIME/./}/1000)) > deadline )) && die "PostgreSQL backends still alive 10 s after the postmaster died"
  sleep 0.05
done
pg_start || die "PostgreSQL did not restart"
t0=$((${EPOCHREALTIME/./}/1000))
deadline=$(( t0 + 10000 ))
pending=("${ALL[@]}")
while ((${#pending[@]} > 0)); do
  still=()
  for h in "${pending[@]}"; do
    check_import "$h" "${TOK[live]}"; a=$ANS; readyz "$h"
    [[ $a == allow && $READY == 200 ]] || still+=("$h")
  done
  pending=("${still[@]}")
  ((${#pending[@]} == 0)) && break
  (( $((${EPOCHREALTIME/./}/1000)) > deadline )) && die "not serving 10 s after PostgreSQL restarted: ${pending[*]}"
  sleep 0.02
done
restarted=$(( $((${EPOCHREALTIME/./}/1000)) - t0 ))
for h in "${ALL[@]}"; do
  for n in r1 partition notify doomed; do
    check_import "$h" "${TOK[$n]}"; a=$ANS
    [[ $a == deny:* && $a != deny:store-unavailable ]] || die "$h after the restart: $n answers $a"
  done
  kill -0 "${PID[$h]}" 2>/dev/null || die "gatehoused on $h died"
done
echo "case 3 ok: every sidecar serving ${restarted} ms after the restart; revoked tokens still refused"

echo "commit -> refusal latency (CLI command returned -> first refused answer; the hosts polled round robin):"
for h in "${SIDECARS[@]}"; do
  echo "  $h: $(tr ' ' '\n' <<<"${LAT[$h]}" | grep . | stats)"
done
echo "PASS multihost ($(( $((${EPOCHREALTIME/./}/1000)) - t_start )) ms)"
