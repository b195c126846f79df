/*
 * dynamodb.h: caching Amazon DynamoDB items, kept coherent by the table's own change
 * records.
 *
 * Two halves, usable apart:
 *   - read-aside GetItem (scache_dynamodb_get_item): a hit returns the cached item, a
 *     miss runs GetItem (strongly consistent), caches the item as plain JSON and returns
 *     it, with scache_get_or_load's guarantees (one loader per ID, the stale-add guard);
 *   - change records: with Kinesis Data Streams for DynamoDB, the table writes a record
 *     per insert, update and delete into a Kinesis stream. Name the table in the stream
 *     configuration (scache_stream_config.dynamodb_tables, stream.h) and the reader maps
 *     each record to the item's data ID and invalidates it, or stores its new image
 *     (refresh), with no scache_invalidate in the application.
 *
 * Both name an item the same way: source (default "dynamodb.<table>") and an id made of
 * the key attributes' values as text: a string as it is, a number in canonical decimal
 * form ("36", "36.0" and "3.6E1" are the same item), binary as base64; a composite key
 * joins partition and sort key with '|', each part escaped first ('\' -> "\\",
 * '|' -> "\|"), so ("a|b", "c") is the id "a\|b|c".
 *
 * Items become plain JSON: {"id":{"S":"7"},"age":{"N":"36"}} -> {"id":"7","age":36}.
 * S: string; N: a JSON number where that is exact (integers within +-(2^53-1), decimals a
 * double gives back exactly), else a string of its canonical digits; B: base64 string;
 * BOOL: true/false; NULL: null; M: object; L: array; SS, NS, BS: arrays.
 */
#ifndef SCACHE_DYNAMODB_H
#define SCACHE_DYNAMODB_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "middleware.h"

