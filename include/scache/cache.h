/*
 * The invalidatable cache: a thread-safe map from key bytes (normally a data-ID
 * string, see id.h) to value bytes, with
 *  - random expiry between a minimum and a maximum duration (scache's ExpireBetween),
 *  - the time each entry saves (how long the load it replaced took),
 *  - a memory bound with SIEVE eviction,
 *  - invalidation of one, many or all keys, and
 *  - stale-add protection: an add names the load token it took *before* loading; an add
 *    whose load began before an invalidation of its key (or a flush) was applied is
 *    refused with SCACHE_ESTALE (the idea of memcache leases).
 *
 * Threads: every function may be called from any thread at once, except that
 * scache_cache_free() must not race with any other call on the same cache.
 * Gets take a shared (reader) lock on one of several stripes, so readers do not
 * serialize behind one mutex.
 */
#ifndef SCACHE_CACHE_H
#define SCACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct scache_cache scache_cache;

/* A monotonic clock in nanoseconds. The cache's default reads CLOCK_MONOTONIC_COARSE (see
 * scache_cache_config.clock). */
typedef uint64_t (*scache_clock_fn)(void *arg);

/* scache_now_ns: CLOCK_MONOTONIC in nanoseconds (what the stream and middleware time with). */
SCACHE_EXTERN uint64_t scache_now_ns(void *unused);

/* Which lock guards each stripe. */
typedef enum scache_lock_kind {
	SCACHE_LOCK_RWLOCK = 0, /* pthread reader-writer lock: gets share the stripe */
	SCACHE_LOCK_MUTEX = 1   /* plain mutex: gets serialize per stripe */
} scache_lock_kind;

/*
 * Configuration. Zero-initialise it; a zero field means the default in brackets.
 */
typedef struct scache_cache_config {
	uint64_t min_ttl_ms;   /* [60000] shortest lifetime of an entry */
	uint64_t max_ttl_ms;   /* [300000] longest; min <= max, both > 0 or both 0 */
	size_t max_bytes;      /* [64 MiB] bound on the heap the entries take (the sum of
	                          scache_cache_entry_cost over them) */
	unsigned stripes;      /* [16] lock stripes, rounded up to a power of two, <= 1024 */
	scache_lock_kind lock; /* [SCACHE_LOCK_RWLOCK] */
	uint64_t guard_ms;     /* [60000] how long invalidations are remembered
	                          for stale-add protection; a load slower than this is refused */
	size_t guard_max;      /* [65536] most invalidations remembered; older ones are
	                          forgotten early (adds that began before them are refused) */
	scache_clock_fn clock; /* [CLOCK_MONOTONIC_COARSE, exact to a scheduler tick]
	                          injectable clock, for tests */
	void *clock_arg;
	uint64_t seed; /* [from the clock and address] seed of the expiry randomness */
} scache_cache_config;

/*
 * scache_cache_new: create a cache. config may be NULL (all defaults); it is copied.
 * On SCACHE_OK *out owns the new cache; release it with scache_cache_free().
 * Errors: SCACHE_EINVAL (out NULL; min_ttl_ms > max_ttl_ms; exactly one of them zero;
 * stripes > 1024; unknown lock), SCACHE_ENOMEM.
 */
SCACHE_EXTERN scache_err scache_cache_new(const scache_cache_config *config, scache_cache **out);

/* scache_cache_free: free the cache and every entry. Accepts NULL. Values handed out
 * by scache_cache_get() stay valid until released. */
SCACHE_EXTERN void scache_cache_free(scache_cache *cache);

/*
 * scache_cache_expire_between: change the default expiry window for later adds
 * (scache's ExpireBetween). Errors: SCACHE_EINVAL when min_ms is 0, max_ms is 0, or
 * min_ms > max_ms; the window is then unchanged.
 */
SCACHE_EXTERN scache_err scache_cache_expire_between(scache_cache *cache, uint64_t min_ms,
                                                     uint64_t max_ms);

/*
 * scache_cache_begin_load: take a load token. Call it *before* reading the data you
 * are about to add, and pass it to scache_cache_add(). Tokens increase strictly; 0 is
 * never returned. Lock-free.
 */
SCACHE_EXTERN uint64_t scache_cache_begin_load(scache_cache *cache);

/* Options of one add. Zero-initialise; token is required. */
typedef struct scache_add_opts {
	uint64_t token;      /* from scache_cache_begin_load(), taken before the load */
	uint64_t saved_ns;   /* how long the load took: what each hit of this entry saves */
	uint64_t min_ttl_ms; /* per-add expiry window; both 0 = the cache's window */
	uint64_t max_ttl_ms;
} scache_add_opts;

/*
 * scache_cache_add: copy (key, value) into the cache, replacing any entry of that key.
 * Expires at a uniformly random time in the window. Evicts (SIEVE) until the bound holds.
 * Errors: SCACHE_EINVAL (NULL pointers with non-zero length, zero token, key empty or
 * longer than 65535 bytes, value over 1 GiB, bad per-add window), SCACHE_ESTALE (the key
 * was invalidated, or the cache flushed, after the token was taken, or the
 * token is older than the invalidations still remembered: nothing is added, and any
 * entry of the key stays as it was), SCACHE_ETOOBIG (larger than a stripe's share of
 * max_bytes), SCACHE_ENOMEM.
 */
