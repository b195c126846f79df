/*
 * dynamodb.c: read-aside GetItem (scache/dynamodb.h): a DynamoDB item is read through the
 * middleware's cache, as plain JSON, under the same data ID its change records name.
 *
 * Design:
 * - The item's data ID comes from its key (ddb_key_id, lib/ddb.c), so a change record of
 *   the item and a get_item of it meet on one cache entry.
 * - A miss goes through the middleware's get-or-load: one GetItem per ID in flight, and
 *   the stale-add guard (a load that began before an invalidation of the ID is not
 *   cached). The GetItem is strongly consistent: see get_item_load.
 * - "No such item" is not cached unless negative_ttl_ms is set; then it is cached as an
 *   empty value (a plain JSON item is never empty) that lives exactly negative_ttl_ms,
 *   whatever the cache's window, and is removed by invalidations like any entry.
 * - The client is shared by every handler thread; an AWS client (aws.c) serves one call
 *   at a time, so idle ones wait in a small pool: as many as calls ever ran at once.
 */
#include "dynamodb_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ddb.h"
#include "middleware_internal.h"
#include "scache/id.h"
#include "util.h"

const aws_service dynamodb_service = {
    .name = "dynamodb",
    .label = "DynamoDB",
    .target_prefix = "DynamoDB_20120810",
    .content_type = "application/x-amz-json-1.0",
    .endpoint_env = "AWS_ENDPOINT_URL_DYNAMODB",
};

/* A table of the configuration, its strings owned. */
typedef struct dynamodb_table {
	char *name;
	char *partition_key;
	char *sort_key; /* NULL: none */
	char *source;   /* NULL: "dynamodb.<table>" */
	ddb_table view; /* the same, as ddb_key_id takes it */
} dynamodb_table;

struct scache_dynamodb {
	aws_settings settings;
	dynamodb_table *tables;
	size_t ntables;
	uint64_t negative_ttl_ms;

	pthread_mutex_t mu; /* guards the pool and calls */
	aws_client **idle;
	size_t nidle, cap;
	uint64_t calls;
};

/* ---- configuration ------------------------------------------------------------- */

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src || !*src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

static scache_err check_tables(const scache_dynamodb_config *cfg, char *errbuf, size_t errlen)
{
	if (!cfg->ntables || !cfg->tables) {
		util_fmt(errbuf, errlen, "no DynamoDB tables: set tables and ntables");
		return SCACHE_ECONFIG;
	}
	for (size_t i = 0; i < cfg->ntables; i++) {
		const scache_dynamodb_table *t = &cfg->tables[i];
		if (!t->table || !*t->table) {
			util_fmt(errbuf, errlen, "DynamoDB table %zu has no name", i);
			return SCACHE_ECONFIG;
		}
		if (!t->partition_key || !*t->partition_key) {
			util_fmt(errbuf, errlen, "DynamoDB table '%s' has no partition_key",
			         t->table);
			return SCACHE_ECONFIG;
		}
		if (t->mode != SCACHE_DYNAMODB_INVALIDATE && t->mode != SCACHE_DYNAMODB_REFRESH) {
			util_fmt(errbuf, errlen, "DynamoDB table '%s' has an unknown mode %d",
			         t->table, (int)t->mode);
			return SCACHE_ECONFIG;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(cfg->tables[j].table, t->table)) {
				util_fmt(errbuf, errlen, "DynamoDB table '%s' is configured twice",
				         t->table);
				return SCACHE_ECONFIG;
			}
	}
	if (cfg->negative_ttl_ms > UINT64_MAX / 1000000u) {
		util_fmt(errbuf, errlen, "negative_ttl_ms is too large");
		return SCACHE_ECONFIG;
	}
	return SCACHE_OK;
}

static int copy_table(dynamodb_table *dst, const scache_dynamodb_table *src)
{
	if (dup_opt(&dst->name, src->table) || dup_opt(&dst->partition_key, src->partition_key) ||
	    dup_opt(&dst->sort_key, src->sort_key) || dup_opt(&dst->source, src->source))
		return -1;
	dst->view.table = dst->name;
	dst->view.source = dst->source;
	dst->view.key[0] = dst->partition_key;
	dst->view.key[1] = dst->sort_key;
	return 0;
}

