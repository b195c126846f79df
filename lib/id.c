/*
 * id.c: data IDs, byte for byte as scache's data.ID.
 *
 * The encoding is Go's url.Values{"s":..., "id":..., "t":"data.ID"}.Encode(): pairs
 * sorted by name (id, s, t), values escaped with url.QueryEscape. The parser mirrors
 * url.ParseQuery: '&'-separated pairs in any order, '+' is a space, %XX a byte, a ';'
 * is an error, unknown pairs are ignored, the first value of a repeated name wins.
 */
#include "scache/id.h"

#include <stdlib.h>
#include <string.h>

static const char hex_upper[] = "0123456789ABCDEF";

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

/* Appends the escaped form of s to buf (when it fits) and returns its length. */
static size_t escape_into(const char *s, size_t len, char *buf, size_t pos, size_t bufsize)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[3];
		size_t k;
		if (is_unreserved(c)) {
			tmp[0] = (char)c;
			k = 1;
		} else if (c == ' ') {
			tmp[0] = '+';
			k = 1;
		} else {
			tmp[0] = '%';
			tmp[1] = hex_upper[c >> 4];
			tmp[2] = hex_upper[c & 15];
			k = 3;
		}
		for (size_t j = 0; j < k; j++, n++)
			if (pos + n < bufsize)
				buf[pos + n] = tmp[j];
	}
	return n;
}

static size_t append_lit(const char *lit, char *buf, size_t pos, size_t bufsize)
{
	size_t n = strlen(lit);
	for (size_t i = 0; i < n; i++)
		if (pos + i < bufsize)
			buf[pos + i] = lit[i];
	return n;
}

size_t scache_id_encode(const char *source, size_t source_len, const char *id, size_t id_len,
                        char *buf, size_t bufsize)
{
	size_t pos = 0;
	if ((!source && source_len) || (!id && id_len))
		source_len = id_len = 0; /* documented as invalid; never read through NULL */
	if (!buf)
		bufsize = 0;
	pos += append_lit("id=", buf, pos, bufsize);
	pos += escape_into(id, id_len, buf, pos, bufsize);
	pos += append_lit("&s=", buf, pos, bufsize);
	pos += escape_into(source, source_len, buf, pos, bufsize);
	pos += append_lit("&t=data.ID", buf, pos, bufsize);
	if (bufsize > 0)
		buf[pos < bufsize ? pos : bufsize - 1] = '\0';
	return pos;
}

scache_err scache_id_encode_alloc(const char *source, size_t source_len, const char *id,
                                  size_t id_len, char **out, size_t *out_len)
{
	if (!out || (!source && source_len) || (!id && id_len))
		return SCACHE_EINVAL;
	*out = NULL;
	size_t n = scache_id_encode(source, source_len, id, id_len, NULL, 0);
	char *buf = malloc(n + 1);
	if (!buf)
		return SCACHE_ENOMEM;
	scache_id_encode(source, source_len, id, id_len, buf, n + 1);
	*out = buf;
	if (out_len)
		*out_len = n;
	return SCACHE_OK;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..len) (query-unescaping) into a new NUL-terminated string. */
static scache_err unescape(const char *s, size_t len, char **out, size_t *out_len)
{
	char *buf = malloc(len + 1);
	size_t n = 0;
	if (!buf)
		return SCACHE_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+') {
			buf[n++] = ' ';
		} else if (s[i] == '%') {
			int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				free(buf);
				return SCACHE_EMALFORMED;
			}
			buf[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			buf[n++] = s[i];
		}
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return SCACHE_OK;
}

static int name_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

scache_err scache_id_parse(const char *str, size_t len, scache_id *out)
{
	if (!out)
		return SCACHE_EINVAL;
	memset(out, 0, sizeof *out);
	if (!str && len)
		return SCACHE_EINVAL;
	if (len && memchr(str, ';', len))
		return SCACHE_EMALFORMED;

	int have_s = 0, have_id = 0, have_t = 0;
	scache_err err = SCACHE_OK;
	size_t pos = 0;
	while (pos < len && err == SCACHE_OK) {
		const char *pair = str + pos;
		const char *amp = memchr(pair, '&', len - pos);
		size_t pair_len = amp ? (size_t)(amp - pair) : len - pos;
		pos += pair_len + 1;
		if (pair_len == 0)
			continue;
		const char *eq = memchr(pair, '=', pair_len);
		size_t name_len = eq ? (size_t)(eq - pair) : pair_len;
		const char *val = eq ? eq + 1 : pair + pair_len;
		size_t val_len = pair_len - name_len - (eq ? 1 : 0);

		/* Names are unescaped too; ours never need it, so compare the decoded name. */
		char *name;
		size_t nlen;
		err = unescape(pair, name_len, &name, &nlen);
		if (err)
			break;
		char *value;
		size_t vlen;
		err = unescape(val, val_len, &value, &vlen);
		if (err) {
			free(name);
			break;
		}
		if (name_is(name, nlen, "s") && !have_s) {
			out->source = value, out->source_len = vlen, have_s = 1;
		} else if (name_is(name, nlen, "id") && !have_id) {
			out->id = value, out->id_len = vlen, have_id = 1;
		} else {
			if (name_is(name, nlen, "t") && !have_t) {
				have_t = 1;
				if (!name_is(value, vlen, "data.ID"))
					have_t = 2;
			}
			free(value);
		}
		free(name);
	}
	if (err == SCACHE_OK && have_t != 1)
		err = SCACHE_ENOTID;
	if (err == SCACHE_OK && (!have_s || !have_id)) {
		/* A missing pair reads as the empty string, as url.Values.Get returns. */
		if (!have_s && !(out->source = calloc(1, 1)))
			err = SCACHE_ENOMEM;
		if (!have_id && err == SCACHE_OK && !(out->id = calloc(1, 1)))
			err = SCACHE_ENOMEM;
	}
	if (err)
		scache_id_clear(out);
	return err;
}

void scache_id_clear(scache_id *id)
{
	if (!id)
		return;
	free(id->source);
	free(id->id);
	memset(id, 0, sizeof *id);
}
