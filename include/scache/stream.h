/*
 * The Kinesis invalidation stream: a reader that returns every invalidated data ID
 * since its last poll, across all shards, and a publisher that announces changes.
 *
 * Both speak the Kinesis Data Streams JSON 1.1 API over libcurl, signed with libcurl's
 * own AWS Signature V4, so they work against AWS and against any Kinesis-compatible
 * endpoint (kinesalite in development and tests). Nothing here knows about the cache:
 * the reader hands invalidated keys to a callback, and reports gaps (invalidations that
 * may have been missed) to another, whose owner flushes its cache.
 */
#ifndef SCACHE_STREAM_H
#define SCACHE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "source.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Record formats the reader understands. */
typedef enum scache_record_format {
	SCACHE_RECORD_SCACHE = 0 /* scache's {"keys":[...],"ts":"..."} */
} scache_record_format;

/* ---- DynamoDB change records -------------------------------------------------- */

/* What a DynamoDB change record (Kinesis Data Streams for DynamoDB) does to the item's
 * cache entry. (Used by stream.h and dynamodb.h alike.) */
typedef enum scache_dynamodb_mode {
	SCACHE_DYNAMODB_INVALIDATE = 0, /* INSERT, MODIFY and REMOVE remove the item */
	SCACHE_DYNAMODB_REFRESH         /* INSERT and MODIFY store the NewImage, REMOVE
	                                   removes; a record without NewImage invalidates */
} scache_dynamodb_mode;

/* One table. Strings are borrowed for the call that takes the table (and copied). */
typedef struct scache_dynamodb_table {
	const char *table;         /* required: the table's name */
	const char *partition_key; /* required: the partition (hash) key attribute */
	const char *sort_key;      /* [NULL: none] the sort (range) key attribute */
	const char *source;        /* [NULL: "dynamodb.<table>"] the source of its data IDs */
	scache_dynamodb_mode mode; /* [SCACHE_DYNAMODB_INVALIDATE] */
} scache_dynamodb_table;

/*
 * Connection settings, shared by reader and publisher. Zero-initialise; a NULL or zero
 * field falls back, in this order, to the AWS conventions of the environment:
 *   region:      AWS_REGION, then AWS_DEFAULT_REGION
 *   credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
 *   endpoint:    AWS_ENDPOINT_URL_KINESIS, then AWS_ENDPOINT_URL,
 *                else https://kinesis.<region>.amazonaws.com
 * stream_name has no environment fallback here (scachectl and the example server read
 * SCACHE_STREAM themselves). Strings are copied at creation.
 */
typedef struct scache_stream_config {
	const char *stream_name;
	const char *region;
	const char *endpoint; /* "https://..." or "http://..." (plain only if said) */
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;        /* sent as X-Amz-Security-Token */
	long connect_timeout_ms;          /* [2000] */
	long timeout_ms;                  /* [10000] total per HTTP call */
	unsigned max_retries;             /* [5] retries of throttling/5xx/connection errors */
	unsigned backoff_base_ms;         /* [50] first backoff; doubles, full jitter */
	unsigned backoff_max_ms;          /* [2000] cap of one backoff */
	unsigned list_shards_interval_ms; /* [60000] slow timer for ListShards */
	scache_record_format format;      /* [SCACHE_RECORD_SCACHE] */
	/* [10000; the middleware: half its max_staleness_ms] how often (ms) a poll first asks
	 * DescribeStreamSummary whether the stream was deleted and recreated under the same
	 * name: a new StreamCreationTimestamp is a gap, and the new stream is read from
	 * TRIM_HORIZON; an OpenShardCount unlike the shards known lists the shards (a new
	 * shard without parent is a recreation too). At most once a second whatever is
	 * asked: the service allows 20 such calls a second per account, for all its readers
	 * together, so N readers make N x 1000 / interval of them (10 readers at 5000 ms:
	 * 2/s). A failed check falls back to ListShards (1000 calls a second per stream). */
	unsigned stream_check_interval_ms;
	/* [5000] bound (ms) of one scache_publish_keys, its retries and backoff included:
	 * each HTTP attempt's timeout is cut to the time left (timeout_ms still bounds each),
	 * and no retry starts after it. Concurrent publishes run side by side, each bounded
	 * alone. 0: the default. */
	long publish_timeout_ms;
	/* [none] DynamoDB tables whose change records (Kinesis Data Streams for DynamoDB,
	 * "eventSource":"aws:dynamodb") come on this stream, next to scache records. A
	 * change of a listed table invalidates the item's data ID (dynamodb.h names it), or
	 * in SCACHE_DYNAMODB_REFRESH mode stores its NewImage as plain JSON (on_value); a
	 * record of a table not listed is skipped. Late and repeated records are ordered by
	 * ApproximateCreationDateTime: an older change never overwrites a newer one. The
	 * array and its strings are copied with the rest of the configuration. A table
	 * without name or partition key, or named twice, is SCACHE_ECONFIG. */
	const scache_dynamodb_table *dynamodb_tables;
	size_t dynamodb_ntables;
	/* [NULL: $AWS_CA_BUNDLE, else the system's certificate store] a PEM file of the
	 * certificate authorities trusted for an https endpoint, instead of the system's: a
	 * private CA, or the self-signed certificate of a local endpoint. The certificate
	 * and the endpoint's host name are always verified; a server they do not match is
	 * refused, with curl's reason ("SSL certificate problem: ...") in the error. A file
	 * that cannot be read is SCACHE_ECONFIG naming it. The path is copied. */
	const char *ca_file;
} scache_stream_config;

