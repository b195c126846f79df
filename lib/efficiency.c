/*
 * Efficiency: does the cache pay for itself? Each request costs the time it waited for
 * the stream (stream_ms) and earns the load time its hits avoided (saved_ms). This file
 * writes one JSON line per request (or per request_sample requests: a counter, not a
 * random draw, so the proportion is exact), a summary line per period with a verdict,
 * warning lines (the counters behind them are read by metrics.c; the sink is
 * log_sink.c's). Refreshes (values the stream delivered, stored by the poller) are
 * counted per period in the summary, not per request: no request causes them.
 *
 * Every string that comes from outside (method, path, error messages) goes through
 * strbuf_json_string: quotes, backslashes and control characters are escaped and
 * invalid UTF-8 becomes U+FFFD, so a crafted URL cannot forge a field or break a line.
 * Lines are built in memory and handed to the sink in one call under a mutex, so lines
 * of concurrent requests never interleave.
 */
#include "middleware_internal.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static void append_time(strbuf *b, uint64_t wall_ns)
{
	char t[UTIL_UTC_TEXT_LEN + 1];
	strbuf_append(b, "\"", 1);
	strbuf_append(b, t, util_utc_text(t, wall_ns));
	strbuf_append(b, "\"", 1);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* ---- Lines ----------------------------------------------------------------------- */

/* The sink itself (config.log, config.log_file or stderr) is log_sink.c's. */
static void emit_buf(scache_middleware *mw, strbuf *b)
{
	if (!b->failed && b->data)
		efficiency_emit(mw, b->data, b->len);
	free(b->data);
}

/* 1 if this request's line is written: every request, or 1 in request_sample (the 1st,
 * the N+1th, ...: a counter, so exactly one line per N requests). */
static int request_sampled(scache_middleware *mw)
{
	unsigned n = mw->cfg.request_sample;
	if (n <= 1)
		return 1;
	return atomic_fetch_add(&mw->request_lines, 1) % n == 0;
}

static void request_line(scache_middleware *mw, const scache_request *req, uint64_t request_ns)
{
	char mem[512]; /* a request line fits unless its path is long */
	strbuf b;
	strbuf_on_stack(&b, mem, sizeof mem);
	strbuf_puts(&b, "{\"type\":\"request\",\"time\":");
	append_time(&b, req->wall_ns);
	strbuf_puts(&b, ",\"method\":");
	strbuf_json_string(&b, req->method, strlen(req->method));
	strbuf_puts(&b, ",\"path\":");
	strbuf_json_string(&b, req->path, strlen(req->path));
	strbuf_puts(&b, ",\"status\":");
	strbuf_u64(&b, req->status);
	strbuf_puts(&b, ",\"request_ms\":");
	strbuf_ms(&b, request_ns);
	strbuf_puts(&b, ",\"stream_ms\":");
	strbuf_ms(&b, req->stream_ns);
	strbuf_puts(&b, ",\"saved_ms\":");
	strbuf_ms(&b, req->saved_ns);
	strbuf_puts(&b, ",\"hits\":");
	strbuf_u64(&b, req->hits);
	strbuf_puts(&b, ",\"misses\":");
	strbuf_u64(&b, req->misses);
	strbuf_puts(&b, ",\"evicted\":");
	strbuf_u64(&b, req->evicted);
	strbuf_puts(&b, req->bypass ? ",\"bypass\":true" : ",\"bypass\":false");
	if (mw->cfg.request_sample > 1) { /* so a reader can scale the counts back up */
		strbuf_puts(&b, ",\"sample\":");
		strbuf_u64(&b, mw->cfg.request_sample);
	}
	strbuf_puts(&b, "}");
	if (!b.failed)
		efficiency_emit(mw, b.data, b.len);
	strbuf_release(&b);
}

void efficiency_request_done(scache_middleware *mw, const scache_request *req)
{
	uint64_t request_ns = scache_now_ns(NULL) - req->arrival_ns;
	if (!mw->cfg.quiet_requests && request_sampled(mw))
		request_line(mw, req, request_ns);
	/* Counted after its line went to the sink: a reader of the counters who sees this
	 * request also finds its line. */
	pthread_mutex_lock(&mw->stats_mu);
	mw->totals.requests++;
	mw->totals.request_hits += req->hits;
	mw->totals.request_misses += req->misses;
	mw->totals.stream_ns += req->stream_ns;
	mw->totals.saved_ns += req->saved_ns;
	mw->period.requests++;
	mw->period.hits += req->hits;
	mw->period.misses += req->misses;
	mw->period.stream_ns += req->stream_ns;
	mw->period.saved_ns += req->saved_ns;
	if (req->bypass) {
		mw->totals.bypass_requests++;
		mw->period.bypass_requests++;
	}
	pthread_mutex_unlock(&mw->stats_mu);
}

void efficiency_poll_done(scache_middleware *mw, const scache_poll_info *info, scache_err err)
{
	pthread_mutex_lock(&mw->stats_mu);
	mw->totals.polls++;
	mw->period.polls++;
	mw->totals.source_calls += info->calls;
	if (info->throttled)
		mw->totals.throttled_polls++;
	mw->period.calls += info->calls;
	if (err) {
		mw->totals.poll_errors++;
		mw->period.poll_errors++;
	}
	pthread_mutex_unlock(&mw->stats_mu);
}

void efficiency_warning(scache_middleware *mw, const char *msg)
{
	strbuf b = {0};
	strbuf_puts(&b, "{\"type\":\"warning\",\"time\":");
	append_time(&b, util_wall_ns());
	strbuf_puts(&b, ",\"msg\":");
	strbuf_json_string(&b, msg, strlen(msg));
	strbuf_puts(&b, "}");
	emit_buf(mw, &b);
}

void efficiency_summary(scache_middleware *mw, int force)
{
	uint64_t now = scache_now_ns(NULL);
	pthread_mutex_lock(&mw->stats_mu);
	period_counters p = mw->period;
	uint64_t period_ns = now - mw->period_start_ns;
	memset(&mw->period, 0, sizeof mw->period);
	mw->period_start_ns = now;
	pthread_mutex_unlock(&mw->stats_mu);
	if (p.requests == 0 && !force)
		return;

	scache_cache_stats cs;
	scache_cache_stats_get(mw->cfg.cache, &cs);
	int bypassing = 0;
	uint64_t staleness = mw_staleness_ns(mw, &bypassing);
	uint64_t lookups = p.hits + p.misses;

	strbuf b = {0};
	strbuf_puts(&b, "{\"type\":\"summary\",\"time\":");
	append_time(&b, util_wall_ns());
	strbuf_printf(&b,
	              ",\"period_s\":%.3f,\"requests\":%llu,\"hits\":%llu,\"misses\":%llu,"
	              "\"hit_ratio\":%.4f,\"bypass_requests\":%llu,\"stream_ms\":%.3f,"
	              "\"saved_ms\":%.3f,",
	              (double)period_ns / 1e9, (unsigned long long)p.requests,
	              (unsigned long long)p.hits, (unsigned long long)p.misses,
	              lookups ? (double)p.hits / (double)lookups : 0.0,
	              (unsigned long long)p.bypass_requests, ms(p.stream_ns), ms(p.saved_ns));
	if (p.stream_ns)
		strbuf_printf(&b, "\"saved_per_stream\":%.4f,",
		              (double)p.saved_ns / (double)p.stream_ns);
	else
		strbuf_puts(&b, "\"saved_per_stream\":null,");
	strbuf_printf(&b,
	              "\"polls\":%llu,\"source_calls\":%llu,\"source_errors\":%llu,"
	              "\"refreshed\":%llu,\"staleness_ms\":%.3f,\"bypassing\":%s,"
	              "\"entries\":%llu",
	              (unsigned long long)p.polls, (unsigned long long)p.calls,
	              (unsigned long long)p.poll_errors, (unsigned long long)p.refreshed,
	              ms(staleness), bypassing ? "true" : "false", (unsigned long long)cs.entries);
	scache_push_stats ps;
	if (scache_kinesis_push_stats(mw->src, &ps) == SCACHE_OK) /* a push source: totals */
		strbuf_printf(&b,
		              ",\"push\":{\"events\":%llu,\"records\":%llu,\"renewals\":%llu,"
		              "\"reconnects\":%llu,\"refused\":%llu,\"millis_behind\":%lld,"
		              "\"shards\":%llu,\"polling\":%s}",
		              (unsigned long long)ps.events, (unsigned long long)ps.records,
		              (unsigned long long)ps.renewals, (unsigned long long)ps.reconnects,
		              (unsigned long long)ps.refused, (long long)ps.millis_behind,
		              (unsigned long long)ps.shards, ps.polling ? "true" : "false");
	if (p.stream_ns > p.saved_ns) {
		char w[256];
		snprintf(w, sizeof w,
		         "the cache cost more than it saved over this period: %.1f ms waiting for "
		         "the stream against %.1f ms saved by hits",
		         ms(p.stream_ns), ms(p.saved_ns));
		strbuf_puts(&b, ",\"warning\":");
		strbuf_json_string(&b, w, strlen(w));
	}
	strbuf_puts(&b, "}");
	emit_buf(mw, &b);
}

void mw_test_set_period(scache_middleware *mw, uint64_t requests, uint64_t hits, uint64_t misses,
                        uint64_t stream_ns, uint64_t saved_ns)
{
	pthread_mutex_lock(&mw->stats_mu);
	mw->period.requests = requests;
	mw->period.hits = hits;
	mw->period.misses = misses;
	mw->period.stream_ns = stream_ns;
	mw->period.saved_ns = saved_ns;
	pthread_mutex_unlock(&mw->stats_mu);
}
