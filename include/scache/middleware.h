/*
 * The libmicrohttpd middleware: wraps an application's MHD_AccessHandlerCallback so that
 * every request first sees the cache as fresh as the invalidation stream allows, gives
 * handlers a per-request cache context (scache_get / scache_add / scache_get_or_load /
 * scache_invalidate), and writes one efficiency line per request (time spent on the
 * stream against time saved by hits).
 *
 * Usage (the README shows it whole):
 *
 *     scache_middleware_config mc = {.cache = cache, .stream = &stream,
 *                                    .handler = &my_handler, .handler_cls = my_app};
 *     scache_middleware *mw;
 *     if (scache_middleware_new(&mc, &mw, err, sizeof err) != SCACHE_OK) ...
 *     d = scache_mhd_start(mw, MHD_USE_AUTO_INTERNAL_THREAD, port,
 *                          MHD_OPTION_THREAD_POOL_SIZE, 8u, MHD_OPTION_END);
 *     ...
 *     scache_middleware_shutdown(mw); // with .suspend: resume parked requests
 *     MHD_stop_daemon(d);             // then: no request may be in flight at free
 *     scache_middleware_free(mw);
 *
 * Inside my_handler, scache_request_current() (or scache_request_of(mw, connection))
 * returns the request's context. my_handler keeps its own req_cls exactly as if it were
 * called directly, and the application's completion callback (config.completed) is
 * called with that same req_cls.
 *
 * Drain policy. A request waits for the stream only when it uses the cache: the wait
 * happens in its first scache_get, scache_get_or_load (scache_dynamodb_get_item too) or
 * scache_add, so a request that never does (a write, a 404, /metrics) never waits. With
 * .suspend the drain of requests that use the cache (config.uses_cache; by default GET
 * and HEAD) is eager instead, on the first callback before the handler runs: parking
 * needs the handler not to have run yet (see .suspend); the others drain lazily. Either
 * way:
 *  - strict (poll_interval_ms == 0, the default, scache's semantics): the request waits
 *    for a poll of the stream that *began after it arrived* (its arrival, not its first
 *    lookup: a poll begun in between is used without waiting again); concurrent
 *    requests share the poll in flight, so Kinesis calls grow with time, not with
 *    requests;
 *  - bounded staleness (poll_interval_ms > 0): a poll that began at most poll_interval_ms
 *    before the request arrived is good enough, and a background thread keeps polls going
 *    every poll_interval_ms so that requests rarely wait.
 *  - when the cache is empty there is nothing to evict, so the request does not wait, but
 *    a poll is still started so stream positions keep moving.
 *  - polls start at most max_polls_per_second times a second (per shard: one poll reads
 *    every shard once) and back off when the service throttles or fails.
 *  - when no poll has succeeded for max_staleness_ms, the cache is bypassed (gets miss,
 *    adds are refused with SCACHE_EBYPASS) and a warning is logged once per episode;
 *    caching resumes by itself after the next successful poll. A gap reported by the
 *    reader flushes the cache. No wait is longer than max_staleness_ms.
 *
 * One poller thread per middleware does all polls; requests only wait on it.
 */
#ifndef SCACHE_MIDDLEWARE_H
#define SCACHE_MIDDLEWARE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "cache.h"
#include "error.h"
#include "source.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct scache_middleware scache_middleware;
typedef struct scache_request scache_request;

/* Receives one log line: a JSON object, without the trailing newline, NUL-terminated at
 * line[len]. Called from request threads and the poller thread, one call at a time per
 * middleware (the middleware serializes its sink with a lock of its own, taken with no
 * other middleware lock held). The sink may call scache_middleware_stats_get and
 * scache_middleware_metrics; it must not call any other function of this middleware
 * (they may log, and the sink's lock is not recursive: that call would deadlock). */
typedef void (*scache_log_fn)(void *arg, const char *line, size_t len);

/*
 * Configuration. Zero-initialise it; a zero field means the default in brackets.
 * Pointers are borrowed (but source, which the middleware takes): cache, stream (its
 * strings are copied), handler_cls and completed_cls must outlive the middleware.
 */
