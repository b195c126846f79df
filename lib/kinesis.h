/*
 * kinesis.h: private interface to the Kinesis Data Streams JSON 1.1 API (lib/kinesis.c).
 *
 * Used by the reader, the publisher, scachectl, the tests and the benchmarks. Nothing
 * here is installed or stable. Every function documents ownership; a kinesis_client is
 * used by one thread at a time (the reader serialises its calls; the publisher keeps a
 * pool of clients, one per publish in flight).
 */
#ifndef SCACHE_KINESIS_H
#define SCACHE_KINESIS_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "scache/error.h"
#include "scache/stream.h"

/* Settings resolved from scache_stream_config and the environment; strings owned. */
typedef struct kinesis_settings {
	char *stream_name;
	char *region;
	char *endpoint; /* scheme://host[:port], no trailing slash */
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL when none */
	long connect_timeout_ms;
	long timeout_ms;
	unsigned max_retries;
	unsigned backoff_base_ms;
	unsigned backoff_max_ms;
	unsigned list_shards_interval_ms;
	scache_record_format format;
	long publish_timeout_ms;
} kinesis_settings;

/*
 * kinesis_settings_resolve: fill *out from config (may be NULL), then the environment
 * (AWS_REGION, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL), then defaults.
 * need_stream: whether a missing stream name is an error. On error (SCACHE_ECONFIG
 * naming the missing setting, SCACHE_ENOMEM) *out is left empty. Free with
 * kinesis_settings_clear.
 */
scache_err kinesis_settings_resolve(const scache_stream_config *config, int need_stream,
                                    kinesis_settings *out, char *errbuf, size_t errlen);
void kinesis_settings_clear(kinesis_settings *s);

/* Classes of failure, deciding retries and what the reader does. */
typedef enum kinesis_fail {
	KINESIS_FAIL_NONE = 0,
	KINESIS_FAIL_THROTTLE,  /* ProvisionedThroughputExceeded, LimitExceeded, KMSThrottling */
	KINESIS_FAIL_SERVER,    /* 5xx */
	KINESIS_FAIL_TRANSPORT, /* connect, reset, timeout: no HTTP answer */
	KINESIS_FAIL_EXPIRED,   /* ExpiredIteratorException */
	KINESIS_FAIL_NOTFOUND,  /* ResourceNotFoundException */
	KINESIS_FAIL_INVALID,   /* InvalidArgumentException */
	KINESIS_FAIL_OTHER      /* any other 4xx, or a malformed answer */
} kinesis_fail;

/* Outcome of one API call (after its retries). */
typedef struct kinesis_result {
	scache_err err; /* SCACHE_OK, or ETHROTTLED / ESERVICE / ETRANSPORT / ENOMEM */
	kinesis_fail fail;
	long http_status;   /* 0 when no HTTP answer */
	char name[64];      /* AWS error name without its namespace, or "" */
	char message[256];  /* "<Op> at <endpoint>: <Name>: <message> (HTTP <status>)" or
	                     * "<Op> at <endpoint>: <transport error>"; credentials masked */
	json_object *body;  /* parsed answer on success: the caller puts it */
	unsigned attempts;  /* HTTP calls made for this result */
	unsigned throttled; /* throttling answers among them */
} kinesis_result;

void kinesis_result_clear(kinesis_result *r);

typedef struct kinesis_client kinesis_client;

/* kinesis_client_new: copy *settings (deep) and prepare curl handles. */
scache_err kinesis_client_new(const kinesis_settings *settings, kinesis_client **out, char *errbuf,
                              size_t errlen);
void kinesis_client_free(kinesis_client *c);
const kinesis_settings *kinesis_client_settings(const kinesis_client *c);

/*
 * kinesis_call: POST one operation `op` (e.g. "ListShards") with body `req` (borrowed),
 * retrying throttling, 5xx and transport failures with full-jitter backoff up to
 * max_retries. *res receives the outcome; res->body must be put by the caller.
 */
void kinesis_call(kinesis_client *c, const char *op, json_object *req, kinesis_result *res);

/*
 * kinesis_call_many: the same for n requests of operation op at once, concurrently over
 * curl multi (one connection each, kept alive across calls). res has n slots.
 */
void kinesis_call_many(kinesis_client *c, const char *op, json_object *const *reqs, size_t n,
                       kinesis_result *res);

/*
 * kinesis_call_until: kinesis_call bounded by deadline_ns (a kinesis_now_ns() value):
 * each attempt's timeout is cut to the time left, and no retry starts, nor a backoff that
 * would end, after it. The outcome is the last attempt's (a transport timeout when the
 * deadline cut it). With deadline_ns 0, kinesis_call.
 */
void kinesis_call_until(kinesis_client *c, const char *op, json_object *req, kinesis_result *res,
                        uint64_t deadline_ns);

/* CLOCK_MONOTONIC in nanoseconds, for deadlines. */
uint64_t kinesis_now_ns(void);

/* kinesis_call_many with a total timeout of its own per call (0: the configured one),
 * and, when retry_timeouts is 0, no retry of a call that timed out. */
void kinesis_call_many_opts(kinesis_client *c, const char *op, json_object *const *reqs, size_t n,
                            kinesis_result *res, long timeout_ms, int retry_timeouts);

