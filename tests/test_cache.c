/* The cache: expiry windows, the memory bound and SIEVE order, invalidation, flush,
 * stale-add protection and statistics, with an injected clock so every outcome is
 * exact. */
#include <criterion/criterion.h>
#include <scache/cache.h>

#include <stdio.h>
#include <string.h>

#define MS 1000000ull

static uint64_t fake_now;
static uint64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

static scache_cache *new_cache(scache_cache_config cfg)
{
	scache_cache *c = NULL;
	cfg.clock = fake_clock;
	if (!cfg.seed)
		cfg.seed = 42;
	cr_assert_eq(scache_cache_new(&cfg, &c), SCACHE_OK);
	return c;
}

static scache_err add(scache_cache *c, const char *k, const char *v, uint64_t token)
{
	scache_add_opts o = {.token = token, .saved_ns = 7 * MS};
	return scache_cache_add(c, k, strlen(k), v, strlen(v), &o);
}

static int has(scache_cache *c, const char *k)
{
	scache_value v;
	scache_err err = scache_cache_get(c, k, strlen(k), &v);
	scache_value_release(&v);
	return err == SCACHE_OK;
}

static void setup(void)
{
	fake_now = 1000 * MS;
}

TestSuite(cache, .init = setup);

Test(cache, rejects_bad_expiry_windows)
{
	scache_cache *c = NULL;
	scache_cache_config cfg = {.min_ttl_ms = 10, .max_ttl_ms = 5};
	cr_assert_eq(scache_cache_new(&cfg, &c), SCACHE_EINVAL);
	cr_assert_null(c);
	cfg = (scache_cache_config){.min_ttl_ms = 0, .max_ttl_ms = 5};
	cr_assert_eq(scache_cache_new(&cfg, &c), SCACHE_EINVAL);
	cfg = (scache_cache_config){.min_ttl_ms = 5, .max_ttl_ms = 0};
	cr_assert_eq(scache_cache_new(&cfg, &c), SCACHE_EINVAL);
	cfg = (scache_cache_config){.stripes = 4096};
	cr_assert_eq(scache_cache_new(&cfg, &c), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_new(NULL, NULL), SCACHE_EINVAL);

	c = new_cache((scache_cache_config){0});
	cr_assert_eq(scache_cache_expire_between(c, 0, 10), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_expire_between(c, 10, 0), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_expire_between(c, 11, 10), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_expire_between(c, 10, 10), SCACHE_OK);
	scache_add_opts o = {.token = scache_cache_begin_load(c), .min_ttl_ms = 9, .max_ttl_ms = 3};
	cr_assert_eq(scache_cache_add(c, "k", 1, "v", 1, &o), SCACHE_EINVAL);
	o = (scache_add_opts){.token = scache_cache_begin_load(c), .min_ttl_ms = 9};
	cr_assert_eq(scache_cache_add(c, "k", 1, "v", 1, &o), SCACHE_EINVAL);
	scache_cache_free(c);
}

Test(cache, rejects_bad_arguments_without_crashing)
{
	scache_cache *c = new_cache((scache_cache_config){0});
	scache_add_opts o = {.token = scache_cache_begin_load(c)};
	scache_add_opts no_token = {0};
	scache_value v;
	cr_assert_eq(scache_cache_add(c, "k", 1, "v", 1, &no_token), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_add(c, "", 0, "v", 1, &o), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_add(c, NULL, 1, "v", 1, &o), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_add(c, "k", 1, NULL, 1, &o), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_add(c, "k", 1, "v", 1, NULL), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_add(NULL, "k", 1, "v", 1, &o), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_get(c, NULL, 1, &v), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_get(c, "k", 1, NULL), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_invalidate(c, NULL, 1, NULL), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_invalidate_many(c, NULL, NULL, 2, NULL), SCACHE_EINVAL);
	cr_assert_eq(scache_cache_add(c, "k", 1, NULL, 0, &o), SCACHE_OK, "an empty value is a value");
	cr_assert_eq(scache_cache_get(c, "k", 1, &v), SCACHE_OK);
	cr_assert_eq(v.len, 0);
	scache_value_release(&v);
	scache_value_release(NULL);
	scache_cache_free(NULL);
	scache_cache_free(c);
}

