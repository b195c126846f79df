/*
 * The DynamoDB Streams source (scache/dynamodb.h) against a loopback responder: no local
 * implementation of DynamoDB Streams exists (dynalite has none), so this file serves the
 * shapes of AWS's API reference (ListStreams, DescribeStream paged by
 * ExclusiveStartShardId / LastEvaluatedShardId with ShardFilter CHILD_SHARDS,
 * GetShardIterator, GetRecords, and the errors ExpiredIteratorException,
 * LimitExceededException, TrimmedDataAccessException, ResourceNotFoundException) from a
 * small HTTP/1.1 server on 127.0.0.1, one thread per connection. It checks what every
 * request carries: X-Amz-Target DynamoDBStreams_20120810.<Op>, Content-Type
 * application/x-amz-json-1.0, and a SigV4 Authorization scoped to service "dynamodb".
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <scache/scache.h>

#include "source_internal.h" /* source_publish */

#define ARN      "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2026-01-02T00:00:00.000"
#define ARN_0    "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2025-01-01T00:00:00.000"
#define SHARD(i) "shardId-00000001700000000000-0000000" #i

/* ---- the responder's world ------------------------------------------------------- */

typedef struct wshard {
	char id[64], parent[64];
	int closed;
	char *recs[32]; /* GetRecords' record objects, JSON text */
	int n;
} wshard;

typedef struct inject {
	char op[32];
	int status;
	char body[256];
} inject;