#ifdef __cplusplus
extern "C" {
#endif

/* scache_dynamodb_mode and scache_dynamodb_table are in stream.h (included by middleware.h). */

typedef struct scache_dynamodb scache_dynamodb;

/* Configuration of the GetItem client. Zero-initialise it; zero means the default. */
typedef struct scache_dynamodb_config {
	const char *region;            /* [AWS_REGION, then AWS_DEFAULT_REGION] */
	const char *endpoint;          /* [AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL, then
	                                  https://dynamodb.<region>.amazonaws.com] */
	const char *access_key_id;     /* [AWS_ACCESS_KEY_ID]; with the secret and token: */
	const char *secret_access_key; /* [AWS_SECRET_ACCESS_KEY] */
	const char *session_token;     /* [AWS_SESSION_TOKEN unless keys are given here] */
	long connect_timeout_ms;       /* [2000] */
	long timeout_ms;               /* [10000] per HTTP call */
	unsigned max_retries;          /* [5] retries of throttling, 5xx, connection errors */
	const scache_dynamodb_table *tables; /* the tables read through this client */
	size_t ntables;
	uint64_t negative_ttl_ms; /* [0: never] cache "no such item" for this long */
} scache_dynamodb_config;

/*
 * scache_dynamodb_new: a GetItem client. Makes no call. config is borrowed for the call
 * (its strings and tables are copied). On SCACHE_OK *out owns the client. Errors:
 * SCACHE_EINVAL (out NULL), SCACHE_ECONFIG (no region or credentials, a bad endpoint, no
 * tables, a table without name or partition key, a table named twice; errbuf names it),
 * SCACHE_ETRANSPORT (libcurl cannot start), SCACHE_ENOMEM. Any thread; the client is
 * thread-safe.
 */
SCACHE_EXTERN scache_err scache_dynamodb_new(const scache_dynamodb_config *config,
                                             scache_dynamodb **out, char *errbuf, size_t errlen);

/* scache_dynamodb_free: free the client. Accepts NULL. No call may be in flight. */
SCACHE_EXTERN void scache_dynamodb_free(scache_dynamodb *db);

/*
 * scache_dynamodb_get_item: read-aside GetItem. `key` is the item's key in DynamoDB's
 * JSON (AttributeValue) form, e.g. {"id":{"S":"7"}}, with exactly the table's key
 * attributes. On SCACHE_OK *item (free() it) holds the item as plain JSON of *len bytes,
 * NUL-terminated; *outcome (may be NULL) says HIT, MISS or BYPASS. A miss reads the item
 * with a strongly consistent GetItem through scache_get_or_load (one GetItem per item in
 * flight, the stale-add guard) and caches it under scache_dynamodb_item_id's data ID.
 * SCACHE_ENOTFOUND: no such item; it is cached as such only with negative_ttl_ms, for
 * exactly that long, and a hit of it is SCACHE_ENOTFOUND with *outcome HIT.
 * SCACHE_EINVAL: a key that does not match the table (checked here, or refused by
 * DynamoDB with ValidationException), an unknown table, a NULL argument.
 * SCACHE_ESERVICE (e.g. ResourceNotFoundException: no such table), SCACHE_ETRANSPORT,
 * SCACHE_ETHROTTLED (after max_retries), SCACHE_ENOMEM. On errors other than
 * SCACHE_ENOTFOUND, errbuf (may be NULL) names the table and the AWS error (its __type
 * and message, credentials masked). From a handler's thread, with its request's context.
 */
SCACHE_EXTERN scache_err scache_dynamodb_get_item(scache_request *req, scache_dynamodb *db,
                                                  const char *table, const char *key, char **item,
                                                  size_t *len, scache_outcome *outcome,
                                                  char *errbuf, size_t errlen);

/*
 * scache_dynamodb_item_id: the data ID (source and id, encoded as id.h says) of the item
 * with this key in this table: what change records and get_item use. *out (free() it) of
 * *out_len bytes. SCACHE_EINVAL when the key does not match the table. Any thread.
 */
SCACHE_EXTERN scache_err scache_dynamodb_item_id(const scache_dynamodb_table *table,
                                                 const char *key, char **out, size_t *out_len);

/* ---- DynamoDB Streams as the source --------------------------------------------------
 *
 * The table's own stream (DynamoDB Streams, not Kinesis Data Streams for DynamoDB) read
 * as an invalidation source (source.h): every shard polled with GetRecords, closed shards
 * read to their end and then their children (shards roll over about every 4 hours), each
 * change mapped as change records on Kinesis are (stream.h, dynamodb_tables): its item's
 * data ID invalidated, or, in refresh mode, its NewImage stored as plain JSON (a change
 * without NewImage, e.g. a KEYS_ONLY or OLD_IMAGE view or a REMOVE, invalidates).
 *
 * Caught up. DynamoDB Streams has no MillisBehindLatest. A shard counts as caught up when
 * a GetRecords returned an empty page (open shard) or no NextShardIterator (closed shard
 * read to its end, whose children are then read in the same sync). sync returns SCACHE_OK
 * only when every shard known was caught up in that sync. Limitation: an open shard can
 * answer an empty page while records lie further on or are still being written (AWS:
 * "it might take multiple calls to get to a portion of the shard that contains stream
 * records"), so a change committed just before `since` can be delivered one sync late.
 *
 * Limits it respects: DescribeStream (10 calls a second) runs at creation, when a shard
 * ends (with ShardFilter CHILD_SHARDS: its children only), when a shard or the stream
 * goes missing, and every describe_interval_ms; GetRecords asks 1000 records (its
 * maximum; it also stops at 1 MB); iterators expire after 15 minutes and are re-taken
 * from the last sequence number read (AFTER_SEQUENCE_NUMBER).
 *
 * At most two processes should read one shard at a time (AWS throttles beyond that):
 * each instance of a service using this source is one reader. A fleet of more than two
 * instances must not read one table's stream directly: enable Kinesis Data Streams for
 * DynamoDB on the table and use the Kinesis source (stream.h, dynamodb_tables), which
 * serves any number of readers (or enhanced fan-out).
 *
 * Gaps (sink->gap: the owner flushes): TrimmedDataAccessException (records older than
 * the 24 h retention were trimmed before they were read), a shard that vanished before
 * it was read to its end, the stream not found (deleted or expired) after it was read,
 * and a stream DISABLED (no changes are recorded any more; each later sync fails).
 * An iterator taken at LATEST that expires before any record was read is re-taken at
 * TRIM_HORIZON: more records than needed, never fewer.
 *
 * publish: the table's writes are the invalidations, so the source publishes nothing:
 * publishing one key or more fails with SCACHE_ECONFIG (scache_invalidate has nothing to
 * do with this source: write the item to the table instead).
 */

typedef struct scache_dynamodb_streams_config {
	const char *region;            /* [AWS_REGION, then AWS_DEFAULT_REGION] */
	const char *endpoint;          /* [AWS_ENDPOINT_URL_DYNAMODB_STREAMS, then
	                                  AWS_ENDPOINT_URL, then
	                                  https://streams.dynamodb.<region>.amazonaws.com] */
	const char *access_key_id;     /* [AWS_ACCESS_KEY_ID]; with the secret and token: */
	const char *secret_access_key; /* [AWS_SECRET_ACCESS_KEY] */
	const char *session_token;     /* [AWS_SESSION_TOKEN unless keys are given here] */
	/* The stream: its ARN, or NULL to take the newest ENABLED (or ENABLING) stream of
	 * table.table (ListStreams with TableName, then DescribeStream). */
	const char *stream_arn;
	scache_dynamodb_table table; /* required: name, partition key; sort key, source, mode */
	scache_start_at start;       /* [SCACHE_START_LATEST] or SCACHE_START_TRIM_HORIZON */
	long connect_timeout_ms;     /* [2000] */
	long timeout_ms;             /* [10000] per HTTP call */
	unsigned max_retries;        /* [5] retries of throttling (LimitExceededException), 5xx and
	                                connection errors, with jittered backoff */
	unsigned describe_interval_ms; /* [60000] DescribeStream on this slow timer too */
} scache_dynamodb_streams_config;

/*
 * scache_dynamodb_streams_source_new: a source reading a table's DynamoDB Stream (see
 * above). config is borrowed for the call (strings copied). Lists the stream's shards
 * now; when that fails for a reason a later try may fix (unreachable, throttled, no
 * stream yet), the source still comes back SCACHE_OK and says why through the source's
 * unavailable() (the middleware starts bypassed), and each sync tries again (at most once
 * a second), positioned at LATEST. On SCACHE_OK *out owns the source (give it to a
 * middleware as .source, or scache_source_free it). Errors: SCACHE_EINVAL (config or out
 * NULL), SCACHE_ECONFIG (no region or credentials, a bad endpoint, no table name or
 * partition key, an unknown start; errbuf says which), SCACHE_ETRANSPORT (libcurl cannot
 * start), SCACHE_ENOMEM. Any thread. sync's errors: SCACHE_ESERVICE (an AWS error or a
 * malformed answer, named in info->message), SCACHE_ETHROTTLED (LimitExceededException
 * after max_retries; info->throttled is set whenever a call was throttled),
 * SCACHE_ETRANSPORT, SCACHE_ENOMEM.
 */
SCACHE_EXTERN scache_err scache_dynamodb_streams_source_new(
    const scache_dynamodb_streams_config *config, scache_source **out, char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
