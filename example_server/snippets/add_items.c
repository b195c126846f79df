/* README: "Add items to the cache". Inside a handler: load, time the load, add. The add is
 * refused (SCACHE_ESTALE) if the ID was invalidated while this handler ran, so a slow load
 * can never put old data back. */
#include <scache/scache.h>

#include <stdlib.h>
#include <string.h>

#include "snippets.h"

char *load_and_cache_user(const char *id)
{
	scache_request *req = scache_request_current(); /* this request's cache context */
	uint64_t start = scache_now_ns(NULL);
	char *json = db_load_user_json(id); /* your database read */
	if (!json)
		return NULL;
	uint64_t load_ns = scache_now_ns(NULL) - start; /* what each later hit saves */
	scache_add(req, "db.users.id", id, json, strlen(json), load_ns);
	return json;
}
