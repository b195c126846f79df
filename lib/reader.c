/*
 * reader.c: reading invalidations from every shard of a Kinesis stream, without ever
 * silently losing one.
 *
 * Positions. Each shard keeps the sequence number of the last record read; a shard with
 * nothing read yet keeps where it started (LATEST, TRIM_HORIZON, or a time). Iterators
 * are only a cache of a position: when one expires (ExpiredIteratorException) or is
 * refused (InvalidArgumentException), a new one is taken from the position:
 * AFTER_SEQUENCE_NUMBER, or AT_TIMESTAMP a safety margin (30 s of propagation and 5 min
 * of clock skew) before the start of the
 * newest successful read for a shard started at LATEST. An empty poll keeps the position.
 * (An AT_TIMESTAMP request left unanswered, as kinesalite does when no record follows the
 * time, falls back to TRIM_HORIZON: more than needed, never less.)
 *
 * Shards. ListShards runs at creation, when a shard closes (or a shard or the stream goes
 * missing), and on a slow timer; never on every poll. A closed shard is read to its end
 * and then its children from TRIM_HORIZON; a child waits until every parent it has (two
 * after a merge) is finished. A shard's end is recognised from any of the three signals
 * implementations give: ChildShards in GetRecords, a missing NextShardIterator, or an
 * EndingSequenceNumber in ListShards followed by an empty read.
 *
 * Gaps. Whenever the reader cannot prove it saw every record since its position it calls
 * on_gap and restarts at TRIM_HORIZON where it can: the stream was deleted (and maybe
 * recreated: a shard's StartingSequenceNumber changed, a sequence number "did not come
 * from this stream", or check_stream saw it), a shard vanished before it was read to its
 * end, or a position is older than the stream's retention (RetentionPeriodHours, read at
 * creation).
 *
 * Recreation. AWS fails the old iterators of a recreated stream, but kinesalite keeps them
 * working on the new one, and either way what was put to the old stream after our last
 * read is lost. So every stream_check_interval_ms (at most once a second:
 * DescribeStreamSummary allows 20 calls a second per account, for all readers) a poll
 * first compares the stream's creation time and open shard count (see check_stream).
 *
 * Listings. A ListShards listing is refused, failing the poll and keeping the shards
 * known, when it names a shard twice, hands back a NextToken it gave before, or runs past
 * MAX_LIST_PAGES pages or MAX_LIST_SHARDS shards: a malformed answer must not loop.
 *
 * Messages go to on_log, else stderr; one repeating within LOG_REPEAT_S is dropped and
 * counted (see reader_log).
 *
 * Polls. One poll reads every readable shard concurrently (curl multi) until caught up
 * (MillisBehindLatest 0 and a short page), following NextShardIterator. Polls are
 * single-flight: scache_reader_sync() callers share a poll in flight when it began late
 * enough for them, which is what lets a request wait for "a poll that began after I
 * arrived" instead of polling itself, and keeps N threads from multiplying GetRecords
 * calls (the service allows 5 per second per shard, for all readers together).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinesis.h"
#include "reader.h"
#include "record.h"
#include "scache/cache.h"
#include "scache/stream.h"

#define GET_RECORDS_LIMIT 10000
#define MAX_ROUNDS        64 /* rounds of calls within one poll */
#define MAX_ITER_RETRIES  3  /* fresh iterators for one shard within one poll */
/* 30 s for propagation, plus the 5 minutes of clock skew SigV4 lets a client have: a
 * time is taken from our clock and compared with the service's arrival times */
#define AT_TIMESTAMP_MARGIN_S   330.0
#define RETENTION_MARGIN_S      300.0
#define AT_TIMESTAMP_TIMEOUT_MS 3000L /* see at_timestamp_fallback */
/* One listing: MaxResults is 10000 a page, so 1000 pages hold any real stream; the bounds
 * keep a malformed answer from paging (and growing) forever. */
#define MAX_LIST_PAGES  1000
#define MAX_LIST_SHARDS 100000
/* The stream check (DescribeStreamSummary: 20 calls a second per account): */
#define STREAM_CHECK_DEFAULT_MS 10000u
#define STREAM_CHECK_MIN_MS     1000u /* at most once a second, whatever is configured */
#define LOG_REPEAT_S            30.0  /* the same message at most once per this long */
#define LOG_SLOTS               16    /* messages remembered for that */

typedef enum start_kind { START_LATEST, START_TRIM_HORIZON, START_AT_TIMESTAMP } start_kind;

typedef struct shard {
	char id[64];
	char parent[64];
	char adjacent[64];
	char start_seq[128]; /* StartingSequenceNumber per ListShards */
	char end_seq[128];   /* EndingSequenceNumber per ListShards, "" while open */
	char last_seq[128];  /* last record read, "" when none */
	char *iter;          /* current iterator, NULL when one must be taken */
	start_kind start;    /* where to start while last_seq is "" */
	double start_ts;     /* AT_TIMESTAMP, Unix seconds */
	double last_good;    /* Unix seconds when the newest successful read began */
	int finished;        /* read to its end */
	int listed;          /* scratch: seen in this ListShards */
	int iter_tries;      /* scratch: iterators taken in this poll */
	int more;            /* scratch: behind, read again in this poll */
} shard;

/* A message recently shown, to drop its repeats (see reader_log). */
typedef struct log_slot {
	uint64_t hash; /* of the message's key, 0 when the slot is free */
	uint64_t shown_ns;
	unsigned dropped; /* repeats dropped since it was shown */
} log_slot;

