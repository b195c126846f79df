/*
 * The Kinesis client and the publisher against misbehaving endpoints on loopback, run
 * here by the test itself (no kinesalite needed):
 *  - an endpoint whose error answers quote the request's headers, the signed
 *    Authorization (with the access key ID) and X-Amz-Security-Token among them: no
 *    credential reaches a message, and the AWS error name stays in it;
 *  - a hung endpoint (it accepts connections and reads requests, never answers): a
 *    publish ends within its publish_timeout_ms, retrying within it, and concurrent
 *    publishes wait for the endpoint side by side instead of one after another.
 * Every socket and thread started here is closed and joined in the test's .fini.
 */
#define _GNU_SOURCE /* strcasestr */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kinesis.h"
#include "publish.h"
#include "scache/scache.h"

#define KEY_ID  "AKIDLIVETEST9876"
#define SECRET  "livetestsecretkey"
#define TOKEN   "LIVETESTSESSIONTOKEN"
#define MAXCONN 64

/* ---- a loopback endpoint ------------------------------------------------------------ */

typedef struct endpoint {
	int fd, port;
	char url[64];
	pthread_t thread;
	int threaded;
	atomic_int stop;
	int conns[MAXCONN]; /* accepted by the test (hung endpoint) */
	size_t nconns;
} endpoint;

static endpoint E = {.fd = -1};

static void endpoint_listen(endpoint *e)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof sa;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	e->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(e->fd, 0);
	cr_assert_eq(bind(e->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(e->fd, MAXCONN), 0);
	cr_assert_eq(getsockname(e->fd, (struct sockaddr *)&sa, &sl), 0);
	e->port = ntohs(sa.sin_port);
	snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", e->port);
}

/* Read one request (headers and a Content-Length body) into buf; its length, or 0. */
static size_t read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	for (;;) {
		buf[len] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end) {
			const char *cl = strcasestr(buf, "\r\ncontent-length:");
			size_t want =
			    (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
			if (len >= want)
				return len;
		}
		struct pollfd pf = {fd, POLLIN, 0};
		if (len + 1 >= cap || poll(&pf, 1, 5000) <= 0)
			return 0;
		ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
		if (r <= 0)
			return 0;
		len += (size_t)r;
	}
}

/* Answer every request with 400 and an error message quoting its headers, the session
 * token and the Authorization header first (as the repro's endpoint does). */
static void *echo_serve(void *arg)
{
	endpoint *e = arg;
	static char req[65536], quoted[65536], answer[70000];
	while (!atomic_load(&e->stop)) {
		struct pollfd pf = {e->fd, POLLIN, 0};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		int c = accept(e->fd, NULL, NULL);
		if (c < 0)
			continue;
		if (read_request(c, req, sizeof req)) {
			size_t q = 0;
			const char *first[] = {"x-amz-security-token:", "authorization:", ""};
			for (size_t f = 0; f < 3; f++)
				for (char *line = strstr(req, "\r\n"); line && line[2] != '\r';
				     line = strstr(line + 2, "\r\n")) {
					char *eol = strstr(line + 2, "\r\n");
					int is_first = f < 2 && !strncasecmp(line + 2, first[f],
					                                     strlen(first[f]));
					int is_other =
					    f == 2 &&
					    strncasecmp(line + 2, first[0], strlen(first[0])) &&
					    strncasecmp(line + 2, first[1], strlen(first[1]));
					if ((is_first || is_other) && eol)
						q += (size_t)snprintf(
						    quoted + q, sizeof quoted - q, "%.*s; ",
						    (int)(eol - line - 2), line + 2);
				}
			int bl = snprintf(answer, sizeof answer,
			                  "{\"__type\":\"com.amazon.coral.service#"
			                  "IncompleteSignatureException\",\"message\":\"request "
			                  "refused; request headers were: %s\"}",
			                  quoted);
			char head[256];
			int hl = snprintf(head, sizeof head,
			                  "HTTP/1.1 400 Bad Request\r\nContent-Type: "
			                  "application/x-amz-json-1.1\r\nContent-Length: %d\r\n"
			                  "Connection: close\r\n\r\n",
			                  bl);
			(void)!send(c, head, (size_t)hl, MSG_NOSIGNAL);
			(void)!send(c, answer, (size_t)bl, MSG_NOSIGNAL);
		}
		close(c);
	}
	return NULL;
}

