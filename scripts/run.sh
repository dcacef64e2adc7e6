#!/usr/bin/env bash
# The run command: installs what is missing, builds, creates a demo store if
# there is none (./gatehouse.db: organization Demo, the default policy), and
# starts the sidecar on 127.0.0.1:7878.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
G=./build/cli/gatehouse
export GATEHOUSE_STORE=${GATEHOUSE_STORE:-$PWD/gatehouse.db}
if [ ! -f "$GATEHOUSE_STORE" ]; then
  ./scripts/demo.sh
fi
if [ -x ./build/sidecar/gatehoused ]; then
  echo "gatehoused: listening on ${GATEHOUSE_LISTEN:-127.0.0.1:7878} (store $GATEHOUSE_STORE); Ctrl-C stops it"
  exec ./build/sidecar/gatehoused --store "$GATEHOUSE_STORE" --listen "${GATEHOUSE_LISTEN:-127.0.0.1:7878}"
fi
$G policy matrix
