/* The public in-memory source (scache/source.h), and the middleware driven through it
 * alone: only public headers here, as a service's own tests would use them. A real
 * libmicrohttpd daemon on 127.0.0.1, real HTTP through libcurl. Outcomes are exact;
 * nothing asserts a duration. Also in suite "threads" (ThreadSanitizer). */
#ifdef SCACHE_STANDALONE_TESTS
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif
#include <curl/curl.h>

#include <scache/scache.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- The source on its own ------------------------------------------------------ */

typedef struct seen {
	char keys[8][64];
	size_t nkeys;
	char gap[128];
	char value_key[64];
	char value[32];
} seen;

static void seen_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	seen *s = arg;
	for (size_t i = 0; i < n && s->nkeys < 8; i++)
		snprintf(s->keys[s->nkeys++], sizeof s->keys[0], "%.*s", (int)lens[i], keys[i]);
}

static void seen_gap(void *arg, const char *why)
{
	snprintf(((seen *)arg)->gap, sizeof((seen *)arg)->gap, "%s", why);
}

static void seen_value(void *arg, const char *key, size_t key_len, const void *value, size_t len)
{
	seen *s = arg;
	snprintf(s->value_key, sizeof s->value_key, "%.*s", (int)key_len, key);
	snprintf(s->value, sizeof s->value, "%.*s", (int)len, (const char *)value);
}

Test(memory_source, a_sync_delivers_what_was_pushed_before_it_in_order_then_nothing)
{
	scache_source *src;
	cr_assert_eq(scache_memory_source_new(&src), SCACHE_OK);
	cr_assert_str_eq(scache_source_name(src), "memory");
	const char *keys[] = {"id=1&s=t&t=data.ID", "id=2&s=t&t=data.ID"};
	size_t lens[] = {strlen(keys[0]), strlen(keys[1])};
	cr_assert_eq(scache_memory_source_push(src, keys, lens, 2), SCACHE_OK);
	cr_assert_eq(scache_memory_source_push_value(src, "id=3&s=t&t=data.ID", 18, "v3", 2),
	             SCACHE_OK);
	seen s = {0};
	scache_sink sink = {.keys = seen_keys, .gap = seen_gap, .value = seen_value, .arg = &s};
	scache_poll_info info;
	cr_assert_eq(scache_source_sync(src, 0, &sink, &info), SCACHE_OK);
	cr_assert_eq(s.nkeys, 2);
	cr_assert_str_eq(s.keys[0], keys[0]);
	cr_assert_str_eq(s.keys[1], keys[1]);
	cr_assert_str_eq(s.value_key, "id=3&s=t&t=data.ID");
	cr_assert_str_eq(s.value, "v3");
	cr_assert_eq(info.records, 3);
	cr_assert_eq(info.err, SCACHE_OK);
	memset(&s, 0, sizeof s);
	cr_assert_eq(scache_source_sync(src, 0, &sink, &info), SCACHE_OK);
	cr_assert_eq(s.nkeys, 0, "delivered once");
	scache_source_stats st;
	scache_source_stats_get(src, &st);
	cr_assert_eq(st.syncs, 2);
	cr_assert_eq(st.keys, 3);
	scache_source_free(src);
}

Test(memory_source, a_failing_source_fails_syncs_and_publishes_with_its_reason_until_cleared)
{
	scache_source *src;
	cr_assert_eq(scache_memory_source_new(&src), SCACHE_OK);
	const char *k = "id=1&s=t&t=data.ID";
	size_t kl = strlen(k);
	cr_assert_eq(scache_memory_source_push(src, &k, &kl, 1), SCACHE_OK);
	scache_memory_source_fail(src, SCACHE_ETRANSPORT, "connection refused (test)");
	seen s = {0};
	scache_sink sink = {.keys = seen_keys, .gap = seen_gap, .arg = &s};
	scache_poll_info info;
	cr_assert_eq(scache_source_sync(src, 0, &sink, &info), SCACHE_ETRANSPORT);
	cr_assert_str_eq(info.message, "connection refused (test)");
	cr_assert_eq(s.nkeys, 0, "a failed sync delivers nothing");
	scache_memory_source_fail(src, SCACHE_OK, NULL);
	scache_memory_source_gap(src, "stream recreated (test)");
	cr_assert_eq(scache_source_sync(src, 0, &sink, &info), SCACHE_OK);
	cr_assert_eq(s.nkeys, 1, "kept across the failure");
	cr_assert_str_eq(s.gap, "stream recreated (test)");
	cr_assert_eq(info.gap, 1);
	scache_source_free(src);
}

