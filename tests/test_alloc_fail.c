/*
 * test_alloc_fail.c: allocation-failure injection. This binary defines malloc, calloc,
 * realloc, free, strdup and strndup itself (over glibc's __libc_* allocator), so every
 * allocation of the library, json-c and OpenSSL made from the test's thread goes
 * through it. For each path below the test runs the operation with the Nth allocation
 * failing, for N = 1, 2, ... until the operation makes fewer than N allocations, and
 * checks each time that:
 *   - the result is the operation's full success or its documented failure (SCACHE_ENOMEM,
 *     or the documented safe fallback: an invalidation that cannot be remembered is
 *     remembered more strictly), never anything else;
 *   - nothing is cached half-made: after a failed add the cache's stats and entries are
 *     what they were before;
 *   - nothing leaks: every allocation made while armed is freed once the operation's
 *     outputs and the fixture are (the interposer tracks each live pointer).
 * Paths: the cache (add, replace, get, get_or_load through the middleware, invalidate,
 * invalidate_many, invalidate_source, flush, expiry by sweep and by add) and the records
 * (scache records with origin, DynamoDB change records in invalidate and refresh mode,
 * DynamoDB Streams records, data IDs encoded and parsed, a PutRecords batch packed).
 *
 * Only the allocations of the thread that armed the interposer count or fail (the
 * middleware's poller thread is left alone), so each run is deterministic. Under a
 * sanitizer, which owns malloc itself, the interposer is not built and the tests skip,
 * saying so.
 */
#define _GNU_SOURCE /* dladdr */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ddb.h"
#include "kinesis.h"
#include "middleware_internal.h"
#include "record.h"
#include "scache/scache.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_INTERPOSER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define NO_INTERPOSER 1
#endif
#endif

/* ---- the interposer ---------------------------------------------------------------- */

static _Thread_local int armed;            /* count and fail this thread's allocations */
static _Thread_local unsigned long calls;  /* allocation calls while armed */
static _Thread_local unsigned long fail_n; /* the call that fails (1-based) */

/* Pointers allocated while armed and not yet freed: open addressing, tombstones. */
#define LIVE_SLOTS (1u << 18)
#define TOMB       ((void *)1)
static void *live[LIVE_SLOTS];
static size_t nlive;
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;

#ifndef NO_INTERPOSER
static size_t slot_of(const void *p)
{
	uintptr_t h = (uintptr_t)p;
	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15u;
	return (size_t)(h >> 40) & (LIVE_SLOTS - 1);
}

static void live_add(void *p)
{
	pthread_mutex_lock(&live_mu);
	size_t i = slot_of(p);
	while (live[i] && live[i] != TOMB)
		i = (i + 1) & (LIVE_SLOTS - 1);
	live[i] = p;
	nlive++;
	pthread_mutex_unlock(&live_mu);
}

static void live_del(void *p)
{
	pthread_mutex_lock(&live_mu);
	if (nlive) {
		for (size_t i = slot_of(p); live[i]; i = (i + 1) & (LIVE_SLOTS - 1)) {
			if (live[i] == p) {
				live[i] = TOMB;
				nlive--;
				break;
			}
		}
	}
	pthread_mutex_unlock(&live_mu);
}

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

/* json-c 0.16's tokener does not check the strdup of a member name and hashes the NULL
 * (a crash in strlen; seen with this test): strdup called from json-c never fails. */
static int from_jsonc(const void *caller)
{
	static const void *jsonc_base;
	union {
		json_object *(*f)(json_tokener *, const char *, int);
		const void *p;
	} parse = {.f = json_tokener_parse_ex}; /* an address inside json-c */
	Dl_info di;
	if (!jsonc_base && dladdr(parse.p, &di))
		jsonc_base = di.dli_fbase;
	return dladdr(caller, &di) && di.dli_fbase == jsonc_base;
}

static int inject(void)
{
	return armed && ++calls == fail_n;
}

void *malloc(size_t n)
{
	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = __libc_malloc(n);
	if (p && armed)
		live_add(p);
	return p;
}

void *calloc(size_t n, size_t size)
{
	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = __libc_calloc(n, size);
	if (p && armed)
		live_add(p);
	return p;
}

void *realloc(void *p, size_t n)
{
	if (inject()) {
		errno = ENOMEM;
		return NULL;
	}
	void *q = __libc_realloc(p, n);
	if (p && (q || n == 0))
		live_del(p);
	if (q && armed)
		live_add(q);
	return q;
}

