/* The README's snippets (example_server/snippets/) compile, and do what the README says
 * when run inside handlers of a real libmicrohttpd daemon wrapped by the middleware (over
 * a stream stand-in that accepts every publish). */
#include <criterion/criterion.h>
#include <curl/curl.h>

#include "../example_server/snippets/snippets.h"
#include "middleware_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- The application's database: one user ---------------------------------- */

static char user_name[64] = "Ada";
static unsigned db_loads;

char *db_load_user_json(const char *id)
{
	if (strcmp(id, "1") != 0)
		return NULL;
	db_loads++;
	char buf[128];
	snprintf(buf, sizeof buf, "{\"id\":\"1\",\"name\":\"%s\"}", user_name);
	return strdup(buf);
}

int db_update_user_name(const char *id, const char *name)
{
	if (strcmp(id, "1") != 0)
		return -1;
	snprintf(user_name, sizeof user_name, "%s", name);
	return 0;
}

/* ---- A stand-in source (source.h): delivers nothing, counts what is published ---- */

static size_t published;

static scache_err sync_nothing(void *self, uint64_t since, const scache_sink *sink,
                               scache_poll_info *info)
{
	(void)self, (void)since, (void)sink, (void)info;
	return SCACHE_OK;
}

static scache_err publish_all(void *self, const char *const *keys, const size_t *lens, size_t n,
                              char *errbuf, size_t errlen)
{
	(void)self, (void)keys, (void)lens, (void)errbuf, (void)errlen;
	published += n;
	return SCACHE_OK;
}

static const scache_source_ops counting_ops = {.sync = sync_nothing, .publish = publish_all};

/* ---- Handlers calling the snippets ------------------------------------------ */

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **req_cls)
{
	(void)cls, (void)method, (void)version, (void)data, (void)size;
	if (!*req_cls) {
		*req_cls = c;
		return MHD_YES;
	}
	char body[256] = "";
	if (!strcmp(url, "/load")) {
		char *json = load_and_cache_user("1");
		snprintf(body, sizeof body, "%s", json ? json : "null");
		free(json);
	} else if (!strcmp(url, "/cached")) {
		snprintf(body, sizeof body, "%d", user_is_cached("1"));
	} else if (!strcmp(url, "/get")) {
		int hit = -1;
		char *json = get_user("1", &hit);
		snprintf(body, sizeof body, "%d %s", hit, json ? json : "null");
		free(json);
	} else if (!strcmp(url, "/rename")) {
		snprintf(body, sizeof body, "%d", rename_user("1", "Ada Lovelace"));
	}
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_queue_response(c, 200, r); /* the log reads its status */
	MHD_destroy_response(r);
	return ret;
}

/* ---- The application's replies and handler for the DynamoDB snippets ---------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result reply_json(struct MHD_Connection *c, const char *json, size_t len)
{
	return reply(c, 200, json, len);
}

enum MHD_Result reply_404(struct MHD_Connection *c)
{
	return reply(c, 404, "not found", 9);
}

enum MHD_Result reply_502(struct MHD_Connection *c, const char *why)
{
	return reply(c, 502, why, strlen(why));
}

static scache_dynamodb *db7;

/* GET /users/7 through the GetItem snippet. */
enum MHD_Result users_handler(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **req_cls)
{
	(void)cls, (void)url, (void)method, (void)version, (void)data, (void)size;
	if (!*req_cls) {
		*req_cls = c;
		return MHD_YES;
	}
	return reply_user_7(c, db7);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	strncat(arg, p, size * n);
	return size * n;
}

static unsigned short port;

static void get(const char *path, const char *want)
{
	char url[128], body[512] = "";
	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
	cr_assert_str_eq(body, want, "GET %s", path);
}

static void log_nothing(void *arg, const char *line, size_t len)
{
	(void)arg, (void)line, (void)len;
}

Test(snippets, add_read_and_announce_work_as_the_readme_says)
{
	scache_cache *cache;
	cr_assert_eq(scache_cache_new(NULL, &cache), SCACHE_OK);
	scache_middleware_config mc = {
	    .cache = cache, .handler = handler, .log = log_nothing, .max_polls_per_second = 1000};
	cr_assert_eq(scache_source_new(&counting_ops, NULL, &mc.source), SCACHE_OK);
	scache_middleware *mw;
	cr_assert_eq(scache_middleware_new(&mc, &mw, NULL, 0), SCACHE_OK);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d =
	    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, scache_access_handler,
	                     mw, MHD_OPTION_NOTIFY_COMPLETED, scache_request_completed, mw,
	                     MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
	cr_assert_not_null(d);
	port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;

	get("/cached", "0");
	get("/load", "{\"id\":\"1\",\"name\":\"Ada\"}");
	get("/cached", "1");
	get("/get", "1 {\"id\":\"1\",\"name\":\"Ada\"}");
	cr_assert_eq(db_loads, 1, "the hit did not load");
	get("/rename", "0");
	cr_assert_eq(published, 1, "the change was published");
	get("/cached", "0");
	get("/get", "0 {\"id\":\"1\",\"name\":\"Ada Lovelace\"}");
	get("/get", "1 {\"id\":\"1\",\"name\":\"Ada Lovelace\"}");
	cr_assert_eq(db_loads, 2);

	MHD_stop_daemon(d);
	scache_middleware_free(mw);
	scache_cache_free(cache);
}

