/*
 * cache.c: the store behind scache_get / scache_add / scache_invalidate.
 *
 * Layout. The key space is split over a power-of-two number of stripes by the high bits
 * of a 64-bit hash; each stripe is a uthash table under its own reader-writer lock (or
 * mutex, for comparison in the benchmark), so gets of different stripes never contend
 * and gets of one stripe share its lock. Each stripe owns max_bytes / stripes of the
 * memory bound: the bound is enforced exactly, and eviction never crosses stripes.
 *
 * One allocation per entry: the header, then the key, then the value. The
 * header is reference counted: the cache holds one reference while the entry is
 * cached, and each get hands out another, so a value stays valid after a concurrent
 * replace, invalidation or eviction until its reader releases it.
 *
 * Eviction is SIEVE (Zhang et al., NSDI'24): a FIFO queue with a "visited" bit set by
 * hits and a hand that walks from old to new, evicting the first unvisited entry and
 * clearing bits it passes. SIEVE never moves entries, so the queue is uthash's own
 * insertion-order list and costs no extra pointers; hits only set a bit, which keeps
 * gets on the shared lock (LRU would need the exclusive lock to move the entry).
 *
 * Expiry is lazy plus an incremental sweep: a get never returns an expired entry; a
 * sweep pops expired entries at the old end of each queue (O(1) each) and scans a
 * bounded number of further entries from where the last sweep stopped. No per-request
 * O(entries) scan (which scache does) and no heap to keep in step.
 *
 * Stale-add protection: a global counter hands out increasing epochs. A load takes one
 * (its token) before it reads the data; an invalidation takes one when it is applied
 * and leaves a tombstone (key hash -> epoch) for guard_ms. An add is refused when a
 * tombstone of its key, a flush, or a tombstone already forgotten carries an epoch
 * newer than its token. Tombstones are keyed by the 64-bit hash, so a collision can
 * only refuse an add, never accept a stale one.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: writers must not starve */
#include "scache/cache.h"
#include "scache/id.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t cache_hash(const void *key, size_t len);
#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = (unsigned)cache_hash(keyptr, keylen))
/* uthash's default on allocation failure is to exit. Ours: the add does not happen and
 * this flag says so (a failed bucket expansion only leaves chains longer). */
static _Thread_local int uthash_oomed;
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) ((void)(obj), uthash_oomed = 1)
#include <uthash.h>

#define DEFAULT_MIN_TTL_MS 60000u
#define DEFAULT_MAX_TTL_MS 300000u
#define DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define DEFAULT_STRIPES 16u
#define MAX_STRIPES 1024u
#define DEFAULT_GUARD_MS 60000u
#define DEFAULT_GUARD_MAX 65536u
#define MAX_KEY_LEN 65535u
#define MAX_VALUE_LEN ((size_t)1 << 30)
#define NS_PER_MS 1000000u

#define REF_VISITED 0x80000000u
#define REF_COUNT 0x7fffffffu

typedef struct entry {
	UT_hash_handle hh;        /* hh.next/prev: the SIEVE queue, oldest first */
	uint64_t expires_ns;
	uint64_t saved_ns;
	_Atomic uint32_t refs;    /* REF_VISITED | references (the cache's own is one) */
	uint32_t value_len;
	unsigned char data[];     /* key, then value: a lookup's memcmp reads the line
	                             right after the header */
} entry;

typedef struct tomb {
	UT_hash_handle hh;        /* insertion order = age order, oldest first */
	uint64_t hash;
	uint64_t epoch;
	uint64_t when_ns;
} tomb;

typedef struct stripe {
	alignas(64) union {
		pthread_rwlock_t rw;
		pthread_mutex_t mu;
	} lock;
	entry *table;
	entry *hand;              /* SIEVE hand; NULL: start at the oldest */
	entry *cursor;            /* sweep position; NULL: start at the oldest */
	tomb *tombs;
	size_t ntombs;
	uint64_t forgotten_epoch; /* newest epoch of a tombstone already dropped */
	size_t bytes;
	size_t max_bytes;
	uint64_t rng;
	/* under the exclusive lock */
	uint64_t adds, refused, invalidations, expirations, evictions;
} stripe;

