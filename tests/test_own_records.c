/*
 * The echo of an instance's own invalidations (issue 8, defect 1), end to end on
 * kinesalite: two middlewares, A and B, each with its own cache and Kinesis source (so
 * its own publisher and origin), read one single-shard stream. An invalidation through A
 * removes the key from A's cache and publishes it; when A reads that record back it must
 * not evict what A loaded after the invalidation. Everyone else's records (B's, and
 * records without an origin, as Go scache writes them) evict exactly as before.
 *
 * settle() waits until every record put so far was applied by both middlewares: a last
 * record (no origin) invalidates a marker entry in both caches, and the stream has one
 * shard, so once both markers are gone every earlier record was read. One kinesalite per
 * test, started in .init and stopped in .fini (also after a failure).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echoes.h"
#include "kinesalite.h"
#include "middleware_internal.h"
#include "scache/scache.h"
#include "source_internal.h"

#define STREAM "own"

typedef struct instance {
	scache_cache *cache;
	scache_middleware *mw;
} instance;

static kinesalite K;
static instance A, B;
static unsigned marker;

static void up(void)
{
	char err[256];
	cr_assert_eq(kinesalite_start(&K, err, sizeof err), 0, "%s", err);
}

static void instance_free(instance *in)
{
	scache_middleware_free(in->mw);
	scache_cache_free(in->cache);
	memset(in, 0, sizeof *in);
}

static void down(void)
{
	instance_free(&A);
	instance_free(&B);
	kinesalite_stop(&K);
}

TestSuite(own_records, .init = up, .fini = down);

static enum MHD_Result no_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
	(void)cls, (void)connection, (void)url, (void)method, (void)version;
	(void)upload_data, (void)upload_data_size, (void)req_cls;
	return MHD_NO;
}

static void instance_start(instance *in)
{
	char err[512];
	scache_stream_config cfg;
	scache_source *src;
	kinesalite_config(&K, STREAM, &cfg);
	cr_assert_eq(scache_cache_new(NULL, &in->cache), SCACHE_OK);
	cr_assert_eq(
	    scache_kinesis_source_new(&cfg, SCACHE_START_TRIM_HORIZON, &src, err, sizeof err),
	    SCACHE_OK, "%s", err);
	scache_middleware_config mc = {.cache = in->cache,
	                               .source = src,
	                               .handler = no_handler,
	                               .idle_poll_ms = 20,
	                               .max_polls_per_second = 50,
	                               .quiet_requests = 1};
	cr_assert_eq(scache_middleware_new(&mc, &in->mw, err, sizeof err), SCACHE_OK, "%s", err);
	/* positioned and in use before the test caches anything (see test_ddb_stream_live) */
	cr_assert_eq(scache_middleware_wait_ready(in->mw, 30000, err, sizeof err), SCACHE_OK,
	             "%s", err);
}

static void start(void)
{
	char err[256];
	cr_assert_eq(kinesalite_create_stream(&K, STREAM, 1, err, sizeof err), 0, "%s", err);
	instance_start(&A);
	instance_start(&B);
}

/* The data-ID string of ("users", id); free() it. */
static char *key(const char *id)
{
	char *k;
	cr_assert_eq(scache_id_encode_alloc("users", 5, id, strlen(id), &k, NULL), SCACHE_OK);
	return k;
}

/* A load of id into in's cache that begins now (its token taken now), as
 * scache_get_or_load does after the request's drain. */
static scache_err load(instance *in, const char *id, const char *value)
{
	char *k = key(id);
	scache_add_opts o = {.token = scache_cache_begin_load(in->cache)};
	scache_err err = scache_cache_add(in->cache, k, strlen(k), value, strlen(value), &o);
	free(k);
	return err;
}

static int is_cached(instance *in, const char *id)
{
	char *k = key(id);
	scache_value v;
	int hit = scache_cache_get(in->cache, k, strlen(k), &v) == SCACHE_OK;
	scache_value_release(&v);
	free(k);
	return hit;
}

/* What a PUT does: invalidate through the middleware (remove locally, then publish). */
static void invalidate(instance *in, const char *id)
{
	const char *src = "users";
	cr_assert_eq(scache_middleware_invalidate(in->mw, &src, &id, 1), SCACHE_OK);
}

