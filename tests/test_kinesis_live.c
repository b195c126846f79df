/*
 * Integration tests of the reader, the publisher and scachectl against kinesalite (an
 * independent implementation of the Kinesis API), started per test on a free loopback
 * port and stopped in teardown; faults come from tests/faultproxy.c in front of it.
 */
#include <criterion/criterion.h>

#include <json-c/json.h>

#include <dlfcn.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "faultproxy.h"
#include "kinesalite.h"
#include "reader.h"
#include "scache/scache.h"

/* ---- helpers -------------------------------------------------------------------------- */

typedef struct seen {
	pthread_mutex_t mu;
	char **keys;
	size_t n, cap;
	int gaps;
	char why[512];
} seen;

static void on_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	seen *s = arg;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		if (s->n == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 64;
			s->keys = realloc(s->keys, s->cap * sizeof *s->keys);
			cr_assert_not_null(s->keys);
		}
		s->keys[s->n] = strndup(keys[i], lens[i]);
		s->n++;
	}
	pthread_mutex_unlock(&s->mu);
}

static void on_gap(void *arg, const char *why)
{
	seen *s = arg;
	pthread_mutex_lock(&s->mu);
	s->gaps++;
	snprintf(s->why, sizeof s->why, "%s", why);
	pthread_mutex_unlock(&s->mu);
}

static void seen_init(seen *s)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
}

static void seen_free(seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->keys[i]);
	free(s->keys);
	pthread_mutex_destroy(&s->mu);
}

static size_t seen_count(seen *s, const char *key)
{
	size_t c = 0;
	for (size_t i = 0; i < s->n; i++)
		c += !strcmp(s->keys[i], key);
	return c;
}

static long seen_index(seen *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->keys[i], key))
			return (long)i;
	return -1;
}

static char *key_of(const char *id)
{
	char *k;
	cr_assert_eq(scache_id_encode_alloc("db.t.id", 7, id, strlen(id), &k, NULL), SCACHE_OK);
	return k;
}

/* ---- the fixture ------------------------------------------------------------------------ */

/* up() starts kinesalite before each test. What a test starts besides is kept here, made
 * by the helpers below, and down() stops and frees all of it after the test, also after
 * a failed assertion (Criterion runs .fini then too): no process, thread or connection
 * outlives a test, whatever its outcome.
 *
 * A test begins with live_start(stream, shards, flags): a new stream, its configuration,
 * a publisher and a reader from LATEST whose keys and gaps go to S; or with live_stream()
 * (the same without the reader) when it makes its reader itself. put("a", "b") then
 * publishes one record with those ids, sync_ok(r) polls, expect_once("a") checks S. */
static kinesalite K;
static faultproxy *P; /* live_stream(..., LIVE_PROXY) */
static seen S;        /* what the fixture's reader saw */
static struct {
	char stream[64];          /* live_stream() */
	scache_stream_config cfg; /* for stream */
	scache_reader *reader;    /* reader_at(), reader_with() */
	scache_publisher *publisher;
	scache_cache *cache; /* a test's middleware and its cache */
	scache_middleware *mw;
	pid_t tail;        /* tail_start(): a scachectl tail */
	char tail_out[32]; /* its output file */
} F;

static void up(void)
{
	char err[256];
	seen_init(&S);
	cr_assert_eq(kinesalite_start(&K, err, sizeof err), 0, "%s", err);
}

static void down(void)
{
	if (F.tail > 0) {
		kill(F.tail, SIGKILL);
		waitpid(F.tail, NULL, 0);
	}
	if (F.tail_out[0])
		unlink(F.tail_out);
	scache_middleware_free(F.mw);
	scache_cache_free(F.cache);
	scache_publisher_free(F.publisher);
	scache_reader_free(F.reader);
	memset(&F, 0, sizeof F);
	seen_free(&S);
	faultproxy_stop(P);
	P = NULL;
	kinesalite_stop(&K);
}

TestSuite(live, .init = up, .fini = down, .timeout = 120);

enum {
	LIVE_PROXY = 1,           /* through the fault proxy P in front of kinesalite */
	LIVE_LIST_EVERY_POLL = 2, /* list_shards_interval_ms 1: ListShards on every poll */
};

/* Create stream with `shards` shards at kinesalite (0: not created), its configuration
 * in F.cfg (flags: LIVE_*) and the publisher F.publisher. */
static void live_stream(const char *stream, int shards, int flags)
{
	char err[512];
	snprintf(F.stream, sizeof F.stream, "%s", stream);
	kinesalite_config(&K, F.stream, &F.cfg);
	if (shards)
		cr_assert_eq(kinesalite_create_stream(&K, stream, shards, NULL, 0), 0);
	if (flags & LIVE_LIST_EVERY_POLL)
		F.cfg.list_shards_interval_ms = 1;
	if (flags & LIVE_PROXY) {
		P = faultproxy_start(K.port);
		cr_assert_not_null(P);
		F.cfg.endpoint = faultproxy_endpoint(P);
	}
	cr_assert_eq(scache_publisher_new(&F.cfg, &F.publisher, err, sizeof err), SCACHE_OK, "%s",
	             err);
}

/* The fixture's reader from at, with callbacks cb (it replaces, and frees, one made
 * before). */
static scache_reader *reader_with(scache_start_at at, const scache_reader_callbacks *cb)
{
	char err[512];
	scache_reader_free(F.reader);
	F.reader = NULL;
	scache_err e = scache_reader_new(&F.cfg, at, cb, &F.reader, err, sizeof err);
	cr_assert_eq(e, SCACHE_OK, "%s: %s", scache_strerror(e), err);
	return F.reader;
}

/* ... whose keys and gaps go to S */
static scache_reader *reader_at(scache_start_at at)
{
	scache_reader_callbacks cb = {.on_keys = on_keys, .on_gap = on_gap, .arg = &S};
	return reader_with(at, &cb);
}

/* live_stream(), and the fixture's reader from LATEST into S. */
static scache_reader *live_start(const char *stream, int shards, int flags)
{
	live_stream(stream, shards, flags);
	return reader_at(SCACHE_START_LATEST);
}

/* ---- more helpers ----------------------------------------------------------------------- */

/* Publish one record with the keys of the given ids through F.publisher; the shard it
 * went to into shard (may be NULL). */
static void put_ids(const char *const *ids, size_t n, char *shard)
{
	char **keys = calloc(n, sizeof *keys);
	size_t *lens = calloc(n, sizeof *lens);
	scache_publish_result *res = calloc(n, sizeof *res);
	for (size_t i = 0; i < n; i++) {
		keys[i] = key_of(ids[i]);
		lens[i] = strlen(keys[i]);
	}
	scache_err e = scache_publish_keys(F.publisher, (const char *const *)keys, lens, n, res);
	cr_assert_eq(e, SCACHE_OK, "%s", res[0].message);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(res[i].err, SCACHE_OK);
		cr_assert_neq(res[i].sequence[0], '\0');
		cr_assert_eq(strncmp(res[i].shard_id, "shardId-", 8), 0);
		free(keys[i]);
	}
	if (shard)
		snprintf(shard, 64, "%s", res[0].shard_id);
	free(keys);
	free(lens);
	free(res);
}

/* put("a", "b"): one record with the keys of these ids */
#define put(...)                                                                                   \
	put_ids((const char *const[]){__VA_ARGS__},                                                \
	        sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *), NULL)

static scache_poll_info sync_ok(scache_reader *r)
{
	scache_poll_info info;
	scache_err e = scache_reader_sync(r, scache_now_ns(NULL), 0, &info);
	cr_assert_eq(e, SCACHE_OK, "%s: %s", scache_strerror(e), info.message);
	cr_assert_eq(info.err, SCACHE_OK);
	cr_assert_eq(info.shared, 0);
	return info;
}

/* S holds the key of id once. */
static void expect_once(const char *id)
{
	char *k = key_of(id);
	cr_assert_eq(seen_count(&S, k), 1, "key %s seen %zu times", k, seen_count(&S, k));
	free(k);
}

/* One poll, whatever its outcome (sync_ok() asserts success). */
static scache_err sync_now(scache_reader *r, scache_poll_info *info)
{
	return scache_reader_sync(r, scache_now_ns(NULL), 0, info);
}

static scache_reader_stats stats(scache_reader *r)
{
	scache_reader_stats st;
	scache_reader_stats_get(r, &st);
	return st;
}

/* Where S holds the key of id first (-1: nowhere), and how often. */
static long seen_at(const char *id)
{
	char *k = key_of(id);
	long i = seen_index(&S, k);
	free(k);
	return i;
}

static size_t times_seen(const char *id)
{
	char *k = key_of(id);
	size_t n = seen_count(&S, k);
	free(k);
	return n;
}

/* The id prefix followed by i, e.g. "c3" (in one of four buffers, used in turn). */
static const char *nth(const char *prefix, int i)
{
	static char ids[4][32];
	static unsigned next;
	char *id = ids[next++ % 4];
	snprintf(id, sizeof ids[0], "%s%d", prefix, i);
	return id;
}

