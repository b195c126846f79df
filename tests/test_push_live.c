/*
 * Live tests of Kinesis enhanced fan-out against kinesis-mock (tests/kinesis_mock.c):
 * the consumer's lifecycle and SubscribeToShard as lib/kinesis_push.c speaks them (over
 * h2c, as AWS's HTTP/2, and over HTTP/1.1), and the push source (lib/push_source.c)
 * behind the source interface: records delivered, renewals across a subscription's end,
 * a connection cut mid-message, a split, the stream deleted, freshness.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis.h"
#include "kinesis_mock.h"
#include "kinesis_push.h"
#include "push_source.h"
#include "scache/cache.h"
#include "scache/id.h"
#include "source_internal.h"
#include "scache/source.h"
#include "scache/stream.h"
#include "util.h"

#include <sys/socket.h>
#include <unistd.h>

static kinesis_mock K;

static void up(void)
{
	char err[256];
	cr_assert_eq(kinesis_mock_start(&K, err, sizeof err), 0, "%s", err);
}

static void down(void)
{
	kinesis_mock_stop(&K);
}

static aws_client *client(void)
{
	scache_stream_config cfg;
	kinesis_settings s;
	aws_client *c = NULL;
	char err[256];
	kinesis_mock_config(&K, "x", &cfg);
	cr_assert_eq(kinesis_settings_resolve(&cfg, 0, &s, err, sizeof err), 0, "%s", err);
	cr_assert_eq(kinesis_client_new(&s, &c, err, sizeof err), 0, "%s", err);
	kinesis_settings_clear(&s);
	return c;
}

/* ---- the consumer ----------------------------------------------------------------- */

TestSuite(consumer, .init = up, .fini = down);

Test(consumer, registered_once_then_reused_by_name)
{
	char err[256], name[64], arn[256];
	aws_client *c = client();
	cr_assert_eq(kinesis_mock_create_stream(&K, "orders", 1, err, sizeof err), 0, "%s", err);
	cr_assert_eq(kinesis_mock_stream_arn(&K, "orders", arn, sizeof arn, err, sizeof err), 0);
	push_consumer a, b;
	uint64_t deadline = scache_now_ns(NULL) + 30000000000ull;
	cr_assert_eq(push_consumer_get(c, "orders", "scache-a", deadline, &a, name, sizeof name,
	                               err, sizeof err),
	             SCACHE_OK, "%s", err);
	cr_assert_str_eq(a.status, "ACTIVE");
	cr_assert_str_eq(a.name, "scache-a");
	cr_assert_str_eq(a.stream_arn, arn);
	/* arn:aws:kinesis:<region>:<account>:stream/<name>/consumer/<consumer>:<created> */
	char prefix[300];
	snprintf(prefix, sizeof prefix, "%s/consumer/scache-a:", arn);
	cr_assert_eq(strncmp(a.arn, prefix, strlen(prefix)), 0, "%s", a.arn);
	cr_assert_eq(push_consumer_get(c, "orders", "scache-a", deadline, &b, name, sizeof name,
	                               err, sizeof err),
	             SCACHE_OK, "%s", err);
	cr_assert_str_eq(b.arn, a.arn, "the second instance with the name reuses the consumer");
	char body[400], *answer = NULL;
	snprintf(body, sizeof body, "{\"StreamARN\":\"%s\"}", arn);
	cr_assert_eq(kinesis_mock_call(&K, "ListStreamConsumers", body, &answer, err, sizeof err),
	             0);
	json_object *o = json_tokener_parse(answer);
	free(answer);
	cr_assert_eq(json_object_array_length(aws_json_array(o, "Consumers")), 1);
	json_object_put(o);
	/* deregistered, it is gone */
	cr_assert_eq(push_consumer_deregister(c, a.arn, err, sizeof err), SCACHE_OK, "%s", err);
	for (int i = 0; i < 400; i++) { /* up to 20 s: a liveness bound, not a timing */
		cr_assert_eq(
		    kinesis_mock_call(&K, "ListStreamConsumers", body, &answer, err, sizeof err),
		    0);
		o = json_tokener_parse(answer);
		free(answer);
		size_t n = json_object_array_length(aws_json_array(o, "Consumers"));
		json_object_put(o);
		if (n == 0)
			break;
		cr_assert_lt(i, 399, "the consumer was not deregistered");
		util_sleep_ms(50);
	}
	aws_client_free(c);
}

Test(consumer, missing_stream_is_named)
{
	char err[256], name[64];
	aws_client *c = client();
	push_consumer a;
	uint64_t deadline = scache_now_ns(NULL) + 5000000000ull;
	cr_assert_eq(push_consumer_get(c, "nope", "scache-a", deadline, &a, name, sizeof name, err,
	                               sizeof err),
	             SCACHE_ESERVICE);
	cr_assert_str_eq(name, "ResourceNotFoundException");
	cr_assert(strstr(err, "DescribeStreamSummary"), "%s", err);
	aws_client_free(c);
}

/* ---- one subscription ------------------------------------------------------------- */

TestSuite(subscribe, .init = up, .fini = down);

