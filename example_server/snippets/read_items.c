/* README: "Read items from the cache". scache_get for a plain lookup, or
 * scache_get_or_load to read aside in one call (one load per ID at a time: concurrent
 * misses wait for it instead of stampeding the database). */
#include <scache/scache.h>

#include <stdlib.h>
#include <string.h>

#include "snippets.h"

/* A plain lookup: the value stays valid until released. */
int user_is_cached(const char *id)
{
	scache_value v;
	if (scache_get(scache_request_current(), "db.users.id", id, &v) != SCACHE_OK)
		return 0; /* SCACHE_ENOTFOUND: a miss; SCACHE_EBYPASS: the stream is stale */
	int cached = v.len > 0;
	scache_value_release(&v);
	return cached;
}

static scache_err load_user(void *arg, void **value, size_t *len)
{
	char *json = db_load_user_json(arg);
	if (!json)
		return SCACHE_ENOTFOUND; /* nothing is cached for absent users */
	*value = json;
	*len = strlen(json);
	return SCACHE_OK;
}

/* Read-aside in one call; the caller frees the result. */
char *get_user(const char *id, int *hit)
{
	void *value;
	size_t len;
	scache_outcome how;
	if (scache_get_or_load(scache_request_current(), "db.users.id", id, load_user, (void *)id,
	                       &value, &len, &how) != SCACHE_OK)
		return NULL;
	*hit = how == SCACHE_OUTCOME_HIT;
	char *s = realloc(value, len + 1); /* a NUL-terminated copy for the caller */
	if (!s) {
		free(value);
		return NULL;
	}
	s[len] = '\0';
	return s;
}
