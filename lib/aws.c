/*
 * aws.c: the AWS client core: JSON-over-HTTP calls to one AWS service over libcurl.
 *
 * Every call is a POST of a JSON body to the service's endpoint, signed by libcurl itself
 * (CURLOPT_AWS_SIGV4, "aws:amz:<region>:<service>") with the key pair as user name and
 * password; a session token travels as X-Amz-Security-Token. No HMAC is written here. The
 * service (signing name, X-Amz-Target prefix, content type, endpoint variable) is a
 * parameter, so Kinesis, DynamoDB and DynamoDB Streams share this file.
 *
 * Design:
 * - One curl multi handle per client and a pool of easy handles, reused across calls:
 *   the multi handle owns the connection cache, so connections stay alive between polls,
 *   and n requests (one per shard) run concurrently instead of one after another.
 * - A call that is throttled, answered with 5xx, or fails in transport is retried with
 *   "full jitter" backoff (a random wait in [0, min(cap, base * 2^attempt)]) up to
 *   max_retries; everything else is final. The outcome carries the AWS error name and
 *   message and the endpoint, never the credentials: every message built from an answer
 *   is masked (aws_redact) before it is cut to fit.
 * - TLS verification is always on (against the system's CAs, or the ca_file /
 *   AWS_CA_BUNDLE the user trusts); only http and https are allowed, and plain http only
 *   when the endpoint says so. No redirects are followed.
 */
#include "aws.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "scache/cache.h"
#include "strbuf.h"
#include "util.h"

#define RESPONSE_MAX ((size_t)64 << 20) /* GetRecords answers up to 10 MiB of data */

/* ---- settings ------------------------------------------------------------------ */

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static const char *first_set(const char *a, const char *b)
{
	return a && *a ? a : b;
}