/* Hit and miss counters are written under the shared lock by every reader. One atomic
 * per stripe would bounce its cache line between cores on every get; instead each thread
 * counts in its own slot (threads beyond COUNTER_SLOTS share slots, still correctly). */
#define COUNTER_SLOTS 32u
typedef struct counter_slot {
	alignas(64) _Atomic uint64_t hits;
	_Atomic uint64_t misses, saved_ns;
} counter_slot;

struct scache_cache {
	unsigned nstripes;
	unsigned stripe_shift;    /* stripe = hash >> shift */
	scache_lock_kind lock;
	_Atomic uint64_t min_ttl_ns, max_ttl_ns;
	uint64_t guard_ns;
	size_t guard_max;         /* per stripe */
	scache_clock_fn clock;
	void *clock_arg;
	_Atomic uint64_t epoch;
	_Atomic uint64_t flush_epoch;
	_Atomic uint64_t flushes;
	stripe *stripes;
	counter_slot counters[COUNTER_SLOTS];
};

static _Atomic unsigned next_thread_slot;
static _Thread_local unsigned thread_slot_plus_one;

static counter_slot *my_counters(scache_cache *c)
{
	if (!thread_slot_plus_one)
		thread_slot_plus_one = atomic_fetch_add(&next_thread_slot, 1) % COUNTER_SLOTS + 1;
	return &c->counters[thread_slot_plus_one - 1];
}

/* The cache's default clock: CLOCK_MONOTONIC_COARSE costs a few ns instead of ~20 on a
 * get and is exact to a scheduler tick (1-4 ms), far below any sensible lifetime. */
static uint64_t coarse_now_ns(void *unused)
{
	struct timespec ts;
	(void)unused;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t scache_now_ns(void *unused)
{
	struct timespec ts;
	(void)unused;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t scache_cache_entry_overhead(void)
{
	return sizeof(entry);
}

/* uthash's buckets per entry, in bytes: a 16-byte bucket per 2 to 10 entries (a table
 * doubles when a chain passes 10), measured at 5-8 bytes an entry (bench_cache). */
#define BUCKET_SHARE 8

size_t scache_cache_entry_cost(size_t key_len, size_t value_len)
{
	/* One allocation of header, key and value, as glibc's malloc sizes the chunk: the
	 * request and an 8-byte size field rounded up to 16, at least 32. The bound then
	 * holds for the heap the entries take, not only for what they asked for. */
	size_t chunk = (sizeof(entry) + key_len + value_len + 8 + 15) & ~(size_t)15;
	if (chunk < 32)
		chunk = 32;
	return chunk + BUCKET_SHARE;
}

/* A multiply-xorshift hash over 8-byte words, finished with murmur3's fmix64. Keys are
 * short query strings; this is several times faster than uthash's default (Jenkins). */
static uint64_t cache_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0x9e3779b97f4a7c15u ^ (len * 0xff51afd7ed558ccdu);
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9u;
		h ^= h >> 31;
		p += 8;
		len -= 8;
	}
	uint64_t w = 0;
	if (len) /* p may be NULL when len is 0 */
		memcpy(&w, p, len);
	h = (h ^ w) * 0x94d049bb133111ebu;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53u;
	h ^= h >> 33;
	return h;
}

static uint64_t rng_next(uint64_t *state) /* xorshift64* */
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1du;
}

static stripe *stripe_of(scache_cache *c, uint64_t h)
{
	return &c->stripes[c->nstripes == 1 ? 0 : h >> c->stripe_shift];
}

static void lock_shared(scache_cache *c, stripe *s)
{
	if (c->lock == SCACHE_LOCK_MUTEX)
		pthread_mutex_lock(&s->lock.mu);
	else
		pthread_rwlock_rdlock(&s->lock.rw);
}

static void lock_exclusive(scache_cache *c, stripe *s)
{
	if (c->lock == SCACHE_LOCK_MUTEX)
		pthread_mutex_lock(&s->lock.mu);
	else
		pthread_rwlock_wrlock(&s->lock.rw);
}

