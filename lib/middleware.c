/*
 * The libmicrohttpd middleware: per-request drain of the invalidation stream, the
 * request context, and the handler helpers.
 *
 * Design. One poller thread per middleware does every poll; requests never poll
 * themselves, they only wait (with a deadline) for a poll that began late enough. That
 * gives single-flight for free (all waiters share the next poll), puts the poll budget
 * (max_polls_per_second, with backoff after failures) in one place, and lets a request
 * stop waiting when the staleness bound says so, even while a poll is stuck in retries.
 * The cost is a thread handoff per poll (tens of microseconds), small next to an HTTP
 * call to Kinesis.
 *
 * The wrapped handler's own req_cls lives in our per-request state; MHD's req_cls slot
 * holds that state. The application's completion callback is chained with a pointer to
 * its own req_cls, so it sees exactly what it would without the middleware.
 *
 * Loads: scache_add uses a token taken when the handler started (after the drain), so
 * data read in the handler is protected by the cache's stale-add guard.
 * scache_get_or_load takes its own token just before its loader runs and lets one
 * loader run per key; waiters share its result only when it cannot be stale for them.
 */
#include "middleware_internal.h"

#include "scache/id.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_MS       1000000ull
#define BACKOFF_MAX_NS  (5000ull * NS_PER_MS)
#define MAX_DURATION_MS (UINT64_MAX / NS_PER_MS / 8)

static _Thread_local scache_request *current_request;

typedef struct flight {
	char *key;
	UT_hash_handle hh;
	pthread_cond_t cv;
	int done;
	unsigned refs;
	uint64_t token; /* taken before the load */
	int added;      /* the result went into the cache */
	scache_err err;
	void *val; /* copy for waiters */
	size_t len;
} flight;

static void set_err(char *errbuf, size_t errlen, const char *msg)
{
	if (errbuf && errlen > 0)
		snprintf(errbuf, errlen, "%s", msg);
}

