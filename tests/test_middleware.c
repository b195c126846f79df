/* The middleware with a stand-in stream: real libmicrohttpd daemons on 127.0.0.1 in every
 * thread mode, real HTTP through libcurl, and a stream stand-in that delivers queued
 * invalidations, fails, or reports gaps on demand. Outcomes are exact; nothing asserts
 * a duration. This suite is also in "threads": build-tsan/ runs it under ThreadSanitizer
 * against tests/standalone.h (one forked process per test, as with Criterion). */
#ifdef SCACHE_STANDALONE_TESTS
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif
#include <curl/curl.h>
#include <json-c/json.h>

#include "middleware_internal.h"
#include <scache/id.h>
#include <scache/middleware.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- The stand-in stream ------------------------------------------------------ */

typedef struct standin {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *pending[64];
	size_t npending;
	int fail; /* drains fail with SCACHE_ETRANSPORT */
	int gap;  /* the next drain reports a gap */
	int publish_fail;
	int throttle;         /* drains report throttling (and succeed) */
	int hold;             /* drains block while set */
	unsigned unreachable; /* this many more drains fail as "cannot connect" */
	unsigned drains;
	unsigned holding; /* drains blocked now */
	size_t published;
	int unavailable_at_start;
	int snapshot; /* a sync delivers what was queued before it began (as a real source
	                 does), not what is queued while it is held; syncs must not fail */
} standin;

static standin *standin_new(void)
{
	standin *s = calloc(1, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	return s;
}

static void standin_queue(standin *s, const char *source, const char *id)
{
	char *key;
	cr_assert_eq(scache_id_encode_alloc(source, strlen(source), id, strlen(id), &key, NULL),
	             SCACHE_OK);
	pthread_mutex_lock(&s->mu);
	s->pending[s->npending++] = key;
	pthread_mutex_unlock(&s->mu);
}

static void standin_set(standin *s, int *field, int v)
{
	pthread_mutex_lock(&s->mu);
	*field = v;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static unsigned standin_drains(standin *s)
{
	pthread_mutex_lock(&s->mu);
	unsigned n = s->drains;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static scache_err standin_sync(void *arg, uint64_t since_ns, const scache_sink *sink,
                               scache_poll_info *info)
{
	(void)since_ns;
	standin *s = arg;
	char *keys[64];
	size_t lens[64], n = 0;
	pthread_mutex_lock(&s->mu);
	int early = s->snapshot;
	if (early) {
		n = s->npending;
		memcpy(keys, s->pending, n * sizeof keys[0]);
		s->npending = 0;
	}
	s->holding++;
	pthread_cond_broadcast(&s->cv);
	while (s->hold)
		pthread_cond_wait(&s->cv, &s->mu);
	s->holding--;
	s->drains++;
	info->calls = 1;
	if (s->unreachable || s->fail) {
		for (size_t i = 0; i < n; i++) /* a snapshot's keys: lost (see .snapshot) */
			free(keys[i]);
	}
	if (s->unreachable) {
		s->unreachable--;
		pthread_mutex_unlock(&s->mu);
		info->err = SCACHE_ESERVICE;
		snprintf(info->message, sizeof info->message,
		         "ResourceNotFoundException (stand-in)");
		return SCACHE_ESERVICE;
	}
	if (s->fail) {
		pthread_mutex_unlock(&s->mu);
		info->err = SCACHE_ETRANSPORT;
		snprintf(info->message, sizeof info->message, "connection refused (stand-in)");
		return SCACHE_ETRANSPORT;
	}
	int gap = s->gap;
	s->gap = 0;
	info->throttled = s->throttle;
	if (!early) {
		n = s->npending;
		memcpy(keys, s->pending, n * sizeof keys[0]);
		s->npending = 0;
	}
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(keys[i]);
	pthread_mutex_unlock(&s->mu);
	if (gap)
		sink->gap(sink->arg, "stand-in gap \"quoted\"");
	if (n)
		sink->keys(sink->arg, (const char *const *)keys, lens, n);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	info->keys = n;
	return SCACHE_OK;
}

static scache_err standin_publish(void *arg, const char *const *keys, const size_t *lens, size_t n,
                                  char *errbuf, size_t errlen)
{
	standin *s = arg;
	pthread_mutex_lock(&s->mu);
	if (s->publish_fail) {
		pthread_mutex_unlock(&s->mu);
		snprintf(errbuf, errlen, "ServiceUnavailable: stand-in publish failure");
		return SCACHE_EPUBLISH;
	}
	for (size_t i = 0; i < n && s->npending < 64; i++)
		s->pending[s->npending++] = strndup(keys[i], lens[i]);
	s->published += n;
	pthread_mutex_unlock(&s->mu);
	return SCACHE_OK;
}

static void standin_destroy(void *arg)
{
	standin *s = arg;
	for (size_t i = 0; i < s->npending; i++)
		free(s->pending[i]);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* For the next start(): the stream cannot be reached at creation, and the stand-in's
 * first this-many syncs (connection attempts) fail; they are held until the test sets
 * stream->hold to 0. */
static unsigned next_unreachable;
#define UNREACHABLE_WHY "ResourceNotFoundException: stream 't' not found (stand-in)"

static const char *standin_unavailable(void *arg)
{
	return ((standin *)arg)->unavailable_at_start ? UNREACHABLE_WHY : NULL;
}

/* The stand-in is a source like any other: through the public interface (source.h). */
static const scache_source_ops standin_ops = {.name = "stand-in",
                                              .sync = standin_sync,
                                              .publish = standin_publish,
                                              .unavailable = standin_unavailable,
                                              .destroy = standin_destroy};

static scache_source *standin_source(standin *s)
{
	scache_source *src;
	cr_assert_eq(scache_source_new(&standin_ops, s, &src), SCACHE_OK);
	return src;
}

/* ---- Captured log lines -------------------------------------------------------- */

typedef struct capture {
	pthread_mutex_t mu;
	char **lines; /* every line kept: a test that loops on requests makes thousands */
	size_t n, cap;
	char types[8][16]; /* the lines' "type" values seen, and how many of each */
	size_t counts[8];
} capture;

static capture logs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void capture_line(void *arg, const char *line, size_t len)
{
	capture *c = arg;
	cr_assert_eq(line[len], '\0');
	pthread_mutex_lock(&c->mu);
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->lines = realloc(c->lines, c->cap * sizeof *c->lines);
		cr_assert_not_null(c->lines);
	}
	c->lines[c->n++] = strndup(line, len);
	json_object *o = json_tokener_parse(line), *t;
	const char *type = o && json_object_object_get_ex(o, "type", &t) ? json_object_get_string(t)
	                                                               : "";
	for (size_t i = 0; i < 8; i++) {
		if (!c->types[i][0])
			snprintf(c->types[i], sizeof c->types[i], "%s", type);
		if (!strcmp(c->types[i], type)) {
			c->counts[i]++;
			break;
		}
	}
	json_object_put(o);
	pthread_mutex_unlock(&c->mu);
}

/* The n-th line of the given type, parsed (caller puts it). */
static json_object *log_line(const char *type, size_t nth)
{
	json_object *found = NULL;
	pthread_mutex_lock(&logs.mu);
	for (size_t i = 0; i < logs.n && !found; i++) {
		json_object *o = json_tokener_parse(logs.lines[i]);
		cr_assert_not_null(o, "log line is not JSON: %s", logs.lines[i]);
		json_object *t;
		if (json_object_object_get_ex(o, "type", &t) &&
		    strcmp(json_object_get_string(t), type) == 0 && nth-- == 0)
			found = o;
		else
			json_object_put(o);
	}
	pthread_mutex_unlock(&logs.mu);
	return found;
}

static size_t count_lines(const char *type)
{
	size_t n = 0;
	pthread_mutex_lock(&logs.mu);
	for (size_t i = 0; i < 8; i++)
		if (!strcmp(logs.types[i], type))
			n = logs.counts[i];
	pthread_mutex_unlock(&logs.mu);
	return n;
}

/* Warnings about the poll state are written after the state changed (outside the lock),
 * so a request may see the new state first: wait (up to 10 s) for at least n lines of
 * the type, then give the count, which the caller checks exactly. */
static size_t wait_lines(const char *type, size_t n)
{
	for (int i = 0; i < 10000 && count_lines(type) < n; i++)
		usleep(1000);
	return count_lines(type);
}

static void capture_clear(void)
{
	pthread_mutex_lock(&logs.mu);
	for (size_t i = 0; i < logs.n; i++)
		free(logs.lines[i]);
	logs.n = 0;
	memset(logs.types, 0, sizeof logs.types);
	memset(logs.counts, 0, sizeof logs.counts);
	pthread_mutex_unlock(&logs.mu);
}

/* ---- The application under test ------------------------------------------------ */

/* The app's own per-request state, to check req_cls is kept and chained. */
typedef struct app_req {
	unsigned magic;
	size_t uploaded;
	unsigned calls;
} app_req;

static pthread_mutex_t app_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned completed_ok; /* completions that saw the app's own req_cls */
static unsigned completed_total;

static scache_cache *cache;
static scache_middleware *mw;
static standin *stream;
static struct MHD_Daemon *daemon_;
static unsigned short port;
static pthread_t external_thread;
static _Atomic int external_stop; /* read by the external loop's thread */
static int external_mode;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             const char *xcache)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (xcache)
		MHD_add_response_header(r, "X-Cache", xcache);
	enum MHD_Result ret = scache_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* GET /get/ID: X-Cache HIT/MISS/BYPASS, body = cached value or "none".
 * PUT /put/ID with a body: adds body under ID (saved 5 ms), answers the add's error.
 * POST /upload: counts uploaded bytes in the app's req_cls, answers their number.
 * GET /other-thread: looks the context up from another thread. */
static void *lookup_thread(void *arg)
{
	struct MHD_Connection *c = arg;
	return scache_request_of(mw, c);
}

/* GET /gated/get/ID: like /get/ID, once the test opens handler_gate (after the drain). */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int entered, open;
} handler_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static enum MHD_Result app_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_size, void **req_cls)
{
	(void)version;
	(void)upload_data;
	cr_assert_eq(cls, (void *)&app_mu, "the handler gets its own closure");
	app_req *ar = *req_cls;
	if (!ar) {
		ar = calloc(1, sizeof *ar);
		ar->magic = 0xA5A5;
		*req_cls = ar;
		return MHD_YES;
	}
	cr_assert_eq(ar->magic, 0xA5A5u);
	ar->calls++;
	if (*upload_size) {
		ar->uploaded += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	scache_request *req = scache_request_current();
	cr_assert_not_null(req);
	cr_assert_eq(scache_request_of(mw, c), req);
	char buf[128];
	if (strcmp(url, "/upload") == 0) {
		snprintf(buf, sizeof buf, "%zu", ar->uploaded);
		return reply(c, 200, buf, NULL);
	}
	if (strcmp(url, "/other-thread") == 0) {
		pthread_t t;
		void *found = NULL;
		pthread_create(&t, NULL, lookup_thread, c);
		pthread_join(t, &found);
		return reply(c, found == req ? 200 : 500, found == req ? "same" : "other", NULL);
	}
	if (strncmp(url, "/gated/get/", 11) == 0) {
		pthread_mutex_lock(&handler_gate.mu);
		handler_gate.entered = 1;
		pthread_cond_broadcast(&handler_gate.cv);
		while (!handler_gate.open)
			pthread_cond_wait(&handler_gate.cv, &handler_gate.mu);
		pthread_mutex_unlock(&handler_gate.mu);
		url += 6; /* on as /get/ID */
	}
	if (strncmp(url, "/get/", 5) == 0) {
		scache_value v;
		scache_err err = scache_get(req, "t", url + 5, &v);
		if (err == SCACHE_OK) {
			snprintf(buf, sizeof buf, "%.*s", (int)v.len, (const char *)v.data);
			scache_value_release(&v);
			return reply(c, 200, buf, "HIT");
		}
		return reply(c, 200, "none", err == SCACHE_EBYPASS ? "BYPASS" : "MISS");
	}
	if (strncmp(url, "/put/", 5) == 0 && strcmp(method, "PUT") == 0) {
		scache_err err = scache_add(req, "t", url + 5, "v1", 2, 5000000);
		return reply(c, 200, scache_strerror(err), NULL);
	}
	return reply(c, 404, "not found", NULL);
}

static void app_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                          enum MHD_RequestTerminationCode toe)
{
	(void)c;
	(void)toe;
	cr_assert_eq(cls, (void *)&app_mu);
	pthread_mutex_lock(&app_mu);
	completed_total++;
	if (req_cls && *req_cls && ((app_req *)*req_cls)->magic == 0xA5A5)
		completed_ok++;
	pthread_mutex_unlock(&app_mu);
	if (req_cls) {
		free(*req_cls);
		*req_cls = NULL;
	}
}