/* ---- Reader ------------------------------------------------------------------ */

typedef struct scache_reader scache_reader;

/* Receives the keys (data-ID strings) of one or more records, in stream order per
 * shard. Called from the thread doing the poll; must not call back into the reader. */
typedef void (*scache_keys_fn)(void *arg, const char *const *keys, const size_t *lens, size_t n);
/* Told when the reader cannot prove it saw every record: the owner must flush. `why` is
 * a human-readable reason. Called from the polling thread. */
typedef void (*scache_gap_fn)(void *arg, const char *why);

/* Optional, told of each record before on_keys gets its keys: the record's shard and
 * sequence number with its keys (for tools such as scachectl tail). Same thread rules. */
typedef void (*scache_record_fn)(void *arg, const char *shard_id, const char *sequence,
                                 const char *const *keys, const size_t *lens, size_t n);

/* Optional, told each message of the reader (a malformed record skipped, a fallback
 * taken, a gap): one line of plain text without a newline, NUL-terminated, not escaped
 * (it may quote the service's answer: escaping is the sink's job). A message repeating
 * within 30 s is dropped; the next one shown says how many were dropped. When on_gap is
 * set, gaps go to on_gap only. NULL: every message, gaps too, is written to stderr as
 * "libscache: <message>" with control bytes shown as \xNN. Same thread rules as on_gap. */
typedef void (*scache_message_fn)(void *arg, const char *message);

/* Optional, told the new value of a data ID (a DynamoDB change record of a table in
 * SCACHE_DYNAMODB_REFRESH mode: key is the item's data-ID string, value its NewImage as
 * plain JSON, len bytes, not NUL-terminated). The owner replaces what it holds, as an
 * invalidation followed by an add. NULL: the key goes to on_keys (an invalidation,
 * always safe). Same thread rules as on_keys. */
typedef void (*scache_value_fn)(void *arg, const char *key, size_t key_len, const void *value,
                                size_t len);

/* Optional, on_keys with the record's origin: the ID of the publisher that wrote it
 * (scache_publisher_origin), 0 when the record names none (Go scache's records, and
 * records of other tools): an unknown writer. When set, it is called instead of on_keys.
 * Same thread rules as on_keys. */
typedef void (*scache_keys_origin_fn)(void *arg, const char *const *keys, const size_t *lens,
                                      size_t n, uint64_t origin);

typedef struct scache_reader_callbacks {
	scache_keys_fn on_keys;
	scache_gap_fn on_gap;
	void *arg;
	scache_record_fn on_record; /* may be NULL (added after the first draft of this API) */
	scache_message_fn on_log;   /* may be NULL: messages go to stderr (see scache_message_fn) */
	scache_value_fn on_value;   /* may be NULL: refreshes become invalidations (on_keys) */
	scache_keys_origin_fn on_keys_origin; /* may be NULL: keys go to on_keys */
} scache_reader_callbacks;

