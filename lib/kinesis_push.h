/*
 * kinesis_push.h: private interface to Kinesis enhanced fan-out (lib/kinesis_push.c):
 * the consumer's lifecycle (DescribeStreamSummary for the stream's ARN,
 * DescribeStreamConsumer, RegisterStreamConsumer, waiting for ACTIVE,
 * DeregisterStreamConsumer) and one SubscribeToShard call as a streaming transfer whose
 * event-stream body (eventstream.h) is decoded as it arrives. The push source
 * (push_source.c) drives many subscriptions over one curl multi handle.
 *
 * What the API reference says, and these follow (pinned in tests/test_push_live.c):
 *   - RegisterStreamConsumer {StreamARN, ConsumerName} answers {Consumer: {ConsumerName,
 *     ConsumerARN, ConsumerStatus CREATING|DELETING|ACTIVE, ConsumerCreationTimestamp}};
 *     up to 20 consumers per stream (50 for On-demand Advantage streams), 5 TPS per
 *     account, at most 5 consumers CREATING at once (else LimitExceededException).
 *   - DescribeStreamConsumer {StreamARN, ConsumerName} (or {ConsumerARN}) answers
 *     {ConsumerDescription: {..., StreamARN}}.
 *   - SubscribeToShard {ConsumerARN, ShardId, StartingPosition: {Type: AT_SEQUENCE_NUMBER |
 *     AFTER_SEQUENCE_NUMBER | TRIM_HORIZON | LATEST | AT_TIMESTAMP, SequenceNumber,
 *     Timestamp}} over HTTP/2; events for up to 5 minutes; one call per second per
 *     consumer and shard; another call within 5 s of a successful one gets
 *     ResourceInUseException. Each SubscribeToShardEvent has Records,
 *     ContinuationSequenceNumber (where to resume: AT_ or AFTER_SEQUENCE_NUMBER),
 *     MillisBehindLatest (0: caught up) and, at the shard's end, ChildShards.
 */
#ifndef SCACHE_KINESIS_PUSH_H
#define SCACHE_KINESIS_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "aws.h"
#include "eventstream.h"
#include "strbuf.h"

/* A registered consumer. */
typedef struct push_consumer {
	char stream_arn[256];
	char name[129];
	char arn[512];
	char status[16]; /* ACTIVE, CREATING, DELETING */
} push_consumer;

/*
 * push_consumer_get: the consumer `name` of stream `stream`, registered when missing,
 * waited for until ACTIVE (polling DescribeStreamConsumer), all before deadline_ns (a
 * scache_now_ns() time). SCACHE_OK with *out ACTIVE; SCACHE_ETIMEOUT (still CREATING or
 * DELETING, or no answer: errbuf says which); else the failure of the call (res_name
 * receives the AWS error name, e.g. "LimitExceededException", "" for a transport error)
 * with errbuf saying which call failed. *calls counts the calls made.
 */
scache_err push_consumer_get(aws_client *c, const char *stream, const char *name,
                             uint64_t deadline_ns, push_consumer *out, char *res_name,
                             size_t res_name_len, char *errbuf, size_t errlen);

/* push_consumer_deregister: DeregisterStreamConsumer {ConsumerARN}. */
scache_err push_consumer_deregister(aws_client *c, const char *consumer_arn, char *errbuf,
                                    size_t errlen);

/* HTTP versions a subscription may use. */
typedef enum push_http {
	PUSH_HTTP2 = 0, /* AWS's: h2 over TLS (ALPN), h2c with prior knowledge over http:// */
	PUSH_HTTP1      /* HTTP/1.1 (chunked): what some emulators and proxies speak */
} push_http;

/* Told each SubscribeToShardEvent: its parsed JSON payload (borrowed for the call) and
 * when it was received (scache_now_ns). */
typedef void (*push_event_fn)(void *arg, json_object *event, uint64_t received_ns);

/* One SubscribeToShard call. Zero it, then push_sub_init. */
typedef struct push_sub {
	CURL *h;
	struct curl_slist *hdrs;
	char *body;
	es_decoder dec;
	push_event_fn on_event;
	void *arg;
	long status;   /* HTTP status, once the answer began */
	int stream;    /* the answer is an event stream */
	strbuf answer; /* an answer that is not (an error's JSON), at most 16 KiB */
	char exc[64];  /* the name of an exception or error sent in the stream */
	char exc_msg[256];
	uint64_t events;       /* SubscribeToShardEvents received */
	uint64_t bytes;        /* body bytes received */
	uint64_t last_byte_ns; /* when the last body bytes came */
	int initial_response;  /* an initial-response event came */
	char bad[256];         /* a framing or JSON error: the stream is dropped */
	char errbuf[CURL_ERROR_SIZE];
} push_sub;

/*
 * push_sub_init: prepare the easy handle of a SubscribeToShard call through client c's
 * settings (endpoint, credentials, signing, timeouts: no total timeout, the stream is
 * long) for consumer_arn and shard, from position type ("LATEST", "TRIM_HORIZON",
 * "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER" with seq, "AT_TIMESTAMP" with ts in
 * seconds). The caller adds s->h to its multi handle. 0, or -1 when out of memory.
 */
int push_sub_init(push_sub *s, aws_client *c, const char *consumer_arn, const char *shard,
                  const char *type, const char *seq, double ts, push_http http, push_event_fn fn,
                  void *arg);

/* The request body push_sub_init sends (for tests): malloc'ed JSON text. */
char *push_sub_request(const char *consumer_arn, const char *shard, const char *type,
                       const char *seq, double ts);

/* How a subscription ended. */
typedef enum push_end {
	PUSH_END_CLEAN = 0, /* the service closed the stream between messages (renewal due) */
	PUSH_END_TRANSPORT, /* no answer, a connection dropped (mid-message too), a timeout */
	PUSH_END_REFUSED,   /* an error answer, or an exception in the stream: see name */
	PUSH_END_BAD        /* a malformed stream (framing, JSON) */
} push_end;

/* push_sub_end: classify a finished (or cut) transfer whose libcurl result was cc:
 * the kind, the AWS error name (for REFUSED) and a message. */
push_end push_sub_end(push_sub *s, CURLcode cc, char *name, size_t namelen, char *msg,
                      size_t msglen);

/* push_sub_free: free the handle (removed from any multi by the caller first). */
void push_sub_free(push_sub *s);

#endif
