/* A request waits no longer than max_staleness_ms, whatever the poll in flight is doing
 * (issue 9: with a thread pool and .suspend, parked requests were resumed only when the
 * hung poll ended, 60 s later). A real libmicrohttpd daemon started with
 * scache_mhd_start, in both thread modes (a pool of 2 with .suspend, and a thread per
 * connection), real HTTP through libcurl, over a source of our own whose sync hangs on
 * demand, as a Kinesis call to an endpoint that accepts and never answers does. The cache
 * is warm (an entry cached after a good poll), so a read must wait for its poll; the poll
 * then hangs for HANG_MS. Asserted: every request is answered with the README's outcome
 * (strict: X-Cache BYPASS for the request whose poll did not finish; bounded staleness:
 * BYPASS once no poll succeeded for max_staleness_ms; a request that does not read the
 * cache: its answer) while the hung poll is still in flight, and the cache is used again
 * (flushed) once polls succeed. Durations are bounded generously (the bound plus 9 s),
 * never tightly. Also in suite "threads" (ThreadSanitizer). */
#ifdef SCACHE_STANDALONE_TESTS
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif
#include <curl/curl.h>

#include <scache/scache.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* the bound is also a strict hit's wait for its poll: far above a busy machine's delays */
#define STALENESS_MS 3000u
#define HANG_MS      30000u /* far longer than the bound plus its margin */
#define MARGIN_MS    9000u

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- A source whose sync hangs on demand ------------------------------------------- */

static pthread_mutex_t src_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t src_cv = PTHREAD_COND_INITIALIZER;
static int hang;            /* syncs from now on hang, until released */
static int hanging;         /* a sync is hanging now */
static unsigned hung;       /* syncs that hung */
static unsigned hung_ended; /* syncs that hung and returned */
static unsigned good;       /* syncs that succeeded */

static scache_err hang_sync(void *self, uint64_t since_ns, const scache_sink *sink,
                            scache_poll_info *info)
{
	(void)self, (void)since_ns, (void)sink;
	pthread_mutex_lock(&src_mu);
	if (!hang) {
		good++;
		pthread_cond_broadcast(&src_cv);
		pthread_mutex_unlock(&src_mu);
		return SCACHE_OK;
	}
	hanging = 1;
	hung++;
	pthread_cond_broadcast(&src_cv);
	uint64_t until = now_ms() + HANG_MS;
	while (hang && now_ms() < until) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&src_cv, &src_mu, &ts);
	}
	hanging = 0;
	hung_ended++;
	pthread_cond_broadcast(&src_cv);
	pthread_mutex_unlock(&src_mu);
	snprintf(info->message, sizeof info->message, "no answer from the test endpoint");
	return SCACHE_ETIMEOUT;
}

static scache_err hang_publish(void *self, const char *const *keys, const size_t *lens, size_t n,
                               char *errbuf, size_t errlen)
{
	(void)self, (void)keys, (void)lens, (void)n, (void)errbuf, (void)errlen;
	return SCACHE_OK;
}

static const scache_source_ops hang_ops = {
    .name = "hang", .sync = hang_sync, .publish = hang_publish};

/* No sync that hung has returned yet. */
static int none_ended(void)
{
	pthread_mutex_lock(&src_mu);
	int h = hung_ended == 0;
	pthread_mutex_unlock(&src_mu);
	return h;
}

/* From now on syncs hang. wait: return once one does (with bounded staleness the
 * background poll comes by itself; in strict mode only a request asks for one). */
static void start_hanging(int wait)
{
	pthread_mutex_lock(&src_mu);
	hang = 1;
	if (!wait) {
		pthread_mutex_unlock(&src_mu);
		return;
	}
	uint64_t until = now_ms() + 5000;
	while (!hanging && now_ms() < until) {
		pthread_mutex_unlock(&src_mu);
		usleep(2000);
		pthread_mutex_lock(&src_mu);
	}
	int h = hanging;
	pthread_mutex_unlock(&src_mu);
	cr_assert_eq(h, 1, "a poll hangs");
}

static void stop_hanging(void)
{
	pthread_mutex_lock(&src_mu);
	hang = 0;
	pthread_cond_broadcast(&src_cv);
	pthread_mutex_unlock(&src_mu);
}

/* ---- The application ------------------------------------------------------------ */