/* put() of prefix0 ... prefix<n-1>, a record each; expect_once() of each. */
static void put_each(const char *prefix, int n)
{
	for (int i = 0; i < n; i++)
		put(nth(prefix, i));
}

static void expect_each_once(const char *prefix, int n)
{
	for (int i = 0; i < n; i++)
		expect_once(nth(prefix, i));
}

/* A record of raw bytes into F.stream, put at kinesalite itself. */
static void put_raw(const void *data, size_t len)
{
	cr_assert_eq(kinesalite_put_raw(&K, F.stream, data, len, NULL, 0, NULL, 0), 0);
}

/* The reader's iterator (of its one shard) made invalid, as one that expired. */
static void spoil_iterator(scache_reader *r)
{
	cr_assert_eq(reader_test_spoil_iterators(r, "AAAAAAAAAAGarbage=="), 1);
}

static void admin(const char *op, const char *json)
{
	char err[512];
	cr_assert_eq(kinesalite_call(K.endpoint, op, json, NULL, err, sizeof err), 0, "%s: %s", op,
	             err);
}

/* Split F.stream's first shard in the middle of the hash key range (its children are
 * shards 1 and 2), and wait until the stream is ACTIVE again. */
static void split_first_shard(void)
{
	char body[512];
	snprintf(body, sizeof body,
	         "{\"StreamName\":\"%s\",\"ShardToSplit\":\"shardId-000000000000\","
	         "\"NewStartingHashKey\":\"170141183460469231731687303715884105728\"}",
	         F.stream);
	admin("SplitShard", body);
	cr_assert_eq(kinesalite_wait_active(&K, F.stream, NULL, 0), 0);
}

/* Delete F.stream and create it again with `shards` shards, after_ms later (kinesalite's
 * creation times are in whole seconds). */
static void recreate(int shards, unsigned after_ms)
{
	cr_assert_eq(kinesalite_delete_stream(&K, F.stream, NULL, 0), 0);
	if (after_ms)
		usleep(after_ms * 1000u);
	cr_assert_eq(kinesalite_create_stream(&K, F.stream, shards, NULL, 0), 0);
}

/* kinesalite's own ListShards answer for F.stream (json_object_put() it), its Shards
 * array into shards. */
static json_object *real_listing(json_object **shards)
{
	char *answer, err[256], body[128];
	snprintf(body, sizeof body, "{\"StreamName\":\"%s\"}", F.stream);
	cr_assert_eq(kinesalite_call(K.endpoint, "ListShards", body, &answer, err, sizeof err), 0,
	             "%s", err);
	json_object *o = json_tokener_parse(answer);
	free(answer);
	cr_assert(json_object_object_get_ex(o, "Shards", shards));
	return o;
}

/* scache_reader_new refuses F.cfg with SCACHE_ESERVICE and makes no reader: its message. */
static const char *reader_refused(void)
{
	static char err[512];
	scache_reader *r = NULL;
	cr_assert_eq(scache_reader_new(&F.cfg, SCACHE_START_LATEST, NULL, &r, err, sizeof err),
	             SCACHE_ESERVICE);
	cr_assert_null(r);
	return err;
}

/* ---- round trips ------------------------------------------------------------------------ */

Test(live, publish_and_read_one_shard)
{
	scache_reader *r = live_start("one", 1, 0);

	put("1", "2", "a b&c/é");
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.records, 1);
	cr_assert_eq(info.keys, 3);
	cr_assert_eq(info.bad_records, 0);
	cr_assert_eq(info.gap, 0);
	cr_assert_eq(info.calls, 1); /* one GetRecords on one shard: no ListShards per poll */
	cr_assert_eq(S.n, 3);
	cr_assert_str_eq(S.keys[0], "id=1&s=db.t.id&t=data.ID");
	cr_assert_str_eq(S.keys[2], "id=a+b%26c%2F%C3%A9&s=db.t.id&t=data.ID");

	scache_reader_stats st = stats(r);
	cr_assert_eq(st.polls, 1);
	cr_assert_eq(st.keys, 3);
	cr_assert_eq(st.records, 1);
	cr_assert_eq(st.shards, 1);
	cr_assert_eq(st.gaps, 0);
	cr_assert_eq(st.last_success_started_ns, info.started_ns);
	cr_assert(scache_reader_fresh(r, info.started_ns));
	cr_assert_not(scache_reader_fresh(r, info.started_ns + 1));
}

Test(live, publish_and_read_four_shards)
{
	char ids[40][8], shard[64], shards[4][64];
	size_t nshards = 0;
	scache_reader *r = live_start("four", 4, 0);

	for (int i = 0; i < 40; i++) {
		const char *id = ids[i];
		snprintf(ids[i], sizeof ids[i], "%d", i);
		put_ids(&id, 1, shard);
		int known = 0;
		for (size_t k = 0; k < nshards; k++)
			known |= !strcmp(shards[k], shard);
		if (!known && nshards < 4)
			snprintf(shards[nshards++], 64, "%s", shard);
	}
	cr_assert_geq(nshards, 3, "random partition keys spread records over shards");
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.keys, 40);
	cr_assert_eq(info.records, 40);
	cr_assert_eq(info.calls, 4); /* one GetRecords per shard, concurrently */
	for (int i = 0; i < 40; i++)
		expect_once(ids[i]);
	info = sync_ok(r);
	cr_assert_eq(info.keys, 0);
	cr_assert_eq(info.calls, 4);
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.shards, 4);
}

Test(live, shards_are_polled_concurrently_over_kept_alive_connections)
{
	scache_reader *r = live_start("conc", 4, LIVE_PROXY);
	for (int i = 0; i < 5; i++)
		sync_ok(r);
	uint64_t conns = reader_test_connects(r);
	cr_assert_leq(conns, 4, "%llu connections", (unsigned long long)conns);
	for (int i = 0; i < 20; i++)
		sync_ok(r);
	cr_assert_eq(reader_test_connects(r), conns, "connections are reused across polls");
	/* every GetRecords is held 3 s by the proxy: polled concurrently, the four are held
	 * at the same time (one after another, never more than one) */
	faultproxy_add(P, "GetRecords", FAULT_DELAY, 4, 3000, NULL);
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.calls, 4);
	cr_assert_eq(faultproxy_injected(P), 4);
	cr_assert_eq(faultproxy_peak_delayed(P), 4, "GetRecords calls held at once");
	uint64_t ms = (info.finished_ns - info.started_ns) / 1000000u;
	cr_assert_geq(ms, 2990, "the poll waited for its calls: %llu ms", (unsigned long long)ms);
}

Test(live, start_at_trim_horizon_reads_older_records)
{
	live_stream("th", 2, 0);
	put("old");
	scache_reader *r = reader_at(SCACHE_START_TRIM_HORIZON);
	sync_ok(r);
	expect_once("old");
}

Test(live, position_is_kept_across_empty_polls)
{
	char ids[4][64], before[4][128], after[4][128];
	scache_reader *r = live_start("keep", 1, 0);

	put("first");
	sync_ok(r);
	cr_assert_eq(reader_test_positions(r, ids, before, 4), 1);
	cr_assert_neq(before[0][0], '\0');
	for (int i = 0; i < 5; i++) {
		scache_poll_info info = sync_ok(r);
		cr_assert_eq(info.keys, 0);
		cr_assert_eq(info.records, 0);
		cr_assert_eq(info.calls, 1);
	}
	cr_assert_eq(reader_test_positions(r, ids, after, 4), 1);
	cr_assert_str_eq(after[0], before[0]);
	put("second");
	sync_ok(r);
	cr_assert_eq(S.n, 2);
	expect_once("first");
	expect_once("second");
}

/* ---- resharding --------------------------------------------------------------------------- */

Test(live, split_and_merge_mid_run_lose_nothing_and_read_parents_first)
{
	scache_reader *r = live_start("reshard", 1, 0);

	put("p0");
	sync_ok(r);
	put("p1"); /* in the parent, unread when it closes */
	split_first_shard();
	put_each("c", 10);
	/* kinesalite signals a shard's end only by a missing NextShardIterator, on the
	 * read after its last record: the children may come one poll later */
	sync_ok(r);
	sync_ok(r);
	expect_once("p1");
	expect_each_once("c", 10);
	long p1 = seen_at("p1");
	for (int i = 0; i < 10; i++)
		cr_assert_lt(p1, seen_at(nth("c", i)), "parent before child");
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.shards, 3);
	cr_assert_eq(st.gaps, 0);

	/* merge the two children while records sit unread in both */
	put_each("m", 6);
	admin("MergeShards",
	      "{\"StreamName\":\"reshard\",\"ShardToMerge\":\"shardId-000000000001\","
	      "\"AdjacentShardToMerge\":\"shardId-000000000002\"}");
	cr_assert_eq(kinesalite_wait_active(&K, "reshard", NULL, 0), 0);
	put_each("n", 6);
	sync_ok(r);
	sync_ok(r);
	expect_each_once("m", 6);
	expect_each_once("n", 6);
	long last_parent = -1, first_child = 1 << 30;
	for (int i = 0; i < 6; i++) {
		long m = seen_at(nth("m", i)), n = seen_at(nth("n", i));
		last_parent = m > last_parent ? m : last_parent;
		first_child = n < first_child ? n : first_child;
	}
	cr_assert_lt(last_parent, first_child, "both parents before the merged child");
	cr_assert_eq(S.n, 2 + 10 + 12);
	st = stats(r);
	cr_assert_eq(st.gaps, 0);
	cr_assert_eq(st.shards, 4);
}