struct scache_reader {
	kinesis_client *c;
	scache_reader_callbacks cb;
	shard *shards;
	size_t n, cap;
	int need_list;
	uint64_t last_list_ns;
	double retention_s;
	double retention_margin_s;
	/* a gap was reported for the whole stream (deleted, or recreated): the next listing
	 * restarts every shard at TRIM_HORIZON */
	int stream_missing;
	double created_ts;          /* StreamCreationTimestamp, 0 when unknown */
	uint64_t check_interval_ns; /* see check_stream */
	uint64_t last_check_ns;
	size_t max_list_pages, max_list_shards;
	scache_poll_info *cur; /* the poll in progress (poller thread only) */
	/* messages: touched by the thread polling (or creating), one at a time */
	log_slot log[LOG_SLOTS];
	double log_repeat_s;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	int in_flight;
	uint64_t in_flight_started;
	uint64_t polls_started;
	int have_done;
	scache_poll_info last; /* the newest completed poll */
	int have_ok;
	uint64_t last_ok_started;
	scache_reader_stats stats;
};

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void copy_str(char *dst, size_t len, const char *src)
{
	kinesis_fmt(dst, len, "%s", src ? src : "");
}

/* ---- messages -------------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ? h : 1;
}

/* The default sink: one line on stderr, control bytes shown as \xNN so that text from
 * the service's answers cannot forge lines. */
static void log_stderr(const char *msg)
{
	char line[1200];
	size_t n = 0;
	for (const char *p = msg; *p && n + 5 < sizeof line; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch < 0x20 || ch == 0x7f)
			n += (size_t)snprintf(line + n, sizeof line - n, "\\x%02x", ch);
		else
			line[n++] = (char)ch;
	}
	line[n] = '\0';
	fprintf(stderr, "libscache: %s\n", line);
}

/*
 * Tell a message to on_log (or stderr). A message whose key (the message itself when key
 * is NULL; callers pass a key without the parts that vary, such as a sequence number)
 * was shown less than log_repeat_s ago is dropped and counted; the next one shown says
 * how many were dropped.
 */
__attribute__((format(printf, 3, 4))) static void reader_log(scache_reader *r, const char *key,
                                                             const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	uint64_t h = hash_str(key ? key : msg), now = scache_now_ns(NULL);
	uint64_t repeat_ns = (uint64_t)(r->log_repeat_s * 1e9);
	log_slot *slot = NULL, *victim = NULL; /* a free slot, else the one shown longest ago */
	for (size_t i = 0; i < LOG_SLOTS && !slot; i++) {
		log_slot *l = &r->log[i];
		if (l->hash == h)
			slot = l;
		else if (!victim || (victim->hash && (!l->hash || l->shown_ns < victim->shown_ns)))
			victim = l;
	}
	if (slot && now - slot->shown_ns < repeat_ns) {
		slot->dropped++;
		return;
	}
	if (!slot) {
		slot = victim; /* forgets the repeats it dropped, if any */
		slot->hash = h;
		slot->dropped = 0;
	}
	if (slot->dropped && (size_t)len < sizeof msg)
		kinesis_fmt(msg + len, sizeof msg - (size_t)len,
		            " (%u more like it in the last %.0f s not shown)", slot->dropped,
		            (double)(now - slot->shown_ns) / 1e9);
	slot->shown_ns = now;
	slot->dropped = 0;
	if (r->cb.on_log)
		r->cb.on_log(r->cb.arg, msg);
	else
		log_stderr(msg);
}

/* ---- poll bookkeeping ------------------------------------------------------------ */

static void poll_fail(scache_reader *r, scache_err err, const char *msg)
{
	if (r->cur->err != SCACHE_OK)
		return; /* the first error tells the story */
	r->cur->err = err;
	copy_str(r->cur->message, sizeof r->cur->message, msg);
}

static void report_gap(scache_reader *r, const char *why)
{
	r->cur->gap = 1;
	pthread_mutex_lock(&r->mu);
	r->stats.gaps++;
	pthread_mutex_unlock(&r->mu);
	/* a sink of messages that also has on_gap learns of the gap there */
	if (!r->cb.on_log || !r->cb.on_gap)
		reader_log(r, NULL, "stream '%s': gap: %s",
		           kinesis_client_settings(r->c)->stream_name, why);
	if (r->cb.on_gap)
		r->cb.on_gap(r->cb.arg, why);
}

/* ---- shards ---------------------------------------------------------------------- */

static shard *shard_find(scache_reader *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->shards[i].id, id))
			return &r->shards[i];
	return NULL;
}

static void shard_reset(shard *s, start_kind start)
{
	free(s->iter);
	s->iter = NULL;
	s->last_seq[0] = '\0';
	s->start = start;
	s->start_ts = 0;
	s->last_good = wall_now();
	s->finished = 0;
}

static void shards_clear(scache_reader *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->shards[i].iter);
	r->n = 0;
}

static shard *shard_add(scache_reader *r, const kinesis_shard *ks, start_kind start)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		shard *p = realloc(r->shards, cap * sizeof *p);
		if (!p)
			return NULL;
		r->shards = p;
		r->cap = cap;
	}
	shard *s = &r->shards[r->n++];
	memset(s, 0, sizeof *s);
	copy_str(s->id, sizeof s->id, ks->id);
	copy_str(s->parent, sizeof s->parent, ks->parent);
	copy_str(s->adjacent, sizeof s->adjacent, ks->adjacent_parent);
	copy_str(s->start_seq, sizeof s->start_seq, ks->starting_seq);
	copy_str(s->end_seq, sizeof s->end_seq, ks->ending_seq);
	s->start = start;
	s->last_good = wall_now();
	s->listed = 1;
	return s;
}

static void shard_remove(scache_reader *r, size_t i)
{
	free(r->shards[i].iter);
	r->shards[i] = r->shards[--r->n];
}

/* A parent we do not track (expired, or older than our start) counts as finished. */
static int parents_done(scache_reader *r, const shard *s)
{
	const char *ps[2] = {s->parent, s->adjacent};
	for (int k = 0; k < 2; k++) {
		if (!ps[k][0])
			continue;
		shard *p = shard_find(r, ps[k]);
		if (p && !p->finished)
			return 0;
	}
	return 1;
}

