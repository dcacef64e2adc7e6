#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, run and test
# Gatehouse. Only Debian packages; nothing else is downloaded. Run as root.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libyaml-cpp-dev libboost-dev libboost-program-options-dev libcpp-httplib-dev
  libsqlite3-dev libssl-dev nlohmann-json3-dev
  postgresql-15 libpq-dev  # the PostgreSQL store: libpq to build, a throwaway server in tests
  iproute2 jq  # the multi-host test: hosts as network namespaces (tests/e2e/multihost.sh)
  libgtest-dev libgmock-dev libbenchmark-dev
  nginx-light caddy wrk sqlite3 curl openssl
  clang libclang-rt-14-dev
  chromium  # the headless browser the HTML review page is tested in
  prometheus man-db bash-completion systemd git
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # nginx-light and caddy must not grab port 80 as services: tests start their own.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
