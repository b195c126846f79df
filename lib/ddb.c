/*
 * ddb.c: DynamoDB's typed values: numbers in canonical decimal form, items as plain JSON,
 * item keys as data IDs. With ddb_change.c (change records and the order of one item's
 * changes), the ground floor of read-aside GetItem and invalidate-or-refresh from a
 * table's change records: pure functions, no I/O, every rule pinned by tests/test_ddb.c.
 *
 * Trade-offs:
 * - Numbers are checked and canonicalised as decimals (digits and a power of ten), never
 *   through a double, so that 38-digit values survive and equal numbers give equal text.
 *   A double appears only to decide whether a JSON number would be read back exactly;
 *   the text it is built from and read from carries no decimal point, so the locale
 *   (LC_NUMERIC) cannot change the result.
 * - The JSON text is written by hand into a strbuf (keys in input order, one escaping),
 *   not through json-c's serializer, whose number and slash formatting we do not control.
 * - Malformed input is reported with a path (`tags[2].M.x: ...`) and never trusted: type
 *   keys, JSON types, depth and the output size are all checked before use.
 */
#include "ddb.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scache/id.h"
#include "strbuf.h"
#include "util.h" /* util_fmt, util_b64_encode / _decode */

static const char *const err_names[DDB_ERR_COUNT_] = {
    [DDB_OK] = "success",
    [DDB_EINVAL] = "invalid argument",
    [DDB_ENOMEM] = "out of memory",
    [DDB_ETYPE] = "not a DynamoDB attribute value",
    [DDB_ENUMBER] = "not a DynamoDB number",
    [DDB_EBASE64] = "not base64",
    [DDB_EDEPTH] = "attributes nested too deep",
    [DDB_ETOOBIG] = "JSON text too large",
    [DDB_EKEY] = "not the table's key",
    [DDB_ENOTDDB] = "not a DynamoDB change record",
    [DDB_ERECORD] = "malformed DynamoDB change record",
};

const char *ddb_strerror(ddb_err err)
{
	if ((unsigned)err >= DDB_ERR_COUNT_)
		return "unknown error";
	return err_names[err];
}

scache_err ddb_err_scache(ddb_err err)
{
	switch (err) {
	case DDB_OK:
		return SCACHE_OK;
	case DDB_EINVAL:
		return SCACHE_EINVAL;
	case DDB_ENOMEM:
		return SCACHE_ENOMEM;
	case DDB_ETOOBIG:
		return SCACHE_ETOOBIG;
	default:
		return SCACHE_ERECORD;
	}
}

/* At most this many bytes of an offending value go into a message. */
#define SHOW          40
#define SHOWN(len)    ((int)((len) > SHOW ? SHOW : (len)))
#define ELLIPSIS(len) ((len) > SHOW ? "..." : "")

/* ---- numbers ------------------------------------------------------------------------ */

/* A checked number: value = (neg ? -1 : 1) * dig * 10^exp10; dig has no leading or trailing
 * zeros and is empty for zero (then neg is 0). */
typedef struct ddb_num {
	int neg;
	char dig[39];
	size_t n;
	int64_t exp10;
} ddb_num;

#define EXP_SAT 2000000000LL /* exponents saturate here: far outside DynamoDB's range */

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Parse s per DynamoDB's number rules; NULL on success, else what is wrong. */
static const char *num_parse(const char *s, size_t len, ddb_num *o)
{
	size_t i = 0, int_start, int_end, frac_start = 0, frac_end = 0;
	memset(o, 0, sizeof *o);
	if (len == 0)
		return "is empty";
	if (s[0] == '-')
		i++;
	int_start = i;
	while (i < len && is_digit(s[i]))
		i++;
	int_end = i;
	if (i < len && s[i] == '.') {
		frac_start = ++i;
		while (i < len && is_digit(s[i]))
			i++;
		frac_end = i;
	}
	if (int_end == int_start && frac_end == frac_start)
		return "has no digits";
	int64_t e = 0;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		int eneg = 0;
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		if (i == len || !is_digit(s[i]))
			return "has an exponent without digits";
		while (i < len && is_digit(s[i])) {
			if (e < EXP_SAT)
				e = e * 10 + (s[i] - '0');
			i++;
		}
		if (eneg)
			e = -e;
	}
	if (i != len)
		return "has a character that is not part of a number";

	/* The mantissa's digits, int part then fraction, as one integer M: value = M *
	 * 10^(e - fraction digits). Strip M's leading and trailing zeros. */
	size_t flen = frac_end - frac_start, total = (int_end - int_start) + flen;
	size_t first = 0, last = total; /* significant digits are [first, last) */
