/*
 * source_internal.h: what the library's own files call on a source (lib/source.c)
 * beyond the public scache/source.h.
 */
#ifndef SCACHE_SOURCE_INTERNAL_H
#define SCACHE_SOURCE_INTERNAL_H

#include "scache/source.h"

/* Publish through the source; errbuf (may be NULL) gets the reason of a failure. */
scache_err source_publish(scache_source *source, const char *const *keys, const size_t *lens,
                          size_t n, char *errbuf, size_t errlen);

/* NULL when the source was positioned at creation; else why not (read once). */
const char *source_unavailable(scache_source *source);

#endif
