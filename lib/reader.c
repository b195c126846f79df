/*
 * reader.c: the polling source's reader: reading invalidations from every shard of a
 * Kinesis stream, without ever silently losing one. Which shards exist and may be read
 * is the shard lineage's business (shards.c); this file holds positions, polls and gaps.
 *
 * Positions. Each shard keeps the sequence number of the last record read; a shard with
 * nothing read yet keeps where it started (LATEST, TRIM_HORIZON, or a time). Iterators
 * are only a cache of a position: when one expires (ExpiredIteratorException) or is
 * refused (InvalidArgumentException), a new one is taken from the position:
 * AFTER_SEQUENCE_NUMBER, or AT_TIMESTAMP a safety margin (30 s of propagation and 5 min
 * of clock skew) before the start of the newest successful read for a shard started at
 * LATEST. An empty poll keeps the position. (An AT_TIMESTAMP request left unanswered, as
 * kinesalite does when no record follows the time, falls back to TRIM_HORIZON: more than
 * needed, never less.) A shard's end is recognised from any of the three signals
 * implementations give: ChildShards in GetRecords, a missing NextShardIterator, or an
 * EndingSequenceNumber in ListShards followed by an empty read.
 *
 * Gaps. Whenever the reader cannot prove it saw every record since its position it calls
 * on_gap and restarts at TRIM_HORIZON where it can: the stream was deleted or recreated
 * (shards.c tells), a shard vanished before it was read to its end, a sequence number
 * "did not come from this stream", or a position is older than the stream's retention
 * (RetentionPeriodHours, read at creation).
 *
 * Messages go to on_log, else stderr; one repeating within LOG_REPEAT_S is dropped and
 * counted (see reader_log.c).
 *
 * Records. Each record's data goes to record_read (record.c): scache records yield keys
 * (on_keys); DynamoDB change records of the configured tables yield a key, or a new
 * value (on_value: refresh mode), and are ordered per item by the reader's ddb_versions,
 * which only the thread polling touches (polls never overlap). Records of other tables
 * are counted (foreign_records) and named once per LOG_REPEAT_S per table; changes
 * older than one applied are counted (stale_records) and skipped.
 *
 * Polls. One poll reads every readable shard concurrently (curl multi) until caught up
 * (MillisBehindLatest 0 and a short page), following NextShardIterator. Polls are
 * single-flight: scache_reader_sync() callers share a poll when it began late enough for
 * them, which is what lets a request wait for "a poll that began after I arrived" instead
 * of polling itself, and keeps N threads from multiplying GetRecords calls (the service
 * allows 5 per second per shard, for all readers together). One flag under r->mu says a
 * poll is in flight; a caller either returns the last completed poll (it began at or
 * after its since_ns), waits on r->cv for the one in flight (at most timeout_ms, on
 * CLOCK_MONOTONIC), or polls itself. (pthread_mutex_clocklock held across the poll would
 * do the same, but ThreadSanitizer of GCC 12 does not intercept it.)
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
#include "reader_log.h"
#include "record.h"
#include "scache/cache.h"
#include "scache/stream.h"
#include "shards.h"
#include "util.h"

#define GET_RECORDS_LIMIT 10000
#define MAX_ROUNDS        64 /* rounds of calls within one poll */
#define MAX_ITER_RETRIES  3  /* fresh iterators for one shard within one poll */
/* 30 s for propagation, plus the 5 minutes of clock skew SigV4 lets a client have: a
 * time is taken from our clock and compared with the service's arrival times */
#define AT_TIMESTAMP_MARGIN_S   330.0
#define RETENTION_MARGIN_S      300.0
#define AT_TIMESTAMP_TIMEOUT_MS 3000L /* see at_timestamp_fallback */
#define LOG_REPEAT_S            30.0  /* the same message at most once per this long */

struct scache_reader {
	kinesis_settings s;
	aws_client *c;
	scache_reader_callbacks cb;
	shard_table t; /* the shards (thread polling only) */
	double retention_s;
	double retention_margin_s;
	scache_poll_info *cur; /* the poll in progress (thread polling only) */
	record_ddb ddb;        /* DynamoDB tables and versions (thread polling only) */
	/* messages: touched by the thread polling (or creating), one at a time */
	log_limit log;

	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cv;  /* a poll completed */
	int polling;        /* a poll is in flight */
	int have_done;
	scache_poll_info last; /* the newest completed poll */
	int have_ok;
	uint64_t last_ok_started;
	scache_reader_stats stats;
};

