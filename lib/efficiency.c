/*
 * Efficiency: does the cache pay for itself? Each request costs the time it waited for
 * the stream (stream_ms) and earns the load time its hits avoided (saved_ms). This file
 * writes one JSON line per request, a summary line per period with a verdict, warning
 * lines, and the Prometheus metrics.
 *
 * Every string that comes from outside (method, path, error messages) goes through
 * strbuf_json_string: quotes, backslashes and control characters are escaped and
 * invalid UTF-8 becomes U+FFFD, so a crafted URL cannot forge a field or break a line.
 * Lines are built in memory and handed to the sink in one call under a mutex, so lines
 * of concurrent requests never interleave.
 */
#include "middleware_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- A growable string ------------------------------------------------------------ */

static void strbuf_reserve(strbuf *b, size_t more)
{
	if (b->failed)
		return;
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *d = realloc(b->data, cap);
	if (!d) {
		b->failed = 1;
		return;
	}
	b->data = d;
	b->cap = cap;
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
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	strbuf_reserve(b, (size_t)n);
	if (b->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
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
static void append_time(strbuf *b, uint64_t wall_ns)
{
	time_t secs = (time_t)(wall_ns / 1000000000ull);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char t[32];
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
	strbuf_printf(b, "\"%s.%03uZ\"", t, (unsigned)(wall_ns / 1000000ull % 1000));
}

static uint64_t wall_ns_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* ---- Sink ------------------------------------------------------------------------ */

void efficiency_emit(scache_middleware *mw, const char *line, size_t len)
{
	pthread_mutex_lock(&mw->log_mu);
	if (mw->cfg.log) {
		mw->cfg.log(mw->cfg.log_arg, line, len);
	} else {
		fwrite(line, 1, len, stderr);
		fputc('\n', stderr);
		fflush(stderr);
	}
	pthread_mutex_unlock(&mw->log_mu);
}

static void emit_buf(scache_middleware *mw, strbuf *b)
{
	if (!b->failed && b->data)
		efficiency_emit(mw, b->data, b->len);
	free(b->data);
}

/* ---- Lines ----------------------------------------------------------------------- */

void efficiency_request_done(scache_middleware *mw, const scache_request *req)
{
	uint64_t request_ns = scache_now_ns(NULL) - req->arrival_ns;
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
	if (mw->cfg.quiet_requests)
		return;

	strbuf b = {0};
	strbuf_puts(&b, "{\"type\":\"request\",\"time\":");
	append_time(&b, req->wall_ns);
	strbuf_puts(&b, ",\"method\":");
	strbuf_json_string(&b, req->method, strlen(req->method));
	strbuf_puts(&b, ",\"path\":");
	strbuf_json_string(&b, req->path, strlen(req->path));
	strbuf_printf(&b,
	              ",\"status\":%u,\"request_ms\":%.3f,\"stream_ms\":%.3f,\"saved_ms\":%.3f,"
	              "\"hits\":%llu,\"misses\":%llu,\"evicted\":%llu,\"bypass\":%s}",
	              req->status, ms(request_ns), ms(req->stream_ns), ms(req->saved_ns),
	              (unsigned long long)req->hits, (unsigned long long)req->misses,
	              (unsigned long long)req->evicted, req->bypass ? "true" : "false");
	emit_buf(mw, &b);
}

void efficiency_poll_done(scache_middleware *mw, const scache_poll_info *info, scache_err err)
{
	pthread_mutex_lock(&mw->stats_mu);
	mw->totals.polls++;
	mw->period.polls++;
	mw->totals.kinesis_calls += info->calls;
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
	append_time(&b, wall_ns_now());
	strbuf_puts(&b, ",\"msg\":");
	strbuf_json_string(&b, msg, strlen(msg));
	strbuf_puts(&b, "}");
	emit_buf(mw, &b);
}

static uint64_t staleness_now(scache_middleware *mw, int *bypassing)
{
	pthread_mutex_lock(&mw->mu);
	uint64_t now = scache_now_ns(NULL);
	uint64_t s = now > mw->last_ok_ns ? now - mw->last_ok_ns : 0;
	if (bypassing)
		*bypassing = mw->bypassing;
	pthread_mutex_unlock(&mw->mu);
	return s;
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
	uint64_t staleness = staleness_now(mw, &bypassing);
	uint64_t lookups = p.hits + p.misses;

	strbuf b = {0};
	strbuf_puts(&b, "{\"type\":\"summary\",\"time\":");
	append_time(&b, wall_ns_now());
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
	              "\"polls\":%llu,\"kinesis_calls\":%llu,\"kinesis_errors\":%llu,"
	              "\"staleness_ms\":%.3f,\"bypassing\":%s,\"entries\":%llu",
	              (unsigned long long)p.polls, (unsigned long long)p.calls,
	              (unsigned long long)p.poll_errors, ms(staleness),
	              bypassing ? "true" : "false", (unsigned long long)cs.entries);
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

/* ---- Stats and metrics ---------------------------------------------------------- */

void scache_middleware_stats_get(scache_middleware *mw, scache_middleware_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof *out);
	if (!mw)
		return;
	pthread_mutex_lock(&mw->stats_mu);
	*out = mw->totals;
	pthread_mutex_unlock(&mw->stats_mu);
	scache_cache_stats_get(mw->cfg.cache, &out->cache);
	out->staleness_ns = staleness_now(mw, &out->bypassing);
}

static void metric(strbuf *b, const char *name, const char *type, const char *help, double v)
{
	strbuf_printf(b, "# HELP scache_%s %s\n# TYPE scache_%s %s\nscache_%s %.17g\n", name, help,
	              name, type, name, v);
}

scache_err scache_middleware_metrics(scache_middleware *mw, char **out, size_t *len)
{
	if (!mw || !out)
		return SCACHE_EINVAL;
	scache_middleware_stats s;
	scache_middleware_stats_get(mw, &s);
	strbuf b = {0};
	const scache_cache_stats *c = &s.cache;
	metric(&b, "hits_total", "counter", "Cache hits.", (double)c->hits);
	metric(&b, "misses_total", "counter", "Cache misses.", (double)c->misses);
	metric(&b, "entries", "gauge", "Entries in the cache.", (double)c->entries);
	metric(&b, "bytes", "gauge", "Bytes in the cache (keys, values, overhead).",
	       (double)c->bytes);
	metric(&b, "adds_total", "counter", "Adds accepted.", (double)c->adds);
	metric(&b, "refused_adds_total", "counter",
	       "Adds refused as stale (the ID was invalidated after the load began).",
	       (double)c->refused_adds);
	metric(&b, "evictions_total", "counter", "Entries evicted to keep the memory bound.",
	       (double)c->evictions);
	metric(&b, "expirations_total", "counter", "Entries removed because they expired.",
	       (double)c->expirations);
	metric(&b, "invalidations_total", "counter", "IDs invalidated (cached or not).",
	       (double)c->invalidations);
	metric(&b, "flushes_total", "counter", "Cache flushes (after stream gaps).",
	       (double)c->flushes);
	metric(&b, "requests_total", "counter", "Requests served through the middleware.",
	       (double)s.requests);
	metric(&b, "bypass_requests_total", "counter",
	       "Requests served with the cache bypassed (stream too stale).",
	       (double)s.bypass_requests);
	metric(&b, "polls_total", "counter", "Polls of the invalidation stream.", (double)s.polls);
	metric(&b, "poll_errors_total", "counter", "Polls that failed.", (double)s.poll_errors);
	metric(&b, "throttled_polls_total", "counter",
	       "Polls the service throttled (the poll rate backed off).",
	       (double)s.throttled_polls);
	metric(&b, "kinesis_calls_total", "counter", "HTTP calls made by polls.",
	       (double)s.kinesis_calls);
	metric(&b, "gaps_total", "counter", "Stream gaps (each flushed the cache).",
	       (double)s.gaps);
	metric(&b, "stream_keys_total", "counter", "Invalidated IDs received from the stream.",
	       (double)s.keys_applied);
	metric(&b, "published_keys_total", "counter", "IDs published as invalidations.",
	       (double)s.published_keys);
	metric(&b, "publish_errors_total", "counter", "Invalidations whose publish failed.",
	       (double)s.publish_errors);
	metric(&b, "saved_seconds_total", "counter", "Load time saved by hits of requests.",
	       (double)s.saved_ns / 1e9);
	metric(&b, "stream_seconds_total", "counter", "Time requests spent waiting for the stream.",
	       (double)s.stream_ns / 1e9);
	metric(&b, "staleness_seconds", "gauge",
	       "Time since the start of the newest successful poll.", (double)s.staleness_ns / 1e9);
	metric(&b, "bypassing", "gauge", "1 while the cache is bypassed.", (double)s.bypassing);
	if (b.failed) {
		free(b.data);
		return SCACHE_ENOMEM;
	}
	*out = b.data;
	if (len)
		*len = b.len;
	return SCACHE_OK;
}
