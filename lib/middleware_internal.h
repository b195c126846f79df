/*
 * Private to the middleware's files (middleware.c, poller.c, middleware_mhd.c, loads.c,
 * efficiency.c, metrics.c) and their tests: the state they share, the lock order, and
 * a few test hooks. The middleware reads invalidations through the public source
 * interface (scache/source.h) and nothing else.
 */
#ifndef SCACHE_MIDDLEWARE_INTERNAL_H
#define SCACHE_MIDDLEWARE_INTERNAL_H

#include "scache/middleware.h"
#include "scache/source.h"
#include "source_internal.h"
#include "strbuf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include <uthash.h>

/* ---- Test hooks (the tests link the static library) ------------------------------ */

/* Apply invalidated keys now, as a poll delivering them would (arg: the middleware). */
void mw_apply_keys(void *mw, const char *const *keys, const size_t *lens, size_t n);
/* The references held on the load in flight for key (loader + waiters), 0 if none. */
unsigned mw_test_flight_refs(scache_middleware *mw, const char *key);
/* Requests suspended now, waiting for their poll (the waiters list). */
unsigned mw_test_waiting(scache_middleware *mw);
/* Requests parked: suspended, or resumed and not yet called again. */
unsigned mw_test_parked(scache_middleware *mw);
/* What the poll budget adds to its interval now (after failures or throttling). */
uint64_t mw_test_backoff_ns(scache_middleware *mw);
/* Set the counters of the current summary period. */
void mw_test_set_period(scache_middleware *mw, uint64_t requests, uint64_t hits, uint64_t misses,
                        uint64_t stream_ns, uint64_t saved_ns);

/* ---- Loads with a lifetime of their own ------------------------------------------ */

/* scache_get_or_load, where the added entry lives exactly *ttl_ms milliseconds instead of
 * the cache's window when ttl_ms is not NULL and *ttl_ms is not 0. *ttl_ms is read after
 * the loader returned, so a loader may choose it by what it found (lib/dynamodb.c caches
 * "no such item" for its negative_ttl_ms). */
scache_err mw_get_or_load(scache_request *req, const char *source, const char *id,
                          scache_loader_fn loader, void *loader_arg, const uint64_t *ttl_ms,
                          void **value, size_t *len, scache_outcome *outcome);

/* ---- State shared by the middleware's files ------------------------------------ */

#define NS_PER_MS 1000000ull

/*
 * Locks of a middleware, and their order. A thread holding one may take only those
 * listed after it; none is held across a call into the source, a loader or the
 * application's handler.
 *   1. mu         the poll state and the parked requests (poller.c). Held across
 *                 MHD_suspend_connection / MHD_resume_connection, which take
 *                 libmicrohttpd's own connection mutex: that one comes after mu.
 *   2. flight_mu  the loads in flight (loads.c).
 *   3. reg_mu     the requests by connection (middleware_mhd.c).
 *   4. stats_mu   the counters (efficiency.c and the files that count).
 *   5. log_mu     the log sink (efficiency.c), taken with no other lock held.
 * The cache's stripe locks (cache.c) are taken with at most mu held (the outage flush
 * is done without it). No two of 2-5 are ever held together.
 */

typedef struct request_entry {
	struct MHD_Connection *connection;
	scache_request *req;
	UT_hash_handle hh;
} request_entry;

enum { WAIT_NONE = 0, WAIT_SUSPENDED, WAIT_RESUMED };

/* What a deferred drain still has to do: nothing; wait for the request's poll; or only
 * ask for it (the cache was empty at arrival: the request is unsynced, never waits). */
enum { DRAIN_PENDING_NONE = 0, DRAIN_PENDING_WAIT, DRAIN_PENDING_POLL };

