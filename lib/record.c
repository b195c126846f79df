/*
 * record.c: record formats. A Kinesis record's data becomes a list of invalidated
 * data-ID strings, or a new value; the publisher builds scache records.
 *
 * Formats sit in a table of parsers indexed by scache_record_format (the stream's own
 * format). DynamoDB change records (Kinesis Data Streams for DynamoDB) share a stream
 * with scache records, so they are told apart per record, not configured per stream:
 * record_read parses the JSON once, and "eventSource":"aws:dynamodb" sends it to the
 * DynamoDB path, anything else to the format's parser. A change of a configured table
 * names its item (ddb_key_id: source "dynamodb.<table>", the key's text as id). In
 * invalidate mode every change invalidates the item: no ordering is needed, as a late
 * or repeated invalidation is always safe. In refresh mode an INSERT or MODIFY stores
 * the NewImage as plain JSON, so a late record must never overwrite a newer change: the
 * reader's ddb_versions orders changes by ApproximateCreationDateTime (then shard and
 * sequence number); an older one is skipped, and where the order is unknown (a tie, or
 * forgotten) the item is invalidated instead of refreshed. REMOVE, records without
 * NewImage (KEYS_ONLY and OLD_IMAGE views) and images over RECORD_DDB_VALUE_MAX
 * invalidate. A malformed change record is skipped, but its item is still invalidated
 * when its table and Keys name it; a record of a table not configured is skipped.
 *
 * The scache format is {"keys":["<data ID>",...],"ts":"<RFC 3339>"}, plus our optional
 * "origin":"<16 hex digits>" (the publisher's random ID, so an instance knows the echo of
 * its own invalidations; Go's decoder ignores unknown fields), read with json-c
 * (which decodes \u0026 and every other escape) and written by hand with the escaping of
 * Go's encoding/json, so Go services read our records byte for byte as they read their
 * own. A record whose keys are partly malformed still yields its good keys: removing
 * more from a cache is always safe, missing an invalidation is not.
 */
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "scache/id.h"
#include "util.h"

void record_keys_clear(record_keys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++)
		free(k->keys[i]);
	free(k->keys);
	free(k->lens);
	free(k->value);
	memset(k, 0, sizeof *k);
}

static int digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static int is_rfc3339(const char *s, size_t len)
{
	if (len < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
	    !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) ||
	    s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
		return 0;
	size_t i = 19;
	if (s[i] == '.') {
		size_t j = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == j)
			return 0;
	}
	if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z'))
		return 1;
	return i + 6 == len && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) &&
	       s[i + 3] == ':' && digits(s + i + 4, 2);
}

/* Whether the n bytes at s are the JSON document null (with whitespace around it; json-c
 * takes "NULL" and "nUlL" for it too). */
static int is_null_doc(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n && s[i] && strchr(" \t\r\n", s[i]))
		i++;
	if (n - i < 4 || strncasecmp((const char *)s + i, "null", 4) != 0)
		return 0;
	for (i += 4; i < n; i++)
		if (!s[i] || !strchr(" \t\r\n", s[i]))
			return 0;
	return 1;
}

/*
 * One JSON document: NULL when data is not one (*oom set when an allocation failed:
 * nothing to judge). *ws_after is set when whitespace follows it: DynamoDB records may
 * end with a newline, scache records may not. The depth fits DynamoDB's images: each of their 32
 * levels takes two JSON levels ({"M":{...}}), under the record and "dynamodb".
 */