/* ---- iterators -------------------------------------------------------------------------- */

Test(live, expired_iterator_resumes_after_the_last_sequence_number)
{
	scache_reader *r = live_start("exp", 1, LIVE_PROXY);

	put("a");
	sync_ok(r);
	put("b");
	unsigned its = faultproxy_requests(P, "GetShardIterator");
	faultproxy_add(P, "GetRecords", FAULT_EXPIRED, 1, 0, NULL);
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(faultproxy_injected(P), 1);
	cr_assert_eq(faultproxy_requests(P, "GetShardIterator"), its + 1);
	cr_assert_eq(info.calls, 3); /* expired GetRecords, GetShardIterator, GetRecords */
	cr_assert_eq(info.keys, 1);
	expect_once("a");
	expect_once("b");

	/* an invalid iterator (InvalidArgumentException) is replaced the same way */
	put("c");
	spoil_iterator(r);
	sync_ok(r);
	expect_once("b");
	expect_once("c");
	cr_assert_eq(S.n, 3);
}

Test(live, expired_iterator_with_nothing_read_resumes_at_timestamp)
{
	scache_reader *r = live_start("expts", 1, 0);
	sync_ok(r); /* empty: nothing read, the position is a time */
	put("x");
	spoil_iterator(r);
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.keys, 1);
	expect_once("x");
	cr_assert_eq(S.n, 1);
}

Test(live, unanswered_at_timestamp_falls_back_to_trim_horizon)
{
	/* kinesalite never answers AT_TIMESTAMP when the shard holds no record after the
	 * time: the reader must neither stall nor lose anything */
	live_stream("quiet", 1, 0);
	put("older"); /* before the reader: TRIM_HORIZON will deliver it again */
	scache_reader *r = reader_at(SCACHE_START_LATEST);
	sync_ok(r);
	spoil_iterator(r);
	scache_poll_info info = sync_ok(r);
	uint64_t ms = (info.finished_ns - info.started_ns) / 1000000u;
	/* one unanswered AT_TIMESTAMP call (3 s), then the fallback's few calls; a second wait
	 * for it (a retry, a stall) would pass 6 s */
	cr_assert_lt(ms, 5900, "the poll took %llu ms", (unsigned long long)ms);
	cr_assert_eq(info.gap, 0);
	expect_once("older");
	put("newer");
	sync_ok(r);
	expect_once("newer");
}

Test(live, a_shard_whose_at_timestamp_iterator_times_out_is_still_read_in_that_poll)
{
	/* the AT_TIMESTAMP request goes unanswered (the proxy holds it past the reader's
	 * 3 s bound), so the reader falls back to TRIM_HORIZON: the poll must read the shard
	 * from there before it reports success, or a record published before the poll began
	 * is missing from a poll that says it caught up */
	scache_reader *r = live_start("tsdelay", 1, LIVE_PROXY);
	sync_ok(r); /* empty: nothing read, the position is a time */
	put("x");
	spoil_iterator(r);
	faultproxy_add(P, "GetShardIterator", FAULT_DELAY, 1, 3500, NULL);
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(faultproxy_injected(P), 1);
	cr_assert_eq(info.keys, 1);
	expect_once("x");
}

/* ---- malformed records ------------------------------------------------------------------ */

Test(live, malformed_records_are_counted_and_skipped)
{
	scache_reader *r = live_start("bad", 1, 0);
	const char *bad[] = {
	    "not json at all",
	    "{\"keys\":\"id=1&s=a&t=data.ID\",\"ts\":\"2026-11-24T13:26:26Z\"}",
	    "{\"keys\":[\"id=%zz&s=a&t=data.ID\"],\"ts\":\"2026-11-24T13:26:26Z\"}",
	    "\xff\xfe\x00\x01",
	};
	put("good1");
	for (size_t i = 0; i < 4; i++)
		put_raw(bad[i], i == 3 ? 4 : strlen(bad[i]));
	/* Go's encoder writes & as \u0026: read as any other */
	const char *go = "{\"keys\":[\"id=go\\u0026s=db.t.id\\u0026t=data.ID\"],"
	                 "\"ts\":\"2026-11-24T13:26:26.241701753Z\"}";
	put_raw(go, strlen(go));
	put("good2");
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.records, 7);
	cr_assert_eq(info.bad_records, 4);
	cr_assert_eq(info.keys, 3);
	cr_assert_eq(S.n, 3);
	cr_assert_str_eq(S.keys[0], "id=good1&s=db.t.id&t=data.ID");
	cr_assert_str_eq(S.keys[1], "id=go&s=db.t.id&t=data.ID");
	cr_assert_str_eq(S.keys[2], "id=good2&s=db.t.id&t=data.ID");
	/* and the reader goes on */
	put("good3");
	sync_ok(r);
	expect_once("good3");
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.bad_records, 4);
}

/* json_tokener_new and json_tokener_new_ex (records are parsed with a depth of their
 * own), interposed: fail the tokener_fail_at-th call of either after arming (0: never),
 * so a test can make one record's parse run out of memory */
static int tokener_fail_at, tokener_calls, tokener_failed;

json_tokener *json_tokener_new_ex(int depth)
{
	static json_tokener *(*real)(int);
	if (!real) {
		void *sym = dlsym(RTLD_NEXT, "json_tokener_new_ex");
		memcpy(&real, &sym, sizeof real);
	}
	if (tokener_fail_at && ++tokener_calls == tokener_fail_at) {
		tokener_failed++;
		return NULL;
	}
	return real(depth);
}

json_tokener *json_tokener_new(void)
{
	return json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
}

Test(live, a_record_whose_parse_runs_out_of_memory_is_read_again)
{
	/* out of memory is not a malformed record: skipping it would lose its keys */
	scache_poll_info info;
	scache_reader *r = live_start("nomem", 1, 0);
	sync_ok(r);
	put("m");
	tokener_calls = 0;
	tokener_fail_at = 2; /* 1: the GetRecords answer, 2: the record's data */
	sync_now(r, &info);
	tokener_fail_at = 0;
	cr_assert_eq(tokener_failed, 1);
	sync_ok(r);
	expect_once("m");
}

/* clock_gettime, interposed: CLOCK_REALTIME runs realtime_skew_s seconds ahead */
static int realtime_skew_s;

int clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	if (!real) {
		void *sym = dlsym(RTLD_NEXT, "clock_gettime");
		memcpy(&real, &sym, sizeof real);
	}
	int rc = real(id, ts);
	if (rc == 0 && id == CLOCK_REALTIME)
		ts->tv_sec += realtime_skew_s;
	return rc;
}

Test(live, a_clock_ahead_of_the_service_loses_nothing_on_resuming_at_a_time)
{
	/* SigV4 accepts a clock up to 5 minutes off. With ours 35 s ahead, a position kept
	 * as "30 s before the last good read" by our clock lies after that read by the
	 * service's: a record that arrived in between would be skipped */
	live_stream("skew", 1, 0);
	realtime_skew_s = 35;
	scache_reader *r = reader_at(SCACHE_START_LATEST);
	sync_ok(r); /* empty: nothing read, the position is a time */
	put("x");
	sleep(6); /* until the service's clock passes our "last good read - 30 s" */
	put("y");
	spoil_iterator(r);
	scache_poll_info info = sync_ok(r);
	realtime_skew_s = 0;
	cr_assert_eq(info.keys, 2);
	expect_once("x");
	expect_once("y");
}

/* ---- gaps --------------------------------------------------------------------------------- */

Test(live, stream_deleted_under_the_reader_reports_a_gap_then_recovers)
{
	scache_poll_info info;
	scache_reader *r = live_start("gone", 2, 0);
	put("before");
	sync_ok(r);

	cr_assert_eq(kinesalite_delete_stream(&K, "gone", NULL, 0), 0);
	scache_err e = sync_now(r, &info);
	cr_assert_eq(e, SCACHE_ESERVICE);
	cr_assert_eq(info.gap, 1);
	cr_assert_eq(S.gaps, 1);
	cr_assert(strstr(S.why, "stream 'gone' not found"), "%s", S.why);
	cr_assert(strstr(info.message, "ResourceNotFoundException"), "%s", info.message);
	cr_assert(strstr(info.message, K.endpoint), "%s", info.message);
	cr_assert_not(scache_reader_fresh(r, info.started_ns));
	/* still gone: an error each poll, but one gap */
	cr_assert_eq(sync_now(r, &info), SCACHE_ESERVICE);
	cr_assert_eq(S.gaps, 1);

	/* recreated: everything in the new stream is read from its start */
	cr_assert_eq(kinesalite_create_stream(&K, "gone", 2, NULL, 0), 0);
	put("after");
	sync_ok(r);
	expect_once("after");
	cr_assert_eq(S.gaps, 1);
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.gaps, 1);
	cr_assert_eq(st.poll_errors, 2);
}

