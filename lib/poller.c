/*
 * poller.c: when requests may read the cache. One poller thread per middleware runs
 * every poll of the invalidation source; requests never poll themselves, they only wait
 * (with a deadline) for a poll that began late enough.
 *
 * Design. That gives single-flight for free (all waiters share the next poll), puts the
 * poll budget (max_polls_per_second, with backoff after failures and throttling) in one
 * place, and lets a request stop waiting when the staleness bound says so, even while a
 * poll is stuck in retries. The cost is a thread handoff per poll (tens of microseconds),
 * small next to an HTTP call to the service. A request either blocks its thread
 * (mw_wait_for_poll, a timed wait) or is parked with MHD_suspend_connection (mw_park).
 * A parked request is resumed by the poller when its poll completes, and by the deadline
 * timer when its deadline passes: a thread of its own (started by the poller with
 * .suspend), because the poller may be inside one sync for as long as the source's calls
 * take (a Kinesis endpoint that accepts and never answers: timeouts and retries, about a
 * minute), and no parked request may wait longer than max_staleness_ms. libmicrohttpd
 * allows MHD_resume_connection from any thread; both call it under mu (see mw_park).
 *
 * The drain policy (strict, bounded staleness, empty cache, outage bypass) is decided
 * here, in mw_drain_begin and mw_drain_finish; what the source delivers during a poll
 * (keys, gaps) is applied here too. Locks: see middleware_internal.h.
 */
#include "middleware_internal.h"

#include "echoes.h"

#include "scache/id.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MAX_NS (5000ull * NS_PER_MS)

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

static int outage_by_clock(scache_middleware *mw, uint64_t now, char *why, size_t why_len);

/* Run one poll; mu is held on entry and on return. */
static void poll_once(scache_middleware *mw)
{
	uint64_t start = scache_now_ns(NULL);
	mw->polling = 1;
	mw->want = 0;
	mw->last_start_ns = start;
	atomic_store(&mw->poll_removed, 0);
	pthread_mutex_unlock(&mw->mu);

	scache_poll_info info;
	scache_err err = scache_source_sync(mw->src, start, &mw->sink, &info);
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
	char why[sizeof mw->last_error + 160];
	uint64_t now = scache_now_ns(NULL);
	int throttled = info.throttled;
	if (err == SCACHE_OK) {
		mw->last_ok_ns = start;
		mw->synced = 1;
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
		util_fmt(mw->last_error, sizeof mw->last_error, "%s%s%s", scache_strerror(err),
		         info.message[0] ? ": " : "", info.message);
		mw->backoff_ns = mw->backoff_ns ? mw->backoff_ns * 2 : mw->min_interval_ns;
		if (mw->backoff_ns > BACKOFF_MAX_NS)
			mw->backoff_ns = BACKOFF_MAX_NS;
		/* the rule every request applies too: no poll succeeded within the bound, and
		 * this one failed */
		stale = outage_by_clock(mw, now, why, sizeof why);
	}
	pthread_cond_broadcast(&mw->poll_done);
	resume_waiters(mw, now);
	pthread_mutex_unlock(&mw->mu);

	if (stale)
		efficiency_warning(mw, why);
	if (recovered)
		efficiency_warning(mw,
		                   "the stream is read again: the cache was flushed and is back "
		                   "in use");
	pthread_mutex_lock(&mw->mu);
}

/* The deadline timer: resumes parked requests whose deadline passed, whatever the poller
 * is doing. Sleeps on mw->wake (mw_park and stop broadcast it) until the earliest
 * deadline among the parked. */
static void *deadline_timer_main(void *arg)
{
	scache_middleware *mw = arg;
	pthread_mutex_lock(&mw->mu);
	while (!mw->stop) {
		uint64_t deadline = resume_waiters(mw, scache_now_ns(NULL));
		if (deadline == UINT64_MAX) {
			pthread_cond_wait(&mw->wake, &mw->mu);
		} else {
			struct timespec ts = mw_timespec(deadline);
			pthread_cond_timedwait(&mw->wake, &mw->mu, &ts);
		}
	}
	pthread_mutex_unlock(&mw->mu);
	return NULL;
}

