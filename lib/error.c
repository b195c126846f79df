/*
 * error.c: the one table of error messages. Kept in step with enum scache_err by a
 * static assertion, so a new code without a message does not compile.
 */
#include "scache/error.h"

static const char *const messages[] = {
	[SCACHE_OK] = "success",
	[SCACHE_EINVAL] = "invalid argument",
	[SCACHE_ENOMEM] = "out of memory",
	[SCACHE_ENOTFOUND] = "not found",
	[SCACHE_ENOTID] = "not a data ID (no t=data.ID pair)",
	[SCACHE_EMALFORMED] = "malformed data ID (bad escaping)",
	[SCACHE_ESTALE] = "add refused: the ID was invalidated after its load began",
	[SCACHE_ETOOBIG] = "entry larger than the cache's memory bound allows",
	[SCACHE_EBYPASS] = "cache bypassed: the invalidation stream is staler than its bound",
	[SCACHE_ECONFIG] = "configuration missing or inconsistent",
	[SCACHE_ETRANSPORT] = "HTTP transport failed",
	[SCACHE_ESERVICE] = "the service answered with an error",
	[SCACHE_ETHROTTLED] = "throttled by the service beyond the retry bound",
	[SCACHE_ERECORD] = "malformed record",
	[SCACHE_EPUBLISH] = "some invalidations could not be published",
	[SCACHE_EIO] = "I/O error",
	[SCACHE_ETIMEOUT] = "timed out waiting",
	[SCACHE_ENOREQUEST] = "no current request (called outside a handler the middleware runs?)",
};

_Static_assert(sizeof messages / sizeof messages[0] == SCACHE_ERR_COUNT_,
               "every scache_err needs a message");

const char *scache_strerror(scache_err err)
{
	if ((unsigned)err >= SCACHE_ERR_COUNT_ || !messages[err])
		return "unknown error";
	return messages[err];
}