Test(live, stream_recreated_between_polls_is_a_gap)
{
	/* list on every poll to notice at once */
	scache_reader *r = live_start("again", 1, LIVE_LIST_EVERY_POLL);
	put("one");
	sync_ok(r);
	recreate(1, 1100); /* a new creation time */
	put("two");
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.gap, 1);
	cr_assert_eq(S.gaps, 1);
	cr_assert(strstr(S.why, "recreated"), "%s", S.why);
	expect_once("two");
}

Test(live, stream_recreated_under_a_reader_with_nothing_read_yet_is_a_gap)
{
	/* the reader has read nothing yet (its position is a time) and lists shards only on
	 * its slow timer; its iterator expires while the stream is deleted and recreated.
	 * A new AT_TIMESTAMP iterator works on the new stream, but a record of the deleted
	 * one was never read: before resuming, the reader must look for a recreation */
	scache_reader *r = live_start("again2", 1, 0);
	sync_ok(r);
	put("lost");
	recreate(1, 1100); /* a new creation time */
	put("two");
	/* the reader's iterator expired meanwhile (idle for more than 5 minutes) */
	spoil_iterator(r);
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.gap, 1, "the record of the old stream was lost without a gap");
	cr_assert_eq(S.gaps, 1);
	cr_assert(strstr(S.why, "recreated"), "%s", S.why);
	expect_once("two");
}

Test(live, a_stream_recreated_under_working_iterators_is_a_gap_at_the_next_check)
{
	/* kinesalite keeps the old iterators working on the new stream and the reader lists
	 * shards only on its slow timer (60 s): the stream check must notice, within its
	 * interval, that the stream is another one (and the record put just before the
	 * deletion is lost: a gap) */
	live_stream("reborn", 1, 0);
	F.cfg.stream_check_interval_ms = 1; /* taken as 1000 */
	scache_reader *r = reader_at(SCACHE_START_LATEST);
	put("one");
	sync_ok(r);
	expect_once("one");
	put("lost");       /* never read: the stream goes away first */
	recreate(1, 1100); /* a new creation time */
	put("two");
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.gap, 1, "the recreation went unnoticed");
	cr_assert_eq(S.gaps, 1);
	cr_assert(strstr(S.why, "stream 'reborn' was recreated"), "%s", S.why);
	expect_once("two");
	cr_assert_eq(times_seen("lost"), 0);
	/* and then read on as usual, without another gap */
	put("three");
	sync_ok(r);
	expect_once("three");
	usleep(1100000);
	sync_ok(r);
	cr_assert_eq(S.gaps, 1);
}

Test(live, a_stream_recreated_during_an_outage_is_a_gap_at_the_first_poll_after_it)
{
	/* a poll fails (the service was down: kinesalite restarted, a network cut) and the
	 * stream is recreated meanwhile; kinesalite keeps the old iterators working on the new
	 * stream, and the check's interval is long: the first poll after the failed one must
	 * check the stream anyway, or it succeeds reading nothing of the new stream (the
	 * consistency checker saw strict reads served stale after kinesalite came back) */
	live_stream("outage", 1, LIVE_PROXY);
	F.cfg.stream_check_interval_ms = 600000;
	scache_reader *r = reader_at(SCACHE_START_LATEST);
	put("one");
	sync_ok(r);
	expect_once("one");
	faultproxy_add(P, "GetRecords", FAULT_500, 4, 0, NULL); /* a try and 3 retries */
	scache_poll_info info;
	cr_assert_neq(sync_now(r, &info), SCACHE_OK, "the poll during the outage fails");
	cr_assert_eq(faultproxy_injected(P), 4, "the failed poll took every fault queued");
	recreate(1, 1100); /* a new creation time */
	put("two");
	info = sync_ok(r);
	cr_assert_eq(info.gap, 1, "the recreation during the outage went unnoticed");
	cr_assert_eq(S.gaps, 1);
	cr_assert(strstr(S.why, "stream 'outage' was recreated"), "%s", S.why);
	expect_once("two");
}

Test(live, a_stream_recreated_at_once_with_more_shards_is_a_gap_at_the_next_check)
{
	/* deleted and recreated within the same second (kinesalite's creation times are whole
	 * seconds, so the creation time may not change) with 4 shards instead of 1: the new
	 * shards have no parent, which no reshard makes */
	live_stream("reborn4", 1, 0);
	F.cfg.stream_check_interval_ms = 1000;
	scache_reader *r = reader_at(SCACHE_START_LATEST);
	put("one");
	sync_ok(r);
	recreate(4, 0);
	const char *ids[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
	for (size_t i = 0; i < 8; i++)
		put(ids[i]); /* random partition keys: over the 4 shards */
	usleep(1100000);     /* the check's interval */
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.gap, 1, "the recreation went unnoticed");
	cr_assert_eq(S.gaps, 1);
	cr_assert(strstr(S.why, "stream 'reborn4' was recreated"), "%s", S.why);
	for (size_t i = 0; i < 8; i++)
		expect_once(ids[i]);
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.shards, 4);
}

Test(live, the_stream_check_runs_at_most_once_a_second)
{
	/* DescribeStreamSummary: 20 calls a second per account, for all readers together */
	scache_reader *r = live_start("checked", 1, LIVE_PROXY);
	/* live_start() made the reader with a zero interval: the default, 10 s */
	cr_assert_eq(faultproxy_requests(P, "DescribeStreamSummary"), 1); /* at creation */
	for (int i = 0; i < 5; i++)
		sync_ok(r);
	cr_assert_eq(faultproxy_requests(P, "DescribeStreamSummary"), 1);

	F.cfg.stream_check_interval_ms = 1; /* asks for every poll: taken as 1000 */
	r = reader_at(SCACHE_START_LATEST); /* in place of the first */
	unsigned before = faultproxy_requests(P, "DescribeStreamSummary");
	uint64_t t0 = scache_now_ns(NULL);
	for (int i = 0; i < 20; i++)
		sync_ok(r);
	usleep(1100000);
	sync_ok(r); /* more than a second after the creation: one check */
	double elapsed_s = (double)(scache_now_ns(NULL) - t0) / 1e9;
	unsigned checks = faultproxy_requests(P, "DescribeStreamSummary") - before;
	cr_assert_geq(checks, 1, "no check in %.1f s", elapsed_s);
	cr_assert_leq(checks, (unsigned)elapsed_s + 1, "%u checks in %.1f s", checks, elapsed_s);
	cr_assert_eq(S.gaps, 0);
}

Test(live, position_older_than_the_retention_is_a_gap)
{
	scache_reader *r = live_start("old", 1, 0);
	put("a");
	sync_ok(r);
	reader_test_set_retention(r, 0.2, 0);
	usleep(300000);
	put("b");
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.gap, 1);
	cr_assert(strstr(S.why, "retention"), "%s", S.why);
	/* restarted at TRIM_HORIZON: everything still in the stream is read again */
	expect_once("b");
	cr_assert_eq(times_seen("a"), 2);
}

Test(live, missing_stream_at_creation_is_named)
{
	live_stream("nosuch", 0, 0);
	const char *err = reader_refused();
	cr_assert(strstr(err, "ResourceNotFoundException"), "%s", err);
	cr_assert(strstr(err, "nosuch"), "%s", err);
	cr_assert(strstr(err, K.endpoint), "%s", err);
	cr_assert_null(strstr(err, "test-secret"));
}

Test(live, a_list_shards_answer_repeating_its_next_token_is_refused)
{
	/* an answer that hands back the token it was asked with would page forever,
	 * keeping every page in memory */
	live_stream("loop", 1, LIVE_PROXY);
	faultproxy_add(P, "ListShards", FAULT_CANNED, 50, 200,
	               "{\"Shards\":[],\"NextToken\":\"AAAAsame\"}");
	const char *err = reader_refused();
	cr_assert_leq(faultproxy_requests(P, "ListShards"), 2);
	cr_assert(strstr(err, "ListShards"), "%s", err);
}

/* Append a ListShards entry of shard i to body (cap bytes in all), then `tail`. */
static void append_shard(char *body, size_t cap, int i, const char *start_seq, const char *tail)
{
	size_t n = strlen(body);
	int w = snprintf(body + n, cap - n,
	                 "{\"ShardId\":\"shardId-%012d\",\"HashKeyRange\":{\"StartingHashKey\":"
	                 "\"0\",\"EndingHashKey\":\"340282366920938463463374607431768211455\"},"
	                 "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"%s\"}}%s",
	                 i, start_seq, tail);
	cr_assert(w > 0 && (size_t)w < cap - n);
}