static int dup_into(char **dst, const char *src)
{
	if (!src) {
		*dst = NULL;
		return 0;
	}
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

void aws_settings_clear(aws_settings *s)
{
	if (!s)
		return;
	free(s->region);
	free(s->endpoint);
	free(s->ca_file);
	free(s->access_key_id);
	if (s->secret_access_key) /* do not leave the secret in freed memory */
		explicit_bzero(s->secret_access_key, strlen(s->secret_access_key));
	free(s->secret_access_key);
	if (s->session_token)
		explicit_bzero(s->session_token, strlen(s->session_token));
	free(s->session_token);
	memset(s, 0, sizeof *s);
}

static scache_err settings_fail(aws_settings *out, char *errbuf, size_t errlen, scache_err err,
                                const char *msg)
{
	aws_settings_clear(out);
	util_fmt(errbuf, errlen, "%s", msg);
	return err;
}

scache_err aws_settings_resolve(const aws_service *svc, const aws_config *cfg, aws_settings *out,
                                char *errbuf, size_t errlen)
{
	const char *region, *endpoint, *key, *secret, *token, *ca_file;
	char defendpoint[160], msg[320];

	memset(out, 0, sizeof *out);
	region = first_set(cfg->region, env_nonempty("AWS_REGION"));
	region = first_set(region, env_nonempty("AWS_DEFAULT_REGION"));
	if (!region)
		return settings_fail(out, errbuf, errlen, SCACHE_ECONFIG,
		                     "no AWS region: set region, AWS_REGION or AWS_DEFAULT_REGION");
	if (cfg->access_key_id && *cfg->access_key_id) {
		/* explicit keys: never mix in a session token of other keys */
		key = cfg->access_key_id;
		secret = cfg->secret_access_key;
		token = cfg->session_token;
	} else {
		key = env_nonempty("AWS_ACCESS_KEY_ID");
		secret = first_set(cfg->secret_access_key, env_nonempty("AWS_SECRET_ACCESS_KEY"));
		token = first_set(cfg->session_token, env_nonempty("AWS_SESSION_TOKEN"));
	}
	if (!key)
		return settings_fail(out, errbuf, errlen, SCACHE_ECONFIG,
		                     "no AWS credentials: set access_key_id or AWS_ACCESS_KEY_ID");
	if (!(secret && *secret))
		return settings_fail(out, errbuf, errlen, SCACHE_ECONFIG,
		                     "no AWS secret key: set secret_access_key or "
		                     "AWS_SECRET_ACCESS_KEY");
	endpoint = first_set(cfg->endpoint, env_nonempty(svc->endpoint_env));
	endpoint = first_set(endpoint, env_nonempty("AWS_ENDPOINT_URL"));
	if (!endpoint) {
		util_fmt(defendpoint, sizeof defendpoint, "https://%s.%s.amazonaws.com%s",
		         svc->name, region, strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
		endpoint = defendpoint;
	}
	if (strncmp(endpoint, "https://", 8) != 0 && strncmp(endpoint, "http://", 7) != 0) {
		char shown[201]; /* without user:password@ */
		util_fmt(msg, sizeof msg,
		         "%s endpoint '%s' must start with https:// (or http:// for plain HTTP)",
		         svc->label, aws_endpoint_shown(endpoint, shown, sizeof shown));
		return settings_fail(out, errbuf, errlen, SCACHE_ECONFIG, msg);
	}
	/* said now, not as a TLS failure at the first call */
	ca_file = first_set(cfg->ca_file, env_nonempty("AWS_CA_BUNDLE"));
	FILE *ca = ca_file ? fopen(ca_file, "r") : NULL;
	if (ca_file && !ca) {
		util_fmt(msg, sizeof msg,
		         "%s CA file '%s' (ca_file or AWS_CA_BUNDLE) cannot be read: %s",
		         svc->label, ca_file, strerror(errno));
		return settings_fail(out, errbuf, errlen, SCACHE_ECONFIG, msg);
	}
	if (ca)
		fclose(ca);

	if (dup_into(&out->region, region) || dup_into(&out->endpoint, endpoint) ||
	    dup_into(&out->ca_file, ca_file) || dup_into(&out->access_key_id, key) ||
	    dup_into(&out->secret_access_key, secret) ||
	    dup_into(&out->session_token, token && *token ? token : NULL))
		return settings_fail(out, errbuf, errlen, SCACHE_ENOMEM, "out of memory");
	size_t el = strlen(out->endpoint);
	while (el > 8 && out->endpoint[el - 1] == '/')
		out->endpoint[--el] = '\0';

	out->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 2000;
	out->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	out->max_retries = cfg->max_retries ? cfg->max_retries : 5;
	out->backoff_base_ms = cfg->backoff_base_ms ? cfg->backoff_base_ms : 50;
	out->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 2000;
	if (out->backoff_max_ms < out->backoff_base_ms)
		out->backoff_max_ms = out->backoff_base_ms;
	return SCACHE_OK;
}

scache_err aws_settings_copy(aws_settings *dst, const aws_settings *src)
{
	*dst = *src;
	dst->region = dst->endpoint = dst->ca_file = NULL;
	dst->access_key_id = dst->secret_access_key = dst->session_token = NULL;
	if (dup_into(&dst->region, src->region) || dup_into(&dst->endpoint, src->endpoint) ||
	    dup_into(&dst->ca_file, src->ca_file) ||
	    dup_into(&dst->access_key_id, src->access_key_id) ||
	    dup_into(&dst->secret_access_key, src->secret_access_key) ||
	    dup_into(&dst->session_token, src->session_token)) {
		aws_settings_clear(dst);
		return SCACHE_ENOMEM;
	}
	return SCACHE_OK;
}

/* ---- pure helpers -------------------------------------------------------------- */
const char *aws_sigv4_param(const aws_service *svc, const char *region, char *buf, size_t len)
{
	util_fmt(buf, len, "aws:amz:%s:%s", region, svc->name);
	return buf;
}

struct curl_slist *aws_headers(const aws_service *svc, const char *op, const char *session_token)
{
	char target[160], type[96];
	struct curl_slist *l = NULL, *t;

	util_fmt(target, sizeof target, "X-Amz-Target: %s.%s", svc->target_prefix, op);
	util_fmt(type, sizeof type, "Content-Type: %s", svc->content_type);
	const char *fixed[] = {type, target, "Expect:"};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		t = curl_slist_append(l, fixed[i]);
		if (!t)
			goto fail;
		l = t;
	}
	if (session_token) {
		size_t n = strlen(session_token) + 32;
		char *h = malloc(n);
		if (!h)
			goto fail;
		util_fmt(h, n, "X-Amz-Security-Token: %s", session_token);
		t = curl_slist_append(l, h);
		explicit_bzero(h, n); /* a memset before free may be optimised away */
		free(h);
		if (!t)
			goto fail;
		l = t;
	}
	return l;
fail:
	curl_slist_free_all(l);
	return NULL;
}

unsigned aws_backoff_ms(unsigned base_ms, unsigned max_ms, unsigned attempt, uint64_t rnd)
{
	uint64_t cap = base_ms;
	for (unsigned i = 0; i < attempt && cap < max_ms; i++)
		cap *= 2;
	if (cap > max_ms)
		cap = max_ms;
	return (unsigned)(rnd % (cap + 1));
}

uint64_t aws_random(void)
{
	uint64_t r;
	if (RAND_bytes((unsigned char *)&r, (int)sizeof r) == 1)
		return r;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	r = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
	r ^= r >> 29;
	return r * 0xBF58476D1CE4E5B9ull;
}

/* ---- the client ---------------------------------------------------------------- */

/* Where a transfer stands within one round: kept apart from its CURLcode, which may be
 * any value (a transfer may really end with CURLE_OUT_OF_MEMORY). */
typedef enum xfer_state {
	XFER_IDLE = 0, /* not in the multi handle */
	XFER_RUNNING,  /* added to the multi handle, not finished */
	XFER_DONE      /* finished, still in the multi handle until the round ends */
} xfer_state;

typedef struct xfer {
	CURL *h;
	xfer_state state;
	struct curl_slist *hdrs;
	strbuf resp; /* the answer's body */
	int overflow;
	char errbuf[CURL_ERROR_SIZE];
} xfer;

struct aws_client {
	const aws_service *svc;
	aws_settings s;
	char sigv4[96];
	char shown[256]; /* the endpoint as messages show it: without user:password@ */
	CURLM *multi;
	xfer **x; /* each transfer stays put: curl holds pointers into it */
	size_t nx;
	uint64_t calls;
	uint64_t throttled;
	uint64_t connects; /* new connections opened (keep-alive keeps this low) */
};

int (*aws_test_transfer_result)(int curl_code);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	xfer *x = arg;
	size_t n = size * nmemb;
	if (x->resp.len + n + 1 > RESPONSE_MAX) {
		x->overflow = 1;
		return 0;
	}
	strbuf_append(&x->resp, ptr, n);
	return x->resp.failed ? 0 : n;
}