static uint64_t wall_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Absolute CLOCK_MONOTONIC deadline for pthread_cond_timedwait (conds use it). */
static struct timespec to_timespec(uint64_t ns)
{
	struct timespec ts;
	ts.tv_sec = (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	return ts;
}

static int init_cond(pthread_cond_t *c)
{
	pthread_condattr_t a;
	if (pthread_condattr_init(&a))
		return -1;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	int r = pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return r;
}

/* ---- The poller ------------------------------------------------------------------ */

static uint64_t resume_waiters(scache_middleware *mw, uint64_t now);

/* When the next poll may start: the budget interval plus backoff after the last start. */
static uint64_t poll_allowed_at(const scache_middleware *mw)
{
	if (mw->last_start_ns == 0)
		return 0;
	return mw->last_start_ns + mw->min_interval_ns + mw->backoff_ns;
}

/* When the next poll is due, wanted or not (periodic polls). */
static uint64_t poll_due_at(const scache_middleware *mw)
{
	uint64_t allowed = poll_allowed_at(mw);
	if (mw->want)
		return allowed;
	uint64_t period = mw->cfg.idle_poll_ms * NS_PER_MS;
	if (mw->cfg.poll_interval_ms > 0 && mw->cfg.poll_interval_ms * NS_PER_MS < period)
		period = mw->cfg.poll_interval_ms * NS_PER_MS;
	/* after failures keep retrying at the backoff pace, so recovery is noticed */
	if (mw->last_done_ns != mw->last_ok_ns && mw->min_interval_ns + mw->backoff_ns < period)
		period = mw->min_interval_ns + mw->backoff_ns;
	uint64_t due = mw->last_start_ns + period;
	return due > allowed ? due : allowed;
}

/* Run one poll; mu is held on entry and on return. */
static void poll_once(scache_middleware *mw)
{
	uint64_t start = scache_now_ns(NULL);
	mw->polling = 1;
	mw->want = 0;
	mw->last_start_ns = start;
	atomic_store(&mw->poll_removed, 0);
	atomic_store(&mw->poll_throttled, 0);
	pthread_mutex_unlock(&mw->mu);

	scache_poll_info info;
	memset(&info, 0, sizeof info);
	scache_err err = mw->ops.drain(mw->ops.arg, mw, start, &info);
	efficiency_poll_done(mw, &info, err);

	/* Leaving an outage flushes the cache (below): O(entries), so not under mu, which
	 * every request's drain takes. Requests keep bypassing until it is done. */
	pthread_mutex_lock(&mw->mu);
	int flushed = err == SCACHE_OK && mw->bypassing;
	pthread_mutex_unlock(&mw->mu);
	if (flushed)
		scache_cache_flush(mw->cfg.cache, NULL);

	pthread_mutex_lock(&mw->mu);
	mw->polling = 0;
	mw->last_done_ns = start;
	mw->last_removed = atomic_load(&mw->poll_removed);
	int recovered = 0, stale = 0;
	uint64_t now = scache_now_ns(NULL);
	int throttled = atomic_load(&mw->poll_throttled);
	if (err == SCACHE_OK) {
		mw->last_ok_ns = start;
		/* a throttled poll that succeeded on retry still slows the next ones down */
		if (!throttled)
			mw->backoff_ns = 0;
		else if (mw->backoff_ns < BACKOFF_MAX_NS)
			mw->backoff_ns = mw->backoff_ns ? 2 * mw->backoff_ns : mw->min_interval_ns;
		if (mw->bypassing && flushed) {
			/* The stream may have been down for writers too: an invalidation whose
			 * publish failed during the outage never reaches the stream, so entries
			 * cached before it cannot be trusted. Flushed above, before the cache is
			 * used again (nothing was added while bypassed). An outage that began
			 * during this poll waits for the next one's flush. */
			mw->bypassing = 0;
			recovered = 1;
		}
	} else {
		mw->backoff_ns = mw->backoff_ns ? mw->backoff_ns * 2 : mw->min_interval_ns;
		if (mw->backoff_ns > BACKOFF_MAX_NS)
			mw->backoff_ns = BACKOFF_MAX_NS;
		if (!mw->bypassing && now - mw->last_ok_ns > mw->cfg.max_staleness_ms * NS_PER_MS) {
			mw->bypassing = 1;
			stale = 1;
		}
	}
	pthread_cond_broadcast(&mw->poll_done);
	resume_waiters(mw, now);
	pthread_mutex_unlock(&mw->mu);

	if (stale) {
		char msg[512];
		snprintf(msg, sizeof msg,
		         "no successful poll of the stream for over %llu ms: bypassing the cache "
		         "until polls succeed again (last error: %s%s%s)",
		         (unsigned long long)mw->cfg.max_staleness_ms, scache_strerror(err),
		         info.message[0] ? ": " : "", info.message);
		efficiency_warning(mw, msg);
	}
	if (recovered)
		efficiency_warning(mw,
		                   "the stream is read again: the cache was flushed and is back "
		                   "in use");
	pthread_mutex_lock(&mw->mu);
}

static void *poller_main(void *arg)
{
	scache_middleware *mw = arg;
	pthread_mutex_lock(&mw->mu);
	while (!mw->stop) {
		uint64_t now = scache_now_ns(NULL);
		if (now >= mw->next_summary_ns) {
			mw->next_summary_ns =
			    now + (uint64_t)mw->cfg.summary_interval_s * 1000000000ull;
			pthread_mutex_unlock(&mw->mu);
			efficiency_summary(mw, 0);
			pthread_mutex_lock(&mw->mu);
			continue;
		}
		uint64_t deadline = resume_waiters(mw, now);
		uint64_t due = poll_due_at(mw);
		if (now >= due) {
			poll_once(mw);
			continue;
		}
		uint64_t until = due < mw->next_summary_ns ? due : mw->next_summary_ns;
		if (deadline < until)
			until = deadline;
		struct timespec ts = to_timespec(until);
		pthread_cond_timedwait(&mw->wake, &mw->mu, &ts);
	}
	pthread_mutex_unlock(&mw->mu);
	return NULL;
}

/* Ask for a poll newer than the last one started; mu held. */
static void want_poll(scache_middleware *mw)
{
	if (!mw->want) {
		mw->want = 1;
		pthread_cond_signal(&mw->wake);
	}
}

enum drain_result { DRAIN_FRESH, DRAIN_FAILED, DRAIN_TIMEOUT, DRAIN_STOPPED };

/* Wait until a poll that began at or after since_ns completed, or the deadline. Sets
 * *removed to the entries that poll removed. */
static enum drain_result wait_for_poll(scache_middleware *mw, uint64_t since_ns,
                                       uint64_t deadline_ns, uint64_t *removed)
{
	enum drain_result r;
	pthread_mutex_lock(&mw->mu);
	for (;;) {
		if (mw->last_ok_ns >= since_ns) {
			r = DRAIN_FRESH;
			break;
		}
		if (mw->last_done_ns >= since_ns) {
			r = DRAIN_FAILED;
			break;
		}
		if (mw->stop) {
			r = DRAIN_STOPPED;
			break;
		}
		if (!(mw->polling && mw->last_start_ns >= since_ns))
			want_poll(mw);
		if (scache_now_ns(NULL) >= deadline_ns) {
			r = DRAIN_TIMEOUT;
			break;
		}
		struct timespec ts = to_timespec(deadline_ns);
		pthread_cond_timedwait(&mw->poll_done, &mw->mu, &ts);
	}
	*removed = r == DRAIN_FRESH || r == DRAIN_FAILED ? mw->last_removed : 0;
	pthread_mutex_unlock(&mw->mu);
	return r;
}

/* First half of the drain, before the handler runs: expire what is due, then decide.
 * Returns 1 if the request must wait for a poll that began at or after req->since_ns
 * (until req->deadline_ns), 0 if it may go on now (fresh enough, nothing cached, or
 * bypassed during an outage). */
static int drain_begin(scache_middleware *mw, scache_request *req)
{
	scache_cache *cache = mw->cfg.cache;
	req->evicted += scache_cache_sweep(cache, mw->cfg.sweep_budget);

	uint64_t arrival = req->arrival_ns;
	uint64_t since = arrival;
	if (mw->cfg.poll_interval_ms > 0) {
		uint64_t iv = mw->cfg.poll_interval_ms * NS_PER_MS;
		since = arrival > iv ? arrival - iv : 1;
	}
	req->since_ns = since;
	req->deadline_ns = arrival + mw->cfg.max_staleness_ms * NS_PER_MS;

	pthread_mutex_lock(&mw->mu);
	int bypassing = mw->bypassing;
	int fresh = mw->last_ok_ns >= since;
	if (bypassing)
		want_poll(mw); /* keep trying, so recovery is noticed */
	pthread_mutex_unlock(&mw->mu);
	if (bypassing) {
		req->bypass = 1; /* do not wait during an outage: serve from the database */
		return 0;
	}
	if (fresh)
		return 0;

	/* Look at the cache before asking for a poll, so the poll this request will wait
	 * for cannot empty the cache first (its removals belong to this request's line). */
	scache_cache_stats st;
	scache_cache_stats_get(cache, &st);
	if (st.entries == 0) {
		/* nothing to evict: go on, but keep the stream positions moving. Another request
		 * may add old data before that poll applies its invalidation: until the poll
		 * has succeeded this request's gets miss (see request_synced). */
		req->unsynced = 1;
		pthread_mutex_lock(&mw->mu);
		want_poll(mw);
		pthread_mutex_unlock(&mw->mu);
		return 0;
	}
	return 1; /* the wait (wait_for_poll or park) asks for the poll */
}

/* Second half, after the wait: what the poll (or its absence) means for the request. */
static void drain_finish(scache_middleware *mw, scache_request *req, enum drain_result r,
                         uint64_t removed)
{
	req->evicted += removed;
	uint64_t now = scache_now_ns(NULL);
	req->stream_ns = now - req->arrival_ns;
	if (r == DRAIN_FRESH)
		return;
	/* Strict: this request may read the cache only when a poll that began after it
	 * arrived succeeded. Its poll failed or did not finish in time, so it reads around
	 * the cache (gets miss, adds are refused); the next request tries again. */
	if (mw->cfg.poll_interval_ms == 0)
		req->bypass = 1;
	pthread_mutex_lock(&mw->mu);
	int newly = 0;
	if (now - mw->last_ok_ns > mw->cfg.max_staleness_ms * NS_PER_MS) {
		req->bypass = 1;
		if (!mw->bypassing) {
			mw->bypassing = 1;
			newly = 1;
		}
	}
	pthread_mutex_unlock(&mw->mu);
	if (newly)
		efficiency_warning(mw, "a request waited the whole staleness bound for a poll of "
		                       "the stream: bypassing the cache until polls succeed again");
}

/* The outcome for a resumed request, from the poll state; mu held. */
static enum drain_result drain_outcome(const scache_middleware *mw, const scache_request *req,
                                       uint64_t *removed)
{
	enum drain_result r = mw->last_ok_ns >= req->since_ns     ? DRAIN_FRESH
	                      : mw->last_done_ns >= req->since_ns ? DRAIN_FAILED
	                                                          : DRAIN_TIMEOUT;
	*removed = r == DRAIN_TIMEOUT ? 0 : mw->last_removed;
	return r;
}

/* Suspended requests: resume those whose poll completed or whose deadline passed. mu
 * held. Returns the earliest deadline among those still waiting (UINT64_MAX if none). */
static uint64_t resume_waiters(scache_middleware *mw, uint64_t now)
{
	uint64_t earliest = UINT64_MAX;
	scache_request **link = &mw->waiters;
	while (*link) {
		scache_request *req = *link;
		if (mw->last_done_ns >= req->since_ns || now >= req->deadline_ns || mw->no_park) {
			*link = req->next_waiter;
			req->next_waiter = NULL;
			req->waiting = WAIT_RESUMED;
			/* the outcome now, before a later poll changes last_removed */
			req->resume_result = (int)drain_outcome(mw, req, &req->resume_removed);
			MHD_resume_connection(req->connection);
		} else {
			if (req->deadline_ns < earliest)
				earliest = req->deadline_ns;
			link = &req->next_waiter;
		}
	}
	return earliest;
}

/* ---- Lifecycle ------------------------------------------------------------------- */

static scache_err resolve_config(scache_middleware_config *c, char *errbuf, size_t errlen)
{
	if (!c->cache) {
		set_err(errbuf, errlen, "middleware: config.cache is required");
		return SCACHE_ECONFIG;
	}
	if (!c->handler) {
		set_err(errbuf, errlen, "middleware: config.handler is required");
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
	if (c->poll_interval_ms > c->max_staleness_ms)
		c->poll_interval_ms = c->max_staleness_ms;
	return SCACHE_OK;
}

scache_err scache_middleware_new_with_ops(const scache_middleware_config *config,
                                          const scache_stream_ops *ops, scache_middleware **out,
                                          char *errbuf, size_t errlen)
{
	scache_err err = SCACHE_EINVAL;
	if (!out || !config || !ops || !ops->drain || !ops->publish) {
		set_err(errbuf, errlen, "middleware: NULL argument");
		goto fail_ops;
	}
	*out = NULL;
	scache_middleware *mw = calloc(1, sizeof *mw);
	if (!mw) {
		err = SCACHE_ENOMEM;
		goto fail_ops;
	}
	mw->cfg = *config;
	mw->cfg.stream = NULL;
	err = resolve_config(&mw->cfg, errbuf, errlen);
	if (err) {
		free(mw);
		goto fail_ops;
	}
	mw->ops = *ops;
	mw->min_interval_ns = 1000000000ull / mw->cfg.max_polls_per_second;
	uint64_t now = scache_now_ns(NULL);
	/* The reader was positioned when it was created: that counts as caught up. Without
	 * a stream, staleness counts from now too (what /healthz and summaries show). */
	mw->last_ok_ns = now;
	mw->last_done_ns = now;
	if (ops->unavailable) {
		/* Bypassed from the start: nothing is cached until the poller has connected,
		 * so the cache is empty then and a reader positioned at that moment misses
		 * nothing that matters. The first retry comes after the failure back-off. */
		mw->bypassing = 1;
		mw->want = 1;
		mw->last_start_ns = now;
		mw->backoff_ns = mw->min_interval_ns;
	}
	mw->period_start_ns = now;
	mw->next_summary_ns = now + (uint64_t)mw->cfg.summary_interval_s * 1000000000ull;
	pthread_mutex_init(&mw->mu, NULL);
	pthread_mutex_init(&mw->reg_mu, NULL);
	pthread_mutex_init(&mw->flight_mu, NULL);
	pthread_mutex_init(&mw->stats_mu, NULL);
	pthread_mutex_init(&mw->log_mu, NULL);
	if (ops->unavailable) {
		char msg[640];
		snprintf(msg, sizeof msg,
		         "the stream cannot be read yet (%s): bypassing the cache and retrying "
		         "until it can",
		         ops->unavailable);
		efficiency_warning(mw, msg);
	}
	if (init_cond(&mw->wake) || init_cond(&mw->poll_done) ||
	    pthread_create(&mw->poller, NULL, poller_main, mw)) {
		set_err(errbuf, errlen, "middleware: cannot start the poller thread");
		scache_middleware_free(mw);
		return SCACHE_ENOMEM;
	}
	mw->poller_started = 1;
	*out = mw;
	return SCACHE_OK;

fail_ops:
	if (ops && ops->destroy)
		ops->destroy(ops->arg);
	return err;
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
	if (mw->ops.destroy)
		mw->ops.destroy(mw->ops.arg);
	request_entry *e, *tmp;
	HASH_ITER(hh, mw->registry, e, tmp)
	{
		HASH_DEL(mw->registry, e);
	}
	pthread_cond_destroy(&mw->wake);
	pthread_cond_destroy(&mw->poll_done);
	pthread_mutex_destroy(&mw->mu);
	pthread_mutex_destroy(&mw->reg_mu);
	pthread_mutex_destroy(&mw->flight_mu);
	pthread_mutex_destroy(&mw->stats_mu);
	pthread_mutex_destroy(&mw->log_mu);
	free(mw);
}

/* ---- Stream callbacks ------------------------------------------------------------ */

/* The cache key of a data-ID string from the stream: its canonical encoding (pairs
 * sorted, escaped as Go does), since another writer may order the pairs or escape bytes
 * differently (%20, lower-case hex) and still name the same ID. NULL when the string
 * does not parse (it is then used as it is) or out of memory (*oom set). */
static char *canonical_key(const char *key, size_t len, size_t *out_len, int *oom)
{
	scache_id id;
	char *canon = NULL;
	scache_err err = scache_id_parse(key, len, &id);
	if (err == SCACHE_OK)
		err = scache_id_encode_alloc(id.source, id.source_len, id.id, id.id_len, &canon,
		                             out_len);
	scache_id_clear(&id);
	if (err == SCACHE_ENOMEM)
		*oom = 1;
	return err == SCACHE_OK ? canon : NULL;
}

void scache_middleware_apply_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	scache_middleware *mw = arg;
	size_t removed = 0;
	const char **use = calloc(n ? n : 1, sizeof *use);
	size_t *use_lens = calloc(n ? n : 1, sizeof *use_lens);
	char **owned = calloc(n ? n : 1, sizeof *owned);
	int oom = !use || !use_lens || !owned;
	for (size_t i = 0; i < n && !oom; i++) {
		owned[i] = canonical_key(keys[i], lens[i], &use_lens[i], &oom);
		use[i] = owned[i] ? owned[i] : keys[i];
		if (!owned[i])
			use_lens[i] = lens[i];
	}
	if (oom) {
		/* the keys cannot all be matched: forget everything rather than lose one */
		scache_cache_flush(mw->cfg.cache, &removed);
		atomic_fetch_add(&mw->poll_removed, removed);
	} else if (scache_cache_invalidate_many(mw->cfg.cache, (const void *const *)use, use_lens,
	                                        n, &removed) == SCACHE_OK) {
		atomic_fetch_add(&mw->poll_removed, removed);
	}
	for (size_t i = 0; owned && i < n; i++)
		free(owned[i]);
	free(owned);
	free(use);
	free(use_lens);
	pthread_mutex_lock(&mw->stats_mu);
	mw->totals.keys_applied += n;
	pthread_mutex_unlock(&mw->stats_mu);
}

void scache_middleware_note_throttled(scache_middleware *mw)
{
	atomic_store(&mw->poll_throttled, 1);
	pthread_mutex_lock(&mw->stats_mu);
	mw->totals.throttled_polls++;
	pthread_mutex_unlock(&mw->stats_mu);
}

void scache_middleware_apply_gap(void *arg, const char *why)
{
	scache_middleware *mw = arg;
	size_t removed = 0;
	scache_cache_flush(mw->cfg.cache, &removed);
	atomic_fetch_add(&mw->poll_removed, removed);
	pthread_mutex_lock(&mw->stats_mu);
	mw->totals.gaps++;
	pthread_mutex_unlock(&mw->stats_mu);
	char msg[512];
	snprintf(msg, sizeof msg, "invalidations may have been missed (%s): cache flushed",
	         why ? why : "no reason given");
	efficiency_warning(mw, msg);
}

/* ---- MHD glue -------------------------------------------------------------------- */

static void request_free(scache_request *req)
{
	if (!req)
		return;
	free(req->method);
	free(req->path);
	free(req);
}

static scache_request *request_begin(scache_middleware *mw, struct MHD_Connection *connection,
                                     const char *url, const char *method)
{
	scache_request *req = calloc(1, sizeof *req);
	if (!req)
		return NULL;
	req->mw = mw;
	req->connection = connection;
	req->method = strdup(method ? method : "");
	req->path = strdup(url ? url : "");
	if (!req->method || !req->path) {
		request_free(req);
		return NULL;
	}
	req->wall_ns = wall_now_ns();
	req->arrival_ns = scache_now_ns(NULL);

	req->reg.connection = connection;
	req->reg.req = req;
	pthread_mutex_lock(&mw->reg_mu);
	request_entry *old = NULL;
	HASH_FIND_PTR(mw->registry, &connection, old);
	if (old)
		HASH_DEL(mw->registry, old);
	HASH_ADD_PTR(mw->registry, connection, &req->reg);
	pthread_mutex_unlock(&mw->reg_mu);
	return req;
}

/* Park the request's connection until its poll completes; the poller resumes it. Under
 * mu, so the poller cannot resume it before it is suspended. Returns 0 (do not park)
 * once scache_middleware_shutdown() has begun. */
static int park(scache_middleware *mw, scache_request *req)
{
	pthread_mutex_lock(&mw->mu);
	if (mw->no_park) {
		pthread_mutex_unlock(&mw->mu);
		return 0;
	}
	req->waiting = WAIT_SUSPENDED;
	req->next_waiter = mw->waiters;
	mw->waiters = req;
	mw->parked++;
	if (mw->last_done_ns < req->since_ns &&
	    !(mw->polling && mw->last_start_ns >= req->since_ns))
		want_poll(mw); /* unless the poll in flight (or just done) will do */
	pthread_cond_signal(&mw->wake);
	MHD_suspend_connection(req->connection);
	pthread_mutex_unlock(&mw->mu);
	return 1;
}

void scache_middleware_shutdown(scache_middleware *mw)
{
	if (!mw)
		return;
	pthread_mutex_lock(&mw->mu);
	mw->no_park = 1;
	uint64_t deadline = scache_now_ns(NULL) + 10000 * NS_PER_MS;
	resume_waiters(mw, scache_now_ns(NULL));
	while (mw->parked > 0 && scache_now_ns(NULL) < deadline) {
		struct timespec ts = to_timespec(scache_now_ns(NULL) + 10 * NS_PER_MS);
		pthread_cond_timedwait(&mw->poll_done, &mw->mu, &ts);
	}
	pthread_mutex_unlock(&mw->mu);
}

enum MHD_Result scache_access_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
	scache_middleware *mw = cls;
	scache_request *req = *req_cls;
	if (!req) {
		req = request_begin(mw, connection, url, method);
		if (!req)
			return MHD_NO; /* out of memory: MHD closes the connection */
		*req_cls = req;
		if (drain_begin(mw, req)) {
			if (mw->cfg.suspend && park(mw, req))
				return MHD_YES; /* MHD calls us again once resumed: the branch below
				                 */
			uint64_t removed = 0;
			enum drain_result r =
			    wait_for_poll(mw, req->since_ns, req->deadline_ns, &removed);
			drain_finish(mw, req, r, removed);
		}
		req->token = scache_cache_begin_load(mw->cfg.cache);
	} else if (req->waiting == WAIT_RESUMED) {
		uint64_t removed = req->resume_removed;
		enum drain_result r = (enum drain_result)req->resume_result;
		pthread_mutex_lock(&mw->mu);
		mw->parked--;
		pthread_cond_broadcast(&mw->poll_done);
		pthread_mutex_unlock(&mw->mu);
		req->waiting = WAIT_NONE;
		drain_finish(mw, req, r, removed);
		req->token = scache_cache_begin_load(mw->cfg.cache);
	}
	scache_request *outer = current_request;
	current_request = req;
	enum MHD_Result r = mw->cfg.handler(mw->cfg.handler_cls, connection, url, method, version,
	                                    upload_data, upload_data_size, &req->app_req_cls);
	current_request = outer;
	return r;
}

