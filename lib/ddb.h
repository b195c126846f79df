/*
 * ddb.h: private interface to the DynamoDB building blocks (lib/ddb.c), issue 7: pure
 * functions that turn DynamoDB's typed items into plain JSON, item keys into scache data
 * IDs, change records into a struct, and that order the changes of one item. Nothing here
 * does I/O; nothing here is installed or stable.
 *
 * Errors: every fallible function returns a ddb_err and, when why is not NULL, writes a
 * plain-text sentence (not escaped: escaping is the log's job) saying where and why,
 * e.g. `age: N "3x" is not a DynamoDB number`. ddb_err_scache() maps a code to the
 * public scache_err.
 *
 * Threads: ddb_image_to_json, ddb_number_*, ddb_key_id and ddb_change_* are pure and
 * thread-safe (on distinct outputs; a json_object must not be shared between threads
 * while json-c counts its references). A ddb_versions is not thread-safe: its owner
 * serialises the calls (the poller thread is its only user).
 */
#ifndef SCACHE_DDB_H
#define SCACHE_DDB_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "scache/error.h"

typedef enum ddb_err {
	DDB_OK = 0,
	DDB_EINVAL,  /* an argument is invalid (NULL, or a configuration without table/keys) */
	DDB_ENOMEM,  /* an allocation failed */
	DDB_ETYPE,   /* not an AttributeValue: unknown type, no type or two, wrong JSON type */
	DDB_ENUMBER, /* an N (or NS element) is not a DynamoDB number */
	DDB_EBASE64, /* a B (or BS element) is not base64 */
	DDB_EDEPTH,  /* M and L nested deeper than DDB_MAX_DEPTH */
	DDB_ETOOBIG, /* the JSON text would exceed the caller's bound */
	DDB_EKEY,    /* a key attribute is missing, extra, or not of type S, N or B */
	DDB_ENOTDDB, /* the data is not a DynamoDB change record (try another format) */
	DDB_ERECORD, /* a DynamoDB change record, but malformed */
	DDB_ERR_COUNT_
} ddb_err;

/* A static description of err ("unknown error" for unknown codes). */
const char *ddb_strerror(ddb_err err);

/* The public code for err: ENOMEM, EINVAL and ETOOBIG map to theirs, the rest to
 * SCACHE_ERECORD. */
scache_err ddb_err_scache(ddb_err err);

/* DynamoDB nests maps and lists at most 32 levels deep. */
#define DDB_MAX_DEPTH 32

/* ---- Numbers ---------------------------------------------------------------------------
 *
 * Syntax (what DynamoDB accepts, as dynalite reproduces it with big.js):
 *     -?(D+(.D*)?|.D+)([eE][+-]?D+)?      D a decimal digit
 * so ".5", "5." and "1E+2" are numbers; "+5", " 5", "1e", "Infinity", "0x10" are not.
 * The value must have at most 38 significant digits (leading and trailing zeros do not
 * count) and, unless zero, a magnitude from 1E-130 to 9.99...E+125 (the position of its
 * first significant digit from -130 to 125).
 *
 * Canonical text: plain decimal notation, no exponent, no leading zeros but one before
 * the point, no trailing zeros after it, no point when integral, "-" only when negative
 * ("-0" -> "0", "1E+2" -> "100", "3.6E1" -> "36", "-.50" -> "-0.5"). Numbers that are
 * equal have the same canonical text, as DynamoDB compares numbers by value.
 *
 * Exact in JSON: a number is written as a JSON number only when every JSON reader gets
 * its exact value back: an integer of magnitude at most 2^53-1, or a non-integer whose
 * shortest round-trip representation as an IEEE double is that same decimal (so 0.1 and
 * 0.000001 are numbers, 0.1000000000000000055511151231257827 is not). Every other number
 * ("12345678901234567890", "1E+20", 38-digit decimals) is written as a JSON string of its
 * canonical text. Both forms use the canonical text, so the output is deterministic.
 */

/* The longest canonical text, with its NUL ("-0." + 129 zeros + 38 digits fits). */
#define DDB_NUMBER_MAX 176

/*
 * ddb_number_canonical: check the number text s (len bytes) and write its canonical text
 * into buf (DDB_NUMBER_MAX bytes). *exact, if not NULL, is set to 1 when the number is
 * exact in JSON (above). DDB_ENUMBER (why says which rule failed), DDB_EINVAL.
 */
ddb_err ddb_number_canonical(const char *s, size_t len, char buf[DDB_NUMBER_MAX], int *exact,
                             char *why, size_t whylen);

/* ---- Attribute values to plain JSON ---------------------------------------------------
 *
 * S -> string; N -> number or string (above); B -> its base64 string (canonical: decoded
 * and encoded again, padded); BOOL -> true/false; NULL -> null (either boolean: DynamoDB
 * writes true, older services refused false, newer ones accept it); M -> object; L ->
 * array; SS -> array of strings; NS -> array of numbers (each as N); BS -> array of base64
 * strings. Sets must not be empty (DynamoDB has no empty set). Object members keep the
 * input's order; strings are escaped (", \, control characters as \u00XX, invalid UTF-8
 * as U+FFFD), nothing else: the same input always gives the same bytes.
 */