static struct {
	pthread_mutex_t mu;
	wshard sh[8];
	int nsh;
	int page; /* DescribeStream shards a page */
	const char *status;
	int stream_gone;
	inject inj[16];
	int ninj;
	int calls_list, calls_describe, calls_iter, calls_get, bad_headers;
	char log[4096]; /* "Op:detail;" of interesting requests */
	int lfd;
	int stop;
	pthread_t acceptor;
	pthread_t conns[64];
	int nconns;
	int port;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void logf_(const char *s)
{
	strncat(W.log, s, sizeof W.log - strlen(W.log) - 1);
}

static wshard *add_shard(const char *id, const char *parent)
{
	pthread_mutex_lock(&W.mu);
	wshard *s = &W.sh[W.nsh++];
	memset(s, 0, sizeof *s);
	snprintf(s->id, sizeof s->id, "%s", id);
	snprintf(s->parent, sizeof s->parent, "%s", parent ? parent : "");
	pthread_mutex_unlock(&W.mu);
	return s;
}

/* A record as GetRecords answers it. image NULL: no NewImage (KEYS_ONLY). */
static void add_record(wshard *s, int seq, const char *event, const char *id, const char *image)
{
	char buf[1024];
	snprintf(buf, sizeof buf,
	         "{\"eventID\":\"e%d\",\"eventName\":\"%s\",\"eventVersion\":\"1.1\","
	         "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\",\"dynamodb\":{"
	         "\"ApproximateCreationDateTime\":%d,\"Keys\":{\"id\":{\"S\":\"%s\"}}%s%s,"
	         "\"SequenceNumber\":\"%d\",\"SizeBytes\":26,\"StreamViewType\":\"%s\"}}",
	         seq, event, 1767312000 + seq, id, image ? ",\"NewImage\":" : "",
	         image ? image : "", seq, image ? "NEW_AND_OLD_IMAGES" : "KEYS_ONLY");
	pthread_mutex_lock(&W.mu);
	s->recs[s->n++] = strdup(buf);
	pthread_mutex_unlock(&W.mu);
}

static void inject_error(const char *op, int status, const char *body)
{
	pthread_mutex_lock(&W.mu);
	inject *j = &W.inj[W.ninj++];
	snprintf(j->op, sizeof j->op, "%s", op);
	j->status = status;
	snprintf(j->body, sizeof j->body, "%s", body);
	pthread_mutex_unlock(&W.mu);
}

static wshard *find_shard(const char *id)
{
	for (int i = 0; i < W.nsh; i++)
		if (!strcmp(W.sh[i].id, id))
			return &W.sh[i];
	return NULL;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return o && json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static void err_body(char *out, size_t len, int *status, int st, const char *name, const char *msg)
{
	*status = st;
	snprintf(out, len,
	         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#%s\",\"message\":\"%s\"}", name,
	         msg);
}

/* The answer to one operation, AWS's shapes. Caller holds W.mu. */
static void answer(const char *op, json_object *req, int *status, char *out, size_t len)
{
	char *w = out;
	size_t left = len;
#define PUT(...)                                                                                   \
	do {                                                                                       \
		int k_ = snprintf(w, left, __VA_ARGS__);                                           \
		w += k_;                                                                           \
		left -= (size_t)k_;                                                                \
	} while (0)
	*status = 200;
	for (int i = 0; i < W.ninj; i++) {
		if (strcmp(W.inj[i].op, op) != 0)
			continue;
		*status = W.inj[i].status;
		snprintf(out, len, "%s", W.inj[i].body);
		memmove(&W.inj[i], &W.inj[i + 1], (size_t)(W.ninj - i - 1) * sizeof W.inj[0]);
		W.ninj--;
		return;
	}
	if (W.stream_gone && strcmp(op, "ListStreams") != 0) {
		err_body(out, len, status, 400, "ResourceNotFoundException",
		         "Requested resource not found: Stream: " ARN " not found");
		return;
	}
	if (!strcmp(op, "ListStreams")) {
		W.calls_list++;
		PUT("{\"Streams\":[{\"StreamArn\":\"%s\",\"StreamLabel\":\"2025-01-01T00:00:00."
		    "000\","
		    "\"TableName\":\"users\"},{\"StreamArn\":\"%s\",\"StreamLabel\":"
		    "\"2026-01-02T00:00:00.000\",\"TableName\":\"users\"}]}",
		    ARN_0, ARN);
	} else if (!strcmp(op, "DescribeStream")) {
		W.calls_describe++;
		const char *arn = jstr(req, "StreamArn");
		const char *from = jstr(req, "ExclusiveStartShardId");
		json_object *f = NULL;
		json_object_object_get_ex(req, "ShardFilter", &f);
		const char *parent = jstr(f, "ShardId");
		char l[160];
		snprintf(l, sizeof l, "DescribeStream:%s%s%s;", from ? from : "-",
		         parent ? ":children of " : "", parent ? parent : "");
		logf_(l);
		int disabled = arn && !strcmp(arn, ARN_0);
		PUT("{\"StreamDescription\":{\"StreamArn\":\"%s\",\"StreamLabel\":\"x\","
		    "\"StreamStatus\":\"%s\",\"StreamViewType\":\"NEW_AND_OLD_IMAGES\","
		    "\"TableName\":\"users\",\"KeySchema\":[{\"AttributeName\":\"id\",\"KeyType\":"
		    "\"HASH\"}],\"Shards\":[",
		    arn ? arn : "",
		    disabled   ? "DISABLED"
		    : W.status ? W.status
		               : "ENABLED");
		int i = 0, put = 0;
		if (from)
			for (; i < W.nsh && strcmp(W.sh[i].id, from) != 0; i++)
				;
		i = from ? i + 1 : 0;
		const char *lastid = NULL;
		for (; i < W.nsh && put < W.page; i++) {
			wshard *s = &W.sh[i];
			if (disabled || (parent && strcmp(s->parent, parent) != 0))
				continue;
			PUT("%s{\"ShardId\":\"%s\",\"SequenceNumberRange\":{"
			    "\"StartingSequenceNumber\":"
			    "\"1\"%s%s%s}%s%s%s}",
			    put ? "," : "", s->id, s->closed ? ",\"EndingSequenceNumber\":\"" : "",
			    s->closed ? "999" : "", s->closed ? "\"" : "",
			    s->parent[0] ? ",\"ParentShardId\":\"" : "", s->parent,
			    s->parent[0] ? "\"" : "");
			put++;
			lastid = s->id;
		}
		PUT("]");
		if (i < W.nsh && lastid)
			PUT(",\"LastEvaluatedShardId\":\"%s\"", lastid);
		PUT("}}");
	} else if (!strcmp(op, "GetShardIterator")) {
		W.calls_iter++;
		wshard *s = find_shard(jstr(req, "ShardId") ? jstr(req, "ShardId") : "");
		const char *type = jstr(req, "ShardIteratorType");
		const char *seq = jstr(req, "SequenceNumber");
		if (!s || !type) {
			err_body(out, len, status, 400, "ResourceNotFoundException",
			         "no such shard");
			return;
		}
		char l[160];
		snprintf(l, sizeof l, "GetShardIterator:%s:%s%s%s;", s->id + 30, type,
		         seq ? ":" : "", seq ? seq : "");
		logf_(l);
		int pos = 0;
		if (!strcmp(type, "LATEST"))
			pos = s->n;
		else if (!strcmp(type, "AFTER_SEQUENCE_NUMBER") && seq)
			for (pos = 0; pos < s->n;) {
				json_object *r = json_tokener_parse(s->recs[pos++]);
				json_object *d = NULL;
				json_object_object_get_ex(r, "dynamodb", &d);
				int hit = !strcmp(jstr(d, "SequenceNumber"), seq);
				json_object_put(r);
				if (hit)
					break;
			}
		PUT("{\"ShardIterator\":\"it/%d/%d\"}", (int)(s - W.sh), pos);
	} else if (!strcmp(op, "GetRecords")) {
		W.calls_get++;
		int si = -1, pos = 0;
		const char *it = jstr(req, "ShardIterator");
		json_object *lim = NULL;
		json_object_object_get_ex(req, "Limit", &lim);
		if (!it || sscanf(it, "it/%d/%d", &si, &pos) != 2 || si < 0 || si >= W.nsh ||
		    json_object_get_int(lim) != 1000) {
			err_body(out, len, status, 400, "ValidationException", "bad request");
			return;
		}
		wshard *s = &W.sh[si];
		PUT("{\"Records\":[");
		int end = pos + 3 < s->n ? pos + 3 : s->n; /* pages of 3: several calls */
		for (int i = pos; i < end; i++)
			PUT("%s%s", i > pos ? "," : "", s->recs[i]);
		PUT("]");
		if (!(s->closed && end == s->n && pos == s->n))
			PUT(",\"NextShardIterator\":\"it/%d/%d\"", si, end);
		PUT("}");
	} else {
		err_body(out, len, status, 400, "UnknownOperationException", "unknown");
	}
#undef PUT
}

/* ---- HTTP/1.1 ---------------------------------------------------------------------- */

static const char *header(const char *head, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
		if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
			const char *v = p + 3 + nl;
			while (*v == ' ')
				v++;
			size_t n = strcspn(v, "\r");
			snprintf(buf, len, "%.*s", (int)n, v);
			return buf;
		}
	return NULL;
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static __thread char in[1 << 16], out[1 << 17];
	size_t have = 0;
	for (;;) {
		char *end = NULL;
		while (!(end = (have ? strstr(in, "\r\n\r\n") : NULL))) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (W.stop)
				goto done;
			if (poll(&p, 1, 100) <= 0)
				continue;
			ssize_t r = recv(fd, in + have, sizeof in - have - 1, 0);
			if (r <= 0)
				goto done;
			have += (size_t)r;
			in[have] = '\0';
		}
		char cl[32], target[128], ctype[128], auth[512];
		size_t hl = (size_t)(end - in) + 4;
		*end = '\0';
		size_t blen =
		    header(in, "Content-Length", cl, sizeof cl) ? strtoul(cl, NULL, 10) : 0;
		int ok_t = header(in, "X-Amz-Target", target, sizeof target) &&
		           !strncmp(target, "DynamoDBStreams_20120810.", 25);
		int ok_c = header(in, "Content-Type", ctype, sizeof ctype) &&
		           !strcmp(ctype, "application/x-amz-json-1.0");
		int ok_a = header(in, "Authorization", auth, sizeof auth) &&
		           !strncmp(auth, "AWS4-HMAC-SHA256 Credential=", 28) &&
		           strstr(auth, "/us-east-1/dynamodb/aws4_request");
		*end = '\r';
		while (have < hl + blen) {
			ssize_t r = recv(fd, in + have, sizeof in - have - 1, 0);
			if (r <= 0)
				goto done;
			have += (size_t)r;
		}
		char body[1 << 15];
		snprintf(body, sizeof body, "%.*s", (int)blen, in + hl);
		memmove(in, in + hl + blen, have - hl - blen);
		have -= hl + blen;
		in[have] = '\0';
		int status;
		char *ans = malloc(1 << 16);
		json_object *req = json_tokener_parse(body);
		pthread_mutex_lock(&W.mu);
		if (!ok_t || !ok_c || !ok_a) {
			W.bad_headers++;
			err_body(ans, 1 << 16, &status, 400, "MissingAuthenticationTokenException",
			         "bad headers");
		} else {
			answer(target + 25, req, &status, ans, 1 << 16);
		}
		pthread_mutex_unlock(&W.mu);
		json_object_put(req);
		int n = snprintf(out, sizeof out,
		                 "HTTP/1.1 %d X\r\nContent-Type: application/x-amz-json-1.0\r\n"
		                 "x-amzn-RequestId: r\r\nContent-Length: %zu\r\n\r\n%s",
		                 status, strlen(ans), ans);
		free(ans);
		if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n)
			goto done;
	}
