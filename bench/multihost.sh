#!/usr/bin/env bash
# Commit -> refusal on every sidecar host (issue 11's target: p99 <= 100 ms
# over 1,000 revocations across three hosts). Runs tests/e2e/multihost.sh's
# sandbox (a database host, three sidecar hosts and a CLI host as network
# namespaces inside `unshare --net --mount --pid`; root, iproute2, jq and
# PostgreSQL 15 needed) in benchmark mode: N tokens, each revoked with the CLI
# on the CLI host once every sidecar allows it, the time from the CLI's return
# to the first refused answer recorded per host.
#
#   bench/multihost.sh [N] [BUILD_DIR]      # N defaults to 1000
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
build=${2:-$root/build}
# bench/probe --until-refused polls each host (when built: GATEHOUSE_BUILD_BENCH).
probe=$build/bench/probe
[[ -x $probe ]] || probe=""
GH_MULTIHOST_PROBE=$probe GH_MULTIHOST_TIMEOUT=$(( 120 + 5 * n )) GH_MULTIHOST_BENCH=$n exec "$root/tests/e2e/multihost.sh" \
  "$build/sidecar/gatehoused" "$build/cli/gatehouse" "$root/policies"
