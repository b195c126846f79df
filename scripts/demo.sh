#!/usr/bin/env bash
# The README's main command. Installs what is missing, builds, and runs the cache
# demo: a miss, a load, a hit with its saved time, and a stale add refused after an
# invalidation. (The middleware issue turns this into the two-server demo.)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build -Dtests=enabled >/dev/null
ninja -C build >/dev/null
./build/example_server/cache_demo