done:
	close(fd);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	(void)arg;
	while (!W.stop) {
		struct pollfd p = {.fd = W.lfd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(W.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&W.mu);
		if (W.nconns < 64)
			pthread_create(&W.conns[W.nconns++], NULL, conn_main, (void *)(intptr_t)fd);
		else
			close(fd);
		pthread_mutex_unlock(&W.mu);
	}
	return NULL;
}

static void responder_start(void)
{
	W.lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	cr_assert_eq(bind(W.lfd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(W.lfd, 16), 0);
	getsockname(W.lfd, (struct sockaddr *)&a, &al);
	W.port = ntohs(a.sin_port);
	W.page = 2;
	pthread_create(&W.acceptor, NULL, acceptor_main, NULL);
}

static void responder_stop(void)
{
	W.stop = 1;
	pthread_join(W.acceptor, NULL);
	for (int i = 0; i < W.nconns; i++)
		pthread_join(W.conns[i], NULL);
	close(W.lfd);
	for (int i = 0; i < W.nsh; i++)
		for (int k = 0; k < W.sh[i].n; k++)
			free(W.sh[i].recs[k]);
}

TestSuite(ddb_streams, .init = responder_start, .fini = responder_stop);

/* ---- the source, and what it delivers ---------------------------------------------- */

typedef struct seen {
	char got[2048]; /* "k:<id>;" "v:<id>=<json>;" "gap;" in order */
	char gap[512];
	int ngaps;
} seen;

static void on_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	seen *s = arg;
	for (size_t i = 0; i < n; i++) {
		char b[256];
		snprintf(b, sizeof b, "k:%.*s;", (int)lens[i], keys[i]);
		strncat(s->got, b, sizeof s->got - strlen(s->got) - 1);
	}
}