#define SEQ0 "49650000000000000000000000000000000000000000000000000000"
#define SEQ1 "49650000000000000000000000000000000000000000000000000001"

Test(live, a_list_shards_answer_naming_a_shard_twice_is_refused)
{
	/* the second entry, with another starting sequence number, looked like a recreation:
	 * the reconciliation started over and over, forever */
	char body[1024];
	live_stream("twice", 1, LIVE_PROXY);
	snprintf(body, sizeof body, "{\"Shards\":[");
	append_shard(body, sizeof body, 0, SEQ0, ",");
	append_shard(body, sizeof body, 0, SEQ1, "]}");
	faultproxy_add(P, "ListShards", FAULT_CANNED, 1, 200, body);
	const char *err = reader_refused();
	cr_assert_eq(faultproxy_requests(P, "ListShards"), 1);
	cr_assert(strstr(err, "ListShards: malformed answer: stream 'twice' lists shard "
	                      "shardId-000000000000 twice"),
	          "%s", err);
}

Test(live, a_later_listing_naming_a_shard_twice_fails_the_poll_and_keeps_the_shards)
{
	char body[1024];
	scache_reader *r = live_start("twice2", 1, LIVE_PROXY | LIVE_LIST_EVERY_POLL);
	put("one");
	/* the same entry twice, as kinesalite would list it */
	json_object *shards, *o = real_listing(&shards);
	cr_assert_eq(json_object_array_length(shards), 1);
	json_object_array_add(shards, json_object_get(json_object_array_get_idx(shards, 0)));
	snprintf(body, sizeof body, "%s",
	         json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	faultproxy_add(P, "ListShards", FAULT_CANNED, 1, 200, body);
	scache_poll_info info;
	cr_assert_eq(sync_now(r, &info), SCACHE_ESERVICE);
	cr_assert(strstr(info.message, "lists shard shardId-000000000000 twice"), "%s",
	          info.message);
	cr_assert_eq(info.gap, 0);
	cr_assert_eq(S.gaps, 0);
	/* the next listing is the real one: nothing was lost */
	sync_ok(r);
	expect_once("one");
	cr_assert_eq(S.gaps, 0);
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.shards, 1);
}

Test(live, a_list_shards_next_token_cycle_is_refused_naming_the_token)
{
	/* page 1 -> TOKEN-B, page 2 -> TOKEN-A, page 3 -> TOKEN-B again: it would page forever */
	live_stream("cycle", 1, LIVE_PROXY);
	for (int i = 0; i < 20; i++)
		faultproxy_add(P, "ListShards", FAULT_CANNED, 1, 200,
		               i % 2 ? "{\"Shards\":[],\"NextToken\":\"TOKEN-A\"}"
		                     : "{\"Shards\":[],\"NextToken\":\"TOKEN-B\"}");
	const char *err = reader_refused();
	cr_assert_eq(faultproxy_requests(P, "ListShards"), 3);
	cr_assert(strstr(err, "ListShards: malformed answer: page 3 of stream 'cycle' hands back "
	                      "the NextToken 'TOKEN-B' of page 2 (a cycle)"),
	          "%s", err);
}

Test(live, a_listing_beyond_its_bounds_of_pages_or_shards_is_refused)
{
	char page[128], body[1024];
	scache_reader *r = live_start("bounds", 1, LIVE_PROXY | LIVE_LIST_EVERY_POLL);
	reader_test_set_list_limits(r, 3, 100000);
	/* tokens that never repeat */
	for (int i = 0; i < 5; i++) {
		snprintf(page, sizeof page, "{\"Shards\":[],\"NextToken\":\"T%d\"}", i);
		faultproxy_add(P, "ListShards", FAULT_CANNED, 1, 200, page);
	}
	unsigned before = faultproxy_requests(P, "ListShards");
	scache_poll_info info;
	cr_assert_eq(sync_now(r, &info), SCACHE_ESERVICE);
	cr_assert_eq(faultproxy_requests(P, "ListShards") - before, 3);
	cr_assert(strstr(info.message, "ListShards: stream 'bounds' still has a NextToken after 3 "
	                               "pages"),
	          "%s", info.message);

	reader_test_set_list_limits(r, 1000, 2);
	snprintf(body, sizeof body, "{\"Shards\":[");
	append_shard(body, sizeof body, 0, SEQ0, ",");
	append_shard(body, sizeof body, 1, SEQ0, ",");
	append_shard(body, sizeof body, 2, SEQ0, "]}");
	faultproxy_add(P, "ListShards", FAULT_CANNED, 1, 200,
	               "{\"Shards\":[],\"NextToken\":\"T9\"}");
	faultproxy_add(P, "ListShards", FAULT_CANNED, 1, 200, body);
	cr_assert_eq(sync_now(r, &info), SCACHE_ESERVICE);
	cr_assert(strstr(info.message, "ListShards: stream 'bounds' lists more than 2 shards"),
	          "%s", info.message);
	cr_assert_eq(S.gaps, 0);
}

/* ---- messages ------------------------------------------------------------------------------ */

typedef struct messages {
	char text[8][1024];
	int n;
} messages;

static void on_log(void *arg, const char *message)
{
	messages *m = arg;
	if (m->n < 8)
		snprintf(m->text[m->n], sizeof m->text[0], "%s", message);
	m->n++;
}

static void on_log_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	(void)arg;
	(void)keys;
	(void)lens;
	(void)n;
}

/* Run sync_ok with stderr sent to a file; returns how many bytes reached stderr. */
static long sync_capturing_stderr(scache_reader *r)
{
	FILE *tmp = tmpfile();
	cr_assert_not_null(tmp);
	fflush(stderr);
	int saved = dup(2);
	cr_assert_geq(saved, 0);
	dup2(fileno(tmp), 2);
	scache_poll_info info;
	scache_err e = sync_now(r, &info);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fseek(tmp, 0, SEEK_END);
	long n = ftell(tmp);
	fclose(tmp);
	cr_assert_eq(e, SCACHE_OK, "%s", info.message);
	return n;
}

Test(live, reader_messages_go_to_on_log_and_a_repeating_one_is_shown_once_with_a_count)
{
	messages m = {0};
	live_stream("chatty", 1, 0);
	scache_reader_callbacks cb = {.on_keys = on_log_keys, .arg = &m, .on_log = on_log};
	scache_reader *r = reader_with(SCACHE_START_LATEST, &cb);
	for (int i = 0; i < 3; i++)
		put_raw("not json", 8);
	cr_assert_eq(sync_capturing_stderr(r), 0, "the reader wrote to stderr");
	cr_assert_eq(m.n, 1, "%d messages", m.n);
	cr_assert(strstr(m.text[0], "stream 'chatty' shard shardId-000000000000 sequence "), "%s",
	          m.text[0]);
	cr_assert(strstr(m.text[0], ": malformed record skipped: "), "%s", m.text[0]);
	cr_assert_null(strchr(m.text[0], '\n'));
	cr_assert_null(strstr(m.text[0], "more like it"), "%s", m.text[0]);

	/* once the repeat interval has passed, the next one is shown with the count */
	reader_test_set_log_repeat(r, 0);
	put_raw("not json", 8);
	cr_assert_eq(sync_capturing_stderr(r), 0, "the reader wrote to stderr");
	cr_assert_eq(m.n, 2, "%d messages", m.n);
	cr_assert(strstr(m.text[1], ": malformed record skipped: "), "%s", m.text[1]);
	cr_assert(strstr(m.text[1], " (2 more like it in the last "), "%s", m.text[1]);

	/* a gap goes to on_log when there is no on_gap (the malformed records read again
	 * from TRIM_HORIZON after it repeat the message shown just now) */
	reader_test_set_log_repeat(r, 30);
	reader_test_set_retention(r, 0.2, 0);
	usleep(300000);
	cr_assert_eq(sync_capturing_stderr(r), 0, "the reader wrote to stderr");
	cr_assert_eq(m.n, 3, "%d messages: %s | %s | %s", m.n, m.text[2], m.text[3], m.text[4]);
	cr_assert(strstr(m.text[2], "stream 'chatty': gap: shard shardId-000000000000 was last "
	                            "read"),
	          "%s", m.text[2]);
}

/* seen first: on_keys and on_gap take arg as a seen */
typedef struct seen_and_messages {
	seen s;
	messages m;
} seen_and_messages;

static void on_log_beside_seen(void *arg, const char *message)
{
	on_log(&((seen_and_messages *)arg)->m, message);
}

