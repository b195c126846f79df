/* Wiring the middleware into libmicrohttpd (issue 11, items 1, 5, 8, 11): the one-call
 * start (scache_mhd_start) and what it refuses or warns about, a daemon wired by hand
 * without the completion callback or without MHD_ALLOW_SUSPEND_RESUME, the log file and
 * its reopening, sampled request lines, and the real status of every handler's response.
 * Only public headers: a real daemon on 127.0.0.1, real HTTP through libcurl, the
 * in-memory source. Outcomes are exact; nothing asserts a duration (a bounded wait for a
 * completion line that libmicrohttpd writes after the client has its answer is a wait,
 * not an assertion). Also in suite "threads" (ThreadSanitizer). */
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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- What the middleware logged ------------------------------------------------- */

#define MAX_LINES 64
static pthread_mutex_t lines_mu = PTHREAD_MUTEX_INITIALIZER;
static char lines[MAX_LINES][640];
static unsigned nlines;

static void capture(void *arg, const char *line, size_t len)
{
	(void)arg;
	pthread_mutex_lock(&lines_mu);
	if (nlines < MAX_LINES)
		snprintf(lines[nlines++], sizeof lines[0], "%.*s", (int)len, line);
	pthread_mutex_unlock(&lines_mu);
}

/* Lines containing every one of the (up to two) strings. */
static unsigned count_lines(const char *a, const char *b)
{
	unsigned n = 0;
	pthread_mutex_lock(&lines_mu);
	for (unsigned i = 0; i < nlines; i++)
		if (strstr(lines[i], a) && (!b || strstr(lines[i], b)))
			n++;
	pthread_mutex_unlock(&lines_mu);
	return n;
}

/* ---- The application ------------------------------------------------------------ */

static unsigned app_completions;

static void app_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                          enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)c, (void)req_cls, (void)toe;
	__atomic_fetch_add(&app_completions, 1, __ATOMIC_SEQ_CST);
}

/* GET /get/ID: the cached value or "none"; GET /put/ID: caches "v"; GET /teapot: 418;
 * anything else: 200 "ok". Every answer through plain MHD_queue_response. */
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
	unsigned status = MHD_HTTP_OK;
	scache_request *req = scache_request_current();
	if (!strncmp(url, "/get/", 5)) {
		scache_value v;
		if (scache_get(req, "t", url + 5, &v) == SCACHE_OK) {
			snprintf(body, sizeof body, "%.*s", (int)v.len, (const char *)v.data);
			scache_value_release(&v);
		} else {
			snprintf(body, sizeof body, "none");
		}
	} else if (!strncmp(url, "/put/", 5)) {
		snprintf(body, sizeof body, "%s",
		         scache_strerror(scache_add(req, "t", url + 5, "v", 1, 1)));
	} else if (!strcmp(url, "/teapot")) {
		status = 418;
		snprintf(body, sizeof body, "short and stout");
	}
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- Fixture: stopped by .fini also when an assertion fails ---------------------- */

static scache_cache *cache;
static scache_middleware *mw;
static struct MHD_Daemon *daemon_;
static unsigned short port;
static CURL *curl; /* one handle: its connection is kept alive between requests */
static struct sockaddr_in loopback = {.sin_family = AF_INET};
static char dir[64];

static scache_middleware_config config(void)
{
	scache_middleware_config mc = {
	    .handler = handler, .log = capture, .max_polls_per_second = 1000};
	return mc;
}

