/*
 * echoes.c: the instance's own invalidations, expected back from the stream.
 *
 * scache_middleware_invalidate removes keys from the cache, then publishes them; a poll
 * later reads that record back (the publisher's "origin" names it: kinesis_source.c hands
 * such keys to the sink's keys_own). Removing the keys again would evict entries loaded
 * after the local invalidation, which are fresh: the write's echo carries no news for
 * the instance that wrote it. So the middleware notes each key it invalidated and
 * published, and an own record's key that was noted is skipped once.
 *
 * Why skipping cannot keep stale data: the local invalidation left a tombstone in the
 * cache, and the cache's stale-add guard refuses every add whose load token predates it
 * (a tombstone forgotten early still refuses them, through the stripe's forgotten epoch).
 * So any entry of the key present when the echo arrives was loaded after that
 * invalidation, the one this record announces: it may stay. Another instance's change
 * comes in a record of its own (another origin, or none: Go scache's records), which is
 * applied as always. What is not noted (another path published it, the set was full or
 * the note expired) is applied: a needless miss at worst.
 *
 * Each key keeps a count (one echo per publish) and the time of its newest note; the
 * set is bounded by ECHOES_MAX keys and ECHOES_TTL_NS, oldest first. One mutex, a leaf
 * lock taken with no other held.
 */
#include "echoes.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* An allocation failure inside uthash must not exit: the note is dropped (safe). */
static _Thread_local int uthash_oomed;
#define HASH_NONFATAL_OOM        1
#define uthash_nonfatal_oom(obj) ((void)(obj), uthash_oomed = 1)
#include <uthash.h>

typedef struct echo {
	UT_hash_handle hh; /* insertion order = age order (renewed on each note) */
	uint64_t when_ns;  /* newest note */
	unsigned pending;  /* echoes expected */
	size_t len;
	char key[];
} echo;

struct echoes {
	pthread_mutex_t mu;
	echo *table;
	size_t n;
};

echoes *echoes_new(void)
{
	echoes *e = calloc(1, sizeof *e);
	if (e)
		pthread_mutex_init(&e->mu, NULL);
	return e;
}

static void echo_drop(echoes *e, echo *x)
{
	HASH_DELETE(hh, e->table, x);
	free(x);
	e->n--;
}

void echoes_free(echoes *e)
{
	if (!e)
		return;
	echo *x, *tmp;
	HASH_ITER(hh, e->table, x, tmp)
	echo_drop(e, x);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* Forget notes older than the TTL, and the oldest beyond room for `room` more. */
static void echoes_prune(echoes *e, uint64_t now, size_t room)
{
	while (e->table && (now - e->table->when_ns > ECHOES_TTL_NS || e->n + room > ECHOES_MAX))
		echo_drop(e, e->table);
}

void echoes_note(echoes *e, const char *const *keys, const size_t *lens, size_t n, uint64_t now)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	echoes_prune(e, now, 0);
	for (size_t i = 0; i < n; i++) {
		echo *x = NULL;
		HASH_FIND(hh, e->table, keys[i], lens[i], x);
		if (x) {
			HASH_DELETE(hh, e->table, x); /* re-added below: keeps the age order */
			e->n--;
		} else {
			echoes_prune(e, now, 1);
			x = malloc(sizeof *x + lens[i]);
			if (!x)
				continue; /* its echo will be applied: safe */
			x->pending = 0;
			x->len = lens[i];
			memcpy(x->key, keys[i], lens[i]);
		}
		x->pending++;
		x->when_ns = now;
		uthash_oomed = 0;
		HASH_ADD_KEYPTR(hh, e->table, x->key, x->len, x);
		if (uthash_oomed) {
			free(x);
			continue;
		}
		e->n++;
	}
	pthread_mutex_unlock(&e->mu);
}

int echoes_take(echoes *e, const char *key, size_t len, uint64_t now)
{
	if (!e)
		return 0;
	pthread_mutex_lock(&e->mu);
	echo *x = NULL;
	HASH_FIND(hh, e->table, key, len, x);
	int took = 0;
	if (x && now - x->when_ns <= ECHOES_TTL_NS) {
		took = 1;
		if (--x->pending == 0)
			echo_drop(e, x);
	} else if (x) {
		echo_drop(e, x);
	}
	pthread_mutex_unlock(&e->mu);
	return took;
}

size_t echoes_count(echoes *e)
{
	if (!e)
		return 0;
	pthread_mutex_lock(&e->mu);
	size_t n = e->n;
	pthread_mutex_unlock(&e->mu);
	return n;
}
