/*
 * ddb_change.c: DynamoDB change records as a struct (the Kinesis Data Streams for DynamoDB
 * shape and the DynamoDB Streams shape), and the order of one item's changes: records
 * can repeat and arrive late, and an older change must never overwrite a newer one.
 *
 * The version table forgets by record time, not by the clock, so it behaves the same in
 * tests and in production, and forgetting only ever turns a refresh into an
 * invalidation. Pure functions, no I/O, pinned by tests/test_ddb.c.
 */
#include "ddb.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* uthash reports a failed allocation instead of exiting (as in cache.c). */
static _Thread_local int ddb_oomed;
#define HASH_NONFATAL_OOM        1
#define uthash_nonfatal_oom(obj) ((void)(obj), ddb_oomed = 1)
#include <uthash.h>

#include "kinesis.h" /* kinesis_seq_cmp */
#include "util.h"    /* util_fmt */

#define SHOW          40
#define SHOWN(len)    ((int)((len) > SHOW ? SHOW : (len)))
#define ELLIPSIS(len) ((len) > SHOW ? "..." : "")

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ---- change records -------------------------------------------------------------- */

void ddb_change_clear(ddb_change *c)
{
	if (!c)
		return;
	json_object_put(c->root);
	memset(c, 0, sizeof *c);
}

/* Microseconds since the epoch beyond this (the year 10000) are not a creation time. */
#define MAX_US 253402300800000000LL

/* v (a JSON number) times scale, as microseconds; -1 when not a sane time. */
static int64_t time_us(json_object *v, int64_t scale)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t t = json_object_get_int64(v);
		if (t < 0 || t == INT64_MAX || t > MAX_US / scale)
			return -1;
		return t * scale;
	}
	if (json_object_is_type(v, json_type_double)) {
		double t = json_object_get_double(v) * (double)scale;
		if (!(t >= 0 && t <= (double)MAX_US)) /* also NaN */
			return -1;
		return (int64_t)(t + 0.5);
	}
	return -1;
}

static const char *get_string(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

ddb_err ddb_change_from_json(json_object *record, ddb_shape shape, ddb_change *out, char *why,
                             size_t whylen)
{
	json_object *dyn, *v;
	const char *s;

	if (!out)
		return DDB_EINVAL;
	memset(out, 0, sizeof *out);
	if (why && whylen)
		why[0] = '\0';
	if (shape != DDB_SHAPE_KINESIS && shape != DDB_SHAPE_STREAMS)
		return DDB_EINVAL;
	if (!json_object_is_type(record, json_type_object)) {
		util_fmt(why, whylen, "not a JSON object");
		return DDB_ENOTDDB;
	}
	int has_source = json_object_object_get_ex(record, "eventSource", &v);
	s = get_string(record, "eventSource");
	if ((shape == DDB_SHAPE_KINESIS || has_source) && (!s || strcmp(s, "aws:dynamodb") != 0)) {
		util_fmt(why, whylen, "no \"eventSource\":\"aws:dynamodb\"");
		return DDB_ENOTDDB;
	}

	s = get_string(record, "eventName");
	if (s && strcmp(s, "INSERT") == 0)
		out->event = DDB_EVENT_INSERT;
	else if (s && strcmp(s, "MODIFY") == 0)
		out->event = DDB_EVENT_MODIFY;
	else if (s && strcmp(s, "REMOVE") == 0)
		out->event = DDB_EVENT_REMOVE;
	else {
		if (s)
			util_fmt(why, whylen, "unknown eventName \"%.*s%s\"", SHOWN(strlen(s)), s,
			         ELLIPSIS(strlen(s)));
		else
			util_fmt(why, whylen, "no eventName string");
		goto bad;
	}
	if (shape == DDB_SHAPE_KINESIS) {
		out->table = get_string(record, "tableName");
		if (!out->table || !out->table[0]) {
			util_fmt(why, whylen, "no tableName string");
			goto bad;
		}
	}
	if (!json_object_object_get_ex(record, "dynamodb", &dyn) ||
	    !json_object_is_type(dyn, json_type_object)) {
		util_fmt(why, whylen, "no \"dynamodb\" object");
		goto bad;
	}
	if (!json_object_object_get_ex(dyn, "Keys", &out->keys) ||
	    !json_object_is_type(out->keys, json_type_object) ||
	    json_object_object_length(out->keys) == 0) {
		util_fmt(why, whylen, "no dynamodb.Keys object with a key");
		goto bad;
	}
	if (json_object_object_get_ex(dyn, "NewImage", &v) && v) {
		if (!json_object_is_type(v, json_type_object)) {
			util_fmt(why, whylen, "dynamodb.NewImage is not an object");
			goto bad;
		}
		if (out->event != DDB_EVENT_REMOVE)
			out->new_image = v;
	}
	if (json_object_object_get_ex(dyn, "SequenceNumber", &v)) {
		out->sequence_number = get_string(dyn, "SequenceNumber");
		if (!out->sequence_number) {
			util_fmt(why, whylen, "dynamodb.SequenceNumber is not a string");
			goto bad;
		}
	}

	int64_t scale = 1000000; /* Streams: seconds */
	if (shape == DDB_SHAPE_KINESIS) {
		if (json_object_object_get_ex(record, "ApproximateCreationDateTimePrecision", &v) ||
		    json_object_object_get_ex(dyn, "ApproximateCreationDateTimePrecision", &v)) {
			s = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
			                                             : "";
			if (strcmp(s, "MICROSECOND") == 0)
				scale = 1;
			else if (strcmp(s, "MILLISECOND") == 0)
				scale = 1000;
			else {
				util_fmt(why, whylen,
				         "ApproximateCreationDateTimePrecision is neither "
				         "MILLISECOND nor "
				         "MICROSECOND");
				goto bad;
			}
		} else {
			scale = 0; /* by magnitude, below */
		}
	}
	if (!json_object_object_get_ex(dyn, "ApproximateCreationDateTime", &v)) {
		util_fmt(why, whylen, "no dynamodb.ApproximateCreationDateTime");
		goto bad;
	}
	int by_magnitude = scale == 0;
	if (by_magnitude) {
		int64_t us = time_us(v, 1);
		scale = us >= 100000000000000LL ? 1 : 1000; /* 10^14 */
	}
	out->created_us = time_us(v, scale);
	if (out->created_us < 0) {
		util_fmt(why, whylen, "dynamodb.ApproximateCreationDateTime is not a time (%s)",
		         shape == DDB_SHAPE_STREAMS ? "seconds"
		         : by_magnitude             ? "milliseconds or microseconds"
		         : scale == 1               ? "microseconds"
		                                    : "milliseconds");
		goto bad;
	}
	out->root = json_object_get(record);
	return DDB_OK;
bad:
	memset(out, 0, sizeof *out);
	return DDB_ERECORD;
}

/* Whether the n bytes at s are the JSON document null (with whitespace around it; json-c
 * takes "NULL" and "nUlL" for it too). */
static int is_null_doc(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && s[i] && strchr(" \t\r\n", s[i]))
		i++;
	if (n - i < 4 || strncasecmp(s + i, "null", 4) != 0)
		return 0;
	for (i += 4; i < n; i++)
		if (!s[i] || !strchr(" \t\r\n", s[i]))
			return 0;
	return 1;
}