Test(subscribe, request_shape)
{
	char *a = push_sub_request("arn:c", "shardId-000000000001", "AT_SEQUENCE_NUMBER", "49", 0);
	char *b = push_sub_request("arn:c", "shardId-000000000001", "LATEST", "49", 0);
	char *t = push_sub_request("arn:c", "shardId-000000000001", "AT_TIMESTAMP", NULL, 1.5);
	cr_assert_str_eq(a, "{\"ConsumerARN\":\"arn:c\",\"ShardId\":\"shardId-000000000001\","
	                    "\"StartingPosition\":{\"Type\":\"AT_SEQUENCE_NUMBER\","
	                    "\"SequenceNumber\":\"49\"}}");
	cr_assert_str_eq(b, "{\"ConsumerARN\":\"arn:c\",\"ShardId\":\"shardId-000000000001\","
	                    "\"StartingPosition\":{\"Type\":\"LATEST\"}}");
	cr_assert_str_eq(t, "{\"ConsumerARN\":\"arn:c\",\"ShardId\":\"shardId-000000000001\","
	                    "\"StartingPosition\":{\"Type\":\"AT_TIMESTAMP\",\"Timestamp\":1.5}}");
	free(a);
	free(b);
	free(t);
}

/* What a subscription delivered. */
typedef struct got {
	int events;
	int records;
	char seq[8][130];
	char data[8][64];
	char cont[130];
	int64_t behind;
	int have_behind;
	int child_shards_null;
} got;

static void on_event(void *arg, json_object *ev, uint64_t received_ns)
{
	got *g = arg;
	(void)received_ns;
	g->events++;
	json_object *recs = aws_json_array(ev, "Records"), *v;
	cr_assert_not_null(recs, "every SubscribeToShardEvent has Records");
	for (size_t i = 0; i < json_object_array_length(recs) && g->records < 8; i++) {
		json_object *r = json_object_array_get_idx(recs, i);
		const char *seq = aws_json_str(r, "SequenceNumber"), *d = aws_json_str(r, "Data");
		size_t dl = 0;
		unsigned char *raw = d ? util_b64_decode(d, strlen(d), &dl) : NULL;
		util_fmt(g->seq[g->records], sizeof g->seq[0], "%s", seq ? seq : "");
		util_fmt(g->data[g->records], sizeof g->data[0], "%.*s", (int)dl,
		         raw ? (char *)raw : "");
		free(raw);
		g->records++;
	}
	const char *c = aws_json_str(ev, "ContinuationSequenceNumber");
	cr_assert_not_null(c, "every SubscribeToShardEvent has ContinuationSequenceNumber");
	util_copy_str(g->cont, sizeof g->cont, c);
	cr_assert(json_object_object_get_ex(ev, "MillisBehindLatest", &v));
	g->behind = json_object_get_int64(v);
	g->have_behind = 1;
	g->child_shards_null = json_object_object_get_ex(ev, "ChildShards", &v) &&
	                       json_object_is_type(v, json_type_null);
}

/* Run s until `until` returns true or ms pass; then remove it. Returns the curl result
 * (CURLE_OK while still running, -1 when it was cut by the deadline). */
static int run_sub(push_sub *s, int (*until)(got *), got *g, int ms, int (*each)(void *), void *arg)
{
	CURLM *m = curl_multi_init();
	cr_assert_eq(curl_multi_add_handle(m, s->h), CURLM_OK);
	uint64_t end = scache_now_ns(NULL) + (uint64_t)ms * 1000000u;
	int running = 1, rc = -1;
	while (scache_now_ns(NULL) < end) {
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left)))
			if (msg->msg == CURLMSG_DONE)
				rc = msg->data.result;
		if (!running || (until && until(g)))
			break;
		if (each && each(arg))
			break;
		curl_multi_poll(m, NULL, 0, 50, NULL);
	}
	curl_multi_remove_handle(m, s->h);
	curl_multi_cleanup(m);
	return rc;
}

static int has_record(got *g)
{
	return g->records > 0;
}

static void subscribe_and_receive(push_http http)
{
	char err[256], name[64], seq[130], shard[64];
	aws_client *c = client();
	cr_assert_eq(kinesis_mock_create_stream(&K, "orders", 1, err, sizeof err), 0, "%s", err);
	push_consumer pc;
	uint64_t deadline = scache_now_ns(NULL) + 30000000000ull;
	cr_assert_eq(push_consumer_get(c, "orders", "scache-a", deadline, &pc, name, sizeof name,
	                               err, sizeof err),
	             SCACHE_OK, "%s", err);
	cr_assert_eq(kinesis_mock_put(&K, "orders", "hello", 5, NULL, seq, sizeof seq, shard,
	                              sizeof shard, err, sizeof err),
	             0, "%s", err);
	cr_assert_str_eq(shard, "shardId-000000000000");
	push_sub s;
	got g = {0};
	cr_assert_eq(
	    push_sub_init(&s, c, pc.arn, shard, "TRIM_HORIZON", NULL, 0, http, on_event, &g), 0);
	run_sub(&s, has_record, &g, 10000, NULL, NULL);
	cr_assert_eq(s.status, 200);
	cr_assert(s.stream, "the answer is application/vnd.amazon.eventstream");
	long version = 0;
	curl_easy_getinfo(s.h, CURLINFO_HTTP_VERSION, &version);
	cr_assert_eq(version, http == PUSH_HTTP2 ? CURL_HTTP_VERSION_2_0 : CURL_HTTP_VERSION_1_1);
	cr_assert_eq(g.records, 1);
	cr_assert_str_eq(g.seq[0], seq);
	cr_assert_str_eq(g.data[0], "hello");
	cr_assert(g.have_behind);
	/* kinesis-mock: the continuation is the last record's sequence number */
	cr_assert_str_eq(g.cont, seq);
	push_sub_free(&s);
	aws_client_free(c);
}

