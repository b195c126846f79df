#!/usr/bin/env bash
# Installs what libscache needs on a fresh Debian 12 machine (as root, or with sudo
# when not root), then kinesalite (the local Kinesis) and dynalite (the local DynamoDB) into
# .deps/ of the project.
# Installs only what is missing: a second run does nothing and is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(libmicrohttpd-dev libcurl4-openssl-dev libjson-c-dev uthash-dev libcriterion-dev
      libsqlite3-dev libssl-dev meson ninja-build pkg-config gcc curl sqlite3 python3
      nodejs npm
      wrk # HTTP load for bench/bench_http (the hit-path table)
      gnuplot-nox # the benchmark's charts (bench/run)
      clang libclang-rt-14-dev # libFuzzer for the fuzz targets (tests/fuzz)
      valgrind # memcheck over a short run of the example server
      awscli) # AWS CLI v2 (Debian 12: 2.9.19), a client not written here, for tests
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from elsewhere than Debian (they do on our machines): keep them.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
  read -r -a missing <<<"${missing[*]:-}"
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

KINESALITE_VERSION=3.3.3
if [ ! -f .deps/node_modules/kinesalite/cli.js ]; then
  echo "install-deps: installing kinesalite@$KINESALITE_VERSION into .deps/" >&2
  mkdir -p .deps
  npm install --prefix .deps --no-audit --no-fund --loglevel=error "kinesalite@$KINESALITE_VERSION" >/dev/null
fi

# dynalite: the local DynamoDB of the DynamoDB tests (tests/dynalite.c)
DYNALITE_VERSION=4.0.0
if [ ! -f .deps/node_modules/dynalite/cli.js ]; then
  echo "install-deps: installing dynalite@$DYNALITE_VERSION into .deps/" >&2
  mkdir -p .deps
  npm install --prefix .deps --no-audit --no-fund --loglevel=error "dynalite@$DYNALITE_VERSION" >/dev/null
fi

# kinesis-mock (npm kinesis-local): the local Kinesis with enhanced fan-out
# (RegisterStreamConsumer, SubscribeToShard), for the push source's tests
KINESIS_MOCK_VERSION=0.6.2
if [ ! -f .deps/node_modules/kinesis-local/package.json ]; then
  echo "install-deps: installing kinesis-local@$KINESIS_MOCK_VERSION into .deps/" >&2
  mkdir -p .deps
  npm install --prefix .deps --no-audit --no-fund --loglevel=error "kinesis-local@$KINESIS_MOCK_VERSION" >/dev/null
fi