static void *external_loop(void *arg)
{
	(void)arg;
	while (!external_stop) {
		fd_set rs, ws, es;
		MHD_socket max = 0;
		FD_ZERO(&rs);
		FD_ZERO(&ws);
		FD_ZERO(&es);
		MHD_get_fdset(daemon_, &rs, &ws, &es, &max);
		struct timeval tv = {0, 20000};
		select(max + 1, &rs, &ws, &es, &tv);
		MHD_run(daemon_);
	}
	return NULL;
}

static void start(unsigned flags, unsigned pool, scache_middleware_config mc)
{
	scache_cache_config cc = {.min_ttl_ms = 60000, .max_ttl_ms = 60000};
	cr_assert_eq(scache_cache_new(&cc, &cache), SCACHE_OK);
	stream = standin_new();
	stream->unreachable = next_unreachable;
	stream->hold = next_unreachable > 0;
	mc.cache = cache;
	mc.handler = app_handler;
	mc.handler_cls = &app_mu;
	mc.completed = app_completed;
	mc.completed_cls = &app_mu;
	mc.log = capture_line;
	mc.log_arg = &logs;
	if (!mc.max_staleness_ms)
		mc.max_staleness_ms = 60000;
	if (!mc.max_polls_per_second)
		mc.max_polls_per_second = 1000;
	stream->unavailable_at_start = next_unreachable > 0;
	next_unreachable = 0;
	mc.source = standin_source(stream);
	char err[256];
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (pool)
		daemon_ = MHD_start_daemon(flags, 0, NULL, NULL, scache_access_handler, mw,
		                           MHD_OPTION_NOTIFY_COMPLETED, scache_request_completed,
		                           mw, MHD_OPTION_SOCK_ADDR, &sa,
		                           MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_END);
	else
		daemon_ = MHD_start_daemon(flags, 0, NULL, NULL, scache_access_handler, mw,
		                           MHD_OPTION_NOTIFY_COMPLETED, scache_request_completed,
		                           mw, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
	cr_assert_not_null(daemon_);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
	port = di->port;
	external_mode =
	    !(flags & (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION));
	if (external_mode) {
		external_stop = 0;
		pthread_create(&external_thread, NULL, external_loop, NULL);
	}
}

/* A thread of the test's own (an HTTP client, a timer): joined by the test, or after a
 * failed assertion by stop(), once it has released what the thread may wait for. What
 * the thread writes must outlive the test's frame (static). */
static pthread_t helper;
static int helper_running;

static void helper_start(void *(*fn)(void *), void *arg)
{
	pthread_create(&helper, NULL, fn, arg);
	helper_running = 1;
}

static void helper_join(void)
{
	pthread_join(helper, NULL);
	helper_running = 0;
}

/* The suite's teardown (.fini): runs after every test, also after a failed assertion,
 * and stops whatever start() (or the test itself) left running. A failed test may have
 * left the stand-in's polls or a handler blocked: release them first. */
static void stop(void)
{
	if (mw && stream)
		standin_set(stream, &stream->hold, 0);
	pthread_mutex_lock(&handler_gate.mu);
	handler_gate.open = 1;
	pthread_cond_broadcast(&handler_gate.cv);
	pthread_mutex_unlock(&handler_gate.mu);
	scache_middleware_shutdown(mw); /* while the external loop still runs */
	if (helper_running)
		helper_join();
	if (external_mode) {
		external_stop = 1;
		pthread_join(external_thread, NULL);
		external_mode = 0;
	}
	if (daemon_)
		MHD_stop_daemon(daemon_);
	daemon_ = NULL;
	scache_middleware_free(mw);
	mw = NULL;
	scache_cache_free(cache);
	cache = NULL;
	stream = NULL; /* the source, freed with the middleware, owned it */
	capture_clear();
}

TestSuite(middleware, .fini = stop);

static void cache_put(const char *id, const char *value);

/* ---- HTTP client --------------------------------------------------------------- */

typedef struct response {
	long status;
	char body[512];
	size_t len;
	char xcache[16];
} response;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	response *r = arg;
	size_t k = size * n;
	size_t room = sizeof r->body - 1 - r->len;
	memcpy(r->body + r->len, p, k < room ? k : room);
	r->len += k < room ? k : room;
	r->body[r->len] = '\0';
	return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	response *r = arg;
	size_t k = size * n;
	if (k > 9 && strncasecmp(p, "X-Cache: ", 9) == 0)
		snprintf(r->xcache, sizeof r->xcache, "%.*s", (int)(k - 9 - 2), p + 9);
	return k;
}

