/*
 * util.c: helpers shared by the whole library (see util.h), each written once.
 *
 * Base64 goes through OpenSSL's EVP encoder and decoder (libcrypto is linked for it):
 * EVP_DecodeUpdate/EVP_DecodeFinal handle padding themselves; the strict check before
 * them refuses what they would tolerate (whitespace, padding in the middle), since a
 * Kinesis record's Data is always canonical base64.
 */
#include "util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

void util_fmt(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;
	if (!dst || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
}

void util_copy_str(char *dst, size_t len, const char *src)
{
	util_fmt(dst, len, "%s", src ? src : "");
}

uint64_t util_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Two decimal digits of v (0..99) at p. */
static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
}

/* Calendar arithmetic (days to civil date, proleptic Gregorian, after Howard Hinnant's
 * date algorithms) instead of gmtime_r and strftime: every request line has a time, and
 * glibc's gmtime_r takes a process-wide lock on every call. */
size_t util_utc_text(char *t, uint64_t wall_ns)
{
	uint64_t secs = wall_ns / 1000000000ull;
	unsigned millis = (unsigned)(wall_ns / 1000000ull % 1000);
	unsigned sod = (unsigned)(secs % 86400);
	int64_t z = (int64_t)(secs / 86400) + 719468; /* days since 0000-03-01 */
	int64_t era = z / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned day = doy - (153 * mp + 2) / 5 + 1;
	unsigned month = mp < 10 ? mp + 3 : mp - 9;
	unsigned year = (unsigned)(yoe + era * 400 + (month <= 2));
	memcpy(t, "0000-00-00T00:00:00.000Z", UTIL_UTC_TEXT_LEN + 1);
	put2(t, year / 100 % 100);
	put2(t + 2, year % 100);
	put2(t + 5, month);
	put2(t + 8, day);
	put2(t + 11, sod / 3600);
	put2(t + 14, sod / 60 % 60);
	put2(t + 17, sod % 60);
	t[20] = (char)('0' + millis / 100);
	put2(t + 21, millis % 100);
	return UTIL_UTC_TEXT_LEN;
}

double util_wall_s(void)
{
	return (double)util_wall_ns() / 1e9;
}

void util_sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

char *util_b64_encode(const unsigned char *data, size_t len, size_t *out_len)
{
	size_t n = 4 * ((len + 2) / 3);
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t done = 0, o = 0;
	/* EVP_EncodeBlock takes an int: go in chunks of a multiple of 3 bytes */
	while (done < len) {
		size_t chunk = len - done;
		if (chunk > (size_t)3 << 20)
			chunk = (size_t)3 << 20;
		int w = EVP_EncodeBlock((unsigned char *)out + o, data + done, (int)chunk);
		o += (size_t)w;
		done += chunk;
	}
	out[o] = '\0';
	assert(o == n);
	if (out_len)
		*out_len = o;
	return out;
}

/* Canonical base64: groups of 4 from the alphabet, '=' only as the last one or two. */
static int b64_canonical(const char *text, size_t len)
{
	if (len % 4 != 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (isalnum(ch) || ch == '+' || ch == '/')
			continue;
		if (ch != '=' || i + 2 < len || (i + 2 == len && text[len - 1] != '='))
			return 0;
	}
	return 1;
}

unsigned char *util_b64_decode(const char *text, size_t len, size_t *out_len)
{
	if (!b64_canonical(text, len))
		return NULL;
	unsigned char *out = malloc(len / 4 * 3 + 1);
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	size_t done = 0, o = 0;
	int w, ok = out && ctx;

	if (ok)
		EVP_DecodeInit(ctx);
	/* EVP_DecodeUpdate takes an int: go in chunks */
	while (ok && done < len) {
		size_t chunk = len - done;
		if (chunk > (size_t)4 << 20)
			chunk = (size_t)4 << 20;
		ok = EVP_DecodeUpdate(ctx, out + o, &w, (const unsigned char *)text + done,
		                      (int)chunk) >= 0;
		o += ok ? (size_t)w : 0;
		done += chunk;
	}
	if (ok) {
		ok = EVP_DecodeFinal(ctx, out + o, &w) == 1;
		o += ok ? (size_t)w : 0;
	}
	EVP_ENCODE_CTX_free(ctx);
	if (!ok) {
		free(out);
		return NULL;
	}
	out[o] = '\0';
	if (out_len)
		*out_len = o;
	return out;
}