typedef struct scache_middleware_config {
	scache_cache *cache;                /* required; the application creates and frees it */
	const scache_stream_config *stream; /* the Kinesis stream (stream.h), unless .source
	                                       is set (see below) */
	scache_start_at start_at;           /* [SCACHE_START_LATEST] where its reader starts */

	MHD_AccessHandlerCallback handler; /* required: the application's handler */
	void *handler_cls;
	MHD_RequestCompletedCallback completed; /* optional: chained after the middleware's */
	void *completed_cls;

	uint64_t poll_interval_ms;     /* [0 = strict] > 0: bounded staleness, see above;
	                                  at most max_staleness_ms (larger is taken as it) */
	unsigned max_polls_per_second; /* [5] poll budget; AWS allows 5/s per shard for all
	                                  readers of that shard together */
	uint64_t max_staleness_ms;     /* [10000] bypass the cache when no poll succeeded
	                                  for this long; also the longest a request waits */
	uint64_t idle_poll_ms;         /* [60000] poll at least this often when idle, so
	                                  iterators (valid 5 min) stay alive */
	unsigned sweep_budget;         /* [32] entries examined per request by the
	                                  amortized expiry (scache_cache_sweep, run by one
	                                  request in 16 with 16 times this budget) */
	int suspend;                   /* [0] 1: a request that must wait for the stream is
	                                  parked with MHD_suspend_connection() instead of
	                                  holding its thread, so a thread pool is not capped
	                                  at threads x max_polls_per_second requests a second.
	                                  The daemon needs MHD_ALLOW_SUSPEND_RESUME:
	                                  scache_mhd_start adds it. On a daemon started
	                                  without it (libmicrohttpd would abort), requests
	                                  wait holding their thread instead, and one warning
	                                  says so. Not needed with
	                                  MHD_USE_THREAD_PER_CONNECTION. */

	scache_log_fn log; /* [NULL: stderr] sink of the JSON lines */
	void *log_arg;
	int quiet_requests;          /* [0] 1: no per-request lines (summaries and
	                                warnings still go to the sink) */
	unsigned summary_interval_s; /* [60] seconds between summary lines */
	uint64_t load_wait_ms;       /* [1000] longest scache_get_or_load waits for another
	                                request's load of the same ID; then it runs its own
	                                loader (a hung loader never blocks the others) */
	scache_source *source;       /* [NULL: a Kinesis polling source made from stream and
	                                start_at] where invalidations come from (source.h). The
	                                middleware owns it from scache_middleware_new on, also
	                                when that fails, and frees it with itself. */
	const char *log_file;        /* [NULL] a file the lines go to instead of stderr: opened
	                                (created 0644) in append mode by scache_middleware_new,
	                                written in batches of whole lines (log_sink.c), reopened by
	                                scache_middleware_reopen_log (rotation). Not with .log
	                                (ECONFIG). The path is copied. */
	unsigned request_sample;     /* [0 or 1: every request] N > 1: write the request line
	                                of 1 request in N (a counter: the 1st, the N+1th, ...;
	                                the line then carries "sample":N). Every request is
	                                still counted; summaries and warnings always go out. */
	uint64_t startup_timeout_ms; /* [3000] longest scache_middleware_new waits for the
	                                Kinesis stream (config.stream): a stream that has not
	                                answered by then is reached in the background, the
	                                middleware starting bypassed (see below). Not used
	                                with .source (created by the caller). */
	int require_stream;          /* [0] 1: a stream that does not exist fails
	                                scache_middleware_new with SCACHE_ESERVICE (errbuf:
	                                the AWS error, ResourceNotFoundException), instead of
	                                starting bypassed until it is created. Only what the
	                                stream answers within startup_timeout_ms counts: one
	                                that cannot be reached still starts bypassed. With
	                                config.stream only. */
	/* [NULL: GET and HEAD] With .suspend: whether a request uses the cache, so is parked
	 * for the stream before its handler runs (the eager drain). The others go straight
	 * to their handler and, should they look up the cache after all, wait for the stream
	 * there, holding their thread (the lazy drain): correct either way, only a parked
	 * wait is cheaper. Called once per request, from the request's thread. */
	int (*uses_cache)(void *cls, const char *method, const char *url);
	void *uses_cache_cls;
} scache_middleware_config;