/*
 * ddb_image_to_json: the plain JSON text of an item or image in AttributeValue form
 * ({"id":{"S":"7"},"age":{"N":"36"}} -> {"id":"7","age":36}). image is borrowed. max_len
 * bounds the text's length (0: no bound). On DDB_OK *out owns a NUL-terminated string
 * (free() it) and *out_len, if not NULL, is its length; on error *out is NULL.
 * Errors: DDB_EINVAL (image not a JSON object, out NULL), DDB_ETYPE, DDB_ENUMBER,
 * DDB_EBASE64, DDB_EDEPTH, DDB_ETOOBIG, DDB_ENOMEM.
 */
ddb_err ddb_image_to_json(json_object *image, size_t max_len, char **out, size_t *out_len,
                          char *why, size_t whylen);

/* ---- Keys to data IDs -----------------------------------------------------------------
 *
 * The id of an item is the text of its key: S as it is, N canonical (so "36", "36.0" and
 * "3.6E1" name one item), B as canonical base64. With a sort key, each part is escaped
 * ('\' -> "\\", '|' -> "\|") and the two are joined by '|': the first unescaped '|' ends
 * the partition key, so ("a|b","c") -> "a\|b|c" and ("a","b|c") -> "a|b\|c" differ. A
 * partition key alone is not escaped ("a|b" -> "a|b"): a table's key schema is fixed, so
 * its ids never mix the two forms.
 */

/* One table. Strings are borrowed. Zeroed fields are defaults. */
typedef struct ddb_table {
	const char *table;  /* the table's name; required */
	const char *source; /* the data-ID source; NULL or "": "dynamodb.<table>" */
	const char *key[2]; /* partition key name (required), sort key name (NULL: none) */
} ddb_table;

/*
 * ddb_key_id: the data-ID string (scache_id_encode_alloc: source and id) of the item whose
 * key is keys, a JSON object in AttributeValue form: a change record's Keys or a GetItem
 * Key. keys must hold exactly the table's key attributes (an extra one means the
 * configured key schema is wrong: two items would share an id). On DDB_OK *out owns a
 * NUL-terminated string (free() it), *out_len if not NULL its length.
 * Errors: DDB_EINVAL (no table name or partition key, keys not an object, out NULL),
 * DDB_EKEY (a key attribute missing, extra, or not S/N/B), DDB_ENUMBER, DDB_EBASE64,
 * DDB_ETYPE, DDB_ENOMEM.
 */
ddb_err ddb_key_id(const ddb_table *table, json_object *keys, char **out, size_t *out_len,
                   char *why, size_t whylen);

/* ---- Change records --------------------------------------------------------------------
 *
 * Kinesis Data Streams for DynamoDB (DDB_SHAPE_KINESIS, the default): the record's data
 * (after base64) is JSON with "eventSource":"aws:dynamodb", "eventName" INSERT, MODIFY or
 * REMOVE, "tableName", and "dynamodb" {"ApproximateCreationDateTime", "Keys", "NewImage"
 * (not with KEYS_ONLY or OLD_IMAGE views, nor in REMOVE), ...}. The time is in
 * milliseconds, or in microseconds when "ApproximateCreationDateTimePrecision" says
 * "MICROSECOND" (the field decides when present: "MILLISECOND" or "MICROSECOND", anything
 * else is malformed); without the field, values of 10^14 or more are microseconds (in
 * milliseconds that is the year 5138; in microseconds, 1973).
 *
 * DynamoDB Streams (DDB_SHAPE_STREAMS): one element of GetRecords' Records[], the
 * "dynamodb" object inside, with ApproximateCreationDateTime in seconds (a JSON number,
 * possibly fractional), dynamodb.SequenceNumber, and no tableName (the stream names the
 * table). eventSource may be absent; if present it must be "aws:dynamodb".
 */

typedef enum ddb_shape {
	DDB_SHAPE_KINESIS = 0,
	DDB_SHAPE_STREAMS = 1,
} ddb_shape;

typedef enum ddb_event {
	DDB_EVENT_INSERT = 1,
	DDB_EVENT_MODIFY,
	DDB_EVENT_REMOVE,
} ddb_event;

/* A parsed change. Pointers point into root, which the struct owns: ddb_change_clear. */
typedef struct ddb_change {
	json_object *root;
	const char *table; /* tableName; NULL in DDB_SHAPE_STREAMS */
	ddb_event event;
	json_object *keys;      /* dynamodb.Keys: a non-empty object */
	json_object *new_image; /* dynamodb.NewImage (an object), or NULL: none, or REMOVE */
	int64_t created_us;     /* ApproximateCreationDateTime in microseconds since the epoch */
	const char *sequence_number; /* dynamodb.SequenceNumber, or NULL (Kinesis: none) */
} ddb_change;