Test(subscribe, receives_a_put_record_over_h2c)
{
	subscribe_and_receive(PUSH_HTTP2);
}

Test(subscribe, receives_a_put_record_over_http1)
{
	subscribe_and_receive(PUSH_HTTP1);
}

/* Put one record once the subscription runs. */
typedef struct putter {
	int done;
	uint64_t at_ns;
	char seq[130];
} putter;

static int put_once(void *arg)
{
	putter *p = arg;
	char err[256];
	if (!p->done && scache_now_ns(NULL) >= p->at_ns) {
		cr_assert_eq(kinesis_mock_put(&K, "orders", "later", 5, NULL, p->seq, sizeof p->seq,
		                              NULL, 0, err, sizeof err),
		             0, "%s", err);
		p->done = 1;
	}
	return 0;
}

Test(subscribe, latest_receives_what_is_put_after)
{
	char err[256], name[64];
	aws_client *c = client();
	cr_assert_eq(kinesis_mock_create_stream(&K, "orders", 1, err, sizeof err), 0, "%s", err);
	cr_assert_eq(
	    kinesis_mock_put(&K, "orders", "before", 6, NULL, NULL, 0, NULL, 0, err, sizeof err),
	    0);
	push_consumer pc;
	cr_assert_eq(push_consumer_get(c, "orders", "scache-a",
	                               scache_now_ns(NULL) + 30000000000ull, &pc, name, sizeof name,
	                               err, sizeof err),
	             SCACHE_OK, "%s", err);
	push_sub s;
	got g = {0};
	cr_assert_eq(push_sub_init(&s, c, pc.arn, "shardId-000000000000", "LATEST", NULL, 0,
	                           PUSH_HTTP2, on_event, &g),
	             0);
	putter p = {.at_ns = scache_now_ns(NULL) + 500000000u};
	run_sub(&s, has_record, &g, 10000, put_once, &p);
	cr_assert_eq(g.records, 1);
	cr_assert_str_eq(g.data[0], "later", "LATEST starts after what was there");
	cr_assert_str_eq(g.seq[0], p.seq);
	push_sub_free(&s);
	aws_client_free(c);
}

static int an_event(got *g)
{
	return g->events >= 1;
}

Test(subscribe, events_come_without_records_and_a_second_subscription_is_refused)
{
	char err[256], name[64], ename[64], msg[300];
	aws_client *c = client();
	cr_assert_eq(kinesis_mock_create_stream(&K, "orders", 1, err, sizeof err), 0, "%s", err);
	push_consumer pc;
	cr_assert_eq(push_consumer_get(c, "orders", "scache-a",
	                               scache_now_ns(NULL) + 30000000000ull, &pc, name, sizeof name,
	                               err, sizeof err),
	             SCACHE_OK, "%s", err);
	push_sub s, s2;
	got g = {0}, g2 = {0};
	cr_assert_eq(push_sub_init(&s, c, pc.arn, "shardId-000000000000", "LATEST", NULL, 0,
	                           PUSH_HTTP2, on_event, &g),
	             0);
	uint64_t t0 = scache_now_ns(NULL);
	run_sub(&s, an_event, &g, 10000, NULL, NULL);
	cr_assert_geq(g.events, 1, "an event (about once a second), records or not");
	cr_assert_eq(g.records, 0);
	cr_assert_eq(g.behind, 0);
	printf("an empty event within %.0f ms\n", (double)(scache_now_ns(NULL) - t0) / 1e6);
	/* another call within 5 s of the successful one (at once: the 5 s are the service's,
	 * so the test leaves no time for a busy machine to use them up) */
	cr_assert_eq(push_sub_init(&s2, c, pc.arn, "shardId-000000000000", "LATEST", NULL, 0,
	                           PUSH_HTTP2, on_event, &g2),
	             0);
	int rc = run_sub(&s2, NULL, &g2, 5000, NULL, NULL);
	cr_assert_eq(push_sub_end(&s2, rc < 0 ? CURLE_OK : (CURLcode)rc, ename, sizeof ename, msg,
	                          sizeof msg),
	             PUSH_END_REFUSED, "%s", msg);
	cr_assert_str_eq(ename, "ResourceInUseException", "%s", msg);
	cr_assert_eq(g2.events, 0);
	push_sub_free(&s);
	push_sub_free(&s2);
	aws_client_free(c);
}

/* ---- the push source ---------------------------------------------------------------- */

TestSuite(push, .init = up, .fini = down);

/* What a sink was given. */
typedef struct keyset {
	pthread_mutex_t mu;
	char keys[256][48];
	int n, own, gaps;
	char gap[300];
	char log[600];
} keyset;

static void ks_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	keyset *k = arg;
	pthread_mutex_lock(&k->mu);
	for (size_t i = 0; i < n && k->n < 256; i++)
		util_fmt(k->keys[k->n++], sizeof k->keys[0], "%.*s", (int)lens[i], keys[i]);
	pthread_mutex_unlock(&k->mu);
}

static void ks_own(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	keyset *k = arg;
	k->own += (int)n;
	ks_keys(arg, keys, lens, n);
}

static void ks_gap(void *arg, const char *why)
{
	keyset *k = arg;
	k->gaps++;
	util_copy_str(k->gap, sizeof k->gap, why);
}

