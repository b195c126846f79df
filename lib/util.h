/*
 * util.h: the small helpers every part of the library shares (lib/util.c): a bounded
 * message writer, the wall clock, an EINTR-safe sleep, and base64. One of each, so copies
 * cannot drift apart. (The monotonic clock is the public scache_now_ns.)
 */
#ifndef SCACHE_UTIL_H
#define SCACHE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* snprintf for messages that may be cut short: always NUL-terminated when len > 0, and
 * nothing is written when dst is NULL or len 0 (an optional error buffer). */
void util_fmt(char *dst, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* util_copy_str: src (NULL: "") into dst, cut to fit, like util_fmt. */
void util_copy_str(char *dst, size_t len, const char *src);

/* CLOCK_REALTIME in nanoseconds, and in seconds: for times that leave the process (log
 * lines, record timestamps, AT_TIMESTAMP positions), never for measuring durations. */
uint64_t util_wall_ns(void);
double util_wall_s(void);

/* wall_ns as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, years 1970-9999) into t, NUL-terminated;
 * returns UTIL_UTC_TEXT_LEN. Lock-free, unlike gmtime_r (log lines call it per request). */
#define UTIL_UTC_TEXT_LEN 24
size_t util_utc_text(char *t, uint64_t wall_ns);

/* Sleep ms milliseconds, resuming after a signal. */
void util_sleep_ms(unsigned ms);

/* Base64 (standard alphabet, padded) via OpenSSL EVP. Results are malloc'ed and
 * NUL-terminated; NULL on allocation failure or (decode) anything but canonical base64:
 * a length that is a multiple of 4, no whitespace, padding only at the end. */
char *util_b64_encode(const unsigned char *data, size_t len, size_t *out_len);
unsigned char *util_b64_decode(const char *text, size_t len, size_t *out_len);

#endif