static int trylock_exclusive(scache_cache *c, stripe *s)
{
	if (c->lock == SCACHE_LOCK_MUTEX)
		return pthread_mutex_trylock(&s->lock.mu) == 0;
	return pthread_rwlock_trywrlock(&s->lock.rw) == 0;
}

static void unlock(scache_cache *c, stripe *s)
{
	if (c->lock == SCACHE_LOCK_MUTEX)
		pthread_mutex_unlock(&s->lock.mu);
	else
		pthread_rwlock_unlock(&s->lock.rw);
}

static size_t entry_cost(const entry *e)
{
	return scache_cache_entry_cost(e->hh.keylen, e->value_len);
}

static void entry_release(entry *e)
{
	uint32_t old = atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel);
	if ((old & REF_COUNT) == 1)
		free(e);
}

static entry *entry_next(entry *e)
{
	return (entry *)e->hh.next;
}

/* Takes e out of the stripe and drops the cache's reference. */
static void stripe_unlink(stripe *s, entry *e)
{
	if (s->hand == e)
		s->hand = entry_next(e);
	if (s->cursor == e)
		s->cursor = entry_next(e);
	s->bytes -= entry_cost(e);
	HASH_DELETE(hh, s->table, e);
	entry_release(e);
}

/* SIEVE: evict the first unvisited entry from the hand on, clearing bits it passes;
 * never keep (the entry being added, already in the table). */
static void stripe_evict_one(stripe *s, const entry *keep)
{
	entry *e = s->hand ? s->hand : s->table;
	for (;;) {
		uint32_t refs = atomic_load_explicit(&e->refs, memory_order_relaxed);
		if (!(refs & REF_VISITED) && e != keep)
			break;
		if (e != keep)
			atomic_fetch_and_explicit(&e->refs, ~REF_VISITED, memory_order_relaxed);
		e = entry_next(e) ? entry_next(e) : s->table;
	}
	s->hand = entry_next(e);
	stripe_unlink(s, e);
	s->evictions++;
}

/* Drops tombstones older than the guard, or beyond the count bound. Remembers the
 * newest dropped epoch: adds whose token predates it can no longer be proven fresh. */
static void stripe_prune_tombs(scache_cache *c, stripe *s, uint64_t now)
{
	while (s->tombs && (now - s->tombs->when_ns > c->guard_ns || s->ntombs > c->guard_max)) {
		tomb *t = s->tombs;
		if (t->epoch > s->forgotten_epoch)
			s->forgotten_epoch = t->epoch;
		HASH_DELETE(hh, s->tombs, t);
		free(t);
		s->ntombs--;
	}
}

/* Records that the key with hash h was invalidated at epoch. On allocation failure the
 * whole stripe's memory is made to forget up to this epoch: still safe, only stricter. */
static void stripe_add_tomb(scache_cache *c, stripe *s, uint64_t h, uint64_t epoch,
                            uint64_t now)
{
	tomb *t;
	HASH_FIND_BYHASHVALUE(hh, s->tombs, &h, sizeof h, (unsigned)h, t);
	if (t) {
		HASH_DELETE(hh, s->tombs, t); /* re-added below: keeps the list in age order */
		s->ntombs--;
	} else if (!(t = malloc(sizeof *t))) {
		s->forgotten_epoch = epoch;
		return;
	}
	t->hash = h;
	t->epoch = epoch;
	t->when_ns = now;
	uthash_oomed = 0;
	HASH_ADD_KEYPTR_BYHASHVALUE(hh, s->tombs, &t->hash, sizeof t->hash, (unsigned)h, t);
	if (uthash_oomed) {
		free(t);
		s->forgotten_epoch = epoch;
		return;
	}
	s->ntombs++;
	stripe_prune_tombs(c, s, now);
}

static int stripe_is_stale(scache_cache *c, stripe *s, uint64_t h, uint64_t token)
{
	tomb *t;
	if (atomic_load(&c->flush_epoch) > token || s->forgotten_epoch > token)
		return 1;
	HASH_FIND_BYHASHVALUE(hh, s->tombs, &h, sizeof h, (unsigned)h, t);
	return t && t->epoch > token;
}