void scache_request_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                              enum MHD_RequestTerminationCode toe)
{
	scache_middleware *mw = cls;
	scache_request *req = req_cls ? *req_cls : NULL;
	if (!req) {
		/* The handler never ran for this request: chain with the app's (NULL) pointer. */
		if (mw->cfg.completed)
			mw->cfg.completed(mw->cfg.completed_cls, connection, req_cls, toe);
		return;
	}
	if (mw->cfg.completed)
		mw->cfg.completed(mw->cfg.completed_cls, connection, &req->app_req_cls, toe);

	if (req->waiting != WAIT_NONE) { /* closed while parked or just resumed */
		pthread_mutex_lock(&mw->mu);
		for (scache_request **link = &mw->waiters; *link; link = &(*link)->next_waiter) {
			if (*link == req) {
				*link = req->next_waiter;
				break;
			}
		}
		mw->parked--;
		pthread_cond_broadcast(&mw->poll_done);
		pthread_mutex_unlock(&mw->mu);
	}

	pthread_mutex_lock(&mw->reg_mu);
	request_entry *e = NULL;
	HASH_FIND_PTR(mw->registry, &connection, e);
	if (e == &req->reg)
		HASH_DEL(mw->registry, e);
	pthread_mutex_unlock(&mw->reg_mu);

	efficiency_request_done(mw, req);
	request_free(req);
	*req_cls = NULL;
}

