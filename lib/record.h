/*
 * record.h: private interface to record formats (lib/record.c): turning the data of a
 * Kinesis record into invalidated data-ID strings (scache records) or into what a
 * DynamoDB change record does (invalidate, refresh, skip), and building scache records.
 */
#ifndef SCACHE_RECORD_H
#define SCACHE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "ddb.h"
#include "scache/error.h"
#include "scache/stream.h"

/* Why a record delivers nothing although it is well formed. */
typedef enum record_skip {
	RECORD_APPLY = 0, /* deliver keys (and value) */
	RECORD_FOREIGN,   /* a DynamoDB change record of a table not configured */
	RECORD_STALE,     /* a DynamoDB change older than (or the same as) one applied */
} record_skip;

/* What one record does. Owned by the struct; free with record_keys_clear. */
typedef struct record_keys {
	char **keys; /* NUL-terminated copies (a key may hold NUL bytes: use lens) */
	size_t *lens;
	size_t n;
	size_t bad; /* keys of the record that were skipped as malformed data IDs; for a
	               DynamoDB change record, 1 when it is malformed but names its item
	               (keys[0] is then invalidated) */
	/* DynamoDB change records (record_read) only: */
	char *value; /* NULL, or the new value (plain JSON, NUL-terminated) of keys[0]: a
	                refresh, delivered instead of invalidating keys[0] (n is then 1) */
	size_t value_len;
	record_skip skip;
	char table[256]; /* the change record's tableName (cut), for messages */
	uint64_t origin; /* scache records: the publisher's ID ("origin"), 0 when absent or
	                    malformed (Go scache writes none): the writer is unknown */
} record_keys;

void record_keys_clear(record_keys *k);

/*
 * record_parse: the keys of one record's data (after base64) in format fmt.
 * SCACHE_OK: *out holds the valid keys (out->bad > 0 when some were malformed: the
 * record counts as bad but its valid keys still invalidate, which is always safe).
 * SCACHE_ERECORD: the data is not such a record; why (may be NULL) says how, and *out
 * is empty. SCACHE_ENOMEM.
 */
scache_err record_parse(scache_record_format fmt, const unsigned char *data, size_t len,
                        record_keys *out, char *why, size_t whylen);

/* The largest new image stored by a refresh, as plain JSON: DynamoDB's item limit
 * (400 KB, names and values). A larger image (binary as base64 grows by a third)
 * invalidates the item instead: always safe, and the next read loads it. */
#define RECORD_DDB_VALUE_MAX (400u * 1024u)

/* What a reader knows of DynamoDB: the tables of its settings (borrowed) and the order
 * of the changes applied to their items (versions: NULL when no table refreshes).
 * Owned by one reader, used by its polling thread only (ddb_versions is not
 * thread-safe; polls of one reader never overlap). */
typedef struct record_ddb {
	const scache_dynamodb_table *tables;
	size_t ntables;
	ddb_versions *versions;
} record_ddb;

/*
 * record_read: what the data of one Kinesis record (after base64) does, whatever its
 * format: a DynamoDB change record ("eventSource":"aws:dynamodb", wire-formats 5) is
 * applied per ddb's table, anything else is read as format fmt (record_parse). Changes
 * of one item are ordered by ApproximateCreationDateTime, and a change delivered again
 * is known by its eventID (see ddb.h: Kinesis sequence numbers order arrivals, not
 * changes).
 *
 * A change of a configured table names its item (ddb_key_id) and, in invalidate mode,
 * yields that key. In refresh mode the change is noted in ddb->versions first (on
 * SCACHE_ENOMEM nothing is noted: the caller reads the record again), then: STALE ->
 * skip (out->skip); NEWER with a NewImage that converts within RECORD_DDB_VALUE_MAX ->
 * out->value; anything else (REMOVE, no NewImage, too large, TIE, UNKNOWN) -> the key
 * is invalidated. A record of another table -> RECORD_FOREIGN (not an error).
 * SCACHE_OK: act on *out (out->bad > 0: the record counts as malformed, but its keys
 * still invalidate; why says how). SCACHE_ERECORD: malformed, nothing to do (why says
 * how). SCACHE_ENOMEM.
 */
scache_err record_read(record_ddb *ddb, scache_record_format fmt, const unsigned char *data,
                       size_t len, record_keys *out, char *why, size_t whylen);

/*
 * record_change: what one parsed DynamoDB change of the table dt does, whichever stream
 * carried it (Kinesis Data Streams for DynamoDB, DynamoDB Streams). versions: NULL in
 * invalidate mode (the item's key is invalidated, unordered: always safe), else the
 * table's refresh order, keyed by (created time, shard, seq): see ddb.h for what the
 * caller passes as shard and seq. Fills *out (zeroed by the caller) as record_read does:
 * one key, with a value for a refresh, or skip RECORD_STALE. SCACHE_ERECORD (a key that
 * is not the table's; why says how), SCACHE_ENOMEM (nothing noted: read it again).
 */
scache_err record_change(const ddb_table *dt, ddb_versions *versions, const ddb_change *c,
                         const char *shard, const char *seq, record_keys *out, char *why,
                         size_t whylen);

/* Bytes that key adds to the "keys" array of an scache record, with its quotes. */
size_t record_key_size(const char *key, size_t len);

/* Bytes of an scache record without keys ({"keys":[],"ts":"...","origin":"..."} with a
 * 30-byte ts and a 16-digit origin: 77). */
#define RECORD_OVERHEAD_MAX 78

/* Hex digits of an origin in a record. */
#define RECORD_ORIGIN_HEX 16

/*
 * record_build_scache: the scache record of keys[0..n) with timestamp ts (Unix time in
 * nanoseconds, written as Go writes RFC 3339 with nanoseconds), escaped as Go's
 * encoding/json does (so '&' is \u0026). origin (the publisher's ID) is written after
 * "ts" as "origin":"<16 lower-case hex digits>", a field Go scache's decoder ignores;
 * 0 writes none (the record is then byte for byte Go's). *out is malloc'ed (free it).
 * SCACHE_ENOMEM.
 */
scache_err record_build_scache(const char *const *keys, const size_t *lens, size_t n,
                               int64_t ts_unix_ns, uint64_t origin, char **out, size_t *out_len);

/* record_format_ts: RFC 3339 UTC with trailing zeros of the fraction trimmed (Go's
 * RFC3339Nano), e.g. "2026-11-24T13:26:26.241701753Z". buf holds >= 40 bytes. */
size_t record_format_ts(int64_t ts_unix_ns, char *buf, size_t len);

/*
 * record_pack: split keys into records so that each record's data plus partition_key_len
 * stays within max_record_bytes. starts[] receives the index of the first key of each
 * record (n slots suffice); returns the number of records. A key too large for a record
 * alone gets a record of its own, which the caller rejects (the publisher: SCACHE_ETOOBIG).
 */
size_t record_pack(const size_t *key_sizes, size_t n, size_t max_record_bytes,
                   size_t partition_key_len, size_t *starts);

#endif