SCACHE_EXTERN scache_err scache_cache_add(scache_cache *cache, const void *key, size_t key_len,
                                          const void *value, size_t value_len,
                                          const scache_add_opts *opts);

/*
 * A value handed out by a get. data stays valid and unchanged until
 * scache_value_release(), even if another thread replaces, invalidates or evicts the
 * entry meanwhile (the entry is reference counted). Release every value exactly once.
 */
typedef struct scache_value {
	const void *data; /* the bytes, with no particular alignment */
	size_t len;
	uint64_t saved_ns; /* the time this hit saves (from the add) */
	void *ref_;        /* private */
} scache_value;

/*
 * scache_cache_get: look key up. On SCACHE_OK *out holds the value (release it); on
 * SCACHE_ENOTFOUND (absent or expired) *out is zeroed. Counts a hit or a miss.
 * Errors: SCACHE_EINVAL (NULL cache/out, or NULL key with non-zero length).
 */
SCACHE_EXTERN scache_err scache_cache_get(scache_cache *cache, const void *key, size_t key_len,
                                          scache_value *out);

/* scache_value_release: give back a value from scache_cache_get(). Accepts NULL and
 * zeroed values; zeroes *value. Any thread. */
SCACHE_EXTERN void scache_value_release(scache_value *value);

/*
 * scache_cache_invalidate: remove key, and remember the invalidation so that adds whose
 * load began before now are refused. Counts one invalidation whether or not the key was
 * cached. *removed (may be NULL) is set to 1 if an entry was removed, else 0.
 * Errors: SCACHE_EINVAL.
 */
SCACHE_EXTERN scache_err scache_cache_invalidate(scache_cache *cache, const void *key,
                                                 size_t key_len, int *removed);

/*
 * scache_cache_invalidate_many: scache_cache_invalidate() for n keys (keys[i] of
 * lens[i] bytes). *removed (may be NULL) receives the number of entries removed.
 */
SCACHE_EXTERN scache_err scache_cache_invalidate_many(scache_cache *cache, const void *const *keys,
                                                      const size_t *lens, size_t n,
                                                      size_t *removed);

/*
 * scache_cache_invalidate_source: remove every entry whose key is a data ID (id.h) of
 * `source` (source_len bytes; keys that are not data IDs are kept), and refuse every add
 * whose load began before now, of any key (the IDs of a source are not known in
 * advance, so the stale-add guard is a flush's: only stricter). Counts one invalidation
 * per entry removed; *removed (may be NULL) receives their number. O(entries): each key
 * is parsed, under one stripe's lock at a time. Local only: other instances are not
 * told (see the README, "Invalidating a whole source"). Errors: SCACHE_EINVAL (NULL cache,
 * or NULL source with non-zero length).
 */
SCACHE_EXTERN scache_err scache_cache_invalidate_source(scache_cache *cache, const char *source,
                                                        size_t source_len, size_t *removed);

/*
 * scache_cache_flush: remove every entry and refuse every add whose load began before
 * the flush. *removed (may be NULL) receives the number of entries removed.
 */
SCACHE_EXTERN void scache_cache_flush(scache_cache *cache, size_t *removed);

/*
 * scache_cache_sweep: remove expired entries, examining at most `budget` entries that
 * are not yet expired (0: no limit). Expired entries at the old end of each stripe cost
 * O(1) each; the rest are found by an incremental scan that resumes where the last
 * sweep stopped, so a call per request costs O(expired + budget). Busy stripes are
 * skipped (try-lock) rather than waited for. Returns the number of entries removed.
 * A get never returns an expired entry, swept or not.
 */
SCACHE_EXTERN size_t scache_cache_sweep(scache_cache *cache, size_t budget);

/* Counters since creation, except entries and bytes, which are current. */
typedef struct scache_cache_stats {
	uint64_t entries;
	uint64_t bytes; /* keys + values + per-entry overhead, as bounded */
	uint64_t hits;
	uint64_t misses;
	uint64_t adds;          /* accepted adds */
	uint64_t refused_adds;  /* adds refused as stale (SCACHE_ESTALE) */
	uint64_t invalidations; /* keys invalidated (cached or not); a flush counts 0 */
	uint64_t flushes;
	uint64_t expirations; /* expired entries removed (by a sweep, or replaced by an add) */
	uint64_t evictions;   /* entries removed to keep the memory bound */
	uint64_t saved_ns;    /* sum of saved_ns over all hits */
} scache_cache_stats;

/* scache_cache_stats_get: a snapshot of the counters (consistent per stripe). */
SCACHE_EXTERN void scache_cache_stats_get(scache_cache *cache, scache_cache_stats *out);

/* scache_cache_entry_overhead: the size of an entry's header (the part of its one
 * allocation before key and value). */
SCACHE_EXTERN size_t scache_cache_entry_overhead(void);

/* scache_cache_entry_cost: the bytes an entry with this key and value counts against
 * max_bytes: its allocation (header, key, value) as glibc's malloc rounds it, plus its
 * share of the hash table's buckets, so that the bound holds for the heap the entries
 * take (within a few percent), not only for the bytes they asked for. */
SCACHE_EXTERN size_t scache_cache_entry_cost(size_t key_len, size_t value_len);

#ifdef __cplusplus
}
#endif
#endif