scache_request *scache_request_current(void)
{
	return current_request;
}

scache_request *scache_request_of(scache_middleware *mw, struct MHD_Connection *connection)
{
	if (!mw || !connection)
		return NULL;
	if (current_request && current_request->mw == mw &&
	    current_request->connection == connection)
		return current_request;
	pthread_mutex_lock(&mw->reg_mu);
	request_entry *e = NULL;
	HASH_FIND_PTR(mw->registry, &connection, e);
	scache_request *req = e ? e->req : NULL;
	pthread_mutex_unlock(&mw->reg_mu);
	return req;
}

scache_middleware *scache_request_middleware(scache_request *req)
{
	return req ? req->mw : NULL;
}

int scache_request_bypass(const scache_request *req)
{
	return req ? req->bypass : 0;
}

enum MHD_Result scache_queue_response(struct MHD_Connection *connection, unsigned int status,
                                      struct MHD_Response *response)
{
	scache_request *req = current_request;
	if (req && req->connection == connection)
		req->status = status;
	return MHD_queue_response(connection, status, response);
}

/* ---- Handler helpers ------------------------------------------------------------- */

/* Whether the request may read the cache: it waited for its poll, or went on without
 * waiting (empty cache) and that poll has since succeeded. */
static int request_synced(scache_request *req)
{
	if (!req->unsynced)
		return 1;
	scache_middleware *mw = req->mw;
	pthread_mutex_lock(&mw->mu);
	int ok = mw->last_ok_ns >= req->since_ns;
	pthread_mutex_unlock(&mw->mu);
	if (ok)
		req->unsynced = 0;
	return ok;
}

