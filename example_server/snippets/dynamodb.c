/* The README's DynamoDB snippets: "DynamoDB: read-aside GetItem" (open_tables,
 * reply_user_7) and "DynamoDB: change records on the stream" (start_with_table_changes),
 * as they are there; compiled and run by tests/test_snippets.c. */
#include "snippets.h"

#include <stdio.h>
#include <stdlib.h>

scache_dynamodb *open_tables(void)
{
	static const scache_dynamodb_table tables[] = {
	    {.table = "users", .partition_key = "id"},
	    {.table = "orders", .partition_key = "customer", .sort_key = "order"},
	};
	scache_dynamodb_config dc = {.tables = tables,
	                             .ntables = 2}; /* region, keys: environment */
	scache_dynamodb *db;
	char err[256];
	if (scache_dynamodb_new(&dc, &db, err, sizeof err) != SCACHE_OK) { /* makes no call */
		fprintf(stderr, "scache: %s\n", err);
		return NULL;
	}
	return db;
}

/* In a handler: GET /users/7. */
enum MHD_Result reply_user_7(struct MHD_Connection *connection, scache_dynamodb *db)
{
	char *user, why[256];
	size_t len;
	scache_outcome how;
	scache_err e =
	    scache_dynamodb_get_item(scache_request_current(), db, "users",
	                             "{\"id\":{\"S\":\"7\"}}", &user, &len, &how, why, sizeof why);
	if (e == SCACHE_OK) { /* user: {"id":"7","name":"Ada","age":36}; how: HIT or MISS */
		enum MHD_Result r = reply_json(connection, user, len);
		free(user);
		return r;
	}
	if (e == SCACHE_ENOTFOUND)
		return reply_404(connection);
	/* why: "DynamoDB table 'users': GetItem at https://...: <__type>: <message>" */
	return reply_502(connection, why);
}

scache_middleware *start_with_table_changes(scache_cache *cache)
{
	static const scache_dynamodb_table tables[] = {
	    {.table = "users", .partition_key = "id", .mode = SCACHE_DYNAMODB_REFRESH},
	    {.table = "orders", .partition_key = "customer", .sort_key = "order"}, /* invalidate */
	};
	scache_stream_config stream = {.stream_name = "invalidations",
	                               .dynamodb_tables = tables, /* copied */
	                               .dynamodb_ntables = 2};
	scache_middleware_config mc = {
	    .cache = cache, .stream = &stream, .handler = &users_handler};
	scache_middleware *mw;
	char err[256];
	if (scache_middleware_new(&mc, &mw, err, sizeof err) != SCACHE_OK) {
		fprintf(stderr, "scache: %s\n", err);
		return NULL;
	}
	return mw;
}