void free(void *p)
{
	if (p)
		live_del(p);
	__libc_free(p);
}

char *strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p;
	if (armed && from_jsonc(__builtin_return_address(0))) {
		p = __libc_malloc(n); /* neither counted nor failed; still tracked */
		if (p)
			live_add(p);
	} else {
		p = malloc(n);
	}
	if (p)
		memcpy(p, s, n);
	return p;
}

char *strndup(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}
#endif

static size_t live_count(void)
{
	pthread_mutex_lock(&live_mu);
	size_t n = nlive;
	if (!n) /* clear the tombstones between runs */
		memset(live, 0, sizeof live);
	pthread_mutex_unlock(&live_mu);
	return n;
}

static void arm(unsigned long n)
{
	calls = 0;
	fail_n = n;
	armed = 1;
}

/* Whether the Nth allocation was reached (and so failed). */
static int hit(void)
{
	return calls >= fail_n;
}

/* pause and resume: the checks between the armed operations are not counted. */
static void pause_(void)
{
	armed = 0;
}

static void resume(void)
{
	armed = 1;
}

static int disarm(void)
{
	armed = 0;
	return hit();
}

static void need_interposer(void)
{
#ifdef NO_INTERPOSER
	cr_skip_test("allocation-failure injection needs the plain build: under a sanitizer "
	             "malloc belongs to the sanitizer's runtime, so it cannot be interposed");
#endif
}

/*
 * One path: setup (unarmed) builds the fixture; run (armed) performs the operation and
 * checks its outcome (paused: the checks' own allocations neither count nor fail), given
 * whether an allocation failed (hit); teardown (unarmed) frees the
 * fixture and the operation's outputs. Then nothing allocated while armed may be live.
 * Returns how many allocations the whole operation makes.
 */
typedef struct path {
	const char *name;
	void (*setup)(void *ctx);
	void (*run)(void *ctx, int n);
	void (*teardown)(void *ctx);
} path;

static unsigned long sweep_failures(const path *p, void *ctx, size_t ctx_size)
{
	for (unsigned long n = 1;; n++) {
		memset(ctx, 0, ctx_size);
		p->setup(ctx);
		arm(n);
		p->run(ctx, (int)n);
		int failed = disarm();
		p->teardown(ctx);
		size_t leaked = live_count();
		cr_assert_eq(leaked, 0, "%s: with allocation %lu failing, %zu allocation(s) leaked",
		             p->name, n, leaked);
		if (!failed) {
			cr_assert_gt(n, 1, "%s: made no allocation", p->name);
			return n - 1;
		}
	}
}

/* The outcome of an armed operation: failed says whether an allocation failed. */
#define EXPECT_OK_OR_ENOMEM(err, failed, what, n)                                                  \
	do {                                                                                       \
		if (!(failed))                                                                     \
			cr_assert_eq((err), SCACHE_OK, "%s: %s without a failure", (what),         \
			             scache_strerror(err));                                        \
		else                                                                               \
			cr_assert((err) == SCACHE_OK || (err) == SCACHE_ENOMEM,                    \
			          "%s with allocation %d failing: %s, not SCACHE_ENOMEM", (what),  \
			          (n), scache_strerror(err));                                      \
	} while (0)

/* ---- the cache ------------------------------------------------------------------------ */

static uint64_t fake_now;
static uint64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

typedef struct cache_ctx {
	scache_cache *c;
	scache_cache_stats before;
	uint64_t token;
	scache_value v;
	size_t removed;
} cache_ctx;

static const char key_users_1[] = "id=1&s=db.users&t=data.ID";
static const char key1[] = "id=1&s=db.users&t=data.ID", key2[] = "id=2&s=db.users&t=data.ID",
                  key3[] = "id=3&s=db.other&t=data.ID";

static void new_cache(cache_ctx *x)
{
	fake_now = 1000000000000ull;
	scache_cache_config cfg = {.min_ttl_ms = 1000, .max_ttl_ms = 2000, .clock = fake_clock};
	cr_assert_eq(scache_cache_new(&cfg, &x->c), SCACHE_OK);
}

static void add_unarmed(cache_ctx *x, const char *key, const char *value)
{
	scache_add_opts o = {.token = scache_cache_begin_load(x->c), .saved_ns = 5};
	cr_assert_eq(scache_cache_add(x->c, key, strlen(key), value, strlen(value), &o), SCACHE_OK);
}

