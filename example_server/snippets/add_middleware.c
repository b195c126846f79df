/* README: "Add the middleware". Wrap your libmicrohttpd handler; every request then sees
 * the cache as fresh as the invalidation stream allows. */
#include <scache/scache.h>

#include <microhttpd.h>
#include <stdio.h>
#include <sys/resource.h>

#include "snippets.h"

struct MHD_Daemon *start_users_service(uint16_t port, MHD_AccessHandlerCallback my_handler,
                                       void *my_app, scache_cache **cache_out,
                                       scache_middleware **mw_out)
{
	/* The cache: entries live 1 to 5 minutes (random, so they do not expire together). */
	scache_cache_config cc = {.min_ttl_ms = 60000, .max_ttl_ms = 300000};
	scache_cache *cache;
	if (scache_cache_new(&cc, &cache) != SCACHE_OK)
		return NULL;

	/* The stream; region, endpoint and keys come from the AWS environment. */
	scache_stream_config stream = {.stream_name = "users"};
	scache_middleware_config mc = {
	    .cache = cache,
	    .stream = &stream,
	    .handler = my_handler, /* your handler, with its own closure and req_cls */
	    .handler_cls = my_app,
	    .suspend = 1, /* a request waiting for the stream is parked, not holding a thread */
	    /* .poll_interval_ms = 400,  bounded staleness for a fleet on AWS (N x 200 ms) */
	    /* .log_file = "/var/log/users/scache.log", .request_sample = 10, */
	};
	scache_middleware *mw;
	char err[256];
	if (scache_middleware_new(&mc, &mw, err, sizeof err) != SCACHE_OK) {
		fprintf(stderr, "scache: %s\n", err);
		scache_cache_free(cache);
		return NULL;
	}

	/* Each connection holds a file descriptor: raise the soft limit to the hard one (if
	 * that fails, keep the soft one), and leave 64 to the rest of the process. */
	struct rlimit rl = {.rlim_cur = 1024};
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	unsigned max_conn = rl.rlim_cur > 4096 + 64 ? 4096 : (unsigned)rl.rlim_cur - 64;

	/* scache_mhd_start gives MHD the middleware's callbacks and flags (a warning line says
	 * why if it refuses). MHD_USE_AUTO polls with epoll (select() stops at 1,024
	 * descriptors); a pool of threads runs handlers side by side while waits for the
	 * stream stay parked; a connection limit and an idle timeout keep idle clients from
	 * taking every connection. */
	struct MHD_Daemon *d = scache_mhd_start(
	    mw, MHD_USE_AUTO_INTERNAL_THREAD, port, /* epoll, threads of MHD's own */
	    MHD_OPTION_THREAD_POOL_SIZE, 4u,        /* threads */
	    MHD_OPTION_CONNECTION_LIMIT, max_conn,  /* connections */
	    MHD_OPTION_CONNECTION_TIMEOUT, 30u,     /* seconds idle */
	    MHD_OPTION_END);
	if (!d) {
		scache_middleware_free(mw);
		scache_cache_free(cache);
		return NULL;
	}
	*cache_out = cache;
	*mw_out = mw;
	return d; /* at shutdown: scache_middleware_shutdown(mw), MHD_stop_daemon(d),
	             scache_middleware_free(mw),
	             scache_cache_free(cache) -- in that order */
}