void *mw_poller_main(void *arg)
{
	scache_middleware *mw = arg;
	pthread_t timer;
	int timer_started = 0;
	if (mw->cfg.suspend) {
		timer_started = pthread_create(&timer, NULL, deadline_timer_main, mw) == 0;
		if (!timer_started)
			efficiency_warning(mw, "cannot start the deadline timer thread: parked "
			                       "requests are resumed at their deadline only "
			                       "between polls");
	}
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
		/* deadlines are the timer's; without it, checked between polls */
		uint64_t deadline = timer_started ? UINT64_MAX : resume_waiters(mw, now);
		uint64_t due = poll_due_at(mw);
		if (now >= due) {
			poll_once(mw);
			continue;
		}
		uint64_t until = due < mw->next_summary_ns ? due : mw->next_summary_ns;
		if (deadline < until)
			until = deadline;
		struct timespec ts = mw_timespec(until);
		pthread_cond_timedwait(&mw->wake, &mw->mu, &ts);
	}
	pthread_mutex_unlock(&mw->mu);
	if (timer_started)
		pthread_join(timer, NULL); /* stop is set and wake broadcast: it has ended */
	return NULL;
}

/* Ask for a poll newer than the last one started; mu held. */
static void want_poll(scache_middleware *mw)
{
	if (!mw->want) {
		mw->want = 1;
		pthread_cond_broadcast(&mw->wake); /* the poller and the deadline timer wait */
	}
}

/* Wait until a poll that began at or after since_ns completed, or the deadline. Sets
 * *removed to the entries that poll removed. */
enum drain_result mw_wait_for_poll(scache_middleware *mw, uint64_t since_ns, uint64_t deadline_ns,
                                   uint64_t *removed)
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
		struct timespec ts = mw_timespec(deadline_ns);
		pthread_cond_timedwait(&mw->poll_done, &mw->mu, &ts);
	}
	*removed = r == DRAIN_FRESH || r == DRAIN_FAILED ? mw->last_removed : 0;
	pthread_mutex_unlock(&mw->mu);
	return r;
}

/* Expire what is due and set the poll the request needs: one that began at or after
 * req->since_ns (its arrival in strict mode). */
static void drain_init(scache_middleware *mw, scache_request *req)
{
	/* Amortised: one request in SWEEP_EVERY sweeps, with the budget of that many, so
	 * most requests take no stripe lock for expiry (a sweep try-locks every stripe
	 * exclusively); a get never returns an expired entry either way. */
	if (atomic_fetch_add_explicit(&mw->sweeps, 1, memory_order_relaxed) % SWEEP_EVERY == 0)
		req->evicted +=
		    scache_cache_sweep(mw->cfg.cache, (size_t)mw->cfg.sweep_budget * SWEEP_EVERY);
	uint64_t arrival = req->arrival_ns;
	uint64_t since = arrival;
	if (mw->cfg.poll_interval_ms > 0) {
		uint64_t iv = mw->cfg.poll_interval_ms * NS_PER_MS;
		since = arrival > iv ? arrival - iv : 1;
	}
	req->since_ns = since;
	req->drain_from_ns = arrival;
	req->deadline_ns = arrival + mw->cfg.max_staleness_ms * NS_PER_MS;
}

/* An outage told by the clock: no poll succeeded for longer than max_staleness_ms, and
 * either the newest poll failed (the next waits out its back-off) or one has been in
 * flight that long (stuck in a call that never answers, or in its retries). Otherwise
 * only the next poll's failure, or a waiting request's deadline, would begin the bypass,
 * and meanwhile a server where nothing waits (nothing cached) would serve and report as
 * if the stream were read. mu held; if it began, returns 1 and says why in why. */
static int outage_by_clock(scache_middleware *mw, uint64_t now, char *why, size_t why_len)
{
	uint64_t bound = mw->cfg.max_staleness_ms * NS_PER_MS;
	if (mw->bypassing || now - mw->last_ok_ns <= bound)
		return 0;
	unsigned long long ms = (unsigned long long)mw->cfg.max_staleness_ms;
	if (mw->polling && now - mw->last_start_ns > bound)
		util_fmt(why, why_len,
		         "a poll of the stream has not finished for over %llu ms: bypassing the "
		         "cache until polls succeed again",
		         ms);
	else if (mw->last_done_ns != mw->last_ok_ns)
		util_fmt(why, why_len,
		         "no poll of the stream succeeded for over %llu ms: bypassing the cache "
		         "until polls succeed again (last error: %s)",
		         ms, mw->last_error);
	else
		return 0;
	mw->bypassing = 1;
	return 1;
}

