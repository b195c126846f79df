/*
 * DynamoDB change records on a Kinesis stream (Kinesis Data Streams for DynamoDB),
 * end to end: records in AWS's exact shape (wire-formats.md section 5) are put on
 * kinesalite, mixed with scache records and garbage, and read by a middleware over
 * scache_kinesis_source_new; the tests look at the cache the middleware keeps. One
 * kinesalite per test, started in .init and stopped in .fini (also after a failure).
 *
 * Each test waits for its records with settle(): a last scache record invalidates a
 * marker entry, and the stream has one shard, so once the marker is gone every record
 * put before it was applied.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kinesalite.h"
#include "middleware_internal.h"
#include "scache/scache.h"
#include "util.h"

#define STREAM "ddb"

/* ---- the fixture ---------------------------------------------------------------------- */

typedef struct lines {
	pthread_mutex_t mu;
	char *line[512];
	int n;
} lines;

static kinesalite K;
static lines L = {.mu = PTHREAD_MUTEX_INITIALIZER};
static struct {
	scache_cache *cache;
	scache_middleware *mw;
	scache_source *src; /* owned by mw */
	unsigned marker;
} F;

static void up(void)
{
	char err[256];
	cr_assert_eq(kinesalite_start(&K, err, sizeof err), 0, "%s", err);
}

static void down(void)
{
	scache_middleware_free(F.mw);
	scache_cache_free(F.cache);
	memset(&F, 0, sizeof F);
	kinesalite_stop(&K);
	pthread_mutex_lock(&L.mu);
	for (int i = 0; i < L.n; i++)
		free(L.line[i]);
	L.n = 0;
	pthread_mutex_unlock(&L.mu);
}

/* No .timeout: Criterion leaks 48 bytes per test run with one in parallel (LeakSanitizer
 * reports them); meson's timeout bounds the suite. */
TestSuite(ddb_stream, .init = up, .fini = down);

static void log_line(void *arg, const char *line, size_t len)
{
	lines *l = arg;
	pthread_mutex_lock(&l->mu);
	if (l->n < (int)(sizeof l->line / sizeof l->line[0]))
		l->line[l->n++] = strndup(line, len);
	pthread_mutex_unlock(&l->mu);
}

static int lines_count(const char *needle)
{
	int c = 0;
	pthread_mutex_lock(&L.mu);
	for (int i = 0; i < L.n; i++)
		c += strstr(L.line[i], needle) != NULL;
	pthread_mutex_unlock(&L.mu);
	return c;
}

static enum MHD_Result no_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
	(void)cls, (void)connection, (void)url, (void)method, (void)version;
	(void)upload_data, (void)upload_data_size, (void)req_cls;
	return MHD_NO;
}

/* A middleware reading stream STREAM (one shard) with table "users" (key "id") in mode,
 * and table "orders" (keys "customer", "order") in invalidate mode. The table strings
 * live in a buffer wiped after creation: the configuration must have been copied. */
static void start(scache_dynamodb_mode mode)
{
	char err[512];
	char names[5][16] = {"users", "id", "orders", "customer", "order"};
	scache_dynamodb_table tables[2] = {
	    {.table = names[0], .partition_key = names[1], .mode = mode},
	    {.table = names[2], .partition_key = names[3], .sort_key = names[4]},
	};
	scache_stream_config cfg;
	cr_assert_eq(kinesalite_create_stream(&K, STREAM, 1, err, sizeof err), 0, "%s", err);
	kinesalite_config(&K, STREAM, &cfg);
	cfg.dynamodb_tables = tables;
	cfg.dynamodb_ntables = 2;
	cr_assert_eq(scache_cache_new(NULL, &F.cache), SCACHE_OK);
	cr_assert_eq(
	    scache_kinesis_source_new(&cfg, SCACHE_START_TRIM_HORIZON, &F.src, err, sizeof err),
	    SCACHE_OK, "%s", err);
	memset(names, 'x', sizeof names);
	memset(tables, 0, sizeof tables);
	scache_middleware_config mc = {.cache = F.cache,
	                               .source = F.src,
	                               .handler = no_handler,
	                               .idle_poll_ms = 20,
	                               .max_polls_per_second = 50,
	                               .log = log_line,
	                               .log_arg = &L,
	                               .quiet_requests = 1};
	cr_assert_eq(scache_middleware_new(&mc, &F.mw, err, sizeof err), SCACHE_OK, "%s", err);
	/* positioned and in use before the tests cache anything: a source positioned late (a
	 * busy machine) would start bypassed, and its first poll would flush what they cached */
	cr_assert_eq(scache_middleware_wait_ready(F.mw, 30000, err, sizeof err), SCACHE_OK, "%s",
	             err);
}