Test(memory_source, its_functions_refuse_another_kind_of_source)
{
	static const scache_source_ops none = {0};
	scache_source *src = NULL;
	cr_assert_eq(scache_source_new(&none, NULL, &src), SCACHE_EINVAL, "sync is required");
	cr_assert_null(src);
	const char *k = "x";
	size_t kl = 1;
	cr_assert_eq(scache_memory_source_push(NULL, &k, &kl, 1), SCACHE_EINVAL);
	scache_source_free(NULL);
}

/* ---- The middleware over it -------------------------------------------------------- */

static scache_cache *cache;
static scache_source *source;
static scache_middleware *mw;
static struct MHD_Daemon *daemon_;
static unsigned short port;

static enum MHD_Result reply(struct MHD_Connection *c, const char *body, const char *xcache)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "X-Cache", xcache);
	enum MHD_Result ret = scache_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* GET /ID: the cached value (X-Cache HIT) or "none" (MISS or BYPASS).
 * GET /healthz: "ok" (X-Cache NONE) without using the cache. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **req_cls)
{
	(void)cls, (void)method, (void)version, (void)data, (void)size;
	if (!*req_cls) {
		*req_cls = c;
		return MHD_YES;
	}
	if (strcmp(url, "/healthz") == 0)
		return reply(c, "ok", "NONE");
	scache_value v;
	scache_err err = scache_get(scache_request_current(), "t", url + 1, &v);
	if (err == SCACHE_OK) {
		char body[64];
		snprintf(body, sizeof body, "%.*s", (int)v.len, (const char *)v.data);
		scache_value_release(&v);
		return reply(c, body, "HIT");
	}
	return reply(c, "none", err == SCACHE_EBYPASS ? "BYPASS" : "MISS");
}

static void quiet(void *arg, const char *line, size_t len)
{
	(void)arg, (void)line, (void)len;
}

static void start(uint64_t poll_interval_ms, uint64_t max_staleness_ms)
{
	cr_assert_eq(scache_cache_new(NULL, &cache), SCACHE_OK);
	cr_assert_eq(scache_memory_source_new(&source), SCACHE_OK);
	scache_middleware_config mc = {.cache = cache,
	                               .source = source,
	                               .handler = handler,
	                               .log = quiet,
	                               .poll_interval_ms = poll_interval_ms,
	                               .max_staleness_ms = max_staleness_ms,
	                               .max_polls_per_second = 1000};
	char err[256];
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	daemon_ = scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0,
	                           MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE, 2u,
	                           MHD_OPTION_END);
	cr_assert_not_null(daemon_);
	port = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void stop(void)
{
	MHD_stop_daemon(daemon_);
	scache_middleware_free(mw); /* frees the source too */
	scache_cache_free(cache);
}

static void put(const char *id, const char *value)
{
	char key[64];
	scache_id_encode("t", 1, id, strlen(id), key, sizeof key);
	scache_add_opts o = {.token = scache_cache_begin_load(cache), .saved_ns = 1000};
	cr_assert_eq(scache_cache_add(cache, key, strlen(key), value, strlen(value), &o),
	             SCACHE_OK);
}

static void push(const char *id)
{
	char key[64];
	size_t len = scache_id_encode("t", 1, id, strlen(id), key, sizeof key);
	const char *k = key;
	cr_assert_eq(scache_memory_source_push(source, &k, &len, 1), SCACHE_OK);
}

static size_t collect_header(char *p, size_t size, size_t n, void *arg)
{
	size_t k = size * n;
	if (k > 9 && strncasecmp(p, "X-Cache: ", 9) == 0)
		snprintf(arg, 16, "%.*s", (int)(k - 9 - 2), p + 9);
	return k;
}

static size_t collect_body(char *p, size_t size, size_t n, void *arg)
{
	strncat(arg, p, size * n);
	return size * n;
}

/* GET /ID: "X-Cache body" */
static const char *get(const char *id)
{
	static char out[128];
	char url[128], xcache[16] = "", body[64] = "";
	snprintf(url, sizeof url, "http://127.0.0.1:%u/%s", port, id);
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, xcache);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
	snprintf(out, sizeof out, "%s %s", xcache, body);
	return out;
}