static int xfer_setup_static(aws_client *c, xfer *x)
{
	x->h = curl_easy_init();
	if (!x->h)
		return -1;
	CURL *h = x->h;
	int bad = 0;
	bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_URL, c->s.endpoint) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) !=
	       CURLE_OK;
#endif
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (c->s.ca_file)
		bad |= curl_easy_setopt(h, CURLOPT_CAINFO, c->s.ca_file) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->s.connect_timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->s.timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USERNAME, c->s.access_key_id) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_PASSWORD, c->s.secret_access_key) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, x) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "libscache/0.1") != CURLE_OK;
	return bad ? -1 : 0;
}

/* Free a transfer's headers, clearing them first: one carries the session token. */
static void headers_free(struct curl_slist *l)
{
	for (struct curl_slist *t = l; t; t = t->next)
		explicit_bzero(t->data, strlen(t->data));
	curl_slist_free_all(l);
}

static void xfer_free(xfer *x)
{
	if (x->h)
		curl_easy_cleanup(x->h);
	headers_free(x->hdrs);
	free(x->resp.data);
	memset(x, 0, sizeof *x);
}

/* Make sure the pool holds n transfers. */
static int pool_reserve(aws_client *c, size_t n)
{
	if (n <= c->nx)
		return 0;
	xfer **p = realloc(c->x, n * sizeof *p); /* NOLINT(bugprone-sizeof-expression) */
	if (!p)
		return -1;
	c->x = p;
	for (size_t i = c->nx; i < n; i++) {
		p[i] = calloc(1, sizeof *p[i]);
		if (!p[i] || xfer_setup_static(c, p[i])) {
			if (p[i])
				xfer_free(p[i]);
			free(p[i]);
			return -1;
		}
		c->nx = i + 1;
	}
	return 0;
}

