/*
 * kinesis.h: private interface to the Kinesis Data Streams JSON 1.1 API (lib/kinesis.c):
 * the service as the AWS client core (aws.h) sees it, the settings of one stream, and
 * every request builder and answer parser the reader and the publisher use.
 *
 * Used by the reader, the publisher, the shard lineage, the tests and the benchmarks.
 * Nothing here is installed or stable.
 */
#ifndef SCACHE_KINESIS_H
#define SCACHE_KINESIS_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "aws.h"
#include "scache/error.h"
#include "scache/stream.h"
#include "util.h"

/* Kinesis for the AWS client core: "kinesis", Kinesis_20131202, JSON 1.1,
 * AWS_ENDPOINT_URL_KINESIS. */
extern const aws_service kinesis_service;

/* The settings of one stream, resolved from scache_stream_config; strings owned. */
typedef struct kinesis_settings {
	aws_settings aws; /* region, endpoint, credentials, timeouts, retries */
	char *stream_name;
	unsigned list_shards_interval_ms;  /* [60000] */
	unsigned stream_check_interval_ms; /* [10000], at least 1000 */
	scache_record_format format;
	long publish_timeout_ms; /* [5000] */
	/* DynamoDB tables whose change records the reader applies (strings owned) */
	scache_dynamodb_table *dynamodb_tables;
	size_t dynamodb_ntables;
} kinesis_settings;

/*
 * kinesis_settings_resolve: fill *out from config (may be NULL), the environment and
 * defaults (see aws_settings_resolve). need_stream: whether a missing stream name is an
 * error. The DynamoDB tables are copied and checked (a name and a partition key each,
 * no table twice, a known mode). On error (SCACHE_ECONFIG naming the missing or wrong
 * setting, SCACHE_ENOMEM) *out is left empty. Free with kinesis_settings_clear.
 */
scache_err kinesis_settings_resolve(const scache_stream_config *config, int need_stream,
                                    kinesis_settings *out, char *errbuf, size_t errlen);
/* kinesis_settings_copy: a deep copy (empty on SCACHE_ENOMEM). */
scache_err kinesis_settings_copy(kinesis_settings *dst, const kinesis_settings *src);
void kinesis_settings_clear(kinesis_settings *s);

/* kinesis_client_new: an AWS client for Kinesis with the settings' credentials and
 * endpoint (copied). See aws_client_new. */
scache_err kinesis_client_new(const kinesis_settings *s, aws_client **out, char *errbuf,
                              size_t errlen);

/* Compare two decimal sequence numbers numerically: <0, 0, >0. */
int kinesis_seq_cmp(const char *a, const char *b);

/* ---- requests: new json objects owned by the caller (NULL on allocation failure) -- */

json_object *kinesis_req_stream(const char *stream); /* {"StreamName":...} */
json_object *kinesis_req_list_shards(const char *stream, const char *next_token);
/* type: "LATEST", "TRIM_HORIZON", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER" (seq
 * given) or "AT_TIMESTAMP" (timestamp in seconds since the epoch). */
json_object *kinesis_req_get_shard_iterator(const char *stream, const char *shard, const char *type,
                                            const char *seq, double timestamp);
json_object *kinesis_req_get_records(const char *iterator, int limit);

/* One record of a PutRecords request: data (len bytes, sent base64) and partition key. */
typedef struct kinesis_put_entry {
	const char *data;
	size_t len;
	const char *partition_key;
} kinesis_put_entry;

json_object *kinesis_req_put_records(const char *stream, const kinesis_put_entry *e, size_t n);

/* ---- answers: strings borrowed from the answer's body ------------------------------ */

/* A shard as ListShards describes it. */
typedef struct kinesis_shard {
	const char *id;
	const char *parent;          /* NULL when none */
	const char *adjacent_parent; /* NULL when none */
	const char *starting_seq;
	const char *ending_seq; /* NULL while the shard is open */
} kinesis_shard;

/* kinesis_parse_shards: the Shards of a ListShards answer; *out is malloc'ed (free it).
 * SCACHE_ESERVICE when the answer is malformed, SCACHE_ENOMEM. */
scache_err kinesis_parse_shards(json_object *body, kinesis_shard **out, size_t *n,
                                const char **next_token);

/* DescribeStreamSummary: what the reader uses of it. */
typedef struct kinesis_summary {
	double created;      /* StreamCreationTimestamp, 0 when absent */
	long open_shards;    /* OpenShardCount, -1 when absent */
	int retention_hours; /* RetentionPeriodHours, 0 when absent */
} kinesis_summary;

/* kinesis_parse_summary: body may be NULL (a failed call): then everything is absent. */
void kinesis_parse_summary(json_object *body, kinesis_summary *out);

/* kinesis_parse_iterator: the ShardIterator of a GetShardIterator answer, or NULL. */
const char *kinesis_parse_iterator(json_object *body);

/* A GetRecords answer. */
typedef struct kinesis_records {
	json_object *records; /* the Records array: see kinesis_record_at */
	size_t n;
	int64_t behind;   /* MillisBehindLatest, 0 when absent */
	const char *next; /* NextShardIterator, NULL at the shard's end */
	int children;     /* ChildShards is a non-empty array: the shard's end was reached */
} kinesis_records;

/* kinesis_parse_records: SCACHE_ESERVICE when the answer has no Records array. */
scache_err kinesis_parse_records(json_object *body, kinesis_records *out);

/* kinesis_record_at: record i's Data (base64) and SequenceNumber, each NULL when absent. */
void kinesis_record_at(const kinesis_records *r, size_t i, const char **data, const char **seq);

/* One entry of a PutRecords answer: seq set (and code NULL) when stored. */
typedef struct kinesis_put_outcome {
	const char *seq;
	const char *shard;
	const char *code;    /* ErrorCode */
	const char *message; /* ErrorMessage */
} kinesis_put_outcome;

/* kinesis_parse_put_records: the n entries of a PutRecords answer of n records into
 * out[0..n). SCACHE_ESERVICE when the answer has not one entry per record. */
scache_err kinesis_parse_put_records(json_object *body, size_t n, kinesis_put_outcome *out);

#endif