static void endpoint_stop(void)
{
	atomic_store(&E.stop, 1);
	if (E.threaded)
		pthread_join(E.thread, NULL);
	E.threaded = 0;
	for (size_t i = 0; i < E.nconns; i++)
		close(E.conns[i]);
	E.nconns = 0;
	if (E.fd >= 0)
		close(E.fd);
	E.fd = -1;
}

static void start_echo(void)
{
	endpoint_listen(&E);
	cr_assert_eq(pthread_create(&E.thread, NULL, echo_serve, &E), 0);
	E.threaded = 1;
}

static void config_for(scache_stream_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->stream_name = "live";
	cfg->region = "us-east-1";
	cfg->endpoint = E.url;
	cfg->access_key_id = KEY_ID;
	cfg->secret_access_key = SECRET;
	cfg->session_token = TOKEN;
	cfg->max_retries = 1;
	cfg->backoff_base_ms = 1;
	cfg->backoff_max_ms = 2;
}

static void assert_no_credential(const char *msg)
{
	cr_assert_null(strstr(msg, KEY_ID), "%s", msg);
	cr_assert_null(strstr(msg, "AKIDLIVE"), "%s", msg);
	cr_assert_null(strstr(msg, SECRET), "%s", msg);
	cr_assert_null(strstr(msg, "LIVETESTSESS"), "%s", msg);
}

/* ---- credentials quoted by an error answer ----------------------------------------- */

TestSuite(echo, .init = start_echo, .fini = endpoint_stop);

Test(echo, an_error_quoting_the_signed_headers_shows_no_credential_and_keeps_the_error_name)
{
	scache_stream_config cfg;
	kinesis_settings s;
	aws_client *c;
	aws_result r;
	config_for(&cfg);
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, NULL, 0), SCACHE_OK);
	cr_assert_eq(kinesis_client_new(&s, &c, NULL, 0), SCACHE_OK);
	kinesis_settings_clear(&s);
	json_object *req = kinesis_req_stream("live");
	aws_call(c, "ListShards", req, &r);
	json_object_put(req);
	cr_assert_eq(r.err, SCACHE_ESERVICE, "%s", r.message);
	cr_assert_eq(r.http_status, 400);
	cr_assert_str_eq(r.name, "IncompleteSignatureException");
	assert_no_credential(r.message);
	char want[256];
	snprintf(want, sizeof want,
	         "ListShards at %s: IncompleteSignatureException: request refused", E.url);
	cr_assert(!strncmp(r.message, want, strlen(want)), "%s", r.message);
	/* the key ID keeps its last 4 characters, and the token is masked in few bytes */
	cr_assert(strstr(r.message, "X-Amz-Security-Token: ****; Authorization: AWS4-HMAC-SHA256 "
	                            "Credential=****9876/"),
	          "%s", r.message);
	aws_result_clear(&r);
	aws_client_free(c);
}

Test(echo, a_publish_refused_with_the_signed_headers_quoted_shows_no_credential)
{
	scache_stream_config cfg;
	scache_publisher *p;
	scache_publish_result res;
	const char *key = "id=1&s=db.t.id&t=data.ID";
	size_t len = strlen(key);
	config_for(&cfg);
	cr_assert_eq(scache_publisher_new(&cfg, &p, NULL, 0), SCACHE_OK);
	cr_assert_eq(scache_publish_keys(p, &key, &len, 1, &res), SCACHE_EPUBLISH);
	cr_assert_eq(res.err, SCACHE_ESERVICE, "%s", res.message);
	cr_assert(strstr(res.message, "PutRecords at http://127.0.0.1:"), "%s", res.message);
	cr_assert(strstr(res.message, ": IncompleteSignatureException: request refused"), "%s",
	          res.message);
	assert_no_credential(res.message);
	scache_publisher_free(p);
}

/* ---- a hung endpoint ---------------------------------------------------------------- */

/* Listening, never answering: connections complete in the kernel's backlog, requests
 * are sent and wait. The test accepts them itself when it counts them. */
static void start_hung(void)
{
	endpoint_listen(&E);
}

TestSuite(hung, .init = start_hung, .fini = endpoint_stop);

static const char *const hung_key = "id=1&s=db.t.id&t=data.ID";