static response http(const char *method, const char *path, const char *body)
{
	response r = {0};
	CURL *c = curl_easy_init();
	char url[512];
	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	CURLcode rc = curl_easy_perform(c);
	cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_easy_cleanup(c);
	return r;
}

/* Completion runs after the response is sent: wait for the n-th request line. */
static json_object *wait_request_line(size_t nth)
{
	for (int i = 0; i < 5000; i++) {
		json_object *o = log_line("request", nth);
		if (o)
			return o;
		usleep(1000);
	}
	cr_assert_fail("request line %zu never came", nth);
	return NULL;
}

static void cache_put(const char *id, const char *value)
{
	char key[128];
	scache_id_encode("t", 1, id, strlen(id), key, sizeof key);
	scache_add_opts o = {.token = scache_cache_begin_load(cache), .saved_ns = 4000000};
	cr_assert_eq(scache_cache_add(cache, key, strlen(key), value, strlen(value), &o),
	             SCACHE_OK);
}

static int64_t field_int(json_object *o, const char *name)
{
	json_object *f;
	cr_assert(json_object_object_get_ex(o, name, &f), "field %s missing", name);
	return json_object_get_int64(f);
}

/* ---- Tests --------------------------------------------------------------------- */

static void check_req_cls_kept(unsigned flags, unsigned pool)
{
	scache_middleware_config mc = {.suspend = (flags & MHD_ALLOW_SUSPEND_RESUME) != 0};
	start(flags, pool, mc);
	cache_put("x", "y"); /* not empty: every request waits for a poll (or is parked) */
	char body[3000];
	memset(body, 'x', sizeof body - 1);
	body[sizeof body - 1] = '\0';
	response r = http("POST", "/upload", body);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "2999", "upload callbacks reached the app with its req_cls");
	r = http("GET", "/other-thread", NULL);
	cr_assert_str_eq(r.body, "same");
	json_object_put(wait_request_line(1));
	pthread_mutex_lock(&app_mu);
	cr_assert_eq(completed_total, 2);
	cr_assert_eq(completed_ok, 2, "the app's completion saw its own req_cls");
	pthread_mutex_unlock(&app_mu);
	cr_assert_null(scache_request_current(), "no context outside a handler");
}

Test(middleware, keeps_req_cls_with_an_internal_polling_thread)
{
	check_req_cls_kept(MHD_USE_INTERNAL_POLLING_THREAD, 0);
}

Test(middleware, keeps_req_cls_with_a_thread_pool)
{
	check_req_cls_kept(MHD_USE_INTERNAL_POLLING_THREAD, 4);
}

Test(middleware, keeps_req_cls_with_thread_per_connection)
{
	check_req_cls_kept(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0);
}

Test(middleware, keeps_req_cls_with_external_select)
{
	check_req_cls_kept(0, 0);
}

Test(middleware, keeps_req_cls_when_parked_in_a_thread_pool)
{
	check_req_cls_kept(MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME, 4);
}

Test(middleware, keeps_req_cls_when_parked_with_external_select)
{
	check_req_cls_kept(MHD_ALLOW_SUSPEND_RESUME, 0);
}

static void check_strict_drain(unsigned flags, unsigned pool, int suspend)
{
	scache_middleware_config mc = {.suspend = suspend};
	start(flags, pool, mc);
	cache_put("1", "old");
	response r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "HIT");
	cr_assert_str_eq(r.body, "old");
	/* lines are written at completion, which may come after the client has its answer */
	json_object_put(wait_request_line(0));
	standin_queue(stream, "t", "1");
	r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "MISS", "the request waited for a poll that saw the key");
	json_object *o = wait_request_line(1);
	cr_assert_eq(field_int(o, "evicted"), 1, "evicted %lld, drains %u, line %s",
	             (long long)field_int(o, "evicted"), standin_drains(stream),
	             json_object_to_json_string(o));
	cr_assert_eq(field_int(o, "misses"), 1);
	json_object_put(o);
	o = wait_request_line(0);
	cr_assert_eq(field_int(o, "hits"), 1);
	json_object *saved;
	cr_assert(json_object_object_get_ex(o, "saved_ms", &saved));
	cr_assert_float_eq(json_object_get_double(saved), 4.0, 1e-9);
	json_object_put(o);
}

Test(middleware, strict_drain_applies_invalidations_published_before_the_request)
{
	check_strict_drain(MHD_USE_INTERNAL_POLLING_THREAD, 0, 0);
}

Test(middleware, strict_drain_applies_invalidations_while_the_request_is_parked)
{
	check_strict_drain(MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME, 2, 1);
}

static void *get_in_thread(void *arg)
{
	response *r = arg;
	*r = http("GET", "/get/1", NULL);
	return NULL;
}

Test(middleware, shutdown_resumes_parked_requests_so_the_daemon_can_stop)
{
	scache_middleware_config mc = {.suspend = 1};
	start(MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME, 0, mc);
	cache_put("1", "a");
	standin_set(stream, &stream->hold, 1); /* no poll completes from now on */
	static response r;
	helper_start(get_in_thread, &r);
	while (mw_test_waiting(mw) == 0) /* parked: in the waiters list */
		usleep(1000);
	scache_middleware_shutdown(mw);
	helper_join();
	cr_assert_eq(r.status, 200, "the parked request was served");
	cr_assert_str_eq(r.xcache, "BYPASS",
	                 "strict: its poll never completed, so it must not read the cache");
	cr_assert_eq(mw_test_waiting(mw), 0);
	cr_assert_eq(mw_test_parked(mw), 0);
	MHD_stop_daemon(daemon_);
	daemon_ = NULL;
	standin_set(stream, &stream->hold, 0);
}

Test(middleware, empty_cache_does_not_wait_but_keeps_the_stream_moving)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	standin_set(stream, &stream->hold, 1); /* every poll blocks from now on */
	response r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "MISS", "answered while the poll is still blocked");
	pthread_mutex_lock(&stream->mu);
	while (stream->holding == 0) /* a poll was started for the request */
		pthread_cond_wait(&stream->cv, &stream->mu);
	pthread_mutex_unlock(&stream->mu);
	standin_set(stream, &stream->hold, 0);
}

Test(middleware, bounded_staleness_uses_a_recent_poll_without_waiting)
{
	scache_middleware_config mc = {.poll_interval_ms = 3600000};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	while (standin_drains(stream) == 0) /* the first background poll */
		usleep(1000);
	cache_put("1", "old");
	standin_queue(stream, "t", "1");
	unsigned before = standin_drains(stream);
	response r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "HIT", "a poll within the interval is good enough");
	cr_assert_eq(standin_drains(stream), before, "no poll for the request");
}