static void ks_log(void *arg, const char *msg)
{
	keyset *k = arg;
	util_copy_str(k->log, sizeof k->log, msg);
}

static scache_sink sink_of(keyset *k, int own)
{
	memset(k, 0, sizeof *k);
	pthread_mutex_init(&k->mu, NULL);
	scache_sink sk = {.keys = ks_keys, .gap = ks_gap, .log = ks_log, .arg = k};
	if (own)
		sk.keys_own = ks_own;
	return sk;
}

static int count_key(keyset *k, const char *key)
{
	int c = 0;
	for (int i = 0; i < k->n; i++)
		c += !strcmp(k->keys[i], key);
	return c;
}

static void key_of(int i, char *buf, size_t len)
{
	char id[16];
	snprintf(id, sizeof id, "%d", i);
	scache_id_encode("db.users.id", 11, id, strlen(id), buf, len);
}

static scache_source *push_new(const char *stream, const char *consumer, const char *endpoint,
                               const push_opts *o, unsigned list_ms)
{
	scache_stream_config cfg;
	char err[300];
	kinesis_mock_config(&K, stream, &cfg);
	if (endpoint)
		cfg.endpoint = endpoint;
	cfg.list_shards_interval_ms = list_ms;
	/* kinesis-mock delivers a record with its second event after the put, an event about
	 * once a second: 1.1 s of lag on a quiet machine; its ticks stretch on a busy one
	 * (2.2 s seen while the checker ran), so the tests allow 2.5 s, and a strict sync
	 * 10 s before it reports a timeout */
	scache_push_config pc = {
	    .consumer_name = consumer, .sync_wait_ms = 10000, .event_lag_ms = 2500};
	scache_source *src = NULL;
	cr_assert_eq(push_source_create(&cfg, &pc, SCACHE_START_LATEST, o, &src, err, sizeof err),
	             SCACHE_OK, "%s", err);
	return src;
}

static void publish_key(scache_source *src, int i)
{
	char key[48], err[200];
	key_of(i, key, sizeof key);
	const char *keys[1] = {key};
	size_t lens[1] = {strlen(key)};
	/* through the source, as the middleware publishes */
	scache_err e = source_publish(src, keys, lens, 1, err, sizeof err);
	cr_assert_eq(e, SCACHE_OK, "%s", err);
}

/* Sync (strict) until every key in [from, to) was delivered, or ms pass. */
static int sync_until(scache_source *src, const scache_sink *sk, keyset *k, int from, int to,
                      int ms)
{
	uint64_t end = scache_now_ns(NULL) + (uint64_t)ms * 1000000u;
	for (;;) {
		scache_poll_info info;
		memset(&info, 0, sizeof info);
		scache_source_sync(src, scache_now_ns(NULL), sk, &info);
		int all = 1;
		for (int i = from; i < to && all; i++) {
			char key[48];
			key_of(i, key, sizeof key);
			all = count_key(k, key) > 0;
		}
		if (all)
			return 1;
		if (scache_now_ns(NULL) >= end) {
			scache_push_stats st;
			scache_kinesis_push_stats(src, &st);
			printf("sync_until: %s (err %d); events %llu, subscribes %llu, reconnects "
			       "%llu, refused %llu, renewals %llu, shards %llu\n",
			       info.message, (int)info.err, (unsigned long long)st.events,
			       (unsigned long long)st.subscribes, (unsigned long long)st.reconnects,
			       (unsigned long long)st.refused, (unsigned long long)st.renewals,
			       (unsigned long long)st.shards);
			return 0;
		}
	}
}

Test(push, another_instance_sees_what_one_publishes)
{
	char err[256];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 2, err, sizeof err), 0, "%s", err);
	scache_source *a = push_new("users", "inst-a", NULL, NULL, 0);
	scache_source *b = push_new("users", "inst-b", NULL, NULL, 0);
	cr_assert_str_eq(scache_source_name(a), "kinesis-push");
	keyset ka, kb;
	scache_sink sa = sink_of(&ka, 1), sb = sink_of(&kb, 0);
	scache_poll_info info = {0};
	cr_assert_eq(scache_source_sync(b, scache_now_ns(NULL), &sb, &info), SCACHE_OK, "%s",
	             info.message);
	for (int i = 0; i < 6; i++)
		publish_key(a, i);
	cr_assert(sync_until(b, &sb, &kb, 0, 6, 30000), "b saw %d keys", kb.n);
	cr_assert(sync_until(a, &sa, &ka, 0, 6, 30000), "a saw %d keys", ka.n);
	cr_assert_eq(kb.n, 6, "each key once");
	cr_assert_eq(ka.own, 6, "a's own records come back as its own (keys_own)");
	cr_assert_eq(kb.gaps + ka.gaps, 0);
	scache_push_stats st;
	cr_assert_eq(scache_kinesis_push_stats(b, &st), SCACHE_OK);
	cr_assert_eq(st.shards, 2, "one subscription per shard");
	cr_assert_geq(st.subscribes, 2);
	cr_assert_geq(st.events, 2);
	cr_assert_eq(st.records, 6);
	cr_assert_eq(st.polling, 0);
	cr_assert(strstr(st.consumer_arn, "/consumer/inst-b:"), "%s", st.consumer_arn);
	scache_source_stats ss;
	scache_source_stats_get(b, &ss);
	cr_assert_eq(ss.keys, 6);
	cr_assert_eq(ss.partitions, 2);
	cr_assert_eq(scache_kinesis_push_stats(NULL, &st), SCACHE_EINVAL);
	scache_source_free(a);
	scache_source_free(b);
}