static scache_err encode_key(const char *source, const char *id, char **key, size_t *len)
{
	if (!source || !id)
		return SCACHE_EINVAL;
	return scache_id_encode_alloc(source, strlen(source), id, strlen(id), key, len);
}

scache_err scache_get(scache_request *req, const char *source, const char *id, scache_value *out)
{
	if (!req || !out)
		return SCACHE_EINVAL;
	memset(out, 0, sizeof *out);
	if (req->bypass) {
		req->misses++;
		return SCACHE_EBYPASS;
	}
	char *key;
	size_t len;
	scache_err err = encode_key(source, id, &key, &len);
	if (err)
		return err;
	err = request_synced(req) ? scache_cache_get(req->mw->cfg.cache, key, len, out)
	                          : SCACHE_ENOTFOUND;
	free(key);
	if (err == SCACHE_OK) {
		req->hits++;
		req->saved_ns += out->saved_ns;
	} else if (err == SCACHE_ENOTFOUND) {
		req->misses++;
	}
	return err;
}

scache_err scache_add(scache_request *req, const char *source, const char *id, const void *value,
                      size_t len, uint64_t saved_ns)
{
	if (!req)
		return SCACHE_EINVAL;
	if (req->bypass)
		return SCACHE_EBYPASS;
	char *key;
	size_t klen;
	scache_err err = encode_key(source, id, &key, &klen);
	if (err)
		return err;
	scache_add_opts opts = {.token = req->token, .saved_ns = saved_ns};
	err = scache_cache_add(req->mw->cfg.cache, key, klen, value, len, &opts);
	free(key);
	return err;
}

