/*
 * strbuf.h: a growable string (lib/strbuf.c). Zero-initialise it; free(b.data) when done.
 * An allocation failure sets failed and ends further appends. strbuf_on_stack starts it in
 * caller memory (no allocation while it fits); such a buffer is released with
 * strbuf_release, which frees only what was allocated.
 */
#ifndef SCACHE_STRBUF_H
#define SCACHE_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
	char *data;
	size_t len, cap;
	int failed;
	int borrowed; /* data is the caller's memory from strbuf_on_stack, not ours */
} strbuf;

void strbuf_on_stack(strbuf *b, char *mem, size_t cap);
void strbuf_release(strbuf *b);
/* Append v in decimal; strbuf_ms appends ns as milliseconds with 3 decimals ("1.250"),
 * both without printf. */
void strbuf_u64(strbuf *b, unsigned long long v);
void strbuf_ms(strbuf *b, unsigned long long ns);

void strbuf_append(strbuf *b, const char *s, size_t n);
void strbuf_puts(strbuf *b, const char *s);
void strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append the JSON string literal of s (n bytes): quotes, backslash and control
 * characters escaped, invalid UTF-8 replaced by U+FFFD. */
void strbuf_json_string(strbuf *b, const char *s, size_t n);

#endif
