#!/usr/bin/env bash
# `meson install` yields a library another project can use through pkg-config:
# installs into a temporary root, builds a consumer with `pkg-config --cflags --libs
# libscache` against the shared library and another with --static, and runs both.
set -euo pipefail
build=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
meson install -C "$build" --destdir "$root" --quiet >/dev/null
pc=$(dirname "$(find "$root" -name libscache.pc | head -n 1)")
[ -n "$pc" ] || { echo "libscache.pc not installed"; exit 1; }
export PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$root
cat >"$root/consumer.c" <<'C'
#include <scache/scache.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	char key[64];
	scache_id_encode("db.table.id", 11, "12345", 5, key, sizeof key);
	scache_cache *c;
	if (scache_cache_new(NULL, &c) != SCACHE_OK)
		return 1;
	scache_add_opts o = {.token = scache_cache_begin_load(c)};
	scache_cache_add(c, key, strlen(key), "v", 1, &o);
	scache_value v;
	int hit = scache_cache_get(c, key, strlen(key), &v) == SCACHE_OK;
	scache_value_release(&v);
	scache_cache_free(c);
	/* the headers and the library loaded are the same version */
	if (scache_version() != SCACHE_VERSION_HEX ||
	    strcmp(scache_version_string(), SCACHE_VERSION_STRING) != 0)
		return 2;
	printf("%s %s\n", key, hit ? "hit" : "miss");
	return hit ? 0 : 1;
}
C
# The public headers include <microhttpd.h>: libmicrohttpd is a public requirement (its
# --cflags reach consumers); the others stay private.
[ "$(pkg-config --print-requires libscache | awk '{print $1}')" = libmicrohttpd ] ||
  { echo "Requires: $(pkg-config --print-requires libscache)"; exit 1; }
pkg-config --print-requires-private libscache | grep -q microhttpd &&
  { echo "libmicrohttpd is still in Requires.private"; exit 1; }
libdir=$(dirname "$(find "$root" -name 'libscache.so' | head -n 1)")
# shellcheck disable=SC2046
cc -std=c11 -o "$root/consumer" "$root/consumer.c" $(pkg-config --cflags --libs libscache)
out=$(LD_LIBRARY_PATH=$libdir "$root/consumer")
[ "$out" = "id=12345&s=db.table.id&t=data.ID hit" ] || { echo "shared: got '$out'"; exit 1; }
# The static archive, with its private requirements linked as shared libraries (their
# own static archives are not all packaged by Debian).
reqs=$( (pkg-config --print-requires libscache; pkg-config --print-requires-private libscache) |
  awk '{print $1}' | tr '\n' ' ')
# shellcheck disable=SC2046,SC2086
cc -std=c11 -o "$root/consumer-static" "$root/consumer.c" $(pkg-config --cflags libscache) \
  "$libdir/libscache.a" $(pkg-config --libs $reqs) -pthread
out=$("$root/consumer-static")
[ "$out" = "id=12345&s=db.table.id&t=data.ID hit" ] || { echo "static: got '$out'"; exit 1; }
echo "installed library, headers and libscache.pc work (shared and static)"