/* The data-ID string of (source, id); free() it. */
static char *key(const char *source, const char *id)
{
	char *k;
	cr_assert_eq(scache_id_encode_alloc(source, strlen(source), id, strlen(id), &k, NULL),
	             SCACHE_OK);
	return k;
}

static void seed(const char *source, const char *id, const char *value)
{
	char *k = key(source, id);
	scache_add_opts o = {.token = scache_cache_begin_load(F.cache)};
	cr_assert_eq(scache_cache_add(F.cache, k, strlen(k), value, strlen(value), &o), SCACHE_OK);
	free(k);
}

/* The cached value of (source, id), NUL-terminated (free() it), or NULL. */
static char *cached(const char *source, const char *id)
{
	char *k = key(source, id), *v = NULL;
	scache_value val;
	if (scache_cache_get(F.cache, k, strlen(k), &val) == SCACHE_OK) {
		v = strndup(val.data, val.len);
		scache_value_release(&val);
	}
	free(k);
	return v;
}

#define assert_cached(src, id, want)                                                               \
	do {                                                                                       \
		char *got_ = cached(src, id);                                                      \
		const char *want_ = (want);                                                        \
		if (want_) {                                                                       \
			cr_assert_not_null(got_, "%s/%s: not cached, want %s", src, id, want_);    \
			cr_assert_str_eq(got_, want_, "%s/%s", src, id);                           \
		} else {                                                                           \
			cr_assert_null(got_, "%s/%s: cached as %s", src, id, got_);                \
		}                                                                                  \
		free(got_);                                                                        \
	} while (0)

static void put(const char *data)
{
	char err[256];
	cr_assert_eq(kinesalite_put_raw(&K, STREAM, data, strlen(data), NULL, 0, err, sizeof err),
	             0, "%s", err);
}

/* An scache record invalidating (src, id). */
static void put_scache(const char *src, const char *id)
{
	char *k = key(src, id), rec[512];
	snprintf(rec, sizeof rec, "{\"keys\":[\"%s\"],\"ts\":\"2026-11-24T13:26:26.241701753Z\"}",
	         k);
	free(k);
	put(rec);
}

/* Wait until every record put so far was applied (see the top of the file). */
static void settle(void)
{
	char id[32];
	snprintf(id, sizeof id, "%u", ++F.marker);
	seed("marker", id, "m");
	put_scache("marker", id);
	for (int i = 0; i < 200; i++) {
		char *v = cached("marker", id);
		free(v);
		if (!v)
			return;
		usleep(50000);
	}
	cr_assert_fail("the marker record was not applied within 10 s");
}

/*
 * A change record as Kinesis Data Streams for DynamoDB writes it. ms: the creation time
 * in milliseconds (values of 10^14 and more are written as microseconds with the
 * precision field). new_image, old_image: JSON objects or NULL (absent).
 */
static char *change(const char *event, const char *table, const char *keys, long long ms,
                    const char *new_image, const char *old_image)
{
	static unsigned n;
	int micro = ms >= 100000000000000LL;
	size_t size = 1024 + strlen(keys) + (new_image ? strlen(new_image) : 0) +
	              (old_image ? strlen(old_image) : 0);
	char *r = malloc(size);
	cr_assert_not_null(r);
	int w =
	    snprintf(r, size,
	             "{\"awsRegion\":\"us-east-1\",\"eventID\":\"5d3c9f5e-0f0b-4b55-9d8e-%012u\","
	             "\"eventName\":\"%s\",\"userIdentity\":null,"
	             "\"recordFormat\":\"application/json\",\"tableName\":\"%s\","
	             "\"dynamodb\":{\"ApproximateCreationDateTime\":%lld,%s\"Keys\":%s%s%s%s%s,"
	             "\"SizeBytes\":83},\"eventSource\":\"aws:dynamodb\"}",
	             ++n, event, table, ms,
	             micro ? "\"ApproximateCreationDateTimePrecision\":\"MICROSECOND\"," : "", keys,
	             new_image ? ",\"NewImage\":" : "", new_image ? new_image : "",
	             old_image ? ",\"OldImage\":" : "", old_image ? old_image : "");
	cr_assert(w > 0 && (size_t)w < size);
	return r;
}