static void on_value(void *arg, const char *key, size_t klen, const void *v, size_t len)
{
	seen *s = arg;
	char b[512];
	snprintf(b, sizeof b, "v:%.*s=%.*s;", (int)klen, key, (int)len, (const char *)v);
	strncat(s->got, b, sizeof s->got - strlen(s->got) - 1);
}

static void on_gap(void *arg, const char *why)
{
	seen *s = arg;
	s->ngaps++;
	snprintf(s->gap, sizeof s->gap, "%s", why);
	strncat(s->got, "gap;", sizeof s->got - strlen(s->got) - 1);
}

static scache_source *make(const char *arn, scache_dynamodb_mode mode, scache_start_at start)
{
	char endpoint[64], err[256] = "";
	snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", W.port);
	scache_dynamodb_streams_config c = {
	    .region = "us-east-1",
	    .endpoint = endpoint,
	    .access_key_id = "AKIDEXAMPLE",
	    .secret_access_key = "wJalrXUtnFEMI/K7MDENG",
	    .stream_arn = arn,
	    .table = {.table = "users", .partition_key = "id", .mode = mode},
	    .start = start,
	    .max_retries = 2,
	    .timeout_ms = 3000,
	};
	scache_source *src = NULL;
	cr_assert_eq(scache_dynamodb_streams_source_new(&c, &src, err, sizeof err), SCACHE_OK, "%s",
	             err);
	cr_assert_str_eq(scache_source_name(src), "dynamodb-streams");
	return src;
}