/* An outage told by a publish: an invalidation could not be published (after its
 * retries, up to publish_timeout_ms) and no poll succeeded for max_staleness_ms (an idle
 * strict server polls only when asked): there is no sign the stream can be read, so the
 * bypass begins, as after a failed poll. Without it, a request that waited behind the
 * publish on its pool thread would then wait max_staleness_ms more for a poll. */
void mw_publish_failed(scache_middleware *mw)
{
	uint64_t now = scache_now_ns(NULL);
	pthread_mutex_lock(&mw->mu);
	int newly = !mw->bypassing && now - mw->last_ok_ns > mw->cfg.max_staleness_ms * NS_PER_MS;
	if (newly) {
		mw->bypassing = 1;
		want_poll(mw); /* polls keep coming, so recovery is noticed */
	}
	pthread_mutex_unlock(&mw->mu);
	if (newly) {
		char msg[200];
		snprintf(msg, sizeof msg,
		         "an invalidation could not be published and no poll of the stream "
		         "succeeded for over %llu ms: bypassing the cache until polls succeed again",
		         (unsigned long long)mw->cfg.max_staleness_ms);
		efficiency_warning(mw, msg);
	}
}

/* What a drain sees first: during an outage the request is bypassed (it does not wait:
 * it serves from the database) and polls keep coming, so recovery is noticed; returns 1
 * then. Else *fresh says whether a poll recent enough for it already succeeded. */
static int drain_check(scache_middleware *mw, scache_request *req, int *fresh)
{
	uint64_t now = scache_now_ns(NULL);
	pthread_mutex_lock(&mw->mu);
	char why[sizeof mw->last_error + 160];
	int newly = outage_by_clock(mw, now, why, sizeof why);
	int bypassing = mw->bypassing;
	*fresh = mw->last_ok_ns >= req->since_ns;
	if (bypassing)
		want_poll(mw);
	pthread_mutex_unlock(&mw->mu);
	if (newly)
		efficiency_warning(mw, why);
	if (bypassing)
		req->bypass = 1;
	return bypassing;
}

/* Whether the request must wait for its poll now: 0 if it may go on (fresh enough,
 * nothing cached, or bypassed during an outage). */
static int drain_decide(scache_middleware *mw, scache_request *req)
{
	int fresh;
	if (drain_check(mw, req, &fresh))
		return 0;
	if (fresh)
		return 0;

	/* Look at the cache before asking for a poll, so the poll this request will wait
	 * for cannot empty the cache first (its removals belong to this request's line). */
	scache_cache_stats st;
	scache_cache_stats_get(mw->cfg.cache, &st);
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

/* The eager drain's first half (with .suspend), before the handler runs. Returns 1 if
 * the request must wait for a poll that began at or after req->since_ns (until
 * req->deadline_ns), 0 if it may go on now. */
int mw_drain_begin(scache_middleware *mw, scache_request *req)
{
	drain_init(mw, req);
	return drain_decide(mw, req);
}

/*
 * The lazy drain (without .suspend). A request needs the stream only to read the cache,
 * so the wait for its poll is left to its first scache_get, scache_get_or_load or
 * scache_add, and a request that never uses the cache (a write, a 404, /metrics) never
 * waits. The guarantee is the eager drain's: the poll is the first that BEGAN after the
 * request arrived (since_ns is set here, from the arrival), so a read that comes later
 * still sees every invalidation published before the request arrived, and may use a poll
 * that began after the arrival but before the lookup without waiting again. What needs no
 * wait is settled here: an outage bypasses at once (adds refused from the start), and a
 * poll recent enough (bounded staleness) ends the drain.
 */
void mw_drain_defer(scache_middleware *mw, scache_request *req)
{
	drain_init(mw, req);
	int fresh;
	if (drain_check(mw, req, &fresh))
		return;
	if (fresh)
		return;
	/* Nothing cached at arrival: as the eager drain, the request will not wait, and its
	 * gets miss until a poll that began after its arrival succeeded (request_synced);
	 * the poll is asked for by its first lookup, if any. */
	scache_cache_stats st;
	scache_cache_stats_get(mw->cfg.cache, &st);
	if (st.entries == 0)
		req->unsynced = 1;
	req->drain_pending = st.entries == 0 ? DRAIN_PENDING_POLL : DRAIN_PENDING_WAIT;
}

void mw_drain_now(scache_request *req)
{
	if (!req->drain_pending)
		return;
	int pending = req->drain_pending;
	req->drain_pending = 0;
	scache_middleware *mw = req->mw;
	if (pending == DRAIN_PENDING_POLL) {
		pthread_mutex_lock(&mw->mu);
		if (mw->last_ok_ns < req->since_ns)
			want_poll(mw);
		pthread_mutex_unlock(&mw->mu);
		return;
	}
	/* The wait, not the request, is bounded by max_staleness_ms: a handler that ran long
	 * before its first lookup still gets a whole bound for its poll. */
	req->drain_from_ns = scache_now_ns(NULL);
	req->deadline_ns = req->drain_from_ns + mw->cfg.max_staleness_ms * NS_PER_MS;
	if (!drain_decide(mw, req))
		return;
	uint64_t removed = 0;
	enum drain_result r = mw_wait_for_poll(mw, req->since_ns, req->deadline_ns, &removed);
	mw_drain_finish(mw, req, r, removed);
}

/* Second half, after the wait: what the poll (or its absence) means for the request. */
void mw_drain_finish(scache_middleware *mw, scache_request *req, enum drain_result r,
                     uint64_t removed)
{
	req->evicted += removed;
	uint64_t now = scache_now_ns(NULL);
	req->stream_ns = now - req->drain_from_ns;
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

/* Park the request's connection until its poll completes (the poller resumes it) or its
 * deadline passes (the deadline timer does). Under mu, so neither can resume it before
 * it is suspended. Returns 0 (do not park) once scache_middleware_shutdown() has begun. */
int mw_park(scache_middleware *mw, scache_request *req)
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
		want_poll(mw);             /* unless the poll in flight (or just done) will do */
	pthread_cond_broadcast(&mw->wake); /* the deadline timer: a new deadline */
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
		struct timespec ts = mw_timespec(scache_now_ns(NULL) + 10 * NS_PER_MS);
		pthread_cond_timedwait(&mw->poll_done, &mw->mu, &ts);
	}
	pthread_mutex_unlock(&mw->mu);
}

