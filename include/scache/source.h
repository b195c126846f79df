/*
 * source.h: where invalidations come from. The middleware reads its invalidations through
 * one small interface, and never knows which implementation feeds it:
 *
 *   - the Kinesis polling source (scache_kinesis_source_new, stream.h): a reader of every
 *     shard of a Kinesis stream, and a publisher (PutRecords);
 *   - the in-memory source (scache_memory_source_new, below): invalidations pushed by the
 *     program itself, for tests and single-instance use; it can fail and report gaps on
 *     demand, so a service's own tests can drive its middleware through an outage;
 *   - any other: fill a scache_source_ops and call scache_source_new.
 *
 * The contract, one sentence: sync(since) returns SCACHE_OK only when every invalidation
 * published before `since` (a scache_now_ns() time) has been delivered to the sink;
 * otherwise it returns an error and says why in info->message. Delivered means: the keys
 * it invalidated were given to sink->keys (or their new values to sink->value), or, when
 * the source cannot show it saw them all (a stream deleted, records expired), a gap was
 * reported with sink->gap, on which the owner flushes everything. A source is positioned
 * when created: what was published before that need not be delivered.
 *
 * Threads: the middleware calls sync from its poller thread only, one sync at a time;
 * publish from any thread, concurrently with sync. The sink's functions are called from
 * the thread running sync, before sync returns, and must not call back into the source.
 */
#ifndef SCACHE_SOURCE_H
#define SCACHE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What one sync (poll) did. The source fills it; the caller zeroes it first. */
typedef struct scache_poll_info {
	uint64_t started_ns; /* scache_now_ns() when the poll began */
	uint64_t finished_ns;
	uint64_t keys;        /* keys delivered */
	uint64_t records;     /* records read */
	uint64_t bad_records; /* records skipped as malformed */
	uint64_t calls;       /* calls made to the service (HTTP requests) */
	int gap;              /* a gap was reported */
	int shared;           /* this caller waited for another caller's poll */
	scache_err err;       /* SCACHE_OK when everything published before `since` was seen */
	char message[256];    /* error details when err != SCACHE_OK */
	int throttled;        /* the service throttled a call of this poll, even if a retry then
	                         succeeded: the middleware slows its polls down */
} scache_poll_info;

/* Where a sync delivers what it found. Every function may be NULL but keys and gap. */
typedef struct scache_sink {
	/* Invalidated data-ID strings (id.h), in the order they were published per
	 * partition. The owner removes them. */
	void (*keys)(void *arg, const char *const *keys, const size_t *lens, size_t n);
	/* The source cannot show it saw every invalidation: the owner flushes. */
	void (*gap)(void *arg, const char *why);
	/* The new value of a data ID (a refresh: a change record carrying the item). The
	 * owner replaces what it holds, as an invalidation followed by an add. */
	void (*value)(void *arg, const char *key, size_t key_len, const void *value, size_t len);
	/* A message for the owner's log (a record skipped, a fallback taken); plain text,
	 * not escaped: escaping is the log's job. */
	void (*log)(void *arg, const char *message);
	void *arg;
	/* Optional: keys of records this same source published (its publish), read back from
	 * the stream: the echo of the owner's own invalidations, which the owner applied
	 * before publishing them. NULL: they go to keys, like everyone else's. A source that
	 * cannot tell who wrote a record (no origin in it, as in Go scache's records) always
	 * uses keys: unknown means foreign. */
	void (*keys_own)(void *arg, const char *const *keys, const size_t *lens, size_t n);
} scache_sink;

/* Counters of a source, for metrics. Fields a source does not keep stay zero. */
typedef struct scache_source_stats {
	uint64_t syncs;       /* syncs completed */
	uint64_t errors;      /* syncs that failed */
	uint64_t calls;       /* calls made to the service */
	uint64_t throttled;   /* calls the service throttled */
	uint64_t records;     /* records read */
	uint64_t bad_records; /* records skipped as malformed */
	uint64_t keys;        /* keys delivered */
	uint64_t gaps;        /* gaps reported */
	uint64_t partitions;  /* shards (or partitions) read now */
} scache_source_stats;