static void shard_finish(scache_reader *r, shard *s)
{
	s->finished = 1;
	free(s->iter);
	s->iter = NULL;
	r->need_list = 1; /* learn its children */
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The ID of a shard the listing names twice, or NULL. *oom when out of memory. */
static const char *listed_twice(const kinesis_shard *all, size_t total, int *oom)
{
	const char *dup = NULL;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	const char **ids = malloc((total ? total : 1) * sizeof *ids);
	*oom = !ids;
	if (!ids)
		return NULL;
	for (size_t i = 0; i < total; i++)
		ids[i] = all[i].id;
	qsort(ids, total, sizeof *ids, cmp_str_ptr);
	for (size_t i = 1; i < total && !dup; i++)
		if (!strcmp(ids[i - 1], ids[i]))
			dup = ids[i];
	free(ids);
	return dup;
}

/*
 * Fetch every page of one listing into *all (*total shards; their strings live in the
 * answers kept in *bodies). A listing that would not end is refused: a NextToken seen
 * before in the same listing, more than max_list_pages pages or max_list_shards shards.
 */
static scache_err list_pages(scache_reader *r, int initial, kinesis_shard **all, size_t *total,
                             json_object ***bodies, size_t *nbodies)
{
	const kinesis_settings *st = kinesis_client_settings(r->c);
	kinesis_shard *ks;
	size_t nks;
	const char *token = NULL;
	const char **tokens = NULL; /* asked so far, in bodies */
	scache_err err = SCACHE_OK;
	char why[320];

	do {
		kinesis_result res;
		if (*nbodies >= r->max_list_pages) {
			err = SCACHE_ESERVICE;
			kinesis_fmt(
			    why, sizeof why,
			    "ListShards: stream '%s' still has a NextToken after %zu pages: "
			    "the listing is refused",
			    st->stream_name, *nbodies);
			poll_fail(r, err, why);
			goto out;
		}
		json_object *req = kinesis_req_list_shards(st->stream_name, token);
		if (!req) {
			err = SCACHE_ENOMEM;
			poll_fail(r, err, "out of memory");
			goto out;
		}
		kinesis_call(r->c, "ListShards", req, &res);
		json_object_put(req);
		if (res.err) {
			if (res.fail == KINESIS_FAIL_NOTFOUND && !initial && *nbodies == 0) {
				if (!r->stream_missing) {
					kinesis_fmt(why, sizeof why,
					            "stream '%s' not found (deleted?): %s",
					            st->stream_name, res.message);
					report_gap(r, why);
					shards_clear(r);
					r->stream_missing = 1;
				}
			}
			err = res.err;
			poll_fail(r, err, res.message);
			kinesis_result_clear(&res);
			goto out;
		}
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
		json_object **nb = realloc(*bodies, (*nbodies + 1) * sizeof *nb);
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
		const char **nt = realloc(tokens, (*nbodies + 1) * sizeof *nt);
		if (nb)
			*bodies = nb;
		if (nt)
			tokens = nt;
		if (!nb || !nt) {
			kinesis_result_clear(&res);
			err = SCACHE_ENOMEM;
			poll_fail(r, err, "out of memory");
			goto out;
		}
		tokens[*nbodies] = token; /* NULL for the first page */
		if (kinesis_parse_shards(res.body, &ks, &nks, &token)) {
			kinesis_result_clear(&res);
			err = SCACHE_ESERVICE;
			poll_fail(r, err, "ListShards: malformed answer");
			goto out;
		}
		(*bodies)[(*nbodies)++] = res.body; /* keeps the strings of ks and token alive */
		res.body = NULL;
		for (size_t k = 0; token && k < *nbodies; k++) {
			if (!tokens[k] || strcmp(tokens[k], token) != 0)
				continue;
			/* it would page forever */
			free(ks);
			err = SCACHE_ESERVICE;
			kinesis_fmt(
			    why, sizeof why,
			    "ListShards: malformed answer: page %zu of stream '%s' hands back "
			    "the NextToken '%.40s%s' of page %zu (a cycle): the listing is "
			    "refused",
			    *nbodies, st->stream_name, token, strlen(token) > 40 ? "..." : "",
			    k + 1);
			poll_fail(r, err, why);
			goto out;
		}
		if (nks > r->max_list_shards - *total) {
			free(ks);
			err = SCACHE_ESERVICE;
			kinesis_fmt(
			    why, sizeof why,
			    "ListShards: stream '%s' lists more than %zu shards: the listing "
			    "is refused",
			    st->stream_name, r->max_list_shards);
			poll_fail(r, err, why);
			goto out;
		}
		kinesis_shard *na = realloc(*all, (*total + nks + 1) * sizeof *na);
		if (!na) {
			free(ks);
			err = SCACHE_ENOMEM;
			poll_fail(r, err, "out of memory");
			goto out;
		}
		*all = na;
		memcpy(*all + *total, ks, nks * sizeof *ks);
		*total += nks;
		free(ks);
	} while (token);
out:
	free(tokens);
	return err;
}

/*
 * List the shards and reconcile. initial: the first listing at creation, where shards
 * start at `start` and closed ones are finished when starting at LATEST.
 */
static scache_err list_shards(scache_reader *r, int initial, start_kind start)
{
	const kinesis_settings *st = kinesis_client_settings(r->c);
	kinesis_shard *all = NULL;
	size_t total = 0;
	json_object **bodies = NULL;
	size_t nbodies = 0;
	scache_err err;
	char why[320];
	int restarted = 0, oom;

	err = list_pages(r, initial, &all, &total, &bodies, &nbodies);
	if (err)
		goto out;
	const char *dup = listed_twice(all, total, &oom);
	if (oom || dup) {
		err = oom ? SCACHE_ENOMEM : SCACHE_ESERVICE;
		kinesis_fmt(why, sizeof why,
		            "ListShards: malformed answer: stream '%s' lists shard %s twice: the "
		            "listing is refused",
		            st->stream_name, dup ? dup : "");
		poll_fail(r, err, oom ? "out of memory" : why);
		goto out;
	}

	if (r->stream_missing) {
		/* the stream is back: everything in it is newer than the gap reported */
		r->stream_missing = 0;
		r->created_ts = 0; /* the next check learns the new stream's */
		initial = 1;
		start = START_TRIM_HORIZON;
	}
	for (size_t i = 0; i < r->n; i++)
		r->shards[i].listed = 0;
	for (size_t i = 0; i < total; i++) {
		shard *s = shard_find(r, all[i].id);
		const char *sign = NULL;
		if (s && all[i].starting_seq && s->start_seq[0] &&
		    strcmp(s->start_seq, all[i].starting_seq) != 0)
			sign = "has a new starting sequence number";
		/* a stream gains shards only by resharding, and those have a parent */
		else if (!s && !initial && !all[i].parent && !all[i].adjacent_parent)
			sign = "is new and has no parent";
		if (sign) {
			/* each shard is listed once, and all are new after this: at most once */
			assert(!restarted);
			if (restarted) {
				err = SCACHE_ESERVICE;
				poll_fail(r, err, "ListShards: the listing contradicts itself");
				goto out;
			}
			restarted = 1;
			kinesis_fmt(why, sizeof why, "stream '%s' was recreated (shard %s %s)",
			            st->stream_name, all[i].id, sign);
			report_gap(r, why);
			shards_clear(r);
			r->created_ts = 0; /* the next check learns the new stream's */
			initial = 1;
			start = START_TRIM_HORIZON;
			i = (size_t)-1; /* start over: every shard is new */
			continue;
		}
		if (s) {
			s->listed = 1;
			if (all[i].ending_seq && !s->end_seq[0])
				copy_str(s->end_seq, sizeof s->end_seq, all[i].ending_seq);
			continue;
		}
		s = shard_add(r, &all[i], initial ? start : START_TRIM_HORIZON);
		if (!s) {
			err = SCACHE_ENOMEM;
			poll_fail(r, err, "out of memory");
			goto out;
		}
		/* nothing new arrives in a shard closed before we started at LATEST */
		if (initial && start == START_LATEST && all[i].ending_seq)
			s->finished = 1;
	}
	for (size_t i = r->n; i-- > 0;) {
		shard *s = &r->shards[i];
		if (s->listed)
			continue;
		if (!s->finished) {
			kinesis_fmt(why, sizeof why,
			            "shard %s of stream '%s' vanished before it was read "
			            "to its end",
			            s->id, st->stream_name);
			report_gap(r, why);
		}
		shard_remove(r, i);
	}
	r->need_list = 0;
	r->last_list_ns = scache_now_ns(NULL);
	pthread_mutex_lock(&r->mu);
	r->stats.shards = r->n;
	pthread_mutex_unlock(&r->mu);
out:
	for (size_t i = 0; i < nbodies; i++)
		json_object_put(bodies[i]);
	free(bodies);
	free(all);
	return err;
}

static int shard_readable(scache_reader *r, const shard *s)
{
	return !s->finished && parents_done(r, s);
}

/*
 * An AT_TIMESTAMP iterator request went unanswered. kinesalite never answers one when no
 * record of the shard is at or after the time (AWS does); rather than stall every poll,
 * resume from TRIM_HORIZON: it covers everything still retained, so nothing is missed
 * (old invalidations are delivered again, which only costs cache entries).
 */
static void at_timestamp_fallback(scache_reader *r, shard *s, const char *message)
{
	reader_log(r, NULL,
	           "stream '%s' shard %s: no AT_TIMESTAMP iterator (%s): resuming from "
	           "TRIM_HORIZON",
	           kinesis_client_settings(r->c)->stream_name, s->id, message);
	s->start = START_TRIM_HORIZON;
	s->start_ts = 0;
}

/* Take iterators for readable shards without one. Returns how many were taken. */
static size_t take_iterators(scache_reader *r)
{
	const kinesis_settings *st = kinesis_client_settings(r->c);
	size_t m = 0, taken = 0;
	/* arrays of pointers: NOLINTNEXTLINE(bugprone-sizeof-expression) */
	shard **who = malloc((r->n ? r->n : 1) * sizeof *who);
	json_object **reqs =
	    calloc(r->n ? r->n : 1, sizeof *reqs); /* NOLINT(bugprone-sizeof-expression) */
	kinesis_result *res = calloc(r->n ? r->n : 1, sizeof *res);
	double *asked = calloc(r->n ? r->n : 1, sizeof *asked);
	char why[400];

	if (!who || !reqs || !res || !asked) {
		poll_fail(r, SCACHE_ENOMEM, "out of memory");
		goto out;
	}
	/* two passes: positions first, then times (AT_TIMESTAMP), which get a call of their
	 * own: see at_timestamp_fallback */
	size_t m_pos = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < r->n; i++) {
			shard *s = &r->shards[i];
			if (s->iter || !shard_readable(r, s))
				continue;
			int at_time = !s->last_seq[0] && s->start == START_AT_TIMESTAMP;
			if (at_time != pass)
				continue;
			if (s->iter_tries++ >= MAX_ITER_RETRIES) {
				kinesis_fmt(why, sizeof why,
				            "shard %s: no usable iterator after %d tries", s->id,
				            MAX_ITER_RETRIES);
				poll_fail(r, SCACHE_ESERVICE, why);
				continue;
			}
			const char *type;
			if (s->last_seq[0])
				type = "AFTER_SEQUENCE_NUMBER";
			else if (s->start == START_TRIM_HORIZON)
				type = "TRIM_HORIZON";
			else if (s->start == START_LATEST)
				type = "LATEST";
			else
				type = "AT_TIMESTAMP";
			asked[m] = wall_now();
			reqs[m] = kinesis_req_get_shard_iterator(st->stream_name, s->id, type,
			                                         s->last_seq, s->start_ts);
			if (!reqs[m]) {
				poll_fail(r, SCACHE_ENOMEM, "out of memory");
				continue;
			}
			who[m++] = s;
		}
		if (pass == 0)
			m_pos = m;
	}
	kinesis_call_many(r->c, "GetShardIterator", reqs, m_pos, res);
	long at_timeout =
	    st->timeout_ms < AT_TIMESTAMP_TIMEOUT_MS ? st->timeout_ms : AT_TIMESTAMP_TIMEOUT_MS;
	kinesis_call_many_opts(r->c, "GetShardIterator", reqs + m_pos, m - m_pos, res + m_pos,
	                       at_timeout, 0);
	for (size_t k = 0; k < m; k++) {
		shard *s = who[k];
		const char *it = res[k].err ? NULL : kinesis_json_str(res[k].body, "ShardIterator");
		if (it) {
			s->iter = strdup(it);
			if (!s->iter) {
				poll_fail(r, SCACHE_ENOMEM, "out of memory");
				continue;
			}
			taken++;
			if (!s->last_seq[0] && s->start == START_LATEST) {
				/* from now on the position is a time: LATEST would skip records */
				s->start = START_AT_TIMESTAMP;
				s->start_ts = asked[k] - AT_TIMESTAMP_MARGIN_S;
			}
			continue;
		}
		if (!res[k].err) {
			poll_fail(r, SCACHE_ESERVICE,
			          "GetShardIterator: answer without ShardIterator");
		} else if (res[k].fail == KINESIS_FAIL_INVALID && s->last_seq[0]) {
			/* the position is trimmed away, or from an older stream of the same name */
			kinesis_fmt(why, sizeof why,
			            "shard %s: cannot resume after sequence number %s: %s", s->id,
			            s->last_seq, res[k].message);
			report_gap(r, why);
			shard_reset(s, START_TRIM_HORIZON);
			taken++; /* progress: try again from TRIM_HORIZON */
		} else if (res[k].fail == KINESIS_FAIL_TRANSPORT && k >= m_pos) {
			at_timestamp_fallback(r, s, res[k].message);
			taken++;
		} else if (res[k].fail == KINESIS_FAIL_NOTFOUND) {
			r->need_list =
			    1; /* the next listing tells whether shard or stream is gone */
			taken++;
		} else {
			poll_fail(r, res[k].err, res[k].message);
		}
	}
