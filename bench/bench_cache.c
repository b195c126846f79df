/*
 * bench_cache: throughput and memory of the invalidatable cache (lib/cache.c).
 *
 * Prints a table: for 10^5 and 10^6 entries (64-byte keys, 100-byte values) and for 1
 * and 2 threads, the nanoseconds per get-hit, get-miss, add and remove
 * (scache_cache_invalidate), the heap bytes per entry beyond key and value, and a
 * comparison of lock kinds and stripe counts for gets; each figure with its target.
 *
 * Usage: bench_cache [--quick] [--entries N] [--reps R] [--min-ops N] [--no-lock-kinds]
 *                    [--json FILE]
 *   --quick: 10^5 entries only; --entries: that one size instead of 10^5 and 10^6;
 *   --reps: runs per figure [3]; --min-ops: gets per thread per timed run [10^6];
 *   --no-lock-kinds: skip the lock-kind comparison; --json: the figures, machine-readable
 *   (bench/run's section 6). A smoke run of the harness: --entries 100000 --reps 1
 *   --min-ops 100000 --no-lock-kinds.
 *
 * Method. Keys are distinct data-ID-like strings padded to 64 bytes, built before any
 * timing; each thread walks a precomputed shuffled index so the table is not walked in
 * insertion order. max_bytes is 4 GiB and TTLs are a day, so nothing is evicted or
 * expires. Each thread of a run does the same number of operations; a run's wall time
 * is from the earliest thread start to the latest thread end (threads start together
 * at a barrier). "ns/op" is per thread (wall / ops per thread); "Mops/s" is the total
 * of all threads. Adds and removes split the keys into one part per thread; gets use
 * all keys, each thread in its own order, looping until at least 10^6 operations per
 * thread. Removes run last. Each figure is the best of reps runs (fresh fills for adds
 * and removes), as other load on the machine only ever slows a run down. Memory is glibc's
 * mallinfo2().uordblks (bytes in use, all arenas) after the fill minus before it, per entry, minus
 * key and value (164 bytes).
 */
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scache/cache.h"

#define KEY_LEN     64u
#define VALUE_LEN   100u
#define MAX_THREADS 2u
static size_t min_ops = 1000000u; /* per thread, per timed get run (--min-ops) */
static unsigned reps = 3u;        /* each figure is the best of this many runs (--reps) */
#define TARGET_HIT_NS   150.0
#define TARGET_OVERHEAD 96.0

enum op { OP_ADD, OP_GET_HIT, OP_GET_MISS, OP_REMOVE };

typedef struct keyset {
	size_t n;
	unsigned char *hit;           /* n keys of KEY_LEN bytes: added to the cache */
	unsigned char *miss;          /* n keys never added */
	uint32_t *order[MAX_THREADS]; /* per thread: a shuffle of 0..n-1 */
} keyset;

typedef struct worker {
	pthread_t tid;
	scache_cache *cache;
	const keyset *ks;
	enum op op;
	unsigned index, nthreads;
	size_t ops;      /* operations done */
	size_t failures; /* unexpected results */
	uint64_t start_ns, end_ns;
	pthread_barrier_t *barrier;
} worker;

typedef struct result {
	double ns_per_op; /* per thread */
	double mops;      /* all threads */
} result;

static const unsigned char value_bytes[VALUE_LEN] = {
    'v', 'a', 'l', 'u', 'e', /* the rest are zero */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "bench_cache: out of memory (%zu bytes)\n", n);
		exit(1);
	}
	return p;
}

/* A data-ID-like key: "<kind>:<dataset>/<hex>?<query>", padded with '.' to 64 bytes. */
static void make_key(unsigned char *dst, const char *kind, size_t i)
{
	char buf[KEY_LEN + 1];
	int len = snprintf(buf, sizeof buf, "%s:mesh/dataset-%03zu/object-%012" PRIx64 "?lod=%zu",
	                   kind, i % 997, (uint64_t)i * 0x9e3779b97f4a7c15u >> 16, i % 8);
	size_t used = len < 0 ? 0 : (size_t)len < KEY_LEN ? (size_t)len : KEY_LEN;
	memcpy(dst, buf, used);
	memset(dst + used, '.', KEY_LEN - used);
}

