/*
 * bench_memory: what the cache costs in memory, measured from outside (the process's
 * resident set) and inside (the heap, and the cache's own accounting).
 *
 *   bench_memory --entries N [--json FILE]   fill a cache with N entries, report RSS
 *   bench_memory --overfill X [--bound B] [--json FILE]
 *                                             add X times the bound's worth of entries
 *                                             to a cache bounded at B bytes [64 MiB]
 *
 * Run one measurement per process (bench/run does), so that one fill's freed memory
 * does not hide in the next one's figures.
 *
 * Entries are what the middleware caches: the key is a data ID string
 * ("id=<n>&s=db.users.id&t=data.ID", 28 to 34 bytes), the value 100 bytes. TTLs are a
 * day, so nothing expires while measuring. --entries: max_bytes is large enough that
 * nothing is evicted (checked); RSS is /proc/self/statm's resident pages, read after
 * scache_cache_new and after the fill; the heap is glibc's mallinfo2().uordblks at the
 * same points. "Beyond key and value" is (delta / N) - (mean key length + 100), for RSS
 * and heap, next to what the bound counts per entry (scache_cache_entry_cost).
 * --overfill: after every 1024 adds the cache's byte count (scache_cache_stats.bytes,
 * what the bound applies to) is read; the largest seen, the last, the entries and
 * evictions, and the RSS growth are reported. "held" is 1 when no reading exceeded the
 * bound. Exit status 1 when a measurement could not be made (an add failed, an entry
 * was evicted while filling), not for any figure.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scache/cache.h"

#define VALUE_LEN 100u
#define DAY_MS    (24u * 3600u * 1000u)

static const unsigned char value_bytes[VALUE_LEN] = {'v', 'a', 'l', 'u', 'e'};

static void fail(const char *what)
{
	fprintf(stderr, "bench_memory: %s\n", what);
	exit(1);
}

/* Resident set of this process in bytes, or 0 if /proc is unreadable. */
static uint64_t rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	int n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 ? (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static size_t make_key(char *buf, size_t size, uint64_t i)
{
	int n = snprintf(buf, size, "id=%llu&s=db.users.id&t=data.ID", (unsigned long long)i);
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static scache_cache *new_cache(size_t max_bytes)
{
	scache_cache_config cfg = {
	    .max_bytes = max_bytes, .min_ttl_ms = DAY_MS, .max_ttl_ms = DAY_MS, .seed = 1};
	scache_cache *c;
	if (scache_cache_new(&cfg, &c) != SCACHE_OK)
		fail("scache_cache_new failed");
	return c;
}

static void add(scache_cache *c, uint64_t i, uint64_t *key_bytes)
{
	char key[64];
	size_t klen = make_key(key, sizeof key, i);
	scache_add_opts opts = {.token = scache_cache_begin_load(c), .saved_ns = 1000};
	if (scache_cache_add(c, key, klen, value_bytes, VALUE_LEN, &opts) != SCACHE_OK)
		fail("scache_cache_add failed");
	*key_bytes += klen;
}

static int fill(uint64_t n, FILE *json)
{
	/* Keys + values + a generous 512 B/entry: nothing may be evicted. */
	scache_cache *c = new_cache((size_t)n * (64 + VALUE_LEN + 512));
	uint64_t key_bytes = 0;
	struct mallinfo2 h0 = mallinfo2();
	uint64_t r0 = rss_bytes();
	for (uint64_t i = 0; i < n; i++)
		add(c, i, &key_bytes);
	uint64_t r1 = rss_bytes();
	struct mallinfo2 h1 = mallinfo2();
	scache_cache_stats st;
	scache_cache_stats_get(c, &st);
	if (st.entries != n || st.evictions)
		fail("entries were evicted while filling");
	if (!r0 || !r1)
		fail("cannot read /proc/self/statm");
	double key_mean = (double)key_bytes / (double)n;
	double rss_per = ((double)r1 - (double)r0) / (double)n;
	double heap_per = ((double)h1.uordblks - (double)h0.uordblks) / (double)n;
	/* what the bound counts per entry beyond key and value (scache_cache_entry_cost) */
	double counted = (double)st.bytes / (double)n - key_mean - VALUE_LEN;
	printf("%llu entries (key %.1f B mean, value %u B): RSS %.1f MiB (+%.1f MiB), "
	       "%.1f B/entry beyond key and value (heap: %.1f; the bound counts %.1f)\n",
	       (unsigned long long)n, key_mean, VALUE_LEN, (double)r1 / 1048576.0,
	       ((double)r1 - (double)r0) / 1048576.0, rss_per - key_mean - VALUE_LEN,
	       heap_per - key_mean - VALUE_LEN, counted);
	fprintf(json,
	        "{\"program\":\"bench_memory\",\"section\":\"fill\",\"entries\":%llu,"
	        "\"key_bytes_mean\":%.3f,\"value_bytes\":%u,\"rss_before\":%llu,"
	        "\"rss_after\":%llu,\"rss_per_entry\":%.3f,\"heap_per_entry\":%.3f,"
	        "\"rss_beyond_key_value\":%.3f,\"heap_beyond_key_value\":%.3f,"
	        "\"accounted_overhead\":%.3f,\"accounted_bytes\":%llu}\n",
	        (unsigned long long)n, key_mean, VALUE_LEN, (unsigned long long)r0,
	        (unsigned long long)r1, rss_per, heap_per, rss_per - key_mean - VALUE_LEN,
	        heap_per - key_mean - VALUE_LEN, counted, (unsigned long long)st.bytes);
	scache_cache_free(c);
	return 0;
}

static int overfill(unsigned times, size_t bound, FILE *json)
{
	scache_cache *c = new_cache(bound);
	uint64_t key_bytes = 0, added = 0, offered = 0, max_seen = 0;
	uint64_t target = (uint64_t)times * bound;
	uint64_t r0 = rss_bytes();
	scache_cache_stats st;
	while (offered < target) {
		uint64_t before = key_bytes;
		add(c, added++, &key_bytes);
		offered += scache_cache_entry_cost((size_t)(key_bytes - before), VALUE_LEN);
		if (added % 1024 == 0) {
			scache_cache_stats_get(c, &st);
			if (st.bytes > max_seen)
				max_seen = st.bytes;
		}
	}
	scache_cache_stats_get(c, &st);
	if (st.bytes > max_seen)
		max_seen = st.bytes;
	uint64_t r1 = rss_bytes();
	if (!r0 || !r1)
		fail("cannot read /proc/self/statm");
	int held = max_seen <= bound;
	printf("bound %zu B, %u x overfilled (%llu adds, %llu B offered): %llu entries, "
	       "%llu evictions, %llu B counted (largest seen %llu), RSS +%.1f MiB "
	       "(%.2fx the bound): %s\n",
	       bound, times, (unsigned long long)added, (unsigned long long)offered,
	       (unsigned long long)st.entries, (unsigned long long)st.evictions,
	       (unsigned long long)st.bytes, (unsigned long long)max_seen,
	       ((double)r1 - (double)r0) / 1048576.0, ((double)r1 - (double)r0) / (double)bound,
	       held ? "held" : "EXCEEDED");
	fprintf(json,
	        "{\"program\":\"bench_memory\",\"section\":\"overfill\",\"bound\":%zu,"
	        "\"times\":%u,\"adds\":%llu,\"offered_bytes\":%llu,\"entries\":%llu,"
	        "\"evictions\":%llu,\"bytes\":%llu,\"max_bytes_seen\":%llu,"
	        "\"rss_growth\":%lld,\"rss_growth_vs_bound\":%.4f,\"held\":%s}\n",
	        bound, times, (unsigned long long)added, (unsigned long long)offered,
	        (unsigned long long)st.entries, (unsigned long long)st.evictions,
	        (unsigned long long)st.bytes, (unsigned long long)max_seen,
	        (long long)r1 - (long long)r0, ((double)r1 - (double)r0) / (double)bound,
	        held ? "true" : "false");
	scache_cache_free(c);
	return 0;
}

static unsigned long long number(const char *flag, const char *v, unsigned long long lo,
                                 unsigned long long hi)
{
	char *end;
	unsigned long long n = v ? strtoull(v, &end, 10) : 0;
	if (!v || *end || end == v || n < lo || n > hi) {
		fprintf(stderr,
		        "bench_memory: %s takes a number from %llu to %llu\n"
		        "usage: bench_memory --entries N [--json FILE]\n"
		        "       bench_memory --overfill X [--bound BYTES] [--json FILE]\n",
		        flag, lo, hi);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	unsigned long long entries = 0, times = 0, bound = 64ull << 20;
	const char *json = NULL;
	for (int a = 1; a < argc; a++) {
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;
		if (!strcmp(argv[a], "--entries"))
			entries = number(argv[a++], v, 1, 100000000);
		else if (!strcmp(argv[a], "--overfill"))
			times = number(argv[a++], v, 1, 1000);
		else if (!strcmp(argv[a], "--bound"))
			bound = number(argv[a++], v, 1 << 16, 1ull << 34);
		else if (!strcmp(argv[a], "--json") && v)
			json = argv[++a];
		else
			number(argv[a], NULL, 0, 0); /* the usage */
	}
	if (!entries == !times)
		number("--entries or --overfill (one of them)", NULL, 1, 0);
	FILE *jf = json ? fopen(json, "w") : fopen("/dev/null", "w");
	if (!jf)
		fail("cannot write the --json file");
	int rc = entries ? fill(entries, jf) : overfill((unsigned)times, (size_t)bound, jf);
	if (fclose(jf))
		fail("writing the --json file failed");
	return rc;
}
