/*
 * ddb_streams.h: private to the DynamoDB Streams source: its state, shared by
 * lib/ddb_streams_source.c (sync: iterators, GetRecords, changes) and
 * lib/ddb_streams_lineage.c (ListStreams, DescribeStream paging, the shard lineage).
 * Used by one thread at a time (the one syncing), but stats (under mu).
 */
#ifndef SCACHE_DDB_STREAMS_H
#define SCACHE_DDB_STREAMS_H

#include <pthread.h>

#include "aws.h"
#include "ddb.h"
#include "scache/dynamodb.h"
#include "scache/source.h"
#include "shards.h"

#define DDBS_RECORDS_LIMIT    1000 /* GetRecords' maximum (it also stops at 1 MB) */
#define DDBS_DESCRIBE_LIMIT   100  /* DescribeStream's maximum shards a page */
#define DDBS_MAX_PAGES        1000 /* of one listing: a malformed answer must not loop */
#define DDBS_MAX_LIST_STREAMS 100  /* ListStreams pages */
#define DDBS_MAX_ROUNDS       64
#define DDBS_MAX_ITER_TRIES   3
#define DDBS_RETRY_NS         1000000000ull /* positioning and child lookups: 1 a second */

/* JSON 1.0, target DynamoDBStreams_20120810, SigV4 service "dynamodb". */
extern const aws_service ddbs_service;

typedef struct ddbs_source {
	aws_client *c;
	char *arn;      /* NULL until resolved (from the table) */
	char *names[4]; /* copies: table, partition key, sort key, source */
	scache_dynamodb_table table;
	ddb_table dt;
	ddb_versions *versions; /* refresh mode */
	start_kind start;
	shard_table t;
	int positioned;
	uint64_t last_try_ns;       /* positioning or child lookup */
	uint64_t describe_every_ns; /* the slow timer */
	int disabled;               /* StreamStatus DISABLED or DISABLING was seen */
	char (*await)[64];          /* shards we read to their end, children not known yet */
	size_t nawait;
	uint64_t last_child_ns; /* the last CHILD_SHARDS lookup that found none */
	char unavailable[256];
	const scache_sink *sink;
	scache_poll_info *cur;
	pthread_mutex_t mu;
	scache_source_stats stats;
} ddbs_source;

/* The first error of the sync in progress tells the story. */
void ddbs_poll_fail(ddbs_source *d, scache_err err, const char *msg);
/* A gap to the sink, counted. */
void ddbs_report_gap(ddbs_source *d, const char *why);

/* List the shards (all, or parent's children with ShardFilter CHILD_SHARDS) and reconcile
 * (see ddb_streams_lineage.c). Errors go to the poll in progress (d->cur). */
scache_err ddbs_list_shards(ddbs_source *d, int initial, const char *parent);
/* Find the stream (by table when no ARN was given) and list it: positioned on SCACHE_OK;
 * errbuf says why not. */
scache_err ddbs_position(ddbs_source *d, char *errbuf, size_t errlen);

#endif