static void expect_value(scache_cache *c, const char *key, const char *value)
{
	scache_value v;
	scache_err err = scache_cache_get(c, key, strlen(key), &v);
	if (!value) {
		cr_assert_eq(err, SCACHE_ENOTFOUND, "%s should be absent", key);
		return;
	}
	cr_assert_eq(err, SCACHE_OK, "%s should be cached", key);
	cr_assert_eq(v.len, strlen(value));
	cr_assert_eq(memcmp(v.data, value, v.len), 0);
	scache_value_release(&v);
}

/* The stats that a failed operation must leave as they were (hits and misses are
 * counted by the checks themselves). */
static void expect_same_store(const scache_cache_stats *a, const scache_cache_stats *b,
                              const char *what, int n)
{
	cr_assert(a->entries == b->entries && a->bytes == b->bytes && a->adds == b->adds &&
	              a->evictions == b->evictions && a->expirations == b->expirations,
	          "%s with allocation %d failing changed the cache: entries %llu -> %llu, "
	          "bytes %llu -> %llu, adds %llu -> %llu",
	          what, n, (unsigned long long)a->entries, (unsigned long long)b->entries,
	          (unsigned long long)a->bytes, (unsigned long long)b->bytes,
	          (unsigned long long)a->adds, (unsigned long long)b->adds);
}

static void cache_teardown(void *ctx)
{
	cache_ctx *x = ctx;
	scache_value_release(&x->v);
	scache_cache_free(x->c);
}

/* add: a new key */
static void add_setup(void *ctx)
{
	cache_ctx *x = ctx;
	new_cache(x);
	add_unarmed(x, key2, "other");
	x->token = scache_cache_begin_load(x->c);
	scache_cache_stats_get(x->c, &x->before);
}

static void add_run(void *ctx, int n)
{
	cache_ctx *x = ctx;
	scache_add_opts o = {.token = x->token, .saved_ns = 7};
	scache_err err = scache_cache_add(x->c, key1, strlen(key1), "value", 5, &o);
	pause_();
	int failed = hit();
	EXPECT_OK_OR_ENOMEM(err, failed, "add", n);
	scache_cache_stats s;
	scache_cache_stats_get(x->c, &s);
	if (err == SCACHE_OK) {
		cr_assert_eq(s.entries, x->before.entries + 1);
		cr_assert_eq(s.adds, x->before.adds + 1);
		expect_value(x->c, key1, "value");
	} else {
		expect_same_store(&x->before, &s, "add", n);
		expect_value(x->c, key1, NULL);
	}
	expect_value(x->c, key2, "other");
}

/* add over an existing entry: on failure the old value stays */
static void replace_setup(void *ctx)
{
	cache_ctx *x = ctx;
	new_cache(x);
	add_unarmed(x, key1, "old");
	x->token = scache_cache_begin_load(x->c);
	scache_cache_stats_get(x->c, &x->before);
}

static void replace_run(void *ctx, int n)
{
	cache_ctx *x = ctx;
	scache_add_opts o = {.token = x->token};
	scache_err err = scache_cache_add(x->c, key1, strlen(key1), "new value", 9, &o);
	pause_();
	int failed = hit();
	EXPECT_OK_OR_ENOMEM(err, failed, "replace", n);
	scache_cache_stats s;
	scache_cache_stats_get(x->c, &s);
	if (err == SCACHE_OK) {
		expect_value(x->c, key1, "new value");
	} else {
		expect_same_store(&x->before, &s, "replace", n);
		expect_value(x->c, key1, "old");
	}
}

/* get: a hit hands out a reference, a miss nothing */
static void get_setup(void *ctx)
{
	cache_ctx *x = ctx;
	new_cache(x);
	add_unarmed(x, key1, "value");
}

static void get_run(void *ctx, int n)
{
	cache_ctx *x = ctx;
	scache_err err = scache_cache_get(x->c, key1, strlen(key1), &x->v);
	scache_err miss = scache_cache_get(x->c, key2, strlen(key2), &(scache_value){0});
	pause_();
	int failed = hit();
	EXPECT_OK_OR_ENOMEM(err, failed, "get", n);
	cr_assert_eq(miss, SCACHE_ENOTFOUND);
	if (err == SCACHE_OK)
		cr_assert(x->v.len == 5 && memcmp(x->v.data, "value", 5) == 0);
}