/* Ready: a sync of the source succeeded (so it is positioned) and the cache is in use. */
static int ready(const scache_middleware *mw)
{
	return mw->synced && !mw->bypassing;
}

scache_err scache_middleware_wait_ready(scache_middleware *mw, uint64_t timeout_ms, char *errbuf,
                                        size_t errlen)
{
	if (!mw) {
		mw_set_err(errbuf, errlen, "middleware: NULL argument");
		return SCACHE_EINVAL;
	}
	if (timeout_ms > UINT64_MAX / NS_PER_MS / 8)
		timeout_ms = UINT64_MAX / NS_PER_MS / 8;
	uint64_t deadline = scache_now_ns(NULL) + timeout_ms * NS_PER_MS;
	pthread_mutex_lock(&mw->mu);
	while (!ready(mw) && !mw->stop && scache_now_ns(NULL) < deadline) {
		if (!mw->polling)
			want_poll(mw); /* within the budget and the failure back-off */
		struct timespec ts = mw_timespec(deadline);
		pthread_cond_timedwait(&mw->poll_done, &mw->mu, &ts);
	}
	int ok = ready(mw);
	if (!ok && errbuf && errlen > 0) {
		if (mw->last_error[0])
			util_fmt(errbuf, errlen, "the stream is not ready: %s", mw->last_error);
		else if (!mw->synced && mw->unavailable[0])
			util_fmt(errbuf, errlen, "the stream is not ready: %s", mw->unavailable);
		else
			snprintf(errbuf, errlen,
			         "the stream is not ready: no poll of it has "
			         "completed yet");
	} else if (ok && errbuf && errlen > 0) {
		errbuf[0] = '\0';
	}
	pthread_mutex_unlock(&mw->mu);
	return ok ? SCACHE_OK : SCACHE_ETIMEOUT;
}

uint64_t mw_staleness_ns(scache_middleware *mw, int *bypassing)
{
	pthread_mutex_lock(&mw->mu);
	uint64_t now = scache_now_ns(NULL);
	char why[sizeof mw->last_error + 160];
	int newly = outage_by_clock(mw, now, why, sizeof why);
	uint64_t s = now > mw->last_ok_ns ? now - mw->last_ok_ns : 0;
	if (bypassing)
		*bypassing = mw->bypassing;
	pthread_mutex_unlock(&mw->mu);
	if (newly)
		efficiency_warning(mw, why);
	return s;
}

/* ---- The sink: what the source delivers during a poll ---------------------------- */

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

void mw_apply_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
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

static void sink_gap(void *arg, const char *why)
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

