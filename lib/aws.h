/*
 * aws.h: private interface to the AWS client core (lib/aws.c, and lib/aws_answer.c for
 * reading answers and masking credentials): JSON-over-HTTP calls to an
 * AWS service, signed with SigV4, retried, with credentials kept out of every message.
 *
 * The service is a parameter (aws_service): its signing name, target prefix and content
 * type, and the environment variable of its endpoint. Kinesis (kinesis.h) is the first
 * user; DynamoDB and DynamoDB Streams are meant to be the next. Nothing here is installed
 * or stable. An aws_client is used by one thread at a time (the reader serialises its
 * calls; the publisher keeps a pool of clients, one per publish in flight).
 */
#ifndef SCACHE_AWS_H
#define SCACHE_AWS_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "scache/error.h"

/* An AWS JSON service. All strings static. */
typedef struct aws_service {
	const char *name;          /* signing scope and default host: "kinesis" */
	const char *label;         /* in messages: "Kinesis" */
	const char *target_prefix; /* X-Amz-Target before ".<Op>": "Kinesis_20131202" */
	const char *content_type;  /* "application/x-amz-json-1.1" */
	const char *endpoint_env;  /* "AWS_ENDPOINT_URL_KINESIS", tried before AWS_ENDPOINT_URL */
} aws_service;

/* What the caller configured (strings borrowed; NULL, "" or 0 means "not set"). */
typedef struct aws_config {
	const char *region;
	const char *endpoint;
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;
	long connect_timeout_ms;
	long timeout_ms;
	unsigned max_retries;
	unsigned backoff_base_ms;
	unsigned backoff_max_ms;
	const char *ca_file; /* PEM file of trusted CAs instead of the system's */
} aws_config;

/* Settings resolved from an aws_config and the environment; strings owned. */
typedef struct aws_settings {
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
	char *ca_file; /* NULL: the system's certificate store */
} aws_settings;

/*
 * aws_settings_resolve: fill *out from cfg, then the environment (AWS_REGION,
 * AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
 * svc->endpoint_env, AWS_ENDPOINT_URL, AWS_CA_BUNDLE), then defaults
 * (https://<name>.<region>.amazonaws.com, .cn added in China; 2 s to connect, 10 s a call,
 * 5 retries, backoff 50 ms to 2 s). Explicit keys never take a session token from the
 * environment. On error (SCACHE_ECONFIG naming the missing setting or the unreadable CA
 * file, SCACHE_ENOMEM) *out is left empty. Free with aws_settings_clear.
 */
scache_err aws_settings_resolve(const aws_service *svc, const aws_config *cfg, aws_settings *out,
                                char *errbuf, size_t errlen);
/* aws_settings_copy: a deep copy of src into *dst (empty on SCACHE_ENOMEM). */
scache_err aws_settings_copy(aws_settings *dst, const aws_settings *src);
/* aws_settings_clear: free the strings (the secret and token zeroed first). Accepts NULL. */
void aws_settings_clear(aws_settings *s);

/* Classes of failure, deciding retries and what callers do. */
typedef enum aws_fail {
	AWS_FAIL_NONE = 0,
	AWS_FAIL_THROTTLE,  /* ProvisionedThroughputExceeded, RequestLimitExceeded... */
	AWS_FAIL_SERVER,    /* 5xx */
	AWS_FAIL_TRANSPORT, /* connect, reset, timeout: no HTTP answer */
	AWS_FAIL_EXPIRED,   /* ExpiredIteratorException */
	AWS_FAIL_NOTFOUND,  /* ResourceNotFoundException */
	AWS_FAIL_INVALID,   /* InvalidArgumentException */
	AWS_FAIL_OTHER      /* any other 4xx, or a malformed answer */
} aws_fail;

/* Outcome of one API call (after its retries). */
typedef struct aws_result {
	scache_err err; /* SCACHE_OK, or ETHROTTLED / ESERVICE / ETRANSPORT / ENOMEM */
	aws_fail fail;
	long http_status;   /* 0 when no HTTP answer */
	char name[64];      /* AWS error name without its namespace, or "" */
	char message[256];  /* "<Op> at <endpoint>: <Name>: <message> (HTTP <status>)" or
	                     * "<Op> at <endpoint>: <transport error>"; credentials masked */
	json_object *body;  /* parsed answer on success: the caller puts it */
	unsigned attempts;  /* HTTP calls made for this result */
	unsigned throttled; /* throttling answers among them */
} aws_result;

void aws_result_clear(aws_result *r);

typedef struct aws_client aws_client;

/* aws_client_new: a client of service svc (kept: static), with a deep copy of *settings,
 * and its curl handles. SCACHE_ETRANSPORT when libcurl cannot start, SCACHE_ENOMEM. */
scache_err aws_client_new(const aws_service *svc, const aws_settings *settings, aws_client **out,
                          char *errbuf, size_t errlen);
void aws_client_free(aws_client *c);
const aws_settings *aws_client_settings(const aws_client *c);

/*
 * aws_call: POST one operation `op` (e.g. "ListShards") with body `req` (borrowed),
 * retrying throttling, 5xx and transport failures with full-jitter backoff up to
 * max_retries. *res receives the outcome; res->body must be put by the caller.
 */
