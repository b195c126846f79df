/*
 * dynalite.h: a test fixture that runs dynalite (a Node.js implementation of the DynamoDB
 * API, installed by scripts/install-deps.sh into .deps/) on a free loopback port, and the
 * few administrative calls the tests make against it.
 *
 * Typical use in a Criterion suite:
 *
 *     static dynalite D;
 *     static void up(void)   { cr_assert_eq(dynalite_start(&D, NULL, 0), 0); }
 *     static void down(void) { dynalite_stop(&D); }
 *     TestSuite(mine, .init = up, .fini = down);
 *     ...
 *     cr_assert_eq(dynalite_create_table(&D, "users", "id", "S", NULL, NULL, err, n), 0);
 *     cr_assert_eq(dynalite_put_item(&D, "users", "{\"id\":{\"S\":\"7\"}}", err, n), 0);
 *
 * dynalite_stop runs in .fini, which Criterion calls after a failed assertion too; if the
 * test process dies outright, node receives SIGKILL from the kernel (PR_SET_PDEATHSIG).
 * Only 127.0.0.1 is used.
 */
#ifndef SCACHE_TEST_DYNALITE_H
#define SCACHE_TEST_DYNALITE_H

#include <stddef.h>
#include <sys/types.h>

#include "scache/dynamodb.h"

typedef struct dynalite {
	pid_t pid; /* node's process, 0 when stopped */
	int out;   /* read end of node's stdout, -1 when stopped */
	int port;
	char endpoint[64]; /* "http://127.0.0.1:<port>" */
} dynalite;

/*
 * dynalite_start: run .deps/node_modules/dynalite/cli.js (found under $SCACHE_SOURCE_ROOT,
 * else the current directory) with node on 127.0.0.1 at a free port, with tables created,
 * deleted and updated at once (--createTableMs 0 ...), and wait until it says it listens
 * (up to 15 s). Returns 0, or -1 with a reason in err (may be NULL). DYNALITE_LOG=1 in the
 * environment keeps node's stderr.
 */
int dynalite_start(dynalite *d, char *err, size_t errlen);

/* dynalite_stop: SIGTERM, then SIGKILL after 2 s; reaps the process. Idempotent. */
void dynalite_stop(dynalite *d);

/* dynalite_config: a zeroed client configuration pointing at d: endpoint, region
 * "us-east-1", dummy credentials, short timeouts, one retry. Tables are the caller's. */
void dynalite_config(const dynalite *d, scache_dynamodb_config *cfg);

/*
 * dynalite_call: POST operation op with JSON body json to endpoint, signed and sent by
 * the library's own AWS client core. On success 0 and, if answer is not NULL, the
 * answer's JSON text (free() it). On failure -1 and the AWS error in err.
 */
int dynalite_call(const char *endpoint, const char *op, const char *json, char **answer, char *err,
                  size_t errlen);

/* dynalite_create_table: CreateTable (on-demand) with a partition key pk of type pk_type
 * ("S", "N" or "B") and, when sk is not NULL, a sort key; then wait until ACTIVE. */
int dynalite_create_table(const dynalite *d, const char *table, const char *pk, const char *pk_type,
                          const char *sk, const char *sk_type, char *err, size_t errlen);

/* dynalite_put_item: PutItem of item, in AttributeValue JSON. */
int dynalite_put_item(const dynalite *d, const char *table, const char *item, char *err,
                      size_t errlen);

#endif