/*
 * scache_middleware_new: validate the configuration, take config.source or create the
 * Kinesis source from config.stream (its reader lists the shards now, for at most
 * config.startup_timeout_ms), and start the poller thread. On SCACHE_OK *out owns the
 * middleware. On failure errbuf (may be NULL) receives a message naming what is wrong
 * (never a credential). Errors: SCACHE_EINVAL (out NULL), SCACHE_ECONFIG (no cache or
 * handler, no source nor stream name, no region or credentials, a bad endpoint),
 * SCACHE_ESERVICE (config.require_stream and the stream does not exist), SCACHE_ENOMEM.
 * Any thread.
 *
 * It never waits on the stream longer than config.startup_timeout_ms (default 3 s): a
 * stream that has not answered by then (an endpoint that accepts connections and never
 * answers) is reached in the background, as an unreachable one. Configuration errors are
 * found without any call, so they still fail at once. To wait until caching works, call
 * scache_middleware_wait_ready.
 *
 * A source that cannot be read at startup is not an error. For the Kinesis source: unreachable,
 * throttled, or not found (ResourceNotFoundException: it may be created later), the middleware
 * starts with the cache bypassed (gets miss, adds are refused with SCACHE_EBYPASS), logs one
 * warning naming the cause, and the poller keeps trying to create the reader, with the
 * failure back-off and within max_polls_per_second, until it succeeds; caching then
 * works normally. A reader created that late starts at LATEST whatever start_at says:
 * nothing was cached meanwhile, so no older record can concern the cache.
 * scache_invalidate meanwhile removes locally and returns the publishing error.
 */
SCACHE_EXTERN scache_err scache_middleware_new(const scache_middleware_config *config,
                                               scache_middleware **out, char *errbuf,
                                               size_t errlen);

/*
 * scache_middleware_wait_ready: wait up to timeout_ms until the source is positioned and
 * a poll of it has succeeded, with the cache in use (not bypassed): SCACHE_OK. Otherwise
 * SCACHE_ETIMEOUT, and errbuf (may be NULL) receives why: the newest poll's error (e.g.
 * the AWS error, or a timeout), or why the stream could not be read at startup. Does not
 * change what requests do meanwhile (they are served bypassed). SCACHE_EINVAL (mw NULL).
 * Any thread.
 */
SCACHE_EXTERN scache_err scache_middleware_wait_ready(scache_middleware *mw, uint64_t timeout_ms,
                                                      char *errbuf, size_t errlen);

/*
 * scache_middleware_shutdown: with config.suspend, call it before MHD_stop_daemon():
 * libmicrohttpd 0.9.x aborts when a daemon stops with suspended connections. It resumes
 * every parked request (they go on without waiting further), stops parking new ones, and
 * returns once libmicrohttpd has taken them all back (at most 10 s; with external select,
 * keep calling MHD_run meanwhile, e.g. from another thread). Harmless without suspend.
 */
SCACHE_EXTERN void scache_middleware_shutdown(scache_middleware *mw);

/*
 * scache_middleware_free: stop the poller, write a last summary line if requests were
 * served since the previous one, and free the reader, the publisher and all state (not
 * the cache). Accepts NULL. Stop the MHD daemon first: no request may be in flight.
 */
SCACHE_EXTERN void scache_middleware_free(scache_middleware *mw);