static void *copy_bytes(const void *p, size_t n)
{
	void *c = malloc(n ? n : 1);
	if (c && n)
		memcpy(c, p, n);
	return c;
}

static void flight_release(flight *f)
{
	/* flight_mu held */
	if (--f->refs == 0) {
		pthread_cond_destroy(&f->cv);
		free(f->val);
		free(f->key);
		free(f);
	}
}

/* Run the loader and add its result under a token taken just before it. Sets *added. */
static scache_err load_and_add(scache_request *req, const char *key, size_t klen,
                               scache_loader_fn loader, void *loader_arg, void **value, size_t *len,
                               uint64_t *token, int *added)
{
	scache_middleware *mw = req->mw;
	*token = scache_cache_begin_load(mw->cfg.cache);
	*value = NULL;
	*len = 0;
	uint64_t t0 = scache_now_ns(NULL);
	scache_err err = loader(loader_arg, value, len);
	uint64_t took = scache_now_ns(NULL) - t0;
	*added = 0;
	if (err == SCACHE_OK && !req->bypass) {
		scache_add_opts opts = {.token = *token, .saved_ns = took};
		*added =
		    scache_cache_add(mw->cfg.cache, key, klen, *value, *len, &opts) == SCACHE_OK;
	}
	return err;
}

/* Lead a load of key: run the loader, add its result, publish it to waiters. */
static scache_err lead_load(scache_request *req, flight *f, const char *key, size_t klen,
                            scache_loader_fn loader, void *loader_arg, void **value, size_t *len)
{
	scache_middleware *mw = req->mw;
	void *v;
	size_t n;
	uint64_t token;
	int added;
	scache_err err = load_and_add(req, key, klen, loader, loader_arg, &v, &n, &token, &added);

	pthread_mutex_lock(&mw->flight_mu);
	f->done = 1;
	f->token = token;
	f->added = added;
	f->err = err;
	if (err == SCACHE_OK && f->refs > 1) {
		f->val = copy_bytes(v, n);
		f->len = n;
		if (!f->val)
			f->err = SCACHE_ENOMEM; /* waiters load themselves */
	}
	HASH_DEL(mw->flights, f);
	pthread_cond_broadcast(&f->cv);
	flight_release(f);
	pthread_mutex_unlock(&mw->flight_mu);

	if (err == SCACHE_OK) {
		*value = v;
		*len = n;
	} else {
		free(v);
	}
	return err;
}

