/*
 * kinesis_mock.h: a test fixture that runs kinesis-mock (npm kinesis-local 0.6.2, the
 * Node.js build of etspaceman/kinesis-mock, installed by scripts/install-deps.sh into
 * .deps/) on free loopback ports, and the few administrative calls the push tests make.
 * kinesis-mock implements enhanced fan-out (RegisterStreamConsumer and friends, and
 * SubscribeToShard answering application/vnd.amazon.eventstream), which kinesalite
 * does not.
 *
 * kinesis-mock listens on every interface and has no setting for it: the fixture starts
 * node with a preamble that binds its servers to 127.0.0.1 (net.Server.listen's host is
 * replaced), so nothing leaves the loopback. It runs with zero create, delete, consumer,
 * split and merge delays, LOG_LEVEL WARN, and its output goes to a file under $TMPDIR
 * (kept when KINESIS_MOCK_LOG is set, else removed at stop). As with kinesalite.c, node
 * dies with the test process (PR_SET_PDEATHSIG), and kinesis_mock_stop belongs in the
 * suite's .fini.
 */
#ifndef SCACHE_TEST_KINESIS_MOCK_H
#define SCACHE_TEST_KINESIS_MOCK_H

#include <stddef.h>
#include <sys/types.h>

#include "scache/stream.h"

typedef struct kinesis_mock {
	pid_t pid; /* node's process, 0 when stopped */
	int port;  /* plain HTTP (HTTP/1.1 and h2c) */
	int tls_port;
	char endpoint[64]; /* "http://127.0.0.1:<port>" */
	char log[256];     /* the file node's output goes to */
} kinesis_mock;

/* kinesis_mock_start: start it and wait (up to 60 s) until it answers ListStreams.
 * 0, or -1 with a reason in err (may be NULL). */
int kinesis_mock_start(kinesis_mock *k, char *err, size_t errlen);

/* kinesis_mock_stop: SIGTERM, then SIGKILL after 2 s; reaps it. Idempotent. */
void kinesis_mock_stop(kinesis_mock *k);

/* A zeroed config pointing at k for stream (borrowed), as kinesalite_config does. */
void kinesis_mock_config(const kinesis_mock *k, const char *stream, scache_stream_config *cfg);

/* One call: 0 with *answer (may be NULL; free it), or -1 with the AWS error in err. */
int kinesis_mock_call(const kinesis_mock *k, const char *op, const char *json, char **answer,
                      char *err, size_t errlen);

/* CreateStream with `shards` shards, then wait for ACTIVE (up to 10 s). */
int kinesis_mock_create_stream(const kinesis_mock *k, const char *stream, int shards, char *err,
                               size_t errlen);

/* Wait (up to 10 s) until the stream is ACTIVE (after a split or merge). */
int kinesis_mock_wait_active(const kinesis_mock *k, const char *stream, char *err, size_t errlen);

/* DeleteStream, then wait until DescribeStreamSummary says it is gone. */
int kinesis_mock_delete_stream(const kinesis_mock *k, const char *stream, char *err, size_t errlen);

/* The stream's ARN into arn ("" on failure: -1). */
int kinesis_mock_stream_arn(const kinesis_mock *k, const char *stream, char *arn, size_t len,
                            char *err, size_t errlen);

/* PutRecord of data (base64-encoded here) with partition key pk (NULL: a random one);
 * the record's sequence number and shard into seq and shard (each may be NULL). */
int kinesis_mock_put(const kinesis_mock *k, const char *stream, const void *data, size_t len,
                     const char *pk, char *seq, size_t seqlen, char *shard, size_t shardlen,
                     char *err, size_t errlen);

#endif