Test(middleware, adds_are_refused_when_the_id_was_invalidated_during_the_handler)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	response r = http("PUT", "/put/1", NULL);
	cr_assert_str_eq(r.body, scache_strerror(SCACHE_OK));
	/* a request's token is taken when its handler starts: simulate an invalidation
	 * applied while a handler loads */
	scache_request fake = {.mw = mw, .token = scache_cache_begin_load(cache)};
	const char *k = "id=2&s=t&t=data.ID";
	size_t kl = strlen(k);
	mw_apply_keys(mw, &k, &kl, 1);
	cr_assert_eq(scache_add(&fake, "t", "2", "v", 1, 1), SCACHE_ESTALE);
	cr_assert_eq(scache_add(&fake, "t", "3", "v", 1, 1), SCACHE_OK);
}

Test(middleware, bypasses_when_the_stream_stays_down_and_recovers_by_itself)
{
	/* the bound is also how long a strict read waits for its poll: 1 s, far above a busy
	 * machine's scheduling delays (with 50 ms, a read after recovery could miss its poll) */
	scache_middleware_config mc = {.max_staleness_ms = 1000, .max_polls_per_second = 100};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	cache_put("1", "old");
	standin_set(stream, &stream->fail, 1);
	response r;
	int tries = 0;
	do {
		r = http("GET", "/get/1", NULL);
		cr_assert_eq(r.status, 200, "requests keep succeeding while the stream is down");
	} while (strcmp(r.xcache, "BYPASS") != 0 && ++tries < 1000);
	cr_assert_str_eq(r.xcache, "BYPASS");
	r = http("PUT", "/put/9", NULL);
	cr_assert_str_eq(r.body, scache_strerror(SCACHE_EBYPASS), "adds are refused");
	r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "BYPASS");
	cr_assert_eq(wait_lines("warning", 1), 1, "one warning per episode");

	standin_set(stream, &stream->fail, 0);
	tries = 0;
	do {
		usleep(1000);
		r = http("GET", "/get/1", NULL);
	} while (strcmp(r.xcache, "BYPASS") == 0 && ++tries < 5000);
	cr_assert_str_eq(
	    r.xcache, "MISS",
	    "entries cached before the outage are flushed at recovery: an invalidation "
	    "published during it may have been lost");
	cr_assert_eq(wait_lines("warning", 2), 2, "the recovery is logged");
	r = http("PUT", "/put/1", "new");
	cr_assert_str_eq(r.body, scache_strerror(SCACHE_OK), "adds are accepted again");
	r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "HIT", "caching resumes after a successful poll");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.bypassing, 0);
	cr_assert(st.poll_errors >= 1);
	cr_assert(st.bypass_requests >= 2);
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Found by the consistency checker (fault 500, a thread per connection): a poll failed
 * before the bound had passed, the next one waited out its back-off, and meanwhile a
 * request on an empty cache (nothing to wait for) was served as MISS and /healthz said
 * "not bypassing", though no poll had succeeded for longer than the bound. */
Test(middleware, the_bypass_begins_when_the_bound_passes_after_a_failed_poll_not_at_the_next)
{
	/* polls at most 1 a second: after the failed poll (about 1 s in), the back-off holds
	 * the next one until about 3 s in; the bound, 1.5 s, passes in between */
	scache_middleware_config mc = {.max_staleness_ms = 1500, .max_polls_per_second = 1};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	while (standin_drains(stream) == 0) /* the first poll, at creation: it succeeds */
		usleep(1000);
	double ok_by = mono_s(); /* the newest successful poll began before this */
	standin_set(stream, &stream->fail, 1);
	cache_put("1", "old");
	response r = http("GET", "/get/1", NULL); /* strict: waits for the next poll, failed */
	cr_assert_str_eq(r.xcache, "BYPASS", "strict: its poll failed");
	cr_assert_eq(standin_drains(stream), 2);
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	double failed_at = mono_s();
	if (failed_at - ok_by > 1.2)
		cr_log_warn("the failed poll came %.1f s after the good one (a busy machine): "
		            "the bypass may have begun with it, which this test does not tell apart",
		            failed_at - ok_by);
	else
		cr_assert_eq(st.bypassing, 0, "the bound had not passed when the poll failed");
	while (mono_s() < ok_by + 1.7)
		usleep(10000);
	scache_cache_flush(cache, NULL); /* nothing cached: no request would wait for a poll */
	r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "BYPASS", "no poll succeeded for longer than the bound");
	cr_assert_eq(standin_drains(stream), 2, "no poll since the failed one");
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.bypassing, 1);
	cr_assert_eq(wait_lines("warning", 1), 1, "the outage is logged once");
}

Test(middleware, starts_bypassed_when_the_stream_is_unreachable_and_caches_once_connected)
{
	scache_middleware_config mc = {0};
	next_unreachable = 3;
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	/* the connection attempts are held: the stream cannot be reached for now */
	response r = http("GET", "/get/1", NULL);
	cr_assert_eq(r.status, 200, "served while the stream cannot be reached");
	cr_assert_str_eq(r.xcache, "BYPASS");
	r = http("PUT", "/put/1", "v1");
	cr_assert_str_eq(r.body, scache_strerror(SCACHE_EBYPASS), "adds are refused");
	r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "BYPASS", "nothing was cached");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.bypassing, 1);
	cr_assert_eq(st.cache.entries, 0);
	cr_assert_eq(count_lines("warning"), 1, "one warning at startup");
	json_object *w = log_line("warning", 0), *msg;
	cr_assert(json_object_object_get_ex(w, "msg", &msg));
	cr_assert_str_eq(json_object_get_string(msg),
	                 "the stream cannot be read yet (" UNREACHABLE_WHY "): bypassing the "
	                 "cache and retrying until it can");
	json_object_put(w);

	/* three attempts fail, the fourth connects */
	standin_set(stream, &stream->hold, 0);
	int tries = 0;
	size_t requests = 3, bypassed = 3;
	for (;;) {
		usleep(1000);
		r = http("GET", "/get/1", NULL);
		cr_assert_eq(r.status, 200);
		requests++;
		if (strcmp(r.xcache, "BYPASS") != 0 || ++tries == 10000)
			break;
		bypassed++;
	}
	cr_assert_str_eq(r.xcache, "MISS", "the cache is in use once connected, and empty");
	r = http("PUT", "/put/1", "v1");
	cr_assert_str_eq(r.body, scache_strerror(SCACHE_OK), "adds are accepted again");
	r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "HIT");
	cr_assert_str_eq(r.body, "v1");
	requests += 2;
	json_object_put(wait_request_line(requests - 1)); /* every request counted */
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.bypassing, 0);
	cr_assert_eq(st.poll_errors, 3, "each failed attempt counts as a failed poll");
	cr_assert_eq(st.bypass_requests, bypassed, "the requests answered BYPASS, no more");
	pthread_mutex_lock(&stream->mu);
	cr_assert_eq(stream->unreachable, 0);
	pthread_mutex_unlock(&stream->mu);
	/* the recovery line is written after the poll state changes: wait for it */
	cr_assert_eq(wait_lines("warning", 2), 2, "the recovery is logged, nothing more");
}

/* The real stream (scache_middleware_new) against 127.0.0.1:PORT where a socket is bound
 * but does not listen: every connection is refused at once. */