/* Free what *c owns and zero it. Accepts NULL and zeroed structs. */
void ddb_change_clear(ddb_change *c);

/*
 * ddb_change_parse: parse a change record's JSON text (len bytes; trailing whitespace is
 * allowed) of the given shape into *out. On DDB_OK *out owns the parsed document; on
 * error *out is zeroed.
 * DDB_ENOTDDB: not a DynamoDB change record (not JSON, not an object, no
 * "eventSource":"aws:dynamodb"): the caller may try another format (the scache format).
 * DDB_ERECORD: a DynamoDB record, but eventName, tableName, Keys, NewImage or the time is
 * missing or wrong (why says which). DDB_EINVAL, DDB_ENOMEM.
 */
ddb_err ddb_change_parse(const char *data, size_t len, ddb_shape shape, ddb_change *out, char *why,
                         size_t whylen);

/* ddb_change_from_json: the same for a record already parsed; takes a reference of record
 * (json_object_get) on success. */
ddb_err ddb_change_from_json(json_object *record, ddb_shape shape, ddb_change *out, char *why,
                             size_t whylen);

/* ---- Ordering ---------------------------------------------------------------------------
 *
 * Records of one item can arrive late and more than once (Kinesis). A ddb_versions
 * remembers, per data ID, the newest change applied: (creation time, shard ID, sequence
 * number). A change is newer when its time is later; at the same time, the same shard and
 * sequence (the same change delivered again) is stale; within one shard, a larger
 * sequence number (compared as decimal numbers of any length) is newer; at the same time
 * across shards (or without decimal sequence numbers) the order is unknown: a tie, and
 * once tied an ID stays tied at that time. On a Kinesis stream the caller passes no shard
 * and the record's eventID as seq: a Kinesis sequence number orders arrivals, not
 * changes (DynamoDB's writer may put one change twice, the copy with a later number), so
 * two changes of one item in the same time unit tie, while a copy of the change applied
 * is recognised by its eventID. Ties and unknowns are invalidated, never
 * refreshed: an invalidation is always safe, a refresh with the wrong image is not.
 *
 * Memory is bounded by time and count. The newest creation time seen (record time, not
 * the clock) minus the horizon is a cut-off: entries older than it are forgotten, and so
 * is the least recently updated entry beyond max_entries. The floor is the newest time
 * ever forgotten. A change for an ID without an entry is newer when its time is above the
 * floor (anything applied earlier would still be remembered), and unknown otherwise.
 *
 * Not thread-safe: the caller serialises (one poller thread).
 */

typedef enum ddb_order {
	DDB_ORDER_NEWER = 0, /* newer than what was applied: apply it (refresh) */
	DDB_ORDER_STALE,     /* older than or the same change as what was applied: skip it */
	DDB_ORDER_TIE,       /* same time as what was applied, order unknown: invalidate */
	DDB_ORDER_UNKNOWN,   /* at or below the floor, what was applied is forgotten: invalidate */
} ddb_order;

typedef struct ddb_versions ddb_versions;

/* Defaults of ddb_versions_new's zero arguments. */
#define DDB_VERSIONS_HORIZON_US  (300 * 1000000LL) /* 5 minutes */
#define DDB_VERSIONS_MAX_ENTRIES 100000

/* A new, empty ddb_versions (horizon_us 0 and max_entries 0 take the defaults above), or
 * NULL when out of memory. */
ddb_versions *ddb_versions_new(int64_t horizon_us, size_t max_entries);

/* Free v. Accepts NULL. */
void ddb_versions_free(ddb_versions *v);

/*
 * ddb_versions_check: how the change (created_us, shard, seq) of data ID id (id_len bytes)
 * compares with what was applied for it. shard and seq may be NULL (unknown: same-time
 * changes then tie); a seq that is not a decimal number also ties. Changes nothing.
 */
ddb_order ddb_versions_check(const ddb_versions *v, const char *id, size_t id_len,
                             int64_t created_us, const char *shard, const char *seq);

/*
 * ddb_versions_record: note that the change was applied (refreshed or invalidated) and
 * return how it compared (as ddb_versions_check did before the call): NEWER replaces the
 * entry, TIE marks it tied, STALE and UNKNOWN change no entry. Then forget what is past
 * the horizon or the count. *order may be NULL. DDB_EINVAL, DDB_ENOMEM (nothing changed).
 */
ddb_err ddb_versions_record(ddb_versions *v, const char *id, size_t id_len, int64_t created_us,
                            const char *shard, const char *seq, ddb_order *order);

/* Entries held, and the floor (0 until something was forgotten). */
size_t ddb_versions_count(const ddb_versions *v);
int64_t ddb_versions_floor(const ddb_versions *v);

#endif