static scache_err sync_(scache_source *src, seen *s, scache_poll_info *info)
{
	scache_sink sink = {.keys = on_keys, .gap = on_gap, .value = on_value, .arg = s};
	memset(info, 0, sizeof *info);
	return scache_source_sync(src, scache_now_ns(NULL), &sink, info);
}

/* The data ID of item id in table users, as dynamodb.h names it. */
static const char *item(const char *id)
{
	static __thread char buf[8][128];
	static __thread int k;
	scache_dynamodb_table t = {.table = "users", .partition_key = "id"};
	char key[64], *out;
	size_t len;
	snprintf(key, sizeof key, "{\"id\":{\"S\":\"%s\"}}", id);
	cr_assert_eq(scache_dynamodb_item_id(&t, key, &out, &len), SCACHE_OK);
	char *b = buf[k++ % 8];
	snprintf(b, 128, "%s", out);
	free(out);
	return b;
}

Test(ddb_streams, a_table_name_finds_its_newest_enabled_stream_and_pages_describe_stream)
{
	wshard *a = add_shard(SHARD(1), NULL);
	add_shard(SHARD(2), NULL);
	add_shard(SHARD(3), NULL);
	add_record(a, 10, "MODIFY", "7", "{\"id\":{\"S\":\"7\"}}");
	scache_source *src = make(NULL, SCACHE_DYNAMODB_INVALIDATE, SCACHE_START_TRIM_HORIZON);
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	char want[256];
	snprintf(want, sizeof want, "k:%s;", item("7"));
	cr_assert_str_eq(s.got, want);
	cr_assert_eq(W.calls_list, 1);
	/* the newest label's stream, checked ENABLED (Limit 1), then 3 shards at 2 a page */
	cr_assert(strstr(W.log, "DescribeStream:-;DescribeStream:-;DescribeStream:" SHARD(2) ";"),
	          "%s", W.log);
	cr_assert_eq(W.bad_headers, 0);
	scache_source_stats st = {0};
	scache_source_stats_get(src, &st);
	cr_assert_eq(st.partitions, 3);
	cr_assert_eq(st.keys, 1);
	scache_source_free(src);
}

Test(ddb_streams, refresh_mode_stores_new_images_and_invalidates_removes_and_keys_only)
{
	wshard *a = add_shard(SHARD(1), NULL);
	add_record(a, 1, "INSERT", "7", "{\"id\":{\"S\":\"7\"},\"age\":{\"N\":\"36\"}}");
	add_record(a, 2, "MODIFY", "8", NULL); /* KEYS_ONLY view: no NewImage */
	add_record(a, 3, "REMOVE", "7", NULL);
	add_record(a, 4, "INSERT", "9", "{\"id\":{\"S\":\"9\"},\"ok\":{\"BOOL\":true}}");
	scache_source *src = make(ARN, SCACHE_DYNAMODB_REFRESH, SCACHE_START_TRIM_HORIZON);
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	char want[1024];
	snprintf(want, sizeof want,
	         "v:%s={\"id\":\"7\",\"age\":36};k:%s;k:%s;v:%s={\"id\":\"9\",\"ok\":true};",
	         item("7"), item("8"), item("7"), item("9"));
	cr_assert_str_eq(s.got, want);
	cr_assert_eq(info.records, 4);
	cr_assert_eq(info.gap, 0);
	/* caught up: the next sync reads an empty page and delivers nothing */
	seen s2 = {0};
	cr_assert_eq(sync_(src, &s2, &info), SCACHE_OK, "%s", info.message);
	cr_assert_str_eq(s2.got, "");
	cr_assert_eq(W.calls_list, 0);
	scache_source_free(src);
}

