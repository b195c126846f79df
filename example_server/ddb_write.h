/*
 * ddb_write.h: the example server's writes to a DynamoDB users table (PutItem and
 * DeleteItem), signed by libcurl (CURLOPT_AWS_SIGV4). Part of the example, not of the
 * library: libscache reads items (scache_dynamodb_get_item) and learns of changes from
 * the table's change records; how an application writes is its own business.
 */
#ifndef USERS_DDB_WRITE_H
#define USERS_DDB_WRITE_H

#include <stddef.h>

/* Where and as whom to write. Strings are copied by ddb_writer_init. */
typedef struct ddb_writer {
	char *endpoint, *region, *table;
	char *access_key_id, *secret_access_key, *session_token; /* token may be NULL */
} ddb_writer;

/* Copies the settings; a NULL or empty session_token means none. 0, or -1 (out of
 * memory). */
int ddb_writer_init(ddb_writer *w, const char *endpoint, const char *region, const char *table,
                    const char *access_key_id, const char *secret_access_key,
                    const char *session_token);

/* Frees the copies. Accepts a zeroed writer. */
void ddb_writer_free(ddb_writer *w);

/* PutItem {"id":{"S":id},"name":{"S":name},"email":{"S":email}}. 0, or -1 with why
 * naming the table, the endpoint and the error (never a credential). Any thread. */
int ddb_put_user(const ddb_writer *w, const char *id, const char *name, const char *email,
                 char *why, size_t why_len);

/* DeleteItem of {"id":{"S":id}}; *existed says whether there was such an item. 0, or -1
 * with why. Any thread. */
int ddb_delete_user(const ddb_writer *w, const char *id, int *existed, char *why, size_t why_len);

#endif
