/* Startup within its bound (issue 11, items 3 and 4): scache_middleware_new against an
 * endpoint that accepts connections and never answers returns within
 * config.startup_timeout_ms, bypassed, with a warning naming the cause, and
 * scache_middleware_wait_ready times out; against kinesalite it becomes ready;
 * require_stream refuses a stream that does not exist; a failed publish gives its AWS
 * reason. Loopback only. Outcomes are exact; nothing asserts a duration (the bound holds
 * by design: the reader is created in a thread waited for that long). */
#include <criterion/criterion.h>

#include "kinesalite.h"
#include <scache/scache.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static kinesalite K;
static scache_cache *cache;
static scache_middleware *mw;
static int silent_fd = -1; /* a listener that never accepts: the kernel completes the
                              handshake, nobody ever answers */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char warnings[4096];

static void capture(void *arg, const char *line, size_t len)
{
	(void)arg;
	if (!strstr(line, "\"type\":\"warning\""))
		return;
	pthread_mutex_lock(&log_mu);
	strncat(warnings, line,
	        sizeof warnings - strlen(warnings) - 2 < len
	            ? sizeof warnings - strlen(warnings) - 2
	            : len);
	strcat(warnings, "\n");
	pthread_mutex_unlock(&log_mu);
}

static enum MHD_Result no_handler(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **req_cls)
{
	(void)cls, (void)c, (void)url, (void)method, (void)version, (void)data, (void)size;
	(void)req_cls;
	return MHD_NO;
}

static void teardown(void)
{
	scache_middleware_free(mw); /* waits for the stream call in flight, if any */
	mw = NULL;
	scache_cache_free(cache);
	cache = NULL;
	if (silent_fd >= 0)
		close(silent_fd);
	silent_fd = -1;
	kinesalite_stop(&K);
}

static scache_middleware_config base_config(const scache_stream_config *stream)
{
	cr_assert_eq(scache_cache_new(NULL, &cache), SCACHE_OK);
	/* kinesalite answers in milliseconds; the startup bound is generous so that a busy
	 * machine cannot turn its answer into "no answer within the bound" (the silent
	 * endpoint's test sets its own) */
	scache_middleware_config mc = {.cache = cache,
	                               .stream = stream,
	                               .handler = no_handler,
	                               .log = capture,
	                               .startup_timeout_ms = 30000};
	return mc;
}

static int middleware_bypassing(void)
{
	scache_middleware_stats st;
	scache_middleware_stats_get(mw, &st);
	return st.bypassing;
}

TestSuite(startup_silent, .fini = teardown);

