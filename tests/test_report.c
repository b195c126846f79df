/* scachectl report over a known log: exact totals, nearest-rank percentiles, the verdict,
 * and tolerance of lines that are not request lines. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "../tools/report.h"

#include <stdio.h>
#include <stdlib.h>

static char path[] = "/tmp/scache-report-XXXXXX";

static void write_log(const char *text)
{
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
}

Test(report, percentiles_are_nearest_rank)
{
	double v[] = {5, 1, 4, 2, 3, 10, 9, 8, 7, 6};
	cr_assert_float_eq(report_percentile(v, 10, 0.50), 5.0, 1e-12);
	cr_assert_float_eq(report_percentile(v, 10, 0.99), 10.0, 1e-12);
	cr_assert_float_eq(report_percentile(v, 1, 0.99), 1.0, 1e-12);
	cr_assert_float_eq(report_percentile(NULL, 0, 0.5), 0.0, 1e-12);
}

Test(report, summarizes_request_lines_and_gives_the_verdict, .init = cr_redirect_stdout)
{
	write_log(
	    "{\"type\":\"request\",\"time\":\"2026-11-24T14:00:00.000Z\",\"method\":\"GET\","
	    "\"path\":\"/users/1\",\"status\":200,\"request_ms\":1.0,\"stream_ms\":0.5,"
	    "\"saved_ms\":3.0,\"hits\":1,\"misses\":0,\"evicted\":0,\"bypass\":false}\n"
	    "not json at all\n"
	    "{\"type\":\"request\",\"time\":\"2026-11-24T14:00:01.000Z\",\"method\":\"GET\","
	    "\"path\":\"/users/2\",\"status\":200,\"request_ms\":2.0,\"stream_ms\":1.5,"
	    "\"saved_ms\":0,\"hits\":0,\"misses\":1,\"evicted\":2,\"bypass\":false}\n"
	    "{\"type\":\"warning\",\"time\":\"2026-11-24T14:00:02.000Z\",\"msg\":\"stream down\"}\n"
	    "{\"type\":\"request\",\"time\":\"2026-11-24T14:00:03.000Z\",\"method\":\"GET\","
	    "\"path\":\"/users/3\",\"status\":503,\"request_ms\":10,\"stream_ms\":0,"
	    "\"saved_ms\":0,\"hits\":0,\"misses\":1,\"evicted\":0,\"bypass\":true}\n"
	    "{\"type\":\"summary\",\"requests\":3}\n");
	char *argv[] = {"report", path};
	cr_assert_eq(scachectl_report(2, argv), 0);
	remove(path);
	fflush(stdout);
	cr_assert_stdout_eq_str(
	    "requests        3 (1 with the cache bypassed, 1 answered 5xx)\n"
	    "cache lookups   1 hits, 2 misses: hit ratio 33.3%\n"
	    "evicted         2 entries removed before handlers ran\n"
	    "request_ms      p50 2.000  p99 10.000  total 13.000\n"
	    "stream_ms       p50 0.500  p99 1.500  total 2.000 (time spent waiting for the "
	    "stream)\n"
	    "saved_ms        total 3.000 (load time the hits avoided)\n"
	    "saved / spent   1.50\n"
	    "other lines     1 summaries, 1 warnings, 1 skipped\n"
	    "first warning   stream down\n"
	    "verdict         the cache pays for itself: 3.0 ms saved for 2.0 ms spent on the "
	    "stream\n");
}

Test(report, warns_when_the_cache_costs_more_than_it_saves, .init = cr_redirect_stdout)
{
	write_log("{\"type\":\"request\",\"method\":\"GET\",\"path\":\"/\",\"status\":200,"
	          "\"request_ms\":9,\"stream_ms\":8,\"saved_ms\":1,\"hits\":1,\"misses\":0,"
	          "\"evicted\":0,\"bypass\":false}\n");
	char *argv[] = {"report", path};
	cr_assert_eq(scachectl_report(2, argv), REPORT_EXIT_WARNING);
	cr_assert_eq(REPORT_EXIT_WARNING, 3);
	remove(path);
	fflush(stdout);
	FILE *out = cr_get_redirected_stdout();
	char buf[4096];
	size_t n = fread(buf, 1, sizeof buf - 1, out);
	buf[n] = '\0';
	cr_assert_not_null(strstr(buf, "verdict         WARNING: the cache costs more than it "
	                               "saves: 8.0 ms spent on the stream for 1.0 ms saved; "
	                               "consider bounded staleness (poll_interval_ms in "
	                               "scache_middleware_config; the example server's "
	                               "--poll-interval MS)"),
	                   "%s", buf);
}

Test(report, a_missing_file_is_an_error)
{
	char *argv[] = {"report", "/nonexistent/scache.log"};
	cr_assert_eq(scachectl_report(2, argv), 1);
}

Test(report, skips_lines_whose_type_or_numbers_are_not_what_a_log_holds, .init = cr_redirect_stdout)
{
	write_log("{\"type\":null}\n"
	          "{\"type\":5}\n"
	          "{\"type\":\"request\",\"status\":200,\"request_ms\":1,\"stream_ms\":0,"
	          "\"saved_ms\":0,\"hits\":-1,\"misses\":0,\"evicted\":0,\"bypass\":false}\n"
	          "{\"type\":\"request\",\"status\":200,\"request_ms\":1,\"stream_ms\":0,"
	          "\"saved_ms\":0,\"hits\":0,\"misses\":1e300,\"evicted\":0,\"bypass\":false}\n"
	          "{\"type\":\"request\",\"status\":200,\"request_ms\":2,\"stream_ms\":1,"
	          "\"saved_ms\":4,\"hits\":1,\"misses\":0,\"evicted\":0,\"bypass\":false}\n");
	char *argv[] = {"report", path};
	cr_assert_eq(scachectl_report(2, argv), 0);
	remove(path);
	fflush(stdout);
	FILE *out = cr_get_redirected_stdout();
	char buf[4096];
	size_t n = fread(buf, 1, sizeof buf - 1, out);
	buf[n] = '\0';
	cr_assert_not_null(strstr(buf, "requests        1 (0 with the cache bypassed"), "%s", buf);
	cr_assert_not_null(strstr(buf, "cache lookups   1 hits, 0 misses"), "%s", buf);
	cr_assert_not_null(strstr(buf, "0 summaries, 0 warnings, 4 skipped"), "%s", buf);
}

Test(report, the_first_warning_is_the_first_with_a_message, .init = cr_redirect_stdout)
{
	write_log("{\"type\":\"warning\",\"msg\":null}\n"
	          "{\"type\":\"warning\",\"msg\":\"stream down\"}\n");
	char *argv[] = {"report", path};
	cr_assert_eq(scachectl_report(2, argv), 0);
	remove(path);
	fflush(stdout);
	FILE *out = cr_get_redirected_stdout();
	char buf[4096];
	size_t n = fread(buf, 1, sizeof buf - 1, out);
	buf[n] = '\0';
	cr_assert_not_null(strstr(buf, "0 summaries, 2 warnings, 0 skipped"), "%s", buf);
	cr_assert_not_null(strstr(buf, "first warning   stream down\n"), "%s", buf);
}

Test(report, a_warning_cannot_send_control_characters_to_the_terminal, .init = cr_redirect_stdout)
{
	write_log("{\"type\":\"warning\",\"msg\":\"a\\u001b[2J\\r\\nverdict  fine\\u0007b\"}\n");
	char *argv[] = {"report", path};
	cr_assert_eq(scachectl_report(2, argv), 0);
	remove(path);
	fflush(stdout);
	FILE *out = cr_get_redirected_stdout();
	char buf[4096];
	size_t n = fread(buf, 1, sizeof buf - 1, out);
	buf[n] = '\0';
	cr_assert_not_null(strstr(buf, "first warning   a?[2J??verdict  fine?b\n"), "%s", buf);
}