/*
 * scache_middleware_reopen_log: close and reopen config.log_file by its path, for log
 * rotation (rename the file, then call this: later lines go to a new file of that name).
 * The new file is opened before the old one is closed, and lines written meanwhile go to
 * one of the two, whole. If it cannot be opened, lines keep going to the old file, a
 * warning line there names the error, and SCACHE_EIO is returned. SCACHE_OK and nothing
 * done without config.log_file; SCACHE_EINVAL for NULL. Any thread, but not from a
 * signal handler (it takes a lock): the library installs no signal handler. For SIGHUP,
 * let a thread of yours wait for it (sigwait) or be woken by your handler, and call this.
 */
SCACHE_EXTERN scache_err scache_middleware_reopen_log(scache_middleware *mw);

/*
 * scache_mhd_start: MHD_start_daemon() wired to the middleware: scache_access_handler
 * and MHD_OPTION_NOTIFY_COMPLETED with scache_request_completed, both with mw as closure,
 * and MHD_ALLOW_SUSPEND_RESUME added to flags when config.suspend is set. flags and port
 * (0-65535, 0: any; an unsigned int so that it can precede "...") are MHD_start_daemon's;
 * after port come further MHD options, as for MHD_start_daemon, ending with
 * MHD_OPTION_END (MHD_OPTION_ARRAY included); no accept policy callback (start by hand for
 * one). Returns the daemon, or NULL after a warning line through the middleware's log
 * sink naming the problem:
 *  - mw NULL (no line then); port above 65535;
 *  - an MHD_OPTION_NOTIFY_COMPLETED among the options: put your completion callback in
 *    config.completed, the middleware chains it;
 *  - MHD_OPTION_THREAD_POOL_SIZE > 1 without MHD_USE_INTERNAL_POLLING_THREAD or with
 *    MHD_USE_THREAD_PER_CONNECTION;
 *  - an option libmicrohttpd 0.9.75 does not define (its arguments cannot be skipped);
 *  - MHD_start_daemon itself failing (port in use, flags it refuses; errno is named).
 * It starts the daemon but warns (one line) when its configuration serialises the waits
 * for the stream: strict mode (poll_interval_ms 0), no config.suspend, and one thread
 * serving connections (an internal polling thread without a pool, or no internal thread):
 * a request that finds anything cached then waits for the next poll while no other
 * request is served, about max_polls_per_second requests a second in all.
 * Stop as before: scache_middleware_shutdown(mw), MHD_stop_daemon(d),
 * scache_middleware_free(mw). Any thread; mw must outlive the daemon.
 */
SCACHE_EXTERN struct MHD_Daemon *scache_mhd_start(scache_middleware *mw, unsigned int flags,
                                                  unsigned int port, ...);
/* scache_mhd_start with the options in a va_list (consumed; the caller va_end()s it). */
SCACHE_EXTERN struct MHD_Daemon *scache_mhd_start_va(scache_middleware *mw, unsigned int flags,
                                                     unsigned int port, va_list options);

/*
 * The two functions to give MHD_start_daemon by hand (scache_mhd_start does it), both
 * with the middleware as closure:
 * scache_access_handler as the access handler (cls = mw) and scache_request_completed
 * with MHD_OPTION_NOTIFY_COMPLETED (cls = mw). The completion callback writes the
 * request's efficiency line, calls config.completed with the application's req_cls, and
 * frees the per-request state; requests aborted by the client are freed the same way.
 * Work with every MHD thread mode (internal polling thread, thread pool,
 * thread-per-connection, external select). A daemon started without the completion
 * callback is noticed at the second request of a connection: one warning line, and the
 * state of a request never completed is freed then (and at scache_middleware_free), but
 * its request line is never written.
 */
SCACHE_EXTERN enum MHD_Result scache_access_handler(void *cls, struct MHD_Connection *connection,
                                                    const char *url, const char *method,
                                                    const char *version, const char *upload_data,
                                                    size_t *upload_data_size, void **req_cls);
SCACHE_EXTERN void scache_request_completed(void *cls, struct MHD_Connection *connection,
                                            void **req_cls, enum MHD_RequestTerminationCode toe);

/* ---- The request context ----------------------------------------------------- */

/*
 * scache_request_current: the context of the request whose handler is running in this
 * thread, or NULL outside a handler called by the middleware. The pointer is valid until
 * the request completes.
 */