void aws_call(aws_client *c, const char *op, json_object *req, aws_result *res);

/*
 * aws_call_many: the same for n requests of operation op at once, concurrently over
 * curl multi (one connection each, kept alive across calls). res has n slots.
 */
void aws_call_many(aws_client *c, const char *op, json_object *const *reqs, size_t n,
                   aws_result *res);

/* aws_call_many with a total timeout of its own per call (0: the configured one), and,
 * when retry_timeouts is 0, no retry of a call that timed out. */
void aws_call_many_opts(aws_client *c, const char *op, json_object *const *reqs, size_t n,
                        aws_result *res, long timeout_ms, int retry_timeouts);

/*
 * aws_call_until: aws_call bounded by deadline_ns (a scache_now_ns() value): each
 * attempt's timeout is cut to the time left, and no retry starts, nor a backoff that would
 * end, after it. The outcome is the last attempt's (a transport timeout when the deadline
 * cut it). With deadline_ns 0, aws_call.
 */
void aws_call_until(aws_client *c, const char *op, json_object *req, aws_result *res,
                    uint64_t deadline_ns);

/* Test hook, NULL outside tests: every finished transfer's libcurl result (a CURLcode)
 * passes through it, so a test can make a transfer end as libcurl may (e.g. with
 * CURLE_OUT_OF_MEMORY). Set it while no call is in flight. */
extern int (*aws_test_transfer_result)(int curl_code);

/* aws_client_redact: text into dst (dstlen bytes) with the client's credentials masked,
 * then cut to fit (see aws_redact); for messages built from an answer. */
void aws_client_redact(const aws_client *c, char *dst, size_t dstlen, const char *text);

/* Total HTTP calls and throttling answers since creation. */
uint64_t aws_client_calls(const aws_client *c);
uint64_t aws_client_throttled(const aws_client *c);
/* New connections opened since creation (connection reuse keeps it at one per shard). */
uint64_t aws_client_connects(const aws_client *c);
/* The endpoint as messages show it (see aws_endpoint_shown). */
const char *aws_client_endpoint(const aws_client *c);

/* ---- pure helpers (unit-tested) ----------------------------------------------- */

/* The endpoint as messages show it, without any user:password@; returns buf. */
const char *aws_endpoint_shown(const char *endpoint, char *buf, size_t len);

/* "aws:amz:<region>:<service name>" into buf; returns buf. */
const char *aws_sigv4_param(const aws_service *svc, const char *region, char *buf, size_t len);

/* The request headers of operation op, as a curl_slist (free with curl_slist_free_all):
 * Content-Type, X-Amz-Target, X-Amz-Security-Token when a token is given, and an empty
 * Expect. Returns NULL on allocation failure. */
struct curl_slist *aws_headers(const aws_service *svc, const char *op, const char *session_token);

/*
 * aws_parse_error: read an error answer {"__type":"ns#Name","message":"..."} (also
 * "Message", and "code" for some gateways) into name (namespace stripped) and msg. A body
 * that is not such JSON leaves name "" and msg a printable excerpt of the body.
 */
void aws_parse_error(const char *body, size_t len, char *name, size_t namelen, char *msg,
                     size_t msglen);

/* aws_parse_error_text: the error name of an answer into name, and its message text,
 * neither cut nor masked: *text points into the returned object (put it), or into body
 * when the answer is not a JSON object (then at most excerpt bytes of it). */
json_object *aws_parse_error_text(const char *body, size_t len, char *name, size_t namelen,
                                  size_t excerpt, const char **text, size_t *textlen);

/*
 * aws_redact: copy text[0..len) into dst (dstlen bytes, always NUL-terminated when
 * dstlen > 0), masking credentials first and cutting to fit only then, so a cut never
 * shows part of one and masked credentials take little room: each occurrence of secret or
 * token (either may be NULL) becomes "****", and each occurrence of key_id "****" followed
 * by its last 4 characters (all masked when it has 8 or fewer). A '/' of a credential
 * also matches "\/" (JSON's escape). A start of any of them (4 characters or more) cut
 * off at the end of text is masked too, where a word starts (not after a letter or
 * digit). Credentials shorter than AWS_REDACT_MIN are not real ones (AWS key
 * IDs have 16 characters or more, secrets 40) and are left alone: masking "y" would
 * garble every word with a y. Control bytes become '?'. Returns dst.
 */
#define AWS_REDACT_MIN 8
char *aws_redact(char *dst, size_t dstlen, const char *text, size_t len, const char *key_id,
                 const char *secret, const char *token);

/* aws_classify: the failure class of an HTTP status and error name. */
aws_fail aws_classify(long http_status, const char *name);

/* aws_backoff_ms: full jitter: a value in [0, min(max_ms, base_ms * 2^attempt)],
 * chosen by rnd (any 64 random bits). attempt counts from 0. */
unsigned aws_backoff_ms(unsigned base_ms, unsigned max_ms, unsigned attempt, uint64_t rnd);

/* aws_random: 64 random bits (OpenSSL RAND_bytes, falling back to a mixed clock). */
uint64_t aws_random(void);

/* Small JSON accessors for answers: NULL when absent or of another type. */
const char *aws_json_str(json_object *o, const char *key);
json_object *aws_json_array(json_object *o, const char *key);

#endif
