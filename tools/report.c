/*
 * scachectl report [FILE...]: read efficiency logs (the JSON lines the middleware writes;
 * stdin when no file is named, "-" for stdin among files) and print a human summary:
 * totals, hit ratio, p50/p99 of request_ms and stream_ms, time saved against time spent,
 * and the verdict. Lines of other types (summary, warning) are counted; lines that are
 * not JSON objects are skipped and counted, so a log mixed with other output still works.
 *
 * Percentiles are nearest-rank over every request line (exact, memory grows with the
 * number of requests: 16 bytes each).
 */
#include "report.h"

#include <json-c/json.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct samples {
	double *v;
	size_t n, cap;
} samples;

typedef struct totals {
	uint64_t requests, bypassed, hits, misses, evicted, summaries, warnings, skipped;
	uint64_t errors_5xx;
	double stream_ms, saved_ms, request_ms;
	samples req, stream;
	char first_warning[256];
} totals;

static int push(samples *s, double v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		double *p = realloc(s->v, cap * sizeof *p);
		if (!p)
			return -1;
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p of the samples at or below it. */
double report_percentile(double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_double);
	double rank = p * (double)n;
	size_t r = (size_t)rank;
	if ((double)r < rank)
		r++; /* ceil, without libm */
	size_t i = r < 1 ? 0 : r - 1;
	return v[i < n ? i : n - 1];
}

/* A field the middleware writes as a non-negative number; anything else (a negative,
 * a value too large for the counters) marks the line malformed. */
static double num(json_object *o, const char *k, int *ok)
{
	json_object *f;
	if (!json_object_object_get_ex(o, k, &f) ||
	    !(json_object_is_type(f, json_type_double) || json_object_is_type(f, json_type_int))) {
		*ok = 0;
		return 0;
	}
	double v = json_object_get_double(f);
	if (!(v >= 0 && v < 1e18)) { /* also rejects NaN; 1e18 fits a uint64_t */
		*ok = 0;
		return 0;
	}
	return v;
}

static void add_line(totals *t, const char *line)
{
	json_object *o = json_tokener_parse(line);
	json_object *type;
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "type", &type) ||
	    !json_object_is_type(type, json_type_string)) { /* "type":null has no string */
		t->skipped++;
		json_object_put(o);
		return;
	}
	const char *ty = json_object_get_string(type);
	if (!strcmp(ty, "summary")) {
		t->summaries++;
	} else if (!strcmp(ty, "warning")) {
		json_object *m;
		t->warnings++;
		/* a string only: "msg":null gave printf a NULL %s */
		if (!t->first_warning[0] && json_object_object_get_ex(o, "msg", &m) &&
		    json_object_is_type(m, json_type_string)) {
			snprintf(t->first_warning, sizeof t->first_warning, "%s",
			         json_object_get_string(m));
			/* it goes to a terminal: no escape sequences, no forged report lines */
			for (char *c = t->first_warning; *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					*c = '?';
		}
	} else if (!strcmp(ty, "request")) {
		int ok = 1;
		double rq = num(o, "request_ms", &ok), st = num(o, "stream_ms", &ok),
		       sv = num(o, "saved_ms", &ok), h = num(o, "hits", &ok),
		       m = num(o, "misses", &ok), ev = num(o, "evicted", &ok),
		       status = num(o, "status", &ok);
		json_object *b;
		int bypass =
		    json_object_object_get_ex(o, "bypass", &b) && json_object_get_boolean(b);
		if (!ok) {
			t->skipped++;
		} else {
			t->requests++;
			t->bypassed += (uint64_t)bypass;
			t->hits += (uint64_t)h;
			t->misses += (uint64_t)m;
			t->evicted += (uint64_t)ev;
			t->errors_5xx += status >= 500;
			t->stream_ms += st;
			t->saved_ms += sv;
			t->request_ms += rq;
			if (push(&t->req, rq) || push(&t->stream, st))
				t->skipped++;
		}
	} else {
		t->skipped++;
	}
	json_object_put(o);
}

static int read_file(totals *t, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n > 0)
			add_line(t, line);
	}
	free(line);
	return ferror(f) ? -1 : 0;
}