/* ---- messages -------------------------------------------------------------------- */

/* Tell a message to on_log (or stderr), unless it repeats (see reader_log.c). */
__attribute__((format(printf, 3, 4))) static void reader_log(scache_reader *r, const char *key,
                                                             const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (len < 0 ||
	    !log_limit_pass(&r->log, key, scache_now_ns(NULL), msg, (size_t)len, sizeof msg))
		return;
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
	util_copy_str(r->cur->message, sizeof r->cur->message, msg);
}

static void report_gap(scache_reader *r, const char *why)
{
	r->cur->gap = 1;
	pthread_mutex_lock(&r->mu);
	r->stats.gaps++;
	pthread_mutex_unlock(&r->mu);
	/* a sink of messages that also has on_gap learns of the gap there */
	if (!r->cb.on_log || !r->cb.on_gap)
		reader_log(r, NULL, "stream '%s': gap: %s", r->s.stream_name, why);
	if (r->cb.on_gap)
		r->cb.on_gap(r->cb.arg, why);
}

/* The shard lineage's events (shards.h). */
static void on_lineage_gap(void *arg, const char *why)
{
	report_gap(arg, why);
}

static void on_lineage_fail(void *arg, scache_err err, const char *msg)
{
	poll_fail(arg, err, msg);
}

/* ---- reading --------------------------------------------------------------------- */

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
	           r->s.stream_name, s->id, message);
	s->start = START_TRIM_HORIZON;
	s->start_ts = 0;
}

/* Room for a call per shard; 0 when out of memory (then the poll fails). */
static int batch_init(scache_reader *r, shard_batch *b)
{
	if (shard_batch_init(b, r->t.n))
		return 1;
	poll_fail(r, SCACHE_ENOMEM, "out of memory");
	return 0;
}