scache_err aws_client_new(const aws_service *svc, const aws_settings *settings, aws_client **out,
                          char *errbuf, size_t errlen)
{
	aws_client *c;

	if (!svc || !settings || !out)
		return SCACHE_EINVAL;
	*out = NULL;
	pthread_once(&curl_once, init_curl);
	if (curl_init_rc != CURLE_OK) {
		util_fmt(errbuf, errlen, "libcurl initialisation failed: %s",
		         curl_easy_strerror(curl_init_rc));
		return SCACHE_ETRANSPORT;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return SCACHE_ENOMEM;
	c->svc = svc;
	if (aws_settings_copy(&c->s, settings)) {
		free(c);
		return SCACHE_ENOMEM;
	}
	aws_sigv4_param(c->svc, c->s.region, c->sigv4, sizeof c->sigv4);
	aws_endpoint_shown(c->s.endpoint, c->shown, sizeof c->shown);
	c->multi = curl_multi_init();
	if (!c->multi || pool_reserve(c, 1)) {
		aws_client_free(c);
		util_fmt(errbuf, errlen, "cannot create curl handles");
		return SCACHE_ENOMEM;
	}
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
	*out = c;
	return SCACHE_OK;
}

void aws_client_free(aws_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nx; i++) {
		xfer_free(c->x[i]);
		free(c->x[i]);
	}
	free(c->x);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	aws_settings_clear(&c->s);
	free(c);
}

const char *aws_client_endpoint(const aws_client *c)
{
	return c->shown;
}

const aws_settings *aws_client_settings(const aws_client *c)
{
	return &c->s;
}

uint64_t aws_client_calls(const aws_client *c)
{
	return c->calls;
}

uint64_t aws_client_connects(const aws_client *c)
{
	return c->connects;
}

uint64_t aws_client_throttled(const aws_client *c)
{
	return c->throttled;
}

void aws_result_clear(aws_result *r)
{
	if (!r)
		return;
	json_object_put(r->body);
	memset(r, 0, sizeof *r);
}

static int transport_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
		return 1;
	default:
		return 0;
	}
}

/* text into dst with the client's credentials masked, then cut to fit. */
static void redact_into(const aws_client *c, char *dst, size_t dstlen, const char *text, size_t len)
{
	aws_redact(dst, dstlen, text, len, c->s.access_key_id, c->s.secret_access_key,
	           c->s.session_token);
}

void aws_client_redact(const aws_client *c, char *dst, size_t dstlen, const char *text)
{
	redact_into(c, dst, dstlen, text ? text : "", text ? strlen(text) : 0);
}

