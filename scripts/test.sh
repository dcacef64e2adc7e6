#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test
# (unit, integration, end-to-end against real processes and real nginx).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j 2 --timeout 600