/* A port nothing listens on (bound, then closed). */
static uint16_t closed_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&sa, &len), 0);
	close(s);
	return ntohs(sa.sin_port);
}

#define IDLE 1100

Test(snippets, the_middleware_snippet_serves_beside_many_idle_connections)
{
	/* select() (FD_SETSIZE) and MHD's default limit of 1020 connections: ~1,000 idle
	 * sockets left every later request an empty reply. The stream is unreachable (the
	 * middleware bypasses the cache), which does not matter here. */
	char ep[64];
	snprintf(ep, sizeof ep, "http://127.0.0.1:%u", closed_port());
	setenv("AWS_ENDPOINT_URL_KINESIS", ep, 1);
	setenv("AWS_REGION", "us-east-1", 1);
	setenv("AWS_ACCESS_KEY_ID", "local", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "local", 1);
	scache_cache *cache;
	scache_middleware *mw;
	struct MHD_Daemon *d = start_users_service(0, handler, NULL, &cache, &mw);
	cr_assert_not_null(d);
	unsigned flags = (unsigned)MHD_get_daemon_info(d, MHD_DAEMON_INFO_FLAGS)->flags;
	cr_expect_eq(flags & MHD_ALLOW_SUSPEND_RESUME, MHD_ALLOW_SUSPEND_RESUME,
	             "the snippet's daemon parks requests waiting for the stream");
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2 * IDLE + 200) { /* both ends of each connection are ours */
		scache_middleware_shutdown(mw);
		MHD_stop_daemon(d);
		scache_middleware_free(mw);
		scache_cache_free(cache);
		cr_skip_test("an open-file limit of %llu is below %d",
		             (unsigned long long)rl.rlim_cur, 2 * IDLE + 200);
	}
	port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	static int idle[IDLE];
	for (int i = 0; i < IDLE; i++) {
		idle[i] = socket(AF_INET, SOCK_STREAM, 0);
		cr_assert_geq(idle[i], 0);
		cr_assert_eq(connect(idle[i], (struct sockaddr *)&sa, sizeof sa), 0, "idle %d", i);
	}
	unsigned held = 0;
	for (int i = 0; i < 3000 && held < IDLE; i++) { /* until all are accepted, or 30 s */
		held = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS)->num_connections;
		if (held < IDLE)
			usleep(10000);
	}
	cr_expect_eq(held, IDLE, "the daemon holds every idle connection");
	get("/cached", "0");
	for (int i = 0; i < IDLE; i++)
		close(idle[i]);
	scache_middleware_shutdown(mw);
	MHD_stop_daemon(d);
	scache_middleware_free(mw);
	scache_cache_free(cache);
}

Test(snippets, the_dynamodb_snippets_start_and_answer_with_the_aws_error_when_the_table_is_down)
{
	/* nothing listens at the endpoints: the middleware starts bypassed (the stream cannot
	 * be read), the read-aside GetItem runs and names DynamoDB's failure in its 502 */
	char ep[64];
	snprintf(ep, sizeof ep, "http://127.0.0.1:%u", closed_port());
	setenv("AWS_ENDPOINT_URL_DYNAMODB", ep, 1);
	setenv("AWS_ENDPOINT_URL_KINESIS", ep, 1);
	setenv("AWS_REGION", "us-east-1", 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIDSNIPPETTEST1", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "snippet-test-secret-key", 1);
	db7 = open_tables();
	cr_assert_not_null(db7);
	scache_cache *cache;
	cr_assert_eq(scache_cache_new(NULL, &cache), SCACHE_OK);
	scache_middleware *mw = start_with_table_changes(cache);
	cr_assert_not_null(mw);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d =
	    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, scache_access_handler,
	                     mw, MHD_OPTION_NOTIFY_COMPLETED, scache_request_completed, mw,
	                     MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
	cr_assert_not_null(d);
	port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
	char url[128], body[512] = "";
	snprintf(url, sizeof url, "http://127.0.0.1:%u/users/7", port);
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	cr_assert_eq(status, 502, "%s", body);
	char want[128];
	snprintf(want, sizeof want, "DynamoDB table 'users': GetItem at %s", ep);
	cr_assert(strncmp(body, want, strlen(want)) == 0, "%s", body);
	cr_assert_null(strstr(body, "AKIDSNIPPETTEST1"), "no credential: %s", body);
	MHD_stop_daemon(d);
	scache_middleware_free(mw);
	scache_cache_free(cache);
	scache_dynamodb_free(db7);
}