/*
 * A refresh: the new value replaces the old, as an invalidation followed by an add under
 * a token taken after it. What keeps older data from replacing newer:
 *   - refresh vs. refresh (records of one item late or repeated on the stream): the
 *     source orders them (the Kinesis reader's ddb_versions) and never delivers an older
 *     change after a newer one; where it cannot tell, it invalidates instead;
 *   - a local load that began before the refresh: the invalidation makes the cache
 *     refuse its add (stale-add guard), so the older data it read never lands on top;
 *   - a local load that began after the refresh: it reads the item strongly consistent
 *     (DynamoDB GetItem with ConsistentRead, lib/dynamodb.c), so it reads this change or
 *     a newer one. If it read a newer one, a later refresh of the older image may still
 *     replace it until the newer change's own record arrives, which the next poll
 *     delivers: the staleness bound of any invalidation.
 */
static void sink_value(void *arg, const char *key, size_t key_len, const void *value, size_t len)
{
	scache_middleware *mw = arg;
	int oom = 0;
	size_t clen = 0;
	char *canon = canonical_key(key, key_len, &clen, &oom);
	const char *k = canon ? canon : key;
	size_t klen = canon ? clen : key_len;
	size_t removed = 0;
	int stored = 0;
	if (oom) {
		scache_cache_flush(mw->cfg.cache, &removed);
	} else {
		int was = 0;
		scache_cache_invalidate(mw->cfg.cache, k, klen, &was);
		removed = was > 0;
		scache_add_opts opts = {.token = scache_cache_begin_load(mw->cfg.cache)};
		stored = scache_cache_add(mw->cfg.cache, k, klen, value, len, &opts) == SCACHE_OK;
	}
	atomic_fetch_add(&mw->poll_removed, removed);
	free(canon);
	pthread_mutex_lock(&mw->stats_mu);
	mw->totals.keys_applied++;
	mw->totals.refreshed += (uint64_t)stored;
	mw->period.refreshed += (uint64_t)stored;
	pthread_mutex_unlock(&mw->stats_mu);
}

static void sink_log(void *arg, const char *message)
{
	efficiency_warning(arg, message);
}

/* The echo of this instance's own invalidations (see echoes.c): a key noted when it was
 * invalidated here is skipped once; any other is applied as everyone's keys are. */
static void sink_keys_own(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	scache_middleware *mw = arg;
	const char **rest = calloc(n ? n : 1, sizeof *rest);
	size_t *rest_lens = calloc(n ? n : 1, sizeof *rest_lens), m = 0;
	uint64_t now = scache_now_ns(NULL);
	if (!rest || !rest_lens) {
		free(rest);
		free(rest_lens);
		mw_apply_keys(mw, keys, lens, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int oom = 0;
		size_t clen = 0;
		char *canon = canonical_key(keys[i], lens[i], &clen, &oom);
		if (!canon || !echoes_take(mw->echoes, canon, clen, now)) {
			rest[m] = keys[i];
			rest_lens[m++] = lens[i];
		}
		free(canon);
	}
	if (m)
		mw_apply_keys(mw, rest, rest_lens, m);
	pthread_mutex_lock(&mw->stats_mu);
	mw->totals.keys_applied += n - m; /* skipped: already applied before publishing */
	pthread_mutex_unlock(&mw->stats_mu);
	free(rest);
	free(rest_lens);
}

void mw_sink_init(scache_middleware *mw)
{
	mw->echoes = echoes_new(); /* NULL: echoes apply as any record (safe) */
	mw->sink = (scache_sink){.keys = mw_apply_keys,
	                         .gap = sink_gap,
	                         .value = sink_value,
	                         .log = sink_log,
	                         .arg = mw,
	                         .keys_own = sink_keys_own};
}

unsigned mw_test_waiting(scache_middleware *mw)
{
	pthread_mutex_lock(&mw->mu);
	unsigned n = 0;
	for (scache_request *r = mw->waiters; r; r = r->next_waiter)
		n++;
	pthread_mutex_unlock(&mw->mu);
	return n;
}

unsigned mw_test_parked(scache_middleware *mw)
{
	pthread_mutex_lock(&mw->mu);
	unsigned n = mw->parked;
	pthread_mutex_unlock(&mw->mu);
	return n;
}

uint64_t mw_test_backoff_ns(scache_middleware *mw)
{
	pthread_mutex_lock(&mw->mu);
	uint64_t b = mw->backoff_ns;
	pthread_mutex_unlock(&mw->mu);
	return b;
}
