/*
 * bench_stream: what the invalidation stream costs on loopback kinesalite.
 *
 *   - an empty poll (nothing new) of a 1-shard and a 4-shard stream: median and p99 in
 *     microseconds over N polls, and HTTP calls per poll;
 *   - a poll that finds one record;
 *   - publish throughput in IDs per second with 1 and 100 IDs per call.
 *
 * kinesalite is started by the benchmark (tests/kinesalite.c) and stopped at the end.
 * Usage: bench_stream [POLLS]   (default 1000)
 * Loopback kinesalite is a Node.js process: the figures measure our client plus its
 * answer time, not AWS (where one GetRecords round trip is typically 5-20 ms).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesalite.h"
#include "scache/scache.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_stream: %s: %s\n", what, why);
	exit(1);
}

static void bench_polls(kinesalite *k, const char *stream, int shards, size_t polls,
                        int with_record)
{
	scache_stream_config cfg;
	scache_reader *r;
	scache_publisher *pub = NULL;
	char err[512];
	uint64_t *t = malloc(polls * sizeof *t), calls = 0;

	kinesalite_config(k, stream, &cfg);
	if (kinesalite_create_stream(k, stream, shards, err, sizeof err))
		die("CreateStream", err);
	if (scache_reader_new(&cfg, SCACHE_START_LATEST, NULL, &r, err, sizeof err))
		die("reader", err);
	if (with_record && scache_publisher_new(&cfg, &pub, err, sizeof err))
		die("publisher", err);
	for (size_t i = 0; i < 20; i++) /* warm up: connections, JIT of node */
		scache_reader_sync(r, scache_now_ns(NULL), 0, NULL);
	for (size_t i = 0; i < polls; i++) {
		scache_poll_info info;
		if (pub) {
			const char *key = "id=1&s=db.t.id&t=data.ID";
			size_t len = strlen(key);
			if (scache_publish_keys(pub, &key, &len, 1, NULL))
				die("publish", "failed");
		}
		if (scache_reader_sync(r, scache_now_ns(NULL), 0, &info))
			die("poll", info.message);
		t[i] = info.finished_ns - info.started_ns;
		calls += info.calls;
		if (with_record && info.keys != 1)
			die("poll", "the record was not read");
	}
	qsort(t, polls, sizeof *t, cmp_u64);
	printf("%-28s %6d %10.1f %10.1f %12.2f\n",
	       with_record ? "poll finding 1 record" : "empty poll", shards,
	       (double)t[polls / 2] / 1000.0, (double)t[(polls * 99) / 100] / 1000.0,
	       (double)calls / (double)polls);
	scache_publisher_free(pub);
	scache_reader_free(r);
	free(t);
}

static void bench_publish(kinesalite *k, const char *stream, size_t per_call, size_t calls)
{
	scache_stream_config cfg;
	scache_publisher *pub;
	char err[512];
	char **keys = calloc(per_call, sizeof *keys);
	size_t *lens = calloc(per_call, sizeof *lens);

	kinesalite_config(k, stream, &cfg);
	if (kinesalite_create_stream(k, stream, 4, err, sizeof err))
		die("CreateStream", err);
	if (scache_publisher_new(&cfg, &pub, err, sizeof err))
		die("publisher", err);
	for (size_t i = 0; i < per_call; i++) {
		char id[32];
		snprintf(id, sizeof id, "%zu", 100000 + i);
		if (scache_id_encode_alloc("db.users.id", 11, id, strlen(id), &keys[i], &lens[i]))
			die("encode", "out of memory");
	}
	scache_publish_keys(pub, (const char *const *)keys, lens, per_call, NULL); /* warm up */
	uint64_t t0 = scache_now_ns(NULL);
	for (size_t c = 0; c < calls; c++)
		if (scache_publish_keys(pub, (const char *const *)keys, lens, per_call, NULL))
			die("publish", "failed");
	double secs = (double)(scache_now_ns(NULL) - t0) / 1e9;
	printf("%-28s %6zu %10.0f %10.1f\n", "publish", per_call, (double)(per_call * calls) / secs,
	       secs * 1e6 / (double)calls);
	for (size_t i = 0; i < per_call; i++)
		free(keys[i]);
	free(keys);
	free(lens);
	scache_publisher_free(pub);
}

int main(int argc, char **argv)
{
	size_t polls = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
	kinesalite k;
	char err[256];

	if (polls < 10)
		polls = 10;
	if (kinesalite_start(&k, err, sizeof err))
		die("kinesalite", err);
	printf("loopback kinesalite at %s, %zu polls each\n\n", k.endpoint, polls);
	printf("%-28s %6s %10s %10s %12s\n", "", "shards", "median us", "p99 us", "calls/poll");
	bench_polls(&k, "bench1", 1, polls, 0);
	bench_polls(&k, "bench4", 4, polls, 0);
	bench_polls(&k, "bench1r", 1, polls / 4, 1);
	printf("\n%-28s %6s %10s %10s\n", "", "IDs", "IDs/s", "us/call");
	bench_publish(&k, "pub1", 1, 500);
	bench_publish(&k, "pub100", 100, 200);
	kinesalite_stop(&k);
	return 0;
}