Test(cache, get_returns_a_copy_of_the_value_and_its_saved_time)
{
	scache_cache *c = new_cache((scache_cache_config){0});
	char val[] = "hello";
	scache_add_opts o = {.token = scache_cache_begin_load(c), .saved_ns = 1234};
	cr_assert_eq(scache_cache_add(c, "k1", 2, val, 5, &o), SCACHE_OK);
	val[0] = 'J'; /* the cache copied it */
	scache_value v;
	cr_assert_eq(scache_cache_get(c, "k1", 2, &v), SCACHE_OK);
	cr_assert_eq(v.len, 5);
	cr_assert_eq(memcmp(v.data, "hello", 5), 0);
	cr_assert_eq(v.saved_ns, 1234);
	scache_value_release(&v);
	cr_assert_null(v.ref_);
	cr_assert_eq(scache_cache_get(c, "k2", 2, &v), SCACHE_ENOTFOUND);
	cr_assert_null(v.data);
	scache_cache_free(c);
}

Test(cache, a_value_outlives_its_replacement_invalidation_and_the_cache)
{
	scache_cache *c = new_cache((scache_cache_config){0});
	cr_assert_eq(add(c, "k", "first", scache_cache_begin_load(c)), SCACHE_OK);
	scache_value a, b;
	cr_assert_eq(scache_cache_get(c, "k", 1, &a), SCACHE_OK);
	cr_assert_eq(add(c, "k", "second", scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert_eq(scache_cache_get(c, "k", 1, &b), SCACHE_OK);
	cr_assert_eq(scache_cache_invalidate(c, "k", 1, NULL), SCACHE_OK);
	cr_assert_eq(memcmp(a.data, "first", 5), 0);
	cr_assert_eq(memcmp(b.data, "second", 6), 0);
	scache_cache_free(c);
	/* still readable (ASan would report a use after free) */
	cr_assert_eq(memcmp(a.data, "first", 5), 0);
	scache_value_release(&a);
	scache_value_release(&b);
}

Test(cache, entries_expire_inside_their_window_and_spread_across_it)
{
	enum { N = 1000 };
	scache_cache *c = new_cache((scache_cache_config){.min_ttl_ms = 1000, .max_ttl_ms = 2000});
	char key[N][16];
	for (int i = 0; i < N; i++) {
		snprintf(key[i], sizeof key[i], "key-%d", i);
		cr_assert_eq(add(c, key[i], "v", scache_cache_begin_load(c)), SCACHE_OK);
	}
	uint64_t start = fake_now;
	int alive_before = 0;
	fake_now = start + 1000 * MS - 1;
	for (int i = 0; i < N; i++)
		alive_before += has(c, key[i]);
	cr_assert_eq(alive_before, N, "nothing expires before the minimum");

	/* Expiry time of every entry, to 10 ms, by stepping the clock through the window. */
	int deciles[10] = {0}, expired_total = 0;
	int gone[N] = {0};
	for (uint64_t t = 1000; t <= 2000; t += 10) {
		fake_now = start + t * MS;
		for (int i = 0; i < N; i++) {
			if (!gone[i] && !has(c, key[i])) {
				gone[i] = 1;
				expired_total++;
				deciles[t == 2000 ? 9 : (t - 1000) / 100]++;
			}
		}
	}
	cr_assert_eq(expired_total, N, "everything is gone at the maximum");
	for (int d = 0; d < 10; d++)
		cr_assert(deciles[d] >= 60 && deciles[d] <= 140,
		          "decile %d holds %d of 1000 expiries: not spread uniformly", d, deciles[d]);
	scache_cache_free(c);
}

Test(cache, a_per_add_window_overrides_the_default)
{
	scache_cache *c = new_cache((scache_cache_config){.min_ttl_ms = 1000, .max_ttl_ms = 2000});
	scache_add_opts o = {.token = scache_cache_begin_load(c), .min_ttl_ms = 10, .max_ttl_ms = 10};
	cr_assert_eq(scache_cache_add(c, "short", 5, "v", 1, &o), SCACHE_OK);
	cr_assert_eq(add(c, "long", "v", scache_cache_begin_load(c)), SCACHE_OK);
	fake_now += 10 * MS - 1;
	cr_assert(has(c, "short"));
	fake_now += 1;
	cr_assert_not(has(c, "short"));
	cr_assert(has(c, "long"));
	cr_assert_eq(scache_cache_expire_between(c, 5, 5), SCACHE_OK);
	cr_assert_eq(add(c, "later", "v", scache_cache_begin_load(c)), SCACHE_OK);
	fake_now += 5 * MS;
	cr_assert_not(has(c, "later"));
	scache_cache_free(c);
}

Test(cache, sweep_removes_expired_entries_and_counts_them)
{
	scache_cache *c = new_cache((scache_cache_config){.min_ttl_ms = 100, .max_ttl_ms = 100,
	                                                  .stripes = 4});
	char key[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "old-%d", i);
		cr_assert_eq(add(c, key, "v", scache_cache_begin_load(c)), SCACHE_OK);
	}
	fake_now += 50 * MS;
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "new-%d", i);
		cr_assert_eq(add(c, key, "v", scache_cache_begin_load(c)), SCACHE_OK);
	}
	fake_now += 50 * MS; /* the 100 old entries are due, the 10 new ones are not */
	cr_assert_eq(scache_cache_sweep(c, 1), 100, "expired entries at the old end cost no budget");
	cr_assert_eq(scache_cache_sweep(c, 0), 0);
	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	cr_assert_eq(st.entries, 10);
	cr_assert_eq(st.expirations, 100);
	cr_assert_eq(st.bytes, 10 * scache_cache_entry_cost(strlen("new-0"), 1));
	scache_cache_free(c);
}