#define MDIGIT(k)                                                                                  \
	((k) < int_end - int_start ? s[int_start + (k)]                                            \
	                           : s[frac_start + (k) - (int_end - int_start)])
	while (first < total && MDIGIT(first) == '0')
		first++;
	if (first == total) { /* zero, whatever its sign and exponent */
		o->exp10 = 0;
		return NULL;
	}
	while (MDIGIT(last - 1) == '0')
		last--;
	if (last - first > 38)
		return "has more than 38 significant digits";
	for (size_t k = first; k < last; k++)
		o->dig[o->n++] = MDIGIT(k);
#undef MDIGIT
	o->dig[o->n] = '\0';
	o->neg = s[0] == '-';
	if (flen > (size_t)EXP_SAT || total - last > (size_t)EXP_SAT)
		return "is out of DynamoDB's range"; /* nonsense lengths: keep the arithmetic sane
		                                      */
	o->exp10 = e - (int64_t)flen + (int64_t)(total - last);
	int64_t lead = o->exp10 + (int64_t)o->n - 1; /* power of ten of the first digit */
	if (lead > 125)
		return "is larger than DynamoDB's 9.99...E+125";
	if (lead < -130)
		return "is smaller than DynamoDB's 1E-130";
	return NULL;
}

/* The canonical (plain decimal) text of o into buf (DDB_NUMBER_MAX bytes). */
static void num_text(const ddb_num *o, char *buf)
{
	char *w = buf;
	if (o->n == 0) {
		strcpy(buf, "0");
		return;
	}
	if (o->neg)
		*w++ = '-';
	if (o->exp10 >= 0) {
		memcpy(w, o->dig, o->n);
		w += o->n;
		memset(w, '0', (size_t)o->exp10);
		w += o->exp10;
	} else {
		int64_t point = (int64_t)o->n + o->exp10; /* digits before the point */
		if (point > 0) {
			memcpy(w, o->dig, (size_t)point);
			w += point;
			*w++ = '.';
			memcpy(w, o->dig + point, o->n - (size_t)point);
			w += o->n - (size_t)point;
		} else {
			*w++ = '0';
			*w++ = '.';
			memset(w, '0', (size_t)-point);
			w += -point;
			memcpy(w, o->dig, o->n);
			w += o->n;
		}
	}
	*w = '\0';
}

/* Whether a double-based JSON reader gets exactly o back (see ddb.h). */
static int num_exact(const ddb_num *o)
{
	static const char max_safe[] = "9007199254740991"; /* 2^53 - 1 */
	if (o->n == 0)
		return 1;
	if (o->exp10 >= 0) {
		int64_t width = (int64_t)o->n + o->exp10;
		if (width != 16)
			return width < 16;
		char pad[17];
		memcpy(pad, o->dig, o->n);
		memset(pad + o->n, '0', 16 - o->n);
		pad[16] = '\0';
		return strcmp(pad, max_safe) <= 0;
	}
	/* No decimal point in what strtod reads: the locale plays no part. */
	char text[64];
	snprintf(text, sizeof text, "%s%se%" PRId64, o->neg ? "-" : "", o->dig, o->exp10);
	double d = strtod(text, NULL);
	for (int p = 1; p <= 17; p++) {
		char out[64];
		snprintf(out, sizeof out, "%.*e", p - 1, d);
		if (strtod(out, NULL) != d)
			continue;
		/* The shortest round trip: its digits and exponent, against ours. */
		char dig[24];
		size_t n = 0;
		const char *c = out;
		while (*c && *c != 'e') {
			if (is_digit(*c))
				dig[n++] = *c;
			c++;
		}
		if (*c != 'e')
			return 0;
		long ex = strtol(c + 1, NULL, 10);
		size_t lz = 0;
		while (lz < n && dig[lz] == '0')
			lz++;
		while (n > lz && dig[n - 1] == '0')
			n--;
		/* first digit is worth 10^ex (dig[0] is never a leading zero for d != 0) */
		int64_t exp10 = (int64_t)ex - (int64_t)(n - 1);
		return lz == 0 && n == o->n && memcmp(dig, o->dig, n) == 0 && exp10 == o->exp10;
	}
	return 0;
}