/* A record as Go scache writes it: no "origin". */
static void put_go_record(const char *id)
{
	char *k = key(id), rec[512], err[256];
	snprintf(rec, sizeof rec, "{\"keys\":[\"%s\"],\"ts\":\"2026-11-24T13:26:26.241701753Z\"}",
	         k);
	free(k);
	cr_assert_eq(kinesalite_put_raw(&K, STREAM, rec, strlen(rec), NULL, 0, err, sizeof err), 0,
	             "%s", err);
}

static void settle(void)
{
	char id[32];
	snprintf(id, sizeof id, "marker-%u", ++marker);
	cr_assert_eq(load(&A, id, "m"), SCACHE_OK);
	cr_assert_eq(load(&B, id, "m"), SCACHE_OK);
	put_go_record(id);
	for (int i = 0; i < 400; i++) {
		if (!is_cached(&A, id) && !is_cached(&B, id))
			return;
		usleep(50000);
	}
	cr_assert_fail("the marker record was not applied within 20 s");
}

Test(own_records, the_echo_of_an_own_invalidation_keeps_what_was_loaded_after_it)
{
	start();
	cr_assert_eq(load(&A, "1", "old"), SCACHE_OK);
	uint64_t before = scache_cache_begin_load(A.cache); /* a load begun before the PUT */
	invalidate(&A, "1");
	cr_assert_not(is_cached(&A, "1"), "the invalidation removes locally at once");
	/* the load begun before it cannot add its (old) data afterwards */
	char *k = key("1");
	scache_add_opts o = {.token = before};
	cr_assert_eq(scache_cache_add(A.cache, k, strlen(k), "old", 3, &o), SCACHE_ESTALE);
	free(k);
	cr_assert_eq(load(&A, "1", "new"), SCACHE_OK); /* the GET after the PUT: a miss */
	settle();
	cr_assert(is_cached(&A, "1"), "the echo of A's own record evicted its fresh entry");
	cr_assert_eq(echoes_count(A.mw->echoes), 0, "the echo was taken");
	settle(); /* and nothing later removes it either */
	cr_assert(is_cached(&A, "1"));
}

Test(own_records, every_publish_has_its_echo_skipped_once)
{
	start();
	invalidate(&A, "2");
	invalidate(&A, "2");
	cr_assert_eq(load(&A, "2", "v"), SCACHE_OK);
	settle();
	cr_assert(is_cached(&A, "2"), "either echo evicted the fresh entry");
	cr_assert_eq(echoes_count(A.mw->echoes), 0);
}

Test(own_records, a_record_of_another_publisher_still_evicts)
{
	start();
	cr_assert_eq(load(&A, "3", "old"), SCACHE_OK);
	invalidate(&B, "3");
	cr_assert_eq(load(&B, "3", "new"), SCACHE_OK); /* B's own load after its PUT */
	settle();
	cr_assert_not(is_cached(&A, "3"), "B's record must evict A's entry");
	cr_assert(is_cached(&B, "3"), "B's echo evicted B's fresh entry");
}

Test(own_records, a_record_without_origin_still_evicts)
{
	start();
	cr_assert_eq(load(&A, "4", "old"), SCACHE_OK);
	put_go_record("4");
	settle();
	cr_assert_not(is_cached(&A, "4"), "a Go scache record must evict");
}

Test(own_records, another_instance_invalidating_after_the_local_load_evicts)
{
	start();
	invalidate(&A, "5");
	cr_assert_eq(load(&A, "5", "a"), SCACHE_OK);
	invalidate(&B, "5"); /* B changes the row after A loaded it */
	settle();
	cr_assert_not(is_cached(&A, "5"), "B's later change must evict A's entry");
	/* and the same with a Go writer */
	invalidate(&A, "6");
	cr_assert_eq(load(&A, "6", "a"), SCACHE_OK);
	put_go_record("6");
	settle();
	cr_assert_not(is_cached(&A, "6"), "a Go writer's later change must evict A's entry");
}

Test(own_records, an_own_record_of_a_key_not_invalidated_here_evicts)
{
	start();
	/* published through A's source without the middleware's local removal: A did not
	 * apply it, so its echo is news and applies as any record */
	cr_assert_eq(load(&A, "7", "old"), SCACHE_OK);
	char *k = key("7"), why[256] = "";
	size_t len = strlen(k);
	cr_assert_eq(source_publish(A.mw->src, (const char *const *)&k, &len, 1, why, sizeof why),
	             SCACHE_OK, "%s", why);
	free(k);
	settle();
	cr_assert_not(is_cached(&A, "7"), "an own record not applied locally must evict");
}
