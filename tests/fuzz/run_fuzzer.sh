#!/usr/bin/env bash
# run_fuzzer.sh BINARY SEED_CORPUS [SECONDS]: runs a fuzz target for a bounded
# time. New inputs go to a scratch folder; the seed corpus is only read. A
# crash or a failed invariant leaves its input in ./crash-* and fails the test.
set -euo pipefail
bin=$1; seeds=$2; secs=${3:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$PWD/crash-$(basename "$bin")-" "$work" "$seeds" 2>&1 |
  sed '/Recommended dictionary/,/End of recommended dictionary/d' | tail -n 25