ddb_err ddb_number_canonical(const char *s, size_t len, char buf[DDB_NUMBER_MAX], int *exact,
                             char *why, size_t whylen)
{
	ddb_num num;
	if (!s || !buf)
		return DDB_EINVAL;
	const char *bad = num_parse(s, len, &num);
	if (bad) {
		util_fmt(why, whylen, "\"%.*s%s\" %s", SHOWN(len), s, ELLIPSIS(len), bad);
		return DDB_ENUMBER;
	}
	num_text(&num, buf);
	if (exact)
		*exact = num_exact(&num);
	return DDB_OK;
}

/* ---- base64 ----------------------------------------------------------------------- */

/* The canonical base64 of the base64 text s (decoded, encoded again), malloc'ed; *err
 * DDB_EBASE64 or DDB_ENOMEM when NULL. */
static char *b64_canonical(const char *s, size_t len, size_t *out_len, ddb_err *err)
{
	size_t n;
	errno = 0;
	unsigned char *bytes = util_b64_decode(s, len, &n);
	if (!bytes) {
		/* text that is not base64 fails before anything is allocated */
		*err = errno == ENOMEM ? DDB_ENOMEM : DDB_EBASE64;
		return NULL;
	}
	char *text = util_b64_encode(bytes, n, out_len);
	free(bytes);
	if (!text)
		*err = DDB_ENOMEM;
	return text;
}

/* ---- attribute values to JSON ---------------------------------------------------- */

typedef struct conv {
	strbuf out;
	size_t max;
	char path[192];
	size_t plen;
	char *why;
	size_t whylen;
} conv;

/* Append a path segment; returns the length to restore. */
static size_t path_push(conv *c, const char *fmt, const char *name, size_t idx)
{
	size_t saved = c->plen;
	if (c->plen >= sizeof c->path - 1)
		return saved;
	int w = name ? snprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, name)
	             : snprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, idx);
	if (w > 0)
		c->plen += (size_t)w;
	if (c->plen >= sizeof c->path)
		c->plen = sizeof c->path - 1;
	return saved;
}

static void path_pop(conv *c, size_t saved)
{
	c->plen = saved;
	c->path[saved] = '\0';
}