static json_object *parse_json(const unsigned char *data, size_t len, int *ws_after, int *oom)
{
	json_tokener *tok = json_tokener_new_ex(2 * DDB_MAX_DEPTH + 16);
	json_object *o = NULL;
	*ws_after = 0;
	if (!tok) {
		*oom = 1;
		return NULL;
	}
	if (len <= (size_t)INT32_MAX)
		o = json_tokener_parse_ex(tok, (const char *)data, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = o && jerr == json_tokener_success ? json_tokener_get_parse_end(tok) : 0;
	/* json-c 0.16 has no error for a failed allocation: the parse yields NULL and
	 * success, as it does for the document "null" */
	if (!o && jerr == json_tokener_success &&
	    !is_null_doc(data, json_tokener_get_parse_end(tok)))
		*oom = 1;
	json_tokener_free(tok);
	size_t e = end;
	while (o && e < len &&
	       (data[e] == ' ' || data[e] == '\n' || data[e] == '\r' || data[e] == '\t'))
		e++;
	if (!o || e != len) {
		json_object_put(o);
		return NULL;
	}
	*ws_after = end != len;
	return o;
}

/* The record's "origin": 16 hex digits naming its publisher, else 0 (absent, as in Go
 * scache's records, or malformed): an unknown writer, whose keys always apply. */
static uint64_t origin_of(json_object *o)
{
	json_object *v;
	if (!json_object_object_get_ex(o, "origin", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) != RECORD_ORIGIN_HEX)
		return 0;
	const char *s = json_object_get_string(v);
	uint64_t x = 0;
	for (size_t i = 0; i < RECORD_ORIGIN_HEX; i++) {
		char c = s[i];
		unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
		             : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
		             : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
		                                    : 16u;
		if (d == 16u)
			return 0;
		x = x << 4 | d;
	}
	return x;
}

/* The keys of an scache record already parsed (o borrowed). */
static scache_err scache_keys_of(json_object *o, record_keys *out, char *why, size_t whylen)
{
	json_object *keys, *ts;
	scache_err err = SCACHE_ERECORD;

	if (!json_object_is_type(o, json_type_object)) {
		util_fmt(why, whylen, "not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(o, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_array)) {
		util_fmt(why, whylen, "no \"keys\" array");
		goto out;
	}
	if (!json_object_object_get_ex(o, "ts", &ts) ||
	    !json_object_is_type(ts, json_type_string) ||
	    !is_rfc3339(json_object_get_string(ts), (size_t)json_object_get_string_len(ts))) {
		util_fmt(why, whylen, "no RFC 3339 \"ts\" string");
		goto out;
	}
	out->origin = origin_of(o);
	size_t n = json_object_array_length(keys);
	out->keys = calloc(n ? n : 1, sizeof *out->keys);
	out->lens = calloc(n ? n : 1, sizeof *out->lens);
	if (!out->keys || !out->lens) {
		err = SCACHE_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *k = json_object_array_get_idx(keys, i);
		scache_id id;
		if (!json_object_is_type(k, json_type_string)) {
			out->bad++;
			continue;
		}
		const char *s = json_object_get_string(k);
		size_t sl = (size_t)json_object_get_string_len(k);
		scache_err ie = scache_id_parse(s, sl, &id);
		if (ie == SCACHE_ENOMEM) {
			err = SCACHE_ENOMEM;
			goto out;
		}
		if (ie != SCACHE_OK) {
			out->bad++;
			continue;
		}
		scache_id_clear(&id);
		char *copy = malloc(sl + 1);
		if (!copy) {
			err = SCACHE_ENOMEM;
			goto out;
		}
		memcpy(copy, s, sl);
		copy[sl] = '\0';
		out->keys[out->n] = copy;
		out->lens[out->n++] = sl;
	}
	if (out->bad)
		util_fmt(why, whylen, "%zu of %zu keys are not data IDs", out->bad, n);
	err = SCACHE_OK;
out:
	if (err != SCACHE_OK)
		record_keys_clear(out);
	return err;
}

static scache_err parse_scache(const unsigned char *data, size_t len, record_keys *out, char *why,
                               size_t whylen)
{
	int ws = 0, oom = 0;
	json_object *o = parse_json(data, len, &ws, &oom);
	if (oom)
		return SCACHE_ENOMEM;
	if (!o || ws) {
		json_object_put(o);
		util_fmt(why, whylen, "not valid JSON");
		return SCACHE_ERECORD;
	}
	scache_err err = scache_keys_of(o, out, why, whylen);
	json_object_put(o);
	return err;
}

typedef scache_err (*record_parser)(const unsigned char *, size_t, record_keys *, char *, size_t);

static const record_parser parsers[] = {
    [SCACHE_RECORD_SCACHE] = parse_scache, /* a new format is one more row */
};

/* The checks and clearing both entry points begin with. */
static scache_err read_begin(scache_record_format fmt, const unsigned char *data, size_t len,
                             record_keys *out, char *why, size_t whylen)
{
	if (!out || (!data && len))
		return SCACHE_EINVAL;
	memset(out, 0, sizeof *out);
	if (why && whylen)
		why[0] = '\0';
	if ((unsigned)fmt >= sizeof parsers / sizeof parsers[0]) {
		util_fmt(why, whylen, "unknown record format");
		return SCACHE_ERECORD;
	}
	return SCACHE_OK;
}

scache_err record_parse(scache_record_format fmt, const unsigned char *data, size_t len,
                        record_keys *out, char *why, size_t whylen)
{
	scache_err err = read_begin(fmt, data, len, out, why, whylen);
	if (err)
		return err;
	return parsers[fmt](data ? data : (const unsigned char *)"", len, out, why, whylen);
}

/* ---- DynamoDB change records ------------------------------------------------------ */

/* out holds the one key id (taken). SCACHE_ENOMEM (id freed). */
static scache_err keys_take_one(record_keys *out, char *id, size_t id_len)
{
	out->keys = malloc(sizeof *out->keys);
	out->lens = malloc(sizeof *out->lens);
	if (!out->keys || !out->lens) {
		free(id);
		record_keys_clear(out);
		return SCACHE_ENOMEM;
	}
	out->keys[0] = id;
	out->lens[0] = id_len;
	out->n = 1;
	return SCACHE_OK;
}

static const scache_dynamodb_table *table_find(const record_ddb *ddb, const char *name)
{
	for (size_t i = 0; ddb && i < ddb->ntables; i++)
		if (strcmp(ddb->tables[i].table, name) == 0)
			return &ddb->tables[i];
	return NULL;
}

/* A change record that ddb_change_from_json refused: invalidate its item if its Keys
 * name one (the record still counts as malformed), else SCACHE_ERECORD. */
static scache_err name_malformed(const ddb_table *dt, json_object *o, record_keys *out)
{
	json_object *dyn, *keys;
	char *id = NULL;
	size_t id_len = 0;
	if (!json_object_object_get_ex(o, "dynamodb", &dyn) ||
	    !json_object_object_get_ex(dyn, "Keys", &keys))
		return SCACHE_ERECORD;
	ddb_err de = ddb_key_id(dt, keys, &id, &id_len, NULL, 0);
	if (de == DDB_ENOMEM)
		return SCACHE_ENOMEM;
	if (de != DDB_OK)
		return SCACHE_ERECORD;
	out->bad = 1;
	return keys_take_one(out, id, id_len);
}

/* A change record (o borrowed) of a configured table, or not. See record_read. */
static scache_err read_change(record_ddb *ddb, json_object *o, record_keys *out, char *why,
                              size_t whylen)
{
	json_object *v;
	const char *name = json_object_object_get_ex(o, "tableName", &v) &&
	                           json_object_is_type(v, json_type_string)
	                       ? json_object_get_string(v)
	                       : NULL;
	const scache_dynamodb_table *t = name ? table_find(ddb, name) : NULL;
	if (name)
		util_copy_str(out->table, sizeof out->table, name);
	if (name && !t) {
		out->skip = RECORD_FOREIGN;
		return SCACHE_OK;
	}
	ddb_table dt = {0};
	if (t)
		dt = (ddb_table){
		    .table = t->table, .source = t->source, .key = {t->partition_key, t->sort_key}};

	ddb_change c;
	ddb_err de = ddb_change_from_json(o, DDB_SHAPE_KINESIS, &c, why, whylen);
	if (de == DDB_ENOMEM)
		return SCACHE_ENOMEM;
	if (de != DDB_OK)
		return t ? name_malformed(&dt, o, out) : SCACHE_ERECORD;

	/* Not the Kinesis shard and sequence number: they order arrivals, and DynamoDB's
	 * writer may put one change twice (see ddb.h). The eventID names the change. */
	json_object *ev;
	const char *event_id = json_object_object_get_ex(o, "eventID", &ev) &&
	                               json_object_is_type(ev, json_type_string)
	                           ? json_object_get_string(ev)
	                           : NULL;
	scache_err err =
	    record_change(&dt, t->mode == SCACHE_DYNAMODB_REFRESH ? ddb->versions : NULL, &c, NULL,
	                  event_id, out, why, whylen);
	ddb_change_clear(&c);
	return err;
}

scache_err record_change(const ddb_table *dt, ddb_versions *versions, const ddb_change *c,
                         const char *shard, const char *seq, record_keys *out, char *why,
                         size_t whylen)
{
	char *id = NULL, *value = NULL;
	size_t id_len = 0, value_len = 0;
	scache_err err = SCACHE_OK;
	ddb_err de = ddb_key_id(dt, c->keys, &id, &id_len, why, whylen);
	if (de != DDB_OK) {
		err = de == DDB_ENOMEM ? SCACHE_ENOMEM : SCACHE_ERECORD;
		goto out;
	}
	if (!versions) {
		err = keys_take_one(out, id, id_len); /* invalidate mode: always safe, unordered */
		id = NULL;
		goto out;
	}
	if (c->new_image) {
		char iwhy[200];
		de = ddb_image_to_json(c->new_image, RECORD_DDB_VALUE_MAX, &value, &value_len, iwhy,
		                       sizeof iwhy);
		if (de == DDB_ENOMEM) {
			err = SCACHE_ENOMEM;
			goto out;
		}
		if (de != DDB_OK && de != DDB_ETOOBIG) {
			out->bad = 1; /* malformed image: the item is still invalidated */
			util_fmt(why, whylen, "NewImage: %s", iwhy);
		}
	}
	/* Noted as applied before it is delivered, and delivery cannot fail: the key's
	 * place is allocated first. On ENOMEM nothing is noted, so the record read again
	 * is judged the same way. */
	err = keys_take_one(out, id, id_len); /* takes id, also when it fails */
	id = NULL;
	if (err != SCACHE_OK)
		goto out;
	ddb_order order;
	de = ddb_versions_record(versions, out->keys[0], id_len, c->created_us, shard, seq,
	                         &order);
	if (de == DDB_ENOMEM) {
		err = SCACHE_ENOMEM;
		goto out;
	}
	if (de == DDB_OK && order == DDB_ORDER_STALE) {
		free(out->keys[0]);
		free(out->keys);
		free(out->lens);
		out->keys = NULL;
		out->lens = NULL;
		out->n = 0;
		out->skip = RECORD_STALE;
		out->bad = 0;
		goto out;
	}
	if (de == DDB_OK && order == DDB_ORDER_NEWER && value) {
		out->value = value; /* a refresh; TIE and UNKNOWN invalidate */
		out->value_len = value_len;
		value = NULL;
	}
out:
	free(id);
	free(value);
	if (err != SCACHE_OK)
		record_keys_clear(out);
	return err;
}

scache_err record_read(record_ddb *ddb, scache_record_format fmt, const unsigned char *data,
                       size_t len, record_keys *out, char *why, size_t whylen)
{
	scache_err err = read_begin(fmt, data, len, out, why, whylen);
	if (err)
		return err;
	int ws = 0, oom = 0;
	json_object *o = parse_json(data ? data : (const unsigned char *)"", len, &ws, &oom), *v;
	if (oom)
		return SCACHE_ENOMEM;
	if (o && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "eventSource", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), "aws:dynamodb") == 0) {
		err = read_change(ddb, o, out, why, whylen);
	} else if (o && !ws && fmt == SCACHE_RECORD_SCACHE) {
		err = scache_keys_of(o, out, why, whylen); /* parsed once */
	} else {
		err = parsers[fmt](data ? data : (const unsigned char *)"", len, out, why, whylen);
	}
	json_object_put(o);
	return err;
}

