/*
 * middleware.c: the middleware's lifecycle: configuration defaults, creation over an
 * invalidation source (config.source, or a Kinesis polling source made from
 * config.stream), shutdown of the poller, and the small helpers its files share.
 * The request lifecycle is in middleware_mhd.c, the poll and drain policy in poller.c,
 * the handler helpers in loads.c, log lines in efficiency.c and metrics in metrics.c.
 */
#include "middleware_internal.h"

#include "echoes.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DURATION_MS (UINT64_MAX / NS_PER_MS / 8)

void mw_set_err(char *errbuf, size_t errlen, const char *msg)
{
	if (errbuf && errlen > 0)
		snprintf(errbuf, errlen, "%s", msg);
}

/* Absolute CLOCK_MONOTONIC deadline for pthread_cond_timedwait (conds use it). */
struct timespec mw_timespec(uint64_t ns)
{
	struct timespec ts;
	ts.tv_sec = (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	return ts;
}

int mw_init_cond(pthread_cond_t *c)
{
	pthread_condattr_t a;
	if (pthread_condattr_init(&a))
		return -1;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	int r = pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return r;
}

/* ---- Lifecycle ------------------------------------------------------------------- */

static scache_err resolve_config(scache_middleware_config *c, char *errbuf, size_t errlen)
{
	if (!c->cache) {
		mw_set_err(errbuf, errlen, "middleware: config.cache is required");
		return SCACHE_ECONFIG;
	}
	if (!c->handler) {
		mw_set_err(errbuf, errlen, "middleware: config.handler is required");
		return SCACHE_ECONFIG;
	}
	if (c->max_polls_per_second == 0)
		c->max_polls_per_second = 5;
	if (c->max_staleness_ms == 0)
		c->max_staleness_ms = 10000;
	if (c->idle_poll_ms == 0)
		c->idle_poll_ms = 60000;
	if (c->sweep_budget == 0)
		c->sweep_budget = 32;
	if (c->summary_interval_s == 0)
		c->summary_interval_s = 60;
	if (c->startup_timeout_ms == 0)
		c->startup_timeout_ms = 3000;
	if (c->startup_timeout_ms > MAX_DURATION_MS)
		c->startup_timeout_ms = MAX_DURATION_MS;
	/* Durations are added to CLOCK_MONOTONIC nanoseconds: cap them (at ~73 years, i.e.
	 * "never") so that ms * NS_PER_MS and now + it cannot wrap into the past. */
	if (c->max_staleness_ms > MAX_DURATION_MS)
		c->max_staleness_ms = MAX_DURATION_MS;
	if (c->poll_interval_ms > MAX_DURATION_MS)
		c->poll_interval_ms = MAX_DURATION_MS;
	if (c->idle_poll_ms > MAX_DURATION_MS)
		c->idle_poll_ms = MAX_DURATION_MS;
	if (c->load_wait_ms == 0)
		c->load_wait_ms = 1000;
	if (c->load_wait_ms > MAX_DURATION_MS)
		c->load_wait_ms = MAX_DURATION_MS;
	/* A poll older than the staleness bound is never good enough, whatever the interval */
	int capped = c->poll_interval_ms > c->max_staleness_ms;
	if (capped)
		c->poll_interval_ms = c->max_staleness_ms;
	/* An interval shorter than the budget's period cannot be kept: polls start at most
	 * every 1000 / max_polls_per_second ms, so requests would wait for them (half of
	 * them, up to the period). Refused rather than clamped: raising the interval would
	 * weaken the staleness asked for, raising the budget would spend more of the
	 * shard's 5 reads a second. */
	if (c->poll_interval_ms > 0 && c->poll_interval_ms * c->max_polls_per_second < 1000) {
		char msg[400];
		snprintf(
		    msg, sizeof msg,
		    "middleware: poll_interval_ms %llu%s is shorter than the poll budget allows "
		    "(max_polls_per_second %u: one poll every %llu ms), so requests would wait "
		    "for polls: set poll_interval_ms to at least %llu or max_polls_per_second "
		    "to at least %llu",
		    (unsigned long long)c->poll_interval_ms,
		    capped ? " (capped by max_staleness_ms)" : "", c->max_polls_per_second,
		    (unsigned long long)((1000 + c->max_polls_per_second - 1) /
		                         c->max_polls_per_second),
		    (unsigned long long)((1000 + c->max_polls_per_second - 1) /
		                         c->max_polls_per_second),
		    (unsigned long long)((1000 + c->poll_interval_ms - 1) / c->poll_interval_ms));
		mw_set_err(errbuf, errlen, msg);
		return SCACHE_ECONFIG;
	}
	return SCACHE_OK;
}

/* The middleware over src, which it owns from here on (freed on failure too). */
static scache_err middleware_create(const scache_middleware_config *config, scache_source *src,
                                    scache_middleware **out, char *errbuf, size_t errlen)
{
	scache_middleware *mw = calloc(1, sizeof *mw);
	if (!mw) {
		scache_source_free(src);
		return SCACHE_ENOMEM;
	}
	mw->cfg = *config;
	mw->cfg.stream = NULL;
	mw->cfg.source = NULL;
	scache_err err = resolve_config(&mw->cfg, errbuf, errlen);
	if (!err)
		err = log_sink_open(mw, errbuf, errlen);
	if (err) {
		free(mw);
		scache_source_free(src);
		return err;
	}
	mw->src = src;
	mw_sink_init(mw);
	mw->min_interval_ns = 1000000000ull / mw->cfg.max_polls_per_second;
	uint64_t now = scache_now_ns(NULL);
	/* The source was positioned when it was created: that counts as caught up. Without
	 * one, staleness counts from now too (what /healthz and summaries show). */
	mw->last_ok_ns = now;
	mw->last_done_ns = now;
	const char *unavailable = source_unavailable(src);
	if (unavailable) {
		/* Bypassed from the start: nothing is cached until the source is positioned,
		 * so the cache is empty then and a source positioned at that moment misses
		 * nothing that matters. The first retry comes after the failure back-off. */
		mw->bypassing = 1;
		mw->want = 1;
		mw->last_start_ns = now;
		mw->backoff_ns = mw->min_interval_ns;
		snprintf(mw->unavailable, sizeof mw->unavailable, "%s", unavailable);
	}
	mw->period_start_ns = now;
	mw->next_summary_ns = now + (uint64_t)mw->cfg.summary_interval_s * 1000000000ull;
	pthread_mutex_init(&mw->mu, NULL);
	pthread_mutex_init(&mw->reg_mu, NULL);
	pthread_mutex_init(&mw->flight_mu, NULL);
	pthread_mutex_init(&mw->stats_mu, NULL);
	pthread_mutex_init(&mw->log_mu, NULL);
	if (unavailable) {
		char msg[640];
		snprintf(msg, sizeof msg,
		         "the stream cannot be read yet (%s): bypassing the cache and retrying "
		         "until it can",
		         unavailable);
		efficiency_warning(mw, msg);
	}
	if (mw_init_cond(&mw->wake) || mw_init_cond(&mw->poll_done) ||
	    pthread_create(&mw->poller, NULL, mw_poller_main, mw)) {
		mw_set_err(errbuf, errlen, "middleware: cannot start the poller thread");
		scache_middleware_free(mw);
		return SCACHE_ENOMEM;
	}
	mw->poller_started = 1;
	*out = mw;
	return SCACHE_OK;
}

scache_err scache_middleware_new(const scache_middleware_config *config, scache_middleware **out,
                                 char *errbuf, size_t errlen)
{
	if (!config || !out) {
		if (config)
			scache_source_free(config->source);
		mw_set_err(errbuf, errlen, "middleware: NULL argument");
		return SCACHE_EINVAL;
	}
	*out = NULL;
	scache_source *src = config->source;
	if (!config->cache || !config->handler) {
		scache_source_free(src);
		mw_set_err(errbuf, errlen,
		           "middleware: config.cache and config.handler are required");
		return SCACHE_ECONFIG;
	}
	if (!src) {
		/* the shorthand: a Kinesis polling source from config.stream */
		if (!config->stream || !config->stream->stream_name ||
		    !config->stream->stream_name[0]) {
			mw_set_err(
			    errbuf, errlen,
			    "middleware: config.source, or config.stream with a stream_name, "
			    "is required");
			return SCACHE_ECONFIG;
		}
		/* a stream recreated under the same name is noticed within half the staleness
		 * bound (the reader checks at most once a second) */
		scache_stream_config sc = *config->stream;
		if (!sc.stream_check_interval_ms) {
			uint64_t bound_ms = config->max_staleness_ms ? config->max_staleness_ms
			                                             : 10000; /* its default */
			sc.stream_check_interval_ms =
			    bound_ms / 2 > UINT_MAX ? UINT_MAX : (unsigned)(bound_ms / 2);
		}
		/* strict: a read must see what was published before it arrived, also into the
		 * children of a shard split a moment ago, which the reader learns of only from
		 * a listing (the parent's end shows one read later): list shards on every poll.
		 * One ListShards per poll, within AWS's 1000 a second per stream. */
		if (!config->poll_interval_ms && !sc.list_shards_interval_ms)
			sc.list_shards_interval_ms = 1;
		/* within the startup bound: a stream slower than that is reached in the
		 * background (the middleware starts bypassed), and one that does not exist
		 * fails here when the service says so in time and require_stream is set */
		uint64_t startup_ms = config->startup_timeout_ms ? config->startup_timeout_ms
		                                                 : 3000; /* its default */
		scache_err err =
		    kinesis_source_create(&sc, config->start_at, startup_ms, config->require_stream,
		                          &src, errbuf, errlen);
		if (err)
			return err;
	}
	return middleware_create(config, src, out, errbuf, errlen);
}

void scache_middleware_free(scache_middleware *mw)
{
	if (!mw)
		return;
	if (mw->poller_started) {
		pthread_mutex_lock(&mw->mu);
		mw->stop = 1;
		pthread_cond_broadcast(&mw->wake);
		pthread_cond_broadcast(&mw->poll_done);
		pthread_mutex_unlock(&mw->mu);
		pthread_join(mw->poller, NULL);
		efficiency_summary(mw, 0);
	}
	scache_source_free(mw->src);
	echoes_free(mw->echoes);
	mw_requests_free_all(mw); /* none, unless the daemon lacked the completion callback */
	pthread_cond_destroy(&mw->wake);
	pthread_cond_destroy(&mw->poll_done);
	pthread_mutex_destroy(&mw->mu);
	pthread_mutex_destroy(&mw->reg_mu);
	pthread_mutex_destroy(&mw->flight_mu);
	pthread_mutex_destroy(&mw->stats_mu);
	pthread_mutex_destroy(&mw->log_mu);
	log_sink_close(mw);
	free(mw);
}