static ddb_err fail(conv *c, ddb_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static ddb_err fail(conv *c, ddb_err err, const char *fmt, ...)
{
	if (c->why && c->whylen) {
		char msg[256];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		snprintf(c->why, c->whylen, "%s: %s", c->plen ? c->path : "(item)", msg);
	}
	return err;
}

static ddb_err check_size(conv *c)
{
	if (c->out.failed)
		return DDB_ENOMEM;
	if (c->max && c->out.len > c->max)
		return fail(c, DDB_ETOOBIG, "the JSON text exceeds %zu bytes", c->max);
	return DDB_OK;
}

static ddb_err put_string(conv *c, const char *s, size_t len)
{
	strbuf_json_string(&c->out, s, len);
	return check_size(c);
}

static ddb_err put_number(conv *c, json_object *v, const char *what)
{
	if (!json_object_is_type(v, json_type_string))
		return fail(c, DDB_ETYPE, "%s must be a string", what);
	const char *s = json_object_get_string(v);
	size_t len = (size_t)json_object_get_string_len(v);
	char text[DDB_NUMBER_MAX], bad[128];
	int exact;
	if (ddb_number_canonical(s, len, text, &exact, bad, sizeof bad) != DDB_OK)
		return fail(c, DDB_ENUMBER, "%s %s", what, bad);
	if (exact) {
		strbuf_puts(&c->out, text);
		return check_size(c);
	}
	return put_string(c, text, strlen(text));
}

static ddb_err put_b64(conv *c, json_object *v, const char *what)
{
	if (!json_object_is_type(v, json_type_string))
		return fail(c, DDB_ETYPE, "%s must be a string", what);
	const char *s = json_object_get_string(v);
	size_t len = (size_t)json_object_get_string_len(v), n;
	ddb_err err = DDB_OK;
	char *text = b64_canonical(s, len, &n, &err);
	if (!text)
		return err == DDB_ENOMEM ? err
		                         : fail(c, err, "%s \"%.*s%s\" is not base64", what,
		                                SHOWN(len), s, ELLIPSIS(len));
	strbuf_json_string(&c->out, text, n);
	free(text);
	return check_size(c);
}

static ddb_err conv_value(conv *c, json_object *av, int depth);

static ddb_err conv_map(conv *c, json_object *m, int depth)
{
	int first = 1;
	strbuf_append(&c->out, "{", 1);
	json_object_object_foreach(m, name, val)
	{
		if (!first)
			strbuf_append(&c->out, ",", 1);
		first = 0;
		strbuf_json_string(&c->out, name, strlen(name));
		strbuf_append(&c->out, ":", 1);
		size_t saved = path_push(c, c->plen ? ".%s" : "%s", name, 0);
		ddb_err err = conv_value(c, val, depth);
		path_pop(c, saved);
		if (err)
			return err;
	}
	strbuf_append(&c->out, "}", 1);
	return check_size(c);
}

/* A set (SS, NS, BS): a non-empty array of strings, each put by put. */
static ddb_err conv_set(conv *c, const char *type, json_object *arr,
                        ddb_err (*put)(conv *, json_object *, const char *))
{
	if (!json_object_is_type(arr, json_type_array))
		return fail(c, DDB_ETYPE, "%s must be an array", type);
	size_t n = json_object_array_length(arr);
	if (n == 0)
		return fail(c, DDB_ETYPE, "%s is empty (DynamoDB has no empty sets)", type);
	strbuf_append(&c->out, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_append(&c->out, ",", 1);
		size_t saved = path_push(c, "[%zu]", NULL, i);
		ddb_err err = put(c, json_object_array_get_idx(arr, i), type);
		path_pop(c, saved);
		if (err)
			return err;
	}
	strbuf_append(&c->out, "]", 1);
	return check_size(c);
}

static ddb_err put_set_string(conv *c, json_object *v, const char *what)
{
	if (!json_object_is_type(v, json_type_string))
		return fail(c, DDB_ETYPE, "%s must hold strings", what);
	return put_string(c, json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

/* One AttributeValue at depth (a top-level attribute's value is at depth 1). */
static ddb_err conv_value(conv *c, json_object *av, int depth)
{
	if (!json_object_is_type(av, json_type_object))
		return fail(c, DDB_ETYPE,
		            "an attribute value must be an object like {\"S\":\"x\"}");
	int n = json_object_object_length(av);
	if (n != 1)
		return fail(c, DDB_ETYPE, "an attribute value needs exactly one type key, not %d",
		            n);
	const char *type = NULL;
	json_object *v = NULL;
	json_object_object_foreach(av, k, val)
	{
		type = k;
		v = val;
	}
	if (!type) /* cannot happen: the object has one member */
		return fail(c, DDB_ETYPE, "an attribute value needs a type key");
	if (strcmp(type, "S") == 0) {
		if (!json_object_is_type(v, json_type_string))
			return fail(c, DDB_ETYPE, "S must be a string");
		return put_string(c, json_object_get_string(v),
		                  (size_t)json_object_get_string_len(v));
	}
	if (strcmp(type, "N") == 0)
		return put_number(c, v, "N");
	if (strcmp(type, "B") == 0)
		return put_b64(c, v, "B");
	if (strcmp(type, "BOOL") == 0 || strcmp(type, "NULL") == 0) {
		if (!json_object_is_type(v, json_type_boolean))
			return fail(c, DDB_ETYPE, "%s must be true or false", type);
		strbuf_puts(&c->out, type[0] == 'N'               ? "null"
		                     : json_object_get_boolean(v) ? "true"
		                                                  : "false");
		return check_size(c);
	}
	if (strcmp(type, "M") == 0 || strcmp(type, "L") == 0) {
		int is_map = type[0] == 'M';
		if (!json_object_is_type(v, is_map ? json_type_object : json_type_array))
			return fail(c, DDB_ETYPE, "%s must be %s", type,
			            is_map ? "an object" : "an array");
		if (depth >= DDB_MAX_DEPTH)
			return fail(c, DDB_EDEPTH, "maps and lists nest deeper than %d levels",
			            DDB_MAX_DEPTH);
		size_t saved = path_push(c, is_map ? ".M" : ".L", "", 0);
		ddb_err err;
		if (is_map) {
			err = conv_map(c, v, depth + 1);
		} else {
			size_t len = json_object_array_length(v);
			strbuf_append(&c->out, "[", 1);
			err = DDB_OK;
			for (size_t i = 0; i < len && !err; i++) {
				if (i)
					strbuf_append(&c->out, ",", 1);
				size_t s2 = path_push(c, "[%zu]", NULL, i);
				err = conv_value(c, json_object_array_get_idx(v, i), depth + 1);
				path_pop(c, s2);
			}
			strbuf_append(&c->out, "]", 1);
			if (!err)
				err = check_size(c);
		}
		path_pop(c, saved);
		return err;
	}
	if (strcmp(type, "SS") == 0)
		return conv_set(c, type, v, put_set_string);
	if (strcmp(type, "NS") == 0)
		return conv_set(c, type, v, put_number);
	if (strcmp(type, "BS") == 0)
		return conv_set(c, type, v, put_b64);
	return fail(c, DDB_ETYPE, "unknown type \"%.*s%s\"", SHOWN(strlen(type)), type,
	            ELLIPSIS(strlen(type)));
}

ddb_err ddb_image_to_json(json_object *image, size_t max_len, char **out, size_t *out_len,
                          char *why, size_t whylen)
{
	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (why && whylen)
		why[0] = '\0';
	if (!out || !json_object_is_type(image, json_type_object)) {
		util_fmt(why, whylen, "the item must be a JSON object");
		return DDB_EINVAL;
	}
	conv c = {.max = max_len, .why = why, .whylen = whylen};
	ddb_err err = conv_map(&c, image, 0);
	if (!err && c.out.failed)
		err = DDB_ENOMEM;
	if (!err && !c.out.data) /* cannot happen: "{}" at least */
		err = DDB_ENOMEM;
	if (err) {
		if (err == DDB_ENOMEM)
			util_fmt(why, whylen, "out of memory");
		free(c.out.data);
		return err;
	}
	*out = c.out.data;
	if (out_len)
		*out_len = c.out.len;
	return DDB_OK;
}

/* ---- keys to data IDs ----------------------------------------------------------- */

/* The text of one key attribute into a malloc'ed *text. */
static ddb_err key_text(const char *name, json_object *av, char **text, size_t *len, char *why,
                        size_t whylen)
{
	const char *type = NULL;
	json_object *v = NULL;
	*text = NULL;
	if (!json_object_is_type(av, json_type_object) || json_object_object_length(av) != 1) {
		util_fmt(why, whylen, "key %s: not an attribute value with one type key", name);
		return DDB_ETYPE;
	}
	json_object_object_foreach(av, k, val)
	{
		type = k;
		v = val;
	}
	if (!type) /* cannot happen: the object has one member */
		return DDB_ETYPE;
	if (strcmp(type, "S") != 0 && strcmp(type, "N") != 0 && strcmp(type, "B") != 0) {
		util_fmt(why, whylen, "key %s: of type %.*s%s, a key is of type S, N or B", name,
		         SHOWN(strlen(type)), type, ELLIPSIS(strlen(type)));
		return DDB_EKEY;
	}
	if (!json_object_is_type(v, json_type_string)) {
		util_fmt(why, whylen, "key %s: %s must be a string", name, type);
		return DDB_ETYPE;
	}
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (type[0] == 'N') {
		char canon[DDB_NUMBER_MAX], bad[128];
		if (ddb_number_canonical(s, n, canon, NULL, bad, sizeof bad) != DDB_OK) {
			util_fmt(why, whylen, "key %s: N %s", name, bad);
			return DDB_ENUMBER;
		}
		*text = strdup(canon);
		*len = strlen(canon);
		return *text ? DDB_OK : DDB_ENOMEM;
	}
	if (type[0] == 'B') {
		ddb_err err = DDB_OK;
		*text = b64_canonical(s, n, len, &err);
		if (!*text && err == DDB_EBASE64)
			util_fmt(why, whylen, "key %s: B \"%.*s%s\" is not base64", name, SHOWN(n),
			         s, ELLIPSIS(n));
		return *text ? DDB_OK : err;
	}
	*text = malloc(n + 1);
	if (!*text)
		return DDB_ENOMEM;
	memcpy(*text, s, n);
	(*text)[n] = '\0';
	*len = n;
	return DDB_OK;
}

/* Bytes of part escaped for a composite id, written to w if not NULL. */
static size_t escape_part(const char *s, size_t n, char *w)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' || s[i] == '|') {
			if (w)
				w[o] = '\\';
			o++;
		}
		if (w)
			w[o] = s[i];
		o++;
	}
	return o;
}