/* GET /get/ID: the cached value, "bypass" or "none"; GET /put/ID: caches "v";
 * GET /healthz: "ok" (reads no cache). */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **req_cls)
{
	(void)cls, (void)method, (void)version, (void)data, (void)size;
	if (!*req_cls) {
		*req_cls = c;
		return MHD_YES;
	}
	char body[64] = "ok";
	scache_request *req = scache_request_current();
	if (!strncmp(url, "/get/", 5)) {
		scache_value v;
		if (scache_get(req, "t", url + 5, &v) == SCACHE_OK) {
			snprintf(body, sizeof body, "%.*s", (int)v.len, (const char *)v.data);
			scache_value_release(&v);
		} else {
			snprintf(body, sizeof body, "%s",
			         scache_request_bypass(req) ? "bypass" : "none");
		}
	} else if (!strncmp(url, "/put/", 5)) {
		snprintf(body, sizeof body, "%s",
		         scache_strerror(scache_add(req, "t", url + 5, "v", 1, 60)));
	}
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static void quiet(void *arg, const char *line, size_t len)
{
	(void)arg, (void)line, (void)len;
}

/* ---- Fixture: stopped by .fini also when an assertion fails ---------------------- */

enum mode { POOL_SUSPEND, THREAD_PER_CONNECTION };

static scache_cache *cache;
static scache_middleware *mw;
static struct MHD_Daemon *daemon_;
static unsigned short port;

static void start(enum mode mode, uint64_t poll_interval_ms)
{
	cr_assert_eq(scache_cache_new(NULL, &cache), SCACHE_OK);
	scache_source *src = NULL;
	cr_assert_eq(scache_source_new(&hang_ops, NULL, &src), SCACHE_OK);
	scache_middleware_config mc = {.cache = cache,
	                               .source = src,
	                               .handler = handler,
	                               .log = quiet,
	                               .max_polls_per_second = 100,
	                               .poll_interval_ms = poll_interval_ms,
	                               .max_staleness_ms = STALENESS_MS,
	                               .suspend = mode == POOL_SUSPEND};
	char err[256];
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (mode == POOL_SUSPEND)
		daemon_ =
		    scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
		                     &sa, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END);
	else
		daemon_ = scache_mhd_start(
		    mw, MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
		    MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
	cr_assert_not_null(daemon_);
	port = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
	cr_assert_eq(scache_middleware_wait_ready(mw, 30000, err, sizeof err), SCACHE_OK, "%s", err);
}

static void stop_all(void)
{
	stop_hanging(); /* the poller's sync returns, so the middleware can stop */
	if (mw)
		scache_middleware_shutdown(mw);
	if (daemon_)
		MHD_stop_daemon(daemon_);
	daemon_ = NULL;
	scache_middleware_free(mw);
	mw = NULL;
	scache_cache_free(cache);
	cache = NULL;
}

/* ---- HTTP ------------------------------------------------------------------------- */

typedef struct answer {
	char path[32];
	char body[64];
	CURLcode code;
	uint64_t ms;       /* how long it took */
	int while_hanging; /* no hung poll had ended when it was answered */
} answer;

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	answer *a = arg;
	size_t have = strlen(a->body);
	snprintf(a->body + have, sizeof a->body - have, "%.*s", (int)(size * n), p);
	return size * n;
}

static void *fetch(void *arg)
{
	answer *a = arg;
	char url[96];
	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, a->path);
	CURL *curl = curl_easy_init();
	if (!curl) {
		a->code = CURLE_FAILED_INIT;
		return NULL;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(HANG_MS + 10000));
	uint64_t t0 = now_ms();
	a->code = curl_easy_perform(curl);
	a->ms = now_ms() - t0;
	a->while_hanging = none_ended();
	curl_easy_cleanup(curl);
	return NULL;
}

static const char *get(const char *path)
{
	static answer a;
	memset(&a, 0, sizeof a);
	snprintf(a.path, sizeof a.path, "%s", path);
	fetch(&a);
	cr_assert_eq(a.code, CURLE_OK, "GET %s: %s", path, curl_easy_strerror(a.code));
	return a.body;
}

