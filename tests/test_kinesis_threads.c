/*
 * Concurrency of the stream: threads publish an invalidation each and then ask the
 * shared reader for a poll that began after the publish returned. Checked:
 *  - every caller finds its own key delivered when its sync returns (freshness);
 *  - every key is delivered exactly once (no loss, no duplicate);
 *  - callers share polls (fewer polls than calls).
 * Runs against kinesalite (started here, stopped at the end). This suite ("threads")
 * also runs under ThreadSanitizer, where it checks the single-flight locking.
 */
#ifdef SCACHE_STANDALONE_TESTS
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesalite.h"
#include "scache/scache.h"

#define THREADS 6
#define ROUNDS  25

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char *delivered[THREADS * ROUNDS * 2];
static size_t ndelivered;
static int overflow;

static void on_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < n; i++) {
		if (ndelivered < sizeof delivered / sizeof delivered[0])
			delivered[ndelivered++] = strndup(keys[i], lens[i]);
		else
			overflow = 1;
	}
	pthread_mutex_unlock(&mu);
}

static size_t count_of(const char *key)
{
	size_t c = 0;
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < ndelivered; i++)
		c += !strcmp(delivered[i], key);
	pthread_mutex_unlock(&mu);
	return c;
}

typedef struct worker {
	int index;
	scache_reader *reader;
	scache_publisher *publisher;
	int stale; /* syncs after which the caller's key was missing */
	int errors;
	int shared;
	char message[300];
} worker;

static void *work(void *arg)
{
	worker *w = arg;
	for (int i = 0; i < ROUNDS; i++) {
		char id[32], *key;
		size_t len;
		snprintf(id, sizeof id, "t%d-%d", w->index, i);
		if (scache_id_encode_alloc("db.t.id", 7, id, strlen(id), &key, &len)) {
			w->errors++;
			continue;
		}
		scache_publish_result res;
		if (scache_publish_keys(w->publisher, (const char *const *)&key, &len, 1, &res)) {
			snprintf(w->message, sizeof w->message, "publish: %s", res.message);
			w->errors++;
			free(key);
			continue;
		}
		scache_poll_info info;
		uint64_t since = scache_now_ns(NULL);
		if (scache_reader_sync(w->reader, since, 0, &info) != SCACHE_OK) {
			snprintf(w->message, sizeof w->message, "sync: %s", info.message);
			w->errors++;
		} else if (count_of(key) != 1) {
			w->stale++;
		}
		w->shared += info.shared;
		(void)scache_reader_fresh(w->reader, since);
		scache_reader_stats st;
		scache_reader_stats_get(w->reader, &st);
		free(key);
	}
	return NULL;
}

Test(stream_threads, concurrent_publishers_and_syncs_lose_nothing, .timeout = 120)
{
	kinesalite k;
	scache_stream_config cfg;
	scache_reader *r = NULL;
	scache_publisher *p = NULL;
	char err[512];
	worker w[THREADS];
	pthread_t t[THREADS];

	cr_assert_eq(kinesalite_start(&k, err, sizeof err), 0, "%s", err);
	kinesalite_config(&k, "threads", &cfg);
	cr_assert_eq(kinesalite_create_stream(&k, "threads", 2, err, sizeof err), 0, "%s", err);
	scache_reader_callbacks cb = {.on_keys = on_keys};
	cr_assert_eq(scache_reader_new(&cfg, SCACHE_START_LATEST, &cb, &r, err, sizeof err),
	             SCACHE_OK, "%s", err);
	cr_assert_eq(scache_publisher_new(&cfg, &p, err, sizeof err), SCACHE_OK, "%s", err);

	for (int i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].index = i;
		w[i].reader = r;
		w[i].publisher = p;
		cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	int shared = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(w[i].errors, 0, "%s", w[i].message);
		cr_assert_eq(w[i].stale, 0, "a sync returned before the caller's key was read");
		shared += w[i].shared;
	}
	cr_assert_eq(overflow, 0);
	cr_assert_eq(ndelivered, (size_t)(THREADS * ROUNDS));
	for (int i = 0; i < THREADS; i++)
		for (int j = 0; j < ROUNDS; j++) {
			char key[64];
			snprintf(key, sizeof key, "id=t%d-%d&s=db.t.id&t=data.ID", i, j);
			cr_assert_eq(count_of(key), 1, "%s", key);
		}
	scache_reader_stats st;
	scache_reader_stats_get(r, &st);
	cr_assert_eq(st.polls + (uint64_t)shared, (uint64_t)(THREADS * ROUNDS));
	cr_assert_eq(st.keys, (uint64_t)(THREADS * ROUNDS));
	cr_assert_eq(st.gaps, 0);
	printf("stream_threads: %d syncs made %llu polls (%d shared)\n", THREADS * ROUNDS,
	       (unsigned long long)st.polls, shared);

	scache_publisher_free(p);
	scache_reader_free(r);
	kinesalite_stop(&k);
	for (size_t i = 0; i < ndelivered; i++)
		free(delivered[i]);
}