Test(push, strict_sync_waits_for_the_next_event_bounded_does_not)
{
	char err[256];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 1, err, sizeof err), 0, "%s", err);
	scache_source *a = push_new("users", "inst-a", NULL, NULL, 0);
	keyset ka;
	scache_sink sa = sink_of(&ka, 0);
	scache_poll_info info = {0};
	cr_assert_eq(scache_source_sync(a, scache_now_ns(NULL), &sa, &info), SCACHE_OK, "%s",
	             info.message);
	double strict_max = 0, strict_sum = 0;
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = scache_now_ns(NULL);
		memset(&info, 0, sizeof info);
		cr_assert_eq(scache_source_sync(a, t0, &sa, &info), SCACHE_OK, "%s", info.message);
		double ms = (double)(scache_now_ns(NULL) - t0) / 1e6;
		strict_sum += ms;
		if (ms > strict_max)
			strict_max = ms;
		/* right after: a sync whose bound the strict one's event already met (since no
		 * later than that sync's start: what the middleware's bounded staleness asks
		 * when a recent event suffices) takes what is queued and does not wait */
		scache_push_stats before, after;
		scache_kinesis_push_stats(a, &before);
		cr_assert_geq(before.sync_waits, (uint64_t)i + 1, "each strict sync waited");
		memset(&info, 0, sizeof info);
		cr_assert_eq(scache_source_sync(a, t0, &sa, &info), SCACHE_OK);
		scache_kinesis_push_stats(a, &after);
		cr_assert_eq(after.sync_waits, before.sync_waits,
		             "a bounded sync after an event does not wait");
	}
	/* a figure, not a check: the strict sync's wait is bounded by sync_wait_ms (its
	 * ETIMEOUT would have failed the assertion above) */
	printf("strict sync over kinesis-mock: mean %.0f ms, max %.0f ms (5 syncs)\n",
	       strict_sum / 5, strict_max);
	/* what was published before a strict sync began is delivered by that one sync */
	for (int i = 0; i < 3; i++) {
		char key[48];
		key_of(100 + i, key, sizeof key);
		publish_key(a, 100 + i);
		memset(&info, 0, sizeof info);
		cr_assert_eq(scache_source_sync(a, scache_now_ns(NULL), &sa, &info), SCACHE_OK);
		cr_assert_eq(count_key(&ka, key), 1, "key %d was put before the sync began", i);
		util_sleep_ms((unsigned)(aws_random() % 1000));
	}
	scache_source_free(a);
}

/* Publish a key every 150 ms from a thread, while the test syncs. */
typedef struct feeder {
	scache_source *src;
	int from, to;
	pthread_t t;
} feeder;

static void *feed(void *arg)
{
	feeder *f = arg;
	for (int i = f->from; i < f->to; i++) {
		publish_key(f->src, i);
		util_sleep_ms(150);
	}
	return NULL;
}

Test(push, renewals_across_subscription_ends_lose_nothing)
{
	char err[256];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 1, err, sizeof err), 0, "%s", err);
	push_opts o = {.subscription_ms = 6000};
	scache_source *a = push_new("users", "inst-a", NULL, &o, 0);
	scache_source *w = push_new("users", "writer", NULL, NULL, 0);
	keyset ka;
	scache_sink sa = sink_of(&ka, 0);
	feeder f = {.src = w, .from = 0, .to = 90};
	pthread_create(&f.t, NULL, feed, &f);
	int ok = sync_until(a, &sa, &ka, 0, 90, 40000);
	pthread_join(f.t, NULL);
	if (!ok)
		ok = sync_until(a, &sa, &ka, 0, 90, 5000);
	cr_assert(ok, "%d keys of 90", ka.n);
	for (int i = 0; i < 90; i++) {
		char key[48];
		key_of(i, key, sizeof key);
		cr_assert_eq(count_key(&ka, key), 1, "key %d delivered %d times", i,
		             count_key(&ka, key));
	}
	scache_push_stats st;
	scache_kinesis_push_stats(a, &st);
	printf("renewals %llu, reconnects %llu, refused %llu, subscribes %llu over %llu events\n",
	       (unsigned long long)st.renewals, (unsigned long long)st.reconnects,
	       (unsigned long long)st.refused, (unsigned long long)st.subscribes,
	       (unsigned long long)st.events);
	cr_assert_geq(st.renewals, 2, "a 6 s subscription renewed over ~14 s");
	/* kinesis-mock notices a closed subscription at its next event (about a second, more
	 * on a busy machine): a renewal may be refused (ResourceInUseException) until then,
	 * and is tried again after a back-off; how often is the service's timing, a figure
	 * (printed above), while what must hold is that nothing was lost or repeated */
	cr_assert_eq(ka.gaps, 0);
	scache_source_free(w);
	scache_source_free(a);
}

/* ---- a TCP relay that can cut a connection in the middle of a message -------------- */

typedef struct relay {
	int lfd, port, upstream;
	pthread_t acceptor;
	pthread_t conns[64];
	int nconns;
	int stop;
	int armed; /* cut the next long-lived connection's next answer chunk in half */
	int cuts;
	int refuse_h2c; /* close connections that open with HTTP/2's preface */
	int refused;
	pthread_mutex_t mu;
} relay;

