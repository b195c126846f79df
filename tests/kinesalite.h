/*
 * kinesalite.h: a test fixture that runs kinesalite (the Node.js implementation of the
 * Kinesis API, installed by scripts/install-deps.sh into .deps/) on a free loopback port,
 * and a few administrative calls against it. For the stream tests, the middleware tests
 * and the benchmarks.
 *
 * Typical use in a Criterion suite:
 *
 *     static kinesalite K;
 *     static void up(void)   { cr_assert_eq(kinesalite_start(&K, NULL, 0), 0); }
 *     static void down(void) { kinesalite_stop(&K); }
 *     TestSuite(mine, .init = up, .fini = down);
 *     ...
 *     scache_stream_config cfg;
 *     kinesalite_config(&K, "orders", &cfg);
 *     cr_assert_eq(kinesalite_create_stream(&K, "orders", 4, NULL, 0), 0);
 *
 * kinesalite_stop runs in .fini, which Criterion calls after a failed assertion too; if
 * the test process dies outright, node receives SIGKILL from the kernel
 * (PR_SET_PDEATHSIG), so no process is left behind either way. Only 127.0.0.1 is used.
 */
#ifndef SCACHE_TEST_KINESALITE_H
#define SCACHE_TEST_KINESALITE_H

#include <stddef.h>
#include <sys/types.h>

#include "scache/stream.h"

typedef struct kinesalite {
	pid_t pid; /* node's process, 0 when stopped */
	int port;
	char endpoint[64]; /* "http://127.0.0.1:<port>" */
} kinesalite;

/*
 * kinesalite_start: start kinesalite from .deps/node_modules/kinesalite (found under
 * $SCACHE_SOURCE_ROOT, else $KINESALITE_ROOT, else KINESALITE_DEFAULT_ROOT if compiled
 * in, else the current directory) with node,
 * listening on 127.0.0.1 only at a free port, with zero create/delete/update delays (as
 * cli.js --createStreamMs 0 ... does) and a shard limit of 100; wait until it accepts
 * connections (up to 15 s). Returns 0, or -1 with a reason in err (may be NULL).
 * KINESALITE_LOG=1 in the environment keeps node's stderr.
 */
int kinesalite_start(kinesalite *k, char *err, size_t errlen);

/* kinesalite_stop: SIGTERM, then SIGKILL after 2 s; reaps the process. Idempotent. */
void kinesalite_stop(kinesalite *k);

/*
 * kinesalite_config: a zeroed config pointing at k for stream (borrowed): endpoint,
 * region "us-east-1", dummy credentials, short timeouts and backoff (tests run fast).
 */
void kinesalite_config(const kinesalite *k, const char *stream, scache_stream_config *cfg);
/* The same for any local Kinesis at endpoint (borrowed): kinesis-mock's fixture too. */
void local_kinesis_config(const char *endpoint, const char *stream, scache_stream_config *cfg);

/*
 * kinesalite_call: POST operation op with JSON body json (e.g. "{\"StreamName\":\"s\"}")
 * to endpoint (k->endpoint or a proxy's). On success returns 0 and, if answer is not
 * NULL, the answer's JSON text (free() it). On failure -1 and the AWS error in err.
 */
int kinesalite_call(const char *endpoint, const char *op, const char *json, char **answer,
                    char *err, size_t errlen);

/* kinesalite_create_stream: CreateStream with `shards` shards, then wait for ACTIVE. */
int kinesalite_create_stream(const kinesalite *k, const char *stream, int shards, char *err,
                             size_t errlen);

/* kinesalite_delete_stream: DeleteStream, then wait until it is gone. */
int kinesalite_delete_stream(const kinesalite *k, const char *stream, char *err, size_t errlen);

/* kinesalite_wait_active: wait (up to 10 s) until the stream is ACTIVE again (after a
 * split or merge). */
int kinesalite_wait_active(const kinesalite *k, const char *stream, char *err, size_t errlen);

/* kinesalite_put_raw: PutRecord of raw data bytes (base64-encoded here) with a random
 * partition key; the record's sequence number into seq (may be NULL). */
int kinesalite_put_raw(const kinesalite *k, const char *stream, const void *data, size_t len,
                       char *seq, size_t seqlen, char *err, size_t errlen);

#endif