/* invalidate: the entry goes and an older load's add is refused, whatever fails (an
 * invalidation that cannot be remembered is remembered for the whole stripe) */
static void inval_setup(void *ctx)
{
	cache_ctx *x = ctx;
	new_cache(x);
	add_unarmed(x, key1, "value");
	add_unarmed(x, key2, "other");
	x->token = scache_cache_begin_load(x->c);
}

static void inval_run(void *ctx, int n)
{
	cache_ctx *x = ctx;
	int removed = 0;
	scache_err err = scache_cache_invalidate(x->c, key1, strlen(key1), &removed);
	pause_();
	int failed = hit();
	cr_assert_eq(err, SCACHE_OK, "invalidate with allocation %d failing: %s", n,
	             scache_strerror(err));
	(void)failed;
	cr_assert_eq(removed, 1);
	expect_value(x->c, key1, NULL);
	expect_value(x->c, key2, "other");
	scache_add_opts o = {.token = x->token};
	cr_assert_eq(scache_cache_add(x->c, key1, strlen(key1), "stale", 5, &o), SCACHE_ESTALE,
	             "an add of a load begun before the invalidation must be refused");
}

/* invalidate_many, invalidate_source, flush: the same guarantees */
static void remove_run(void *ctx, int n)
{
	cache_ctx *x = ctx;
	const void *keys[] = {key1, key3};
	size_t lens[] = {strlen(key1), strlen(key3)}, removed = 0, by_source = 0, flushed = 0;
	scache_err e1 = scache_cache_invalidate_many(x->c, keys, lens, 2, &removed);
	scache_err e2 = scache_cache_invalidate_source(x->c, "db.users", 8, &by_source);
	scache_cache_flush(x->c, &flushed);
	pause_();
	(void)hit(); /* removal has no failure to report: it falls back */
	cr_assert(e1 == SCACHE_OK && e2 == SCACHE_OK, "removal with allocation %d failing: %s %s",
	          n, scache_strerror(e1), scache_strerror(e2));
	cr_assert_eq(removed, 1);
	cr_assert_eq(by_source, 1); /* key2 */
	cr_assert_eq(flushed, 0);
	scache_cache_stats s;
	scache_cache_stats_get(x->c, &s);
	cr_assert_eq(s.entries, 0);
	cr_assert_eq(s.bytes, 0);
	scache_add_opts o = {.token = x->token};
	cr_assert_eq(scache_cache_add(x->c, key2, strlen(key2), "stale", 5, &o), SCACHE_ESTALE);
}

/* expiry: a sweep removes what expired; an add over an expired entry replaces it */
static void expiry_run(void *ctx, int n)
{
	cache_ctx *x = ctx;
	fake_now += 3000ull * 1000000ull; /* past max_ttl_ms */
	size_t swept = scache_cache_sweep(x->c, 0);
	pause_();
	int failed = hit();
	cr_assert_eq(swept, 2);
	expect_value(x->c, key1, NULL);
	resume();
	scache_add_opts o = {.token = scache_cache_begin_load(x->c)};
	scache_err err = scache_cache_add(x->c, key1, strlen(key1), "fresh", 5, &o);
	pause_();
	failed = hit();
	EXPECT_OK_OR_ENOMEM(err, failed, "add after expiry", n);
	scache_cache_stats s;
	scache_cache_stats_get(x->c, &s);
	cr_assert_eq(s.entries, err == SCACHE_OK ? 1u : 0u);
	cr_assert_eq(s.expirations, 2);
	expect_value(x->c, key1, err == SCACHE_OK ? "fresh" : NULL);
}

static void expiry_add_run(void *ctx, int n)
{
	cache_ctx *x = ctx;
	fake_now += 3000ull * 1000000ull;
	scache_cache_stats_get(x->c, &x->before);
	scache_add_opts o = {.token = scache_cache_begin_load(x->c)};
	scache_err err = scache_cache_add(x->c, key1, strlen(key1), "fresh", 5, &o);
	pause_();
	int failed = hit();
	EXPECT_OK_OR_ENOMEM(err, failed, "add over an expired entry", n);
	expect_value(x->c, key1, err == SCACHE_OK ? "fresh" : NULL);
	expect_value(x->c, key2, NULL); /* expired, swept or not */
}

