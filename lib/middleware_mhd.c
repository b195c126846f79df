/*
 * middleware_mhd.c: the libmicrohttpd glue. Wraps the application's access handler:
 * the first call of a request drains (or parks the connection until its poll), every
 * call then runs the application's handler with the request context current on its
 * thread; the completion callback writes the request's log line.
 *
 * The wrapped handler's own req_cls lives in our per-request state; MHD's req_cls slot
 * holds that state. The application's completion callback is chained with a pointer to
 * its own req_cls, so it sees exactly what it would without the middleware. Requests are
 * also registered by connection, so scache_request_of works from any thread.
 *
 * The glue checks what it can of its wiring: a request beginning on a connection whose
 * previous request is still registered means the daemon has no scache_request_completed
 * (warned once; that state is freed then instead of leaking), and config.suspend on a
 * daemon without MHD_ALLOW_SUSPEND_RESUME (libmicrohttpd would abort at the first
 * MHD_suspend_connection) falls back to waiting on the request's thread, warned once.
 * The request line's status is what libmicrohttpd reports at completion, however the
 * handler queued its response. scache_mhd_start (mhd_start.c) wires a daemon right.
 */
#include "middleware_internal.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local scache_request *current_request;

/* ---- MHD glue -------------------------------------------------------------------- */

static void request_free(scache_request *req)
{
	if (!req)
		return;
	free(req->method);
	free(req->path);
	free(req);
}

int mw_warn_once(scache_middleware *mw, unsigned bit)
{
	return !(atomic_fetch_or(&mw->warned, bit) & bit);
}

/* Take a request that was parked (suspended, or resumed and not yet called again) off
 * the poller's books. */
static void request_unpark(scache_middleware *mw, scache_request *req)
{
	if (req->waiting == WAIT_NONE)
		return;
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
	req->waiting = WAIT_NONE;
}

/* The previous request of a connection, which never completed: the daemon runs without
 * scache_request_completed. Chain the application's completion (its req_cls would leak
 * too) and free ours; its line is lost. Called with no lock held. */
static void request_abandoned(scache_middleware *mw, scache_request *old)
{
	if (mw_warn_once(mw, WARNED_NO_COMPLETED))
		efficiency_warning(
		    mw, "a request began on a connection whose previous request never completed: "
		        "the daemon has no completion callback. Start it with scache_mhd_start, or "
		        "give MHD_start_daemon MHD_OPTION_NOTIFY_COMPLETED, "
		        "&scache_request_completed, mw; until then requests write no line and "
		        "each connection's last request is freed only by scache_middleware_free");
	if (mw->cfg.completed)
		mw->cfg.completed(mw->cfg.completed_cls, old->connection, &old->app_req_cls,
		                  MHD_REQUEST_TERMINATED_COMPLETED_OK);
	request_unpark(mw, old);
	request_free(old);
}

void mw_requests_free_all(scache_middleware *mw)
{
	request_entry *e, *tmp;
	HASH_ITER(hh, mw->registry, e, tmp)
	{
		HASH_DEL(mw->registry, e);
		request_free(e->req);
	}
}

/* 1 if the connection's daemon allows MHD_suspend_connection (libmicrohttpd aborts the
 * process otherwise). Thread-pool workers carry their master's flags. */
static int daemon_can_suspend(scache_middleware *mw, struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_DAEMON);
	const union MHD_DaemonInfo *di =
	    ci && ci->daemon ? MHD_get_daemon_info(ci->daemon, MHD_DAEMON_INFO_FLAGS) : NULL;
	if (di && ((unsigned)di->flags & MHD_ALLOW_SUSPEND_RESUME) == MHD_ALLOW_SUSPEND_RESUME)
		return 1;
	if (mw_warn_once(mw, WARNED_NO_SUSPEND))
		efficiency_warning(
		    mw, "config.suspend is set but the daemon was started without "
		        "MHD_ALLOW_SUSPEND_RESUME (libmicrohttpd would abort): requests wait for "
		        "the stream holding their thread instead. Start it with scache_mhd_start, "
		        "or add MHD_ALLOW_SUSPEND_RESUME to its flags");
	return 0;
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
	req->wall_ns = util_wall_ns();
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
	if (old)
		request_abandoned(mw, old->req);
	return req;
}

/* Whether a request is parked for the stream before its handler (with .suspend). */
static int uses_cache(scache_middleware *mw, const char *method, const char *url)
{
	if (mw->cfg.uses_cache)
		return mw->cfg.uses_cache(mw->cfg.uses_cache_cls, method ? method : "",
		                          url ? url : "");
	return method && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
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
		if (!mw->cfg.suspend || !uses_cache(mw, method, url)) {
			/* lazy: the first lookup (or add) waits for the poll (poller.c) */
			mw_drain_defer(mw, req);
		} else if (mw_drain_begin(mw, req)) {
			if (mw->cfg.suspend && daemon_can_suspend(mw, connection) &&
			    mw_park(mw, req))
				return MHD_YES; /* MHD calls us again once resumed: the branch below
				                 */
			uint64_t removed = 0;
			enum drain_result r =
			    mw_wait_for_poll(mw, req->since_ns, req->deadline_ns, &removed);
			mw_drain_finish(mw, req, r, removed);
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
		mw_drain_finish(mw, req, r, removed);
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
	request_unpark(mw, req); /* closed while parked or just resumed */

	/* The response is still the connection's here (MHD frees it after this callback). */
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_HTTP_STATUS);
	req->status = ci ? ci->http_status : 0;

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

/* Kept for compatibility: the status is read from libmicrohttpd at completion. */
enum MHD_Result scache_queue_response(struct MHD_Connection *connection, unsigned int status,
                                      struct MHD_Response *response)
{
	return MHD_queue_response(connection, status, response);
}