static void put_change(const char *event, const char *table, const char *keys, long long ms,
                       const char *new_image, const char *old_image)
{
	char *r = change(event, table, keys, ms, new_image, old_image);
	put(r);
	free(r);
}

#define T0   1732451186412LL /* 2024-11-24T12:26:26.412Z in milliseconds */
#define U    "dynamodb.users"
#define ID7  "{\"id\":{\"S\":\"7\"}}"
#define ADA  "{\"id\":{\"S\":\"7\"},\"name\":{\"S\":\"Ada\"},\"age\":{\"N\":\"36\"}}"
#define ADA2 "{\"id\":{\"S\":\"7\"},\"name\":{\"S\":\"Ada L.\"},\"age\":{\"N\":\"37\"}}"

static scache_source_stats source_stats(void)
{
	scache_source_stats st;
	scache_source_stats_get(F.src, &st);
	return st;
}

/* ---- invalidate mode ------------------------------------------------------------------- */

Test(ddb_stream, invalidate_mode_removes_the_item_on_insert_modify_and_remove)
{
	start(SCACHE_DYNAMODB_INVALIDATE);
	seed(U, "1", "one");
	seed(U, "2", "two");
	seed(U, "3", "three");
	seed(U, "4", "four");
	seed("db.t.id", "9", "nine");
	put_change("INSERT", "users", "{\"id\":{\"S\":\"1\"}}", T0, ADA, NULL);
	put("not json at all");
	put_change("MODIFY", "users", "{\"id\":{\"S\":\"2\"}}", T0, ADA2, ADA);
	put_scache("db.t.id", "9");
	put_change("REMOVE", "users", "{\"id\":{\"S\":\"3\"}}", T0, NULL, ADA);
	settle();
	assert_cached(U, "1", NULL);
	assert_cached(U, "2", NULL);
	assert_cached(U, "3", NULL);
	assert_cached(U, "4", "four");
	assert_cached("db.t.id", "9", NULL);
	/* invalidate mode stores nothing */
	scache_middleware_stats ms;
	scache_middleware_stats_get(F.mw, &ms);
	cr_assert_eq(ms.refreshed, 0);
	cr_assert_eq(source_stats().bad_records, 1, "the garbage record");
}

Test(ddb_stream, a_composite_key_names_the_item_by_its_canonical_text)
{
	start(SCACHE_DYNAMODB_INVALIDATE);
	/* ("a|b", 30): the partition key escaped, the number canonical */
	seed("dynamodb.orders", "a\\|b|30", "order");
	seed("dynamodb.orders", "a\\|b|31", "other order");
	put_change("MODIFY", "orders", "{\"customer\":{\"S\":\"a|b\"},\"order\":{\"N\":\"3.0E1\"}}",
	           T0, NULL, NULL);
	settle();
	assert_cached("dynamodb.orders", "a\\|b|30", NULL);
	assert_cached("dynamodb.orders", "a\\|b|31", "other order");
}

/* ---- refresh mode ---------------------------------------------------------------------- */

Test(ddb_stream, refresh_mode_stores_the_new_image_as_plain_json)
{
	start(SCACHE_DYNAMODB_REFRESH);
	seed(U, "7", "{\"old\":true}");
	put_change("MODIFY", "users", ID7, T0, ADA, NULL);
	put_change("INSERT", "users", "{\"id\":{\"S\":\"8\"}}", T0,
	           "{\"id\":{\"S\":\"8\"},\"tags\":{\"SS\":[\"a\",\"b\"]},\"big\":{\"N\":"
	           "\"12345678901234567890\"},\"ok\":{\"BOOL\":true},\"none\":{\"NULL\":true},"
	           "\"m\":{\"M\":{\"l\":{\"L\":[{\"N\":\"1.50\"},{\"B\":\"AAE=\"}]}}}}",
	           NULL);
	settle();
	assert_cached(U, "7", "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}");
	assert_cached(U, "8",
	              "{\"id\":\"8\",\"tags\":[\"a\",\"b\"],\"big\":\"12345678901234567890\","
	              "\"ok\":true,\"none\":null,\"m\":{\"l\":[1.5,\"AAE=\"]}}");

	/* the operator sees them: stats, metrics and the summary line */
	scache_middleware_stats ms;
	scache_middleware_stats_get(F.mw, &ms);
	cr_assert_eq(ms.refreshed, 2);
	char *text;
	cr_assert_eq(scache_middleware_metrics(F.mw, &text, NULL), SCACHE_OK);
	cr_assert(strstr(text, "\nscache_refreshed_total 2\n"), "%s", text);
	free(text);
	efficiency_summary(F.mw, 1);
	cr_assert_eq(lines_count("\"type\":\"summary\""), 1);
	cr_assert_eq(lines_count("\"refreshed\":2,"), 1);
}

