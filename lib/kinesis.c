/*
 * kinesis.c: the Kinesis Data Streams JSON 1.1 API over libcurl.
 *
 * Every call is a POST of a JSON body to the endpoint, signed by libcurl itself
 * (CURLOPT_AWS_SIGV4, "aws:amz:<region>:kinesis") with the key pair as user name and
 * password; a session token travels as X-Amz-Security-Token. No HMAC is written here.
 *
 * Design:
 * - One curl multi handle per client and a pool of easy handles, reused across calls:
 *   the multi handle owns the connection cache, so connections stay alive between polls,
 *   and n requests (one per shard) run concurrently instead of one after another.
 * - A call that is throttled, answered with 5xx, or fails in transport is retried with
 *   "full jitter" backoff (a random wait in [0, min(cap, base * 2^attempt)]) up to
 *   max_retries; everything else is final. The outcome carries the AWS error name and
 *   message and the endpoint, never the credentials.
 * - TLS verification is always on; only http and https are allowed, and plain http only
 *   when the endpoint says so. No redirects are followed.
 * - Base64 goes through OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock (libcrypto is linked
 *   for it), and random bits through RAND_bytes.
 */
#include "kinesis.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

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

void kinesis_settings_clear(kinesis_settings *s)
{
	if (!s)
		return;
	free(s->stream_name);
	free(s->region);
	free(s->endpoint);
	free(s->access_key_id);
	if (s->secret_access_key) /* do not leave the secret in freed memory */
		explicit_bzero(s->secret_access_key, strlen(s->secret_access_key));
	free(s->secret_access_key);
	if (s->session_token)
		explicit_bzero(s->session_token, strlen(s->session_token));
	free(s->session_token);
	memset(s, 0, sizeof *s);
}

static scache_err settings_fail(kinesis_settings *out, char *errbuf, size_t errlen, scache_err err,
                                const char *msg)
{
	kinesis_settings_clear(out);
	if (errbuf && errlen)
		kinesis_fmt(errbuf, errlen, "%s", msg);
	return err;
}