Test(alloc_fail, cache_add)
{
	need_interposer();
	cache_ctx x;
	path p = {"add", add_setup, add_run, cache_teardown};
	cr_log_info("add: %lu allocations", sweep_failures(&p, &x, sizeof x));
	path r = {"replace", replace_setup, replace_run, cache_teardown};
	cr_log_info("replace: %lu allocations", sweep_failures(&r, &x, sizeof x));
}

Test(alloc_fail, cache_get)
{
	need_interposer();
	cache_ctx x;
	memset(&x, 0, sizeof x);
	get_setup(&x);
	arm(1);
	get_run(&x, 1);
	int failed = disarm();
	cr_assert_eq(failed, 0, "a get allocates nothing");
	cache_teardown(&x);
	cr_assert_eq(live_count(), 0);
}

Test(alloc_fail, cache_invalidate_and_remove)
{
	need_interposer();
	cache_ctx x;
	path p = {"invalidate", inval_setup, inval_run, cache_teardown};
	cr_log_info("invalidate: %lu allocations", sweep_failures(&p, &x, sizeof x));
	path r = {"invalidate_many, invalidate_source, flush", inval_setup, remove_run,
	          cache_teardown};
	cr_log_info("removal: %lu allocations", sweep_failures(&r, &x, sizeof x));
}

Test(alloc_fail, cache_expiry)
{
	need_interposer();
	cache_ctx x;
	path p = {"expiry by sweep", inval_setup, expiry_run, cache_teardown};
	cr_log_info("expiry: %lu allocations", sweep_failures(&p, &x, sizeof x));
	path a = {"expiry by add", inval_setup, expiry_add_run, cache_teardown};
	cr_log_info("expiry by add: %lu allocations", sweep_failures(&a, &x, sizeof x));
}

/* get_or_load, through a middleware over the in-memory source: a request context made
 * by hand (no HTTP), as the middleware makes one for a handler, synced and not bypassed. */
typedef struct load_ctx {
	cache_ctx cx;
	scache_middleware *mw;
	scache_request req;
	void *value;
	size_t len;
	int loads;
} load_ctx;

static enum MHD_Result no_handler(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **req_cls)
{
	(void)cls, (void)c, (void)url, (void)method, (void)version, (void)data, (void)size;
	(void)req_cls;
	return MHD_NO;
}

static void quiet(void *arg, const char *line, size_t len)
{
	(void)arg, (void)line, (void)len;
}

static scache_err loader(void *arg, void **value, size_t *len)
{
	load_ctx *x = arg;
	x->loads++;
	*value = strdup("loaded");
	if (!*value)
		return SCACHE_ENOMEM;
	*len = 6;
	return SCACHE_OK;
}

static void load_setup(void *ctx)
{
	load_ctx *x = ctx;
	new_cache(&x->cx);
	scache_source *src;
	cr_assert_eq(scache_memory_source_new(&src), SCACHE_OK);
	scache_middleware_config mc = {.cache = x->cx.c,
	                               .source = src,
	                               .handler = no_handler,
	                               .log = quiet,
	                               .poll_interval_ms = 3600000};
	char err[256];
	cr_assert_eq(scache_middleware_new(&mc, &x->mw, err, sizeof err), SCACHE_OK, "%s", err);
	x->req.mw = x->mw;
	x->req.token = scache_cache_begin_load(x->cx.c);
	scache_cache_stats_get(x->cx.c, &x->cx.before);
}

static void load_teardown(void *ctx)
{
	load_ctx *x = ctx;
	free(x->value);
	scache_middleware_free(x->mw);
	scache_cache_free(x->cx.c);
}

static void load_run(void *ctx, int n)
{
	load_ctx *x = ctx;
	scache_outcome how;
	scache_err err =
	    scache_get_or_load(&x->req, "db.users", "1", loader, x, &x->value, &x->len, &how);
	pause_();
	int failed = hit();
	EXPECT_OK_OR_ENOMEM(err, failed, "get_or_load (miss)", n);
	scache_cache_stats s;
	scache_cache_stats_get(x->cx.c, &s);
	if (err == SCACHE_OK) {
		cr_assert(x->len == 6 && memcmp(x->value, "loaded", 6) == 0);
		cr_assert_eq(how, SCACHE_OUTCOME_MISS);
		cr_assert_leq(s.entries, 1); /* the add may have failed: then nothing cached */
		if (s.entries)
			expect_value(x->cx.c, key_users_1, "loaded");
	} else {
		cr_assert_null(x->value);
		expect_same_store(&x->cx.before, &s, "get_or_load", n);
	}
	free(x->value);
	x->value = NULL;
	if (s.entries == 1) { /* a hit now: the copy handed out */
		resume();
		err = scache_get_or_load(&x->req, "db.users", "1", loader, x, &x->value, &x->len,
		                         &how);
		pause_();
		failed = hit();
		EXPECT_OK_OR_ENOMEM(err, failed, "get_or_load (hit)", n);
		if (err == SCACHE_OK)
			cr_assert(how == SCACHE_OUTCOME_HIT && x->len == 6 &&
			          memcmp(x->value, "loaded", 6) == 0);
	}
}