/* Judge one finished transfer into res; returns 1 if it should be retried. */
static int judge(aws_client *c, const char *op, xfer *x, CURLcode cc, aws_result *res,
                 unsigned attempt, int retry_timeouts)
{
	char name[64], msg[sizeof res->message], full[sizeof res->message + CURL_ERROR_SIZE + 64];
	long status = 0;

	json_object_put(res->body);
	res->body = NULL;
	res->attempts++;
	c->calls++;
	long nconn = 0;
	if (curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK && nconn > 0)
		c->connects += (uint64_t)nconn;
	if (cc != CURLE_OK) {
		res->err = x->overflow ? SCACHE_ESERVICE : SCACHE_ETRANSPORT;
		res->fail = x->overflow ? AWS_FAIL_OTHER : AWS_FAIL_TRANSPORT;
		res->http_status = 0;
		res->name[0] = '\0';
		util_fmt(full, sizeof full, "%s at %s: %s%s%s", op, c->shown,
		         x->overflow ? "answer too large" : curl_easy_strerror(cc),
		         x->errbuf[0] ? ": " : "", x->errbuf);
		aws_client_redact(c, res->message, sizeof res->message, full);
		return res->fail == AWS_FAIL_TRANSPORT && transport_retryable(cc) &&
		       (retry_timeouts || cc != CURLE_OPERATION_TIMEDOUT) &&
		       attempt < c->s.max_retries;
	}
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	res->http_status = status;
	if (status >= 200 && status < 300) {
		json_tokener *tok = json_tokener_new();
		json_object *o = NULL;
		if (x->resp.len == 0) /* CreateStream, DeleteStream...: an empty answer */
			o = json_object_new_object();
		else if (tok && x->resp.len <= (size_t)INT32_MAX)
			o = json_tokener_parse_ex(tok, x->resp.data, (int)x->resp.len);
		if (tok)
			json_tokener_free(tok);
		if (!o || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			res->err = SCACHE_ESERVICE;
			res->fail = AWS_FAIL_OTHER;
			util_fmt(res->message, sizeof res->message,
			         "%s at %s: HTTP %ld with an answer that is not a JSON object", op,
			         c->shown, status);
			return 0;
		}
		res->body = o;
		res->err = SCACHE_OK;
		res->fail = AWS_FAIL_NONE;
		res->name[0] = '\0';
		res->message[0] = '\0';
		return 0;
	}
	/* An answer may quote the signed request's headers: mask its whole text, then cut
	 * it; the error name comes first, so a long message cannot push it out. */
	const char *text;
	size_t tl;
	json_object *eo =
	    aws_parse_error_text(x->resp.data, x->resp.len, name, sizeof name, 4096, &text, &tl);
	redact_into(c, msg, sizeof msg, text, tl);
	json_object_put(eo);
	aws_client_redact(c, res->name, sizeof res->name, name);
	res->fail = aws_classify(status, res->name);
	util_fmt(full, sizeof full, "%s at %s: %s%s%s (HTTP %ld)", op, c->shown,
	         res->name[0] ? res->name : "error", msg[0] ? ": " : "", msg, status);
	aws_client_redact(c, res->message, sizeof res->message, full);
	if (res->fail == AWS_FAIL_THROTTLE) {
		res->throttled++;
		c->throttled++;
		res->err = SCACHE_ETHROTTLED;
	} else {
		res->err = SCACHE_ESERVICE;
	}
	return (res->fail == AWS_FAIL_THROTTLE || res->fail == AWS_FAIL_SERVER) &&
	       attempt < c->s.max_retries;
}

/* Run one round of transfers for the indexes in todo[0..m). */
static void run_round(aws_client *c, const char *op, json_object *const *reqs, const size_t *todo,
                      size_t m, CURLcode *cc, long timeout_ms)
{
	int running = 0;

	for (size_t k = 0; k < m; k++) {
		xfer *x = c->x[k];
		size_t len = 0;
		const char *body = json_object_to_json_string_length(
		    reqs[todo[k]], JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
		x->resp.len = 0;
		x->resp.failed = 0;
		x->overflow = 0;
		x->errbuf[0] = '\0';
		headers_free(x->hdrs);
		x->hdrs = aws_headers(c->svc, op, c->s.session_token);
		cc[k] = CURLE_OUT_OF_MEMORY; /* unless it starts */
		assert(x->state == XFER_IDLE);
		if (!x->hdrs || !body)
			continue;
		curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
		curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, timeout_ms);
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		/* COPYPOSTFIELDS: the JSON text belongs to reqs[], which may change later */
		curl_easy_setopt(x->h, CURLOPT_COPYPOSTFIELDS, body);
		curl_easy_setopt(x->h, CURLOPT_PRIVATE, (void *)(uintptr_t)k);
		if (curl_multi_add_handle(c->multi, x->h) != CURLM_OK)
			continue;
		x->state = XFER_RUNNING;
		cc[k] = CURLE_RECV_ERROR; /* unless it finishes: the multi loop broke off */
	}
	do {
		CURLMcode mc = curl_multi_perform(c->multi, &running);
		if (mc == CURLM_OK && running)
			mc = curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
		if (mc != CURLM_OK)
			break;
	} while (running);
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		void *priv = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		size_t k = (size_t)(uintptr_t)priv;
		if (k >= m || c->x[k]->state != XFER_RUNNING)
			continue;
		c->x[k]->state = XFER_DONE;
		cc[k] = aws_test_transfer_result
		            ? (CURLcode)aws_test_transfer_result(msg->data.result)
		            : msg->data.result;
	}
	for (size_t k = 0; k < m; k++) {
		if (c->x[k]->state != XFER_IDLE)
			curl_multi_remove_handle(c->multi, c->x[k]->h);
		c->x[k]->state = XFER_IDLE;
	}
}