static scache_err check_window(uint64_t min_ms, uint64_t max_ms)
{
	if (min_ms == 0 || max_ms == 0 || min_ms > max_ms || max_ms > UINT64_MAX / NS_PER_MS)
		return SCACHE_EINVAL;
	return SCACHE_OK;
}

scache_err scache_cache_new(const scache_cache_config *config, scache_cache **out)
{
	scache_cache_config cfg = {0};
	if (!out)
		return SCACHE_EINVAL;
	*out = NULL;
	if (config)
		cfg = *config;
	if (cfg.min_ttl_ms == 0 && cfg.max_ttl_ms == 0) {
		cfg.min_ttl_ms = DEFAULT_MIN_TTL_MS;
		cfg.max_ttl_ms = DEFAULT_MAX_TTL_MS;
	}
	if (check_window(cfg.min_ttl_ms, cfg.max_ttl_ms) != SCACHE_OK)
		return SCACHE_EINVAL;
	if (cfg.stripes > MAX_STRIPES ||
	    (cfg.lock != SCACHE_LOCK_RWLOCK && cfg.lock != SCACHE_LOCK_MUTEX))
		return SCACHE_EINVAL;

	unsigned n = 1, shift = 64;
	while (n < (cfg.stripes ? cfg.stripes : DEFAULT_STRIPES))
		n <<= 1, shift--;

	scache_cache *c = aligned_alloc(alignof(scache_cache), sizeof *c);
	if (!c)
		return SCACHE_ENOMEM;
	memset(c, 0, sizeof *c);
	c->stripes = aligned_alloc(alignof(stripe), n * sizeof *c->stripes);
	if (!c->stripes) {
		free(c);
		return SCACHE_ENOMEM;
	}
	memset(c->stripes, 0, n * sizeof *c->stripes);
	c->nstripes = n;
	c->stripe_shift = shift;
	c->lock = cfg.lock;
	atomic_init(&c->min_ttl_ns, cfg.min_ttl_ms * NS_PER_MS);
	atomic_init(&c->max_ttl_ns, cfg.max_ttl_ms * NS_PER_MS);
	c->guard_ns = (cfg.guard_ms ? cfg.guard_ms : DEFAULT_GUARD_MS) * NS_PER_MS;
	c->guard_max = (cfg.guard_max ? cfg.guard_max : DEFAULT_GUARD_MAX) / n;
	if (c->guard_max == 0)
		c->guard_max = 1;
	c->clock = cfg.clock ? cfg.clock : coarse_now_ns;
	c->clock_arg = cfg.clock_arg;
	atomic_init(&c->epoch, 0);
	atomic_init(&c->flush_epoch, 0);
	atomic_init(&c->flushes, 0);

	size_t max_bytes = cfg.max_bytes ? cfg.max_bytes : DEFAULT_MAX_BYTES;
	uint64_t seed = cfg.seed ? cfg.seed : scache_now_ns(NULL) ^ (uint64_t)(uintptr_t)c;
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	for (unsigned i = 0; i < n; i++) {
		stripe *s = &c->stripes[i];
		if (c->lock == SCACHE_LOCK_MUTEX)
			pthread_mutex_init(&s->lock.mu, NULL);
		else
			pthread_rwlock_init(&s->lock.rw, &attr);
		s->max_bytes = max_bytes / n;
		s->rng = (seed + (i + 1) * 0x9e3779b97f4a7c15u) | 1;
	}
	pthread_rwlockattr_destroy(&attr);
	*out = c;
	return SCACHE_OK;
}

static size_t stripe_clear(stripe *s)
{
	entry *e, *tmp;
	size_t n = 0;
	HASH_ITER(hh, s->table, e, tmp) {
		// cppcheck-suppress uninitvar ; e is set by HASH_ITER
		stripe_unlink(s, e);
		n++;
	}
	s->hand = s->cursor = NULL;
	return n;
}

void scache_cache_free(scache_cache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nstripes; i++) {
		stripe *s = &c->stripes[i];
		tomb *t, *tmp;
		stripe_clear(s);
		HASH_ITER(hh, s->tombs, t, tmp) {
			HASH_DELETE(hh, s->tombs, t);
			free(t);
		}
		if (c->lock == SCACHE_LOCK_MUTEX)
			pthread_mutex_destroy(&s->lock.mu);
		else
			pthread_rwlock_destroy(&s->lock.rw);
	}
	free(c->stripes);
	free(c);
}

