#!/usr/bin/env bash
# The shared library exports exactly the functions the public headers mark SCACHE_EXTERN:
# nothing private leaves it, and nothing public is missing. Prints the differences.
set -euo pipefail
build=$1 src=$2
so=$(find "$build/lib" -maxdepth 1 -name 'libscache.so.*.*.*' -type f | head -n 1)
[ -n "$so" ] || { echo "no libscache.so.* under $build/lib"; exit 1; }
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TtWDBR]$/ {print $3}' | sort -u)
declared=$( { cat "$src"/include/scache/*.h "$src"/include/scache/*.h.in; } \
  | grep -oE '^SCACHE_EXTERN [^(]*[ *]scache_[a-z0-9_]+\(' \
  | grep -oE 'scache_[a-z0-9_]+\($' | tr -d '(' | sort -u)
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
[ -z "$extra" ] || echo "exported but not public: $(echo $extra)"
[ -z "$missing" ] || echo "public but not exported: $(echo $missing)"
[ -z "$extra$missing" ] || exit 1
echo "$(echo "$exported" | wc -l) exported functions, all public"
soname=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
echo "soname $soname"
