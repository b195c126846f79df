/*
 * shards.h: the shard lineage of one Kinesis stream (lib/shards.c): the table of shards
 * the reader knows, their parents and children, the listings that keep it in step with
 * the stream, and the check that notices a stream recreated under the same name.
 * Private to the reader; used by one thread at a time (the one polling).
 */
#ifndef SCACHE_SHARDS_H
#define SCACHE_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "aws.h"
#include "kinesis.h"
#include "scache/error.h"

typedef enum start_kind { START_LATEST, START_TRIM_HORIZON, START_AT_TIMESTAMP } start_kind;

typedef struct shard {
	char id[64];
	char parent[64];
	char adjacent[64];
	char start_seq[128]; /* StartingSequenceNumber per ListShards */
	char end_seq[128];   /* EndingSequenceNumber per ListShards, "" while open */
	char last_seq[128];  /* last record read, "" when none */
	char *iter;          /* current iterator, NULL when one must be taken */
	start_kind start;    /* where to start while last_seq is "" */
	double start_ts;     /* AT_TIMESTAMP, Unix seconds */
	double last_good;    /* Unix seconds when the newest successful read began */
	int finished;        /* read to its end */
	int listed;          /* scratch: seen in this ListShards */
	int iter_tries;      /* scratch: iterators taken in this poll */
	int more;            /* scratch: behind, read again in this poll */
} shard;

/* What the lineage tells its owner (the reader) while listing or checking. */
typedef struct shards_events {
	void (*gap)(void *arg, const char *why);                  /* records may be lost */
	void (*fail)(void *arg, scache_err err, const char *msg); /* the poll fails */
	void *arg;
} shards_events;

typedef struct shard_table {
	shard *shards;
	size_t n, cap;
	int need_list; /* list before the next read */
	uint64_t last_list_ns;
	/* a gap was reported for the whole stream (deleted, or recreated): the next listing
	 * restarts every shard at TRIM_HORIZON */
	int stream_missing;
	double created_ts; /* StreamCreationTimestamp, 0 when unknown */
	uint64_t check_interval_ns;
	uint64_t last_check_ns;
	size_t max_list_pages, max_list_shards;
	aws_client *c;      /* borrowed */
	const char *stream; /* borrowed */
	shards_events ev;
} shard_table;

/* shards_init: an empty table listing `stream` through c (both borrowed), telling ev. */
void shards_init(shard_table *t, aws_client *c, const char *stream, const shards_events *ev,
                 unsigned check_interval_ms);
/* shards_free: free every shard and the table's memory. */
void shards_free(shard_table *t);

shard *shards_find(shard_table *t, const char *id);
/* shards_add: a new shard of the listing entry ks (strings copied), starting at start
 * and marked listed; NULL when out of memory. shards_remove: drop shard i (its iterator
 * freed; the last shard takes its place). For a lineage listed another way (DynamoDB
 * Streams' DescribeStream, lib/ddb_streams_source.c), which reconciles on its own. */
shard *shards_add(shard_table *t, const kinesis_shard *ks, start_kind start);
void shards_remove(shard_table *t, size_t i);
/* shards_clear: forget every shard (their iterators freed). */
void shards_clear(shard_table *t);
/* shard_reset: read s again from `start`, as if nothing was read. */
void shard_reset(shard *s, start_kind start);
/* shard_readable: not finished, and every parent it has (two after a merge) finished. */
int shard_readable(shard_table *t, const shard *s);
/* shard_finish: s was read to its end; the next listing learns its children. */
void shard_finish(shard_table *t, shard *s);

/*
 * shards_list: list the shards and reconcile the table. initial: the first listing, where
 * shards start at `start` and closed ones are finished when starting at LATEST. Gaps
 * (a stream deleted or recreated, a shard vanished before its end) go to ev.gap, errors to
 * ev.fail. A listing that names a shard twice, repeats a NextToken or runs past
 * max_list_pages or max_list_shards is refused, the table unchanged.
 */
scache_err shards_list(shard_table *t, int initial, start_kind start);

/* shards_check_stream: every check interval, one DescribeStreamSummary: a new creation
 * time is a gap, an unexpected open shard count asks for a listing. */
void shards_check_stream(shard_table *t);
/* shards_check_soon: the next shards_check_stream checks, whatever the interval (after a
 * failed poll). */
void shards_check_soon(shard_table *t);

/* The calls of one round over a shard table, one per shard at most: who asked, the
 * requests, the results (for aws_call_many). */
typedef struct shard_batch {
	shard **who;
	json_object **reqs;
	aws_result *res;
	size_t m; /* calls prepared */
} shard_batch;

/* Room for a call per shard of a table of nshards; 0 when out of memory. */
int shard_batch_init(shard_batch *b, size_t nshards);
/* Free the requests and results of the m calls prepared, and the arrays. */
void shard_batch_free(shard_batch *b);

#endif