/* GET every path at once (one thread each); the answers in order. */
static void get_concurrently(answer *as, size_t n)
{
	pthread_t t[8];
	cr_assert(n <= 8);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, fetch, &as[i]), 0);
	for (size_t i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

static void assert_answered_in_time(const answer *a, const char *body)
{
	cr_assert_eq(a->code, CURLE_OK, "GET %s: %s", a->path, curl_easy_strerror(a->code));
	cr_assert_str_eq(a->body, body, "GET %s", a->path);
	cr_assert_eq(a->while_hanging, 1,
	             "GET %s was answered only after the hung poll ended (%llu ms)", a->path,
	             (unsigned long long)a->ms);
	cr_assert_lt(a->ms, STALENESS_MS + MARGIN_MS, "GET %s took %llu ms", a->path,
	             (unsigned long long)a->ms);
}

/* A warm cache: an entry added, then a poll that began after it succeeded (strict: the
 * hit's own poll). */
static void warm(int strict)
{
	cr_assert_str_eq(get("/put/1"), "success");
	pthread_mutex_lock(&src_mu);
	unsigned before = good;
	pthread_mutex_unlock(&src_mu);
	cr_assert_str_eq(get("/get/1"), "v", "a hit after a good poll");
	pthread_mutex_lock(&src_mu);
	unsigned after = good;
	pthread_mutex_unlock(&src_mu);
	if (strict)
		cr_assert_gt(after, before, "the hit waited for a poll of its own");
}

/* ---- Strict ------------------------------------------------------------------------- */

/* The read whose poll hangs is answered BYPASS at its deadline; a request that reads no
 * cache (/healthz, parked too with .suspend by the default uses_cache) gets its answer;
 * once the stream is read again the cache is flushed and used. */
static void strict_read_during_a_hung_poll(enum mode mode)
{
	start(mode, 0);
	warm(1);
	start_hanging(0); /* the reads below ask for the poll that hangs */
	answer as[3] = {{.path = "/get/1"}, {.path = "/healthz"}, {.path = "/get/1"}};
	get_concurrently(as, 3);
	for (size_t i = 0; i < 3; i++)
		assert_answered_in_time(&as[i], !strcmp(as[i].path, "/healthz") ? "ok" : "bypass");
	pthread_mutex_lock(&src_mu);
	unsigned polls_hung = hung;
	pthread_mutex_unlock(&src_mu);
	cr_assert_geq(polls_hung, 1, "the reads' poll hung");

	/* the bound passed with no good poll: later reads bypass at once, still hanging */
	answer next = {.path = "/get/1"};
	fetch(&next);
	assert_answered_in_time(&next, "bypass");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.bypassing, 1, "bypassing while no poll succeeds");

	stop_hanging();
	char err[256];
	cr_assert_eq(scache_middleware_wait_ready(mw, 30000, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_str_eq(get("/get/1"), "none", "the cache was flushed on recovery");
	cr_assert_str_eq(get("/put/1"), "success");
	cr_assert_str_eq(get("/get/1"), "v", "and is used again");
}

Test(parked_deadline, strict_pool_with_suspend_answers_at_the_deadline_while_the_poll_hangs,
     .fini = stop_all)
{
	strict_read_during_a_hung_poll(POOL_SUSPEND);
}

Test(parked_deadline, strict_thread_per_connection_answers_at_the_deadline_while_the_poll_hangs,
     .fini = stop_all)
{
	strict_read_during_a_hung_poll(THREAD_PER_CONNECTION);
}

/* ---- Bounded staleness -------------------------------------------------------------- */

/* A read that needs a newer poll than the last good one waits for it; at its deadline no
 * poll has succeeded for max_staleness_ms, so it is answered BYPASS, as every read
 * after it. */
static void bounded_read_during_a_hung_poll(enum mode mode)
{
	start(mode, 200);
	warm(0);
	start_hanging(1);
	usleep(300 * 1000); /* the last good poll is older than the interval now */
	answer as[2] = {{.path = "/get/1"}, {.path = "/healthz"}};
	get_concurrently(as, 2);
	assert_answered_in_time(&as[0], "bypass");
	assert_answered_in_time(&as[1], "ok");
	answer next = {.path = "/get/1"};
	fetch(&next);
	assert_answered_in_time(&next, "bypass");

	stop_hanging();
	char err[256];
	cr_assert_eq(scache_middleware_wait_ready(mw, 30000, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_str_eq(get("/get/1"), "none", "the cache was flushed on recovery");
}

Test(parked_deadline, bounded_pool_with_suspend_answers_at_the_deadline_while_the_poll_hangs,
     .fini = stop_all)
{
	bounded_read_during_a_hung_poll(POOL_SUSPEND);
}

Test(parked_deadline, bounded_thread_per_connection_answers_at_the_deadline_while_the_poll_hangs,
     .fini = stop_all)
{
	bounded_read_during_a_hung_poll(THREAD_PER_CONNECTION);
}