Test(alloc_fail, get_or_load)
{
	need_interposer();
	load_ctx x;
	path p = {"get_or_load", load_setup, load_run, load_teardown};
	cr_log_info("get_or_load: %lu allocations", sweep_failures(&p, &x, sizeof x));
}

/* ---- records ------------------------------------------------------------------------- */

typedef struct rec_ctx {
	record_keys k;
	record_ddb ddb;
	ddb_change c;
	char *out;
	scache_id id;
	json_object *req;
} rec_ctx;

static void rec_setup(void *ctx)
{
	(void)ctx;
	char ts[48]; /* glibc loads the time zone once, and keeps it: not while armed */
	record_format_ts(0, ts, sizeof ts);
}

static void rec_teardown(void *ctx)
{
	rec_ctx *x = ctx;
	record_keys_clear(&x->k);
	ddb_versions_free(x->ddb.versions);
	ddb_change_clear(&x->c);
	free(x->out);
	scache_id_clear(&x->id);
	json_object_put(x->req);
}

static const char scache_rec[] =
    "{\"keys\":[\"id=1&s=db.users&t=data.ID\",\"id=2\\u0026s=db.users\\u0026t=data.ID\","
    "\"id=%zz&s=a&t=data.ID\"],\"ts\":\"2026-11-24T13:26:26.241701753Z\","
    "\"origin\":\"00ff12ab34cd56ef\"}";

static void scache_record_run(void *ctx, int n)
{
	rec_ctx *x = ctx;
	char why[200];
	scache_err err = record_parse(SCACHE_RECORD_SCACHE, (const unsigned char *)scache_rec,
	                              strlen(scache_rec), &x->k, why, sizeof why);
	pause_();
	EXPECT_OK_OR_ENOMEM(err, hit(), "record_parse (scache)", n);
	if (err == SCACHE_OK) {
		cr_assert_eq(x->k.n, 2);
		cr_assert_eq(x->k.bad, 1);
		cr_assert_str_eq(x->k.keys[1], "id=2&s=db.users&t=data.ID");
		cr_assert_eq(x->k.origin, 0x00ff12ab34cd56efull);
	} else {
		cr_assert_eq(x->k.n, 0);
		cr_assert_null(x->k.keys);
	}
}

static const scache_dynamodb_table ddb_tables[] = {
    {.table = "users", .partition_key = "id", .mode = SCACHE_DYNAMODB_INVALIDATE},
    {.table = "orders",
     .partition_key = "customer",
     .sort_key = "n",
     .mode = SCACHE_DYNAMODB_REFRESH},
};

static const char ddb_rec[] =
    "{\"eventID\":\"e-1\",\"eventName\":\"MODIFY\",\"tableName\":\"%s\","
    "\"eventSource\":\"aws:dynamodb\",\"dynamodb\":{\"ApproximateCreationDateTime\":"
    "1732451186412,\"Keys\":%s,\"NewImage\":{%s,\"name\":{\"S\":\"Ada\"},\"age\":"
    "{\"N\":\"3.6E1\"},\"tags\":{\"SS\":[\"a\",\"b\"]},\"m\":{\"M\":{\"l\":{\"L\":[{\"B\":"
    "\"AAE=\"},{\"NULL\":true}]}}}}}}";

static void ddb_setup(void *ctx)
{
	rec_ctx *x = ctx;
	x->ddb.tables = ddb_tables;
	x->ddb.ntables = 2;
	x->ddb.versions = ddb_versions_new(0, 0);
	cr_assert_not_null(x->ddb.versions);
}