Test(ddb_streams, latest_skips_what_was_written_before_the_source_began)
{
	wshard *a = add_shard(SHARD(1), NULL);
	add_record(a, 1, "MODIFY", "1", NULL);
	scache_source *src = make(ARN, SCACHE_DYNAMODB_INVALIDATE, SCACHE_START_LATEST);
	add_record(a, 2, "MODIFY", "2", NULL);
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	char want[256];
	snprintf(want, sizeof want, "k:%s;", item("2"));
	cr_assert_str_eq(s.got, want);
	scache_source_free(src);
}

Test(ddb_streams, a_closed_parent_is_read_to_its_end_then_its_child_found_by_child_shards)
{
	wshard *p = add_shard(SHARD(1), NULL);
	add_record(p, 1, "MODIFY", "1", NULL);
	scache_source *src = make(ARN, SCACHE_DYNAMODB_INVALIDATE, SCACHE_START_TRIM_HORIZON);
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	/* the rollover: more in the parent, which closes; its child gets the rest */
	for (int i = 2; i <= 5; i++)
		add_record(p, i, "MODIFY", i == 5 ? "5" : "2", NULL);
	pthread_mutex_lock(&W.mu);
	p->closed = 1;
	pthread_mutex_unlock(&W.mu);
	wshard *c = add_shard(SHARD(2), SHARD(1));
	add_record(c, 6, "MODIFY", "6", NULL);
	seen s2 = {0};
	cr_assert_eq(sync_(src, &s2, &info), SCACHE_OK, "%s", info.message);
	char want[512];
	snprintf(want, sizeof want, "k:%s;k:%s;k:%s;k:%s;k:%s;", item("2"), item("2"), item("2"),
	         item("5"), item("6"));
	cr_assert_str_eq(s2.got, want);
	cr_assert(strstr(W.log, "children of " SHARD(1)), "%s", W.log);
	cr_assert(strstr(W.log, "GetShardIterator:0000002:TRIM_HORIZON"), "%s", W.log);
	cr_assert_eq(info.gap, 0);
	scache_source_stats st = {0};
	scache_source_stats_get(src, &st);
	cr_assert_eq(st.partitions, 2);
	scache_source_free(src);
}

Test(ddb_streams, an_expired_iterator_is_taken_again_after_the_last_sequence_number)
{
	wshard *a = add_shard(SHARD(1), NULL);
	add_record(a, 1, "MODIFY", "1", NULL);
	add_record(a, 2, "MODIFY", "2", NULL);
	scache_source *src = make(ARN, SCACHE_DYNAMODB_INVALIDATE, SCACHE_START_TRIM_HORIZON);
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	add_record(a, 3, "MODIFY", "3", NULL);
	inject_error("GetRecords", 400,
	             "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ExpiredIteratorException\","
	             "\"message\":\"Iterator expired\"}");
	seen s2 = {0};
	cr_assert_eq(sync_(src, &s2, &info), SCACHE_OK, "%s", info.message);
	char want[256];
	snprintf(want, sizeof want, "k:%s;", item("3"));
	cr_assert_str_eq(s2.got, want);
	cr_assert(strstr(W.log, "AFTER_SEQUENCE_NUMBER:2;"), "%s", W.log);
	cr_assert_eq(info.gap, 0);
	scache_source_free(src);
}

#define LIMIT_EXCEEDED                                                                             \
	"{\"__type\":\"com.amazonaws.dynamodb.v20120810#LimitExceededException\",\"message\":"     \
	"\"Rate exceeded for shard\"}"