out:
	for (size_t k = 0; k < m; k++) {
		kinesis_result_clear(&res[k]);
		json_object_put(reqs[k]);
	}
	free(who);
	free(reqs);
	free(res);
	free(asked);
	return taken;
}

/* Returns -1 when out of memory: the record is neither delivered nor passed (its keys
 * would be lost), and the shard must be read again from its position. */
static int deliver_record(scache_reader *r, shard *s, json_object *rec)
{
	const char *data = kinesis_json_str(rec, "Data");
	const char *seq = kinesis_json_str(rec, "SequenceNumber");
	const kinesis_settings *st = kinesis_client_settings(r->c);
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	record_keys keys;
	char why[128], key[128];
	scache_err err = SCACHE_ERECORD;

	/* the repeats of a malformed record differ in sequence number only */
	kinesis_fmt(key, sizeof key, "malformed record in shard %s", s->id);

	r->cur->records++;
	if (!seq) {
		r->cur->bad_records++;
		reader_log(r, key, "stream '%s' shard %s: record without sequence number skipped",
		           st->stream_name, s->id);
		return 0;
	}
	if (data)
		raw = kinesis_b64_decode(data, strlen(data), &rawlen);
	if (!raw) {
		copy_str(why, sizeof why, data ? "Data is not base64" : "no Data");
	} else {
		err = record_parse(st->format, raw, rawlen, &keys, why, sizeof why);
	}
	free(raw);
	if (err == SCACHE_ENOMEM) {
		r->cur->records--; /* it will be read again */
		return -1;
	}
	if (err == SCACHE_OK) {
		if (keys.bad) {
			r->cur->bad_records++;
			reader_log(
			    r, key,
			    "stream '%s' shard %s sequence %s: malformed record (%s): its %zu "
			    "valid keys still invalidate",
			    st->stream_name, s->id, seq, why, keys.n);
		}
		if (keys.n) {
			if (r->cb.on_record)
				r->cb.on_record(r->cb.arg, s->id, seq,
				                (const char *const *)keys.keys, keys.lens, keys.n);
			if (r->cb.on_keys)
				r->cb.on_keys(r->cb.arg, (const char *const *)keys.keys, keys.lens,
				              keys.n);
		}
		r->cur->keys += keys.n;
		record_keys_clear(&keys);
	} else {
		r->cur->bad_records++;
		reader_log(r, key, "stream '%s' shard %s sequence %s: malformed record skipped: %s",
		           st->stream_name, s->id, seq, why);
	}
	copy_str(s->last_seq, sizeof s->last_seq, seq);
	return 0;
}