static void real_stream_config(scache_stream_config *sc, char *endpoint, size_t len, int *sock)
{
	*sock = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	cr_assert_eq(bind(*sock, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(getsockname(*sock, (struct sockaddr *)&sa, &sl), 0);
	snprintf(endpoint, len, "http://127.0.0.1:%u", ntohs(sa.sin_port));
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	*sc = (scache_stream_config){.stream_name = "orders",
	                             .region = "us-east-1",
	                             .endpoint = endpoint,
	                             .access_key_id = "local",
	                             .secret_access_key = "local",
	                             .max_retries = 1,
	                             .backoff_base_ms = 1};
}

Test(middleware, new_fails_at_once_on_a_configuration_error)
{
	scache_cache_config cc = {0};
	cr_assert_eq(scache_cache_new(&cc, &cache), SCACHE_OK);
	scache_stream_config sc;
	char endpoint[64], err[256];
	int sock;
	real_stream_config(&sc, endpoint, sizeof endpoint, &sock);
	scache_middleware_config mc = {.cache = cache,
	                               .stream = &sc,
	                               .handler = app_handler,
	                               .log = capture_line,
	                               .log_arg = &logs};
	sc.region = NULL;
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_null(mw);
	cr_assert_str_eq(err, "no AWS region: set region, AWS_REGION or AWS_DEFAULT_REGION");
	sc.region = "us-east-1";
	sc.secret_access_key = NULL;
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_str_eq(err, "no AWS secret key: set secret_access_key or AWS_SECRET_ACCESS_KEY");
	sc.secret_access_key = "local";
	sc.stream_name = NULL;
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_str_eq(
	    err, "middleware: config.source, or config.stream with a stream_name, is required");
	cr_assert_eq(count_lines("warning"), 0);
	close(sock);
}

Test(middleware, new_succeeds_bypassed_when_the_stream_cannot_be_reached)
{
	scache_cache_config cc = {0};
	cr_assert_eq(scache_cache_new(&cc, &cache), SCACHE_OK);
	scache_stream_config sc;
	char endpoint[64], err[256] = "";
	int sock;
	real_stream_config(&sc, endpoint, sizeof endpoint, &sock);
	scache_middleware_config mc = {.cache = cache,
	                               .stream = &sc,
	                               .handler = app_handler,
	                               .log = capture_line,
	                               .log_arg = &logs,
	                               .max_polls_per_second = 100};
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.bypassing, 1, "the cache is bypassed until the stream is read");
	cr_assert_eq(count_lines("warning"), 1);
	json_object *w = log_line("warning", 0), *msg;
	cr_assert(json_object_object_get_ex(w, "msg", &msg));
	const char *m = json_object_get_string(msg);
	cr_assert(strncmp(m, "the stream cannot be read yet (", 31) == 0, "%s", m);
	cr_assert(strstr(m, endpoint) != NULL, "the message names the endpoint: %s", m);
	json_object_put(w);
	/* the poller keeps trying: wait for two failed attempts */
	for (int i = 0; i < 10000; i++) {
		scache_middleware_stats_get(mw, &st);
		if (st.poll_errors >= 2)
			break;
		usleep(1000);
	}
	cr_assert_geq(st.poll_errors, 2);
	cr_assert_eq(st.bypassing, 1);
	cr_assert_eq(count_lines("warning"), 1, "one warning for the whole outage");
	/* publishing fails, but the ID is removed locally all the same */
	char key[128];
	scache_id_encode("t", 1, "1", 1, key, sizeof key);
	scache_add_opts o = {.token = scache_cache_begin_load(cache)};
	cr_assert_eq(scache_cache_add(cache, key, strlen(key), "v", 1, &o), SCACHE_OK);
	const char *src = "t", *id = "1";
	scache_err perr = scache_middleware_invalidate(mw, &src, &id, 1);
	cr_assert_eq(perr, SCACHE_EPUBLISH, "never success for an unpublished invalidation: %s",
	             scache_strerror(perr));
	scache_value v;
	cr_assert_eq(scache_cache_get(cache, key, strlen(key), &v), SCACHE_ENOTFOUND);
	close(sock);
}

Test(middleware, a_gap_flushes_the_cache)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	cache_put("1", "a");
	cache_put("2", "b");
	standin_set(stream, &stream->gap, 1);
	response r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "MISS");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.cache.entries, 0);
	cr_assert_eq(st.gaps, 1);
	json_object *w = log_line("warning", 0);
	cr_assert_not_null(w);
	json_object *msg;
	cr_assert(json_object_object_get_ex(w, "msg", &msg));
	cr_assert_str_eq(json_object_get_string(msg),
	                 "invalidations may have been missed (stand-in gap \"quoted\"): cache "
	                 "flushed");
	json_object_put(w);
}

Test(middleware, log_lines_escape_what_the_client_sent)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	/* a path that tries to close the string and add a field, plus a bad UTF-8 byte */
	response r = http("GET", "/x\",\"status\":999,\"a\":\"\\%ff%01\xff", NULL);
	cr_assert_eq(r.status, 404);
	json_object *o = wait_request_line(0);
	const char *fields[] = {"type",   "time",       "method",    "path",
	                        "status", "request_ms", "stream_ms", "saved_ms",
	                        "hits",   "misses",     "evicted",   "bypass"};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		cr_assert(json_object_object_get_ex(o, fields[i], NULL), "%s", fields[i]);
	cr_assert_eq(json_object_object_length(o), 12, "no forged field");
	cr_assert_eq(field_int(o, "status"), 404);
	json_object *path;
	json_object_object_get_ex(o, "path", &path);
	cr_assert_str_eq(json_object_get_string(path),
	                 "/x\",\"status\":999,\"a\":\"\\\xef\xbf\xbd\x01\xef\xbf\xbd");
	json_object_put(o);
}

Test(middleware, summary_says_when_the_cache_costs_more_than_it_saves)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	mw_test_set_period(mw, 4, 1, 3, 8000000, 2000000);
	efficiency_summary(mw, 0);
	json_object *o = log_line("summary", 0);
	cr_assert_not_null(o);
	cr_assert_eq(field_int(o, "requests"), 4);
	json_object *f;
	cr_assert(json_object_object_get_ex(o, "hit_ratio", &f));
	cr_assert_float_eq(json_object_get_double(f), 0.25, 1e-9);
	cr_assert(json_object_object_get_ex(o, "saved_per_stream", &f));
	cr_assert_float_eq(json_object_get_double(f), 0.25, 1e-9);
	cr_assert(json_object_object_get_ex(o, "warning", &f));
	const char *need[] = {"time",         "period_s",  "bypass_requests", "stream_ms",
	                      "saved_ms",     "polls",     "source_calls",    "source_errors",
	                      "staleness_ms", "bypassing", "entries"};
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
		cr_assert(json_object_object_get_ex(o, need[i], NULL), "%s", need[i]);
	json_object_put(o);

	mw_test_set_period(mw, 1, 0, 0, 1000000, 9000000);
	efficiency_summary(mw, 0);
	o = log_line("summary", 1);
	cr_assert_not_null(o);
	cr_assert_not(json_object_object_get_ex(o, "warning", NULL), "no warning when it pays");
	json_object_put(o);
}

Test(middleware, invalidate_publishes_then_removes_and_reports_publish_failure)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	scache_request fake = {.mw = mw, .token = scache_cache_begin_load(cache)};
	cache_put("1", "a");
	cache_put("2", "b");
	cr_assert_eq(scache_invalidate(&fake, "t", "1"), SCACHE_OK);
	scache_value v;
	cr_assert_eq(scache_get(&fake, "t", "1", &v), SCACHE_ENOTFOUND);
	cr_assert_eq(stream->published, 1);
	standin_set(stream, &stream->publish_fail, 1);
	const char *sources[] = {"t", "t"}, *ids[] = {"2", "3"};
	cr_assert_eq(scache_invalidate_many(&fake, sources, ids, 2), SCACHE_EPUBLISH);
	cr_assert_eq(scache_get(&fake, "t", "2", &v), SCACHE_ENOTFOUND,
	             "removed locally even though the publish failed");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.published_keys, 1);
	cr_assert_eq(st.publish_errors, 1);
}

/* get_or_load: a loader that blocks until released, counting its runs. */
typedef struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int open;
	unsigned runs;
	unsigned entered;
} gate;

static scache_err gated_loader(void *arg, void **value, size_t *len)
{
	gate *g = arg;
	pthread_mutex_lock(&g->mu);
	g->runs++;
	g->entered++;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	*value = strdup("loaded");
	*len = 6;
	return SCACHE_OK;
}

typedef struct loader_call {
	gate *g;
	scache_request req;
	scache_err err;
	scache_outcome outcome;
	char value[16];
} loader_call;