Test(ddb_streams, limit_exceeded_is_retried_with_backoff_and_the_sync_says_throttled)
{
	wshard *a = add_shard(SHARD(1), NULL);
	add_record(a, 1, "MODIFY", "1", NULL);
	scache_source *src = make(ARN, SCACHE_DYNAMODB_INVALIDATE, SCACHE_START_TRIM_HORIZON);
	inject_error("GetRecords", 400, LIMIT_EXCEEDED);
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	cr_assert_eq(info.throttled, 1);
	char want[256];
	snprintf(want, sizeof want, "k:%s;", item("1"));
	cr_assert_str_eq(s.got, want);
	/* beyond max_retries (2): the sync fails throttled, and the next one reads on */
	for (int i = 0; i < 3; i++)
		inject_error("GetRecords", 400, LIMIT_EXCEEDED);
	cr_assert_eq(sync_(src, &s, &info), SCACHE_ETHROTTLED);
	cr_assert(strstr(info.message, "LimitExceededException"), "%s", info.message);
	cr_assert_eq(info.throttled, 1);
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	scache_source_stats st = {0};
	scache_source_stats_get(src, &st);
	cr_assert_eq(st.throttled, 4);
	cr_assert_eq(st.errors, 1);
	scache_source_free(src);
}

Test(ddb_streams, trimmed_data_is_a_gap_and_the_shard_is_read_again_from_trim_horizon)
{
	wshard *a = add_shard(SHARD(1), NULL);
	add_record(a, 1, "MODIFY", "1", NULL);
	scache_source *src = make(ARN, SCACHE_DYNAMODB_INVALIDATE, SCACHE_START_TRIM_HORIZON);
	inject_error("GetRecords", 400,
	             "{\"__type\":\"com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException\","
	             "\"message\":\"The operation attempted to read past the oldest stream "
	             "record in a shard.\"}");
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	cr_assert_eq(info.gap, 1);
	cr_assert(strstr(s.gap, "trimmed"), "%s", s.gap);
	char want[256];
	snprintf(want, sizeof want, "gap;k:%s;", item("1"));
	cr_assert_str_eq(s.got, want);
	scache_source_free(src);
}

Test(ddb_streams, a_stream_not_found_after_it_was_read_is_a_gap_and_each_sync_fails)
{
	wshard *a = add_shard(SHARD(1), NULL);
	add_record(a, 1, "MODIFY", "1", NULL);
	scache_source *src = make(ARN, SCACHE_DYNAMODB_INVALIDATE, SCACHE_START_TRIM_HORIZON);
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	pthread_mutex_lock(&W.mu);
	W.stream_gone = 1;
	pthread_mutex_unlock(&W.mu);
	seen s2 = {0};
	cr_assert_eq(sync_(src, &s2, &info), SCACHE_ESERVICE);
	cr_assert_eq(info.gap, 1);
	cr_assert_eq(s2.ngaps, 1);
	cr_assert(strstr(s2.gap, "not found"), "%s", s2.gap);
	cr_assert(strstr(info.message, "ResourceNotFoundException"), "%s", info.message);
	seen s3 = {0};
	cr_assert_eq(sync_(src, &s3, &info), SCACHE_ESERVICE);
	cr_assert_eq(s3.ngaps, 0, "one gap, not one a sync");
	scache_source_free(src);
}

Test(ddb_streams, a_stream_unreachable_at_startup_is_unavailable_not_an_error)
{
	scache_dynamodb_streams_config c = {.region = "us-east-1",
	                                    .endpoint = "http://127.0.0.1:1",
	                                    .access_key_id = "AKIDEXAMPLE",
	                                    .secret_access_key = "s",
	                                    .stream_arn = ARN,
	                                    .table = {.table = "users", .partition_key = "id"},
	                                    .max_retries = 1,
	                                    .connect_timeout_ms = 200};
	scache_source *src = NULL;
	char err[256];
	cr_assert_eq(scache_dynamodb_streams_source_new(&c, &src, err, sizeof err), SCACHE_OK);
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_ETRANSPORT);
	cr_assert(strstr(info.message, "127.0.0.1:1"), "%s", info.message);
	scache_source_free(src);
}

