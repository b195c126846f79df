#!/usr/bin/env bash
# The README's test command: installs what is missing, then builds and runs every
# test three ways, and ends with one line "N passed, N failed" over all of them.
#   build/        default build, warnings are errors, every Criterion suite
#                 and bench/run --quick (suite bench: the benchmark harness works, ~1.5 min)
#   build-asan/   the same suites under AddressSanitizer + UndefinedBehaviorSanitizer
#   build-tsan/   the concurrency suites (suite "threads") under ThreadSanitizer
# Exits non-zero when anything failed or did not build.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

status=0
run_build() { # dir, meson test args..., then -- setup args
  local dir=$1; shift
  local test_args=() setup_args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do test_args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  setup_args=("$@")
  echo "=== $dir: meson setup ${setup_args[*]}"
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" -Dtests=enabled "${setup_args[@]}" >"$dir.setup.log" 2>&1 \
      || { cat "$dir.setup.log"; return 1; }
  fi
  rm -f "$dir/meson-logs/testlog.json"
  ninja -C "$dir" >"$dir.build.log" 2>&1 || { tail -n 60 "$dir.build.log"; return 1; }
  meson test -C "$dir" --print-errorlogs "${test_args[@]}" || return 1
}

run_build build || status=1
run_build build-asan -- -Db_sanitize=address,undefined -Db_lundef=false \
  -Dc_args=-fno-sanitize-recover=all || status=1
run_build build-tsan --suite threads -- -Db_sanitize=thread -Db_lundef=false || status=1

python3 scripts/count-results.py build build-asan build-tsan || status=1
exit $status