scache_err kinesis_settings_resolve(const scache_stream_config *config, int need_stream,
                                    kinesis_settings *out, char *errbuf, size_t errlen)
{
	static const scache_stream_config zero;
	const scache_stream_config *cfg = config ? config : &zero;
	const char *region, *endpoint, *key, *secret, *token;
	char defendpoint[160], msg[320];

	if (!out)
		return SCACHE_EINVAL;
	memset(out, 0, sizeof *out);
	if (errbuf && errlen)
		errbuf[0] = '\0';

	if (need_stream && !(cfg->stream_name && *cfg->stream_name))
		return settings_fail(out, errbuf, errlen, SCACHE_ECONFIG,
		                     "no Kinesis stream name: set stream_name (scachectl: --stream "
		                     "or SCACHE_STREAM)");
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
	endpoint = first_set(cfg->endpoint, env_nonempty("AWS_ENDPOINT_URL_KINESIS"));
	endpoint = first_set(endpoint, env_nonempty("AWS_ENDPOINT_URL"));
	if (!endpoint) {
		kinesis_fmt(defendpoint, sizeof defendpoint, "https://kinesis.%s.amazonaws.com%s",
		            region, strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
		endpoint = defendpoint;
	}
	if (strncmp(endpoint, "https://", 8) != 0 && strncmp(endpoint, "http://", 7) != 0) {
		char shown[201]; /* without user:password@ */
		kinesis_fmt(msg, sizeof msg,
		            "Kinesis endpoint '%s' must start with https:// (or http:// for plain "
		            "HTTP)",
		            kinesis_endpoint_shown(endpoint, shown, sizeof shown));
		return settings_fail(out, errbuf, errlen, SCACHE_ECONFIG, msg);
	}

	if (dup_into(&out->stream_name, cfg->stream_name) || dup_into(&out->region, region) ||
	    dup_into(&out->endpoint, endpoint) || dup_into(&out->access_key_id, key) ||
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
	out->list_shards_interval_ms =
	    cfg->list_shards_interval_ms ? cfg->list_shards_interval_ms : 60000;
	out->format = cfg->format;
	out->publish_timeout_ms = cfg->publish_timeout_ms > 0 ? cfg->publish_timeout_ms : 5000;
	return SCACHE_OK;
}

static scache_err settings_copy(const kinesis_settings *src, kinesis_settings *dst)
{
	*dst = *src;
	dst->stream_name = dst->region = dst->endpoint = NULL;
	dst->access_key_id = dst->secret_access_key = dst->session_token = NULL;
	if (dup_into(&dst->stream_name, src->stream_name) || dup_into(&dst->region, src->region) ||
	    dup_into(&dst->endpoint, src->endpoint) ||
	    dup_into(&dst->access_key_id, src->access_key_id) ||
	    dup_into(&dst->secret_access_key, src->secret_access_key) ||
	    dup_into(&dst->session_token, src->session_token)) {
		kinesis_settings_clear(dst);
		return SCACHE_ENOMEM;
	}
	return SCACHE_OK;
}

/* ---- pure helpers -------------------------------------------------------------- */

void kinesis_fmt(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;
	if (!dst || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
}

const char *kinesis_endpoint_shown(const char *endpoint, char *buf, size_t len)
{
	const char *rest = strstr(endpoint, "://");
	size_t scheme = rest ? (size_t)(rest - endpoint) + 3 : 0;
	const char *host = endpoint + scheme;
	/* the user info ends at the last '@' before the path (a password may hold an
	 * unencoded '@', '?' or '#': hide more rather than part of it) */
	const char *slash = strchr(host, '/'), *at = NULL;
	for (const char *p = host; *p && (!slash || p < slash); p++)
		if (*p == '@')
			at = p;
	if (at)
		kinesis_fmt(buf, len, "%.*s%s", (int)scheme, endpoint, at + 1);
	else
		kinesis_fmt(buf, len, "%s", endpoint);
	return buf;
}

const char *kinesis_sigv4_param(const char *region, char *buf, size_t len)
{
	kinesis_fmt(buf, len, "aws:amz:%s:kinesis", region);
	return buf;
}

struct curl_slist *kinesis_headers(const char *op, const char *session_token)
{
	char line[160];
	struct curl_slist *l = NULL, *t;

	kinesis_fmt(line, sizeof line, "X-Amz-Target: Kinesis_20131202.%s", op);
	const char *fixed[] = {"Content-Type: application/x-amz-json-1.1", line, "Expect:"};
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
		kinesis_fmt(h, n, "X-Amz-Security-Token: %s", session_token);
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

const char *kinesis_json_str(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

json_object *kinesis_json_array(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

/* Copy a printable excerpt of s (control bytes become '?'). */
static void printable(char *dst, size_t dstlen, const char *s, size_t len)
{
	size_t j = 0;
	if (!dstlen)
		return;
	for (size_t i = 0; i < len && j + 1 < dstlen; i++) {
		unsigned char ch = (unsigned char)s[i];
		char out = (char)ch;
		if (ch < 0x20 || ch == 0x7f)
			out = '?';
		dst[j++] = out;
	}
	dst[j] = '\0';
}

/* Does a credential of length cl start at text[i..len)? Its length there when it is
 * whole, or cut off by the end of text after at least 4 characters; else 0. */
static size_t credential_at(const char *text, size_t len, size_t i, const char *cred, size_t cl)
{
	size_t n = len - i < cl ? len - i : cl;
	if (!cl || !(n == cl || n >= 4) || memcmp(text + i, cred, n))
		return 0;
	return n;
}

char *kinesis_redact(char *dst, size_t dstlen, const char *text, size_t len, const char *key_id,
                     const char *secret, const char *token)
{
	const char *creds[] = {secret, token, key_id};
	size_t j = 0;

	if (!dstlen)
		return dst;
	for (size_t i = 0; i < len && j + 1 < dstlen;) {
		char mask[16] = "";
		size_t n = 0;
		for (size_t k = 0; k < 3 && !n; k++) {
			size_t cl = creds[k] ? strlen(creds[k]) : 0;
			n = credential_at(text, len, i, creds[k], cl);
			if (n && k == 2 && n == cl && cl > 8) /* the key ID keeps its last 4 */
				kinesis_fmt(mask, sizeof mask, "****%s", creds[k] + cl - 4);
			else if (n)
				kinesis_fmt(mask, sizeof mask, "****");
		}
		if (n) {
			for (const char *m = mask; *m && j + 1 < dstlen; m++)
				dst[j++] = *m;
			i += n;
			continue;
		}
		unsigned char ch = (unsigned char)text[i++];
		dst[j++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	dst[j] = '\0';
	return dst;
}

/* The error name of an answer into name, and its message text, neither cut nor masked:
 * *text points into the returned object (put it), or into body when the answer is not
 * a JSON object (then at most excerpt bytes of it). */
static json_object *parse_error_text(const char *body, size_t len, char *name, size_t namelen,
                                     size_t excerpt, const char **text, size_t *textlen)
{
	json_tokener *tok;
	json_object *o = NULL;
	const char *type;

	if (namelen)
		name[0] = '\0';
	*text = "";
	*textlen = 0;
	if (!body || !len)
		return NULL;
	tok = json_tokener_new();
	if (tok && len <= (size_t)INT32_MAX)
		o = json_tokener_parse_ex(tok, body, (int)len);
	if (tok)
		json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		*text = body;
		*textlen = len < excerpt ? len : excerpt;
		return NULL;
	}
	type = kinesis_json_str(o, "__type");
	if (!type)
		type = kinesis_json_str(o, "code");
	if (type) {
		const char *hash = strrchr(type, '#');
		const char *colon;
		if (hash)
			type = hash + 1;
		colon = strchr(type, ':'); /* "Name:http://internal.amazon.com/..." forms */
		size_t tl = colon ? (size_t)(colon - type) : strlen(type);
		printable(name, namelen, type, tl);
	}
	const char *t = kinesis_json_str(o, "message");
	if (!t)
		t = kinesis_json_str(o, "Message");
	if (t) {
		*text = t;
		*textlen = strlen(t);
	}
	return o;
}

void kinesis_parse_error(const char *body, size_t len, char *name, size_t namelen, char *msg,
                         size_t msglen)
{
	const char *text;
	size_t tl;
	json_object *o = parse_error_text(body, len, name, namelen, 200, &text, &tl);
	printable(msg, msglen, text, tl);
	json_object_put(o);
}

kinesis_fail kinesis_classify(long http_status, const char *name)
{
	if (http_status >= 200 && http_status < 300)
		return KINESIS_FAIL_NONE;
	if (name && *name) {
		if (!strcmp(name, "ProvisionedThroughputExceededException") ||
		    !strcmp(name, "LimitExceededException") ||
		    !strcmp(name, "KMSThrottlingException") || !strcmp(name, "ThrottlingException"))
			return KINESIS_FAIL_THROTTLE;
		if (!strcmp(name, "ExpiredIteratorException"))
			return KINESIS_FAIL_EXPIRED;
		if (!strcmp(name, "ResourceNotFoundException"))
			return KINESIS_FAIL_NOTFOUND;
		if (!strcmp(name, "InvalidArgumentException"))
			return KINESIS_FAIL_INVALID;
	}
	if (http_status >= 500 ||
	    (name && (!strcmp(name, "InternalFailure") || !strcmp(name, "ServiceUnavailable"))))
		return KINESIS_FAIL_SERVER;
	if (http_status == 429)
		return KINESIS_FAIL_THROTTLE;
	return KINESIS_FAIL_OTHER;
}

unsigned kinesis_backoff_ms(unsigned base_ms, unsigned max_ms, unsigned attempt, uint64_t rnd)
{
	uint64_t cap = base_ms;
	for (unsigned i = 0; i < attempt && cap < max_ms; i++)
		cap *= 2;
	if (cap > max_ms)
		cap = max_ms;
	return (unsigned)(rnd % (cap + 1));
}

uint64_t kinesis_random(void)
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

char *kinesis_b64_encode(const unsigned char *data, size_t len, size_t *out_len)
{
	size_t n = 4 * ((len + 2) / 3);
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t done = 0, o = 0;
	/* EVP_EncodeBlock takes an int: go in chunks of a multiple of 3 bytes */
	while (done < len) {
		size_t chunk = len - done;
		if (chunk > (size_t)3 << 20)
			chunk = (size_t)3 << 20;
		int w = EVP_EncodeBlock((unsigned char *)out + o, data + done, (int)chunk);
		o += (size_t)w;
		done += chunk;
	}
	out[o] = '\0';
	assert(o == n);
	if (out_len)
		*out_len = o;
	return out;
}

unsigned char *kinesis_b64_decode(const char *text, size_t len, size_t *out_len)
{
	if (len % 4 != 0)
		return NULL;
	unsigned char *out = malloc(len / 4 * 3 + 1);
	if (!out)
		return NULL;
	size_t done = 0, o = 0;
	while (done < len) {
		size_t chunk = len - done;
		if (chunk > (size_t)4 << 20)
			chunk = (size_t)4 << 20;
		/* only the last chunk may carry padding */
		for (size_t i = 0; i < chunk; i++) {
			unsigned char ch = (unsigned char)text[done + i];
			int ok = isalnum(ch) || ch == '+' || ch == '/' ||
			         (ch == '=' && done + chunk == len && i + 2 >= chunk);
			if (!ok || (ch == '=' && i + 1 < chunk && text[done + i + 1] != '=')) {
				free(out);
				return NULL;
			}
		}
		int w = EVP_DecodeBlock(out + o, (const unsigned char *)text + done, (int)chunk);
		if (w < 0) {
			free(out);
			return NULL;
		}
		o += (size_t)w;
		done += chunk;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes */
	if (len >= 1 && text[len - 1] == '=')
		o--;
	if (len >= 2 && text[len - 2] == '=')
		o--;
	out[o] = '\0';
	if (out_len)
		*out_len = o;
	return out;
}

int kinesis_seq_cmp(const char *a, const char *b)
{
	while (*a == '0' && a[1])
		a++;
	while (*b == '0' && b[1])
		b++;
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	int c = strcmp(a, b);
	return (c > 0) - (c < 0);
}

/* ---- request builders ---------------------------------------------------------- */

static int add_str(json_object *o, const char *key, const char *val)
{
	json_object *v = json_object_new_string(val);
	if (!v)
		return -1;
	if (json_object_object_add(o, key, v)) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int add_int(json_object *o, const char *key, int val)
{
	json_object *v = json_object_new_int(val);
	if (!v)
		return -1;
	if (json_object_object_add(o, key, v)) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

json_object *kinesis_req_stream(const char *stream)
{
	json_object *o = json_object_new_object();
	if (o && add_str(o, "StreamName", stream)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *kinesis_req_list_shards(const char *stream, const char *next_token)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	/* with NextToken the stream name must be left out */
	if ((next_token ? add_str(o, "NextToken", next_token) : add_str(o, "StreamName", stream)) ||
	    add_int(o, "MaxResults", 10000)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *kinesis_req_get_shard_iterator(const char *stream, const char *shard, const char *type,
                                            const char *seq, double timestamp)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	int bad = add_str(o, "StreamName", stream) || add_str(o, "ShardId", shard) ||
	          add_str(o, "ShardIteratorType", type);
	if (!bad && seq &&
	    (!strcmp(type, "AT_SEQUENCE_NUMBER") || !strcmp(type, "AFTER_SEQUENCE_NUMBER")))
		bad = add_str(o, "StartingSequenceNumber", seq);
	if (!bad && !strcmp(type, "AT_TIMESTAMP")) {
		json_object *v = json_object_new_double(timestamp);
		bad = !v || json_object_object_add(o, "Timestamp", v);
		if (bad)
			json_object_put(v); /* not taken by o */
	}
	if (bad) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *kinesis_req_get_records(const char *iterator, int limit)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	if (add_str(o, "ShardIterator", iterator) || (limit > 0 && add_int(o, "Limit", limit))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

scache_err kinesis_parse_shards(json_object *body, kinesis_shard **out, size_t *n,
                                const char **next_token)
{
	json_object *arr = kinesis_json_array(body, "Shards");
	*out = NULL;
	*n = 0;
	if (next_token)
		*next_token = kinesis_json_str(body, "NextToken");
	if (!arr)
		return SCACHE_ESERVICE;
	size_t len = json_object_array_length(arr);
	kinesis_shard *s = calloc(len ? len : 1, sizeof *s);
	if (!s)
		return SCACHE_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(arr, i), *range;
		s[i].id = kinesis_json_str(e, "ShardId");
		s[i].parent = kinesis_json_str(e, "ParentShardId");
		s[i].adjacent_parent = kinesis_json_str(e, "AdjacentParentShardId");
		if (json_object_object_get_ex(e, "SequenceNumberRange", &range)) {
			s[i].starting_seq = kinesis_json_str(range, "StartingSequenceNumber");
			s[i].ending_seq = kinesis_json_str(range, "EndingSequenceNumber");
		}
		if (!s[i].id || !*s[i].id || strlen(s[i].id) >= 64) {
			free(s);
			return SCACHE_ESERVICE;
		}
	}
	*out = s;
	*n = len;
	return SCACHE_OK;
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
	char *resp;
	size_t resp_len, resp_cap;
	int overflow;
	char errbuf[CURL_ERROR_SIZE];
} xfer;

struct kinesis_client {
	kinesis_settings s;
	char sigv4[96];
	char shown[256]; /* the endpoint as messages show it: without user:password@ */
	CURLM *multi;
	xfer **x; /* each transfer stays put: curl holds pointers into it */
	size_t nx;
	uint64_t calls;
	uint64_t throttled;
	uint64_t connects; /* new connections opened (keep-alive keeps this low) */
};

int (*kinesis_test_transfer_result)(int curl_code);

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
	if (x->resp_len + n + 1 > x->resp_cap) {
		size_t cap = x->resp_cap ? x->resp_cap : 4096;
		while (cap < x->resp_len + n + 1)
			cap *= 2;
		if (cap > RESPONSE_MAX) {
			x->overflow = 1;
			return 0;
		}
		char *p = realloc(x->resp, cap);
		if (!p)
			return 0;
		x->resp = p;
		x->resp_cap = cap;
	}
	memcpy(x->resp + x->resp_len, ptr, n);
	x->resp_len += n;
	x->resp[x->resp_len] = '\0';
	return n;
}

static int xfer_setup_static(kinesis_client *c, xfer *x)
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
	free(x->resp);
	memset(x, 0, sizeof *x);
}

/* Make sure the pool holds n transfers. */
static int pool_reserve(kinesis_client *c, size_t n)
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

scache_err kinesis_client_new(const kinesis_settings *settings, kinesis_client **out, char *errbuf,
                              size_t errlen)
{
	kinesis_client *c;

	if (!settings || !out)
		return SCACHE_EINVAL;
	*out = NULL;
	pthread_once(&curl_once, init_curl);
	if (curl_init_rc != CURLE_OK) {
		if (errbuf && errlen)
			kinesis_fmt(errbuf, errlen, "libcurl initialisation failed: %s",
			            curl_easy_strerror(curl_init_rc));
		return SCACHE_ETRANSPORT;
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return SCACHE_ENOMEM;
	if (settings_copy(settings, &c->s)) {
		free(c);
		return SCACHE_ENOMEM;
	}
	kinesis_sigv4_param(c->s.region, c->sigv4, sizeof c->sigv4);
	kinesis_endpoint_shown(c->s.endpoint, c->shown, sizeof c->shown);
	c->multi = curl_multi_init();
	if (!c->multi || pool_reserve(c, 1)) {
		kinesis_client_free(c);
		if (errbuf && errlen)
			kinesis_fmt(errbuf, errlen, "cannot create curl handles");
		return SCACHE_ENOMEM;
	}
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
	*out = c;
	return SCACHE_OK;
}

void kinesis_client_free(kinesis_client *c)
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
	kinesis_settings_clear(&c->s);
	free(c);
}

const char *kinesis_client_endpoint(const kinesis_client *c)
{
	return c->shown;
}

const kinesis_settings *kinesis_client_settings(const kinesis_client *c)
{
	return &c->s;
}

uint64_t kinesis_client_calls(const kinesis_client *c)
{
	return c->calls;
}

uint64_t kinesis_client_connects(const kinesis_client *c)
{
	return c->connects;
}

uint64_t kinesis_client_throttled(const kinesis_client *c)
{
	return c->throttled;
}

void kinesis_result_clear(kinesis_result *r)
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

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* text into dst with the client's credentials masked, then cut to fit. */
static void redact_into(const kinesis_client *c, char *dst, size_t dstlen, const char *text,
                        size_t len)
{
	kinesis_redact(dst, dstlen, text, len, c->s.access_key_id, c->s.secret_access_key,
	               c->s.session_token);
}

void kinesis_client_redact(const kinesis_client *c, char *dst, size_t dstlen, const char *text)
{
	redact_into(c, dst, dstlen, text ? text : "", text ? strlen(text) : 0);
}

/* Judge one finished transfer into res; returns 1 if it should be retried. */
static int judge(kinesis_client *c, const char *op, xfer *x, CURLcode cc, kinesis_result *res,
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
		res->fail = x->overflow ? KINESIS_FAIL_OTHER : KINESIS_FAIL_TRANSPORT;
		res->http_status = 0;
		res->name[0] = '\0';
		kinesis_fmt(full, sizeof full, "%s at %s: %s%s%s", op, c->shown,
		            x->overflow ? "answer too large" : curl_easy_strerror(cc),
		            x->errbuf[0] ? ": " : "", x->errbuf);
		kinesis_client_redact(c, res->message, sizeof res->message, full);
		return res->fail == KINESIS_FAIL_TRANSPORT && transport_retryable(cc) &&
		       (retry_timeouts || cc != CURLE_OPERATION_TIMEDOUT) &&
		       attempt < c->s.max_retries;
	}
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	res->http_status = status;
	if (status >= 200 && status < 300) {
		json_tokener *tok = json_tokener_new();
		json_object *o = NULL;
		if (x->resp_len == 0) /* CreateStream, DeleteStream...: an empty answer */
			o = json_object_new_object();
		else if (tok && x->resp_len <= (size_t)INT32_MAX)
			o = json_tokener_parse_ex(tok, x->resp, (int)x->resp_len);
		if (tok)
			json_tokener_free(tok);
		if (!o || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			res->err = SCACHE_ESERVICE;
			res->fail = KINESIS_FAIL_OTHER;
			kinesis_fmt(res->message, sizeof res->message,
			            "%s at %s: HTTP %ld with an answer that is not a JSON object",
			            op, c->shown, status);
			return 0;
		}
		res->body = o;
		res->err = SCACHE_OK;
		res->fail = KINESIS_FAIL_NONE;
		res->name[0] = '\0';
		res->message[0] = '\0';
		return 0;
	}
	/* An answer may quote the signed request's headers: mask its whole text, then cut
	 * it; the error name comes first, so a long message cannot push it out. */
	const char *text;
	size_t tl;
	json_object *eo =
	    parse_error_text(x->resp, x->resp_len, name, sizeof name, 4096, &text, &tl);
	redact_into(c, msg, sizeof msg, text, tl);
	json_object_put(eo);
	kinesis_client_redact(c, res->name, sizeof res->name, name);
	res->fail = kinesis_classify(status, res->name);
	kinesis_fmt(full, sizeof full, "%s at %s: %s%s%s (HTTP %ld)", op, c->shown,
	            res->name[0] ? res->name : "error", msg[0] ? ": " : "", msg, status);
	kinesis_client_redact(c, res->message, sizeof res->message, full);
	if (res->fail == KINESIS_FAIL_THROTTLE) {
		res->throttled++;
		c->throttled++;
		res->err = SCACHE_ETHROTTLED;
	} else {
		res->err = SCACHE_ESERVICE;
	}
	return (res->fail == KINESIS_FAIL_THROTTLE || res->fail == KINESIS_FAIL_SERVER) &&
	       attempt < c->s.max_retries;
}

/* Run one round of transfers for the indexes in todo[0..m). */
static void run_round(kinesis_client *c, const char *op, json_object *const *reqs,
                      const size_t *todo, size_t m, CURLcode *cc, long timeout_ms)
{
	int running = 0;

	for (size_t k = 0; k < m; k++) {
		xfer *x = c->x[k];
		size_t len = 0;
		const char *body = json_object_to_json_string_length(
		    reqs[todo[k]], JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
		x->resp_len = 0;
		x->overflow = 0;
		x->errbuf[0] = '\0';
		headers_free(x->hdrs);
		x->hdrs = kinesis_headers(op, c->s.session_token);
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
		cc[k] = kinesis_test_transfer_result
		            ? (CURLcode)kinesis_test_transfer_result(msg->data.result)
		            : msg->data.result;
	}
	for (size_t k = 0; k < m; k++) {
		if (c->x[k]->state != XFER_IDLE)
			curl_multi_remove_handle(c->multi, c->x[k]->h);
		c->x[k]->state = XFER_IDLE;
	}
}

uint64_t kinesis_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds left until deadline_ns (0: none, LONG_MAX), at least 0. */
static long ms_left(uint64_t deadline_ns)
{
	if (!deadline_ns)
		return LONG_MAX;
	uint64_t now = kinesis_now_ns();
	return now >= deadline_ns ? 0 : (long)((deadline_ns - now + 999999) / 1000000);
}

static void call_many(kinesis_client *c, const char *op, json_object *const *reqs, size_t n,
                      kinesis_result *res, long timeout_ms, int retry_timeouts,
                      uint64_t deadline_ns);

void kinesis_call_many(kinesis_client *c, const char *op, json_object *const *reqs, size_t n,
                       kinesis_result *res)
{
	call_many(c, op, reqs, n, res, 0, 1, 0);
}

void kinesis_call_many_opts(kinesis_client *c, const char *op, json_object *const *reqs, size_t n,
                            kinesis_result *res, long timeout_ms, int retry_timeouts)
{
	call_many(c, op, reqs, n, res, timeout_ms, retry_timeouts, 0);
}

void kinesis_call_until(kinesis_client *c, const char *op, json_object *req, kinesis_result *res,
                        uint64_t deadline_ns)
{
	call_many(c, op, &req, 1, res, 0, 1, deadline_ns);
}

static void call_many(kinesis_client *c, const char *op, json_object *const *reqs, size_t n,
                      kinesis_result *res, long timeout_ms, int retry_timeouts,
                      uint64_t deadline_ns)
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
			res[i].fail = KINESIS_FAIL_OTHER;
			kinesis_fmt(res[i].message, sizeof res[i].message, "%s: out of memory", op);
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
				    kinesis_backoff_ms(c->s.backoff_base_ms, c->s.backoff_max_ms,
				                       attempt, kinesis_random());
				if (w > wait)
					wait = w;
				todo[keep++] = todo[k];
			}
		}
		m = keep;
		if (m && (long)wait >= ms_left(deadline_ns))
			break; /* no time left for another attempt: keep the last outcome */
		if (m)
			sleep_ms(wait);
	}
	free(todo);
	free(cc);
}

void kinesis_call(kinesis_client *c, const char *op, json_object *req, kinesis_result *res)
{
	kinesis_call_many(c, op, &req, 1, res);
}