/* Where a new reader starts on every shard. */
typedef enum scache_start_at { SCACHE_START_LATEST = 0, SCACHE_START_TRIM_HORIZON } scache_start_at;

/*
 * scache_reader_new: create a reader positioned at `start` on every shard (it lists the
 * shards and takes iterators now). *out owns the reader. On failure errbuf (may be NULL)
 * receives a message naming what failed: the missing setting, or the AWS error name,
 * message and endpoint. Credentials never appear in messages.
 */
SCACHE_EXTERN scache_err scache_reader_new(const scache_stream_config *config,
                                           scache_start_at start,
                                           const scache_reader_callbacks *callbacks,
                                           scache_reader **out, char *errbuf, size_t errlen);

/* scache_reader_free: stop and free. Accepts NULL. No poll may be in flight. */
SCACHE_EXTERN void scache_reader_free(scache_reader *reader);

/* What one poll did: scache_poll_info, in source.h. */

/*
 * scache_reader_sync: make sure a poll that *began* at or after `since_ns` (a
 * scache_now_ns() value) has completed, and return its outcome in *info (may be NULL).
 * Single-flight: if the last completed poll began at or after since_ns, return its
 * outcome (info->shared set); else, while another thread polls, wait for that poll, and
 * then, if it began too early, poll in this thread (or share the poll of a thread that
 * was quicker to start one). Thread-safe; many threads may call at once, and they share
 * polls. Waits at most timeout_ms (0: no limit) for another thread's poll, then returns
 * SCACHE_ETIMEOUT with info->message saying so and starts nothing; a poll this thread
 * makes itself is bounded by the stream's own timeouts. Otherwise returns the error of
 * the poll it relied on (SCACHE_ETRANSPORT, SCACHE_ESERVICE, SCACHE_ETHROTTLED,
 * SCACHE_ENOMEM). since_ns = 0 accepts any completed poll.
 */
SCACHE_EXTERN scache_err scache_reader_sync(scache_reader *reader, uint64_t since_ns,
                                            uint64_t timeout_ms, scache_poll_info *info);

/* scache_reader_fresh: has a poll that began at or after since_ns completed successfully?
 * Never blocks. */
SCACHE_EXTERN int scache_reader_fresh(scache_reader *reader, uint64_t since_ns);

/* Counters of a reader since creation. */
typedef struct scache_reader_stats {
	uint64_t polls;       /* polls completed (successful or not) */
	uint64_t poll_errors; /* polls that ended in an error */
	uint64_t calls;       /* HTTP calls */
	uint64_t throttled;   /* throttling answers seen (each retried) */
	uint64_t records;
	uint64_t bad_records;
	uint64_t keys;
	uint64_t gaps;
	uint64_t shards;                  /* shards currently tracked */
	uint64_t last_success_started_ns; /* start of the newest successful poll, 0 if none */
	/* DynamoDB change records (dynamodb_tables): */
	uint64_t values;          /* new values delivered (refreshes; counted in keys too) */
	uint64_t foreign_records; /* records of tables not configured, skipped */
	uint64_t stale_records;   /* changes older than one applied to the item, skipped */
} scache_reader_stats;

/* scache_reader_stats_get: a snapshot of the reader's counters into *out (zeroed when
 * reader is NULL). Any thread, also while a poll is in flight. */
SCACHE_EXTERN void scache_reader_stats_get(scache_reader *reader, scache_reader_stats *out);

/* ---- Publisher --------------------------------------------------------------- */

typedef struct scache_publisher scache_publisher;

/*
 * scache_publisher_new: create a publisher for the stream of `config` (copied; the same
 * environment fallbacks as the reader). It makes no call yet. On SCACHE_OK *out owns the
 * publisher. Errors: SCACHE_EINVAL (out NULL), SCACHE_ECONFIG (no stream name, region or
 * credentials: errbuf, which may be NULL, names what is missing), SCACHE_ENOMEM.
 */
