/*
 * fuzz_ddb.c: DynamoDB and DynamoDB Streams answers (lib/ddb.c, lib/ddb_change.c,
 * lib/dynamodb.c). The input is one answer body: a GetItem answer's "Item" becomes plain
 * JSON (ddb_image_to_json, unbounded and bounded: deterministic, valid JSON, within the
 * bound) and names an item of a table keyed by its first one or two attributes
 * (ddb_key_id: a data ID that parses back to the table's source); each element of a
 * Streams GetRecords answer's "Records" is read as a change (ddb_change_from_json, then
 * record_change in refresh order). The raw input is also a number (ddb_number_canonical:
 * its canonical text is a fixed point) and a key text (scache_dynamodb_item_id).
 */
#include "fuzz.h"

#include <string.h>

#include "ddb.h"
#include "record.h"
#include "scache/dynamodb.h"
#include "scache/id.h"
#include "scache/stream.h"

static void check_json(const char *text, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(2 * DDB_MAX_DEPTH + 16);
	if (!tok)
		return;
	json_object *o = json_tokener_parse_ex(tok, text, (int)len);
	FUZZ_CHECK(o && json_tokener_get_error(tok) == json_tokener_success &&
	           json_tokener_get_parse_end(tok) == len);
	json_object_put(o);
	json_tokener_free(tok);
}

static void item(json_object *it)
{
	char why[200], *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	ddb_err e1 = ddb_image_to_json(it, 0, &a, &alen, why, sizeof why);
	ddb_err e2 = ddb_image_to_json(it, 0, &b, &blen, why, sizeof why);
	FUZZ_CHECK(e1 < DDB_ERR_COUNT_ && e1 != DDB_ETOOBIG && e1 != DDB_ENOMEM);
	if (e1 == DDB_OK && e2 == DDB_OK) {
		FUZZ_CHECK(alen == blen && memcmp(a, b, alen + 1) == 0 && strlen(a) == alen);
		check_json(a, alen);
	} else {
		FUZZ_CHECK(e1 == DDB_OK ? b == NULL : a == NULL);
	}
	free(b);
	b = NULL;
	size_t bound = alen / 2 + 1;
	ddb_err e3 = ddb_image_to_json(it, bound, &b, &blen, why, sizeof why);
	if (e3 == DDB_OK)
		FUZZ_CHECK(blen <= bound && e1 == DDB_OK && memcmp(a, b, blen + 1) == 0);
	else
		FUZZ_CHECK(b == NULL);
	free(a);
	free(b);

	if (!json_object_is_type(it, json_type_object))
		return;
	const char *names[2] = {NULL, NULL};
	size_t n = 0;
	json_object_object_foreach(it, k, v)
	{
		(void)v;
		if (n < 2)
			names[n++] = k;
	}
	for (size_t keys = 1; keys <= n; keys++) {
		ddb_table t = {.table = "users", .key = {names[0], keys == 2 ? names[1] : NULL}};
		char *id;
		size_t idlen;
		ddb_err e = ddb_key_id(&t, it, &id, &idlen, why, sizeof why);
		FUZZ_CHECK(e < DDB_ERR_COUNT_);
		if (e != DDB_OK) {
			FUZZ_CHECK(id == NULL);
			continue;
		}
		FUZZ_CHECK(json_object_object_length(it) == (int)keys);
		scache_id parsed;
		scache_err err = scache_id_parse(id, idlen, &parsed);
		FUZZ_CHECK(err == SCACHE_OK || err == SCACHE_ENOMEM);
		if (err == SCACHE_OK) {
			FUZZ_CHECK(strcmp(parsed.source, "dynamodb.users") == 0);
			scache_id_clear(&parsed);
		}
		free(id);
	}
}

static void stream_records(json_object *arr)
{
	ddb_versions *v = ddb_versions_new(0, 0);
	if (!v)
		return;
	static const ddb_table t = {.table = "users", .key = {"id", NULL}};
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n && i < 64; i++) {
		ddb_change c;
		char why[200];
		json_object *rec = json_object_array_get_idx(arr, i);
		ddb_err e = ddb_change_from_json(rec, DDB_SHAPE_STREAMS, &c, why, sizeof why);
		FUZZ_CHECK(e < DDB_ERR_COUNT_ && e != DDB_ENOMEM);
		if (e != DDB_OK)
			continue;
		FUZZ_CHECK(c.table == NULL && c.keys != NULL);
		record_keys k;
		memset(&k, 0, sizeof k);
		scache_err err = record_change(&t, v, &c, "shardId-00000001", c.sequence_number, &k,
		                               why, sizeof why);
		FUZZ_CHECK(err == SCACHE_OK || err == SCACHE_ERECORD || err == SCACHE_ENOMEM);
		FUZZ_CHECK(err != SCACHE_OK || k.n == 1 || k.skip == RECORD_STALE);
		record_keys_clear(&k);
		ddb_change_clear(&c);
	}
	ddb_versions_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char buf[DDB_NUMBER_MAX], again[DDB_NUMBER_MAX];
	int exact;
	if (ddb_number_canonical(size ? s : "", size, buf, &exact, NULL, 0) == DDB_OK) {
		FUZZ_CHECK(ddb_number_canonical(buf, strlen(buf), again, NULL, NULL, 0) == DDB_OK);
		FUZZ_CHECK(strcmp(buf, again) == 0);
	}

	char *text = malloc(size + 1);
	if (!text)
		return 0;
	if (size)
		memcpy(text, data, size);
	text[size] = '\0';
	static const scache_dynamodb_table table = {.table = "users", .partition_key = "id"};
	char *id = NULL;
	size_t idlen;
	scache_err err = scache_dynamodb_item_id(&table, text, &id, &idlen);
	FUZZ_CHECK(err == SCACHE_OK ? id != NULL && strlen(id) == idlen : id == NULL);
	free(id);

	json_tokener *tok = json_tokener_new_ex(2 * DDB_MAX_DEPTH + 16);
	json_object *o = tok ? json_tokener_parse_ex(tok, text, (int)size) : NULL;
	json_tokener_free(tok);
	free(text);
	json_object *v;
	if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "Item", &v))
		item(v);
	if (json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "Records", &v) && json_object_is_type(v, json_type_array))
		stream_records(v);
	if (json_object_is_type(o, json_type_object))
		item(o); /* a bare item, or a change's Keys */
	json_object_put(o);
	return 0;
}
