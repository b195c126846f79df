/*
 * cache_demo: a small program that exercises the cache the way a request handler
 * does (read-aside with a load token, hits reporting saved time, an invalidation
 * refusing a stale add) and prints each step. The README's main command runs it until
 * the example server lands.
 */
#include <scache/scache.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what, scache_err err)
{
	fprintf(stderr, "cache_demo: %s: %s\n", what, scache_strerror(err));
	return 1;
}

int main(void)
{
	scache_cache *cache;
	scache_cache_config cfg = {.min_ttl_ms = 1000, .max_ttl_ms = 5000, .max_bytes = 1 << 20};
	scache_err err = scache_cache_new(&cfg, &cache);
	if (err)
		return fail("scache_cache_new", err);

	char key[128];
	scache_id_encode("db.users.id", 11, "42", 2, key, sizeof key);
	printf("data ID of (db.users.id, 42): %s\n", key);

	scache_value v;
	err = scache_cache_get(cache, key, strlen(key), &v);
	printf("get -> %s (a miss: load from the database)\n", scache_strerror(err));

	uint64_t token = scache_cache_begin_load(cache); /* before the load */
	const char *row = "{\"id\":42,\"name\":\"Ada\"}";
	scache_add_opts opts = {.token = token, .saved_ns = 3000000};
	err = scache_cache_add(cache, key, strlen(key), row, strlen(row), &opts);
	printf("add (load took 3 ms) -> %s\n", scache_strerror(err));

	if (scache_cache_get(cache, key, strlen(key), &v) == SCACHE_OK) {
		printf("get -> hit: %.*s, saves %.1f ms\n", (int)v.len, (const char *)v.data,
		       (double)v.saved_ns / 1e6);
		scache_value_release(&v);
	}

	token = scache_cache_begin_load(cache); /* a slow load begins... */
	scache_cache_invalidate(cache, key, strlen(key), NULL); /* ...the row changes */
	opts.token = token;
	err = scache_cache_add(cache, key, strlen(key), row, strlen(row), &opts);
	printf("add of a load that began before the invalidation -> %s\n", scache_strerror(err));

	scache_cache_stats st;
	scache_cache_stats_get(cache, &st);
	printf("stats: entries=%llu hits=%llu misses=%llu adds=%llu refused=%llu invalidations=%llu\n",
	       (unsigned long long)st.entries, (unsigned long long)st.hits,
	       (unsigned long long)st.misses, (unsigned long long)st.adds,
	       (unsigned long long)st.refused_adds, (unsigned long long)st.invalidations);
	scache_cache_free(cache);
	return err == SCACHE_ESTALE ? 0 : 1;
}