scache_err scache_cache_expire_between(scache_cache *c, uint64_t min_ms, uint64_t max_ms)
{
	if (!c || check_window(min_ms, max_ms) != SCACHE_OK)
		return SCACHE_EINVAL;
	/* Two stores: an add racing with this call may mix old and new bounds, which still
	 * yields a lifetime between the smaller minimum and the larger maximum. */
	atomic_store(&c->min_ttl_ns, min_ms * NS_PER_MS);
	atomic_store(&c->max_ttl_ns, max_ms * NS_PER_MS);
	return SCACHE_OK;
}

uint64_t scache_cache_begin_load(scache_cache *c)
{
	return atomic_fetch_add(&c->epoch, 1) + 1;
}

scache_err scache_cache_add(scache_cache *c, const void *key, size_t key_len, const void *value,
                            size_t value_len, const scache_add_opts *opts)
{
	if (!c || !opts || !key || key_len == 0 || key_len > MAX_KEY_LEN ||
	    (!value && value_len) || value_len > MAX_VALUE_LEN || opts->token == 0)
		return SCACHE_EINVAL;
	uint64_t min_ns = atomic_load(&c->min_ttl_ns), max_ns = atomic_load(&c->max_ttl_ns);
	if (opts->min_ttl_ms || opts->max_ttl_ms) {
		if (check_window(opts->min_ttl_ms, opts->max_ttl_ms) != SCACHE_OK)
			return SCACHE_EINVAL;
		min_ns = opts->min_ttl_ms * NS_PER_MS;
		max_ns = opts->max_ttl_ms * NS_PER_MS;
	}
	if (max_ns < min_ns)
		max_ns = min_ns;

	uint64_t h = cache_hash(key, key_len);
	stripe *s = stripe_of(c, h);
	size_t cost = scache_cache_entry_cost(key_len, value_len);
	if (cost > s->max_bytes)
		return SCACHE_ETOOBIG;

	/* Allocate and copy outside the lock. */
	entry *e = malloc(sizeof(entry) + key_len + value_len);
	if (!e)
		return SCACHE_ENOMEM;
	memset(&e->hh, 0, sizeof e->hh);
	memcpy(e->data, key, key_len);
	if (value_len)
		memcpy(e->data + key_len, value, value_len);
	e->value_len = (uint32_t)value_len;
	e->saved_ns = opts->saved_ns;
	atomic_init(&e->refs, 1);

	lock_exclusive(c, s);
	if (stripe_is_stale(c, s, h, opts->token)) {
		s->refused++;
		unlock(c, s);
		free(e);
		return SCACHE_ESTALE;
	}
	uint64_t now = c->clock(c->clock_arg);
	uint64_t ttl = min_ns + (max_ns > min_ns ? rng_next(&s->rng) % (max_ns - min_ns + 1) : 0);
	/* saturate: a window of centuries must not wrap round into the past */
	e->expires_ns = ttl > UINT64_MAX - now ? UINT64_MAX : now + ttl;

	entry *old;
	HASH_FIND_BYHASHVALUE(hh, s->table, e->data, (unsigned)key_len, (unsigned)h, old);
	/* Added before anything is removed: the add allocates when it makes the table or
	 * doubles its buckets, and when that fails the cache must stay as it was (the old
	 * entry and the ones eviction would take included). */
	uthash_oomed = 0;
	HASH_ADD_KEYPTR_BYHASHVALUE(hh, s->table, e->data, (unsigned)key_len, (unsigned)h, e);
	if (uthash_oomed) {
		unlock(c, s);
		free(e);
		return SCACHE_ENOMEM;
	}
	if (old) {
		if (old->expires_ns <= now)
			s->expirations++; /* it had expired; the add only found it first */
		stripe_unlink(s, old);
	}
	while (s->bytes + cost > s->max_bytes) /* e is not counted yet: others remain */
		stripe_evict_one(s, e);
	s->bytes += cost;
	s->adds++;
	unlock(c, s);
	return SCACHE_OK;
}