/* ---- building, with Go's encoding/json escaping --------------------------------- */

/* Bytes of the JSON escape of byte s[i] (sets *skip to bytes consumed), written to w if
 * not NULL. Go escapes <, >, & as \u003c..., controls, and U+2028 / U+2029. */
static size_t escape_at(const unsigned char *s, size_t len, size_t i, size_t *skip, char *w)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char ch = s[i];
	*skip = 1;
	if (ch == 0xe2 && i + 2 < len && s[i + 1] == 0x80 &&
	    (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
		*skip = 3;
		if (w)
			memcpy(w, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6); /* NOLINT */
		return 6;
	}
	if (ch == '"' || ch == '\\') {
		if (w) {
			w[0] = '\\';
			w[1] = (char)ch;
		}
		return 2;
	}
	if (ch == '\n' || ch == '\r' || ch == '\t') {
		if (w) {
			w[0] = '\\';
			w[1] = (char)(ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't');
		}
		return 2;
	}
	if (ch < 0x20 || ch == '<' || ch == '>' || ch == '&') {
		if (w) {
			memcpy(w, "\\u00", 4); /* NOLINT(bugprone-not-null-terminated-result) */
			w[4] = hex[ch >> 4];
			w[5] = hex[ch & 15];
		}
		return 6;
	}
	if (w)
		w[0] = (char)ch;
	return 1;
}

