/*
 * source_internal.h: what the library's own files call on a source (lib/source.c)
 * beyond the public scache/source.h.
 */
#ifndef SCACHE_SOURCE_INTERNAL_H
#define SCACHE_SOURCE_INTERNAL_H

#include "scache/source.h"
#include "scache/stream.h"

#include <stdint.h>

/* Publish through the source; errbuf (may be NULL) gets the reason of a failure. */
scache_err source_publish(scache_source *source, const char *const *keys, const size_t *lens,
                          size_t n, char *errbuf, size_t errlen);

/*
 * kinesis_source_create: scache_kinesis_source_new, waiting at most startup_ms for the
 * stream (scache_kinesis_source_new waits 3000): a reader not created by then goes on
 * being created in the background, and the source is unavailable until a sync adopts
 * it. require_stream: a stream the service says does not exist (ResourceNotFoundException)
 * fails with SCACHE_ESERVICE and that error in errbuf, instead of an unavailable source.
 */
scache_err kinesis_source_create(const scache_stream_config *config, scache_start_at start,
                                 uint64_t startup_ms, int require_stream, scache_source **out,
                                 char *errbuf, size_t errlen);

/* NULL when the source was positioned at creation; else why not (read once). */
const char *source_unavailable(scache_source *source);

#endif