static void *call_get_or_load(void *arg)
{
	loader_call *lc = arg;
	void *v;
	size_t n;
	lc->err =
	    scache_get_or_load(&lc->req, "t", "hot", gated_loader, lc->g, &v, &n, &lc->outcome);
	if (lc->err == SCACHE_OK) {
		snprintf(lc->value, sizeof lc->value, "%.*s", (int)n, (char *)v);
		free(v);
	}
	return NULL;
}

/* The gated loads below hold their waiters until the test opens the gate: waiters wait
 * for the shared load as long as it takes (the give-up after load_wait_ms has its own
 * test), so a waiter that a busy machine starts late still joins the flight. */
#define GATED_LOAD_WAIT_MS 600000

Test(middleware, get_or_load_runs_one_loader_per_id_and_waiters_share_it)
{
	scache_middleware_config mc = {.load_wait_ms = GATED_LOAD_WAIT_MS};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	enum { N = 8 };
	loader_call calls[N];
	pthread_t t[N];
	/* all requests started before the load: their tokens are older than the leader's */
	for (int i = 0; i < N; i++) {
		calls[i] = (loader_call){.g = &g};
		calls[i].req = (scache_request){.mw = mw, .token = scache_cache_begin_load(cache)};
	}
	pthread_create(&t[0], NULL, call_get_or_load, &calls[0]);
	pthread_mutex_lock(&g.mu);
	while (g.entered == 0)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	for (int i = 1; i < N; i++)
		pthread_create(&t[i], NULL, call_get_or_load, &calls[i]);
	/* wait until the others joined the flight (its reference count) */
	for (;;) {
		unsigned refs = mw_test_flight_refs(mw, "id=hot&s=t&t=data.ID");
		if (refs == N)
			break;
		usleep(1000);
	}
	pthread_mutex_lock(&g.mu);
	g.open = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(calls[i].err, SCACHE_OK);
		cr_assert_str_eq(calls[i].value, "loaded");
		cr_assert_eq(calls[i].outcome, SCACHE_OUTCOME_MISS);
	}
	cr_assert_eq(g.runs, 1, "one loader for %d concurrent misses", N);
	loader_call again = {.g = &g};
	again.req = (scache_request){.mw = mw, .token = scache_cache_begin_load(cache)};
	call_get_or_load(&again);
	cr_assert_eq(again.outcome, SCACHE_OUTCOME_HIT);
	cr_assert_eq(g.runs, 1);
}

Test(middleware, get_or_load_waiter_reloads_when_the_shared_load_is_stale_for_it)
{
	scache_middleware_config mc = {.load_wait_ms = GATED_LOAD_WAIT_MS};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	loader_call leader = {.g = &g}, late = {.g = &g};
	leader.req = (scache_request){.mw = mw, .token = scache_cache_begin_load(cache)};
	pthread_t t1, t2;
	pthread_create(&t1, NULL, call_get_or_load, &leader);
	pthread_mutex_lock(&g.mu);
	while (g.entered == 0)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	/* the ID changes while the leader loads; a later request applied that change */
	const char *k = "id=hot&s=t&t=data.ID";
	size_t kl = strlen(k);
	mw_apply_keys(mw, &k, &kl, 1);
	late.req = (scache_request){.mw = mw, .token = scache_cache_begin_load(cache)};
	pthread_create(&t2, NULL, call_get_or_load, &late);
	for (;;) {
		unsigned refs = mw_test_flight_refs(mw, k);
		if (refs == 2)
			break;
		usleep(1000);
	}
	pthread_mutex_lock(&g.mu);
	g.open = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	cr_assert_eq(leader.err, SCACHE_OK);
	cr_assert_eq(late.err, SCACHE_OK);
	cr_assert_eq(g.runs, 2, "the late request did not take the stale result");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.cache.refused_adds, 1, "the leader's stale add was refused");
	cr_assert_eq(st.cache.entries, 1, "the late request's fresh load was cached");
}

Test(middleware, metrics_are_prometheus_text)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	cache_put("1", "a");
	http("GET", "/get/1", NULL);
	json_object_put(wait_request_line(0));
	/* a request is counted after its line went to the sink: wait for the count too */
	scache_middleware_stats st = {0};
	for (int i = 0; i < 10000 && st.requests < 1; i++) {
		scache_middleware_stats_get(mw, &st);
		if (st.requests < 1)
			usleep(1000);
	}
	char *text;
	size_t len;
	cr_assert_eq(scache_middleware_metrics(mw, &text, &len), SCACHE_OK);
	cr_assert_eq(strlen(text), len);
	cr_assert_not_null(strstr(text, "\nscache_hits_total 1\n"));
	cr_assert_not_null(strstr(text, "\nscache_requests_total 1\n"));
	cr_assert_not_null(strstr(text, "# TYPE scache_entries gauge\n"));
	/* every sample line: name, space, number */
	char *save, *line = strtok_r(text, "\n", &save);
	size_t samples = 0;
	for (; line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		char name[64];
		double v;
		cr_assert_eq(sscanf(line, "%63[a-z_] %lf", name, &v), 2, "%s", line);
		samples++;
	}
	cr_assert_eq(samples, 25);
	free(text);
}

Test(middleware, throttling_backs_the_poll_rate_off_until_a_clean_poll)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	cache_put("1", "a"); /* requests wait for polls */
	standin_set(stream, &stream->throttle, 1);
	response r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "HIT", "a throttled poll that succeeded still counts");
	cr_assert(mw_test_backoff_ns(mw) >= 1000000, "the next poll waits longer (1 ms at 1000/s)");
	standin_set(stream, &stream->throttle, 0);
	http("GET", "/get/1", NULL);
	cr_assert_eq(mw_test_backoff_ns(mw), 0, "a clean poll restores the budget rate");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert(st.throttled_polls >= 1);
}

/* A key another writer spelled differently: the pairs in another order, %20 for a space,
 * lower-case hex. Every one names the same data ID (wire-formats.md, section 1). */
static void standin_queue_raw(standin *s, const char *key)
{
	pthread_mutex_lock(&s->mu);
	s->pending[s->npending++] = strdup(key);
	pthread_mutex_unlock(&s->mu);
}

Test(middleware, an_invalidation_spelled_differently_still_removes_the_id)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	cache_put("1", "old");
	cache_put("a b", "old");
	cache_put("c~d*", "old");
	standin_queue_raw(stream, "s=t&id=1&t=data.ID");
	standin_queue_raw(stream, "t=data.ID&id=a%20b&s=t");
	standin_queue_raw(stream, "id=c%7ed%2a&s=t&t=data.ID");
	response r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "MISS", "the ID was invalidated, whatever the pair order");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.cache.entries, 0, "every spelling removed its ID");
	cr_assert_eq(st.keys_applied, 3);
}

static void *release_hold_later(void *arg)
{
	usleep(300000);
	standin_set(arg, &((standin *)arg)->hold, 0);
	return NULL;
}

Test(middleware, a_huge_staleness_bound_still_makes_strict_requests_wait)
{
	/* "never bypass": the bound times NS_PER_MS must not wrap into a past deadline */
	scache_middleware_config mc = {.max_staleness_ms = UINT64_MAX};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	cache_put("1", "old");
	standin_queue(stream, "t", "1");
	standin_set(stream, &stream->hold, 1);
	helper_start(release_hold_later, stream);
	response r = http("GET", "/get/1", NULL);
	helper_join();
	cr_assert_str_eq(r.xcache, "MISS", "the request waited for its poll (got %s)", r.xcache);
}

Test(middleware, bounded_staleness_never_uses_a_poll_older_than_the_staleness_bound)
{
	/* an interval longer than the bound: the bound wins */
	scache_middleware_config mc = {.poll_interval_ms = 3600000, .max_staleness_ms = 1000};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	while (standin_drains(stream) == 0) /* the first background poll */
		usleep(1000);
	cache_put("1", "old");
	standin_queue(stream, "t", "1");
	usleep(1300000); /* the last poll is now older than max_staleness_ms */
	response r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "MISS", "a poll %s ago was used (got %s)", "1.3 s", r.xcache);
}

static void *gated_get_in_thread(void *arg)
{
	response *r = arg;
	*r = http("GET", "/gated/get/1", NULL);
	return NULL;
}

