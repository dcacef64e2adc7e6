#!/usr/bin/env bash
# The second CI step: the whole test suite again under AddressSanitizer,
# UndefinedBehaviorSanitizer and LeakSanitizer (any report fails), then each
# libFuzzer target for a bounded time (GATEHOUSE_FUZZ_SECONDS, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
BUILD_DIR=build-asan ./scripts/build.sh -DGATEHOUSE_SANITIZE=ON -DGATEHOUSE_BUILD_BENCH=OFF
# The first step ran the 60 s soak and the 300 sidecar kills at full length;
# here they look for memory errors on the same paths, so shorter runs do.
(cd build-asan && GATEHOUSE_SOAK_SECONDS=${GATEHOUSE_SOAK_SECONDS:-20} \
  GATEHOUSE_SIDECAR_KILLS=${GATEHOUSE_SIDECAR_KILLS:-100} \
  ctest --output-on-failure -j 2 --timeout 900)

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGATEHOUSE_FUZZ=ON -DGATEHOUSE_BUILD_BENCH=OFF \
  -DGATEHOUSE_FUZZ_SECONDS="${GATEHOUSE_FUZZ_SECONDS:-20}" >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.cc | sed 's/\.cc$//')
# shellcheck disable=SC2086
cmake --build build-fuzz -j "$(nproc)" --target $targets
(cd build-fuzz && ctest --output-on-failure -j 2 -R '^fuzz\.')