Test(ddb_stream, a_load_that_began_before_a_refresh_is_refused)
{
	start(SCACHE_DYNAMODB_REFRESH);
	uint64_t token = scache_cache_begin_load(F.cache); /* a load reads the old item */
	put_change("MODIFY", "users", ID7, T0, ADA, NULL);
	settle();
	char *k = key(U, "7");
	scache_add_opts o = {.token = token};
	cr_assert_eq(scache_cache_add(F.cache, k, strlen(k), "old", 3, &o), SCACHE_ESTALE);
	free(k);
	assert_cached(U, "7", "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}");
}

Test(ddb_stream, remove_removes_in_refresh_mode)
{
	start(SCACHE_DYNAMODB_REFRESH);
	seed(U, "7", "cached");
	put_change("REMOVE", "users", ID7, T0, NULL, ADA);
	settle();
	assert_cached(U, "7", NULL);
}

Test(ddb_stream, a_record_without_new_image_invalidates_in_refresh_mode)
{
	start(SCACHE_DYNAMODB_REFRESH);
	seed(U, "7", "cached");
	seed(U, "8", "cached");
	put_change("MODIFY", "users", ID7, T0, NULL, NULL);               /* KEYS_ONLY view */
	put_change("MODIFY", "users", "{\"id\":{\"S\":\"8\"}}", T0, NULL, /* OLD_IMAGE */
	           "{\"id\":{\"S\":\"8\"}}");
	settle();
	assert_cached(U, "7", NULL);
	assert_cached(U, "8", NULL);
	scache_middleware_stats ms;
	scache_middleware_stats_get(F.mw, &ms);
	cr_assert_eq(ms.refreshed, 0);
}

Test(ddb_stream, an_image_over_the_bound_invalidates)
{
	start(SCACHE_DYNAMODB_REFRESH);
	seed(U, "7", "cached");
	size_t n = 400 * 1024 + 1;
	char *big = malloc(n + 64), *r;
	cr_assert_not_null(big);
	int w = snprintf(big, n + 64, "{\"id\":{\"S\":\"7\"},\"blob\":{\"S\":\"");
	memset(big + w, 'a', n);
	strcpy(big + w + n, "\"}}");
	r = change("MODIFY", "users", ID7, T0, big, NULL);
	put(r);
	free(r);
	free(big);
	settle();
	assert_cached(U, "7", NULL);
	cr_assert_eq(source_stats().bad_records, 0, "too large is not malformed");
}

Test(ddb_stream, a_late_older_change_never_overwrites_a_newer_one)
{
	start(SCACHE_DYNAMODB_REFRESH);
	/* newer first, then older: the older one is skipped */
	put_change("MODIFY", "users", ID7, T0 + 2000, ADA2, ADA);
	put_change("MODIFY", "users", ID7, T0 + 1000, ADA, NULL);
	/* a removal, then a late older MODIFY: the item stays removed */
	put_change("INSERT", "users", "{\"id\":{\"S\":\"8\"}}", T0, "{\"id\":{\"S\":\"8\"}}", NULL);
	put_change("REMOVE", "users", "{\"id\":{\"S\":\"8\"}}", T0 + 3000, NULL, NULL);
	put_change("MODIFY", "users", "{\"id\":{\"S\":\"8\"}}", T0 + 2500,
	           "{\"id\":{\"S\":\"8\"},\"v\":{\"N\":\"1\"}}", NULL);
	/* microseconds (with the precision field) order against milliseconds */
	put_change("MODIFY", "users", "{\"id\":{\"S\":\"9\"}}", (T0 + 5) * 1000 + 1,
	           "{\"id\":{\"S\":\"9\"},\"v\":{\"S\":\"new\"}}", NULL);
	put_change("MODIFY", "users", "{\"id\":{\"S\":\"9\"}}", T0 + 5,
	           "{\"id\":{\"S\":\"9\"},\"v\":{\"S\":\"old\"}}", NULL);
	settle();
	assert_cached(U, "7", "{\"id\":\"7\",\"name\":\"Ada L.\",\"age\":37}");
	assert_cached(U, "8", NULL);
	assert_cached(U, "9", "{\"id\":\"9\",\"v\":\"new\"}");
	/* and a newer one still applies */
	put_change("MODIFY", "users", ID7, T0 + 4000, ADA, ADA2);
	settle();
	assert_cached(U, "7", "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}");
	cr_assert_eq(source_stats().bad_records, 0);
}

