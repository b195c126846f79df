/*
 * test_log_sink.c: config.log_file written in batches (lib/log_sink.c). Lines of many
 * threads are written whole, each exactly once, in each thread's order, also while the
 * file is renamed and reopened under them; a line longer than a batch keeps its place;
 * a line is in the file when its emit returns on an idle log. Also in suite "threads"
 * (ThreadSanitizer).
 */
#ifdef SCACHE_STANDALONE_TESTS
#include "standalone.h"
#else
#include <criterion/criterion.h>
#endif

#include "middleware_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], log_path[128];
static scache_cache *cache;
static scache_middleware *mw;

static enum MHD_Result no_handler(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
	(void)cls, (void)c, (void)url, (void)method, (void)version, (void)upload_data;
	(void)upload_data_size, (void)req_cls;
	return MHD_NO; /* no daemon here: the lines come from efficiency_emit */
}

static void start(void)
{
	snprintf(dir, sizeof dir, "/tmp/scache-logsink-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(log_path, sizeof log_path, "%s/scache.log", dir);
	cr_assert_eq(scache_cache_new(NULL, &cache), SCACHE_OK);
	scache_middleware_config mc = {.cache = cache, .handler = no_handler, .log_file = log_path};
	cr_assert_eq(scache_memory_source_new(&mc.source), SCACHE_OK);
	char err[256];
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
}

static void stop(void)
{
	scache_middleware_free(mw);
	mw = NULL;
	scache_cache_free(cache);
	cache = NULL;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (dir[0] && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* The whole content of path (malloc'ed, NUL-terminated), or NULL. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *d = malloc((size_t)n + 1);
	size_t got = fread(d, 1, (size_t)n, f);
	fclose(f);
	d[got] = 0;
	*len = got;
	return d;
}

static void emit(const char *line)
{
	efficiency_emit(mw, line, strlen(line));
}

Test(log_sink, a_line_is_in_the_file_when_its_emit_returns, .init = start, .fini = stop)
{
	size_t len;
	emit("{\"n\":1}");
	char *d = slurp(log_path, &len);
	cr_assert_str_eq(d, "{\"n\":1}\n");
	free(d);
	emit("{\"n\":2}");
	d = slurp(log_path, &len);
	cr_assert_str_eq(d, "{\"n\":1}\n{\"n\":2}\n");
	free(d);
}

Test(log_sink, a_line_longer_than_a_batch_is_whole_and_keeps_its_place, .init = start,
     .fini = stop)
{
	size_t big = 200 * 1024, len;
	char *line = malloc(big + 1);
	memset(line, 'x', big);
	line[0] = '<';
	line[big - 1] = '>';
	line[big] = 0;
	emit("before");
	emit(line);
	emit("after");
	char *d = slurp(log_path, &len);
	cr_assert_eq(len, strlen("before\n") + big + 1 + strlen("after\n"));
	cr_assert_eq(strncmp(d, "before\n<", 8), 0);
	cr_assert_eq(memcmp(d + 7, line, big), 0);
	cr_assert_str_eq(d + 7 + big, "\nafter\n");
	free(d);
	free(line);
}

#define THREADS 4
#define LINES 5000
#define REOPENS 40

static void *writer(void *arg)
{
	int t = (int)(intptr_t)arg;
	char line[512];
	for (int i = 0; i < LINES; i++) {
		/* lengths vary so batches end at every offset of a line */
		int pad = (i * 37 + t * 11) % 300;
		snprintf(line, sizeof line, "{\"t\":%d,\"i\":%d,\"pad\":\"%.*s\"}", t, i, pad,
		         "..........................................................................."
		         "..........................................................................."
		         "..........................................................................."
		         "...........................................................................");
		emit(line);
	}
	return NULL;
}

static void *rotator(void *arg)
{
	(void)arg;
	char rotated[160];
	for (int r = 1; r <= REOPENS; r++) {
		usleep(2000);
		snprintf(rotated, sizeof rotated, "%s.%02d", log_path, r);
		cr_assert_eq(rename(log_path, rotated), 0);
		cr_assert_eq(scache_middleware_reopen_log(mw), SCACHE_OK);
	}
	return NULL;
}

/* Checks every line of d against the next index expected of its thread. */
static void check_lines(char *d, int next[THREADS], size_t *count)
{
	for (char *save = NULL, *l = strtok_r(d, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		int t, i, pad_len;
		char *pad = strstr(l, "\"pad\":\"");
		cr_assert_eq(sscanf(l, "{\"t\":%d,\"i\":%d,", &t, &i), 2, "a whole line: %.80s", l);
		cr_assert(t >= 0 && t < THREADS);
		cr_assert_eq(i, next[t], "thread %d: line %d after %d", t, i, next[t] - 1);
		cr_assert_not_null(pad);
		pad_len = (int)strspn(pad + 7, ".");
		cr_assert_eq(pad_len, (i * 37 + t * 11) % 300, "line %d of thread %d is whole", i, t);
		cr_assert_str_eq(pad + 7 + pad_len, "\"}");
		next[t]++;
		(*count)++;
	}
}

Test(log_sink, lines_of_many_threads_are_whole_once_and_in_order_across_reopens,
     .init = start, .fini = stop)
{
	pthread_t th[THREADS], rot;
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t), 0);
	cr_assert_eq(pthread_create(&rot, NULL, rotator, NULL), 0);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	pthread_join(rot, NULL);
	int next[THREADS] = {0};
	size_t count = 0, len;
	char path[160];
	for (int r = 1; r <= REOPENS + 1; r++) { /* the rotated files, oldest first, then the live one */
		if (r <= REOPENS)
			snprintf(path, sizeof path, "%s.%02d", log_path, r);
		else
			snprintf(path, sizeof path, "%s", log_path);
		char *d = slurp(path, &len);
		cr_assert_not_null(d, "%s", path);
		check_lines(d, next, &count);
		free(d);
	}
	cr_assert_eq(count, (size_t)THREADS * LINES, "every line exactly once");
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(next[t], LINES);
}