struct scache_request {
	scache_middleware *mw;
	struct MHD_Connection *connection;
	void *app_req_cls; /* what the wrapped handler sees as *req_cls */
	char *method;
	char *path;
	uint64_t wall_ns;    /* CLOCK_REALTIME at arrival, for the log line */
	uint64_t arrival_ns; /* scache_now_ns() at arrival */
	uint64_t stream_ns;  /* time spent waiting for the drain */
	uint64_t saved_ns;   /* saved time of this request's hits */
	uint64_t token;      /* load token taken when the handler started */
	uint64_t hits, misses, evicted;
	unsigned status;
	int bypass;
	int unsynced;                /* went on without its poll (empty cache): gets miss
	                                until a poll that began at since_ns has succeeded */
	int waiting;                 /* WAIT_*: parked with MHD_suspend_connection */
	uint64_t since_ns;           /* the drain needs a poll that began at or after this */
	uint64_t deadline_ns;        /* and waits no longer than this */
	int drain_pending;           /* DRAIN_PENDING_*: lazy drain (no .suspend), finished by
	                                the first scache_get, scache_get_or_load or
	                                scache_add (mw_drain_now) */
	uint64_t drain_from_ns;      /* when its wait for the drain began */
	int resume_result;           /* enum drain_result when resumed */
	uint64_t resume_removed;     /* entries the poll it waited for removed */
	scache_request *next_waiter; /* in mw->waiters, under mw->mu */
	request_entry reg;           /* entry in the middleware's registry */
};

/* Counters of the current summary period (efficiency.c). */
typedef struct period_counters {
	uint64_t requests, hits, misses, bypass_requests;
	uint64_t stream_ns, saved_ns;
	uint64_t polls, poll_errors, calls;
	uint64_t refreshed; /* values the source delivered that the cache stored */
} period_counters;

struct scache_middleware {
	scache_middleware_config cfg; /* defaults resolved */
	scache_source *src;           /* owned */
	scache_sink sink;             /* what src delivers to: poller.c */

	/* Poll state, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t wake;      /* poller and deadline timer: a poll is wanted, a request
	                             was parked, or stop (broadcast: both wait) */
	pthread_cond_t poll_done; /* waiters: a poll completed */
	int want;                 /* a request wants a poll newer than the last start */
	int polling;
	int stop;
	int bypassing;            /* staleness episode in progress */
	uint64_t last_start_ns;   /* start of the newest poll begun */
	uint64_t last_done_ns;    /* start of the newest poll completed */
	uint64_t last_ok_ns;      /* start of the newest successful poll (or creation) */
	uint64_t last_removed;    /* entries the newest completed poll removed */
	uint64_t backoff_ns;      /* added to the budget interval after failures */
	uint64_t min_interval_ns; /* 1 s / max_polls_per_second */
	uint64_t next_summary_ns;
	pthread_t poller;
	int poller_started;
	_Atomic uint64_t poll_removed; /* entries removed by the poll in progress */
	scache_request *waiters;       /* suspended requests, under mu */
	unsigned parked;               /* suspended or resumed but not yet called again */
	int no_park;                   /* scache_middleware_shutdown() began */
	int synced;                    /* a poll of the source has succeeded */
	char last_error[256];          /* why the newest failed poll failed */
	char unavailable[256];         /* why the source was not positioned at creation */

	/* Requests in progress by connection, under reg_mu. */
	pthread_mutex_t reg_mu;
	request_entry *registry;

	/* Loads in flight by key, under flight_mu. */
	pthread_mutex_t flight_mu;
	struct flight *flights;

	/* Counters, under stats_mu. */
	pthread_mutex_t stats_mu;
	scache_middleware_stats totals;
	period_counters period;
	uint64_t period_start_ns;

	pthread_mutex_t log_mu; /* one sink call at a time */
	/* Where lines go (log_sink.c): config.log_file while log_path is set, under log_mu,
	 * in batches: log_buf[log_cur] receives lines (log_len bytes) while the one writer
	 * (log_writing) writes the other to log_writing_fd outside the lock. */
	char *log_path;
	int log_fd;
	char *log_buf[2];
	size_t log_len;
	int log_cur, log_writing, log_writing_fd, log_closing_fd;
	pthread_cond_t log_cv; /* the writer took a buffer: room for lines again */
	_Atomic uint64_t request_lines; /* request lines considered, for request_sample */
	_Atomic uint64_t sweeps;        /* requests drained: one in SWEEP_EVERY sweeps */
	_Atomic unsigned warned;        /* one-time warnings given: WARNED_* bits */
	struct echoes *echoes; /* own invalidations whose echo is expected (echoes.c); NULL:
	                          echoes apply as any record */
};