scache_err scache_get_or_load(scache_request *req, const char *source, const char *id,
                              scache_loader_fn loader, void *loader_arg, void **value, size_t *len,
                              scache_outcome *outcome)
{
	if (!req || !loader || !value || !len)
		return SCACHE_EINVAL;
	*value = NULL;
	*len = 0;
	scache_outcome oc = SCACHE_OUTCOME_MISS;
	if (outcome)
		*outcome = oc;
	scache_middleware *mw = req->mw;
	if (req->bypass) {
		req->misses++;
		if (outcome)
			*outcome = SCACHE_OUTCOME_BYPASS;
		return loader(loader_arg, value, len);
	}
	char *key;
	size_t klen;
	scache_err err = encode_key(source, id, &key, &klen);
	if (err)
		return err;

	for (;;) {
		scache_value v;
		int synced = request_synced(req);
		err = synced ? scache_cache_get(mw->cfg.cache, key, klen, &v) : SCACHE_ENOTFOUND;
		if (err == SCACHE_OK) {
			*value = copy_bytes(v.data, v.len);
			*len = v.len;
			uint64_t saved = v.saved_ns;
			scache_value_release(&v);
			if (!*value) {
				err = SCACHE_ENOMEM;
				break;
			}
			req->hits++;
			req->saved_ns += saved;
			oc = SCACHE_OUTCOME_HIT;
			break;
		}
		if (err != SCACHE_ENOTFOUND)
			break;

		pthread_mutex_lock(&mw->flight_mu);
		flight *f = NULL;
		HASH_FIND(hh, mw->flights, key, klen, f);
		if (!f) {
			f = calloc(1, sizeof *f);
			if (!f || init_cond(&f->cv)) {
				pthread_mutex_unlock(&mw->flight_mu);
				free(f);
				err = SCACHE_ENOMEM;
				break;
			}
			f->key = key; /* the flight owns the key from here */
			f->refs = 1;
			HASH_ADD_KEYPTR(hh, mw->flights, f->key, klen, f);
			pthread_mutex_unlock(&mw->flight_mu);
			req->misses++;
			/* lead_load uses the key only before it drops the flight's reference */
			err = lead_load(req, f, key, klen, loader, loader_arg, value, len);
			if (outcome)
				*outcome = oc;
			return err;
		}
		f->refs++;
		/* Wait for the leader, but not forever: a hung loader must not block every
		 * request for its ID. Past load_wait_ms, load alone (not as a flight). */
		struct timespec until =
		    to_timespec(scache_now_ns(NULL) + mw->cfg.load_wait_ms * NS_PER_MS);
		while (!f->done)
			if (pthread_cond_timedwait(&f->cv, &mw->flight_mu, &until) == ETIMEDOUT)
				break;
		if (!f->done) {
			flight_release(f);
			pthread_mutex_unlock(&mw->flight_mu);
			req->misses++;
			uint64_t token;
			int added;
			err = load_and_add(req, key, klen, loader, loader_arg, value, len, &token,
			                   &added);
			break;
		}
		/* Its load is good for us if it began after our drain, or if no invalidation of
		 * the key was applied after it began (the add was accepted) and we are synced. */
		int usable = (f->added && synced) || f->token > req->token;
		scache_err ferr = f->err;
		if (usable && ferr == SCACHE_OK) {
			*value = copy_bytes(f->val, f->len);
			*len = f->len;
			if (!*value)
				ferr = SCACHE_ENOMEM;
		}
		flight_release(f);
		pthread_mutex_unlock(&mw->flight_mu);
		if (usable && ferr != SCACHE_ENOMEM) {
			req->misses++;
			err = ferr;
			break;
		}
		/* else: load again, ourselves or behind a newer leader */
	}
	free(key);
	if (outcome)
		*outcome = oc;
	if (err && *value) {
		free(*value);
		*value = NULL;
		*len = 0;
	}
	return err;
}