static void keyset_init(keyset *ks, size_t n)
{
	uint64_t seed = 42;
	ks->n = n;
	ks->hit = xmalloc(n * KEY_LEN);
	ks->miss = xmalloc(n * KEY_LEN);
	for (size_t i = 0; i < n; i++) {
		make_key(ks->hit + i * KEY_LEN, "data", i);
		make_key(ks->miss + i * KEY_LEN, "nope", i);
	}
	for (unsigned t = 0; t < MAX_THREADS; t++) {
		uint32_t *o = xmalloc(n * sizeof *o);
		for (size_t i = 0; i < n; i++)
			o[i] = (uint32_t)i;
		for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
			size_t j = (size_t)(rng_next(&seed) % (i + 1));
			uint32_t tmp = o[i];
			o[i] = o[j];
			o[j] = tmp;
		}
		ks->order[t] = o;
	}
}

static void keyset_free(keyset *ks)
{
	free(ks->hit);
	free(ks->miss);
	for (unsigned t = 0; t < MAX_THREADS; t++)
		free(ks->order[t]);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	const keyset *ks = w->ks;
	const uint32_t *order = ks->order[w->index];
	size_t n = ks->n, failures = 0, ops = 0;
	/* Adds and removes: thread t takes the keys whose index is t modulo nthreads, in
	 * its own shuffled order, so the parts are disjoint and together cover all keys. */
	int split = w->op == OP_ADD || w->op == OP_REMOVE;
	size_t target = split ? n / w->nthreads : (n < min_ops ? min_ops : n);

	pthread_barrier_wait(w->barrier);
	w->start_ns = now_ns();
	switch (w->op) {
	case OP_ADD: {
		scache_add_opts opts = {0};
		for (size_t i = 0; i < n; i++) {
			size_t k = order[i];
			if (k % w->nthreads != w->index)
				continue;
			opts.token = scache_cache_begin_load(w->cache);
			opts.saved_ns = 1000;
			if (scache_cache_add(w->cache, ks->hit + k * KEY_LEN, KEY_LEN, value_bytes,
			                     VALUE_LEN, &opts) != SCACHE_OK)
				failures++;
			ops++;
		}
		break;
	}
	case OP_GET_HIT:
	case OP_GET_MISS: {
		const unsigned char *keys = w->op == OP_GET_HIT ? ks->hit : ks->miss;
		scache_err want = w->op == OP_GET_HIT ? SCACHE_OK : SCACHE_ENOTFOUND;
		size_t i = 0;
		while (ops < target) {
			scache_value v;
			scache_err err = scache_cache_get(
			    w->cache, keys + (size_t)order[i] * KEY_LEN, KEY_LEN, &v);
			if (err != want || (err == SCACHE_OK && v.len != VALUE_LEN))
				failures++;
			scache_value_release(&v);
			ops++;
			if (++i == n)
				i = 0;
		}
		break;
	}
	case OP_REMOVE:
		for (size_t i = 0; i < n; i++) {
			size_t k = order[i];
			int removed = 0;
			if (k % w->nthreads != w->index)
				continue;
			if (scache_cache_invalidate(w->cache, ks->hit + k * KEY_LEN, KEY_LEN,
			                            &removed) != SCACHE_OK ||
			    !removed)
				failures++;
			ops++;
		}
		break;
	}
	w->end_ns = now_ns();
	w->ops = ops;
	w->failures = failures;
	(void)target;
	return NULL;
}

