/* README: "Announce changes". After the change is committed, invalidate the ID: it is
 * published on the stream (every instance drops it before its next request) and removed
 * here at once. A publish failure still removes it here, and is reported. */
#include <scache/scache.h>

#include <stdio.h>

#include "snippets.h"

int rename_user(const char *id, const char *name)
{
	if (db_update_user_name(id, name) != 0) /* your database write, committed */
		return -1;
	scache_err err = scache_invalidate(scache_request_current(), "db.users.id", id);
	if (err != SCACHE_OK) {
		/* other instances may serve the old name until their entries expire */
		fprintf(stderr, "invalidation of user %s not published: %s\n", id,
		        scache_strerror(err));
		return -1;
	}
	return 0;
}