Test(middleware, a_request_that_skipped_the_drain_on_an_empty_cache_never_hits_an_unchecked_entry)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	/* another request began loading ID 1 (old data) ... */
	uint64_t old_load = scache_cache_begin_load(cache);
	/* ... then ID 1 changed and its invalidation was published; no poll has applied it */
	standin_set(stream, &stream->hold, 1);
	standin_queue(stream, "t", "1");
	/* R arrives: the cache is empty, so it goes on without waiting */
	static response r;
	helper_start(gated_get_in_thread, &r);
	pthread_mutex_lock(&handler_gate.mu);
	while (!handler_gate.entered)
		pthread_cond_wait(&handler_gate.cv, &handler_gate.mu);
	pthread_mutex_unlock(&handler_gate.mu);
	/* the other request adds its old data now: the invalidation is not applied yet */
	char key[64];
	scache_id_encode("t", 1, "1", 1, key, sizeof key);
	scache_add_opts o = {.token = old_load, .saved_ns = 1};
	cr_assert_eq(scache_cache_add(cache, key, strlen(key), "old", 3, &o), SCACHE_OK);
	pthread_mutex_lock(&handler_gate.mu);
	handler_gate.open = 1;
	pthread_cond_broadcast(&handler_gate.cv);
	pthread_mutex_unlock(&handler_gate.mu);
	helper_join();
	cr_assert_str_eq(r.xcache, "MISS",
	                 "R arrived after the change was announced: it must not see %s", r.body);
	standin_set(stream, &stream->hold, 0);
}

/* Issue 13, item 1 (../shared/repro/strict-failed-poll.sh): in strict mode a request
 * whose poll failed cannot show it saw every invalidation published before it arrived,
 * so it must not read the cache, even well within max_staleness_ms. */
static void check_strict_failed_poll(unsigned flags, unsigned pool, int suspend)
{
	scache_middleware_config mc = {.suspend = suspend, .max_staleness_ms = 3600000};
	start(flags, pool, mc);
	while (standin_drains(stream) == 0) /* a first poll succeeded */
		usleep(1000);
	cache_put("1", "old");
	response r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "HIT", "a poll succeeded: the cache is used");
	/* another instance changed ID 1 and announced it; this instance's poll then fails */
	standin_set(stream, &stream->fail, 1);
	r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "BYPASS", "the poll failed: served %s as %s", r.body, r.xcache);
	r = http("PUT", "/put/2", NULL);
	cr_assert_str_eq(r.body, scache_strerror(SCACHE_EBYPASS),
	                 "a request that read around the cache does not add to it");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.bypassing, 0, "one failed poll is not an outage of the staleness bound");
	standin_set(stream, &stream->fail, 0);
	standin_queue(stream, "t", "1");
	r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "MISS", "the next good poll applies the invalidation");
}

Test(middleware, strict_read_after_a_failed_poll_bypasses_the_cache)
{
	check_strict_failed_poll(MHD_USE_INTERNAL_POLLING_THREAD, 0, 0);
}

Test(middleware, strict_read_after_a_failed_poll_bypasses_the_cache_when_parked)
{
	check_strict_failed_poll(MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME, 2, 1);
}

Test(middleware, bounded_read_after_a_failed_poll_uses_the_cache_within_the_bound)
{
	scache_middleware_config mc = {.poll_interval_ms = 50, .max_staleness_ms = 3600000};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	while (standin_drains(stream) == 0)
		usleep(1000);
	cache_put("1", "old");
	standin_set(stream, &stream->fail, 1);
	usleep(100000); /* the last good poll is now older than the interval */
	response r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "HIT",
	                 "bounded staleness: the bound, not the interval, decides");
}

static scache_err quick_loader(void *arg, void **value, size_t *len)
{
	(void)arg;
	*value = strdup("alone");
	*len = 5;
	return SCACHE_OK;
}

Test(middleware, get_or_load_stops_waiting_for_a_hung_loader_and_loads_itself)
{
	scache_middleware_config mc = {.load_wait_ms = 50};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	loader_call leader = {.g = &g};
	leader.req = (scache_request){.mw = mw, .token = scache_cache_begin_load(cache)};
	pthread_t t;
	pthread_create(&t, NULL, call_get_or_load, &leader);
	pthread_mutex_lock(&g.mu);
	while (g.entered == 0)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	/* the leader's loader hangs; a second request for the same ID */
	scache_request waiter = {.mw = mw, .token = scache_cache_begin_load(cache)};
	void *v = NULL;
	size_t n = 0;
	scache_outcome oc;
	cr_assert_eq(scache_get_or_load(&waiter, "t", "hot", quick_loader, NULL, &v, &n, &oc),
	             SCACHE_OK);
	cr_assert_eq(n, 5);
	cr_assert_eq(memcmp(v, "alone", 5), 0, "it ran its own loader");
	cr_assert_eq(oc, SCACHE_OUTCOME_MISS);
	free(v);
	cr_assert_eq(mw_test_flight_refs(mw, "id=hot&s=t&t=data.ID"), 1,
	             "the waiter let go of the leader's flight");
	pthread_mutex_lock(&g.mu);
	g.open = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	pthread_join(t, NULL);
	cr_assert_eq(leader.err, SCACHE_OK);
	cr_assert_str_eq(leader.value, "loaded");
	cr_assert_eq(g.runs, 1);
}

/* A sink that reads the middleware's stats and metrics from inside the sink call. */
static void stats_reading_sink(void *arg, const char *line, size_t len)
{
	capture_line(arg, line, len);
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	char *text = NULL;
	size_t n = 0;
	cr_assert_eq(scache_middleware_metrics(mw, &text, &n), SCACHE_OK);
	free(text);
}

Test(middleware, the_log_sink_may_read_stats_and_metrics)
{
	scache_cache_config cc = {0};
	cr_assert_eq(scache_cache_new(&cc, &cache), SCACHE_OK);
	stream = standin_new();
	stream->fail = 1; /* the poller logs a bypass warning through the sink */
	scache_middleware_config mc = {.cache = cache,
	                               .handler = app_handler,
	                               .handler_cls = &app_mu,
	                               .log = stats_reading_sink,
	                               .log_arg = &logs,
	                               .max_staleness_ms = 50,
	                               .max_polls_per_second = 100};
	mc.source = standin_source(stream);
	cr_assert_eq(scache_middleware_new(&mc, &mw, NULL, 0), SCACHE_OK);
	cr_assert_eq(wait_lines("warning", 1), 1, "the warning went through the sink");
}

/* Issue 11, item 2: without .suspend the drain is lazy. A request waits for the stream
 * only when it uses the cache; one that never does (an upload, a 404, a lookup of its own
 * context) makes no poll happen at all. */
Test(middleware, a_request_that_never_uses_the_cache_does_not_wait_for_a_poll)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	while (standin_drains(stream) == 0) /* the poller's first poll, at startup */
		usleep(1000);
	cache_put("1", "old"); /* not empty: a strict read waits for its poll */
	unsigned before = standin_drains(stream);
	response r = http("GET", "/nothing-here", NULL);
	cr_assert_eq(r.status, 404);
	r = http("POST", "/upload", "abc");
	cr_assert_str_eq(r.body, "3");
	r = http("GET", "/other-thread", NULL);
	cr_assert_str_eq(r.body, "same");
	json_object_put(wait_request_line(2));
	cr_assert_eq(standin_drains(stream), before, "no poll for requests that never read");
	pthread_mutex_lock(&stream->mu);
	cr_assert_eq(stream->holding, 0, "none in flight either");
	pthread_mutex_unlock(&stream->mu);
	standin_queue(stream, "t", "1");
	r = http("GET", "/get/1", NULL);
	cr_assert_str_eq(r.xcache, "MISS", "a read waits for its poll, which saw the key");
	cr_assert_eq(standin_drains(stream), before + 1);
}