/* Handle one GetRecords answer for shard s. */
static void read_answer(scache_reader *r, shard *s, kinesis_result *res, double began)
{
	json_object *recs = kinesis_json_array(res->body, "Records");
	json_object *v;
	size_t n = recs ? json_object_array_length(recs) : 0;
	int64_t behind = 0;

	if (!recs) {
		poll_fail(r, SCACHE_ESERVICE, "GetRecords: answer without Records");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (deliver_record(r, s, json_object_array_get_idx(recs, i))) {
			/* keep the position before that record: a new iterator reads it again */
			free(s->iter);
			s->iter = NULL;
			s->more = 0;
			poll_fail(r, SCACHE_ENOMEM, "out of memory while parsing a record");
			return;
		}
	}
	s->last_good = began;
	if (!s->last_seq[0] && s->start == START_AT_TIMESTAMP)
		s->start_ts = began - AT_TIMESTAMP_MARGIN_S;
	s->iter_tries = 0;
	if (json_object_object_get_ex(res->body, "MillisBehindLatest", &v))
		behind = json_object_get_int64(v);

	const char *next = kinesis_json_str(res->body, "NextShardIterator");
	json_object *children = kinesis_json_array(res->body, "ChildShards");
	free(s->iter);
	s->iter = NULL;
	if (!next || (children && json_object_array_length(children) > 0)) {
		shard_finish(r, s); /* signals 1 and 2: the shard's end was reached */
		return;
	}
	/* an empty page behind the tip is not the end: the records may lie further on */
	if (s->end_seq[0] && ((n == 0 && behind <= 0) ||
	                      (s->last_seq[0] && kinesis_seq_cmp(s->last_seq, s->end_seq) >= 0))) {
		shard_finish(r, s); /* signal 3: closed per ListShards, nothing left */
		return;
	}
	s->iter = strdup(next);
	if (!s->iter) {
		poll_fail(r, SCACHE_ENOMEM, "out of memory");
		return;
	}
	/* behind the tip, even after an empty page (records may lie further on), or a
	 * closed shard not yet read to its end (its children wait for it): read again */
	s->more = behind > 0 || n >= GET_RECORDS_LIMIT || s->end_seq[0];
}

