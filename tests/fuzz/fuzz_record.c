/*
 * fuzz_record.c: the data of one Kinesis record, as every reader sees it. The input is
 * read as an scache record (record_parse; wire-formats 2, with the optional "origin"),
 * through record_read with two configured tables ("users", invalidate; "orders", a sort
 * key and refresh), read twice so that the second read of a refresh meets its own entry
 * in the refresh order, and as a DynamoDB change record of both shapes (Kinesis Data
 * Streams for DynamoDB, DynamoDB Streams; ddb_change_parse then record_change).
 * Invariants checked: only the documented codes (never ENOMEM: nothing fails to
 * allocate, so an ENOMEM is an input misjudged); an error leaves nothing; every key is
 * NUL-terminated at its length; a change that refreshed, read again, refreshes nothing
 * (stale with its eventID, a tie without).
 */
#include "fuzz.h"

#include <string.h>

#include "ddb.h"
#include "record.h"

static void check_keys(scache_err err, const record_keys *k)
{
	/* no allocation fails while fuzzing: an ENOMEM would be an input misjudged */
	FUZZ_CHECK(err == SCACHE_OK || err == SCACHE_ERECORD);
	if (err != SCACHE_OK) {
		FUZZ_CHECK(k->n == 0 && k->value == NULL);
		return;
	}
	for (size_t i = 0; i < k->n; i++)
		FUZZ_CHECK(k->keys[i] && k->keys[i][k->lens[i]] == '\0');
	if (k->value) {
		FUZZ_CHECK(k->n == 1 && k->value[k->value_len] == '\0');
		FUZZ_CHECK(k->value_len <= RECORD_DDB_VALUE_MAX);
	}
}

static const scache_dynamodb_table tables[] = {
    {.table = "users", .partition_key = "id", .mode = SCACHE_DYNAMODB_INVALIDATE},
    {.table = "orders",
     .partition_key = "customer",
     .sort_key = "n",
     .source = "db.orders",
     .mode = SCACHE_DYNAMODB_REFRESH},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	record_keys k;

	memset(&k, 0, sizeof k);
	check_keys(record_parse(SCACHE_RECORD_SCACHE, data, size, &k, why, sizeof why), &k);
	record_keys_clear(&k);

	record_ddb ddb = {.tables = tables, .ntables = 2, .versions = ddb_versions_new(0, 0)};
	if (!ddb.versions)
		return 0;
	memset(&k, 0, sizeof k);
	scache_err err = record_read(&ddb, SCACHE_RECORD_SCACHE, data, size, &k, why, sizeof why);
	check_keys(err, &k);
	int refreshed = err == SCACHE_OK && k.value != NULL;
	record_keys_clear(&k);
	memset(&k, 0, sizeof k);
	err = record_read(&ddb, SCACHE_RECORD_SCACHE, data, size, &k, why, sizeof why);
	check_keys(err, &k);
	if (refreshed && err == SCACHE_OK) /* the same change again: never applied twice */
		FUZZ_CHECK(k.value == NULL);
	record_keys_clear(&k);

	static const ddb_table dt = {.table = "orders", .key = {"customer", "n"}};
	for (int shape = DDB_SHAPE_KINESIS; shape <= DDB_SHAPE_STREAMS; shape++) {
		ddb_change c;
		ddb_err de = ddb_change_parse((const char *)data, size, (ddb_shape)shape, &c, why,
		                              sizeof why);
		FUZZ_CHECK(de < DDB_ERR_COUNT_ && de != DDB_ENOMEM);
		if (de != DDB_OK) {
			FUZZ_CHECK(c.root == NULL && c.keys == NULL);
			continue;
		}
		FUZZ_CHECK(c.keys && json_object_is_type(c.keys, json_type_object));
		FUZZ_CHECK(c.event >= DDB_EVENT_INSERT && c.event <= DDB_EVENT_REMOVE);
		FUZZ_CHECK(shape == DDB_SHAPE_STREAMS || c.table != NULL);
		memset(&k, 0, sizeof k);
		err = record_change(&dt, ddb.versions, &c, "shardId-000000000000",
		                    c.sequence_number, &k, why, sizeof why);
		check_keys(err, &k);
		record_keys_clear(&k);
		ddb_change_clear(&c);
	}
	ddb_versions_free(ddb.versions);
	return 0;
}
