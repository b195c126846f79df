#!/usr/bin/env bash
# Static checks of the library: cppcheck and clang-tidy over lib/ and tools/, using
# the compile commands of build/ (run the test command or `meson setup build` first).
# Prints what they find and exits non-zero if either finds anything. The clang static
# analyzer is left out: it cannot follow uthash's macros or reference counts and
# reports use-after-free where there is none (run it with --checks=clang-analyzer-*).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -f build/compile_commands.json ] || meson setup build >/dev/null
status=0
srcs=$(ls lib/*.c tools/*.c 2>/dev/null)
echo "== cppcheck"
cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
  --std=c11 --inline-suppr --suppress=missingIncludeSystem -I include -I lib $srcs || status=1
echo "== clang-tidy"
clang-tidy --quiet -p build \
  --checks='-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-assignment-in-if-condition,cert-err34-c,misc-redundant-expression' \
  --warnings-as-errors='*' $srcs 2>/dev/null || status=1
exit $status