typedef struct relay_conn {
	relay *r;
	int cfd, ufd;
	uint64_t opened_ns;
} relay_conn;

static void *relay_pump(void *arg)
{
	relay_conn *c = arg;
	relay *r = c->r;
	char buf[16384];
	for (;;) {
		struct pollfd pf[2] = {{c->cfd, POLLIN, 0}, {c->ufd, POLLIN, 0}};
		int rc = poll(pf, 2, 100);
		pthread_mutex_lock(&r->mu);
		int stop = r->stop;
		pthread_mutex_unlock(&r->mu);
		if (stop || rc < 0)
			break;
		if (pf[0].revents) {
			ssize_t n = read(c->cfd, buf, sizeof buf);
			if (n <= 0)
				break;
			pthread_mutex_lock(&r->mu);
			int refuse = r->refuse_h2c && n >= 14 && !memcmp(buf, "PRI * HTTP/2.0", 14);
			r->refused += refuse;
			pthread_mutex_unlock(&r->mu);
			if (refuse || write(c->ufd, buf, (size_t)n) != n)
				break; /* an HTTP/1.1-only endpoint, as some proxies are */
		}
		if (pf[1].revents) {
			ssize_t n = read(c->ufd, buf, sizeof buf);
			if (n <= 0)
				break;
			pthread_mutex_lock(&r->mu);
			int cut = r->armed && n >= 64 &&
			          scache_now_ns(NULL) - c->opened_ns > 1500000000ull;
			if (cut) {
				r->armed = 0;
				r->cuts++;
			}
			pthread_mutex_unlock(&r->mu);
			if (cut) {
				/* half a chunk of a subscription's answer: mid-message */
				if (write(c->cfd, buf, (size_t)n / 2) < 0)
					break;
				break;
			}
			if (write(c->cfd, buf, (size_t)n) != n)
				break;
		}
	}
	close(c->cfd);
	close(c->ufd);
	free(c);
	return NULL;
}

static void *relay_accept(void *arg)
{
	relay *r = arg;
	for (;;) {
		struct pollfd pf = {r->lfd, POLLIN, 0};
		int rc = poll(&pf, 1, 100);
		pthread_mutex_lock(&r->mu);
		int stop = r->stop;
		pthread_mutex_unlock(&r->mu);
		if (stop)
			break;
		if (rc <= 0)
			continue;
		int cfd = accept(r->lfd, NULL, NULL);
		if (cfd < 0)
			continue;
		int ufd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port = htons((uint16_t)r->upstream),
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (ufd < 0 || connect(ufd, (struct sockaddr *)&a, sizeof a) || r->nconns == 64) {
			close(cfd);
			if (ufd >= 0)
				close(ufd);
			continue;
		}
		relay_conn *c = malloc(sizeof *c);
		c->r = r;
		c->cfd = cfd;
		c->ufd = ufd;
		c->opened_ns = scache_now_ns(NULL);
		pthread_create(&r->conns[r->nconns++], NULL, relay_pump, c);
	}
	return NULL;
}

static void relay_start(relay *r, int upstream)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->mu, NULL);
	r->upstream = upstream;
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	cr_assert_eq(bind(r->lfd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(r->lfd, 16), 0);
	getsockname(r->lfd, (struct sockaddr *)&a, &al);
	r->port = ntohs(a.sin_port);
	pthread_create(&r->acceptor, NULL, relay_accept, r);
}

static void relay_stop(relay *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->acceptor, NULL);
	for (int i = 0; i < r->nconns; i++)
		pthread_join(r->conns[i], NULL);
	close(r->lfd);
}

Test(push, a_connection_dropped_mid_message_loses_nothing)
{
	char err[256], endpoint[64];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 1, err, sizeof err), 0, "%s", err);
	relay r;
	relay_start(&r, K.port);
	snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", r.port);
	scache_source *a = push_new("users", "inst-a", endpoint, NULL, 0);
	scache_source *w = push_new("users", "writer", NULL, NULL, 0);
	keyset ka;
	scache_sink sa = sink_of(&ka, 0);
	for (int i = 0; i < 3; i++)
		publish_key(w, i);
	cr_assert(sync_until(a, &sa, &ka, 0, 3, 30000));
	pthread_mutex_lock(&r.mu);
	r.armed = 1;
	pthread_mutex_unlock(&r.mu);
	for (int i = 3; i < 6; i++)
		publish_key(w, i);
	cr_assert(sync_until(a, &sa, &ka, 3, 6, 30000), "%d keys", ka.n);
	for (int i = 6; i < 9; i++)
		publish_key(w, i);
	cr_assert(sync_until(a, &sa, &ka, 6, 9, 30000), "%d keys", ka.n);
	pthread_mutex_lock(&r.mu);
	int cuts = r.cuts;
	pthread_mutex_unlock(&r.mu);
	cr_assert_eq(cuts, 1, "the relay cut one answer mid-message");
	cr_assert_eq(ka.n, 9, "each key once");
	scache_push_stats st;
	scache_kinesis_push_stats(a, &st);
	cr_assert_geq(st.reconnects, 1);
	cr_assert_eq(ka.gaps, 0);
	/* the test hook cuts too */
	cr_assert_eq(push_test_cut(a), 1);
	for (int i = 9; i < 12; i++)
		publish_key(w, i);
	cr_assert(sync_until(a, &sa, &ka, 9, 12, 30000), "%d keys", ka.n);
	cr_assert_eq(ka.n, 12);
	scache_source_free(w);
	scache_source_free(a);
	relay_stop(&r);
}