static result run(scache_cache *cache, const keyset *ks, enum op op, unsigned nthreads)
{
	worker w[MAX_THREADS];
	pthread_barrier_t barrier;
	result r = {0, 0};
	size_t total = 0, failures = 0;
	uint64_t start = UINT64_MAX, end = 0;

	pthread_barrier_init(&barrier, NULL, nthreads);
	for (unsigned t = 0; t < nthreads; t++) {
		w[t] = (worker){.cache = cache,
		                .ks = ks,
		                .op = op,
		                .index = t,
		                .nthreads = nthreads,
		                .barrier = &barrier};
		if (pthread_create(&w[t].tid, NULL, worker_main, &w[t]) != 0) {
			fprintf(stderr, "bench_cache: pthread_create failed\n");
			exit(1);
		}
	}
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(w[t].tid, NULL);
		total += w[t].ops;
		failures += w[t].failures;
		if (w[t].start_ns < start)
			start = w[t].start_ns;
		if (w[t].end_ns > end)
			end = w[t].end_ns;
	}
	pthread_barrier_destroy(&barrier);
	if (failures) {
		fprintf(stderr, "bench_cache: %zu unexpected results (op %d, %u threads)\n",
		        failures, (int)op, nthreads);
		exit(1);
	}
	double wall = (double)(end - start);
	r.ns_per_op = wall / ((double)total / nthreads);
	r.mops = (double)total / wall * 1e3;
	return r;
}

static scache_cache *new_cache(unsigned stripes, scache_lock_kind lock)
{
	scache_cache_config cfg = {0};
	scache_cache *c;
	cfg.max_bytes = (size_t)4 << 30;
	cfg.min_ttl_ms = cfg.max_ttl_ms = 24u * 3600u * 1000u;
	cfg.stripes = stripes;
	cfg.lock = lock;
	cfg.seed = 1;
	if (scache_cache_new(&cfg, &c) != SCACHE_OK) {
		fprintf(stderr, "bench_cache: scache_cache_new failed\n");
		exit(1);
	}
	return c;
}

static void check_full(scache_cache *c, size_t n)
{
	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	if (st.entries != n || st.evictions != 0) {
		fprintf(stderr,
		        "bench_cache: %" PRIu64 " entries, %" PRIu64 " evictions after "
		        "adding %zu\n",
		        st.entries, st.evictions, n);
		exit(1);
	}
}

/* The better of two runs: the machine may be shared, and noise only slows a run down. */
static result best(result a, result b)
{
	return a.mops >= b.mops ? a : b;
}

static const char *verdict(int ok)
{
	return ok ? "PASS" : "MISS";
}

static void print_row(const char *what, result r)
{
	printf("  %-10s %10.1f %12.2f\n", what, r.ns_per_op, r.mops);
}

static const char *const op_keys[4] = {"add", "get_hit", "get_miss", "remove"};