scache_err scache_cache_get(scache_cache *c, const void *key, size_t key_len, scache_value *out)
{
	if (out)
		memset(out, 0, sizeof *out);
	if (!c || !out || (!key && key_len))
		return SCACHE_EINVAL;
	uint64_t h = cache_hash(key, key_len);
	stripe *s = stripe_of(c, h);
	entry *e;

	lock_shared(c, s);
	HASH_FIND_BYHASHVALUE(hh, s->table, key, (unsigned)key_len, (unsigned)h, e);
	if (e && e->expires_ns > c->clock(c->clock_arg)) {
		uint32_t refs = atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
		if (!(refs & REF_VISITED))
			atomic_fetch_or_explicit(&e->refs, REF_VISITED, memory_order_relaxed);
		out->data = e->data + e->hh.keylen;
		out->len = e->value_len;
		out->saved_ns = e->saved_ns;
		out->ref_ = e;
		unlock(c, s);
		counter_slot *k = my_counters(c);
		atomic_fetch_add_explicit(&k->hits, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&k->saved_ns, out->saved_ns, memory_order_relaxed);
		return SCACHE_OK;
	}
	unlock(c, s);
	atomic_fetch_add_explicit(&my_counters(c)->misses, 1, memory_order_relaxed);
	return SCACHE_ENOTFOUND;
}

void scache_value_release(scache_value *value)
{
	if (!value || !value->ref_)
		return;
	entry_release(value->ref_);
	memset(value, 0, sizeof *value);
}

static int invalidate_one(scache_cache *c, const void *key, size_t key_len)
{
	uint64_t h = cache_hash(key, key_len);
	stripe *s = stripe_of(c, h);
	entry *e;
	lock_exclusive(c, s);
	/* The epoch is taken under the lock so tombstones of a stripe grow in age order. */
	uint64_t epoch = atomic_fetch_add(&c->epoch, 1) + 1;
	stripe_add_tomb(c, s, h, epoch, c->clock(c->clock_arg));
	HASH_FIND_BYHASHVALUE(hh, s->table, key, (unsigned)key_len, (unsigned)h, e);
	if (e)
		stripe_unlink(s, e);
	s->invalidations++;
	unlock(c, s);
	return e != NULL;
}

scache_err scache_cache_invalidate(scache_cache *c, const void *key, size_t key_len, int *removed)
{
	if (removed)
		*removed = 0;
	if (!c || (!key && key_len))
		return SCACHE_EINVAL;
	int r = invalidate_one(c, key, key_len);
	if (removed)
		*removed = r;
	return SCACHE_OK;
}

scache_err scache_cache_invalidate_many(scache_cache *c, const void *const *keys,
                                        const size_t *lens, size_t n, size_t *removed)
{
	size_t count = 0;
	if (removed)
		*removed = 0;
	if (!c || (n && (!keys || !lens)))
		return SCACHE_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!keys[i] && lens[i])
			return SCACHE_EINVAL;
	for (size_t i = 0; i < n; i++)
		count += (size_t)invalidate_one(c, keys[i], lens[i]);
	if (removed)
		*removed = count;
	return SCACHE_OK;
}

void scache_cache_flush(scache_cache *c, size_t *removed)
{
	size_t count = 0;
	if (removed)
		*removed = 0;
	if (!c)
		return;
	/* Publish the flush epoch first: an add that checks it under a stripe lock before
	 * this store still holds that lock, so the clear below removes what it added. */
	uint64_t epoch = atomic_fetch_add(&c->epoch, 1) + 1;
	uint64_t seen = atomic_load(&c->flush_epoch);
	while (seen < epoch && !atomic_compare_exchange_weak(&c->flush_epoch, &seen, epoch))
		; /* concurrent flushes: the newest epoch wins, whatever the order of stores */
	for (unsigned i = 0; i < c->nstripes; i++) {
		lock_exclusive(c, &c->stripes[i]);
		count += stripe_clear(&c->stripes[i]);
		unlock(c, &c->stripes[i]);
	}
	atomic_fetch_add(&c->flushes, 1);
	if (removed)
		*removed = count;
}