Test(push, an_endpoint_without_h2c_gets_http1_subscriptions)
{
	char err[256], endpoint[64];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 1, err, sizeof err), 0, "%s", err);
	relay r;
	relay_start(&r, K.port);
	pthread_mutex_lock(&r.mu);
	r.refuse_h2c = 1;
	pthread_mutex_unlock(&r.mu);
	snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", r.port);
	scache_source *a = push_new("users", "inst-a", endpoint, NULL, 0);
	scache_source *w = push_new("users", "writer", NULL, NULL, 0);
	keyset ka;
	scache_sink sa = sink_of(&ka, 0);
	for (int i = 0; i < 3; i++)
		publish_key(w, i);
	cr_assert(sync_until(a, &sa, &ka, 0, 3, 30000), "%d keys", ka.n);
	pthread_mutex_lock(&r.mu);
	int refused = r.refused;
	pthread_mutex_unlock(&r.mu);
	cr_assert_eq(refused, 1, "one h2c attempt, then HTTP/1.1");
	cr_assert(strstr(ka.log, "does not speak HTTP/2 without TLS"), "%s", ka.log);
	scache_source_free(w);
	scache_source_free(a);
	relay_stop(&r);
}

Test(push, a_split_during_a_subscription_reads_parent_then_children)
{
	char err[256];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 1, err, sizeof err), 0, "%s", err);
	scache_source *a = push_new("users", "inst-a", NULL, NULL, 1000);
	scache_source *w = push_new("users", "writer", NULL, NULL, 0);
	keyset ka;
	scache_sink sa = sink_of(&ka, 0);
	publish_key(w, 0);
	cr_assert(sync_until(a, &sa, &ka, 0, 1, 30000));
	cr_assert_eq(kinesis_mock_call(&K, "SplitShard",
	                               "{\"StreamName\":\"users\",\"ShardToSplit\":"
	                               "\"shardId-000000000000\",\"NewStartingHashKey\":"
	                               "\"170141183460469231731687303715884105728\"}",
	                               NULL, err, sizeof err),
	             0, "%s", err);
	cr_assert_eq(kinesis_mock_wait_active(&K, "users", err, sizeof err), 0);
	for (int i = 1; i < 9; i++)
		publish_key(w, i);
	cr_assert(sync_until(a, &sa, &ka, 1, 9, 30000), "%d keys", ka.n);
	cr_assert_eq(ka.n, 9);
	cr_assert_eq(ka.gaps, 0);
	scache_push_stats st;
	scache_kinesis_push_stats(a, &st);
	cr_assert_eq(st.shards, 2, "the two children are subscribed, the parent no more: %llu",
	             (unsigned long long)st.shards);
	scache_source_free(w);
	scache_source_free(a);
}

Test(push, a_merge_during_a_subscription_reads_parents_then_the_child)
{
	char err[256];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 2, err, sizeof err), 0, "%s", err);
	scache_source *a = push_new("users", "inst-a", NULL, NULL, 1000);
	scache_source *w = push_new("users", "writer", NULL, NULL, 0);
	keyset ka;
	scache_sink sa = sink_of(&ka, 0);
	for (int i = 0; i < 4; i++)
		publish_key(w, i);
	cr_assert(sync_until(a, &sa, &ka, 0, 4, 30000));
	cr_assert_eq(kinesis_mock_call(&K, "MergeShards",
	                               "{\"StreamName\":\"users\",\"ShardToMerge\":"
	                               "\"shardId-000000000000\",\"AdjacentShardToMerge\":"
	                               "\"shardId-000000000001\"}",
	                               NULL, err, sizeof err),
	             0, "%s", err);
	cr_assert_eq(kinesis_mock_wait_active(&K, "users", err, sizeof err), 0);
	for (int i = 4; i < 10; i++)
		publish_key(w, i);
	cr_assert(sync_until(a, &sa, &ka, 4, 10, 30000), "%d keys", ka.n);
	cr_assert_eq(ka.n, 10);
	cr_assert_eq(ka.gaps, 0);
	scache_push_stats st;
	scache_kinesis_push_stats(a, &st);
	cr_assert_eq(st.shards, 1, "the child is subscribed, the two parents no more: %llu",
	             (unsigned long long)st.shards);
	scache_source_free(w);
	scache_source_free(a);
}

