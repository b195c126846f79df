/*
 * Live tests of Kinesis enhanced fan-out against kinesis-mock (tests/kinesis_mock.c):
 * the consumer's lifecycle and SubscribeToShard as lib/kinesis_push.c speaks them (over
 * h2c, as AWS's HTTP/2, and over HTTP/1.1), and the push source (lib/push_source.c)
 * behind the source interface: records delivered, renewals across a subscription's end,
 * a connection cut mid-message, a split, the stream deleted, freshness.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis.h"
#include "kinesis_mock.h"
#include "kinesis_push.h"
#include "scache/cache.h"
#include "scache/source.h"
#include "scache/stream.h"
#include "util.h"

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

TestSuite(consumer, .init = up, .fini = down, .timeout = 120);

Test(consumer, registered_once_then_reused_by_name)
{
	char err[256], name[64], arn[256];
	aws_client *c = client();
	cr_assert_eq(kinesis_mock_create_stream(&K, "orders", 1, err, sizeof err), 0, "%s", err);
	cr_assert_eq(kinesis_mock_stream_arn(&K, "orders", arn, sizeof arn, err, sizeof err), 0);
	push_consumer a, b;
	uint64_t deadline = scache_now_ns(NULL) + 10000000000ull;
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
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(
		    kinesis_mock_call(&K, "ListStreamConsumers", body, &answer, err, sizeof err),
		    0);
		o = json_tokener_parse(answer);
		free(answer);
		size_t n = json_object_array_length(aws_json_array(o, "Consumers"));
		json_object_put(o);
		if (n == 0)
			break;
		cr_assert_lt(i, 99, "the consumer was not deregistered");
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

TestSuite(subscribe, .init = up, .fini = down, .timeout = 120);

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
	uint64_t deadline = scache_now_ns(NULL) + 10000000000ull;
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

Test(subscribe, latest_receives_what_is_put_after, .timeout = 60)
{
	char err[256], name[64];
	aws_client *c = client();
	cr_assert_eq(kinesis_mock_create_stream(&K, "orders", 1, err, sizeof err), 0, "%s", err);
	cr_assert_eq(
	    kinesis_mock_put(&K, "orders", "before", 6, NULL, NULL, 0, NULL, 0, err, sizeof err),
	    0);
	push_consumer pc;
	cr_assert_eq(push_consumer_get(c, "orders", "scache-a",
	                               scache_now_ns(NULL) + 10000000000ull, &pc, name, sizeof name,
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

static int two_events(got *g)
{
	return g->events >= 2;
}

Test(subscribe, events_come_without_records_and_a_second_subscription_is_refused, .timeout = 60)
{
	char err[256], name[64], ename[64], msg[300];
	aws_client *c = client();
	cr_assert_eq(kinesis_mock_create_stream(&K, "orders", 1, err, sizeof err), 0, "%s", err);
	push_consumer pc;
	cr_assert_eq(push_consumer_get(c, "orders", "scache-a",
	                               scache_now_ns(NULL) + 10000000000ull, &pc, name, sizeof name,
	                               err, sizeof err),
	             SCACHE_OK, "%s", err);
	push_sub s, s2;
	got g = {0}, g2 = {0};
	cr_assert_eq(push_sub_init(&s, c, pc.arn, "shardId-000000000000", "LATEST", NULL, 0,
	                           PUSH_HTTP2, on_event, &g),
	             0);
	uint64_t t0 = scache_now_ns(NULL);
	run_sub(&s, two_events, &g, 10000, NULL, NULL);
	cr_assert_geq(g.events, 2, "an event about once a second, records or not");
	cr_assert_eq(g.records, 0);
	cr_assert_eq(g.behind, 0);
	printf("two empty events within %.0f ms\n", (double)(scache_now_ns(NULL) - t0) / 1e6);
	/* another call within 5 s of the successful one */
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