static size_t escape_into(const char *key, size_t len, char *w)
{
	size_t o = 0, skip;
	for (size_t i = 0; i < len; i += skip)
		o += escape_at((const unsigned char *)key, len, i, &skip, w ? w + o : NULL);
	return o;
}

size_t record_key_size(const char *key, size_t len)
{
	return escape_into(key, len, NULL) + 2;
}

size_t record_format_ts(int64_t ts_unix_ns, char *buf, size_t len)
{
	time_t secs = (time_t)(ts_unix_ns / 1000000000);
	long nanos = (long)(ts_unix_ns % 1000000000);
	struct tm tm;
	char frac[16] = "";

	if (nanos < 0) {
		nanos += 1000000000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	if (nanos) {
		snprintf(frac, sizeof frac, ".%09ld", nanos);
		size_t fl = strlen(frac);
		while (fl > 1 && frac[fl - 1] == '0') /* ".000000000" cannot occur: nanos != 0 */
			frac[--fl] = '\0';
	}
	int w = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	return w < 0 ? 0 : (size_t)w;
}

scache_err record_build_scache(const char *const *keys, const size_t *lens, size_t n,
                               int64_t ts_unix_ns, uint64_t origin, char **out, size_t *out_len)
{
	static const char hex[] = "0123456789abcdef";
	char ts[48];
	size_t tl = record_format_ts(ts_unix_ns, ts, sizeof ts);
	size_t total = 9 + 8 + tl + 2 + (n ? n - 1 : 0) + (origin ? 11 + RECORD_ORIGIN_HEX + 1 : 0);
	for (size_t i = 0; i < n; i++)
		total += record_key_size(keys[i], lens[i]);
	char *b = malloc(total + 1), *w = b;
	if (!b)
		return SCACHE_ENOMEM;
	memcpy(w, "{\"keys\":[", 9);
	w += 9;
	for (size_t i = 0; i < n; i++) {
		if (i)
			*w++ = ',';
		*w++ = '"';
		w += escape_into(keys[i], lens[i], w);
		*w++ = '"';
	}
	memcpy(w, "],\"ts\":\"", 8);
	w += 8;
	memcpy(w, ts, tl);
	w += tl;
	*w++ = '"';
	if (origin) {
		memcpy(w, ",\"origin\":\"", 11);
		w += 11;
		for (int i = RECORD_ORIGIN_HEX - 1; i >= 0; i--)
			*w++ = hex[(origin >> (4 * i)) & 15];
		*w++ = '"';
	}
	*w++ = '}';
	*w = '\0';
	*out = b;
	if (out_len)
		*out_len = (size_t)(w - b);
	return SCACHE_OK;
}

size_t record_pack(const size_t *key_sizes, size_t n, size_t max_record_bytes,
                   size_t partition_key_len, size_t *starts)
{
	size_t records = 0, size = 0;
	for (size_t i = 0; i < n; i++) {
		size_t add = key_sizes[i] + 1; /* with its comma (one too many: a safe bound) */
		if (records == 0 || size + add > max_record_bytes) {
			starts[records++] = i;
			size = RECORD_OVERHEAD_MAX + partition_key_len;
		}
		size += add;
	}
	return records;
}