Test(ddb_stream, duplicates_are_harmless)
{
	start(SCACHE_DYNAMODB_REFRESH);
	char *r = change("MODIFY", "users", ID7, T0, ADA, NULL);
	put(r);
	put(r);
	settle();
	assert_cached(U, "7", "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}");
	put(r); /* once more, after another one was cached */
	settle();
	assert_cached(U, "7", "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}");
	free(r);
	cr_assert_eq(source_stats().bad_records, 0);
}

Test(ddb_stream, two_changes_in_one_millisecond_then_a_copy_of_the_first_never_serve_the_first)
{
	start(SCACHE_DYNAMODB_REFRESH);
	/* A and B change item 7 within one millisecond; DynamoDB's writer then puts A again,
	 * with a later Kinesis sequence number than B's: A's image is older than B's */
	char *a = change("MODIFY", "users", ID7, T0, ADA, NULL);
	put(a);
	put_change("MODIFY", "users", ID7, T0, ADA2, ADA);
	put(a);
	settle();
	assert_cached(U, "7", NULL); /* the order is unknown: invalidated, never A's image */
	free(a);
	/* a later change is applied again */
	put_change("MODIFY", "users", ID7, T0 + 1, ADA, ADA2);
	settle();
	assert_cached(U, "7", "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}");
}

Test(ddb_stream, malformed_change_records_are_skipped_and_invalidate_the_item_they_name)
{
	start(SCACHE_DYNAMODB_REFRESH);
	for (int i = 1; i <= 6; i++) {
		char id[4];
		snprintf(id, sizeof id, "%d", i);
		seed(U, id, "cached");
	}
	/* named: unknown eventName, a NewImage that is not DynamoDB JSON, no time */
	put_change("UPSERT", "users", "{\"id\":{\"S\":\"1\"}}", T0, ADA, NULL);
	put_change("MODIFY", "users", "{\"id\":{\"S\":\"2\"}}", T0,
	           "{\"id\":{\"S\":\"2\"},\"age\":{\"N\":\"3x\"}}", NULL);
	put("{\"eventName\":\"MODIFY\",\"tableName\":\"users\",\"eventSource\":\"aws:dynamodb\","
	    "\"dynamodb\":{\"Keys\":{\"id\":{\"S\":\"3\"}},\"NewImage\":{\"id\":{\"S\":\"3\"}}}}");
	/* not named: no Keys, a key of the wrong attribute, no tableName */
	put("{\"eventName\":\"MODIFY\",\"tableName\":\"users\",\"eventSource\":\"aws:dynamodb\","
	    "\"dynamodb\":{\"ApproximateCreationDateTime\":1732451186412}}");
	put_change("MODIFY", "users", "{\"name\":{\"S\":\"4\"}}", T0, NULL, NULL);
	put("{\"eventName\":\"MODIFY\",\"eventSource\":\"aws:dynamodb\",\"dynamodb\":{"
	    "\"ApproximateCreationDateTime\":1732451186412,\"Keys\":{\"id\":{\"S\":\"5\"}}}}");
	/* garbage and scache records around them */
	put("\x01\x02garbage");
	put("{\"keys\":[\"not a data id\"],\"ts\":\"2026-11-24T13:26:26Z\"}");
	settle();
	assert_cached(U, "1", NULL);
	assert_cached(U, "2", NULL);
	assert_cached(U, "3", NULL);
	assert_cached(U, "4", "cached");
	assert_cached(U, "5", "cached");
	assert_cached(U, "6", "cached");
	cr_assert_eq(source_stats().bad_records, 8);
	scache_middleware_stats ms;
	scache_middleware_stats_get(F.mw, &ms);
	cr_assert_eq(ms.refreshed, 0);
	cr_assert_geq(lines_count("unknown eventName \\\"UPSERT\\\""), 1);
}