Test(memory_source, a_strict_read_sees_an_invalidation_pushed_before_it)
{
	start(0, 60000);
	put("1", "old");
	cr_assert_str_eq(get("1"), "HIT old");
	push("1");
	cr_assert_str_eq(get("1"), "MISS none");
	stop();
}

Test(memory_source, a_strict_read_after_a_failed_sync_reads_around_the_cache)
{
	start(0, 60000);
	put("1", "old");
	cr_assert_str_eq(get("1"), "HIT old");
	scache_memory_source_fail(source, SCACHE_ETRANSPORT, "down (test)");
	cr_assert_str_eq(get("1"), "BYPASS none");
	scache_memory_source_fail(source, SCACHE_OK, NULL);
	cr_assert_str_eq(get("1"), "HIT old", "the next good sync: the cache is used again");
	stop();
}

Test(memory_source, a_bounded_read_uses_a_recent_sync_without_waiting_for_the_push)
{
	start(3600000, 3600000);
	scache_source_stats before, after;
	do { /* the poller's first sync, at once; the next one comes after idle_poll_ms */
		usleep(1000);
		scache_source_stats_get(source, &before);
	} while (before.syncs == 0);
	put("1", "old");
	cr_assert_str_eq(get("1"), "HIT old");
	scache_source_stats_get(source, &before);
	push("1");
	/* a sync within the interval is good enough: the push is seen by a later one */
	cr_assert_str_eq(get("1"), "HIT old");
	scache_source_stats_get(source, &after);
	cr_assert_eq(after.syncs, before.syncs, "the request did not wait for a sync");
	stop();
}

Test(memory_source, a_gap_flushes_the_cache)
{
	start(0, 60000);
	put("1", "a");
	put("2", "b");
	scache_memory_source_gap(source, "test gap");
	cr_assert_str_eq(get("1"), "MISS none");
	cr_assert_str_eq(get("2"), "MISS none");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.gaps, 1);
	stop();
}

Test(memory_source, an_outage_longer_than_the_bound_bypasses_until_a_sync_succeeds)
{
	start(0, 50);
	put("1", "old");
	scache_memory_source_fail(source, SCACHE_ETRANSPORT, "down (test)");
	scache_middleware_stats st;
	for (int i = 0; i < 10000; i++) {
		get("1");
		scache_middleware_stats_get(mw, &st);
		if (st.bypassing)
			break;
		usleep(1000);
	}
	cr_assert_eq(st.bypassing, 1);
	cr_assert_str_eq(get("1"), "BYPASS none");
	scache_memory_source_fail(source, SCACHE_OK, NULL);
	const char *r = NULL;
	for (int i = 0; i < 10000; i++) {
		r = get("1");
		if (strncmp(r, "BYPASS", 6) != 0)
			break;
		usleep(1000);
	}
	cr_assert_str_eq(r, "MISS none", "the cache was flushed when the outage ended");
	stop();
}

Test(memory_source, a_refresh_replaces_the_cached_value)
{
	start(0, 60000);
	put("1", "old");
	char key[64];
	size_t len = scache_id_encode("t", 1, "1", 1, key, sizeof key);
	cr_assert_eq(scache_memory_source_push_value(source, key, len, "new", 3), SCACHE_OK);
	cr_assert_str_eq(get("1"), "HIT new");
	stop();
}

Test(memory_source, a_strict_request_that_never_reads_the_cache_makes_no_sync)
{
	start(0, 60000);
	scache_source_stats before, after;
	do { /* the poller's first sync, at once; the next one comes after idle_poll_ms */
		usleep(1000);
		scache_source_stats_get(source, &before);
	} while (before.syncs == 0);
	put("1", "old"); /* not empty: a strict read waits for a sync */
	push("1");
	cr_assert_str_eq(get("healthz"), "NONE ok");
	cr_assert_str_eq(get("healthz"), "NONE ok");
	scache_source_stats_get(source, &after);
	cr_assert_eq(after.syncs, before.syncs, "no sync for requests that never read");
	cr_assert_str_eq(get("1"), "MISS none", "a read syncs, and sees the push");
	scache_source_stats_get(source, &after);
	cr_assert_eq(after.syncs, before.syncs + 1);
	stop();
}