static void ddb_read(rec_ctx *x, int n, const char *table, const char *keys, const char *image,
                     const char *want_key, const char *want_value)
{
	char data[1024], why[200];
	snprintf(data, sizeof data, ddb_rec, table, keys, image);
	resume();
	scache_err err = record_read(&x->ddb, SCACHE_RECORD_SCACHE, (const unsigned char *)data,
	                             strlen(data), &x->k, why, sizeof why);
	pause_();
	EXPECT_OK_OR_ENOMEM(err, hit(), table, n);
	if (err == SCACHE_OK) {
		cr_assert_eq(x->k.n, 1, "%s: %s", table, why);
		cr_assert_str_eq(x->k.keys[0], want_key);
		if (want_value)
			cr_assert_str_eq(x->k.value, want_value);
		else
			cr_assert_null(x->k.value);
		cr_assert_eq(ddb_versions_count(x->ddb.versions), want_value ? 1u : 0u);
	} else {
		cr_assert_eq(x->k.n, 0);
		/* on ENOMEM nothing is noted: the record read again is judged the same */
		cr_assert_eq(ddb_versions_count(x->ddb.versions), 0);
	}
	record_keys_clear(&x->k);
}

static void ddb_record_run(void *ctx, int n)
{
	rec_ctx *x = ctx;
	pause_();
	ddb_read(x, n, "users", "{\"id\":{\"S\":\"123\"}}", "\"id\":{\"S\":\"123\"}",
	         "id=123&s=dynamodb.users&t=data.ID", NULL);
	ddb_read(x, n, "orders", "{\"customer\":{\"S\":\"c|1\"},\"n\":{\"N\":\"36\"}}",
	         "\"customer\":{\"S\":\"c|1\"},\"n\":{\"N\":\"36\"}",
	         "id=c%5C%7C1%7C36&s=dynamodb.orders&t=data.ID",
	         "{\"customer\":\"c|1\",\"n\":36,\"name\":\"Ada\",\"age\":36,\"tags\":[\"a\","
	         "\"b\"],\"m\":{\"l\":[\"AAE=\",null]}}");
}

static const char streams_rec[] =
    "{\"eventID\":\"1\",\"eventName\":\"INSERT\",\"eventSource\":\"aws:dynamodb\","
    "\"dynamodb\":{\"ApproximateCreationDateTime\":1732451186.5,\"Keys\":{\"id\":{\"N\":"
    "\"7\"}},\"NewImage\":{\"id\":{\"N\":\"7\"},\"bs\":{\"BS\":[\"AA==\"]}},"
    "\"SequenceNumber\":\"100000000000000000001\"}}";

static void streams_record_run(void *ctx, int n)
{
	rec_ctx *x = ctx;
	char why[200];
	ddb_err de = ddb_change_parse(streams_rec, strlen(streams_rec), DDB_SHAPE_STREAMS, &x->c,
	                              why, sizeof why);
	pause_();
	if (!hit())
		cr_assert_eq(de, DDB_OK, "%s", why);
	cr_assert(de == DDB_OK || de == DDB_ENOMEM,
	          "ddb_change_parse with allocation %d failing: %s", n, ddb_strerror(de));
	if (de != DDB_OK) {
		cr_assert_null(x->c.root);
		return;
	}
	static const ddb_table t = {.table = "users", .key = {"id", NULL}};
	resume();
	scache_err err = record_change(&t, x->ddb.versions, &x->c, "shardId-1",
	                               x->c.sequence_number, &x->k, why, sizeof why);
	pause_();
	EXPECT_OK_OR_ENOMEM(err, hit(), "record_change (streams)", n);
	if (err == SCACHE_OK) {
		cr_assert_str_eq(x->k.keys[0], "id=7&s=dynamodb.users&t=data.ID");
		cr_assert_str_eq(x->k.value, "{\"id\":7,\"bs\":[\"AA==\"]}");
	} else {
		cr_assert_eq(x->k.n, 0);
		cr_assert_eq(ddb_versions_count(x->ddb.versions), 0);
	}
}

