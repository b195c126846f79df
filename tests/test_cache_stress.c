/* Concurrency: several threads add, get, invalidate, sweep and flush for a few seconds
 * over a small key space with a tight memory bound. Each key has a "database" version;
 * an invalidator bumps the version, then invalidates (what a writer plus the stream
 * do); a loader takes a token, reads the version, then adds. Invariants checked:
 *  - a value read is never torn and always names its own key;
 *  - once the threads stop, every cached value holds its key's current version (no
 *    stale add was accepted);
 *  - byte and entry accounting equal what is actually cached.
 * This suite ("threads") also runs under ThreadSanitizer. */
#ifdef SCACHE_STANDALONE_TESTS
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif
#include <scache/cache.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#define KEYS 256
#define THREADS 4
#define SECONDS 3

static scache_cache *cache;
static _Atomic uint64_t db_version[KEYS];
static _Atomic int stop;
static _Atomic uint64_t clock_ns;
static _Atomic uint64_t torn, loads, refused;

/* The clock advances 1 ms per call of the sweeper, so entries expire while threads run. */
static uint64_t test_clock(void *arg)
{
	(void)arg;
	return atomic_load(&clock_ns);
}

static void key_of(int k, char *buf, size_t size)
{
	snprintf(buf, size, "id=%d&s=db.stress.id&t=data.ID", k);
}

static void check_value(int k, const scache_value *v)
{
	char want[64];
	int n = snprintf(want, sizeof want, "key=%d;", k);
	if (v->len < (size_t)n || memcmp(v->data, want, (size_t)n) != 0)
		atomic_fetch_add(&torn, 1);
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
	char key[64], val[160];
	while (!atomic_load(&stop)) {
		int k = rand_r(&seed) % KEYS;
		key_of(k, key, sizeof key);
		int op = rand_r(&seed) % 100;
		if (op < 60) { /* read-aside: get, on a miss load and add */
			scache_value v;
			if (scache_cache_get(cache, key, strlen(key), &v) == SCACHE_OK) {
				check_value(k, &v);
				scache_value_release(&v);
				continue;
			}
			scache_add_opts o = {.token = scache_cache_begin_load(cache), .saved_ns = 1000};
			uint64_t version = atomic_load(&db_version[k]);
			/* values of varying length so the bound and the accounting are exercised */
			int n = snprintf(val, sizeof val, "key=%d;version=%llu;%.*s", k,
			                 (unsigned long long)version, rand_r(&seed) % 100,
			                 "padding.padding.padding.padding.padding.padding.padding.padding."
			                 "padding.padding.padding.padding.padding.");
			scache_err err = scache_cache_add(cache, key, strlen(key), val, (size_t)n, &o);
			atomic_fetch_add(&loads, 1);
			if (err == SCACHE_ESTALE)
				atomic_fetch_add(&refused, 1);
			else if (err != SCACHE_OK)
				atomic_fetch_add(&torn, 1000000); /* no other error is possible here */
		} else if (op < 90) { /* a writer changes the row, then the invalidation lands */
			atomic_fetch_add(&db_version[k], 1);
			scache_cache_invalidate(cache, key, strlen(key), NULL);
		} else if (op < 99) {
			scache_cache_sweep(cache, 16);
		} else if (rand_r(&seed) % 50 == 0) {
			scache_cache_flush(cache, NULL);
		}
	}
	return NULL;
}

static void *ticker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		atomic_fetch_add(&clock_ns, 1000000);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void run(scache_lock_kind lock, unsigned stripes)
{
	scache_cache_config cfg = {.min_ttl_ms = 1, .max_ttl_ms = 20, .max_bytes = 16 * 1024,
	                           .stripes = stripes, .lock = lock, .clock = test_clock,
	                           .seed = 3};
	atomic_store(&clock_ns, 1000000000);
	atomic_store(&stop, 0); /* the standalone runner runs tests in one process */
	atomic_store(&torn, 0);
	atomic_store(&loads, 0);
	atomic_store(&refused, 0);
	for (int k = 0; k < KEYS; k++)
		atomic_store(&db_version[k], 0);
	cr_assert_eq(scache_cache_new(&cfg, &cache), SCACHE_OK);
	pthread_t th[THREADS], tick;
	for (uintptr_t i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, worker, (void *)i), 0);
	cr_assert_eq(pthread_create(&tick, NULL, ticker, NULL), 0);
	struct timespec ts = {SECONDS, 0};
	nanosleep(&ts, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_join(tick, NULL);

	cr_assert_eq(atomic_load(&torn), 0, "torn or foreign values were read");
	cr_assert_gt(atomic_load(&loads), 1000, "the workers ran");
	cr_assert_gt(atomic_load(&refused), 0, "the race was exercised");

	/* Quiescent: every cached value is current, and the accounting is exact. */
	uint64_t entries = 0, bytes = 0;
	char key[64];
	for (int k = 0; k < KEYS; k++) {
		key_of(k, key, sizeof key);
		scache_value v;
		if (scache_cache_get(cache, key, strlen(key), &v) != SCACHE_OK)
			continue;
		char want[64];
		int n = snprintf(want, sizeof want, "key=%d;version=%llu;", k,
		                 (unsigned long long)atomic_load(&db_version[k]));
		cr_assert_eq(memcmp(v.data, want, (size_t)n), 0, "stale value cached for key %d: %.*s",
		             k, (int)v.len, (const char *)v.data);
		entries++;
		bytes += scache_cache_entry_cost(strlen(key), v.len);
		scache_value_release(&v);
	}
	/* entries that expired but are not swept still count: sweep them all first */
	scache_cache_stats st;
	scache_cache_sweep(cache, 0);
	scache_cache_stats_get(cache, &st);
	cr_assert_eq(st.entries, entries);
	cr_assert_eq(st.bytes, bytes);
	cr_assert_leq(st.bytes, 16 * 1024);
	cr_assert_gt(st.evictions, 0, "the memory bound was exercised");
	cr_assert_gt(st.expirations, 0, "expiry was exercised");
	scache_cache_free(cache);
}

Test(stress, rwlock_stripes_keep_every_invariant, .timeout = 60)
{
	run(SCACHE_LOCK_RWLOCK, 8);
}

Test(stress, one_mutex_stripe_keeps_every_invariant, .timeout = 60)
{
	run(SCACHE_LOCK_MUTEX, 1);
}