/* One-time warnings (mw->warned). */
enum {
	WARNED_NO_COMPLETED = 1u, /* a request began where the previous one never completed */
	WARNED_NO_SUSPEND = 2u,   /* .suspend on a daemon without MHD_ALLOW_SUSPEND_RESUME */
};
/* 1 the first time it is called with that bit for mw, 0 after. */
int mw_warn_once(scache_middleware *mw, unsigned bit);

/* middleware.c: helpers */
void mw_set_err(char *errbuf, size_t errlen, const char *msg);
/* Absolute CLOCK_MONOTONIC deadline for pthread_cond_timedwait (conds use it). */
struct timespec mw_timespec(uint64_t ns);
/* A condition variable on CLOCK_MONOTONIC; 0 or an errno. */
int mw_init_cond(pthread_cond_t *c);

/* poller.c */
enum drain_result { DRAIN_FRESH, DRAIN_FAILED, DRAIN_TIMEOUT, DRAIN_STOPPED };
/* The poller thread's body (arg: the middleware). */
void *mw_poller_main(void *arg);
/* First half of the eager drain (with .suspend), before the handler runs: 1 if the request
 * must wait for a poll that began at or after req->since_ns (until req->deadline_ns), 0
 * if it may go on. */
int mw_drain_begin(scache_middleware *mw, scache_request *req);
/* The lazy drain (without .suspend), at the first callback: what needs no wait (expiry,
 * the poll the request needs, an outage's bypass, a poll recent enough); the rest is left
 * to mw_drain_now (req->drain_pending). */
void mw_drain_defer(scache_middleware *mw, scache_request *req);
/* The rest of a deferred drain, from the first helper that uses the cache: waits (in the
 * calling thread) for the poll the request needs, as the eager drain would have. */
void mw_drain_now(scache_request *req);
/* Block until a poll that began at or after since_ns completed, or the deadline; sets
 * *removed to the entries that poll removed. */
enum drain_result mw_wait_for_poll(scache_middleware *mw, uint64_t since_ns, uint64_t deadline_ns,
                                   uint64_t *removed);
/* Park the request's connection until its poll completes (the poller resumes it); 0
 * when parking is over (shutdown began): then wait with mw_wait_for_poll. */
int mw_park(scache_middleware *mw, scache_request *req);
/* Second half, after the wait: what the poll (or its absence) means for the request. */
void mw_drain_finish(scache_middleware *mw, scache_request *req, enum drain_result r,
                     uint64_t removed);
/* The sink the source delivers to during a poll (arg: the middleware). */
void mw_sink_init(scache_middleware *mw);
/* Time since the start of the newest successful poll; *bypassing (may be NULL) is set
 * while the cache is bypassed. */
uint64_t mw_staleness_ns(scache_middleware *mw, int *bypassing);
/* An invalidation's publish failed: begins the bypass when no poll succeeded for
 * max_staleness_ms (poller.c). No lock held. */
void mw_publish_failed(scache_middleware *mw);
/* One request in SWEEP_EVERY runs the expiry sweep, with SWEEP_EVERY x sweep_budget. */
#define SWEEP_EVERY 16

/* log_sink.c */

/* Open config.log_file (if set) for the middleware's lines: SCACHE_OK, or SCACHE_ECONFIG
 * (with .log too) / SCACHE_EIO (cannot open) / SCACHE_ENOMEM with errbuf set. */
scache_err log_sink_open(scache_middleware *mw, char *errbuf, size_t errlen);
/* Close it (harmless if none). */
void log_sink_close(scache_middleware *mw);
/* Write one line to the sink: config.log, config.log_file, or stderr. */
void efficiency_emit(scache_middleware *mw, const char *line, size_t len);

/* middleware_mhd.c: free the requests still registered (never completed: a daemon
 * started without scache_request_completed), at scache_middleware_free. */
void mw_requests_free_all(scache_middleware *mw);

/* efficiency.c */
/* The request's line, and count it into the totals and the period. */
void efficiency_request_done(scache_middleware *mw, const scache_request *req);
/* A summary line of the period that ends now, then a new period. force: even if no
 * request was served in it. */
void efficiency_summary(scache_middleware *mw, int force);
/* A warning line {"type":"warning","time":...,"msg":...}. */
void efficiency_warning(scache_middleware *mw, const char *msg);
/* Count a completed poll into totals and period. */
void efficiency_poll_done(scache_middleware *mw, const scache_poll_info *info, scache_err err);

#endif