ddb_err ddb_change_parse(const char *data, size_t len, ddb_shape shape, ddb_change *out, char *why,
                         size_t whylen)
{
	if (!out || (!data && len))
		return DDB_EINVAL;
	memset(out, 0, sizeof *out);
	if (why && whylen)
		why[0] = '\0';
	/* Each nesting level of an image takes two JSON levels ({"M":{...}}), under the
	 * record, "dynamodb" and the image: json-c's default of 32 is too little. */
	json_tokener *tok = json_tokener_new_ex(2 * DDB_MAX_DEPTH + 16);
	if (!tok)
		return DDB_ENOMEM;
	json_object *o = NULL;
	if (len <= (size_t)INT32_MAX)
		o = json_tokener_parse_ex(tok, data ? data : "", (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = o && jerr == json_tokener_success ? json_tokener_get_parse_end(tok) : 0;
	/* json-c 0.16 has no error for a failed allocation: the parse yields NULL and
	 * success, as it does for the document "null" */
	int oom = !o && jerr == json_tokener_success &&
	          !is_null_doc(data, json_tokener_get_parse_end(tok));
	json_tokener_free(tok);
	if (oom)
		return DDB_ENOMEM;
	while (o && end < len &&
	       (data[end] == ' ' || data[end] == '\n' || data[end] == '\r' || data[end] == '\t'))
		end++;
	if (!o || end != len) {
		json_object_put(o);
		util_fmt(why, whylen, "not a JSON document");
		return DDB_ENOTDDB;
	}
	ddb_err err = ddb_change_from_json(o, shape, out, why, whylen);
	json_object_put(o); /* on success out->root holds its own reference */
	return err;
}

/* ---- ordering --------------------------------------------------------------------- */

typedef struct ventry {
	char *id; /* the hash key (id_len bytes) */
	size_t id_len;
	int64_t time_us;
	char *shard; /* NULL: unknown */
	char *seq;   /* NULL: unknown */
	int tied;    /* a same-time change from elsewhere was seen: order at time_us unknown */
	struct ventry *prev, *next; /* least recently updated first */
	UT_hash_handle hh;
} ventry;

struct ddb_versions {
	ventry *hash;
	ventry *head, *tail;
	size_t count, max_entries;
	int64_t horizon_us;
	int64_t newest_us; /* newest creation time recorded */
	int64_t floor_us;  /* newest creation time forgotten */
};

ddb_versions *ddb_versions_new(int64_t horizon_us, size_t max_entries)
{
	ddb_versions *v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->horizon_us = horizon_us > 0 ? horizon_us : DDB_VERSIONS_HORIZON_US;
	v->max_entries = max_entries ? max_entries : DDB_VERSIONS_MAX_ENTRIES;
	return v;
}

static void ventry_free(ventry *e)
{
	free(e->id);
	free(e->shard);
	free(e->seq);
	free(e);
}

static void list_unlink(ddb_versions *v, ventry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		v->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		v->tail = e->prev;
	e->prev = e->next = NULL;
}

static void list_append(ddb_versions *v, ventry *e)
{
	e->prev = v->tail;
	e->next = NULL;
	if (v->tail)
		v->tail->next = e;
	else
		v->head = e;
	v->tail = e;
}

void ddb_versions_free(ddb_versions *v)
{
	if (!v)
		return;
	ventry *e, *tmp;
	HASH_ITER(hh, v->hash, e, tmp)
	{
		HASH_DEL(v->hash, e);
		ventry_free(e);
	}
	free(v);
}

size_t ddb_versions_count(const ddb_versions *v)
{
	return v ? v->count : 0;
}

int64_t ddb_versions_floor(const ddb_versions *v)
{
	return v ? v->floor_us : 0;
}

static int is_decimal(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!is_digit(*s))
			return 0;
	return 1;
}

static ddb_order compare(const ddb_versions *v, const ventry *e, int64_t t, const char *shard,
                         const char *seq)
{
	if (!e)
		return t > v->floor_us ? DDB_ORDER_NEWER : DDB_ORDER_UNKNOWN;
	if (t != e->time_us)
		return t > e->time_us ? DDB_ORDER_NEWER : DDB_ORDER_STALE;
	/* the very change applied, delivered again (same shard, same sequence or event ID);
	 * once tied, what was applied is not known */
	if (!e->tied && seq && e->seq && strcmp(seq, e->seq) == 0 &&
	    ((!shard && !e->shard) || (shard && e->shard && strcmp(shard, e->shard) == 0)))
		return DDB_ORDER_STALE;
	if (e->tied || !shard || !e->shard || strcmp(shard, e->shard) != 0 || !is_decimal(seq) ||
	    !is_decimal(e->seq))
		return DDB_ORDER_TIE;
	return kinesis_seq_cmp(seq, e->seq) > 0 ? DDB_ORDER_NEWER : DDB_ORDER_STALE;
}

static ventry *find(const ddb_versions *v, const char *id, size_t id_len)
{
	ventry *e = NULL;
	HASH_FIND(hh, v->hash, id, (unsigned)id_len, e);
	return e;
}

ddb_order ddb_versions_check(const ddb_versions *v, const char *id, size_t id_len,
                             int64_t created_us, const char *shard, const char *seq)
{
	if (!v || (!id && id_len) || id_len > UINT32_MAX)
		return DDB_ORDER_UNKNOWN;
	return compare(v, find(v, id ? id : "", id_len), created_us, shard, seq);
}

static void forget(ddb_versions *v, ventry *e)
{
	if (e->time_us > v->floor_us)
		v->floor_us = e->time_us;
	list_unlink(v, e);
	HASH_DEL(v->hash, e);
	ventry_free(e);
	v->count--;
}

/* Forget from the least recently updated end: entries past the horizon, and any beyond
 * max_entries. An old entry behind a newer one stays a while longer: keeping is safe. */
static void prune(ddb_versions *v)
{
	int64_t cutoff = v->newest_us - v->horizon_us;
	while (v->head && (v->count > v->max_entries || v->head->time_us < cutoff))
		forget(v, v->head);
}

static char *dup_or_null(const char *s, int *failed)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*failed = 1;
	return d;
}