/* Take iterators for readable shards without one. Returns how many were taken. */
static size_t take_iterators(scache_reader *r)
{
	size_t m = 0, taken = 0;
	shard_batch b;
	int ok = batch_init(r, &b);
	double *asked = calloc(r->t.n ? r->t.n : 1, sizeof *asked);
	shard **who = b.who;
	json_object **reqs = b.reqs;
	aws_result *res = b.res;
	char why[400];

	if (!ok || !asked) {
		if (ok)
			poll_fail(r, SCACHE_ENOMEM, "out of memory");
		goto out;
	}
	/* two passes: positions first, then times (AT_TIMESTAMP), which get a call of their
	 * own: see at_timestamp_fallback */
	size_t m_pos = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < r->t.n; i++) {
			shard *s = &r->t.shards[i];
			if (s->iter || !shard_readable(&r->t, s))
				continue;
			int at_time = !s->last_seq[0] && s->start == START_AT_TIMESTAMP;
			if (at_time != pass)
				continue;
			if (s->iter_tries++ >= MAX_ITER_RETRIES) {
				util_fmt(why, sizeof why,
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
			asked[m] = util_wall_s();
			reqs[m] = kinesis_req_get_shard_iterator(r->s.stream_name, s->id, type,
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
	aws_call_many(r->c, "GetShardIterator", reqs, m_pos, res);
	long at_timeout = r->s.aws.timeout_ms < AT_TIMESTAMP_TIMEOUT_MS ? r->s.aws.timeout_ms
	                                                                : AT_TIMESTAMP_TIMEOUT_MS;
	aws_call_many_opts(r->c, "GetShardIterator", reqs + m_pos, m - m_pos, res + m_pos,
	                   at_timeout, 0);
	for (size_t k = 0; k < m; k++) {
		shard *s = who[k];
		const char *it = res[k].err ? NULL : kinesis_parse_iterator(res[k].body);
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
		} else if (res[k].fail == AWS_FAIL_INVALID && s->last_seq[0]) {
			/* the position is trimmed away, or from an older stream of the same name */
			util_fmt(why, sizeof why,
			         "shard %s: cannot resume after sequence number %s: %s", s->id,
			         s->last_seq, res[k].message);
			report_gap(r, why);
			shard_reset(s, START_TRIM_HORIZON);
			taken++; /* progress: try again from TRIM_HORIZON */
		} else if (res[k].fail == AWS_FAIL_TRANSPORT && k >= m_pos) {
			at_timestamp_fallback(r, s, res[k].message);
			taken++;
		} else if (res[k].fail == AWS_FAIL_NOTFOUND) {
			r->t.need_list =
			    1; /* the next listing tells whether shard or stream is gone */
			taken++;
		} else {
			poll_fail(r, res[k].err, res[k].message);
		}
	}
out:
	b.m = m;
	shard_batch_free(&b);
	free(asked);
	return taken;
}

/* Returns -1 when out of memory: the record is neither delivered nor passed (its keys
 * would be lost), and the shard must be read again from its position. */
static int deliver_record(scache_reader *r, shard *s, const char *data, const char *seq)
{
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	record_keys keys;
	char why[128], key[128];
	scache_err err = SCACHE_ERECORD;

	/* the repeats of a malformed record differ in sequence number only */
	util_fmt(key, sizeof key, "malformed record in shard %s", s->id);

	r->cur->records++;
	if (!seq) {
		r->cur->bad_records++;
		reader_log(r, key, "stream '%s' shard %s: record without sequence number skipped",
		           r->s.stream_name, s->id);
		return 0;
	}
	if (data)
		raw = util_b64_decode(data, strlen(data), &rawlen);
	if (!raw) {
		util_copy_str(why, sizeof why, data ? "Data is not base64" : "no Data");
	} else {
		err = record_read(&r->ddb, r->s.format, raw, rawlen, &keys, why, sizeof why);
	}
	free(raw);
	if (err == SCACHE_ENOMEM) {
		r->cur->records--; /* it will be read again */
		return -1;
	}
	if (err == SCACHE_OK && keys.skip != RECORD_APPLY) {
		pthread_mutex_lock(&r->mu);
		if (keys.skip == RECORD_FOREIGN)
			r->stats.foreign_records++;
		else
			r->stats.stale_records++;
		pthread_mutex_unlock(&r->mu);
		if (keys.skip == RECORD_FOREIGN) {
			char tkey[320];
			util_fmt(tkey, sizeof tkey, "foreign table %s", keys.table);
			reader_log(
			    r, tkey,
			    "stream '%s': DynamoDB change records of table '%s' skipped: the "
			    "table is not in dynamodb_tables",
			    r->s.stream_name, keys.table);
		}
		record_keys_clear(&keys);
	} else if (err == SCACHE_OK) {
		if (keys.bad) {
			r->cur->bad_records++;
			reader_log(
			    r, key,
			    "stream '%s' shard %s sequence %s: malformed record (%s): its %zu "
			    "valid keys still invalidate",
			    r->s.stream_name, s->id, seq, why, keys.n);
		}
		if (keys.n) {
			if (r->cb.on_record)
				r->cb.on_record(r->cb.arg, s->id, seq,
				                (const char *const *)keys.keys, keys.lens, keys.n);
			if (keys.value && r->cb.on_value) {
				r->cb.on_value(r->cb.arg, keys.keys[0], keys.lens[0], keys.value,
				               keys.value_len);
				pthread_mutex_lock(&r->mu);
				r->stats.values++;
				pthread_mutex_unlock(&r->mu);
			} else if (r->cb.on_keys_origin) {
				r->cb.on_keys_origin(r->cb.arg, (const char *const *)keys.keys,
				                     keys.lens, keys.n, keys.origin);
			} else if (r->cb.on_keys) {
				r->cb.on_keys(r->cb.arg, (const char *const *)keys.keys, keys.lens,
				              keys.n);
			}
		}
		r->cur->keys += keys.n;
		record_keys_clear(&keys);
	} else {
		r->cur->bad_records++;
		reader_log(r, key, "stream '%s' shard %s sequence %s: malformed record skipped: %s",
		           r->s.stream_name, s->id, seq, why);
	}
	util_copy_str(s->last_seq, sizeof s->last_seq, seq);
	return 0;
}

/* Handle one GetRecords answer for shard s. */
static void read_answer(scache_reader *r, shard *s, aws_result *res, double began)
{
	kinesis_records page;

	if (kinesis_parse_records(res->body, &page)) {
		poll_fail(r, SCACHE_ESERVICE, "GetRecords: answer without Records");
		return;
	}
	for (size_t i = 0; i < page.n; i++) {
		const char *data, *seq;
		kinesis_record_at(&page, i, &data, &seq);
		if (deliver_record(r, s, data, seq)) {
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
	free(s->iter);
	s->iter = NULL;
	if (!page.next || page.children) {
		shard_finish(&r->t, s); /* signals 1 and 2: the shard's end was reached */
		return;
	}
	/* an empty page behind the tip is not the end: the records may lie further on */
	if (s->end_seq[0] && ((page.n == 0 && page.behind <= 0) ||
	                      (s->last_seq[0] && kinesis_seq_cmp(s->last_seq, s->end_seq) >= 0))) {
		shard_finish(&r->t, s); /* signal 3: closed per ListShards, nothing left */
		return;
	}
	s->iter = strdup(page.next);
	if (!s->iter) {
		poll_fail(r, SCACHE_ENOMEM, "out of memory");
		return;
	}
	/* behind the tip, even after an empty page (records may lie further on), or a
	 * closed shard not yet read to its end (its children wait for it): read again */
	s->more = page.behind > 0 || page.n >= GET_RECORDS_LIMIT || s->end_seq[0];
}

/* One round of GetRecords on every readable shard with an iterator. Returns whether
 * another round is needed. */
static int read_round(scache_reader *r)
{
	size_t m = 0;
	int again = 0;
	shard_batch b;
	if (!batch_init(r, &b))
		goto out;
	shard **who = b.who;
	json_object **reqs = b.reqs;
	aws_result *res = b.res;

	for (size_t i = 0; i < r->t.n; i++) {
		shard *s = &r->t.shards[i];
		if (!s->iter || !shard_readable(&r->t, s) || !s->more)
			continue;
		reqs[m] = kinesis_req_get_records(s->iter, GET_RECORDS_LIMIT);
		if (!reqs[m]) {
			poll_fail(r, SCACHE_ENOMEM, "out of memory");
			continue;
		}
		who[m++] = s;
	}
	double began = util_wall_s();
	aws_call_many(r->c, "GetRecords", reqs, m, res);
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
		case AWS_FAIL_EXPIRED:
		case AWS_FAIL_INVALID:
			/* take a new iterator from the position and read again */
			free(s->iter);
			s->iter = NULL;
			s->more = 1;
			again = 1;
			/* with no sequence number to resume after, nothing would notice a stream
			 * recreated meanwhile (AT_TIMESTAMP works on the new one): list first */
			if (!s->last_seq[0])
				r->t.need_list = 1;
			break;
		case AWS_FAIL_NOTFOUND:
			/* the shard or the stream is gone: the next listing tells which (a gap) */
			free(s->iter);
			s->iter = NULL;
			s->more = 1;
			r->t.need_list = 1;
			again = 1;
			break;
		default:
			poll_fail(r, res[k].err, res[k].message);
			break;
		}
	}
out:
	b.m = m;
	shard_batch_free(&b);
	return again;
}

/* Positions older than the retention may have lost records to trimming. */
static void check_retention(scache_reader *r)
{
	double now = util_wall_s();
	char why[320];
	for (size_t i = 0; i < r->t.n; i++) {
		shard *s = &r->t.shards[i];
		if (!shard_readable(&r->t, s) ||
		    now - s->last_good <= r->retention_s - r->retention_margin_s)
			continue;
		util_fmt(why, sizeof why,
		         "shard %s was last read %.0f s ago, longer than the stream's retention "
		         "(%.0f s): records may have been trimmed",
		         s->id, now - s->last_good, r->retention_s);
		report_gap(r, why);
		shard_reset(s, START_TRIM_HORIZON);
	}
}

static void do_poll(scache_reader *r, scache_poll_info *info)
{
	uint64_t calls0 = aws_client_calls(r->c), thr0 = aws_client_throttled(r->c);

	r->cur = info;
	check_retention(r);
	shards_check_stream(&r->t);
	if (!r->t.need_list && scache_now_ns(NULL) - r->t.last_list_ns >=
	                           (uint64_t)r->s.list_shards_interval_ms * 1000000u)
		r->t.need_list = 1;
	for (size_t i = 0; i < r->t.n; i++) {
		r->t.shards[i].more = 1;
		r->t.shards[i].iter_tries = 0;
	}
	for (int round = 0;; round++) {
		if (round == MAX_ROUNDS) {
			poll_fail(r, SCACHE_ESERVICE,
			          "still behind after the most rounds of calls one poll makes");
			break;
		}
		if (r->t.need_list) {
			if (shards_list(&r->t, 0, START_TRIM_HORIZON) != SCACHE_OK)
				break;
			for (size_t i = 0; i < r->t.n; i++)
				if (!r->t.shards[i].iter)
					r->t.shards[i].more = 1;
		}
		take_iterators(r);
		if (info->err != SCACHE_OK)
			break;
		int again = read_round(r);
		/* a shard left without an iterator (AT_TIMESTAMP fallback, reset after a gap)
		 * is still unread: take its iterator and read it in this poll */
		for (size_t i = 0; i < r->t.n && !again; i++)
			again = !r->t.shards[i].iter && r->t.shards[i].more &&
			        shard_readable(&r->t, &r->t.shards[i]);
		if (info->err != SCACHE_OK || (!again && !r->t.need_list))
			break;
	}
	/* After a failed poll, the next one checks the stream first: an outage (the service
	 * restarted, a network cut) may hide a recreation, and positions on the old stream
	 * would read nothing of the new one while the polls succeed. */
	if (info->err != SCACHE_OK)
		shards_check_soon(&r->t);
	info->calls = aws_client_calls(r->c) - calls0;
	pthread_mutex_lock(&r->mu);
	r->stats.throttled += aws_client_throttled(r->c) - thr0;
	r->stats.calls += info->calls;
	r->stats.shards = r->t.n;
	pthread_mutex_unlock(&r->mu);
	r->cur = NULL;
}

/* ---- public ---------------------------------------------------------------------- */

/* Read the retention (it bounds how long a position stays valid) and the creation time
 * (see shards_check_stream). Only a missing stream is fatal here; other failures show
 * again in ListShards. */
static scache_err read_summary(scache_reader *r, char *errbuf, size_t errlen)
{
	aws_result res;
	kinesis_summary sum;
	json_object *req = kinesis_req_stream(r->s.stream_name);
	if (!req)
		return SCACHE_ENOMEM;
	aws_call(r->c, "DescribeStreamSummary", req, &res);
	json_object_put(req);
	kinesis_parse_summary(res.err ? NULL : res.body, &sum);
	if (sum.retention_hours > 0)
		r->retention_s = sum.retention_hours * 3600.0;
	r->t.created_ts = sum.created;
	scache_err err = res.fail == AWS_FAIL_NOTFOUND ? res.err : SCACHE_OK;
	if (err)
		util_fmt(errbuf, errlen, "%s", res.message);
	aws_result_clear(&res);
	return err;
}

scache_err reader_new(const kinesis_settings *s, scache_start_at start,
                      const scache_reader_callbacks *callbacks, scache_reader **out, char *errbuf,
                      size_t errlen)
{
	scache_reader *r;
	scache_err err;
	scache_poll_info info;
	pthread_condattr_t ca;

	if (!s || !out || (start != SCACHE_START_LATEST && start != SCACHE_START_TRIM_HORIZON))
		return SCACHE_EINVAL;
	*out = NULL;
	if (s->format != SCACHE_RECORD_SCACHE) {
		util_fmt(errbuf, errlen, "unknown record format %d", (int)s->format);
		return SCACHE_ECONFIG;
	}
	r = calloc(1, sizeof *r);
	if (!r)
		return SCACHE_ENOMEM;
	if (kinesis_settings_copy(&r->s, s)) {
		free(r);
		return SCACHE_ENOMEM;
	}
	err = kinesis_client_new(&r->s, &r->c, errbuf, errlen);
	if (err) {
		kinesis_settings_clear(&r->s);
		free(r);
		return err;
	}
	if (callbacks)
		r->cb = *callbacks;
	r->ddb.tables = r->s.dynamodb_tables;
	r->ddb.ntables = r->s.dynamodb_ntables;
	for (size_t i = 0; i < r->ddb.ntables && !r->ddb.versions; i++)
		if (r->ddb.tables[i].mode == SCACHE_DYNAMODB_REFRESH &&
		    !(r->ddb.versions = ddb_versions_new(0, 0))) {
			aws_client_free(r->c);
			kinesis_settings_clear(&r->s);
			free(r);
			return SCACHE_ENOMEM;
		}
	r->retention_s = 24 * 3600.0;
	r->retention_margin_s = RETENTION_MARGIN_S;
	r->log.repeat_s = LOG_REPEAT_S;
	shards_events ev = {.gap = on_lineage_gap, .fail = on_lineage_fail, .arg = r};
	/* the summary read below is the first stream check */
	shards_init(&r->t, r->c, r->s.stream_name, &ev, r->s.stream_check_interval_ms);
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);

	err = read_summary(r, errbuf, errlen);
	if (!err) {
		memset(&info, 0, sizeof info);
		r->cur = &info;
		err = shards_list(&r->t, 1,
		                  start == SCACHE_START_LATEST ? START_LATEST : START_TRIM_HORIZON);
		if (!err) {
			take_iterators(r);
			err = info.err;
		}
		r->cur = NULL;
		if (err)
			util_fmt(errbuf, errlen, "%s", info.message);
	}
	if (err) {
		scache_reader_free(r);
		return err;
	}
	r->stats.calls = aws_client_calls(r->c);
	r->stats.shards = r->t.n;
	*out = r;
	return SCACHE_OK;
}

scache_err scache_reader_new(const scache_stream_config *config, scache_start_at start,
                             const scache_reader_callbacks *callbacks, scache_reader **out,
                             char *errbuf, size_t errlen)
{
	kinesis_settings s;
	if (!out || (start != SCACHE_START_LATEST && start != SCACHE_START_TRIM_HORIZON))
		return SCACHE_EINVAL;
	*out = NULL;
	scache_err err = kinesis_settings_resolve(config, 1, &s, errbuf, errlen);
	if (err)
		return err;
	err = reader_new(&s, start, callbacks, out, errbuf, errlen);
	kinesis_settings_clear(&s);
	return err;
}

void scache_reader_free(scache_reader *r)
{
	if (!r)
		return;
	shards_free(&r->t);
	aws_client_free(r->c);
	ddb_versions_free(r->ddb.versions);
	kinesis_settings_clear(&r->s);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

/* Record a completed poll and wake the callers waiting for it. Caller holds r->mu. */
static void finish_poll(scache_reader *r, scache_poll_info *info)
{
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
	r->polling = 0;
	pthread_cond_broadcast(&r->cv);
}

scache_err scache_reader_sync(scache_reader *r, uint64_t since_ns, uint64_t timeout_ms,
                              scache_poll_info *info)
{
	scache_poll_info local;
	uint64_t deadline = timeout_ms ? scache_now_ns(NULL) + timeout_ms * 1000000u : 0;
	struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};

	if (!r)
		return SCACHE_EINVAL;
	if (!info)
		info = &local;
	pthread_mutex_lock(&r->mu);
	/* a poll in flight may be the one this caller needs, or precede it: wait for it */
	while (r->polling && !(r->have_done && r->last.started_ns >= since_ns)) {
		int rc = deadline ? pthread_cond_timedwait(&r->cv, &r->mu, &ts)
		                  : pthread_cond_wait(&r->cv, &r->mu);
		if (rc == ETIMEDOUT && scache_now_ns(NULL) >= deadline) {
			pthread_mutex_unlock(&r->mu);
			memset(info, 0, sizeof *info);
			info->err = SCACHE_ETIMEOUT;
			info->shared = 1;
			util_fmt(info->message, sizeof info->message,
			         "timed out after %llu ms waiting for a poll of the stream",
			         (unsigned long long)timeout_ms);
			return info->err;
		}
	}
	if (r->have_done && r->last.started_ns >= since_ns) {
		*info = r->last;
		info->shared = 1;
		pthread_mutex_unlock(&r->mu);
		return info->err;
	}
	r->polling = 1;
	memset(info, 0, sizeof *info);
	info->started_ns = scache_now_ns(NULL);
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
	for (size_t i = 0; i < r->t.n; i++) {
		if (!r->t.shards[i].iter)
			continue;
		char *p = strdup(replacement);
		if (!p)
			continue;
		free(r->t.shards[i].iter);
		r->t.shards[i].iter = p;
		n++;
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

size_t reader_test_positions(scache_reader *r, char (*ids)[64], char (*seqs)[128], size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->t.n && n < max; i++, n++) {
		util_copy_str(ids[n], 64, r->t.shards[i].id);
		util_copy_str(seqs[n], 128,
		              r->t.shards[i].finished ? "finished" : r->t.shards[i].last_seq);
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

uint64_t reader_test_connects(scache_reader *r)
{
	pthread_mutex_lock(&r->mu);
	uint64_t n = aws_client_connects(r->c);
	pthread_mutex_unlock(&r->mu);
	return n;
}

void reader_test_set_list_limits(scache_reader *r, size_t max_pages, size_t max_shards)
{
	pthread_mutex_lock(&r->mu);
	r->t.max_list_pages = max_pages;
	r->t.max_list_shards = max_shards;
	pthread_mutex_unlock(&r->mu);
}

void reader_test_set_log_repeat(scache_reader *r, double seconds)
{
	pthread_mutex_lock(&r->mu);
	r->log.repeat_s = seconds;
	pthread_mutex_unlock(&r->mu);
}
