/*
 * Data IDs, encoded exactly as the Go library scache encodes its data.ID:
 *
 *     url.Values{"s": source, "id": id, "t": "data.ID"}.Encode()
 *
 * e.g. ("db.table.id", "12345") <-> "id=12345&s=db.table.id&t=data.ID".
 * Values are escaped like Go's url.QueryEscape: A-Z a-z 0-9 - _ . ~ stay, a space
 * becomes '+', every other byte becomes %XX (upper-case hex). The encoded string is
 * the cache key and travels inside invalidation records, so a C service and a Go
 * scache service sharing a stream understand each other.
 *
 * Sources and ids are byte strings with explicit lengths (they may hold any byte,
 * NUL included). All functions here are pure and thread-safe.
 */
#ifndef SCACHE_ID_H
#define SCACHE_ID_H

#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * scache_id_encode: write the data-ID string of (source, id) into buf.
 *
 * Returns the length of the full encoding (without the terminating NUL), like
 * snprintf: when that is >= bufsize the output was truncated (always NUL-terminated
 * when bufsize > 0), so call once with bufsize 0 to learn the size. buf may be NULL
 * when bufsize is 0. source and id may be NULL only when their length is 0.
 */
SCACHE_EXTERN size_t scache_id_encode(const char *source, size_t source_len, const char *id,
                                      size_t id_len, char *buf, size_t bufsize);

/*
 * scache_id_encode_alloc: the data-ID string of (source, id) in a new NUL-terminated
 * buffer. On SCACHE_OK *out owns the buffer (free() it) and *out_len, if not NULL, is
 * its length. Errors: SCACHE_EINVAL (out NULL, or a NULL string with non-zero length),
 * SCACHE_ENOMEM.
 */
SCACHE_EXTERN scache_err scache_id_encode_alloc(const char *source, size_t source_len,
                                                const char *id, size_t id_len, char **out,
                                                size_t *out_len);

/* A parsed data ID. Both strings are NUL-terminated and owned by the struct. */
typedef struct scache_id {
	char *source;
	size_t source_len;
	char *id;
	size_t id_len;
} scache_id;

/*
 * scache_id_parse: parse a data-ID string of `len` bytes into *out.
 *
 * Accepts the pairs in any order, decodes '+' and %XX, ignores unknown pairs (as Go's
 * url.ParseQuery does); a missing "s" or "id" pair is an empty string; a repeated pair
 * keeps its first value (Go's Values.Get). On success *out owns two new strings: release
 * them with scache_id_clear(). On error *out is zeroed.
 * Errors: SCACHE_EINVAL (NULL arguments), SCACHE_EMALFORMED (bad %-escape, or a ';'
 * separator, which Go rejects), SCACHE_ENOTID (no "t=data.ID" pair), SCACHE_ENOMEM.
 */
SCACHE_EXTERN scache_err scache_id_parse(const char *str, size_t len, scache_id *out);

/* scache_id_clear: free the strings of *id and zero it. Accepts NULL and zeroed IDs. */
SCACHE_EXTERN void scache_id_clear(scache_id *id);

#ifdef __cplusplus
}
#endif
#endif