static void make_middleware(scache_middleware_config mc)
{
	cr_assert_eq(scache_cache_new(NULL, &cache), SCACHE_OK);
	mc.cache = cache;
	cr_assert_eq(scache_memory_source_new(&mc.source), SCACHE_OK);
	char err[256];
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
	loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void started(struct MHD_Daemon *d)
{
	daemon_ = d;
	cr_assert_not_null(daemon_);
	port = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void stop_all(void)
{
	if (curl)
		curl_easy_cleanup(curl);
	curl = NULL;
	if (mw)
		scache_middleware_shutdown(mw);
	if (daemon_)
		MHD_stop_daemon(daemon_);
	daemon_ = NULL;
	scache_middleware_free(mw);
	mw = NULL;
	scache_cache_free(cache);
	cache = NULL;
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	strncat(arg, p, size * n);
	return size * n;
}

/* GET path on the kept-alive connection: the body. */
static const char *get(const char *path)
{
	static char body[128];
	body[0] = 0;
	char url[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
	if (!curl)
		curl = curl_easy_init();
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
	cr_assert_eq(curl_easy_perform(curl), CURLE_OK, "GET %s", path);
	return body;
}

/* libmicrohttpd calls the completion callback after the client has its answer: wait
 * (boundedly) until n requests completed. */
static void wait_completed(uint64_t n)
{
	scache_middleware_stats st;
	for (int i = 0; i < 10000; i++) {
		scache_middleware_stats_get(mw, &st);
		if (st.requests >= n)
			break;
		usleep(1000);
	}
	cr_assert_eq(st.requests, n, "requests completed");
}

/* ---- The one-call start ----------------------------------------------------------- */

Test(wiring, the_one_call_start_serves_a_request_and_writes_its_completion_line, .fini = stop_all)
{
	scache_middleware_config mc = config();
	mc.completed = app_completed;
	make_middleware(mc);
	started(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END));
	cr_assert_str_eq(get("/put/1"), "success");
	cr_assert_str_eq(get("/get/1"), "v", "the cache works through the one-call daemon");
	wait_completed(2);
	cr_assert_eq(count_lines("\"type\":\"request\"", "\"path\":\"/put/1\""), 1);
	cr_assert_eq(count_lines("\"type\":\"request\"", "\"path\":\"/get/1\""), 1);
	cr_assert_eq(count_lines("\"type\":\"warning\"", NULL), 0, "nothing to warn about");
	cr_assert_eq(__atomic_load_n(&app_completions, __ATOMIC_SEQ_CST), 2,
	             "config.completed is chained");
}

Test(wiring, suspend_gets_MHD_ALLOW_SUSPEND_RESUME_added, .fini = stop_all)
{
	scache_middleware_config mc = config();
	mc.suspend = 1;
	make_middleware(mc);
	started(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_END));
	unsigned flags = (unsigned)MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_FLAGS)->flags;
	cr_assert_eq(flags & MHD_ALLOW_SUSPEND_RESUME, MHD_ALLOW_SUSPEND_RESUME);
	/* a request that must wait for its poll (the cache holds something) is parked */
	cr_assert_str_eq(get("/put/1"), "success");
	cr_assert_str_eq(get("/get/1"), "v");
	wait_completed(2);
	cr_assert_eq(count_lines("\"type\":\"warning\"", NULL), 0,
	             "one thread with .suspend does not serialise waits");
}

Test(wiring, the_serialising_configuration_is_warned_at_start, .fini = stop_all)
{
	make_middleware(config()); /* strict, no .suspend */
	started(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_END));
	cr_assert_eq(count_lines("\"type\":\"warning\"", NULL), 1);
	cr_assert_eq(count_lines("one thread serves every connection (an internal polling "
	                         "thread) in strict mode without .suspend",
	                         "about 1000 requests a second"),
	             1, "%s", lines[0]);
	MHD_stop_daemon(daemon_);
	daemon_ = NULL;
	/* a pool of threads: no warning */
	started(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END));
	cr_assert_eq(count_lines("\"type\":\"warning\"", NULL), 1);
	MHD_stop_daemon(daemon_);
	daemon_ = NULL;
	/* a thread per connection: no warning */
	started(scache_mhd_start(mw,
	                         MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
	                         MHD_OPTION_SOCK_ADDR, &loopback, MHD_OPTION_END));
	cr_assert_eq(count_lines("\"type\":\"warning\"", NULL), 1);
	cr_assert_str_eq(get("/get/1"), "none", "and it serves");
}

Test(wiring, bounded_staleness_on_one_thread_is_not_warned, .fini = stop_all)
{
	scache_middleware_config mc = config();
	mc.poll_interval_ms = 100;
	make_middleware(mc);
	started(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_END));
	cr_assert_eq(count_lines("\"type\":\"warning\"", NULL), 0);
}

/* d is NULL, and the newest line is the warning saying why. */
static void refused(struct MHD_Daemon *d, const char *why)
{
	static unsigned before;
	cr_assert_null(d);
	pthread_mutex_lock(&lines_mu);
	int fresh = nlines > before;
	before = nlines;
	const char *last = nlines ? lines[nlines - 1] : "no line";
	int ok = strstr(last, "\"type\":\"warning\"") &&
	         strstr(last, "scache_mhd_start: no daemon started: ") && strstr(last, why);
	pthread_mutex_unlock(&lines_mu);
	cr_assert(fresh && ok, "%s: %s", why, last);
}