SCACHE_EXTERN scache_request *scache_request_current(void);

/*
 * scache_request_of: the context of the request in progress on `connection`, from any
 * thread (e.g. a worker finishing a suspended connection), or NULL. Valid until the
 * request completes.
 */
SCACHE_EXTERN scache_request *scache_request_of(scache_middleware *mw,
                                                struct MHD_Connection *connection);

/* scache_request_middleware: the middleware a request belongs to. */
SCACHE_EXTERN scache_middleware *scache_request_middleware(scache_request *req);

/* scache_request_bypass: 1 if the cache is bypassed for this request (stream stale).
 * Before the request's first scache_get / scache_get_or_load / scache_add (without
 * .suspend the drain waits for them) it tells only what was known when the handler
 * started (an outage); after, what the request's drain found too. */
SCACHE_EXTERN int scache_request_bypass(const scache_request *req);

/*
 * scache_queue_response: exactly MHD_queue_response(), kept for compatibility. The
 * request line's status is read from libmicrohttpd at completion
 * (MHD_CONNECTION_INFO_HTTP_STATUS) whichever of the two the handler called; it is 0
 * only when no response was queued (e.g. the client went away first).
 */
SCACHE_EXTERN enum MHD_Result scache_queue_response(struct MHD_Connection *connection,
                                                    unsigned int status,
                                                    struct MHD_Response *response);

/* ---- Helpers for handlers ---------------------------------------------------- */
/*
 * IDs are (source, id) pairs of NUL-terminated strings, encoded as data IDs (id.h).
 * All helpers may be called from any thread while the request is in progress, but not
 * concurrently on the same request.
 */

/*
 * scache_get: look (source, id) up. SCACHE_OK: a hit, *out holds the value (release it
 * with scache_value_release()) and its saved time is added to the request's tally.
 * SCACHE_ENOTFOUND: a miss (*out zeroed). SCACHE_EBYPASS: the cache is bypassed (counts
 * as a miss of the request). SCACHE_EINVAL, SCACHE_ENOMEM.
 */
SCACHE_EXTERN scache_err scache_get(scache_request *req, const char *source, const char *id,
                                    scache_value *out);

/*
 * scache_add: cache value (len bytes, copied) under (source, id); each later hit saves
 * saved_ns. The load is taken to have begun when the handler started, so an add of data
 * read in this handler is refused with SCACHE_ESTALE when an invalidation of that ID was
 * applied since. Like a lookup it first waits for the request's drain (strict mode: a
 * request that could not see the stream does not add). Errors: SCACHE_ESTALE,
 * SCACHE_EBYPASS, SCACHE_ETOOBIG, SCACHE_EINVAL, SCACHE_ENOMEM. A refused add changes
 * nothing.
 */
SCACHE_EXTERN scache_err scache_add(scache_request *req, const char *source, const char *id,
                                    const void *value, size_t len, uint64_t saved_ns);

/*
 * A loader for scache_get_or_load: read the data of the ID and return it in *value, a
 * malloc()ed buffer of *len bytes whose ownership passes to the caller. Return SCACHE_OK,
 * or SCACHE_ENOTFOUND when the data does not exist (nothing is cached), or any other
 * error (returned to the caller as is, nothing cached).
 */
typedef scache_err (*scache_loader_fn)(void *arg, void **value, size_t *len);

/* How scache_get_or_load obtained the value. */
typedef enum scache_outcome {
	SCACHE_OUTCOME_MISS = 0,  /* loaded (by this call or by a concurrent one it waited for) */
	SCACHE_OUTCOME_HIT = 1,   /* from the cache */
	SCACHE_OUTCOME_BYPASS = 2 /* loaded; the cache is bypassed (stream stale) */
} scache_outcome;