/* Test hook, NULL outside tests: every finished transfer's libcurl result (a CURLcode)
 * passes through it, so a test can make a transfer end as libcurl may (e.g. with
 * CURLE_OUT_OF_MEMORY). Set it while no call is in flight. */
extern int (*kinesis_test_transfer_result)(int curl_code);

/* kinesis_client_redact: text into dst (dstlen bytes) with the client's credentials
 * masked, then cut to fit (see kinesis_redact); for messages built from an answer. */
void kinesis_client_redact(const kinesis_client *c, char *dst, size_t dstlen, const char *text);

/* Total HTTP calls and throttling answers since creation. */
uint64_t kinesis_client_calls(const kinesis_client *c);
uint64_t kinesis_client_throttled(const kinesis_client *c);
/* New connections opened since creation (connection reuse keeps it at one per shard). */
uint64_t kinesis_client_connects(const kinesis_client *c);

/* ---- pure helpers (unit-tested) ----------------------------------------------- */

/* The endpoint as messages show it, without any user:password@; returns buf. */
const char *kinesis_endpoint_shown(const char *endpoint, char *buf, size_t len);
const char *kinesis_client_endpoint(const kinesis_client *c);

/* "aws:amz:<region>:kinesis" into buf; returns buf. */
const char *kinesis_sigv4_param(const char *region, char *buf, size_t len);

/* The request headers of operation op, as a curl_slist (free with curl_slist_free_all):
 * Content-Type, X-Amz-Target, X-Amz-Security-Token when a token is given, and an empty
 * Expect. Returns NULL on allocation failure. */
struct curl_slist *kinesis_headers(const char *op, const char *session_token);

/*
 * kinesis_parse_error: read an error answer {"__type":"ns#Name","message":"..."} (also
 * "Message", and "code" for some gateways) into name (namespace stripped) and msg. A body
 * that is not such JSON leaves name "" and msg a printable excerpt of the body.
 */
void kinesis_parse_error(const char *body, size_t len, char *name, size_t namelen, char *msg,
                         size_t msglen);

/*
 * kinesis_redact: copy text[0..len) into dst (dstlen bytes, always NUL-terminated when
 * dstlen > 0), masking credentials first and cutting to fit only then, so a cut never
 * shows part of one and masked credentials take little room: each occurrence of secret or
 * token (either may be NULL) becomes "****", and each occurrence of key_id "****" followed
 * by its last 4 characters (all masked when it has 8 or fewer). A start of any of them
 * (4 characters or more) cut off at the end of text is masked too. Control bytes become
 * '?'. Returns dst.
 */
char *kinesis_redact(char *dst, size_t dstlen, const char *text, size_t len, const char *key_id,
                     const char *secret, const char *token);

/* kinesis_classify: the failure class of an HTTP status and error name. */
kinesis_fail kinesis_classify(long http_status, const char *name);

/* kinesis_backoff_ms: full jitter: a value in [0, min(max_ms, base_ms * 2^attempt)],
 * chosen by rnd (any 64 random bits). attempt counts from 0. */
unsigned kinesis_backoff_ms(unsigned base_ms, unsigned max_ms, unsigned attempt, uint64_t rnd);

/* kinesis_random: 64 random bits (OpenSSL RAND_bytes, falling back to a mixed clock). */
uint64_t kinesis_random(void);

/* Base64 (standard alphabet, padded) via OpenSSL EVP. Results are malloc'ed and
 * NUL-terminated; NULL on allocation failure or (decode) invalid input. */
char *kinesis_b64_encode(const unsigned char *data, size_t len, size_t *out_len);
unsigned char *kinesis_b64_decode(const char *text, size_t len, size_t *out_len);

/* Compare two decimal sequence numbers numerically: <0, 0, >0. */
int kinesis_seq_cmp(const char *a, const char *b);

/* Request builders: new json objects owned by the caller (NULL on allocation failure). */
json_object *kinesis_req_list_shards(const char *stream, const char *next_token);
/* type: "LATEST", "TRIM_HORIZON", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER" (seq
 * given) or "AT_TIMESTAMP" (timestamp in seconds since the epoch). */
json_object *kinesis_req_get_shard_iterator(const char *stream, const char *shard, const char *type,
                                            const char *seq, double timestamp);
json_object *kinesis_req_get_records(const char *iterator, int limit);
json_object *kinesis_req_stream(const char *stream); /* {"StreamName":...} */

/* A shard as ListShards describes it (strings point into the answer). */
typedef struct kinesis_shard {
	const char *id;
	const char *parent;          /* NULL when none */
	const char *adjacent_parent; /* NULL when none */
	const char *starting_seq;
	const char *ending_seq; /* NULL while the shard is open */
} kinesis_shard;

/* kinesis_parse_shards: the Shards of a ListShards answer; *out is malloc'ed (free it),
 * its strings borrowed from body. SCACHE_ESERVICE when the answer is malformed. */
scache_err kinesis_parse_shards(json_object *body, kinesis_shard **out, size_t *n,
                                const char **next_token);

/* snprintf for messages that may be cut short (always NUL-terminated when len > 0). */
void kinesis_fmt(char *dst, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Small JSON accessors: NULL / 0 when absent or of another type. */
const char *kinesis_json_str(json_object *o, const char *key);
json_object *kinesis_json_array(json_object *o, const char *key);

#endif