static unsigned long arg_number(const char *flag, const char *v, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long n = v ? strtoul(v, &end, 10) : 0;
	if (!v || *end || end == v || n < lo || n > hi) {
		fprintf(stderr,
		        "bench_cache: %s takes a number from %lu to %lu\n"
		        "usage: bench_cache [--quick] [--entries N] [--reps R] [--min-ops N] "
		        "[--no-lock-kinds] [--json FILE]\n",
		        flag, lo, hi);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	int quick = 0, lock_kinds = 1;
	size_t sizes[2] = {100000, 1000000};
	size_t nsizes = 2;
	const char *json = NULL;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--no-lock-kinds") == 0) {
			lock_kinds = 0;
		} else if (strcmp(argv[i], "--entries") == 0) {
			sizes[0] = arg_number(argv[i++], v, 1000, 10000000);
			nsizes = 1;
		} else if (strcmp(argv[i], "--reps") == 0) {
			reps = (unsigned)arg_number(argv[i++], v, 1, 100);
		} else if (strcmp(argv[i], "--min-ops") == 0) {
			min_ops = arg_number(argv[i++], v, 1, 1000000000);
		} else if (strcmp(argv[i], "--json") == 0 && v) {
			json = argv[++i];
		} else {
			arg_number(argv[i], NULL, 0, 0); /* the usage */
		}
	}
	if (quick)
		nsizes = 1;
	int all_pass = 1;
	FILE *jf = json ? fopen(json, "w") : NULL;
	if (json && !jf) {
		fprintf(stderr, "bench_cache: cannot write %s\n", json);
		return 1;
	}
	if (jf)
		fprintf(jf,
		        "{\"program\":\"bench_cache\",\"key_bytes\":%u,\"value_bytes\":%u,"
		        "\"reps\":%u,\"min_ops\":%zu,\"accounted_overhead\":%zu,\"sizes\":[\n",
		        KEY_LEN, VALUE_LEN, reps, min_ops, scache_cache_entry_overhead());

	printf("libscache cache benchmark: %u-byte keys, %u-byte values, no eviction\n", KEY_LEN,
	       VALUE_LEN);
	printf("ns/op is per thread; Mops/s is the total over all threads; "
	       "default config: 16 stripes, rwlock\n");
	double load[1] = {0};
	if (getloadavg(load, 1) != 1)
		load[0] = -1;
	printf("each figure: best of %u runs; load average at start: %.2f\n", reps, load[0]);
	printf("accounted overhead, scache_cache_entry_overhead(): %zu bytes/entry\n\n",
	       scache_cache_entry_overhead());

	for (size_t si = 0; si < nsizes; si++) {
		size_t n = sizes[si];
		keyset ks;
		result res[MAX_THREADS + 1][4];
		double overhead[MAX_THREADS + 1];
		keyset_init(&ks, n);

		for (unsigned nt = 1; nt <= MAX_THREADS; nt++) {
			for (unsigned rep = 0; rep < reps; rep++) {
				scache_cache *c = new_cache(16, SCACHE_LOCK_RWLOCK);
				struct mallinfo2 before = mallinfo2();
				result r[4];
				r[OP_ADD] = run(c, &ks, OP_ADD, nt);
				struct mallinfo2 after = mallinfo2();
				check_full(c, n);
				if (rep == 0)
					overhead[nt] =
					    ((double)after.uordblks - (double)before.uordblks) /
					        (double)n -
					    (KEY_LEN + VALUE_LEN);
				r[OP_GET_HIT] = run(c, &ks, OP_GET_HIT, nt);
				r[OP_GET_MISS] = run(c, &ks, OP_GET_MISS, nt);
				r[OP_REMOVE] = run(c, &ks, OP_REMOVE, nt);
				check_full(c, 0);
				scache_cache_free(c);
				for (unsigned o = 0; o < 4; o++)
					res[nt][o] = rep == 0 ? r[o] : best(res[nt][o], r[o]);
			}
		}

		if (jf) {
			fprintf(jf, "%s{\"entries\":%zu,\"threads\":[", si ? "," : "", n);
			for (unsigned nt = 1; nt <= MAX_THREADS; nt++) {
				fprintf(jf, "%s{\"threads\":%u,", nt > 1 ? "," : "", nt);
				for (unsigned o = 0; o < 4; o++)
					fprintf(jf, "\"%s_ns\":%.2f,\"%s_mops\":%.4f,", op_keys[o],
					        res[nt][o].ns_per_op, op_keys[o], res[nt][o].mops);
				fprintf(jf, "\"heap_beyond_key_value\":%.2f}", overhead[nt]);
			}
			fprintf(jf, "],\"lock_kinds\":[");
		}
		printf("== %zu entries ==\n", n);
		for (unsigned nt = 1; nt <= MAX_THREADS; nt++) {
			printf("%u thread%s     %10s %12s\n", nt, nt > 1 ? "s" : " ", "ns/op",
			       "Mops/s");
			print_row("get-hit", res[nt][OP_GET_HIT]);
			print_row("get-miss", res[nt][OP_GET_MISS]);
			print_row("add", res[nt][OP_ADD]);
			print_row("remove", res[nt][OP_REMOVE]);
			printf("  %-10s %10.1f bytes/entry beyond key+value (heap, mallinfo2); "
			       "accounted %zu\n",
			       "memory", overhead[nt], scache_cache_entry_overhead());
		}

		/* Lock kinds, gets of hits. */
		static const struct {
			unsigned stripes;
			scache_lock_kind lock;
			const char *name;
		} kinds[] = {
		    {16, SCACHE_LOCK_RWLOCK, "16 stripes rwlock (default)"},
		    {16, SCACHE_LOCK_MUTEX, "16 stripes mutex"},
		    {1, SCACHE_LOCK_RWLOCK, "1 stripe rwlock"},
		    {1, SCACHE_LOCK_MUTEX, "1 stripe mutex"},
		};
		if (lock_kinds)
			printf("get-hit by lock kind   %14s %10s %14s %10s %8s\n", "1 thr ns/op",
			       "Mops/s", "2 thr ns/op", "Mops/s", "2 vs 1");
		for (size_t k = 0; lock_kinds && k < sizeof kinds / sizeof kinds[0]; k++) {
			scache_cache *c = new_cache(kinds[k].stripes, kinds[k].lock);
			run(c, &ks, OP_ADD, 1);
			check_full(c, n);
			result r1 = run(c, &ks, OP_GET_HIT, 1);
			result r2 = run(c, &ks, OP_GET_HIT, 2);
			for (unsigned rep = 1; rep < reps; rep++) {
				r1 = best(r1, run(c, &ks, OP_GET_HIT, 1));
				r2 = best(r2, run(c, &ks, OP_GET_HIT, 2));
			}
			scache_cache_free(c);
			printf("  %-28s %8.1f %10.2f %14.1f %10.2f %7.2fx\n", kinds[k].name,
			       r1.ns_per_op, r1.mops, r2.ns_per_op, r2.mops, r2.mops / r1.mops);
			if (jf)
				fprintf(jf,
				        "%s{\"name\":\"%s\",\"get_hit_ns_1\":%.2f,\"get_hit_mops_"
				        "1\":%.4f,"
				        "\"get_hit_ns_2\":%.2f,\"get_hit_mops_2\":%.4f}",
				        k ? "," : "", kinds[k].name, r1.ns_per_op, r1.mops,
				        r2.ns_per_op, r2.mops);
		}

		/* Targets. */
		int hit_ok = res[1][OP_GET_HIT].ns_per_op <= TARGET_HIT_NS;
		int scale_hit = res[2][OP_GET_HIT].mops > res[1][OP_GET_HIT].mops;
		int scale_miss = res[2][OP_GET_MISS].mops > res[1][OP_GET_MISS].mops;
		int mem_ok = overhead[1] <= TARGET_OVERHEAD;
		printf("targets (%zu entries)\n", n);
		printf("  get-hit, 1 thread          <= %5.0f ns      %8.1f ns          %s\n",
		       TARGET_HIT_NS, res[1][OP_GET_HIT].ns_per_op, verdict(hit_ok));
		printf("  get-hit, 2 thr total > 1 thr  %8.2f Mops/s vs %8.2f Mops/s  %s\n",
		       res[2][OP_GET_HIT].mops, res[1][OP_GET_HIT].mops, verdict(scale_hit));
		printf("  get-miss, 2 thr total > 1 thr %8.2f Mops/s vs %8.2f Mops/s  %s\n",
		       res[2][OP_GET_MISS].mops, res[1][OP_GET_MISS].mops, verdict(scale_miss));
		printf("  overhead                   <= %5.0f B/entry %8.1f B/entry     %s\n\n",
		       TARGET_OVERHEAD, overhead[1], verdict(mem_ok));
		all_pass = all_pass && hit_ok && scale_hit && scale_miss && mem_ok;
		if (jf)
			fprintf(jf, "],\"targets_met\":%s}\n",
			        hit_ok && scale_hit && scale_miss && mem_ok ? "true" : "false");
		keyset_free(&ks);
	}
	printf("all targets: %s\n", all_pass ? "PASS" : "MISS");
	if (jf) {
		fprintf(jf, "],\"targets_met\":%s}\n", all_pass ? "true" : "false");
		if (fclose(jf)) {
			fprintf(stderr, "bench_cache: writing %s failed\n", json);
			return 1;
		}
	}
	return 0;
}