Test(push, the_stream_deleted_is_a_gap_and_syncs_fail_until_it_is_back)
{
	char err[256];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 1, err, sizeof err), 0, "%s", err);
	scache_source *a = push_new("users", "inst-a", NULL, NULL, 1000);
	keyset ka;
	scache_sink sa = sink_of(&ka, 0);
	scache_poll_info info = {0};
	cr_assert_eq(scache_source_sync(a, scache_now_ns(NULL), &sa, &info), SCACHE_OK, "%s",
	             info.message);
	cr_assert_eq(kinesis_mock_delete_stream(&K, "users", err, sizeof err), 0, "%s", err);
	scache_err e = SCACHE_OK;
	for (int i = 0; i < 40 && e != SCACHE_ESERVICE; i++) {
		memset(&info, 0, sizeof info);
		e = scache_source_sync(a, scache_now_ns(NULL), &sa, &info);
	}
	cr_assert_eq(e, SCACHE_ESERVICE, "%s", info.message);
	cr_assert(strstr(info.message, "stream 'users' not found"), "%s", info.message);
	cr_assert_eq(ka.gaps, 1, "one gap: %s", ka.gap);
	cr_assert(strstr(ka.gap, "deleted"), "%s", ka.gap);
	/* back: read from its start */
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 1, err, sizeof err), 0, "%s", err);
	scache_source *w = push_new("users", "writer", NULL, NULL, 0);
	publish_key(w, 1);
	cr_assert(sync_until(a, &sa, &ka, 1, 2, 30000), "%d keys; %s", ka.n, ka.log);
	cr_assert_eq(ka.gaps, 1);
	scache_source_free(w);
	scache_source_free(a);
}

Test(push, a_bad_consumer_name_is_a_configuration_error)
{
	scache_stream_config cfg;
	char err[256];
	kinesis_mock_config(&K, "users", &cfg);
	scache_push_config pc = {.consumer_name = "no spaces"};
	scache_source *src = NULL;
	cr_assert_eq(
	    scache_kinesis_push_source_new(&cfg, &pc, SCACHE_START_LATEST, &src, err, sizeof err),
	    SCACHE_ECONFIG);
	cr_assert_null(src);
	cr_assert(strstr(err, "'no spaces'"), "%s", err);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Put-to-delivery latency: from PutRecords returning to the key reaching the sink, with
 * syncs that wait for nothing (since 0) every 5 ms. Prints p50 and max (the README's
 * figure); asserts only that each arrives (a timing is a figure, not a check: 30 s is
 * the give-up of a key lost, far above the second or so a delivery takes). */
Test(push, put_to_delivery_latency)
{
	char err[256];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 1, err, sizeof err), 0, "%s", err);
	scache_source *a = push_new("users", "inst-a", NULL, NULL, 0);
	scache_source *w = push_new("users", "writer", NULL, NULL, 0);
	keyset ka;
	scache_sink sa = sink_of(&ka, 0);
	enum { N = 12 };
	double ms[N];
	for (int i = 0; i < N; i++) {
		char key[48];
		key_of(i, key, sizeof key);
		util_sleep_ms((unsigned)(aws_random() % 300)); /* not in step with the events */
		publish_key(w, i);
		uint64_t t0 = scache_now_ns(NULL);
		while (!count_key(&ka, key)) {
			scache_poll_info info = {0};
			scache_source_sync(a, 0, &sa, &info);
			cr_assert_lt(scache_now_ns(NULL) - t0, 30000000000ull,
			             "key %d not delivered in 30 s", i);
			util_sleep_ms(5);
		}
		ms[i] = (double)(scache_now_ns(NULL) - t0) / 1e6;
	}
	qsort(ms, N, sizeof ms[0], cmp_double);
	printf("put-to-delivery over kinesis-mock (push, %d puts): p50 %.0f ms, max %.0f ms, "
	       "min %.0f ms\n",
	       N, ms[N / 2], ms[N - 1], ms[0]);
	scache_source_free(w);
	scache_source_free(a);
}

Test(push, no_consumer_to_be_had_falls_back_to_polling)
{
	char err[300], arn[256], body[400];
	cr_assert_eq(kinesis_mock_create_stream(&K, "users", 1, err, sizeof err), 0, "%s", err);
	cr_assert_eq(kinesis_mock_stream_arn(&K, "users", arn, sizeof arn, err, sizeof err), 0);
	/* the stream's 20 consumers (AWS's limit, which kinesis-mock keeps) taken */
	for (int i = 0; i < 20; i++) {
		snprintf(body, sizeof body, "{\"StreamARN\":\"%s\",\"ConsumerName\":\"other-%d\"}",
		         arn, i);
		cr_assert_eq(
		    kinesis_mock_call(&K, "RegisterStreamConsumer", body, NULL, err, sizeof err), 0,
		    "%s", err);
	}
	scache_stream_config cfg;
	kinesis_mock_config(&K, "users", &cfg);
	scache_push_config strict = {.consumer_name = "inst-x", .no_fallback = 1};
	scache_source *src = NULL;
	cr_assert_eq(scache_kinesis_push_source_new(&cfg, &strict, SCACHE_START_LATEST, &src, err,
	                                            sizeof err),
	             SCACHE_ESERVICE);
	cr_assert(strstr(err, "LimitExceededException"), "%s", err);
	scache_source *a = push_new("users", "inst-x", NULL, NULL, 0);
	scache_push_stats st;
	cr_assert_eq(scache_kinesis_push_stats(a, &st), SCACHE_OK);
	cr_assert_eq(st.polling, 1);
	cr_assert_str_eq(st.consumer_arn, "");
	scache_source *w = push_new("users", "writer-does-not-fit", NULL, NULL, 0);
	keyset ka;
	scache_sink sa = sink_of(&ka, 0);
	publish_key(w, 1);
	cr_assert(sync_until(a, &sa, &ka, 1, 2, 30000), "%d keys", ka.n);
	scache_source_stats ss;
	scache_source_stats_get(a, &ss);
	cr_assert_geq(ss.syncs, 1, "the polling source's counters");
	cr_assert_eq(ka.gaps, 0);
	scache_source_free(w);
	scache_source_free(a);
}
