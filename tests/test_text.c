/*
 * test_text.c: the text helpers every log line is built with (lib/strbuf.c, lib/util.c):
 * the lock-free UTC time, milliseconds and integers without printf, a buffer that starts
 * in caller memory. Each is checked against what libc prints for the same value.
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strbuf.h"
#include "util.h"

/* What gmtime_r and strftime print for wall_ns. */
static void libc_utc(char *out, size_t len, uint64_t wall_ns)
{
	time_t secs = (time_t)(wall_ns / 1000000000ull);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char t[32];
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03uZ", t, (unsigned)(wall_ns / 1000000ull % 1000));
}

static void check_utc(uint64_t wall_ns)
{
	char got[UTIL_UTC_TEXT_LEN + 1], want[64];
	cr_assert_eq(util_utc_text(got, wall_ns), UTIL_UTC_TEXT_LEN);
	libc_utc(want, sizeof want, wall_ns);
	cr_assert_str_eq(got, want, "wall_ns %llu", (unsigned long long)wall_ns);
}

Test(text, utc_time_is_what_gmtime_prints_on_calendar_edges)
{
	const uint64_t s = 1000000000ull;
	check_utc(0);                                  /* 1970-01-01T00:00:00.000Z */
	check_utc(951782400ull * s);                   /* 2000-02-29 (a leap day) */
	check_utc(951868799ull * s + 999999999ull);    /* 2000-02-29T23:59:59.999Z */
	check_utc(4107542400ull * s);                  /* 2100-03-01 (2100 is no leap year) */
	check_utc(1735689599ull * s + 999000000ull);   /* 2024-12-31T23:59:59.999Z */
	check_utc(1796083200ull * s + 1000000ull);     /* 2026-12-01T00:00:00.001Z */
	check_utc(253402300799ull * s);                /* 9999-12-31T23:59:59.000Z */
	char t[UTIL_UTC_TEXT_LEN + 1];
	util_utc_text(t, 951782400ull * s + 5000000ull);
	cr_assert_str_eq(t, "2000-02-29T00:00:00.005Z");
}

Test(text, utc_time_is_what_gmtime_prints_for_a_million_random_times)
{
	uint64_t x = 88172645463325252ull; /* xorshift64: the same times every run */
	for (int i = 0; i < 1000000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		check_utc(x % (253402300800ull * 1000000000ull));
	}
}

static void check_ms(unsigned long long ns)
{
	strbuf b = {0};
	strbuf_ms(&b, ns);
	char want[64];
	snprintf(want, sizeof want, "%.3f", (double)ns / 1e6);
	cr_assert_str_eq(b.data, want, "ns %llu", ns);
	free(b.data);
}

Test(text, milliseconds_are_what_printf_rounds_to_three_decimals)
{
	check_ms(0);
	check_ms(1);
	check_ms(499);
	check_ms(501);
	check_ms(999999);
	check_ms(1000000);
	check_ms(1250000);
	check_ms(123456789012ull);
	for (unsigned long long ns = 0; ns < 3000000; ns += 7)
		if (ns % 1000 != 500) /* a tie: printf rounds the binary double either way */
			check_ms(ns);
	strbuf b = {0};
	strbuf_ms(&b, 1500);
	cr_assert_str_eq(b.data, "0.002", "a tie rounds up");
	free(b.data);
}

Test(text, integers_are_what_printf_prints)
{
	unsigned long long v[] = {0, 1, 9, 10, 99, 100, 4294967295ull, 4294967296ull, ULLONG_MAX};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		strbuf b = {0};
		strbuf_u64(&b, v[i]);
		char want[32];
		snprintf(want, sizeof want, "%llu", v[i]);
		cr_assert_str_eq(b.data, want);
		free(b.data);
	}
}

Test(text, a_buffer_on_the_stack_moves_to_the_heap_when_it_outgrows_it)
{
	char mem[8];
	strbuf b;
	strbuf_on_stack(&b, mem, sizeof mem);
	strbuf_puts(&b, "abc");
	cr_assert_eq(b.data, mem, "fits: no allocation");
	strbuf_printf(&b, "%d", 1234);
	cr_assert_eq(b.data, mem, "7 bytes and the NUL still fit");
	cr_assert_str_eq(mem, "abc1234");
	strbuf_printf(&b, "-%s-", "long enough to grow");
	cr_assert_neq(b.data, mem, "outgrown: on the heap");
	cr_assert_str_eq(b.data, "abc1234-long enough to grow-");
	cr_assert_eq(b.len, strlen("abc1234-long enough to grow-"));
	strbuf_release(&b); /* frees the heap copy (ASan checks it), never mem */
	cr_assert_null(b.data);

	strbuf_on_stack(&b, mem, sizeof mem);
	strbuf_puts(&b, "x");
	strbuf_release(&b); /* still borrowed: nothing to free */
	cr_assert_null(b.data);
}

Test(text, printf_that_does_not_fit_prints_once_more_after_growing)
{
	strbuf b = {0};
	for (int i = 0; i < 100; i++)
		strbuf_printf(&b, "%03d,", i);
	cr_assert_eq(b.len, 400);
	cr_assert_eq(strncmp(b.data, "000,001,002,", 12), 0);
	cr_assert_str_eq(b.data + 396, "099,");
	free(b.data);
}