SCACHE_EXTERN scache_err scache_publisher_new(const scache_stream_config *config,
                                              scache_publisher **out, char *errbuf, size_t errlen);

/* scache_publisher_free: free the publisher. Accepts NULL. No publish may be in flight. */
SCACHE_EXTERN void scache_publisher_free(scache_publisher *publisher);

/* Where one published key went. */
typedef struct scache_publish_result {
	scache_err err; /* SCACHE_OK if the key's record was stored */
	char shard_id[64];
	char sequence[128];
	char message[160]; /* AWS error name and message when err != SCACHE_OK */
} scache_publish_result;

/*
 * scache_publish_keys: publish n data-ID strings as scache records (packed within
 * Kinesis' limits, random partition keys, failed entries retried with backoff).
 * results (may be NULL) has n slots, one per key, filled in any case. Returns SCACHE_OK
 * only if every key was stored, else SCACHE_EPUBLISH (or the transport/config error).
 * Thread-safe.
 */
SCACHE_EXTERN scache_err scache_publish_keys(scache_publisher *publisher, const char *const *keys,
                                             const size_t *lens, size_t n,
                                             scache_publish_result *results);

/*
 * scache_publisher_origin: the publisher's ID, random and never 0, drawn at creation and
 * written into each of its records as "origin" (16 hex digits; Go scache's decoder
 * ignores the field). A reader reports it with each record's keys (on_keys_origin), so
 * an instance can tell the echo of its own invalidations. 0 when publisher is NULL.
 * Any thread.
 */
SCACHE_EXTERN uint64_t scache_publisher_origin(const scache_publisher *publisher);

/* ---- The Kinesis polling source (source.h) ------------------------------------ */

/*
 * scache_kinesis_source_new: an invalidation source over a Kinesis stream: a reader of
 * every shard (sync is scache_reader_sync) and a publisher (publish is
 * scache_publish_keys). The config's strings are copied. A mistake in the configuration
 * (no stream name, region or credentials, a bad endpoint) fails at once with
 * SCACHE_ECONFIG and errbuf naming it. A stream that cannot be read now (unreachable,
 * throttled, not yet created) is not an error: the source reports why through its
 * unavailable() and creates its reader at a later sync, positioned at LATEST then,
 * whatever start says (an owner that bypassed its cache meanwhile loses nothing).
 * It waits at most 3 s for the stream: a reader not created by then (an endpoint that
 * never answers: the calls' own timeouts and retries could take minutes) goes on being
 * created in the background, the source is unavailable meanwhile ("no answer ... within
 * 3000 ms"), and its first sync adopts that reader (waiting for it) and reads from it.
 * Freeing the source also waits for it.
 * The reader's messages go to the sink's log. SCACHE_ENOMEM. Any thread.
 */
SCACHE_EXTERN scache_err scache_kinesis_source_new(const scache_stream_config *config,
                                                   scache_start_at start, scache_source **out,
                                                   char *errbuf, size_t errlen);

/* ---- The Kinesis push source (enhanced fan-out, source.h) ---------------------- */

/*
 * Push instead of polling: the source registers an enhanced fan-out consumer of the
 * stream (or reuses the one of that name), subscribes to every shard (SubscribeToShard,
 * over HTTP/2) and receives records as they are put, each consumer with its own
 * 2 MiB/s per shard, without touching the 5 GetRecords calls a second per shard that
 * every polling reader of the stream shares. Consumers cost money per shard-hour and a
 * stream has at most 20 (50 for On-demand Advantage streams): give each instance of a
 * fleet a stable name of its own (its slot or host name) so a restart reuses it.
 * Zero-initialise; a zero field is the default.
 */