Test(ddb_streams, answers_that_are_not_json_or_truncated_fail_the_sync_clearly)
{
	wshard *a = add_shard(SHARD(1), NULL);
	add_record(a, 1, "MODIFY", "1", NULL);
	scache_source *src = make(ARN, SCACHE_DYNAMODB_INVALIDATE, SCACHE_START_TRIM_HORIZON);
	const char *bad[] = {"not json",
	                     "{\"Records\":[{\"dynamodb\":", "{\"NextShardIterator\":\"x\"}"};
	for (int i = 0; i < 3; i++) {
		inject_error("GetRecords", 200, bad[i]);
		seen s = {0};
		scache_poll_info info;
		cr_assert_eq(sync_(src, &s, &info), SCACHE_ESERVICE, "%s", bad[i]);
		cr_assert(strstr(info.message, i < 2 ? "not a JSON object" : "no Records array"),
		          "%s", info.message);
		cr_assert_str_eq(s.got, "");
	}
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_OK, "%s", info.message);
	char want[256];
	snprintf(want, sizeof want, "k:%s;", item("1"));
	cr_assert_str_eq(s.got, want);
	scache_source_free(src);
}

Test(ddb_streams, a_describe_stream_that_hands_back_a_shard_id_twice_is_refused)
{
	add_shard(SHARD(1), NULL);
	inject_error(
	    "DescribeStream", 200,
	    "{\"StreamDescription\":{\"StreamStatus\":\"ENABLED\",\"Shards\":[{\"ShardId\":"
	    "\"" SHARD(1) "\"}],\"LastEvaluatedShardId\":\"" SHARD(1) "\"}}");
	inject_error("DescribeStream", 200,
	             "{\"StreamDescription\":{\"StreamStatus\":\"ENABLED\",\"Shards\":[],"
	             "\"LastEvaluatedShardId\":\"" SHARD(1) "\"}}");
	scache_source *src = make(ARN, SCACHE_DYNAMODB_INVALIDATE, SCACHE_START_TRIM_HORIZON);
	cr_assert(!strstr(W.log, "GetShardIterator"), "not positioned: %s", W.log);
	seen s = {0};
	scache_poll_info info;
	cr_assert_eq(sync_(src, &s, &info), SCACHE_ETRANSPORT, "within a second of the try");
	cr_assert(strstr(info.message, "a cycle"), "%s", info.message);
	scache_source_free(src);
}

Test(ddb_streams, configuration_errors_and_publishing_say_why)
{
	char err[256] = "";
	scache_source *src = NULL;
	scache_dynamodb_streams_config c = {.region = "us-east-1",
	                                    .access_key_id = "AKIDEXAMPLE",
	                                    .secret_access_key = "s",
	                                    .stream_arn = ARN};
	cr_assert_eq(scache_dynamodb_streams_source_new(&c, &src, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "partition key"), "%s", err);
	cr_assert_eq(scache_dynamodb_streams_source_new(NULL, &src, err, sizeof err),
	             SCACHE_EINVAL);
	/* the endpoint from AWS_ENDPOINT_URL_DYNAMODB_STREAMS, before AWS_ENDPOINT_URL */
	char endpoint[64];
	snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", W.port);
	setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint, 1);
	setenv("AWS_ENDPOINT_URL", "ftp://nowhere", 1);
	add_shard(SHARD(1), NULL);
	c.table = (scache_dynamodb_table){.table = "users", .partition_key = "id"};
	cr_assert_eq(scache_dynamodb_streams_source_new(&c, &src, err, sizeof err), SCACHE_OK, "%s",
	             err);
	cr_assert(W.calls_describe >= 1);
	const char *k = "id=1&s=x&t=data.ID";
	size_t kl = strlen(k);
	/* the table's writes are the invalidations: publishing has nothing to do */
	cr_assert_eq(source_publish(src, &k, &kl, 0, err, sizeof err), SCACHE_OK);
	cr_assert_eq(source_publish(src, &k, &kl, 1, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "publishes nothing"), "%s", err);
	scache_source_free(src);
	unsetenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS");
	cr_assert_eq(scache_dynamodb_streams_source_new(&c, &src, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "ftp://nowhere"), "%s", err);
	unsetenv("AWS_ENDPOINT_URL");
}
