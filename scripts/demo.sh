#!/usr/bin/env bash
# Creates the demo store (the README's walk-through): organization Demo with
# its owner, two shared workspaces for environment promotion, API users and
# one token each. Tokens are printed once here, and kept in demo-tokens.env
# (mode 0600) for the README's curl examples — a demo convenience only.
set -euo pipefail
cd "$(dirname "$0")/.."
G=./build/cli/gatehouse
export GATEHOUSE_STORE=${GATEHOUSE_STORE:-$PWD/gatehouse.db}
export GATEHOUSE_AS=owner@demo.test
$G init --org Demo --owner owner@demo.test
$G user add alice@demo.test --org-role contributor
$G workspace create Marketing-Development --type shared
$G workspace create Marketing-Production --type shared
$G member add alice@demo.test --workspace Marketing-Development --role admin
$G apiuser create dev-exporter --workspace Marketing-Development --workspace-role contributor
$G apiuser create prod-importer --workspace Marketing-Production --workspace-role contributor
$G apiuser create prod-viewer --workspace Marketing-Production --workspace-role viewer
umask 077
{
  echo "DEV_TOKEN=$($G token create --apiuser dev-exporter --name demo --expires-in 30d 2>/dev/null)"
  echo "PROD_TOKEN=$($G token create --apiuser prod-importer --name demo --expires-in 30d 2>/dev/null)"
  echo "VIEWER_TOKEN=$($G token create --apiuser prod-viewer --name demo --expires-in 30d 2>/dev/null)"
} > demo-tokens.env
echo "demo store $GATEHOUSE_STORE created; tokens (shown once) are in demo-tokens.env:"
cat demo-tokens.env