Test(live, with_on_gap_and_on_log_a_gap_goes_to_on_gap_only)
{
	seen_and_messages sm;
	memset(&sm, 0, sizeof sm);
	live_stream("gapped", 1, 0);
	seen_init(&sm.s);
	scache_reader_callbacks cb = {
	    .on_keys = on_keys, .on_gap = on_gap, .arg = &sm, .on_log = on_log_beside_seen};
	scache_reader *r = reader_with(SCACHE_START_LATEST, &cb);
	reader_test_set_retention(r, 0.2, 0);
	usleep(300000);
	cr_assert_eq(sync_capturing_stderr(r), 0, "the reader wrote to stderr");
	cr_assert_eq(sm.s.gaps, 1);
	cr_assert(strstr(sm.s.why, "retention"), "%s", sm.s.why);
	cr_assert_eq(sm.m.n, 0, "%s", sm.m.text[0]);
	seen_free(&sm.s);
}

/* ---- faults -------------------------------------------------------------------------------- */

Test(live, throttling_500s_and_dropped_connections_are_retried)
{
	scache_reader *r = live_start("faults", 1, LIVE_PROXY);

	put("t");
	faultproxy_add(P, "GetRecords", FAULT_THROTTLE, 2, 0, NULL);
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.calls, 3);
	expect_once("t");
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.throttled, 2);

	put("f");
	faultproxy_add(P, "GetRecords", FAULT_500, 2, 0, NULL);
	info = sync_ok(r);
	cr_assert_eq(info.calls, 3);
	expect_once("f");

	put("d");
	faultproxy_add(P, "GetRecords", FAULT_DROP, 2, 0, NULL);
	info = sync_ok(r);
	/* libcurl itself resends once when a reused connection dies without an answer */
	cr_assert(info.calls == 2 || info.calls == 3, "%llu calls", (unsigned long long)info.calls);
	expect_once("d");
	cr_assert_eq(faultproxy_injected(P), 6);
	cr_assert_eq(S.n, 3);
}

Test(live, an_error_message_echoing_the_credentials_does_not_show_them)
{
	/* AWS's signature errors quote the canonical request, headers included: the
	 * session token (and anything else echoed) must not reach a message */
	scache_poll_info info;
	live_stream("creds", 1, LIVE_PROXY);
	F.cfg.secret_access_key = "s3cr3t-signing-key";
	F.cfg.session_token = "t0ken-of-the-session";
	scache_reader *r = reader_at(SCACHE_START_LATEST);
	faultproxy_add(P, "GetRecords", FAULT_CANNED, 1, 400,
	               "{\"__type\":\"InvalidSignatureException\",\"message\":\"The request "
	               "signature does not match. Canonical request: x-amz-security-token:"
	               "t0ken-of-the-session, key s3cr3t-signing-key, x-amz-security-token:"
	               "t0ken-of-the-sess\"}");
	cr_assert_eq(sync_now(r, &info), SCACHE_ESERVICE);
	cr_assert(strstr(info.message, "InvalidSignatureException"), "%s", info.message);
	cr_assert_null(strstr(info.message, "t0ken-of"), "%s", info.message);
	cr_assert_null(strstr(info.message, "s3cr3t"), "%s", info.message);
}

Test(live, an_empty_page_behind_the_tip_does_not_end_the_poll)
{
	/* AWS: "If there are no records available in the portion of the shard that the
	 * iterator points to, GetRecords returns an empty list. It might take multiple calls
	 * to get to a portion of the shard that contains records." MillisBehindLatest > 0
	 * says so; a poll that stops there reports success without a record published
	 * before it began */
	scache_reader *r = live_start("behind", 1, LIVE_PROXY);
	put("a");
	sync_ok(r);
	put("b");
	faultproxy_add(P, "GetRecords", FAULT_CANNED, 1, 200,
	               "{\"Records\":[],\"NextShardIterator\":\"AAAAAAAAAAGnotused==\","
	               "\"MillisBehindLatest\":60000}");
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(faultproxy_injected(P), 1);
	cr_assert_eq(info.keys, 1);
	expect_once("a");
	expect_once("b");
}

Test(live, throttling_beyond_the_bound_fails_the_poll_and_keeps_the_position)
{
	scache_poll_info info;
	scache_reader *r = live_start("thr", 1, LIVE_PROXY);

	put("x");
	faultproxy_add(P, "GetRecords", FAULT_THROTTLE, 4, 0, NULL); /* max_retries is 3 */
	cr_assert_eq(sync_now(r, &info), SCACHE_ETHROTTLED);
	cr_assert_eq(info.calls, 4);
	cr_assert(strstr(info.message, "ProvisionedThroughputExceededException: Rate exceeded"),
	          "%s", info.message);
	cr_assert(strstr(info.message, "GetRecords at http://127.0.0.1:"), "%s", info.message);
	cr_assert_eq(S.n, 0);
	cr_assert_not(scache_reader_fresh(r, info.started_ns));
	sync_ok(r);
	expect_once("x");
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.poll_errors, 1);
	cr_assert_eq(st.throttled, 4);
}

Test(live, publish_retries_only_failed_entries)
{
	scache_reader *r = live_start("part", 1, LIVE_PROXY);

	faultproxy_add(
	    P, "PutRecords", FAULT_CANNED, 1, 200,
	    "{\"FailedRecordCount\":1,\"Records\":[{\"ErrorCode\":"
	    "\"ProvisionedThroughputExceededException\",\"ErrorMessage\":\"Rate exceeded\"}]}");
	put("retried");
	cr_assert_eq(faultproxy_requests(P, "PutRecords"), 2);
	sync_ok(r);
	expect_once("retried");

	/* failing every time: reported as failure, never as success */
	unsigned before = faultproxy_requests(P, "PutRecords");
	faultproxy_add(P, "PutRecords", FAULT_CANNED, 4, 200, /* a call and max_retries 3 */
	               "{\"FailedRecordCount\":1,\"Records\":[{\"ErrorCode\":"
	               "\"InternalFailure\",\"ErrorMessage\":\"Internal service failure.\"}]}");
	char *key = key_of("lost");
	size_t len = strlen(key);
	scache_publish_result res;
	cr_assert_eq(scache_publish_keys(F.publisher, (const char *const *)&key, &len, 1, &res),
	             SCACHE_EPUBLISH);
	cr_assert_eq(res.err, SCACHE_EPUBLISH);
	cr_assert(strstr(res.message, "InternalFailure: Internal service failure."), "%s",
	          res.message);
	cr_assert_eq(res.sequence[0], '\0');
	cr_assert_eq(faultproxy_requests(P, "PutRecords"), before + 4);
	cr_assert_eq(faultproxy_injected(P), 5);
	free(key);

	/* keys that are not data IDs are refused, the others still published */
	const char *mixed[] = {"id=ok&s=db.t.id&t=data.ID", "hello"};
	size_t lens[] = {strlen(mixed[0]), 5};
	scache_publish_result two[2];
	cr_assert_eq(scache_publish_keys(F.publisher, mixed, lens, 2, two), SCACHE_EPUBLISH);
	cr_assert_eq(two[0].err, SCACHE_OK);
	cr_assert_eq(two[1].err, SCACHE_ENOTID);
}