Test(hung, a_publish_ends_within_its_publish_timeout_retrying_within_it, .timeout = 30)
{
	/* each attempt alone could wait 60 s, and 10 retries 11 minutes: the publish
	 * timeout ends it (the suite's 30 s timeout would fail it otherwise) */
	scache_stream_config cfg;
	scache_publisher *p;
	scache_publish_result res;
	size_t len = strlen(hung_key);
	config_for(&cfg);
	cfg.timeout_ms = 60000;
	cfg.max_retries = 10;
	cfg.publish_timeout_ms = 1500;
	cr_assert_eq(scache_publisher_new(&cfg, &p, NULL, 0), SCACHE_OK);
	/* the first attempt times out at the deadline: nothing is left to retry in */
	cr_assert_eq(scache_publish_keys(p, &hung_key, &len, 1, &res), SCACHE_EPUBLISH);
	cr_assert_eq(res.err, SCACHE_ETRANSPORT, "%s", res.message);
	cr_assert(strstr(res.message, "PutRecords at http://127.0.0.1:"), "%s", res.message);
	cr_assert(strstr(res.message, "imeout"), "%s", res.message);
	cr_assert_eq(publish_calls(p), 1);
	scache_publisher_free(p);

	/* attempts shorter than the publish timeout: retried within it */
	cfg.timeout_ms = 200;
	cfg.publish_timeout_ms = 1500;
	cr_assert_eq(scache_publisher_new(&cfg, &p, NULL, 0), SCACHE_OK);
	cr_assert_eq(scache_publish_keys(p, &hung_key, &len, 1, &res), SCACHE_EPUBLISH);
	cr_assert_eq(res.err, SCACHE_ETRANSPORT, "%s", res.message);
	cr_assert_geq(publish_calls(p), 2);
	cr_assert_leq(publish_calls(p), 8); /* 1500 / 200 rounded up, and no more */
	scache_publisher_free(p);
}

#define PUBLISHERS 4

typedef struct pub_arg {
	scache_publisher *p;
	scache_err err;
	scache_publish_result res;
} pub_arg;

static void *publish_one(void *arg)
{
	pub_arg *a = arg;
	size_t len = strlen(hung_key);
	a->err = scache_publish_keys(a->p, &hung_key, &len, 1, &a->res);
	return NULL;
}

Test(hung, concurrent_publishes_wait_for_the_endpoint_side_by_side, .timeout = 60)
{
	scache_stream_config cfg;
	scache_publisher *p;
	pthread_t t[PUBLISHERS];
	pub_arg a[PUBLISHERS];
	config_for(&cfg);
	cfg.timeout_ms = 20000;
	cfg.publish_timeout_ms = 20000;
	cr_assert_eq(scache_publisher_new(&cfg, &p, NULL, 0), SCACHE_OK);
	for (int i = 0; i < PUBLISHERS; i++) {
		a[i].p = p;
		cr_assert_eq(pthread_create(&t[i], NULL, publish_one, &a[i]), 0);
	}
	/* every publish has its request waiting at the endpoint at once: accept them all
	 * while none has given up (one publisher at a time would send one request, and
	 * the next only after the first gives up 20 s later) */
	static char req[65536];
	while (E.nconns < PUBLISHERS) {
		struct pollfd pf = {E.fd, POLLIN, 0};
		if (poll(&pf, 1, 10000) <= 0)
			break;
		int c = accept(E.fd, NULL, NULL);
		cr_assert_geq(c, 0);
		E.conns[E.nconns++] = c;
		cr_assert_gt(read_request(c, req, sizeof req), 0);
		cr_assert(strstr(req, "PutRecords"));
	}
	size_t waiting = E.nconns;
	/* now the endpoint goes away: every publish fails soon */
	endpoint_stop();
	for (int i = 0; i < PUBLISHERS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(waiting, (size_t)PUBLISHERS,
	             "only %zu of %d publishes reached the endpoint "
	             "at once",
	             waiting, PUBLISHERS);
	for (int i = 0; i < PUBLISHERS; i++) {
		cr_assert_eq(a[i].err, SCACHE_EPUBLISH);
		cr_assert_eq(a[i].res.err, SCACHE_ETRANSPORT, "%s", a[i].res.message);
	}
	scache_publisher_free(p);
}