Test(middleware, with_suspend_only_requests_that_use_the_cache_are_parked_for_a_poll)
{
	scache_middleware_config mc = {.suspend = 1};
	start(MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME, 2, mc);
	while (standin_drains(stream) == 0) /* the poller's first poll, at startup */
		usleep(1000);
	cache_put("1", "old"); /* not empty: a strict read waits for its poll */
	unsigned before = standin_drains(stream);
	response r = http("POST", "/upload", "abc"); /* not GET or HEAD: not parked */
	cr_assert_str_eq(r.body, "3");
	r = http("PUT", "/put/2", NULL); /* its add drains lazily, holding its thread */
	cr_assert_str_eq(r.body, scache_strerror(SCACHE_OK));
	cr_assert_eq(standin_drains(stream), before + 1, "the POST made no poll, the add one");
	standin_queue(stream, "t", "1");
	r = http("GET", "/get/1", NULL); /* parked, then resumed by a poll that saw the key */
	cr_assert_str_eq(r.xcache, "MISS");
	cr_assert_eq(standin_drains(stream), before + 2);
}

static int nothing_uses_the_cache(void *cls, const char *method, const char *url)
{
	(void)cls, (void)method, (void)url;
	return 0;
}

Test(middleware, with_suspend_a_read_not_declared_to_use_the_cache_still_waits_for_its_poll)
{
	scache_middleware_config mc = {.suspend = 1, .uses_cache = nothing_uses_the_cache};
	start(MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME, 2, mc);
	while (standin_drains(stream) == 0)
		usleep(1000);
	cache_put("1", "old");
	standin_queue(stream, "t", "1");
	response r = http("GET", "/get/1", NULL); /* lazy: waits at its lookup instead */
	cr_assert_str_eq(r.xcache, "MISS", "the strict guarantee holds for a lazy drain too");
	cr_assert_eq(mw_test_parked(mw), 0);
}

/* Wait (up to 5 s) until the gated handler was entered; 1 if it was. */
static int gate_entered(void)
{
	int entered = 0;
	for (int i = 0; i < 5000 && !entered; i++) {
		pthread_mutex_lock(&handler_gate.mu);
		entered = handler_gate.entered;
		pthread_mutex_unlock(&handler_gate.mu);
		if (!entered)
			usleep(1000);
	}
	return entered;
}

/* Issue 11, item 2: the lazy read's poll is the first that BEGAN after the request
 * arrived, whenever the lookup comes: a poll begun before the arrival and completed after
 * it (while the handler ran) does not do, even though it completed before the lookup. */
Test(middleware, a_lazy_strict_read_sees_an_invalidation_published_before_the_request_arrived)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	while (standin_drains(stream) == 0)
		usleep(1000);
	unsigned before = standin_drains(stream);
	standin_set(stream, &stream->snapshot, 1);
	standin_set(stream, &stream->hold, 1);
	/* P1: a read on the empty cache asks for a poll without waiting; P1 begins, held */
	response r = http("GET", "/get/2", NULL);
	cr_assert_str_eq(r.xcache, "MISS");
	pthread_mutex_lock(&stream->mu);
	while (stream->holding == 0)
		pthread_cond_wait(&stream->cv, &stream->mu);
	pthread_mutex_unlock(&stream->mu);
	/* after P1 began: ID 1 is cached, then changed and announced; then R arrives */
	cache_put("1", "old");
	standin_queue(stream, "t", "1");
	static response rr;
	helper_start(gated_get_in_thread, &rr);
	cr_assert(gate_entered(), "R's handler runs before any poll: it has not read yet");
	/* P1 completes (it began before the announcement: it delivers nothing) */
	standin_set(stream, &stream->hold, 0);
	while (standin_drains(stream) < before + 1)
		usleep(1000);
	/* R reads now: P1 completed after R arrived, but began before */
	pthread_mutex_lock(&handler_gate.mu);
	handler_gate.open = 1;
	pthread_cond_broadcast(&handler_gate.cv);
	pthread_mutex_unlock(&handler_gate.mu);
	helper_join();
	cr_assert_str_eq(rr.xcache, "MISS", "R must not see %s: announced before it arrived",
	                 rr.body);
	cr_assert_eq(standin_drains(stream), before + 2, "R waited for a poll of its own");
}

/* A poll that began after the request arrived serves its lazy read, though it began
 * before the lookup: no second wait. */
Test(middleware, a_lazy_read_uses_a_poll_begun_after_the_arrival_without_waiting_again)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 2, mc); /* R holds one thread in its handler */
	while (standin_drains(stream) == 0)
		usleep(1000);
	cache_put("1", "old");
	cache_put("2", "two");
	standin_queue(stream, "t", "1");
	static response rr;
	helper_start(gated_get_in_thread, &rr);
	cr_assert(gate_entered());
	response r = http("GET", "/get/2", NULL); /* its poll begins after R arrived */
	cr_assert_str_eq(r.xcache, "HIT");
	unsigned polls = standin_drains(stream);
	pthread_mutex_lock(&handler_gate.mu);
	handler_gate.open = 1;
	pthread_cond_broadcast(&handler_gate.cv);
	pthread_mutex_unlock(&handler_gate.mu);
	helper_join();
	cr_assert_str_eq(rr.xcache, "MISS", "that poll applied the invalidation");
	cr_assert_eq(standin_drains(stream), polls, "and R used it without a poll of its own");
}

/* Issue 11, item 4: the invalidate calls return the publish's reason. */
Test(middleware, a_failed_publish_returns_its_reason)
{
	scache_middleware_config mc = {0};
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc);
	standin_set(stream, &stream->publish_fail, 1);
	scache_request fake = {.mw = mw, .token = scache_cache_begin_load(cache)};
	char why[128] = "untouched";
	cr_assert_eq(scache_invalidate_why(&fake, "t", "1", why, sizeof why), SCACHE_EPUBLISH);
	cr_assert_str_eq(why, "ServiceUnavailable: stand-in publish failure");
	const char *sources[] = {"t", "t"}, *ids[] = {"1", "2"};
	strcpy(why, "untouched");
	cr_assert_eq(scache_middleware_invalidate_why(mw, sources, ids, 2, why, sizeof why),
	             SCACHE_EPUBLISH);
	cr_assert_str_eq(why, "ServiceUnavailable: stand-in publish failure");
	cr_assert_eq(wait_lines("warning", 2), 2);
	json_object *w = log_line("warning", 0), *msg;
	cr_assert(json_object_object_get_ex(w, "msg", &msg));
	cr_assert_not_null(
	    strstr(json_object_get_string(msg), "(ServiceUnavailable: stand-in publish failure)"),
	    "the warning carries it too: %s", json_object_get_string(msg));
	json_object_put(w);
	standin_set(stream, &stream->publish_fail, 0);
	cr_assert_eq(scache_invalidate_why(&fake, "t", "1", why, sizeof why), SCACHE_OK);
	cr_assert_str_eq(why, "", "no reason on success");
	cr_assert_eq(scache_invalidate_why(NULL, "t", "1", why, sizeof why), SCACHE_ENOREQUEST);
	cr_assert_eq(scache_invalidate_why(&fake, "t", "1", NULL, 0), SCACHE_OK, "errbuf NULL");
}

/* Issue 11, item 3: wait_ready, on a source unreachable at startup. */
Test(middleware, wait_ready_times_out_with_the_reason_then_succeeds_once_connected)
{
	scache_middleware_config mc = {0};
	next_unreachable = 1;
	start(MHD_USE_INTERNAL_POLLING_THREAD, 0, mc); /* the attempt is held */
	char why[256];
	cr_assert_eq(scache_middleware_wait_ready(mw, 50, why, sizeof why), SCACHE_ETIMEOUT);
	cr_assert_str_eq(why, "the stream is not ready: " UNREACHABLE_WHY);
	standin_set(stream, &stream->hold, 0); /* one failed attempt, then it connects */
	cr_assert_eq(scache_middleware_wait_ready(mw, 60000, why, sizeof why), SCACHE_OK, "%s",
	             why);
	cr_assert_str_eq(why, "");
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	cr_assert_eq(st.bypassing, 0);
	cr_assert_eq(st.poll_errors, 1);
	cr_assert_eq(scache_middleware_wait_ready(NULL, 0, NULL, 0), SCACHE_EINVAL);
}