Test(live, a_key_too_large_for_a_record_fails_alone)
{
	live_stream("huge", 1, 0);
	size_t big = (size_t)1 << 20;
	char *huge = malloc(big + 32);
	memcpy(huge, "t=data.ID&s=a&id=", 17);
	memset(huge + 17, 'x', big);
	huge[17 + big] = '\0';
	const char *keys[] = {huge, "id=small&s=a&t=data.ID"};
	size_t lens[] = {17 + big, strlen(keys[1])};
	scache_publish_result res[2];
	cr_assert_eq(scache_publish_keys(F.publisher, keys, lens, 2, res), SCACHE_EPUBLISH);
	cr_assert_eq(res[0].err, SCACHE_ETOOBIG);
	cr_assert(strstr(res[0].message, "too large"), "%s", res[0].message);
	cr_assert_eq(res[1].err, SCACHE_OK, "%s", res[1].message);
	free(huge);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(live, large_publish_is_packed_and_read_back)
{
	scache_reader *r = live_start("big", 2, 0);
	size_t n = 2500;
	char **keys = calloc(n, sizeof *keys), id[700];
	size_t *lens = calloc(n, sizeof *lens);
	scache_publish_result *res = calloc(n, sizeof *res);
	memset(id, 'x', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	for (size_t i = 0; i < n; i++) {
		snprintf(id, 16, "%07zu", i);
		id[7] = 'x';
		keys[i] = key_of(id);
		lens[i] = strlen(keys[i]);
	}
	cr_assert_eq(scache_publish_keys(F.publisher, (const char *const *)keys, lens, n, res),
	             SCACHE_OK);
	/* 2500 keys of ~720 bytes: two records of at most 1 MiB */
	cr_assert_str_neq(res[0].sequence, res[n - 1].sequence);
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(info.records, 2);
	cr_assert_eq(info.keys, n);
	/* two records, maybe on two shards: compare as sets */
	qsort(S.keys, S.n, sizeof *S.keys, cmp_str);
	qsort(keys, n, sizeof *keys, cmp_str);
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(S.keys[i], keys[i]);
		free(keys[i]);
	}
	free(keys);
	free(lens);
	free(res);
}

/* ---- single flight --------------------------------------------------------------------------- */

typedef struct caller {
	scache_reader *r;
	pthread_barrier_t *go;
	uint64_t since;
	scache_poll_info info;
	scache_err err;
	uint64_t timeout_ms;
} caller;

static void *call_sync(void *arg)
{
	caller *c = arg;
	pthread_barrier_wait(c->go);
	c->since = scache_now_ns(NULL);
	c->err = scache_reader_sync(c->r, c->since, c->timeout_ms, &c->info);
	return NULL;
}

Test(live, concurrent_callers_share_polls_that_began_after_they_arrived)
{
	scache_reader *r = live_start("sf", 2, LIVE_PROXY);
	enum { N = 8 };
	caller c[N];
	pthread_t t[N];
	pthread_barrier_t go;

	put("k");
	/* slow polls so the callers overlap: the first poll's two GetRecords are held 2 s
	 * (every caller, however late a busy machine starts it, arrives meanwhile), then
	 * throttled and retried */
	faultproxy_add(P, "GetRecords", FAULT_DELAY, 2, 2000, NULL);
	faultproxy_add(P, "GetRecords", FAULT_THROTTLE, 4, 0, NULL);
	pthread_barrier_init(&go, NULL, N);
	for (int i = 0; i < N; i++) {
		c[i] = (caller){.r = r, .go = &go};
		cr_assert_eq(pthread_create(&t[i], NULL, call_sync, &c[i]), 0);
	}
	/* every caller returns before any assertion: down() frees the reader they use */
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	int shared = 0;
	for (int i = 0; i < N; i++) {
		cr_assert_eq(c[i].err, SCACHE_OK, "%s", c[i].info.message);
		cr_assert_geq(c[i].info.started_ns, c[i].since, "a poll that began after the call");
		cr_assert_geq(c[i].info.finished_ns, c[i].info.started_ns);
		shared += c[i].info.shared;
	}
	pthread_barrier_destroy(&go);
	scache_reader_stats st = stats(r);
	cr_assert_leq(st.polls, 3, "%llu polls for %d callers", (unsigned long long)st.polls, N);
	cr_assert_geq(shared, N - 3);
	cr_assert_eq(shared, N - (int)st.polls);
	expect_once("k");
	/* since 0 accepts any completed poll: no new poll */
	scache_poll_info info;
	cr_assert_eq(scache_reader_sync(r, 0, 0, &info), SCACHE_OK);
	cr_assert_eq(info.shared, 1);
	st = stats(r);
	cr_assert_eq(st.polls, (uint64_t)(N - shared));
}

Test(live, a_waiter_times_out_while_another_polls)
{
	scache_reader *r = live_start("slow", 1, LIVE_PROXY);
	faultproxy_add(P, "GetRecords", FAULT_DELAY, 1, 3000, NULL); /* a 3 s poll */
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 1);
	caller a = {.r = r, .go = &go};
	pthread_t ta;
	cr_assert_eq(pthread_create(&ta, NULL, call_sync, &a), 0);
	while (faultproxy_delaying(P) == 0) /* the other's poll is under way */
		usleep(1000);
	scache_poll_info info;
	uint64_t t0 = scache_now_ns(NULL);
	scache_err e = scache_reader_sync(r, t0, 50, &info);
	uint64_t waited_ms = (scache_now_ns(NULL) - t0) / 1000000u;
	unsigned held = faultproxy_delaying(P); /* the other's call, still held */
	pthread_join(ta, NULL); /* before any assertion: down() frees the reader it uses */
	pthread_barrier_destroy(&go);
	cr_assert_eq(e, SCACHE_ETIMEOUT);
	cr_assert_eq(info.err, SCACHE_ETIMEOUT);
	cr_assert_str_eq(info.message, "timed out after 50 ms waiting for a poll of the stream");
	cr_assert_geq(waited_ms, 50);
	cr_assert_eq(held, 1, "it gave up while the other's poll was still under way");
	cr_assert_eq(a.err, SCACHE_OK, "%s", a.info.message);
	cr_assert_eq(a.info.shared, 0);
	/* the timed-out caller started nothing: one poll in all */
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.polls, 1);
}

/* ---- scachectl ------------------------------------------------------------------------------- */

static int run(const char *cmd, char *out, size_t outlen)
{
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f);
	size_t n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The command line that runs scachectl for F.stream at F.cfg.endpoint (kinesalite or the
 * proxy): the scachectl of this build (it sits next to tests/ in the build tree), or
 * $SCACHECTL, in the environment that names them. */
static const char *scachectl(void)
{
	static char cmd[2048];
	char self[1024], path[1100];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	cr_assert_gt(sl, 0);
	self[sl] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(path, sizeof path, "%s/../tools/scachectl", self);
	const char *bin = getenv("SCACHECTL") ? getenv("SCACHECTL") : path;
	cr_assert_eq(access(bin, X_OK), 0, "scachectl not found");
	snprintf(cmd, sizeof cmd,
	         "env -u AWS_ENDPOINT_URL_KINESIS AWS_ENDPOINT_URL=%s AWS_REGION=us-east-1 "
	         "AWS_ACCESS_KEY_ID=AKIDT AWS_SECRET_ACCESS_KEY=secret SCACHE_STREAM=%s %s",
	         F.cfg.endpoint, F.stream, bin);
	return cmd;
}

/* Run "scachectl args" (args may redirect); its exit status, its stdout into out. */
static int ctl(const char *args, char *out, size_t outlen)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "%s %s", scachectl(), args);
	return run(cmd, out, outlen);
}

/* Start "scachectl tail --interval 50" in the fixture, its output into F.tail_out;
 * redirect is added to the command line (for stderr). */
