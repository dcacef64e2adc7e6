#!/usr/bin/env bash
# bench/fuzz.sh [SECONDS] [TARGET...]: runs the libFuzzer targets for longer
# than CI does (default 300 s each) and prints executions and coverage per
# target. Builds them (clang) into build-fuzz. New findings are left as
# ./crash-* files: add each to tests/fuzz/corpus/<target>/ as a regression case.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}; shift || true
targets=${*:-$(cd tests/fuzz && ls fuzz_*.cc | sed 's/\.cc$//')}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGATEHOUSE_FUZZ=ON -DGATEHOUSE_BUILD_BENCH=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build build-fuzz -j "$(nproc)" --target $targets
printf '%-14s %12s %10s %8s\n' target executions exec/s cov
for t in $targets; do
  name=${t#fuzz_}
  out=$(tests/fuzz/run_fuzzer.sh "build-fuzz/tests/fuzz/$t" "tests/fuzz/corpus/$name" "$secs" 2>&1 || true)
  runs=$(grep -o 'number_of_executed_units: [0-9]*' <<<"$out" | awk '{print $2}')
  rate=$(grep -o 'average_exec_per_sec: [0-9]*' <<<"$out" | awk '{print $2}')
  cov=$(grep -o 'cov: [0-9]*' <<<"$out" | tail -n 1 | awk '{print $2}')
  printf '%-14s %12s %10s %8s\n' "$name" "${runs:-?}" "${rate:-?}" "${cov:-?}"
  grep -q 'invariant failed\|ERROR: ' <<<"$out" && echo "  $name: FINDING (see crash-fuzz_$name-*)"
done
