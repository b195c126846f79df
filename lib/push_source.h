/*
 * push_source.h: private interface of the Kinesis push source (lib/push_source.c):
 * creation with options the public scache_kinesis_push_source_new keeps at their
 * defaults, for tests (a subscription shorter than AWS's 5 minutes, HTTP/1.1) and
 * tools.
 */
#ifndef SCACHE_PUSH_SOURCE_H
#define SCACHE_PUSH_SOURCE_H

#include <stdint.h>

#include "kinesis_push.h"
#include "scache/source.h"
#include "scache/stream.h"

/* AWS ends a subscription after 5 minutes: the source renews each one before that. */
#define PUSH_SUBSCRIPTION_MS (5u * 60u * 1000u - 15000u)

typedef struct push_opts {
	uint64_t startup_ms;         /* [3000] bound of the wait for positioning at creation */
	unsigned subscription_ms;    /* [PUSH_SUBSCRIPTION_MS] renew a subscription this old */
	unsigned silence_ms;         /* [30000] drop a subscription silent this long */
	push_http http;              /* [PUSH_HTTP2] */
	unsigned resource_in_use_ms; /* [5200] wait after a successful call before another
	                                of the same shard (AWS: ResourceInUseException
	                                within 5 s) */
} push_opts;

/* push_source_create: scache_kinesis_push_source_new with options (NULL: defaults). */
scache_err push_source_create(const scache_stream_config *config, const scache_push_config *push,
                              scache_start_at start, const push_opts *opts, scache_source **out,
                              char *errbuf, size_t errlen);

/* Test hook: cut every subscription now, as a dropped connection would (each is
 * resubscribed from its position). Returns how many were cut. */
unsigned push_test_cut(scache_source *source);

#endif
