#!/usr/bin/env bash
# The second CI step: one clang build with AddressSanitizer,
# UndefinedBehaviorSanitizer, LeakSanitizer and libFuzzer's coverage on
# everything; in it, the whole test suite again (any report fails) and each
# libFuzzer target for a bounded time (GATEHOUSE_FUZZ_SECONDS, default 15 here).
# -O1 -g1: the sanitizers' recommended level, and under half the compile time
# of -O2 -g (CI's time goes mostly to compiling).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
CC=clang CXX=clang++ BUILD_DIR=build-hardening ./scripts/build.sh \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DGATEHOUSE_FUZZ=ON -DGATEHOUSE_BUILD_BENCH=OFF \
  -DGATEHOUSE_FUZZ_SECONDS="${GATEHOUSE_FUZZ_SECONDS:-15}"
# The first step ran the 60 s soak and the 300 sidecar kills at full length;
# here they look for memory errors on the same paths, so shorter runs do.
(cd build-hardening && GATEHOUSE_SOAK_SECONDS=${GATEHOUSE_SOAK_SECONDS:-20} \
  GATEHOUSE_SIDECAR_KILLS=${GATEHOUSE_SIDECAR_KILLS:-100} \
  ctest --output-on-failure -j 2 --timeout 900)