Test(wiring, contradictory_input_is_refused_with_a_warning_naming_it, .fini = stop_all)
{
	make_middleware(config());
	cr_assert_null(scache_mhd_start(NULL, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_END));
	refused(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_NOTIFY_COMPLETED, app_completed, NULL,
	                         MHD_OPTION_END),
	        "MHD_OPTION_NOTIFY_COMPLETED among the options");
	struct MHD_OptionItem nested[] = {
	    {MHD_OPTION_CONNECTION_LIMIT, 10, NULL},
	    {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)app_completed, NULL},
	    {MHD_OPTION_END, 0, NULL}};
	refused(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_ARRAY, nested,
	                         MHD_OPTION_END),
	        "put yours in config.completed");
	refused(scache_mhd_start(mw, 0, 0, MHD_OPTION_THREAD_POOL_SIZE, 4u, MHD_OPTION_END),
	        "MHD_OPTION_THREAD_POOL_SIZE needs MHD_USE_INTERNAL_POLLING_THREAD");
	refused(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, 4242, 1u, MHD_OPTION_END),
	        "option 4242 is not one libmicrohttpd 0.9.75 defines");
	refused(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 70000, MHD_OPTION_END),
	        "port 70000 is above 65535");
	/* the port taken: MHD_start_daemon itself fails, and says so */
	started(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END));
	struct sockaddr_in taken = loopback;
	taken.sin_port = htons(port);
	refused(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, port, MHD_OPTION_SOCK_ADDR,
	                         &taken, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END),
	        "MHD_start_daemon failed");
}

/* ---- A daemon wired by hand ------------------------------------------------------- */

Test(wiring, a_missing_completion_callback_is_warned_once_and_leaks_nothing, .fini = stop_all)
{
	scache_middleware_config mc = config();
	mc.completed = app_completed;
	make_middleware(mc);
	started(MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
	                         scache_access_handler, mw, MHD_OPTION_SOCK_ADDR, &loopback,
	                         MHD_OPTION_END));
	cr_assert_str_eq(get("/ok"), "ok");
	cr_assert_eq(count_lines("\"type\":\"warning\"", NULL), 0, "nothing to see yet");
	cr_assert_str_eq(get("/ok"), "ok"); /* the same kept-alive connection */
	cr_assert_eq(count_lines("\"type\":\"warning\"",
	                         "a request began on a connection whose previous request never "
	                         "completed: the daemon has no completion callback"),
	             1);
	cr_assert_str_eq(get("/teapot"), "short and stout");
	cr_assert_eq(count_lines("\"type\":\"warning\"", NULL), 1, "warned once");
	cr_assert_eq(count_lines("\"type\":\"request\"", NULL), 0, "no completion, no line");
	cr_assert_eq(__atomic_load_n(&app_completions, __ATOMIC_SEQ_CST), 2,
	             "the application's completion is chained for each abandoned request");
	/* the last request's state is freed by scache_middleware_free (.fini); ASan's leak
	 * check at exit sees nothing left */
}

Test(wiring, suspend_on_a_daemon_without_suspend_resume_blocks_instead_of_aborting,
     .fini = stop_all)
{
	scache_middleware_config mc = config();
	mc.suspend = 1;
	make_middleware(mc);
	started(MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
	                         scache_access_handler, mw, MHD_OPTION_NOTIFY_COMPLETED,
	                         scache_request_completed, mw, MHD_OPTION_SOCK_ADDR, &loopback,
	                         MHD_OPTION_END));
	cr_assert_str_eq(get("/put/1"), "success");
	cr_assert_str_eq(get("/get/1"), "v", "waited for its poll, holding the thread");
	cr_assert_str_eq(get("/get/1"), "v");
	cr_assert_eq(count_lines("\"type\":\"warning\"",
	                         "config.suspend is set but the daemon was started without "
	                         "MHD_ALLOW_SUSPEND_RESUME"),
	             1);
	cr_assert_eq(count_lines("\"type\":\"warning\"", NULL), 1, "once");
}

/* ---- Status ----------------------------------------------------------------------- */

Test(wiring, a_handler_answering_with_plain_MHD_queue_response_gets_its_real_status,
     .fini = stop_all)
{
	make_middleware(config());
	started(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END));
	cr_assert_str_eq(get("/teapot"), "short and stout");
	cr_assert_str_eq(get("/ok"), "ok");
	wait_completed(2);
	cr_assert_eq(count_lines("\"path\":\"/teapot\"", "\"status\":418,"), 1);
	cr_assert_eq(count_lines("\"path\":\"/ok\"", "\"status\":200,"), 1);
}

/* ---- Log volume and sinks ------------------------------------------------------------ */

Test(wiring, sampling_1_in_4_writes_exactly_1_of_4_request_lines, .fini = stop_all)
{
	scache_middleware_config mc = config();
	mc.request_sample = 4;
	make_middleware(mc);
	started(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END));
	for (int i = 0; i < 8; i++)
		cr_assert_str_eq(get("/ok"), "ok");
	wait_completed(8);
	cr_assert_eq(count_lines("\"type\":\"request\"", NULL), 2, "the 1st and the 5th");
	cr_assert_eq(count_lines("\"type\":\"request\"", ",\"sample\":4}"), 2);
	cr_assert_str_eq(get("/ok"), "ok");
	wait_completed(9);
	cr_assert_eq(count_lines("\"type\":\"request\"", NULL), 3, "and the 9th");
}