Test(cache, sweep_finds_expired_entries_behind_live_ones_incrementally)
{
	scache_cache *c = new_cache((scache_cache_config){.min_ttl_ms = 1000, .max_ttl_ms = 1000,
	                                                  .stripes = 1});
	cr_assert_eq(add(c, "long-lived", "v", scache_cache_begin_load(c)), SCACHE_OK);
	scache_add_opts o = {.min_ttl_ms = 10, .max_ttl_ms = 10};
	char key[32];
	for (int i = 0; i < 6; i++) {
		snprintf(key, sizeof key, "short-%d", i);
		o.token = scache_cache_begin_load(c);
		cr_assert_eq(scache_cache_add(c, key, strlen(key), "v", 1, &o), SCACHE_OK);
	}
	fake_now += 10 * MS;
	/* The head is live, so nothing pops; the scan examines one live entry per call and
	 * removes every expired entry it passes, resuming where it stopped. */
	cr_assert_eq(scache_cache_sweep(c, 1), 0, "the first call spends its budget on the head");
	cr_assert_eq(scache_cache_sweep(c, 1), 6, "the second resumes behind it");
	cr_assert_eq(scache_cache_sweep(c, 1), 0);
	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	cr_assert_eq(st.entries, 1);
	scache_cache_free(c);
}