Test(ddb_stream, a_record_of_a_table_not_configured_is_skipped_and_named_once)
{
	start(SCACHE_DYNAMODB_REFRESH);
	seed(U, "7", "cached");
	seed("dynamodb.accounts", "7", "cached");
	put_change("MODIFY", "accounts", ID7, T0, ADA, NULL);
	put_change("REMOVE", "accounts", ID7, T0 + 1, NULL, NULL);
	settle();
	assert_cached(U, "7", "cached");
	assert_cached("dynamodb.accounts", "7", "cached");
	cr_assert_eq(source_stats().bad_records, 0);
	cr_assert_eq(lines_count("table 'accounts' skipped: the table is not in dynamodb_tables"),
	             1);
}

Test(ddb_stream, a_table_without_partition_key_is_a_configuration_error)
{
	char err[256];
	scache_dynamodb_table t = {.table = "users"};
	scache_stream_config cfg;
	kinesalite_config(&K, STREAM, &cfg);
	cfg.dynamodb_tables = &t;
	cfg.dynamodb_ntables = 1;
	scache_source *src = NULL;
	cr_assert_eq(scache_kinesis_source_new(&cfg, SCACHE_START_LATEST, &src, err, sizeof err),
	             SCACHE_ECONFIG);
	cr_assert_null(src);
	cr_assert_str_eq(err, "DynamoDB table 'users': no partition_key");
	scache_dynamodb_table two[2] = {{.table = "users", .partition_key = "id"},
	                                {.table = "users", .partition_key = "id"}};
	cfg.dynamodb_tables = two;
	cfg.dynamodb_ntables = 2;
	cr_assert_eq(scache_kinesis_source_new(&cfg, SCACHE_START_LATEST, &src, err, sizeof err),
	             SCACHE_ECONFIG);
	cr_assert_str_eq(err, "DynamoDB table 'users' is named twice");
}

/* ---- a client not written here --------------------------------------------------------- */

/* Runs argv, stdout and stderr into out; returns the exit status (-1: not run). */
static int run(char *const argv[], char *out, size_t outlen)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (n < outlen - 1 && (r = read(p[0], out + n, outlen - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(ddb_stream, a_modify_put_by_the_aws_cli_refreshes_the_entry)
{
	/* Debian's AWS CLI v2 (scripts/install-deps.sh installs it); a v1 elsewhere on PATH
	 * would take --data as raw text, v2 takes base64 (cli_binary_format). */
	const char *aws = "/usr/bin/aws";
	cr_assert_eq(access(aws, X_OK), 0,
	             "%s is missing: run scripts/install-deps.sh (it installs awscli)", aws);
	start(SCACHE_DYNAMODB_REFRESH);
	seed(U, "7", "{\"old\":true}");
	char *rec = change("MODIFY", "users", ID7, T0, ADA, ADA2);
	char *b64 = util_b64_encode((const unsigned char *)rec, strlen(rec), NULL);
	free(rec);
	cr_assert_not_null(b64);
	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "fake-secret", 1);
	unsetenv("AWS_SESSION_TOKEN");
	setenv("AWS_DEFAULT_REGION", "us-east-1", 1);
	setenv("AWS_CONFIG_FILE", "/dev/null", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
	setenv("AWS_PAGER", "", 1);
	char *argv[] = {(char *)aws,       "kinesis",       "put-record",
	                "--endpoint-url",  K.endpoint,      "--region",
	                "us-east-1",       "--stream-name", STREAM,
	                "--partition-key", "users-7",       "--cli-binary-format",
	                "base64",          "--data",        b64,
	                "--output",        "json",          NULL};
	char out[4096];
	int rc = run(argv, out, sizeof out);
	free(b64);
	cr_assert_eq(rc, 0, "aws kinesis put-record failed (%d): %s", rc, out);
	cr_assert(strstr(out, "\"SequenceNumber\""), "%s", out);
	settle();
	assert_cached(U, "7", "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}");
	scache_middleware_stats ms;
	scache_middleware_stats_get(F.mw, &ms);
	cr_assert_eq(ms.refreshed, 1);
}