scache_err scache_dynamodb_new(const scache_dynamodb_config *config, scache_dynamodb **out,
                               char *errbuf, size_t errlen)
{
	util_fmt(errbuf, errlen, "%s", "");
	if (!out)
		return SCACHE_EINVAL;
	*out = NULL;
	if (!config) {
		util_fmt(errbuf, errlen, "no configuration");
		return SCACHE_ECONFIG;
	}
	scache_err err = check_tables(config, errbuf, errlen);
	if (err)
		return err;

	scache_dynamodb *db = calloc(1, sizeof *db);
	if (!db || pthread_mutex_init(&db->mu, NULL)) {
		free(db);
		util_fmt(errbuf, errlen, "out of memory");
		return SCACHE_ENOMEM;
	}
	db->negative_ttl_ms = config->negative_ttl_ms;
	aws_config ac = {
	    .region = config->region,
	    .endpoint = config->endpoint,
	    .access_key_id = config->access_key_id,
	    .secret_access_key = config->secret_access_key,
	    .session_token = config->session_token,
	    .connect_timeout_ms = config->connect_timeout_ms,
	    .timeout_ms = config->timeout_ms,
	    .max_retries = config->max_retries,
	};
	err = aws_settings_resolve(&dynamodb_service, &ac, &db->settings, errbuf, errlen);
	if (err)
		goto fail;
	db->tables = calloc(config->ntables, sizeof *db->tables);
	err = db->tables ? SCACHE_OK : SCACHE_ENOMEM;
	for (size_t i = 0; i < config->ntables && !err; i++) {
		db->ntables = i + 1; /* freed whole or in part on failure */
		if (copy_table(&db->tables[i], &config->tables[i]))
			err = SCACHE_ENOMEM;
	}
	if (err) {
		util_fmt(errbuf, errlen, "out of memory");
		goto fail;
	}
	/* One client now: libcurl's start-up fails here, not in the first request. */
	db->idle = calloc(4, sizeof(aws_client *));
	if (!db->idle) {
		err = SCACHE_ENOMEM;
		util_fmt(errbuf, errlen, "out of memory");
		goto fail;
	}
	db->cap = 4;
	err = aws_client_new(&dynamodb_service, &db->settings, &db->idle[0], errbuf, errlen);
	if (err)
		goto fail;
	db->nidle = 1;
	*out = db;
	return SCACHE_OK;
fail:
	scache_dynamodb_free(db);
	return err;
}

void scache_dynamodb_free(scache_dynamodb *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->nidle; i++)
		aws_client_free(db->idle[i]);
	free(db->idle);
	for (size_t i = 0; i < db->ntables; i++) {
		free(db->tables[i].name);
		free(db->tables[i].partition_key);
		free(db->tables[i].sort_key);
		free(db->tables[i].source);
	}
	free(db->tables);
	aws_settings_clear(&db->settings);
	pthread_mutex_destroy(&db->mu);
	free(db);
}

uint64_t dynamodb_calls(scache_dynamodb *db)
{
	pthread_mutex_lock(&db->mu);
	uint64_t n = db->calls;
	pthread_mutex_unlock(&db->mu);
	return n;
}

const char *dynamodb_endpoint(const scache_dynamodb *db)
{
	return db->settings.endpoint;
}

/* ---- the pool of AWS clients ------------------------------------------------------- */

static scache_err client_take(scache_dynamodb *db, aws_client **out, char *errbuf, size_t errlen)
{
	pthread_mutex_lock(&db->mu);
	*out = db->nidle ? db->idle[--db->nidle] : NULL;
	pthread_mutex_unlock(&db->mu);
	if (*out)
		return SCACHE_OK;
	return aws_client_new(&dynamodb_service, &db->settings, out, errbuf, errlen);
}

