/*
 * users_body.c: the example server's checks of what clients send and DynamoDB returns,
 * apart from the HTTP handling so that they can be fuzzed (tests/fuzz/fuzz_users_body.c).
 * A PUT body must be strict UTF-8 (check_utf8), one complete JSON object with nothing but
 * whitespace after it, without an escaped lone UTF-16 surrogate (check_escaped_surrogates),
 * with "name" and "email" strings free of NULs (string_field). user_json reorders an item
 * read in DynamoDB mode the way the SQLite mode answers it. Pure functions: no I/O, no
 * global state.
 */
#include "users_body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int users_hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* ---- Request bodies: strict UTF-8 ------------------------------------------------- */

/* RFC 3629: a character is 1 to 4 bytes, in its shortest form, at most U+10FFFF, and
 * never a UTF-16 surrogate (U+D800..U+DFFF). json-c 0.16 checks only the shape of lead
 * and continuation bytes, so it stores overlong forms, encoded surrogates and code points
 * above U+10FFFF as they came. Returns 0, or -1 with what is wrong at which byte. */
static int check_utf8(const unsigned char *s, size_t n, char *why, size_t why_size)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t len = c < 0x80                 ? 1
		             : c >= 0xC2 && c <= 0xDF ? 2
		             : c >= 0xE0 && c <= 0xEF ? 3
		                                      : 4;
		const char *what = NULL;
		if (c >= 0x80 && c <= 0xBF)
			what = "unexpected continuation byte";
		else if (c == 0xC0 || c == 0xC1)
			what = "overlong encoding (lead byte C0 or C1)";
		else if (c >= 0xF5 && c <= 0xF7)
			what = "a code point above U+10FFFF (lead byte F5 to F7)";
		else if (c >= 0xF8)
			what = "a byte that never appears in UTF-8";
		if (what) {
			snprintf(why, why_size, "not valid UTF-8 at byte %zu: %s (%02X)", i, what,
			         c);
			return -1;
		}
		unsigned cp = len == 1 ? c : c & (0x7Fu >> len);
		for (size_t k = 1; k < len; k++) {
			if (i + k >= n || (s[i + k] & 0xC0) != 0x80) {
				snprintf(why, why_size,
				         "not valid UTF-8 at byte %zu: truncated %zu-byte "
				         "sequence (%02X, then %zu of its continuation bytes)",
				         i, len, c, k - 1);
				return -1;
			}
			cp = cp << 6 | (s[i + k] & 0x3Fu);
		}
		static const unsigned shortest[] = {0, 0, 0x80, 0x800, 0x10000};
		what = cp < shortest[len]             ? "overlong encoding of U+%04X"
		       : cp >= 0xD800 && cp <= 0xDFFF ? "encoded surrogate U+%04X"
		       : cp > 0x10FFFF                ? "a code point above U+10FFFF (U+%04X)"
		                                      : NULL;
		if (what) {
			char w[64];
			snprintf(w, sizeof w, what, cp);
			snprintf(why, why_size, "not valid UTF-8 at byte %zu: %s", i, w);
			return -1;
		}
		i += len;
	}
	return 0;
}

/* The value of the 4 hex digits at s, or -1. */
static long hex4(const char *s)
{
	long v = 0;
	for (int k = 0; k < 4; k++) {
		int d = users_hex_digit(s[k]);
		if (d < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* The body, already parsed as JSON: a \u escape (four hex digits) of a lone UTF-16 surrogate names
 * no character (json-c would store U+FFFD in its place). A high surrogate must be followed by a low
 * one, as in \ud83d\ude00. Returns 0, or -1 with the escape's byte. */
static int check_escaped_surrogates(const char *s, size_t n, char *why, size_t why_size)
{
	int in_string = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"') {
			in_string = !in_string;
			continue;
		}
		if (!in_string || s[i] != '\\')
			continue;
		if (s[i + 1] != 'u' || i + 5 >= n) {
			i++; /* an escaped character: an escaped quote or backslash is skipped */
			continue;
		}
		long u = hex4(s + i + 2);
		if (u >= 0xD800 && u <= 0xDBFF && i + 11 < n && s[i + 6] == '\\' &&
		    s[i + 7] == 'u') {
			long lo = hex4(s + i + 8);
			if (lo >= 0xDC00 && lo <= 0xDFFF) {
				i += 11; /* a pair: one character */
				continue;
			}
		}
		if (u >= 0xD800 && u <= 0xDFFF) {
			snprintf(why, why_size, "lone UTF-16 surrogate \\u%.4s at byte %zu",
			         s + i + 2, i);
			return -1;
		}
		i += 5;
	}
	return 0;
}

static const char *string_field(json_object *o, const char *name)
{
	json_object *f;
	if (!json_object_object_get_ex(o, name, &f) || !json_object_is_type(f, json_type_string))
		return NULL;
	const char *v = json_object_get_string(f);
	/* "\u0000" would cut the stored string short: refuse rather than half-write */
	if (strlen(v) != (size_t)json_object_get_string_len(f))
		return NULL;
	return v;
}

int users_body_parse(const char *body, size_t len, json_object **obj, const char **name,
                     const char **email, char *msg, size_t msg_size)
{
	char why[160];
	*obj = NULL;
	*name = *email = NULL;
	if (check_utf8((const unsigned char *)body, len, why, sizeof why)) {
		snprintf(msg, msg_size, "the body is %s", why);
		return -1;
	}
	json_tokener *tok = json_tokener_new();
	if (tok)
		json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8); /* JSON text is UTF-8 */
	json_object *o = tok ? json_tokener_parse_ex(tok, body, (int)len) : NULL;
	int complete = tok && json_tokener_get_error(tok) == json_tokener_success;
	for (size_t i = complete ? json_tokener_get_parse_end(tok) : len; i < len; i++)
		if (!body[i] || !strchr(" \t\r\n", body[i]))
			complete = 0; /* trailing garbage (a NUL too: strchr would find the end) */
	json_tokener_free(tok);
	if (!o || !complete || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		snprintf(msg, msg_size, "the body must be a JSON object");
		return -1;
	}
	if (check_escaped_surrogates(body, len, why, sizeof why)) {
		json_object_put(o);
		snprintf(msg, msg_size, "the body has a %s", why);
		return -1;
	}
	const char *n = string_field(o, "name"), *e = string_field(o, "email");
	if (!n || !e) {
		json_object_put(o);
		snprintf(msg, msg_size, "\"name\" and \"email\" are required strings");
		return -1;
	}
	*obj = o;
	*name = n;
	*email = e;
	return 0;
}

/* The user as the SQLite mode answers it: {"id":...,"name":...,"email":...} first, then
 * any other attribute the item has (written by someone else), in the item's order. */
char *user_json(const char *item, size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *in = tok ? json_tokener_parse_ex(tok, item, (int)len) : NULL;
	json_tokener_free(tok);
	if (!json_object_is_type(in, json_type_object)) {
		json_object_put(in);
		return NULL;
	}
	static const char *const first[] = {"id", "name", "email"};
	json_object *out = json_object_new_object(), *v;
	for (size_t i = 0; i < 3; i++)
		if (json_object_object_get_ex(in, first[i], &v))
			json_object_object_add(out, first[i], json_object_get(v));
	json_object_object_foreach(in, k, val)
	{
		if (strcmp(k, "id") && strcmp(k, "name") && strcmp(k, "email"))
			json_object_object_add(out, k, json_object_get(val));
	}
	char *text = strdup(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
	json_object_put(out);
	json_object_put(in);
	return text;
}