/* One round of GetRecords on every readable shard with an iterator. Returns whether
 * another round is needed. */
static int read_round(scache_reader *r)
{
	size_t m = 0;
	int again = 0;
	/* arrays of pointers: NOLINTNEXTLINE(bugprone-sizeof-expression) */
	shard **who = malloc((r->n ? r->n : 1) * sizeof *who);
	json_object **reqs =
	    calloc(r->n ? r->n : 1, sizeof *reqs); /* NOLINT(bugprone-sizeof-expression) */
	kinesis_result *res = calloc(r->n ? r->n : 1, sizeof *res);

	if (!who || !reqs || !res) {
		poll_fail(r, SCACHE_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < r->n; i++) {
		shard *s = &r->shards[i];
		if (!s->iter || !shard_readable(r, s) || !s->more)
			continue;
		reqs[m] = kinesis_req_get_records(s->iter, GET_RECORDS_LIMIT);
		if (!reqs[m]) {
			poll_fail(r, SCACHE_ENOMEM, "out of memory");
			continue;
		}
		who[m++] = s;
	}
	double began = wall_now();
	kinesis_call_many(r->c, "GetRecords", reqs, m, res);
	for (size_t k = 0; k < m; k++) {
		shard *s = who[k];
		s->more = 0;
		if (!res[k].err) {
			int was_finished = s->finished;
			read_answer(r, s, &res[k], began);
			if (s->more || (s->finished && !was_finished))
				again = 1;
			continue;
		}
		switch (res[k].fail) {
		case KINESIS_FAIL_EXPIRED:
		case KINESIS_FAIL_INVALID:
			/* take a new iterator from the position and read again */
			free(s->iter);
			s->iter = NULL;
			s->more = 1;
			again = 1;
			/* with no sequence number to resume after, nothing would notice a stream
			 * recreated meanwhile (AT_TIMESTAMP works on the new one): list first */
			if (!s->last_seq[0])
				r->need_list = 1;
			break;
		case KINESIS_FAIL_NOTFOUND:
			/* the shard or the stream is gone: the next listing tells which (a gap) */
			free(s->iter);
			s->iter = NULL;
			s->more = 1;
			r->need_list = 1;
			again = 1;
			break;
		default:
			poll_fail(r, res[k].err, res[k].message);
			break;
		}
	}
out:
	for (size_t k = 0; k < m; k++) {
		kinesis_result_clear(&res[k]);
		json_object_put(reqs[k]);
	}
	free(who);
	free(reqs);
	free(res);
	return again;
}

/* Positions older than the retention may have lost records to trimming. */
static void check_retention(scache_reader *r)
{
	double now = wall_now();
	char why[320];
	for (size_t i = 0; i < r->n; i++) {
		shard *s = &r->shards[i];
		if (!shard_readable(r, s) ||
		    now - s->last_good <= r->retention_s - r->retention_margin_s)
			continue;
		kinesis_fmt(why, sizeof why,
		            "shard %s was last read %.0f s ago, longer than the stream's retention "
		            "(%.0f s): records may have been trimmed",
		            s->id, now - s->last_good, r->retention_s);
		report_gap(r, why);
		shard_reset(s, START_TRIM_HORIZON);
	}
}

static size_t open_shards(const scache_reader *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += !r->shards[i].finished && !r->shards[i].end_seq[0];
	return n;
}

/* Read StreamCreationTimestamp (0 when absent) and OpenShardCount (-1 when absent) from a
 * DescribeStreamSummary answer. */
static void parse_summary(json_object *body, double *created, long *open)
{
	json_object *sum, *v;
	*created = 0;
	*open = -1;
	if (!json_object_object_get_ex(body, "StreamDescriptionSummary", &sum))
		return;
	if (json_object_object_get_ex(sum, "StreamCreationTimestamp", &v))
		*created = json_object_get_double(v);
	if (json_object_object_get_ex(sum, "OpenShardCount", &v))
		*open = (long)json_object_get_int64(v);
}

/*
 * A stream deleted and recreated under the same name between two polls: on AWS the old
 * iterators and positions fail, but kinesalite keeps them working on the new stream, and
 * either way the records put to the old one after our last read are lost. So, every
 * check_interval_ns, one DescribeStreamSummary: a new StreamCreationTimestamp is a gap;
 * an OpenShardCount unlike ours lists the shards, which tells a reshard (children with
 * parents) from a recreation (shards without parents, or new starting sequence numbers:
 * kinesalite's creation times are whole seconds, so a quick recreation can keep its
 * timestamp). Any failure lists the shards too: ListShards tells a deleted stream, and
 * it allows 1000 calls a second per stream where this allows 20 per account.
 */
static void check_stream(scache_reader *r)
{
	const kinesis_settings *st = kinesis_client_settings(r->c);
	uint64_t now = scache_now_ns(NULL);
	kinesis_result res;
	double created;
	long open;
	char why[320];

	if (now - r->last_check_ns < r->check_interval_ns || r->stream_missing)
		return;
	r->last_check_ns = now;
	json_object *req = kinesis_req_stream(st->stream_name);
	if (!req) {
		r->need_list = 1;
		return;
	}
	kinesis_call(r->c, "DescribeStreamSummary", req, &res);
	json_object_put(req);
	parse_summary(res.err ? NULL : res.body, &created, &open);
	kinesis_result_clear(&res);
	if (created <= 0 || open < 0) { /* failed (or an odd answer) */
		r->need_list = 1;
		return;
	}
	if (r->created_ts > 0 && created != r->created_ts) {
		kinesis_fmt(why, sizeof why,
		            "stream '%s' was recreated (created at %.3f, not %.3f as when it was "
		            "read before)",
		            st->stream_name, created, r->created_ts);
		report_gap(r, why);
		shards_clear(r);
		r->stream_missing = 1; /* the next listing starts every shard at TRIM_HORIZON */
		r->need_list = 1;
	} else if ((size_t)open != open_shards(r)) {
		r->need_list = 1;
	}
	r->created_ts = created;
}

static void do_poll(scache_reader *r, scache_poll_info *info)
{
	uint64_t calls0 = kinesis_client_calls(r->c), thr0 = kinesis_client_throttled(r->c);
	const kinesis_settings *st = kinesis_client_settings(r->c);

	r->cur = info;
	check_retention(r);
	check_stream(r);
	if (!r->need_list && scache_now_ns(NULL) - r->last_list_ns >=
	                         (uint64_t)st->list_shards_interval_ms * 1000000u)
		r->need_list = 1;
	for (size_t i = 0; i < r->n; i++) {
		r->shards[i].more = 1;
		r->shards[i].iter_tries = 0;
	}
	for (int round = 0;; round++) {
		if (round == MAX_ROUNDS) {
			poll_fail(r, SCACHE_ESERVICE,
			          "still behind after the most rounds of calls one poll makes");
			break;
		}
		if (r->need_list) {
			if (list_shards(r, 0, START_TRIM_HORIZON) != SCACHE_OK)
				break;
			for (size_t i = 0; i < r->n; i++)
				if (!r->shards[i].iter)
					r->shards[i].more = 1;
		}
		take_iterators(r);
		if (info->err != SCACHE_OK)
			break;
		int again = read_round(r);
		/* a shard left without an iterator (AT_TIMESTAMP fallback, reset after a gap)
		 * is still unread: take its iterator and read it in this poll */
		for (size_t i = 0; i < r->n && !again; i++)
			again = !r->shards[i].iter && r->shards[i].more &&
			        shard_readable(r, &r->shards[i]);
		if (info->err != SCACHE_OK || (!again && !r->need_list))
			break;
	}
	info->calls = kinesis_client_calls(r->c) - calls0;
	pthread_mutex_lock(&r->mu);
	r->stats.throttled += kinesis_client_throttled(r->c) - thr0;
	r->stats.calls += info->calls;
	r->stats.shards = r->n;
	pthread_mutex_unlock(&r->mu);
	r->cur = NULL;
}

/* ---- public ---------------------------------------------------------------------- */

scache_err scache_reader_new(const scache_stream_config *config, scache_start_at start,
                             const scache_reader_callbacks *callbacks, scache_reader **out,
                             char *errbuf, size_t errlen)
{
	kinesis_settings s;
	scache_reader *r;
	scache_err err;
	scache_poll_info info;
	pthread_condattr_t ca;

	if (!out || (start != SCACHE_START_LATEST && start != SCACHE_START_TRIM_HORIZON))
		return SCACHE_EINVAL;
	*out = NULL;
	err = kinesis_settings_resolve(config, 1, &s, errbuf, errlen);
	if (err)
		return err;
	if (s.format != SCACHE_RECORD_SCACHE) {
		kinesis_settings_clear(&s);
		if (errbuf && errlen)
			kinesis_fmt(errbuf, errlen, "unknown record format %d", (int)s.format);
		return SCACHE_ECONFIG;
	}
	r = calloc(1, sizeof *r);
	if (!r) {
		kinesis_settings_clear(&s);
		return SCACHE_ENOMEM;
	}
	err = kinesis_client_new(&s, &r->c, errbuf, errlen);
	kinesis_settings_clear(&s);
	if (err) {
		free(r);
		return err;
	}
	if (callbacks)
		r->cb = *callbacks;
	r->retention_s = 24 * 3600.0;
	r->retention_margin_s = RETENTION_MARGIN_S;
	r->log_repeat_s = LOG_REPEAT_S;
	r->max_list_pages = MAX_LIST_PAGES;
	r->max_list_shards = MAX_LIST_SHARDS;
	unsigned check_ms = config && config->stream_check_interval_ms
	                        ? config->stream_check_interval_ms
	                        : STREAM_CHECK_DEFAULT_MS;
	if (check_ms < STREAM_CHECK_MIN_MS)
		check_ms = STREAM_CHECK_MIN_MS;
	r->check_interval_ns = (uint64_t)check_ms * 1000000u;
	r->last_check_ns = scache_now_ns(NULL); /* the summary below is the first check */
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);

	/* the retention bounds how long a position stays valid */
	kinesis_result res;
	json_object *req = kinesis_req_stream(kinesis_client_settings(r->c)->stream_name);
	if (!req) {
		scache_reader_free(r);
		return SCACHE_ENOMEM;
	}
	kinesis_call(r->c, "DescribeStreamSummary", req, &res);
	json_object_put(req);
	json_object *sum, *hours;
	if (!res.err && json_object_object_get_ex(res.body, "StreamDescriptionSummary", &sum) &&
	    json_object_object_get_ex(sum, "RetentionPeriodHours", &hours) &&
	    json_object_get_int(hours) > 0)
		r->retention_s = json_object_get_int(hours) * 3600.0;
	long open_ignored;
	parse_summary(res.err ? NULL : res.body, &r->created_ts, &open_ignored);
	/* only a missing stream is fatal here; other failures show again in ListShards */
	err = res.fail == KINESIS_FAIL_NOTFOUND ? res.err : SCACHE_OK;
	if (err && errbuf && errlen)
		kinesis_fmt(errbuf, errlen, "%s", res.message);
	kinesis_result_clear(&res);
	if (!err) {
		memset(&info, 0, sizeof info);
		r->cur = &info;
		err = list_shards(r, 1,
		                  start == SCACHE_START_LATEST ? START_LATEST : START_TRIM_HORIZON);
		if (!err) {
			take_iterators(r);
			err = info.err;
		}
		r->cur = NULL;
		if (err && errbuf && errlen)
			kinesis_fmt(errbuf, errlen, "%s", info.message);
	}
	if (err) {
		scache_reader_free(r);
		return err;
	}
	r->stats.calls = kinesis_client_calls(r->c);
	r->stats.shards = r->n;
	*out = r;
	return SCACHE_OK;
}

