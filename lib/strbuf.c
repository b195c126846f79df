/*
 * strbuf.c: a growable string for building log lines and metrics in memory, and the
 * JSON string escaping every outside string goes through (quotes, backslashes and
 * control characters escaped, invalid UTF-8 replaced by U+FFFD), so no input forges a
 * field or breaks a line. An allocation failure marks the buffer failed; the caller
 * drops it.
 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void strbuf_reserve(strbuf *b, size_t more)
{
	if (b->failed)
		return;
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *d = realloc(b->borrowed ? NULL : b->data, cap);
	if (!d) {
		b->failed = 1;
		return;
	}
	if (b->borrowed && b->len)
		memcpy(d, b->data, b->len);
	b->borrowed = 0;
	b->data = d;
	b->cap = cap;
}

void strbuf_on_stack(strbuf *b, char *mem, size_t cap)
{
	*b = (strbuf){.data = mem, .cap = cap, .borrowed = 1};
	if (cap)
		mem[0] = '\0';
}

void strbuf_release(strbuf *b)
{
	if (!b->borrowed)
		free(b->data);
	*b = (strbuf){0};
}

void strbuf_u64(strbuf *b, unsigned long long v)
{
	char d[24];
	size_t i = sizeof d;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	strbuf_append(b, d + i, sizeof d - i);
}

void strbuf_ms(strbuf *b, unsigned long long ns)
{
	unsigned long long us = (ns + 500) / 1000; /* rounded to the microsecond */
	char frac[4] = {(char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
	                (char)('0' + us % 10), 0};
	strbuf_u64(b, us / 1000);
	strbuf_append(b, ".", 1);
	strbuf_append(b, frac, 3);
}

void strbuf_append(strbuf *b, const char *s, size_t n)
{
	strbuf_reserve(b, n);
	if (b->failed)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void strbuf_puts(strbuf *b, const char *s)
{
	strbuf_append(b, s, strlen(s));
}

void strbuf_printf(strbuf *b, const char *fmt, ...)
{
	if (b->failed)
		return;
	/* Print into the room left first: one vsnprintf when it fits (the common case). */
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	if ((size_t)n >= room) {
		strbuf_reserve(b, (size_t)n);
		if (b->failed)
			return;
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned min;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1Fu;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0Fu;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07u;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3Fu);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

void strbuf_json_string(strbuf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	strbuf_append(b, "\"", 1);
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			strbuf_append(b, esc, 2);
			i++;
		} else if (c < 0x20 || c == 0x7F) {
			strbuf_printf(b, "\\u%04x", c);
			i++;
		} else if (c < 0x80) {
			strbuf_append(b, (const char *)s + i, 1);
			i++;
		} else {
			size_t len = utf8_valid_len(s + i, n - i);
			if (len == 0) {
				strbuf_append(b, "\\ufffd", 6);
				i++;
			} else {
				strbuf_append(b, (const char *)s + i, len);
				i += len;
			}
		}
	}
	strbuf_append(b, "\"", 1);
}

/* RFC 3339 UTC with milliseconds. */