static void client_give(scache_dynamodb *db, aws_client *c, unsigned attempts)
{
	pthread_mutex_lock(&db->mu);
	db->calls += attempts;
	if (db->nidle == db->cap) {
		aws_client **p = realloc(db->idle, 2 * db->cap * sizeof(aws_client *));
		if (p) {
			db->idle = p;
			db->cap *= 2;
		}
	}
	if (db->nidle < db->cap) {
		db->idle[db->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&db->mu);
	aws_client_free(c); /* only when the pool could not grow */
}

/* ---- keys ------------------------------------------------------------------------ */

/* The key text as a JSON object (nothing but whitespace may follow it). */
static json_object *parse_key(const char *key)
{
	size_t len = strlen(key);
	if (len > (size_t)INT32_MAX)
		return NULL;
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return NULL;
	json_object *o = json_tokener_parse_ex(tok, key, (int)len);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (o && end < len && strchr(" \t\r\n", key[end]))
		end++;
	if (o && (end != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

scache_err scache_dynamodb_item_id(const scache_dynamodb_table *table, const char *key, char **out,
                                   size_t *out_len)
{
	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!table || !key || !out)
		return SCACHE_EINVAL;
	json_object *keys = parse_key(key);
	if (!keys)
		return SCACHE_EINVAL;
	ddb_table t = {.table = table->table,
	               .source = table->source,
	               .key = {table->partition_key, table->sort_key}};
	ddb_err err = ddb_key_id(&t, keys, out, out_len, NULL, 0);
	json_object_put(keys);
	return err == DDB_ENOMEM ? SCACHE_ENOMEM : err ? SCACHE_EINVAL : SCACHE_OK;
}

/* ---- GetItem ---------------------------------------------------------------------- */

/* One get_item's loader state. */
typedef struct get_item_call {
	scache_dynamodb *db;
	const dynamodb_table *table;
	json_object *key; /* AttributeValue form, as the caller gave it */
	char *errbuf;
	size_t errlen;
	uint64_t ttl_ms; /* the added entry's lifetime, set by the loader (0: the cache's) */
} get_item_call;

/* The error of a GetItem answer. A ValidationException says the request was wrong, and
 * the only part of it a caller chose is the key: a key that does not match the table. */
static scache_err answer_error(const aws_result *res)
{
	if (res->err == SCACHE_ESERVICE && !strcmp(res->name, "ValidationException"))
		return SCACHE_EINVAL;
	return res->err;
}

static scache_err get_item_load(void *arg, void **value, size_t *len)
{
	get_item_call *c = arg;
	const char *tname = c->table->name;
	c->ttl_ms = 0;

	json_object *req = json_object_new_object();
	json_object *key = json_object_get(c->key);
	if (!req || json_object_object_add(req, "TableName", json_object_new_string(tname)) ||
	    json_object_object_add(req, "Key", key) ||
	    /* Strongly consistent: an eventually consistent read may return data older than
	     * a change whose invalidation (or refresh) this instance already applied, and
	     * that old data would then be cached as if it were fresh, until it expires. */
	    json_object_object_add(req, "ConsistentRead", json_object_new_boolean(1))) {
		json_object_put(req);
		util_fmt(c->errbuf, c->errlen, "out of memory");
		return SCACHE_ENOMEM;
	}

	aws_client *client;
	char why[256];
	scache_err err = client_take(c->db, &client, why, sizeof why);
	if (err) {
		json_object_put(req);
		util_fmt(c->errbuf, c->errlen, "DynamoDB table '%s': %s", tname, why);
		return err;
	}
	aws_result res;
	char shown[256]; /* the endpoint for messages: the client goes back to the pool */
	util_copy_str(shown, sizeof shown, aws_client_endpoint(client));
	aws_call(client, "GetItem", req, &res);
	json_object_put(req);
	client_give(c->db, client, res.attempts);
	if (res.err) {
		/* res.message names the AWS error (__type and message), masked */
		util_fmt(c->errbuf, c->errlen, "DynamoDB table '%s': %s", tname, res.message);
		err = answer_error(&res);
		aws_result_clear(&res);
		return err;
	}

	json_object *item = NULL;
	if (!json_object_object_get_ex(res.body, "Item", &item)) {
		aws_result_clear(&res);
		if (!c->db->negative_ttl_ms)
			return SCACHE_ENOTFOUND;
		/* the "no such item" marker: an empty value, with a lifetime of its own */
		*value = malloc(1);
		if (!*value)
			return SCACHE_ENOMEM;
		*len = 0;
		c->ttl_ms = c->db->negative_ttl_ms;
		return SCACHE_OK;
	}
	char *json = NULL;
	size_t n = 0;
	ddb_err derr = json_object_is_type(item, json_type_object)
	                   ? ddb_image_to_json(item, 0, &json, &n, why, sizeof why)
	                   : DDB_ETYPE;
	if (derr == DDB_ETYPE && !json_object_is_type(item, json_type_object))
		util_fmt(why, sizeof why, "Item is not an object");
	aws_result_clear(&res);
	if (derr) {
		util_fmt(c->errbuf, c->errlen,
		         "DynamoDB table '%s': GetItem at %s answered an item that is not "
		         "DynamoDB JSON: %s",
		         tname, shown, why);
		return derr == DDB_ENOMEM ? SCACHE_ENOMEM : SCACHE_ESERVICE;
	}
	*value = json;
	*len = n;
	return SCACHE_OK;
}

static const dynamodb_table *find_table(const scache_dynamodb *db, const char *name)
{
	for (size_t i = 0; i < db->ntables; i++)
		if (!strcmp(db->tables[i].name, name))
			return &db->tables[i];
	return NULL;
}

/* The (source, id) of the item with this key: the data ID decoded again, as get-or-load
 * encodes its own. SCACHE_EINVAL with errbuf saying why. */
static scache_err item_source_id(const dynamodb_table *t, json_object *key, scache_id *out,
                                 char *errbuf, size_t errlen)
{
	char why[256], *data_id;
	size_t len;
	memset(out, 0, sizeof *out);
	ddb_err derr = ddb_key_id(&t->view, key, &data_id, &len, why, sizeof why);
	if (derr) {
		util_fmt(errbuf, errlen, "DynamoDB table '%s': %s", t->name, why);
		return derr == DDB_ENOMEM ? SCACHE_ENOMEM : SCACHE_EINVAL;
	}
	scache_err err = scache_id_parse(data_id, len, out);
	free(data_id);
	if (err == SCACHE_ENOMEM)
		return err;
	if (err || strlen(out->id) != out->id_len) { /* get-or-load takes C strings */
		scache_id_clear(out);
		util_fmt(errbuf, errlen, "DynamoDB table '%s': a key with a NUL character",
		         t->name);
		return SCACHE_EINVAL;
	}
	return SCACHE_OK;
}

scache_err scache_dynamodb_get_item(scache_request *req, scache_dynamodb *db, const char *table,
                                    const char *key, char **item, size_t *len,
                                    scache_outcome *outcome, char *errbuf, size_t errlen)
{
	util_fmt(errbuf, errlen, "%s", "");
	if (item)
		*item = NULL;
	if (len)
		*len = 0;
	if (outcome)
		*outcome = SCACHE_OUTCOME_MISS;
	if (!req || !db || !table || !key || !item || !len) {
		util_fmt(errbuf, errlen, "a required argument is NULL");
		return SCACHE_EINVAL;
	}
	const dynamodb_table *t = find_table(db, table);
	if (!t) {
		util_fmt(errbuf, errlen, "DynamoDB table '%s' is not one of the client's tables",
		         table);
		return SCACHE_EINVAL;
	}
	json_object *keys = parse_key(key);
	if (!keys) {
		util_fmt(errbuf, errlen, "DynamoDB table '%s': the key is not a JSON object",
		         t->name);
		return SCACHE_EINVAL;
	}
	scache_id id;
	scache_err err = item_source_id(t, keys, &id, errbuf, errlen);
	if (err) {
		json_object_put(keys);
		return err;
	}

	get_item_call call = {
	    .db = db, .table = t, .key = keys, .errbuf = errbuf, .errlen = errlen};
	void *v = NULL;
	size_t n = 0;
	scache_outcome oc = SCACHE_OUTCOME_MISS;
	err =
	    mw_get_or_load(req, id.source, id.id, get_item_load, &call, &call.ttl_ms, &v, &n, &oc);
	scache_id_clear(&id);
	json_object_put(keys);
	if (outcome)
		*outcome = oc;
	if (err == SCACHE_OK && n == 0) /* the "no such item" marker */
		err = SCACHE_ENOTFOUND;
	if (err) {
		free(v);
		if (errbuf && errlen && !errbuf[0] && err != SCACHE_ENOTFOUND)
			/* a concurrent get_item of this item failed, and this one shared it */
			util_fmt(errbuf, errlen, "DynamoDB table '%s': GetItem failed: %s", t->name,
			         scache_strerror(err));
		return err;
	}
	char *s = realloc(v, n + 1); /* NUL-terminated for the caller */
	if (!s) {
		free(v);
		util_fmt(errbuf, errlen, "out of memory");
		return SCACHE_ENOMEM;
	}
	s[n] = '\0';
	*item = s;
	*len = n;
	return SCACHE_OK;
}