/* Whether the key is a data ID of source (decoded as scache_id_parse does). A key that
 * cannot be parsed for want of memory counts as one: removing too much is safe. */
static int key_of_source(const entry *e, const char *source, size_t source_len)
{
	scache_id id;
	scache_err err = scache_id_parse((const char *)e->data, e->hh.keylen, &id);
	if (err == SCACHE_ENOMEM)
		return 1;
	int match = err == SCACHE_OK && id.source_len == source_len &&
	            (source_len == 0 || !memcmp(id.source, source, source_len));
	scache_id_clear(&id);
	return match;
}

scache_err scache_cache_invalidate_source(scache_cache *c, const char *source, size_t source_len,
                                          size_t *removed)
{
	size_t count = 0;
	if (removed)
		*removed = 0;
	if (!c || (!source && source_len))
		return SCACHE_EINVAL;
	/* The IDs of a source are not known in advance, so no tombstone can name them: the
	 * guard is a flush's (every add whose load began before now is refused, whatever
	 * its key), published before the scan as scache_cache_flush does. */
	uint64_t epoch = atomic_fetch_add(&c->epoch, 1) + 1;
	uint64_t seen = atomic_load(&c->flush_epoch);
	while (seen < epoch && !atomic_compare_exchange_weak(&c->flush_epoch, &seen, epoch))
		;
	for (unsigned i = 0; i < c->nstripes; i++) {
		stripe *s = &c->stripes[i];
		entry *e, *tmp;
		lock_exclusive(c, s);
		HASH_ITER(hh, s->table, e, tmp) {
			// cppcheck-suppress uninitvar ; e is set by HASH_ITER
			if (key_of_source(e, source, source_len)) {
				stripe_unlink(s, e);
				s->invalidations++;
				count++;
			}
		}
		unlock(c, s);
	}
	if (removed)
		*removed = count;
	return SCACHE_OK;
}

/* Removes expired entries of one stripe; scans at most `budget` live ones (0: all). */
static size_t stripe_sweep(scache_cache *c, stripe *s, size_t budget)
{
	uint64_t now = c->clock(c->clock_arg);
	size_t removed = 0, scanned = 0;
	while (s->table && s->table->expires_ns <= now) {
		stripe_unlink(s, s->table);
		removed++;
	}
	entry *e = s->cursor && budget ? s->cursor : s->table;
	while (e && (budget == 0 || scanned < budget)) {
		entry *next = entry_next(e);
		if (e->expires_ns <= now) {
			stripe_unlink(s, e);
			removed++;
		} else {
			scanned++;
		}
		e = next;
	}
	s->cursor = e;
	s->expirations += removed;
	return removed;
}

size_t scache_cache_sweep(scache_cache *c, size_t budget)
{
	size_t removed = 0;
	if (!c)
		return 0;
	size_t per_stripe = budget ? (budget + c->nstripes - 1) / c->nstripes : 0;
	for (unsigned i = 0; i < c->nstripes; i++) {
		stripe *s = &c->stripes[i];
		if (budget == 0)
			lock_exclusive(c, s);
		else if (!trylock_exclusive(c, s))
			continue;
		removed += stripe_sweep(c, s, per_stripe);
		unlock(c, s);
	}
	return removed;
}

void scache_cache_stats_get(scache_cache *c, scache_cache_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof *out);
	if (!c)
		return;
	for (unsigned i = 0; i < c->nstripes; i++) {
		stripe *s = &c->stripes[i];
		lock_shared(c, s);
		out->entries += HASH_COUNT(s->table);
		out->bytes += s->bytes;
		out->adds += s->adds;
		out->refused_adds += s->refused;
		out->invalidations += s->invalidations;
		out->expirations += s->expirations;
		out->evictions += s->evictions;
		unlock(c, s);
	}
	for (unsigned i = 0; i < COUNTER_SLOTS; i++) {
		out->hits += atomic_load_explicit(&c->counters[i].hits, memory_order_relaxed);
		out->misses += atomic_load_explicit(&c->counters[i].misses, memory_order_relaxed);
		out->saved_ns += atomic_load_explicit(&c->counters[i].saved_ns, memory_order_relaxed);
	}
	out->flushes = atomic_load(&c->flushes);
}