/* The lines of a file, each a request line's path, joined: "/a /b". */
static const char *paths_in(const char *path)
{
	static char out[256];
	out[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return "(no file)";
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		const char *p = strstr(line, "\"path\":\"");
		const char *t = strstr(line, "\"type\":\"");
		if (!p || !t || strncmp(t + 8, "request", 7)) {
			strncat(out, out[0] ? " (other)" : "(other)", sizeof out - strlen(out) - 1);
			continue;
		}
		p += 8;
		if (out[0])
			strncat(out, " ", sizeof out - strlen(out) - 1);
		strncat(out, p, strcspn(p, "\""));
	}
	fclose(f);
	return out;
}

Test(wiring, the_log_file_receives_the_lines_and_reopen_switches_to_a_new_file_after_a_rename,
     .fini = stop_all)
{
	snprintf(dir, sizeof dir, "/tmp/scache-wiring-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char log[128], rotated[128];
	snprintf(log, sizeof log, "%s/scache.log", dir);
	snprintf(rotated, sizeof rotated, "%s/scache.log.1", dir);
	scache_middleware_config mc = config();
	mc.log = NULL;
	mc.log_file = log;
	make_middleware(mc);
	started(scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD, 0, MHD_OPTION_SOCK_ADDR,
	                         &loopback, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_END));
	get("/a");
	wait_completed(1);
	cr_assert_str_eq(paths_in(log), "/a");
	cr_assert_eq(rename(log, rotated), 0);
	get("/b");
	wait_completed(2);
	cr_assert_str_eq(paths_in(rotated), "/a /b", "until reopened, lines go to the old file");
	struct stat st;
	cr_assert_neq(stat(log, &st), 0, "no new file yet");
	cr_assert_eq(scache_middleware_reopen_log(mw), SCACHE_OK);
	get("/c");
	wait_completed(3);
	cr_assert_str_eq(paths_in(log), "/c");
	cr_assert_str_eq(paths_in(rotated), "/a /b");
	/* a path that cannot be opened again (its folder moved away): lines stay in the old
	 * file, which says why */
	char moved[80], moved_log[128], want[256];
	snprintf(moved, sizeof moved, "%s-moved", dir);
	snprintf(moved_log, sizeof moved_log, "%s/scache.log", moved);
	cr_assert_eq(rename(dir, moved), 0);
	scache_err err = scache_middleware_reopen_log(mw);
	cr_assert_eq(rename(moved, dir), 0); /* back, for .fini to remove */
	cr_assert_eq(err, SCACHE_EIO);
	FILE *f = fopen(log, "r");
	cr_assert_not_null(f);
	char line[1024] = "", last[1024] = "";
	while (fgets(line, sizeof line, f))
		snprintf(last, sizeof last, "%s", line);
	fclose(f);
	snprintf(want, sizeof want,
	         "\"msg\":\"cannot reopen log_file '%s': No such file or directory (lines still go "
	         "to the old file)\"}\n",
	         log);
	cr_assert_not_null(strstr(last, want), "%s", last);
	cr_assert_eq(strncmp(last, "{\"type\":\"warning\"", strlen("{\"type\":\"warning\"")), 0,
	             "%s", last);
}

Test(wiring, a_log_file_that_cannot_be_opened_or_with_a_sink_fails_creation)
{
	scache_cache *c;
	cr_assert_eq(scache_cache_new(NULL, &c), SCACHE_OK);
	scache_middleware_config mc = {.cache = c, .handler = handler};
	mc.log_file = "/nonexistent-dir-of-scache/x.log";
	cr_assert_eq(scache_memory_source_new(&mc.source), SCACHE_OK);
	scache_middleware *m = NULL;
	char err[256] = "";
	cr_assert_eq(scache_middleware_new(&mc, &m, err, sizeof err), SCACHE_EIO);
	cr_assert_str_eq(err,
	                 "middleware: cannot open log_file '/nonexistent-dir-of-scache/x.log': "
	                 "No such file or directory");
	mc.log_file = "/tmp/x.log";
	mc.log = capture;
	cr_assert_eq(scache_memory_source_new(&mc.source), SCACHE_OK);
	cr_assert_eq(scache_middleware_new(&mc, &m, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_str_eq(err,
	                 "middleware: config.log and config.log_file are exclusive (one sink)");
	cr_assert_null(m);
	cr_assert_eq(scache_middleware_reopen_log(NULL), SCACHE_EINVAL);
	scache_cache_free(c);
}