void scache_reader_free(scache_reader *r)
{
	if (!r)
		return;
	shards_clear(r);
	free(r->shards);
	kinesis_client_free(r->c);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

static void finish_poll(scache_reader *r, scache_poll_info *info)
{
	/* caller holds r->mu */
	info->finished_ns = scache_now_ns(NULL);
	r->stats.polls++;
	r->stats.records += info->records;
	r->stats.bad_records += info->bad_records;
	r->stats.keys += info->keys;
	if (info->err != SCACHE_OK) {
		r->stats.poll_errors++;
	} else {
		r->have_ok = 1;
		r->last_ok_started = info->started_ns;
		r->stats.last_success_started_ns = info->started_ns;
	}
	r->last = *info;
	r->have_done = 1;
	r->in_flight = 0;
	pthread_cond_broadcast(&r->cv);
}

scache_err scache_reader_sync(scache_reader *r, uint64_t since_ns, uint64_t timeout_ms,
                              scache_poll_info *info)
{
	scache_poll_info local;
	uint64_t deadline = 0;
	int waited = 0;

	if (!r)
		return SCACHE_EINVAL;
	if (!info)
		info = &local;
	if (timeout_ms)
		deadline = scache_now_ns(NULL) + timeout_ms * 1000000u;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		if (r->have_done && r->last.started_ns >= since_ns) {
			*info = r->last;
			info->shared = 1;
			pthread_mutex_unlock(&r->mu);
			return info->err;
		}
		if (!r->in_flight)
			break;
		/* wait for the poll in flight; if it began too early, the next one follows */
		waited = 1;
		if (deadline) {
			struct timespec ts = {(time_t)(deadline / 1000000000u),
			                      (long)(deadline % 1000000000u)};
			if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT &&
			    scache_now_ns(NULL) >= deadline) {
				pthread_mutex_unlock(&r->mu);
				memset(info, 0, sizeof *info);
				info->err = SCACHE_ETRANSPORT;
				info->shared = 1;
				kinesis_fmt(
				    info->message, sizeof info->message,
				    "timed out after %llu ms waiting for a poll of the stream",
				    (unsigned long long)timeout_ms);
				return info->err;
			}
		} else {
			pthread_cond_wait(&r->cv, &r->mu);
		}
	}
	(void)waited;
	r->in_flight = 1;
	r->polls_started++;
	memset(info, 0, sizeof *info);
	info->started_ns = scache_now_ns(NULL);
	r->in_flight_started = info->started_ns;
	pthread_mutex_unlock(&r->mu);

	do_poll(r, info);

	pthread_mutex_lock(&r->mu);
	finish_poll(r, info);
	pthread_mutex_unlock(&r->mu);
	return info->err;
}