/*
 * scache_get_or_load: read-aside in one call. On a hit, *value is a malloc()ed copy.
 * On a miss the loader runs, timed (its duration is the entry's saved time), and its
 * result is added (unless stale or bypassed) and returned. Only one loader runs per ID
 * at a time in this middleware: concurrent misses wait for it and share its result,
 * unless that result could be stale for them (an invalidation they applied came after
 * its load began), in which case they load again; a waiter waits at most
 * config.load_wait_ms, then runs its own loader. On SCACHE_OK the caller owns *value
 * (free() it; may be NULL when *len is 0); *outcome (may be NULL) says how.
 * Errors: the loader's (SCACHE_ENOTFOUND included), SCACHE_EINVAL, SCACHE_ENOMEM.
 */
SCACHE_EXTERN scache_err scache_get_or_load(scache_request *req, const char *source, const char *id,
                                            scache_loader_fn loader, void *loader_arg, void **value,
                                            size_t *len, scache_outcome *outcome);

/*
 * scache_invalidate: announce that the data of (source, id) changed: remove it locally
 * at once (adds of loads that began before are refused from now on), then publish the
 * invalidation to the stream (every instance, this one included, removes it). If
 * publishing fails the publish error is returned (SCACHE_EPUBLISH, SCACHE_ETRANSPORT,
 * ...): never success for an invalidation other instances will not see. Call it after
 * the change is committed.
 */
SCACHE_EXTERN scache_err scache_invalidate(scache_request *req, const char *source, const char *id);

/* scache_invalidate_many: scache_invalidate() of n IDs (sources[i], ids[i]) in as few
 * records as the stream allows. */
SCACHE_EXTERN scache_err scache_invalidate_many(scache_request *req, const char *const *sources,
                                                const char *const *ids, size_t n);

/* The same two without a request (from a background job); any thread. */
SCACHE_EXTERN scache_err scache_middleware_invalidate(scache_middleware *mw,
                                                      const char *const *sources,
                                                      const char *const *ids, size_t n);

/*
 * scache_invalidate_why and scache_middleware_invalidate_why: scache_invalidate and
 * scache_middleware_invalidate (n IDs), and on failure errbuf (may be NULL; errlen bytes)
 * receives the reason: for a failed publish the service's, e.g. "PutRecords at
 * https://...: ResourceNotFoundException: Stream orders ... not found (HTTP 400)", the
 * same text the warning line carries; an empty string on SCACHE_OK. Same errors, same
 * threads.
 */
SCACHE_EXTERN scache_err scache_invalidate_why(scache_request *req, const char *source,
                                               const char *id, char *errbuf, size_t errlen);
SCACHE_EXTERN scache_err scache_middleware_invalidate_why(scache_middleware *mw,
                                                          const char *const *sources,
                                                          const char *const *ids, size_t n,
                                                          char *errbuf, size_t errlen);

/* ---- Metrics ----------------------------------------------------------------- */

/* Counters of a middleware since creation (entries, bytes, staleness: current). */
typedef struct scache_middleware_stats {
	scache_cache_stats cache;
	uint64_t requests;        /* requests completed */
	uint64_t bypass_requests; /* requests served with the cache bypassed */
	uint64_t request_hits;    /* hits/misses counted through the request helpers */
	uint64_t request_misses;
	uint64_t polls; /* polls completed */
	uint64_t poll_errors;
	uint64_t throttled_polls; /* polls the service throttled (the rate backed off) */
	uint64_t source_calls;    /* calls polls made to the source's service (HTTP) */
	uint64_t gaps;            /* gaps reported (each flushed the cache) */
	uint64_t keys_applied;    /* invalidated keys received from the stream (refreshes too) */
	uint64_t refreshed;       /* new values received from the stream (DynamoDB change
	                             records in refresh mode) that replaced the entry; a
	                             value the cache refused only invalidated it */
	uint64_t published_keys;  /* keys published by scache_invalidate* */
	uint64_t publish_errors;  /* scache_invalidate* calls whose publish failed */
	uint64_t stream_ns;       /* time requests spent waiting for the drain */
	uint64_t saved_ns;        /* saved time of the hits of requests */
	uint64_t staleness_ns;    /* now - start of the newest successful poll */
	int bypassing;            /* 1 during a staleness episode */
} scache_middleware_stats;