/* An implementation. `self` is the implementation's own state. */
typedef struct scache_source_ops {
	const char *name; /* short, for logs: "kinesis", "memory" */
	/* Required. See the contract above; info is zeroed by the caller. */
	scache_err (*sync)(void *self, uint64_t since_ns, const scache_sink *sink,
	                   scache_poll_info *info);
	/* Required. Announce that n data IDs changed: SCACHE_OK only when all were stored.
	 * On failure errbuf (may be NULL) receives the service's reason. Any thread. */
	scache_err (*publish)(void *self, const char *const *keys, const size_t *lens, size_t n,
	                      char *errbuf, size_t errlen);
	/* Optional. NULL when the source is positioned; else why it could not be positioned
	 * at creation (the service was unreachable): the middleware then starts with the
	 * cache bypassed and ends the bypass at the first successful sync. Read once. */
	const char *(*unavailable)(void *self);
	/* Optional. Counters into *out (zeroed by the caller). Any thread. */
	void (*stats)(void *self, scache_source_stats *out);
	/* Optional. Free self. */
	void (*destroy)(void *self);
} scache_source_ops;

typedef struct scache_source scache_source;

/*
 * scache_source_new: a source over an implementation. ops is borrowed (it must outlive
 * the source; a static table is usual); self is owned by the source from now on, and
 * ops->destroy frees it, also when this fails. SCACHE_EINVAL (no sync or publish),
 * SCACHE_ENOMEM. Any thread.
 */
SCACHE_EXTERN scache_err scache_source_new(const scache_source_ops *ops, void *self,
                                           scache_source **out);

/* scache_source_free: destroy a source that no middleware owns. Accepts NULL. */
SCACHE_EXTERN void scache_source_free(scache_source *source);

/* scache_source_sync: run one sync of the source (what the middleware's poller does),
 * delivering to sink. For tools and tests that drive a source themselves; never call it
 * on a source a middleware owns. info may be NULL. */
SCACHE_EXTERN scache_err scache_source_sync(scache_source *source, uint64_t since_ns,
                                            const scache_sink *sink, scache_poll_info *info);

/* scache_source_stats_get: the source's counters (zeros when it keeps none). */
SCACHE_EXTERN void scache_source_stats_get(scache_source *source, scache_source_stats *out);

/* scache_source_name: ops->name, or "source". */
SCACHE_EXTERN const char *scache_source_name(const scache_source *source);

/* ---- The in-memory source ----------------------------------------------------------- */

/*
 * scache_memory_source_new: a source whose invalidations are pushed by the program
 * itself (scache_memory_source_push, and what the middleware publishes through it).
 * Every sync delivers what was pushed before it began, unless failing or a gap is due.
 * All scache_memory_source_* functions are thread-safe; the source stays valid until
 * its owner (the middleware it was given to, or scache_source_free) frees it.
 */
SCACHE_EXTERN scache_err scache_memory_source_new(scache_source **out);

/* Push invalidated keys (data-ID strings), as another instance would publish them. The
 * keys are copied. SCACHE_EINVAL when source is not a memory source, SCACHE_ENOMEM. */
SCACHE_EXTERN scache_err scache_memory_source_push(scache_source *source, const char *const *keys,
                                                   const size_t *lens, size_t n);

/* Push a new value for a key (a refresh): the next sync delivers it to sink->value. */
SCACHE_EXTERN scache_err scache_memory_source_push_value(scache_source *source, const char *key,
                                                         size_t key_len, const void *value,
                                                         size_t len);

/* From now on every sync fails with err (SCACHE_ETRANSPORT, say) and the message why
 * (may be NULL), delivering nothing, until called with SCACHE_OK. Publishing fails too. */
SCACHE_EXTERN void scache_memory_source_fail(scache_source *source, scache_err err,
                                             const char *why);

/* The next successful sync reports a gap with the message why (may be NULL). */
SCACHE_EXTERN void scache_memory_source_gap(scache_source *source, const char *why);

#ifdef __cplusplus
}
#endif

#endif