/* Prints the report; returns 1 when the verdict is a warning. */
static int print_report(const totals *t, FILE *out)
{
	fprintf(out, "requests        %llu (%llu with the cache bypassed, %llu answered 5xx)\n",
	        (unsigned long long)t->requests, (unsigned long long)t->bypassed,
	        (unsigned long long)t->errors_5xx);
	uint64_t lookups = t->hits + t->misses;
	fprintf(out, "cache lookups   %llu hits, %llu misses: hit ratio %.1f%%\n",
	        (unsigned long long)t->hits, (unsigned long long)t->misses,
	        lookups ? 100.0 * (double)t->hits / (double)lookups : 0.0);
	fprintf(out, "evicted         %llu entries removed before handlers ran\n",
	        (unsigned long long)t->evicted);
	samples rq = t->req, st = t->stream;
	fprintf(out, "request_ms      p50 %.3f  p99 %.3f  total %.3f\n",
	        report_percentile(rq.v, rq.n, 0.50), report_percentile(rq.v, rq.n, 0.99),
	        t->request_ms);
	fprintf(out,
	        "stream_ms       p50 %.3f  p99 %.3f  total %.3f (time spent waiting for the "
	        "stream)\n",
	        report_percentile(st.v, st.n, 0.50), report_percentile(st.v, st.n, 0.99),
	        t->stream_ms);
	fprintf(out, "saved_ms        total %.3f (load time the hits avoided)\n", t->saved_ms);
	if (t->stream_ms > 0)
		fprintf(out, "saved / spent   %.2f\n", t->saved_ms / t->stream_ms);
	else
		fprintf(out, "saved / spent   n/a (no time spent on the stream)\n");
	fprintf(out, "other lines     %llu summaries, %llu warnings, %llu skipped\n",
	        (unsigned long long)t->summaries, (unsigned long long)t->warnings,
	        (unsigned long long)t->skipped);
	if (t->first_warning[0])
		fprintf(out, "first warning   %s\n", t->first_warning);
	if (t->requests == 0) {
		fprintf(out, "verdict         no requests: nothing to judge\n");
		return 0;
	}
	if (t->saved_ms >= t->stream_ms) {
		fprintf(out,
		        "verdict         the cache pays for itself: %.1f ms saved for %.1f ms "
		        "spent on the stream\n",
		        t->saved_ms, t->stream_ms);
		return 0;
	}
	fprintf(out,
	        "verdict         WARNING: the cache costs more than it saves: %.1f ms "
	        "spent on the stream for %.1f ms saved; consider bounded staleness "
	        "(poll_interval_ms in scache_middleware_config; the example server's "
	        "--poll-interval MS) or caching slower loads\n",
	        t->stream_ms, t->saved_ms);
	return 1;
}

int scachectl_report(int argc, char **argv)
{
	totals t;
	memset(&t, 0, sizeof t);
	int status = 0;
	argc--; /* argv[0] is "report" */
	argv++;
	if (argc < 1) {
		if (read_file(&t, stdin))
			status = 1;
	}
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf(
			    "usage: scachectl report [FILE...]   (stdin when no FILE; - is "
			    "stdin)\n\nExit status: 0 the cache pays for itself (or no requests), "
			    "3 the verdict is a\nWARNING (it costs more than it saves), 1 a file "
			    "could not be read, 2 bad usage.\n");
			free(t.req.v);
			free(t.stream.v);
			return 0;
		}
		FILE *f = strcmp(argv[i], "-") ? fopen(argv[i], "r") : stdin;
		if (!f) {
			fprintf(stderr, "scachectl report: cannot open '%s': %s\n", argv[i],
			        strerror(errno));
			status = 1;
			continue;
		}
		if (read_file(&t, f)) {
			fprintf(stderr, "scachectl report: error reading '%s'\n", argv[i]);
			status = 1;
		}
		if (f != stdin)
			fclose(f);
	}
	if (!(status && t.requests == 0 && t.skipped == 0) && print_report(&t, stdout) &&
	    status == 0)
		status = REPORT_EXIT_WARNING;
	free(t.req.v);
	free(t.stream.v);
	return status;
}
