/*
 * metrics.c: the middleware's counters as a struct (scache_middleware_stats_get) and as
 * Prometheus text (scache_middleware_metrics), read under the locks that guard them.
 */
#include "middleware_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	out->staleness_ns = mw_staleness_ns(mw, &out->bypassing);
}

/* The shortest of %.15g, %.16g and %.17g that reads back as v: 0.010470414, not
 * 0.010470414000000001 (17 digits always round-trip, but show the binary's noise).
 * Not static: tests/test_helpers.c declares it too. */
const char *metrics_number(char *buf, size_t len, double v);
const char *metrics_number(char *buf, size_t len, double v)
{
	for (int digits = 15; digits < 17; digits++) {
		snprintf(buf, len, "%.*g", digits, v);
		if (strtod(buf, NULL) == v)
			return buf;
	}
	snprintf(buf, len, "%.17g", v);
	return buf;
}

static void metric(strbuf *b, const char *name, const char *type, const char *help, double v)
{
	char num[32];
	strbuf_printf(b, "# HELP scache_%s %s\n# TYPE scache_%s %s\nscache_%s %s\n", name, help,
	              name, type, name, metrics_number(num, sizeof num, v));
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
	metric(&b, "polls_total", "counter", "Polls of the invalidation source.", (double)s.polls);
	metric(&b, "poll_errors_total", "counter", "Polls that failed.", (double)s.poll_errors);
	metric(&b, "throttled_polls_total", "counter",
	       "Polls the service throttled (the poll rate backed off).",
	       (double)s.throttled_polls);
	metric(&b, "source_calls_total", "counter",
	       "Calls polls made to the invalidation source's service.", (double)s.source_calls);
	metric(&b, "gaps_total", "counter", "Source gaps (each flushed the cache).",
	       (double)s.gaps);
	metric(&b, "stream_keys_total", "counter", "Invalidated IDs received from the source.",
	       (double)s.keys_applied);
	metric(&b, "refreshed_total", "counter",
	       "New values received from the source that replaced the entry (refreshes).",
	       (double)s.refreshed);
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
	scache_push_stats ps;
	if (scache_kinesis_push_stats(mw->src, &ps) == SCACHE_OK) { /* a push source */
		metric(&b, "push_events_total", "counter", "SubscribeToShardEvents received.",
		       (double)ps.events);
		metric(&b, "push_records_total", "counter", "Records received by push.",
		       (double)ps.records);
		metric(&b, "push_subscribes_total", "counter", "SubscribeToShard calls.",
		       (double)ps.subscribes);
		metric(&b, "push_renewals_total", "counter", "Subscriptions renewed at their end.",
		       (double)ps.renewals);
		metric(&b, "push_reconnects_total", "counter",
		       "Subscriptions made again after a drop or an error.", (double)ps.reconnects);
		metric(&b, "push_refused_total", "counter",
		       "Push calls refused (ResourceInUseException and others).", (double)ps.refused);
		metric(&b, "push_millis_behind", "gauge",
		       "The largest MillisBehindLatest of the shards' last events.",
		       (double)ps.millis_behind);
		metric(&b, "push_shards", "gauge", "Shards subscribed now.", (double)ps.shards);
		metric(&b, "push_polling", "gauge",
		       "1 when no consumer could be had and the source polls instead.",
		       (double)ps.polling);
		metric(&b, "push_sync_waits_total", "counter",
		       "Syncs that waited for an event (a strict read waits for the next one).",
		       (double)ps.sync_waits);
	}
	if (b.failed) {
		free(b.data);
		return SCACHE_ENOMEM;
	}
	*out = b.data;
	if (len)
		*len = b.len;
	return SCACHE_OK;
}
