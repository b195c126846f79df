#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz/ (record, id, kinesis, ddb, users_body), each
# for SECONDS (default 60), and prints one line per target: executions, executions per
# second, corpus size. The clang build (-Dfuzzing=true, ASan + UBSan, every library file
# instrumented with -fsanitize=fuzzer-no-link) goes to BUILDDIR (default build-fuzz/);
# each target starts from its seed corpus (tests/fuzz/corpus/<target>/, never written)
# and keeps what it finds in BUILDDIR/corpus-<target>/. A crash is kept as
# BUILDDIR/crash-<target>-*: add it to the seed corpus as a regression once fixed.
#
#   scripts/fuzz.sh [-t SECONDS] [-b BUILDDIR] [-q] [TARGET...]
#   -q  quick: 7 seconds each, the test command's run (meson test fuzz_quick); exits 77
#       (skipped, with the reason) when clang or its libFuzzer runtime is missing.
# Exits 1 when a target crashed, leaked, or did not build.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=60 dir=build-fuzz quick=0
while getopts "t:b:q" opt; do
  case $opt in
    t) secs=$OPTARG ;;
    b) dir=$OPTARG ;;
    q) quick=1 secs=7 ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(record id kinesis ddb users_body)

skip() { echo "fuzz: skipped: $*"; [ $quick = 1 ] && exit 77; exit 1; }
command -v clang >/dev/null || skip "clang is not installed (scripts/install-deps.sh)"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; return (int)n * 0; }' \
  >"/tmp/fuzzprobe.$$.c"
clang -fsanitize=fuzzer,address,undefined -o "/tmp/fuzzprobe.$$" "/tmp/fuzzprobe.$$.c" \
  >/dev/null 2>&1
probe=$?
rm -f "/tmp/fuzzprobe.$$" "/tmp/fuzzprobe.$$.c"
[ $probe = 0 ] || skip "clang cannot link -fsanitize=fuzzer (libclang-rt-14-dev missing?)"

if [ ! -f "$dir/build.ninja" ]; then
  CC=clang meson setup "$dir" -Dtests=enabled -Dfuzzing=true -Dwerror=false \
    -Db_sanitize=address,undefined -Db_lundef=false \
    "-Dc_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all" >"$dir.setup.log" 2>&1 \
    || { cat "$dir.setup.log"; echo "fuzz: meson setup $dir failed"; exit 1; }
fi
exes=()
for t in "${targets[@]}"; do exes+=("tests/fuzz/fuzz_$t"); done
ninja -C "$dir" "${exes[@]}" >"$dir.build.log" 2>&1 \
  || { tail -n 40 "$dir.build.log"; echo "fuzz: build failed"; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
printf '%-11s %8s %12s %10s %8s  %s\n' target seconds executions exec/s corpus result
for t in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/$t work=$dir/corpus-$t log=$dir/fuzz-$t.log
  mkdir -p "$work"
  "$dir/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -error_exitcode=1 -print_final_stats=1 -artifact_prefix="$dir/crash-$t-" \
    "$work" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  corpus=$(find "$work" -type f | wc -l)
  result=ok
  if [ $rc != 0 ]; then
    result="FAILED (exit $rc, see $log)"
    status=1
  fi
  printf '%-11s %8s %12s %10s %8s  %s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" "$corpus" \
    "$result"
  if [ $rc != 0 ]; then
    grep -E "ERROR|invariant failed|SUMMARY|Test unit written" "$log" | head -n 8
  fi
done
exit $status