static void tail_start(const char *from, const char *redirect)
{
	char cmd[4096];
	const char *ctl_cmd = scachectl();
	snprintf(F.tail_out, sizeof F.tail_out, "/tmp/scachectl-tail-XXXXXX");
	int fd = mkstemp(F.tail_out);
	cr_assert_geq(fd, 0);
	close(fd);
	F.tail = fork();
	cr_assert_geq(F.tail, 0);
	if (F.tail == 0) {
		snprintf(cmd, sizeof cmd, "exec %s tail --from %s --interval 50 > %s%s", ctl_cmd,
		         from, F.tail_out, redirect);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
}

/* What tail wrote, once it holds needle (or after 30 s: a liveness bound). */
static void tail_wait(const char *needle, char *got, size_t len)
{
	got[0] = '\0';
	for (int i = 0; i < 600 && !strstr(got, needle); i++) {
		usleep(50000);
		FILE *f = fopen(F.tail_out, "r");
		size_t n = f ? fread(got, 1, len - 1, f) : 0;
		got[n] = '\0';
		if (f)
			fclose(f);
	}
}

/* Interrupt tail and return its wait status. */
static int tail_stop(void)
{
	int st;
	kill(F.tail, SIGINT);
	waitpid(F.tail, &st, 0);
	F.tail = 0;
	unlink(F.tail_out);
	F.tail_out[0] = '\0';
	return st;
}

Test(live, scachectl_publish_shows_up_in_tail)
{
	char out[4096], got[4096];
	live_stream("ctl", 2, 0);
	/* from the stream's start (it is new: only this publish is on it), so how long tail
	 * takes to start (fork, exec, its first calls) does not decide what it sees */
	tail_start("trim-horizon", "");
	cr_assert_eq(ctl("publish db.users.id 7 'a b' 2>&1", out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "shardId-"), "%s", out);
	tail_wait("a b", got, sizeof got);
	int st = tail_stop();
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tail exit status %d", st);
	cr_assert(strstr(got, "db.users.id\t7\tshardId-"), "%s", got);
	cr_assert(strstr(got, "db.users.id\ta b\tshardId-"), "%s", got);

	/* usage errors exit 2, failures 1 */
	cr_assert_eq(ctl("publish 2>&1", out, sizeof out), 2, "%s", out);
	cr_assert_eq(ctl("bogus 2>&1", out, sizeof out), 2, "%s", out);
	cr_assert_eq(ctl("tail --from yesterday 2>&1", out, sizeof out), 2, "%s", out);
	cr_assert_eq(ctl("publish --stream nosuch s 1 2>&1", out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "ResourceNotFoundException"), "%s", out);
	cr_assert_eq(ctl("tail --help", out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "usage: scachectl tail"), "%s", out);
	cr_assert_eq(ctl("publish --help", out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "usage: scachectl publish"), "%s", out);
}

Test(live, scachectl_tail_escapes_control_bytes_of_the_answer)
{
	/* a sequence number (or shard ID) of the answer is printed as it came: an answer
	 * with an escape sequence must not reach the terminal */
	char got[4096];
	live_stream("ctlesc", 1, LIVE_PROXY);
	/* {"keys":["id=esc&s=db.t.id&t=data.ID"],"ts":"2026-11-24T13:26:26Z"} */
	faultproxy_add(P, "GetRecords", FAULT_CANNED, 1, 200,
	               "{\"Records\":[{\"SequenceNumber\":\"4\\u001b[2J\",\"Data\":"
	               "\"eyJrZXlzIjpbImlkPWVzYyZzPWRiLnQuaWQmdD1kYXRhLklEIl0sInRzIjoiMjAyNi0xMS0y"
	               "NFQxMzoyNjoyNloifQ==\",\"PartitionKey\":\"k\"}],"
	               "\"NextShardIterator\":\"AAAAAAAAAAGnotused==\",\"MillisBehindLatest\":0}");
	tail_start("latest", " 2>/dev/null");
	tail_wait("esc", got, sizeof got);
	tail_stop();
	cr_assert_eq(faultproxy_injected(P), 1);
	cr_assert(strstr(got, "db.t.id\tesc\tshardId-000000000000\t4"), "%s", got);
	cr_assert_null(strchr(got, '\x1b'), "an escape byte reached the output");
}

/* ---- the other end-of-shard signals, and a vanished shard ----------------------------------- */

/* kinesalite ends a shard only by leaving out NextShardIterator; AWS also sends
 * ChildShards, and some implementations only show EndingSequenceNumber in ListShards. The
 * proxy answers the parent's last read in those styles. split_setup() publishes p0, reads
 * it, splits the shard and publishes c0 ... c5 into the children. */
static scache_reader *split_setup(const char *stream)
{
	scache_reader *r = live_start(stream, 1, LIVE_PROXY);
	put("p0");
	sync_ok(r);
	split_first_shard();
	put_each("c", 6);
	return r;
}

/* The reader split_setup() made (before the split) gives way to one from TRIM_HORIZON,
 * into an empty S, that lists shards on every poll to learn of the split at once. */
static scache_reader *reread_listing_every_poll(void)
{
	scache_reader_free(F.reader);
	F.reader = NULL;
	seen_free(&S);
	seen_init(&S);
	F.cfg.list_shards_interval_ms = 1;
	return reader_at(SCACHE_START_TRIM_HORIZON);
}

Test(live, child_shards_in_get_records_end_a_shard)
{
	scache_reader *r = split_setup("sig1");
	faultproxy_add(P, "GetRecords", FAULT_CANNED, 1, 200,
	               "{\"Records\":[],\"NextShardIterator\":\"AAAAAAAAAAGnotused==\","
	               "\"MillisBehindLatest\":0,\"ChildShards\":[{\"ShardId\":"
	               "\"shardId-000000000001\",\"ParentShards\":[\"shardId-000000000000\"]},"
	               "{\"ShardId\":\"shardId-000000000002\",\"ParentShards\":"
	               "[\"shardId-000000000000\"]}]}");
	unsigned lists = faultproxy_requests(P, "ListShards");
	scache_poll_info info = sync_ok(r); /* one poll: parent ends, children are read */
	cr_assert_eq(faultproxy_injected(P), 1);
	cr_assert_eq(faultproxy_requests(P, "ListShards"), lists + 1);
	cr_assert_eq(info.keys, 6);
	expect_each_once("c", 6); /* the children */
}

Test(live, ending_sequence_number_in_list_shards_ends_a_shard)
{
	split_setup("sig3");
	scache_reader *r = reread_listing_every_poll();
	/* reading the parent from TRIM_HORIZON: p0 and then an empty page that still carries
	 * an iterator, as an implementation without the other two signals answers */
	faultproxy_add(P, "GetRecords", FAULT_CANNED, 1, 200,
	               "{\"Records\":[],\"NextShardIterator\":\"AAAAAAAAAAGnotused==\","
	               "\"MillisBehindLatest\":0}");
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(faultproxy_injected(P), 1);
	cr_assert_eq(info.keys, 6); /* the canned page hid p0; the children were read */
	expect_each_once("c", 6);   /* the children */
}

Test(live, an_empty_page_of_a_closed_shard_behind_latest_is_not_its_end)
{
	/* GetRecords may answer an empty page before the part of a shard that holds records
	 * (AWS: "it might take multiple calls to get to a portion of the shard that contains
	 * records"); MillisBehindLatest > 0 says more follows. A closed shard must not be
	 * taken as read to its end on such a page, or its remaining records are lost. */
	split_setup("sig3behind");
	scache_reader *r = reread_listing_every_poll();
	faultproxy_add(P, "GetRecords", FAULT_CANNED, 1, 200,
	               "{\"Records\":[],\"NextShardIterator\":\"AAAAAAAAAAGnotused==\","
	               "\"MillisBehindLatest\":60000}");
	sync_ok(r);
	sync_ok(r);
	cr_assert_eq(faultproxy_injected(P), 1);
	expect_once("p0");
	long i0 = seen_at("p0");
	for (int i = 0; i < 6; i++) {
		const char *id = nth("c", i);
		expect_once(id);
		cr_assert_lt(i0, seen_at(id), "the parent's p0 after child key %s", id);
	}
	cr_assert_eq(S.gaps, 0);
}

Test(live, a_shard_vanishing_before_its_end_is_a_gap)
{
	scache_reader *r = live_start("vanish", 2, LIVE_PROXY | LIVE_LIST_EVERY_POLL);
	/* the next listing is the real one without shard 1 */
	json_object *shards, *o = real_listing(&shards);
	cr_assert_eq(json_object_array_length(shards), 2);
	json_object_array_del_idx(shards, 1, 1);
	faultproxy_add(P, "ListShards", FAULT_CANNED, 1, 200,
	               json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	scache_poll_info info = sync_ok(r);
	cr_assert_eq(faultproxy_injected(P), 1);
	cr_assert_eq(info.gap, 1);
	cr_assert_eq(S.gaps, 1);
	cr_assert(strstr(S.why, "shard shardId-000000000001 of stream 'vanish' vanished"), "%s",
	          S.why);
	scache_reader_stats st = stats(r);
	cr_assert_eq(st.shards, 1);
}

/* ---- through the middleware ------------------------------------------------------------------ */

typedef struct sink {
	pthread_mutex_t mu;
	char lines[64][640];
	int n;
} sink;

static void sink_log(void *arg, const char *line, size_t len)
{
	sink *k = arg;
	pthread_mutex_lock(&k->mu);
	if (k->n < 64)
		snprintf(k->lines[k->n++], sizeof k->lines[0], "%.*s", (int)len, line);
	pthread_mutex_unlock(&k->mu);
}

static int sink_find(sink *k, const char *needle, char *out, size_t len)
{
	int found = 0;
	pthread_mutex_lock(&k->mu);
	for (int i = 0; i < k->n && !found; i++)
		if (strstr(k->lines[i], needle)) {
			found = 1;
			snprintf(out, len, "%s", k->lines[i]);
		}
	pthread_mutex_unlock(&k->mu);
	return found;
}

static enum MHD_Result no_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
	(void)cls, (void)connection, (void)url, (void)method, (void)version;
	(void)upload_data, (void)upload_data_size, (void)req_cls;
	return MHD_NO;
}

Test(live, the_middleware_logs_reader_messages_as_warnings_and_checks_within_half_its_bound)
{
	/* static: the middleware's poller logs to it until down() frees the middleware */
	static sink k = {.mu = PTHREAD_MUTEX_INITIALIZER};
	char err[512], line[640];
	live_stream("mwlog", 1, LIVE_PROXY);
	cr_assert_eq(scache_cache_new(NULL, &F.cache), SCACHE_OK);
	scache_middleware_config mc = {.cache = F.cache,
	                               .stream = &F.cfg,
	                               .handler = no_handler,
	                               .max_staleness_ms = 2000, /* checks every second */
	                               .idle_poll_ms = 100,
	                               .log = sink_log,
	                               .log_arg = &k,
	                               .quiet_requests = 1};
	cr_assert_eq(scache_middleware_new(&mc, &F.mw, err, sizeof err), SCACHE_OK, "%s", err);
	/* positioned (at LATEST) before the record is put, however busy the machine */
	cr_assert_eq(scache_middleware_wait_ready(F.mw, 30000, err, sizeof err), SCACHE_OK, "%s",
	             err);
	put_raw("not json", 8);
	/* the idle polls read it (up to 5 s), and check the stream (the reader's own default
	 * would wait 10 s) */
	int logged = 0;
	/* 8 s: the reader's own interval (10 s) would miss it; at half the bound, checks come
	 * every second */
	for (int i = 0; i < 80 && !(logged && faultproxy_requests(P, "DescribeStreamSummary") >= 2);
	     i++) {
		usleep(100000);
		logged = sink_find(&k, "malformed record skipped", line, sizeof line);
	}
	cr_assert(logged, "the reader's message did not reach the sink");
	cr_assert(strstr(line, "{\"type\":\"warning\","), "%s", line);
	cr_assert(strstr(line, "\"msg\":\"stream 'mwlog' shard shardId-000000000000 sequence "),
	          "%s", line);
	cr_assert_geq(faultproxy_requests(P, "DescribeStreamSummary"), 2,
	              "no stream check within 8 s of a 2 s staleness bound");
}
