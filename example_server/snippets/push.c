/* README: "Push: Kinesis enhanced fan-out". A middleware fed by push instead of polling:
 * the source is made first and handed over (the middleware owns it from then on, also
 * when its creation fails). Compiled with the other snippets; test_snippets.c does not
 * run it (it needs a stream with enhanced fan-out: tests/test_push_live.c runs the
 * source against kinesis-mock). */
#include <scache/scache.h>

#include <stdio.h>

#include "snippets.h"

scache_middleware *start_with_push(scache_cache *cache, MHD_AccessHandlerCallback handler)
{
	scache_stream_config stream = {.stream_name = "users"};     /* as for polling */
	scache_push_config push = {.consumer_name = "users-api-3"}; /* unique per instance */
	scache_source *src;
	char err[256];
	if (scache_kinesis_push_source_new(&stream, &push, SCACHE_START_LATEST, &src, err,
	                                   sizeof err) != SCACHE_OK) {
		fprintf(stderr, "push source: %s\n", err);
		return NULL;
	}
	scache_middleware_config mc = {
	    .cache = cache, .handler = handler, .source = src, .poll_interval_ms = 200};
	scache_middleware *mw;
	if (scache_middleware_new(&mc, &mw, err, sizeof err) != SCACHE_OK) {
		fprintf(stderr, "middleware: %s\n", err);
		return NULL;
	}
	return mw;
}
