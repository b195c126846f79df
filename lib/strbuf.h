/*
 * strbuf.h: a growable string (lib/strbuf.c). Zero-initialise it; free(b.data) when done.
 * An allocation failure sets failed and ends further appends.
 */
#ifndef SCACHE_STRBUF_H
#define SCACHE_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
	char *data;
	size_t len, cap;
	int failed;
} strbuf;

void strbuf_append(strbuf *b, const char *s, size_t n);
void strbuf_puts(strbuf *b, const char *s);
void strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append the JSON string literal of s (n bytes): quotes, backslash and control
 * characters escaped, invalid UTF-8 replaced by U+FFFD. */
void strbuf_json_string(strbuf *b, const char *s, size_t n);

#endif