/* scache_middleware_stats_get: a snapshot of the counters into *out (the cache's from
 * scache_cache_stats_get). Any thread, while requests run. */
SCACHE_EXTERN void scache_middleware_stats_get(scache_middleware *mw, scache_middleware_stats *out);

/*
 * scache_middleware_metrics: the stats as Prometheus text exposition (version 0.0.4),
 * every metric prefixed "scache_", with HELP and TYPE lines. On SCACHE_OK *out owns a
 * NUL-terminated buffer (free() it) of *len bytes (len may be NULL). SCACHE_ENOMEM.
 */
SCACHE_EXTERN scache_err scache_middleware_metrics(scache_middleware *mw, char **out, size_t *len);

/* ---- More helpers: lifetimes, batches, X-Cache ----------------------------------- */
/*
 * Every helper above and below returns SCACHE_ENOREQUEST when req is NULL (e.g.
 * scache_request_current() outside a handler the middleware runs).
 */

/*
 * scache_add_ttl: scache_add() with this entry's own lifetime: it expires at a uniformly
 * random time between min_ttl_ms and max_ttl_ms from now (equal for an exact lifetime);
 * both 0: the cache's window. Errors: those of scache_add, and SCACHE_EINVAL for a bad
 * window (one of them 0, or min > max).
 */
SCACHE_EXTERN scache_err scache_add_ttl(scache_request *req, const char *source, const char *id,
                                        const void *value, size_t len, uint64_t saved_ns,
                                        uint64_t min_ttl_ms, uint64_t max_ttl_ms);

/*
 * scache_get_or_load_ttl: scache_get_or_load() whose added entry lives exactly *ttl_ms
 * (ttl_ms NULL or *ttl_ms 0: the cache's window). *ttl_ms is read after the loader
 * returns, so a loader given the same pointer (through loader_arg) may choose the
 * lifetime from what it read. Negative caching, opt-in: a loader that finds no row may
 * return SCACHE_OK with a marker value of its choosing (e.g. empty) and a short *ttl_ms,
 * and the handler answers 404 for the marker. (scache_dynamodb_get does this itself
 * with its negative_ttl_ms setting; dynamodb.h.) Errors: those of scache_get_or_load.
 */
SCACHE_EXTERN scache_err scache_get_or_load_ttl(scache_request *req, const char *source,
                                                const char *id, scache_loader_fn loader,
                                                void *loader_arg, const uint64_t *ttl_ms,
                                                void **value, size_t *len, scache_outcome *outcome);

/*
 * scache_get_many: scache_get() of n IDs (sources[i], ids[i]). On SCACHE_OK errs[i] says
 * how each went: SCACHE_OK (a hit: out[i] holds the value, release it), SCACHE_ENOTFOUND
 * or SCACHE_EBYPASS (out[i] zeroed). Any other failure (SCACHE_EINVAL for a NULL string,
 * SCACHE_ENOMEM) is returned for the whole call: every out[i] is then zeroed, nothing to
 * release. Errors: SCACHE_EINVAL (n > 0 and a NULL array), SCACHE_ENOREQUEST.
 */
SCACHE_EXTERN scache_err scache_get_many(scache_request *req, const char *const *sources,
                                         const char *const *ids, size_t n, scache_value *out,
                                         scache_err *errs);

/*
 * scache_response_add_xcache: add the header "X-Cache: HIT", "MISS" or "BYPASS" for
 * outcome to response (an scache_get_or_load outcome; after scache_get: HIT on SCACHE_OK,
 * BYPASS on SCACHE_EBYPASS, else MISS). Returns MHD_add_response_header's result, MHD_NO
 * for a NULL response or an unknown outcome. Any thread.
 */
SCACHE_EXTERN enum MHD_Result scache_response_add_xcache(struct MHD_Response *response,
                                                         scache_outcome outcome);

#ifdef __cplusplus
}
#endif
#endif