/* Milliseconds left until deadline_ns (0: none, LONG_MAX), at least 0. */
static long ms_left(uint64_t deadline_ns)
{
	if (!deadline_ns)
		return LONG_MAX;
	uint64_t now = scache_now_ns(NULL);
	return now >= deadline_ns ? 0 : (long)((deadline_ns - now + 999999) / 1000000);
}

static void call_many(aws_client *c, const char *op, json_object *const *reqs, size_t n,
                      aws_result *res, long timeout_ms, int retry_timeouts, uint64_t deadline_ns);

void aws_call_many(aws_client *c, const char *op, json_object *const *reqs, size_t n,
                   aws_result *res)
{
	call_many(c, op, reqs, n, res, 0, 1, 0);
}

void aws_call_many_opts(aws_client *c, const char *op, json_object *const *reqs, size_t n,
                        aws_result *res, long timeout_ms, int retry_timeouts)
{
	call_many(c, op, reqs, n, res, timeout_ms, retry_timeouts, 0);
}

void aws_call_until(aws_client *c, const char *op, json_object *req, aws_result *res,
                    uint64_t deadline_ns)
{
	call_many(c, op, &req, 1, res, 0, 1, deadline_ns);
}

static void call_many(aws_client *c, const char *op, json_object *const *reqs, size_t n,
                      aws_result *res, long timeout_ms, int retry_timeouts, uint64_t deadline_ns)
{
	size_t *todo, m = n;
	CURLcode *cc;

	for (size_t i = 0; i < n; i++)
		memset(&res[i], 0, sizeof res[i]);
	if (!n)
		return;
	todo = malloc(n * sizeof *todo);
	cc = malloc(n * sizeof *cc);
	if (!todo || !cc || pool_reserve(c, n)) {
		for (size_t i = 0; i < n; i++) {
			res[i].err = SCACHE_ENOMEM;
			res[i].fail = AWS_FAIL_OTHER;
			util_fmt(res[i].message, sizeof res[i].message, "%s: out of memory", op);
		}
		free(todo);
		free(cc);
		return;
	}
	for (size_t i = 0; i < n; i++)
		todo[i] = i;
	if (timeout_ms <= 0)
		timeout_ms = c->s.timeout_ms;
	for (unsigned attempt = 0; m; attempt++) {
		size_t keep = 0;
		unsigned wait = 0;
		long left = ms_left(deadline_ns);
		/* the first attempt always goes out, with at least 1 ms */
		run_round(c, op, reqs, todo, m, cc,
		          left < timeout_ms ? (left ? left : 1) : timeout_ms);
		for (size_t k = 0; k < m; k++) {
			if (judge(c, op, c->x[k], cc[k], &res[todo[k]], attempt, retry_timeouts)) {
				unsigned w =
				    aws_backoff_ms(c->s.backoff_base_ms, c->s.backoff_max_ms,
				                   attempt, aws_random());
				if (w > wait)
					wait = w;
				todo[keep++] = todo[k];
			}
		}
		m = keep;
		if (m && (long)wait >= ms_left(deadline_ns))
			break; /* no time left for another attempt: keep the last outcome */
		if (m)
			util_sleep_ms(wait);
	}
	free(todo);
	free(cc);
}

void aws_call(aws_client *c, const char *op, json_object *req, aws_result *res)
{
	aws_call_many(c, op, &req, 1, res);
}