scache_err scache_middleware_invalidate(scache_middleware *mw, const char *const *sources,
                                        const char *const *ids, size_t n)
{
	if (!mw || (n > 0 && (!sources || !ids)))
		return SCACHE_EINVAL;
	if (n == 0)
		return SCACHE_OK;
	char **keys = calloc(n, sizeof *keys);
	size_t *lens = calloc(n, sizeof *lens);
	scache_err err = keys && lens ? SCACHE_OK : SCACHE_ENOMEM;
	for (size_t i = 0; i < n && !err; i++)
		err = encode_key(sources[i], ids[i], &keys[i], &lens[i]);
	if (!err) {
		/* Remove locally first, whatever the publish will do: this instance must not
		 * serve the old data during a slow or failing publish (its tombstones also
		 * refuse adds of loads that began before now). */
		err = scache_cache_invalidate_many(mw->cfg.cache, (const void *const *)keys, lens,
		                                   n, NULL);
		scache_err perr = mw->ops.publish(mw->ops.arg, (const char *const *)keys, lens, n);
		pthread_mutex_lock(&mw->stats_mu);
		if (perr)
			mw->totals.publish_errors++;
		else
			mw->totals.published_keys += n;
		pthread_mutex_unlock(&mw->stats_mu);
		if (perr)
			err = perr;
	}
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	free(lens);
	return err;
}

scache_err scache_invalidate(scache_request *req, const char *source, const char *id)
{
	if (!req)
		return SCACHE_EINVAL;
	return scache_middleware_invalidate(req->mw, &source, &id, 1);
}

scache_err scache_invalidate_many(scache_request *req, const char *const *sources,
                                  const char *const *ids, size_t n)
{
	if (!req)
		return SCACHE_EINVAL;
	return scache_middleware_invalidate(req->mw, sources, ids, n);
}

unsigned scache_test_flight_refs(scache_middleware *mw, const char *key)
{
	flight *f = NULL;
	HASH_FIND(hh, mw->flights, key, strlen(key), f);
	return f ? f->refs : 0;
}