static void id_run(void *ctx, int n)
{
	rec_ctx *x = ctx;
	static const char src[] = "db.users.id", id[] = "a b/c~d*e&\xc3\xa9";
	size_t len;
	scache_err err = scache_id_encode_alloc(src, strlen(src), id, strlen(id), &x->out, &len);
	pause_();
	EXPECT_OK_OR_ENOMEM(err, hit(), "scache_id_encode_alloc", n);
	if (err != SCACHE_OK) {
		cr_assert_null(x->out);
		return;
	}
	cr_assert_str_eq(x->out, "id=a+b%2Fc~d%2Ae%26%C3%A9&s=db.users.id&t=data.ID");
	resume();
	err = scache_id_parse(x->out, len, &x->id);
	pause_();
	EXPECT_OK_OR_ENOMEM(err, hit(), "scache_id_parse", n);
	if (err == SCACHE_OK) {
		cr_assert_str_eq(x->id.source, src);
		cr_assert_str_eq(x->id.id, id);
	} else {
		cr_assert(x->id.source == NULL && x->id.id == NULL);
	}
}

/* A PutRecords batch as the publisher packs it: keys into records (record_pack), each
 * record built (record_build_scache), the request of the batch (kinesis_req_put_records)
 * and its text. */
static void pack_run(void *ctx, int n)
{
	rec_ctx *x = ctx;
	pause_();
	enum { NKEYS = 5 };
	char keys[NKEYS][64];
	const char *kp[NKEYS];
	size_t lens[NKEYS], sizes[NKEYS], starts[NKEYS];
	for (size_t i = 0; i < NKEYS; i++) {
		snprintf(keys[i], sizeof keys[i], "id=%zu&s=db.users&t=data.ID", i);
		kp[i] = keys[i];
		lens[i] = strlen(keys[i]);
		sizes[i] = record_key_size(kp[i], lens[i]);
	}
	/* at most two keys a record: three records */
	size_t per = RECORD_OVERHEAD_MAX + 2 * (sizes[0] + 1); /* a comma each */
	resume();
	size_t nrec = record_pack(sizes, NKEYS, per + 64, 64, starts);
	char *data[NKEYS] = {0};
	size_t dlen[NKEYS];
	kinesis_put_entry e[NKEYS];
	scache_err err = SCACHE_OK;
	for (size_t r = 0; r < nrec && !err; r++) {
		size_t end = r + 1 < nrec ? starts[r + 1] : NKEYS;
		err = record_build_scache(kp + starts[r], lens + starts[r], end - starts[r],
		                          1764595200123456789LL, 0x1234, &data[r], &dlen[r]);
		e[r] = (kinesis_put_entry){data[r], dlen[r], "0123456789abcdef"};
	}
	if (!err) {
		x->req = kinesis_req_put_records("stream", e, nrec);
		if (!x->req)
			err = SCACHE_ENOMEM;
	}
	const char *text =
	    x->req ? json_object_to_json_string_ext(x->req, JSON_C_TO_STRING_PLAIN) : NULL;
	if (x->req && !text)
		err = SCACHE_ENOMEM;
	pause_();
	EXPECT_OK_OR_ENOMEM(err, hit(), "packing a PutRecords batch", n);
	cr_assert_eq(nrec, 3);
	if (!err) {
		cr_assert_not_null(strstr(text, "\"StreamName\":\"stream\""));
		cr_assert_str_eq(data[2], "{\"keys\":[\"id=4\\u0026s=db.users\\u0026t=data.ID\"],"
		                          "\"ts\":\"2025-12-01T13:20:00.123456789Z\","
		                          "\"origin\":\"0000000000001234\"}");
	}
	for (size_t r = 0; r < nrec; r++)
		free(data[r]);
}

Test(alloc_fail, records)
{
	need_interposer();
	rec_ctx x;
	path s = {"scache record", rec_setup, scache_record_run, rec_teardown};
	cr_log_info("scache record: %lu allocations", sweep_failures(&s, &x, sizeof x));
	path d = {"DynamoDB change records", ddb_setup, ddb_record_run, rec_teardown};
	cr_log_info("DynamoDB records: %lu allocations", sweep_failures(&d, &x, sizeof x));
	path t = {"DynamoDB Streams record", ddb_setup, streams_record_run, rec_teardown};
	cr_log_info("Streams record: %lu allocations", sweep_failures(&t, &x, sizeof x));
	path i = {"data IDs", rec_setup, id_run, rec_teardown};
	cr_log_info("data IDs: %lu allocations", sweep_failures(&i, &x, sizeof x));
	path p = {"PutRecords batch", rec_setup, pack_run, rec_teardown};
	cr_log_info("PutRecords batch: %lu allocations", sweep_failures(&p, &x, sizeof x));
}