Test(startup_silent, new_returns_within_its_bound_bypassed_and_wait_ready_times_out)
{
	silent_fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(silent_fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	cr_assert_eq(bind(silent_fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(silent_fd, 64), 0);
	cr_assert_eq(getsockname(silent_fd, (struct sockaddr *)&sa, &sl), 0);
	char endpoint[64];
	snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%u", ntohs(sa.sin_port));

	/* each call would wait 1 s: longer than the startup bound, short enough that the
	 * background attempt in flight at teardown ends soon */
	scache_stream_config sc = {.stream_name = "orders",
	                           .region = "us-east-1",
	                           .endpoint = endpoint,
	                           .access_key_id = "AKIDEXAMPLE",
	                           .secret_access_key = "secretsecretsecret",
	                           .timeout_ms = 1000,
	                           .max_retries = 0};
	scache_middleware_config mc = base_config(&sc);
	mc.startup_timeout_ms = 200;
	char err[256] = "";
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_eq(middleware_bypassing(), 1, "started bypassed");
	char expect[256];
	snprintf(expect, sizeof expect,
	         "the stream cannot be read yet (no answer from stream 'orders' at %s within "
	         "200 ms (startup_timeout_ms); still connecting in the background)",
	         endpoint);
	pthread_mutex_lock(&log_mu);
	cr_assert_not_null(strstr(warnings, expect), "warnings: %s", warnings);
	pthread_mutex_unlock(&log_mu);

	char why[512];
	cr_assert_eq(scache_middleware_wait_ready(mw, 100, why, sizeof why), SCACHE_ETIMEOUT);
	cr_assert_eq(strncmp(why, "the stream is not ready: ", 25), 0, "%s", why);
	cr_assert_eq(middleware_bypassing(), 1);
}

Test(startup_silent, configuration_errors_still_fail_at_once)
{
	scache_stream_config sc = {.stream_name = "orders",
	                           .region = "us-east-1",
	                           .endpoint = "ftp://127.0.0.1:1",
	                           .access_key_id = "AKIDEXAMPLE",
	                           .secret_access_key = "secretsecretsecret"};
	scache_middleware_config mc = base_config(&sc);
	char err[256] = "";
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_null(mw);
	cr_assert_neq(err[0], '\0');
}

static void up(void)
{
	char err[256];
	cr_assert_eq(kinesalite_start(&K, err, sizeof err), 0, "%s", err);
}

TestSuite(startup_kinesalite, .init = up, .fini = teardown);

Test(startup_kinesalite, wait_ready_returns_ok_once_the_stream_is_read)
{
	char err[256] = "";
	cr_assert_eq(kinesalite_create_stream(&K, "orders", 2, err, sizeof err), 0, "%s", err);
	scache_stream_config sc;
	kinesalite_config(&K, "orders", &sc);
	scache_middleware_config mc = base_config(&sc);
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
	char why[512] = "untouched";
	cr_assert_eq(scache_middleware_wait_ready(mw, 30000, why, sizeof why), SCACHE_OK, "%s",
	             why);
	cr_assert_str_eq(why, "");
	cr_assert_eq(middleware_bypassing(), 0);
}

Test(startup_kinesalite, require_stream_refuses_a_stream_that_does_not_exist)
{
	scache_stream_config sc;
	kinesalite_config(&K, "no-such-stream", &sc);
	scache_middleware_config mc = base_config(&sc);
	mc.require_stream = 1;
	char err[512] = "";
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_ESERVICE);
	cr_assert_null(mw);
	cr_assert_not_null(strstr(err, "ResourceNotFoundException"), "%s", err);
}

Test(startup_kinesalite, without_require_stream_a_missing_stream_starts_bypassed)
{
	scache_stream_config sc;
	kinesalite_config(&K, "no-such-stream", &sc);
	scache_middleware_config mc = base_config(&sc);
	char err[512] = "";
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_eq(middleware_bypassing(), 1);
	pthread_mutex_lock(&log_mu);
	cr_assert_not_null(strstr(warnings, "ResourceNotFoundException"), "%s", warnings);
	pthread_mutex_unlock(&log_mu);
	char why[512];
	cr_assert_eq(scache_middleware_wait_ready(mw, 50, why, sizeof why), SCACHE_ETIMEOUT);
	cr_assert_not_null(strstr(why, "ResourceNotFoundException"), "%s", why);
}

Test(startup_kinesalite, a_failed_publish_returns_the_aws_reason)
{
	scache_stream_config sc;
	kinesalite_config(&K, "no-such-stream", &sc);
	scache_middleware_config mc = base_config(&sc);
	char err[512] = "";
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
	const char *source = "db.users.id", *id = "1";
	char why[512] = "";
	scache_err e = scache_middleware_invalidate_why(mw, &source, &id, 1, why, sizeof why);
	cr_assert_neq(e, SCACHE_OK);
	cr_assert_not_null(strstr(why, "PutRecords"), "%s", why);
	cr_assert_not_null(strstr(why, "ResourceNotFoundException"), "%s", why);
	pthread_mutex_lock(&log_mu);
	cr_assert_not_null(strstr(warnings, "could not be published (PutRecords"), "%s", warnings);
	pthread_mutex_unlock(&log_mu);
}