int scache_reader_fresh(scache_reader *r, uint64_t since_ns)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->mu);
	int fresh = r->have_ok && r->last_ok_started >= since_ns;
	pthread_mutex_unlock(&r->mu);
	return fresh;
}

void scache_reader_stats_get(scache_reader *r, scache_reader_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof *out);
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	*out = r->stats;
	pthread_mutex_unlock(&r->mu);
}

/* ---- test hooks (reader.h) -------------------------------------------------------- */

void reader_test_set_retention(scache_reader *r, double retention_s, double margin_s)
{
	pthread_mutex_lock(&r->mu);
	r->retention_s = retention_s;
	r->retention_margin_s = margin_s;
	pthread_mutex_unlock(&r->mu);
}

size_t reader_test_spoil_iterators(scache_reader *r, const char *replacement)
{
	size_t n = 0;
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n; i++) {
		if (!r->shards[i].iter)
			continue;
		char *p = strdup(replacement);
		if (!p)
			continue;
		free(r->shards[i].iter);
		r->shards[i].iter = p;
		n++;
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

size_t reader_test_positions(scache_reader *r, char (*ids)[64], char (*seqs)[128], size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n && n < max; i++, n++) {
		copy_str(ids[n], 64, r->shards[i].id);
		copy_str(seqs[n], 128, r->shards[i].finished ? "finished" : r->shards[i].last_seq);
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

uint64_t reader_test_connects(scache_reader *r)
{
	pthread_mutex_lock(&r->mu);
	uint64_t n = kinesis_client_connects(r->c);
	pthread_mutex_unlock(&r->mu);
	return n;
}

void reader_test_set_list_limits(scache_reader *r, size_t max_pages, size_t max_shards)
{
	pthread_mutex_lock(&r->mu);
	r->max_list_pages = max_pages;
	r->max_list_shards = max_shards;
	pthread_mutex_unlock(&r->mu);
}

void reader_test_set_log_repeat(scache_reader *r, double seconds)
{
	pthread_mutex_lock(&r->mu);
	r->log_repeat_s = seconds;
	pthread_mutex_unlock(&r->mu);
}