/* "dynamodb.<table>", malloc'ed (NULL when out of memory). */
static char *default_source(const char *table)
{
	size_t n = strlen(table) + sizeof "dynamodb.";
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "dynamodb.%s", table);
	return s;
}

ddb_err ddb_key_id(const ddb_table *table, json_object *keys, char **out, size_t *out_len,
                   char *why, size_t whylen)
{
	char *part[2] = {NULL, NULL}, *id = NULL, *source = NULL;
	size_t plen[2] = {0, 0}, nkeys;
	ddb_err err = DDB_OK;

	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (why && whylen)
		why[0] = '\0';
	if (!out || !table || !table->table || !table->table[0] || !table->key[0] ||
	    !table->key[0][0] || (table->key[1] && !table->key[1][0])) {
		util_fmt(why, whylen, "a table needs a name and a partition key name");
		return DDB_EINVAL;
	}
	if (!json_object_is_type(keys, json_type_object)) {
		util_fmt(why, whylen, "the key must be a JSON object");
		return DDB_EINVAL;
	}
	nkeys = table->key[1] ? 2 : 1;
	for (size_t i = 0; i < nkeys; i++) {
		json_object *av;
		if (!json_object_object_get_ex(keys, table->key[i], &av)) {
			util_fmt(why, whylen, "key %s is missing", table->key[i]);
			err = DDB_EKEY;
			goto out;
		}
		err = key_text(table->key[i], av, &part[i], &plen[i], why, whylen);
		if (err)
			goto out;
	}
	if ((size_t)json_object_object_length(keys) != nkeys) {
		util_fmt(why, whylen, "the key has %d attributes, table %s has %zu key attribute%s",
		         json_object_object_length(keys), table->table, nkeys,
		         nkeys == 1 ? "" : "s");
		err = DDB_EKEY;
		goto out;
	}

	const char *id_text = part[0];
	size_t id_len = plen[0];
	if (nkeys == 2) {
		size_t a = escape_part(part[0], plen[0], NULL);
		size_t b = escape_part(part[1], plen[1], NULL);
		id = malloc(a + 1 + b + 1);
		if (!id) {
			err = DDB_ENOMEM;
			goto out;
		}
		escape_part(part[0], plen[0], id);
		id[a] = '|';
		escape_part(part[1], plen[1], id + a + 1);
		id[a + 1 + b] = '\0';
		id_text = id;
		id_len = a + 1 + b;
	}
	const char *src = table->source;
	if (!src || !src[0])
		src = source = default_source(table->table);
	if (!src) {
		err = DDB_ENOMEM;
		goto out;
	}
	if (scache_id_encode_alloc(src, strlen(src), id_text, id_len, out, out_len) != SCACHE_OK)
		err = DDB_ENOMEM;
out:
	if (err == DDB_ENOMEM)
		util_fmt(why, whylen, "out of memory");
	free(part[0]);
	free(part[1]);
	free(id);
	free(source);
	return err;
}