ddb_err ddb_versions_record(ddb_versions *v, const char *id, size_t id_len, int64_t created_us,
                            const char *shard, const char *seq, ddb_order *order)
{
	if (!v || (!id && id_len) || id_len > UINT32_MAX)
		return DDB_EINVAL;
	if (!id)
		id = "";
	ventry *e = find(v, id, id_len);
	ddb_order o = compare(v, e, created_us, shard, seq);
	if (order)
		*order = o;
	if (o == DDB_ORDER_TIE) {
		e->tied = 1;
	} else if (o == DDB_ORDER_NEWER) {
		int failed = 0;
		char *sh = dup_or_null(shard, &failed), *sq = dup_or_null(seq, &failed);
		if (!e && !failed) {
			e = calloc(1, sizeof *e);
			char *key = e ? malloc(id_len ? id_len : 1) : NULL;
			if (!key) {
				free(e);
				e = NULL;
				failed = 1;
			} else {
				memcpy(key, id, id_len);
				e->id = key;
				e->id_len = id_len;
				ddb_oomed = 0;
				HASH_ADD_KEYPTR(hh, v->hash, e->id, (unsigned)e->id_len, e);
				if (ddb_oomed) {
					ventry_free(e);
					e = NULL;
					failed = 1;
				} else {
					v->count++;
					list_append(v, e);
				}
			}
		}
		if (failed) {
			free(sh);
			free(sq);
			return DDB_ENOMEM;
		}
		free(e->shard);
		free(e->seq);
		e->shard = sh;
		e->seq = sq;
		e->time_us = created_us;
		e->tied = 0;
		list_unlink(v, e);
		list_append(v, e);
	}
	if (created_us > v->newest_us)
		v->newest_us = created_us;
	prune(v);
	return DDB_OK;
}