typedef struct scache_push_config {
	/* [NULL: "scache-<host name>-<pid>", deregistered when the source is freed] the
	 * consumer's name: 1 to 128 of [a-zA-Z0-9_.-], unique per instance (two sources
	 * with one name take each other's subscriptions over) */
	const char *consumer_name;
	/* [0] 1: deregister the consumer when the source is freed, also a named one */
	int deregister_on_free;
	/* [0] 1: fail with the service's error instead of falling back to polling when no
	 * consumer can be had (LimitExceededException, AccessDeniedException) */
	int no_fallback;
	/* [5000] the longest one sync waits for an event on every shard */
	unsigned sync_wait_ms;
	/* [250] how much older than its arrival an event's view of its shard may be: an
	 * event counts as fresh from (arrival - MillisBehindLatest - event_lag_ms). AWS
	 * pushes records as they come (about 70 ms from put to delivery, per its guide);
	 * kinesis-mock delivers a record with its second event after the put, one a second:
	 * 1100 there */
	unsigned event_lag_ms;
} scache_push_config;

/*
 * scache_kinesis_push_source_new: an invalidation source over a Kinesis stream that
 * receives its records by push (enhanced fan-out), and publishes with PutRecords as the
 * polling source does. config is the polling source's (copied; list_shards_interval_ms
 * is how often new shards are looked for besides ChildShards); push may be NULL (all
 * defaults). start: where every shard starts.
 *
 * Freshness: sync(since) returns SCACHE_OK once, on every shard, an event received at
 * or after `since` (less the MillisBehindLatest it reported and event_lag_ms) has been
 * applied: bounded staleness holds from the last event received, and a strict sync
 * (since = now) waits for the next event of every shard (kinesis-mock sends one per
 * shard every second, records or not; how often AWS sends one on an idle shard is not
 * verified here: prefer bounded staleness with push). It waits at most sync_wait_ms,
 * then fails with SCACHE_ETIMEOUT naming the shard behind and why (its subscription's
 * last error).
 *
 * Lifecycle: subscriptions are renewed before AWS's 5 minutes end, from the last
 * ContinuationSequenceNumber (AT_SEQUENCE_NUMBER; a record seen twice is applied
 * once), resubscribed after a drop with backoff (and 5 s after a successful call, as
 * the service requires), children subscribed after their parents' end (ChildShards, or
 * a closed shard read to its end), new shards found by ListShards. The stream deleted is
 * a gap, and syncs fail until it exists again (then read from TRIM_HORIZON).
 *
 * Startup waits at most 3 s for the consumer and the first subscriptions; later, the
 * source is unavailable (unavailable() says why) until its first successful sync.
 * When no consumer can be had (the stream's limit reached, or no permission) the source
 * falls back to polling (scache_kinesis_source_new's reader) with a warning through the
 * sink's log (and stderr at creation), unless push->no_fallback.
 * Errors: SCACHE_ECONFIG (the configuration, or a consumer name AWS refuses),
 * SCACHE_ENOMEM, and with no_fallback the service's error. Any thread.
 */
SCACHE_EXTERN scache_err scache_kinesis_push_source_new(const scache_stream_config *config,
                                                        const scache_push_config *push,
                                                        scache_start_at start,
                                                        scache_source **out, char *errbuf,
                                                        size_t errlen);

/* Counters of a push source, since creation. */
typedef struct scache_push_stats {
	uint64_t events;        /* SubscribeToShardEvents received */
	uint64_t records;       /* records received (before removing repeats) */
	uint64_t subscribes;    /* SubscribeToShard calls */
	uint64_t renewals;      /* subscriptions renewed at their end (ours or the service's) */
	uint64_t reconnects;    /* subscriptions resubscribed after a drop or an error */
	uint64_t refused;       /* calls refused (ResourceInUseException and others) */
	int64_t millis_behind;  /* the largest MillisBehindLatest of the shards' last events */
	uint64_t shards;        /* shards subscribed now */
	int polling;            /* 1: fell back to polling (no consumer) */
	char consumer_arn[512]; /* the consumer's ARN, "" until registered */
	uint64_t sync_waits;    /* syncs that waited for an event (what they needed had not
	                           come yet: a strict sync waits for the next one) */
} scache_push_stats;

/* scache_kinesis_push_stats: the counters of a push source into *out. SCACHE_EINVAL when
 * source is not one (or NULL). Any thread. */
SCACHE_EXTERN scache_err scache_kinesis_push_stats(scache_source *source, scache_push_stats *out);

#ifdef __cplusplus
}
#endif
#endif