Test(cache, the_memory_bound_holds_and_sieve_evicts_the_unvisited)
{
	size_t cost = scache_cache_entry_cost(1, 10); /* key "a", 10-byte value */
	scache_cache *c = new_cache((scache_cache_config){.stripes = 1, .max_bytes = 3 * cost});
	const char *v = "0123456789";
	cr_assert_eq(add(c, "a", v, scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert_eq(add(c, "b", v, scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert_eq(add(c, "c", v, scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert(has(c, "a")); /* visited */
	cr_assert_eq(add(c, "d", v, scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert(has(c, "a"), "a was visited: SIEVE keeps it");
	cr_assert_not(has(c, "b"), "b is the oldest unvisited: evicted");
	/* has(a) above set its bit again; the hand is at c, which is unvisited. */
	cr_assert_eq(add(c, "e", v, scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert_not(has(c, "c"));
	cr_assert(has(c, "d"));
	cr_assert(has(c, "e"));
	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	cr_assert_eq(st.entries, 3);
	cr_assert_eq(st.bytes, 3 * cost);
	cr_assert_eq(st.evictions, 2);
	scache_cache_free(c);
}

Test(cache, an_entry_larger_than_the_bound_is_refused)
{
	scache_cache *c = new_cache((scache_cache_config){.stripes = 1, .max_bytes = 1000});
	char big[1000] = {0};
	scache_add_opts o = {.token = scache_cache_begin_load(c)};
	cr_assert_eq(scache_cache_add(c, "k", 1, big, sizeof big, &o), SCACHE_ETOOBIG);
	scache_cache_free(c);
}

Test(cache, invalidate_removes_one_or_many_and_counts_each_key)
{
	scache_cache *c = new_cache((scache_cache_config){0});
	for (const char *k = "abcd"; *k; k++)
		cr_assert_eq(scache_cache_add(c, k, 1, "v", 1,
		                              &(scache_add_opts){.token = scache_cache_begin_load(c)}),
		             SCACHE_OK);
	int removed = -1;
	cr_assert_eq(scache_cache_invalidate(c, "a", 1, &removed), SCACHE_OK);
	cr_assert_eq(removed, 1);
	cr_assert_eq(scache_cache_invalidate(c, "a", 1, &removed), SCACHE_OK);
	cr_assert_eq(removed, 0);
	const void *keys[] = {"b", "c", "zz"};
	size_t lens[] = {1, 1, 2}, n = 99;
	cr_assert_eq(scache_cache_invalidate_many(c, keys, lens, 3, &n), SCACHE_OK);
	cr_assert_eq(n, 2);
	cr_assert_not(has(c, "b"));
	cr_assert(has(c, "d"));
	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	cr_assert_eq(st.invalidations, 5);
	cr_assert_eq(st.entries, 1);
	scache_cache_free(c);
}

Test(cache, flush_removes_everything_and_refuses_loads_begun_before_it)
{
	scache_cache *c = new_cache((scache_cache_config){0});
	cr_assert_eq(add(c, "a", "v", scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert_eq(add(c, "b", "v", scache_cache_begin_load(c)), SCACHE_OK);
	uint64_t before = scache_cache_begin_load(c);
	size_t removed = 0;
	scache_cache_flush(c, &removed);
	cr_assert_eq(removed, 2);
	cr_assert_not(has(c, "a"));
	cr_assert_eq(add(c, "a", "v", before), SCACHE_ESTALE);
	cr_assert_eq(add(c, "a", "v", scache_cache_begin_load(c)), SCACHE_OK);
	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	cr_assert_eq(st.entries, 1);
	cr_assert_eq(st.flushes, 1);
	cr_assert_eq(st.refused_adds, 1);
	scache_cache_free(c);
}

/* The race of the issue, in a fixed interleaving:
 *   A: begins a load of k (token), reads the old row
 *   B: the row changes; B drains the invalidation of k and applies it (k not cached)
 *   A: adds the old row  -> must be refused */
Test(cache, refuses_an_add_whose_load_began_before_an_invalidation)
{
	scache_cache *c = new_cache((scache_cache_config){0});
	uint64_t a_token = scache_cache_begin_load(c);
	int removed = -1;
	cr_assert_eq(scache_cache_invalidate(c, "k", 1, &removed), SCACHE_OK);
	cr_assert_eq(removed, 0);
	uint64_t b_token = scache_cache_begin_load(c);
	cr_assert_eq(add(c, "k", "old row", a_token), SCACHE_ESTALE);
	cr_assert_not(has(c, "k"));
	cr_assert_eq(add(c, "k", "new row", b_token), SCACHE_OK, "a load begun after is fresh");
	cr_assert_eq(add(c, "other", "v", a_token), SCACHE_OK, "other keys are not affected");
	/* A refused add leaves the fresh entry as it was. */
	cr_assert_eq(add(c, "k", "old row", a_token), SCACHE_ESTALE);
	scache_value v;
	cr_assert_eq(scache_cache_get(c, "k", 1, &v), SCACHE_OK);
	cr_assert_eq(memcmp(v.data, "new row", 7), 0);
	scache_value_release(&v);
	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	cr_assert_eq(st.refused_adds, 2);
	scache_cache_free(c);
}

Test(cache, load_tokens_strictly_increase)
{
	scache_cache *c = new_cache((scache_cache_config){0});
	uint64_t t = scache_cache_begin_load(c);
	cr_assert_neq(t, 0);
	for (int i = 0; i < 100; i++) {
		uint64_t u = scache_cache_begin_load(c);
		cr_assert_gt(u, t);
		t = u;
	}
	scache_cache_free(c);
}

Test(cache, a_forgotten_invalidation_still_refuses_older_loads)
{
	scache_cache *c = new_cache((scache_cache_config){.guard_ms = 100, .stripes = 1});
	uint64_t slow = scache_cache_begin_load(c);
	cr_assert_eq(scache_cache_invalidate(c, "k", 1, NULL), SCACHE_OK);
	fake_now += 200 * MS;
	cr_assert_eq(scache_cache_invalidate(c, "x", 1, NULL), SCACHE_OK); /* prunes k's tomb */
	cr_assert_eq(add(c, "k", "v", slow), SCACHE_ESTALE);
	cr_assert_eq(add(c, "k", "v", scache_cache_begin_load(c)), SCACHE_OK);
	scache_cache_free(c);
}

Test(cache, the_count_bound_on_remembered_invalidations_is_safe)
{
	scache_cache *c = new_cache((scache_cache_config){.guard_max = 4, .stripes = 1});
	uint64_t early = scache_cache_begin_load(c);
	char key[16];
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "k%d", i);
		cr_assert_eq(scache_cache_invalidate(c, key, strlen(key), NULL), SCACHE_OK);
	}
	cr_assert_eq(add(c, "k0", "v", early), SCACHE_ESTALE, "forgotten, so refused");
	cr_assert_eq(add(c, "unrelated", "v", early), SCACHE_ESTALE,
	             "older than what is remembered: cannot be proven fresh");
	cr_assert_eq(add(c, "k0", "v", scache_cache_begin_load(c)), SCACHE_OK);
	scache_cache_free(c);
}

Test(cache, statistics_add_up)
{
	scache_cache *c = new_cache((scache_cache_config){.stripes = 2});
	cr_assert_eq(add(c, "a", "12345", scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert_eq(add(c, "bb", "123", scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert_eq(add(c, "bb", "1234", scache_cache_begin_load(c)), SCACHE_OK); /* replace */
	cr_assert(has(c, "a"));
	cr_assert(has(c, "a"));
	cr_assert(has(c, "bb"));
	cr_assert_not(has(c, "nope"));
	cr_assert_eq(scache_cache_invalidate(c, "zz", 2, NULL), SCACHE_OK);
	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	cr_assert_eq(st.entries, 2);
	cr_assert_eq(st.bytes, scache_cache_entry_cost(1, 5) + scache_cache_entry_cost(2, 4));
	cr_assert_eq(st.hits, 3);
	cr_assert_eq(st.misses, 1);
	cr_assert_eq(st.adds, 3);
	cr_assert_eq(st.refused_adds, 0);
	cr_assert_eq(st.invalidations, 1);
	cr_assert_eq(st.evictions, 0);
	cr_assert_eq(st.expirations, 0);
	cr_assert_eq(st.saved_ns, 3 * 7 * MS);
	scache_cache_free(c);
}

Test(cache, the_lock_kind_is_a_choice_with_the_same_behaviour)
{
	scache_cache *c = new_cache((scache_cache_config){.lock = SCACHE_LOCK_MUTEX});
	cr_assert_eq(add(c, "a", "v", scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert(has(c, "a"));
	cr_assert_eq(scache_cache_sweep(c, 8), 0);
	scache_cache_free(c);
	scache_cache *bad = NULL;
	cr_assert_eq(scache_cache_new(&(scache_cache_config){.lock = (scache_lock_kind)7}, &bad),
	             SCACHE_EINVAL);
}

Test(cache, the_longest_window_does_not_wrap_into_the_past)
{
	fake_now = 1000000 * 1000 * MS; /* eleven days of uptime */
	scache_cache *c = new_cache((scache_cache_config){0});
	uint64_t longest = UINT64_MAX / MS; /* accepted by the window check */
	scache_add_opts o = {.token = scache_cache_begin_load(c),
	                     .min_ttl_ms = longest,
	                     .max_ttl_ms = longest};
	cr_assert_eq(scache_cache_add(c, "k", 1, "v", 1, &o), SCACHE_OK);
	cr_assert(has(c, "k"), "an entry that expires in 584 years is there now");
	cr_assert_eq(scache_cache_expire_between(c, longest, longest), SCACHE_OK);
	cr_assert_eq(add(c, "j", "v", scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert(has(c, "j"));
	cr_assert_eq(scache_cache_sweep(c, 0), 0, "nothing has expired");
	scache_cache_free(c);
}

Test(cache, a_null_key_of_length_zero_is_an_absent_key)
{
	/* the header allows NULL with length 0; under UBSan this used to stop the program */
	scache_cache *c = new_cache((scache_cache_config){0});
	scache_value v;
	int removed = 1;
	cr_assert_eq(scache_cache_get(c, NULL, 0, &v), SCACHE_ENOTFOUND);
	cr_assert_eq(scache_cache_invalidate(c, NULL, 0, &removed), SCACHE_OK);
	cr_assert_eq(removed, 0);
	scache_cache_free(c);
}

Test(cache, invalidate_source_removes_every_id_of_that_source_and_nothing_else)
{
	scache_cache *c = new_cache((scache_cache_config){.stripes = 4});
	uint64_t t = scache_cache_begin_load(c);
	/* data IDs as scache encodes them (id.h), a source with an escaped byte, and a key
	 * that is no data ID */
	const char *users1 = "id=1&s=db.users.id&t=data.ID", *users2 = "id=2&s=db.users.id&t=data.ID";
	const char *orders = "id=1&s=db.orders.id&t=data.ID", *prefix = "id=1&s=db.users&t=data.ID";
	const char *spaced = "id=9&s=my+src&t=data.ID", *plain = "s=db.users.id";
	const char *keys[] = {users1, users2, orders, prefix, spaced, plain};
	for (size_t i = 0; i < 6; i++)
		cr_assert_eq(add(c, keys[i], "v", t), SCACHE_OK);

	size_t removed = 99;
	cr_assert_eq(scache_cache_invalidate_source(c, "db.users.id", 11, &removed), SCACHE_OK);
	cr_assert_eq(removed, 2);
	cr_assert(!has(c, users1) && !has(c, users2));
	cr_assert(has(c, orders) && has(c, prefix) && has(c, plain));
	cr_assert_eq(scache_cache_invalidate_source(c, "my src", 6, &removed), SCACHE_OK);
	cr_assert_eq(removed, 1);
	cr_assert(!has(c, spaced));
	cr_assert_eq(scache_cache_invalidate_source(c, "nosuch", 6, NULL), SCACHE_OK);

	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	cr_assert_eq(st.entries, 3);
	cr_assert_eq(st.invalidations, 3);
	cr_assert_eq(scache_cache_invalidate_source(NULL, "x", 1, &removed), SCACHE_EINVAL);
	cr_assert_eq(removed, 0);
	cr_assert_eq(scache_cache_invalidate_source(c, NULL, 1, NULL), SCACHE_EINVAL);
	scache_cache_free(c);
}

Test(cache, invalidate_source_refuses_adds_whose_load_began_before_it)
{
	scache_cache *c = new_cache((scache_cache_config){0});
	const char *k = "id=1&s=db.users.id&t=data.ID";
	uint64_t before = scache_cache_begin_load(c);
	cr_assert_eq(scache_cache_invalidate_source(c, "db.users.id", 11, NULL), SCACHE_OK);
	cr_assert_eq(add(c, k, "old", before), SCACHE_ESTALE);
	/* a flush's guard: loads of other sources begun before are refused too */
	cr_assert_eq(add(c, "id=1&s=db.orders.id&t=data.ID", "old", before), SCACHE_ESTALE);
	cr_assert_eq(add(c, k, "new", scache_cache_begin_load(c)), SCACHE_OK);
	cr_assert(has(c, k));
	scache_cache_free(c);
}

Test(cache, an_entry_counts_its_allocation_as_malloc_rounds_it_and_its_bucket_share)
{
	size_t h = scache_cache_entry_overhead();
	for (size_t k = 1; k < 64; k++)
		for (size_t v = 0; v < 300; v += 7) {
			size_t cost = scache_cache_entry_cost(k, v);
			size_t chunk = cost - 8; /* 8: the share of the buckets */
			cr_assert_eq(chunk % 16, 0, "a malloc chunk is a multiple of 16");
			cr_assert_geq(chunk, h + k + v + 8, "the request and malloc's size field");
			cr_assert_lt(chunk, h + k + v + 8 + 16, "rounded up, not more");
		}
	cr_assert_lt(scache_cache_entry_cost(1, 1), scache_cache_entry_cost(1, 200));
}
