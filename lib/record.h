/*
 * record.h: private interface to record formats (lib/record.c): turning the data of a
 * Kinesis record into invalidated data-ID strings, and building scache records.
 */
#ifndef SCACHE_RECORD_H
#define SCACHE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "scache/error.h"
#include "scache/stream.h"

/* The keys one record invalidates. Owned by the struct; free with record_keys_clear. */
typedef struct record_keys {
	char **keys; /* NUL-terminated copies (a key may hold NUL bytes: use lens) */
	size_t *lens;
	size_t n;
	size_t bad; /* keys of the record that were skipped as malformed data IDs */
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

/* Bytes that key adds to the "keys" array of an scache record, with its quotes. */
size_t record_key_size(const char *key, size_t len);

/* Bytes of an scache record without keys ({"keys":[],"ts":"..."} with a 30-byte ts: 49). */
#define RECORD_OVERHEAD_MAX 50

/*
 * record_build_scache: the scache record of keys[0..n) with timestamp ts (Unix time in
 * nanoseconds, written as Go writes RFC 3339 with nanoseconds), escaped as Go's
 * encoding/json does (so '&' is \u0026). *out is malloc'ed (free it). SCACHE_ENOMEM.
 */
scache_err record_build_scache(const char *const *keys, const size_t *lens, size_t n,
                               int64_t ts_unix_ns, char **out, size_t *out_len);

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
