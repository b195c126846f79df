/*
 * ddb_streams_source.c: a table's DynamoDB Stream as an invalidation source
 * (scache/source.h; the behaviour is documented in scache/dynamodb.h).
 *
 * The model is the Kinesis reader's (reader.c): positions are sequence numbers, iterators
 * only a cache of them, one round of calls reads every readable shard concurrently, and a
 * child waits until its parent was read to its end. What differs, and why this file does
 * not run through reader.c and shards_list:
 *   - DescribeStream pages by ExclusiveStartShardId / LastEvaluatedShardId (not NextToken),
 *     answers StreamStatus, and lists one closed shard's children with ShardFilter
 *     CHILD_SHARDS; an ARN names one stream for ever (a stream re-enabled on the table is
 *     a new ARN), so the Kinesis signs of a stream recreated under its name do not apply;
 *   - there is no AT_TIMESTAMP and no MillisBehindLatest: "caught up" is an empty page or
 *     the end of a closed shard;
 *   - records carry the change itself (ddb_change_from_json, DDB_SHAPE_STREAMS), not
 *     base64 data.
 * The shard table itself (struct, parents, finishing, add/remove) is shards.c's.
 *
 * A change becomes keys or a value exactly as a change record on Kinesis does
 * (record_change in record.c: key id, image within RECORD_DDB_VALUE_MAX, ddb_versions).
 *
 * Threads: sync runs on one thread at a time (the source contract); stats from any thread
 * under mu.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddb_streams.h"
#include "record.h"
#include "scache/cache.h"
#include "scache/dynamodb.h"
#include "scache/source.h"
#include "shards.h"
#include "util.h"

static json_object *obj_get(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

void ddbs_poll_fail(ddbs_source *d, scache_err err, const char *msg)
{
	if (d->cur && d->cur->err == SCACHE_OK) {
		d->cur->err = err;
		util_copy_str(d->cur->message, sizeof d->cur->message, msg);
	}
}

static void ddbs_log(ddbs_source *d, const char *msg)
{
	if (d->sink && d->sink->log)
		d->sink->log(d->sink->arg, msg);
}

void ddbs_report_gap(ddbs_source *d, const char *why)
{
	if (d->cur)
		d->cur->gap = 1;
	pthread_mutex_lock(&d->mu);
	d->stats.gaps++;
	pthread_mutex_unlock(&d->mu);
	if (d->sink)
		d->sink->gap(d->sink->arg, why);
}

static void on_lineage_gap(void *arg, const char *why)
{
	ddbs_report_gap(arg, why);
}

static void on_lineage_fail(void *arg, scache_err err, const char *msg)
{
	ddbs_poll_fail(arg, err, msg);
}

/* ---- reading ---------------------------------------------------------------------- */

static int is_trimmed(const aws_result *r)
{
	return !strcmp(r->name, "TrimmedDataAccessException");
}

/* Records before the position were trimmed (24 h retention): a gap, and the shard is
 * read again from its oldest record. */
static void shard_trimmed(ddbs_source *d, shard *s, const char *message)
{
	char why[400];
	util_fmt(why, sizeof why, "shard %s: records were trimmed before they were read: %s", s->id,
	         message);
	ddbs_report_gap(d, why);
	shard_reset(s, START_TRIM_HORIZON);
	s->more = 1;
}

/* Take iterators for readable shards without one, concurrently. */
static void take_iterators(ddbs_source *d)
{
	shard_batch b;
	char why[400];
	if (!shard_batch_init(&b, d->t.n)) {
		ddbs_poll_fail(d, SCACHE_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < d->t.n; i++) {
		shard *s = &d->t.shards[i];
		if (s->iter || !shard_readable(&d->t, s))
			continue;
		if (s->iter_tries++ >= DDBS_MAX_ITER_TRIES) {
			util_fmt(why, sizeof why, "shard %s: no usable iterator after %d tries",
			         s->id, DDBS_MAX_ITER_TRIES);
			ddbs_poll_fail(d, SCACHE_ESERVICE, why);
			continue;
		}
		json_object *req = json_object_new_object();
		if (!req) {
			ddbs_poll_fail(d, SCACHE_ENOMEM, "out of memory");
			continue;
		}
		const char *type = s->last_seq[0]                   ? "AFTER_SEQUENCE_NUMBER"
		                   : s->start == START_TRIM_HORIZON ? "TRIM_HORIZON"
		                                                    : "LATEST";
		json_object_object_add(req, "StreamArn", json_object_new_string(d->arn));
		json_object_object_add(req, "ShardId", json_object_new_string(s->id));
		json_object_object_add(req, "ShardIteratorType", json_object_new_string(type));
		if (s->last_seq[0])
			json_object_object_add(req, "SequenceNumber",
			                       json_object_new_string(s->last_seq));
		b.reqs[b.m] = req;
		b.who[b.m++] = s;
	}
	aws_call_many(d->c, "GetShardIterator", b.reqs, b.m, b.res);
	for (size_t k = 0; k < b.m; k++) {
		shard *s = b.who[k];
		const char *it = b.res[k].err ? NULL : aws_json_str(b.res[k].body, "ShardIterator");
		if (it) {
			if (!(s->iter = strdup(it)))
				ddbs_poll_fail(d, SCACHE_ENOMEM, "out of memory");
			continue;
		}
		if (!b.res[k].err) {
			util_fmt(why, sizeof why,
			         "GetShardIterator at %s: malformed answer (no ShardIterator) for "
			         "shard %s",
			         aws_client_endpoint(d->c), s->id);
			ddbs_poll_fail(d, SCACHE_ESERVICE, why);
		} else if (is_trimmed(&b.res[k])) {
			shard_trimmed(d, s, b.res[k].message);
		} else if (b.res[k].fail == AWS_FAIL_NOTFOUND) {
			d->t.need_list = 1; /* the listing tells whether shard or stream is gone */
			s->more = 1;
		} else {
			ddbs_poll_fail(d, b.res[k].err, b.res[k].message);
		}
	}
out:
	shard_batch_free(&b);
}

/* What one change does: its item's key, or its new value (refresh), as for change
 * records on Kinesis (record_change). -1: out of memory (nothing was noted or delivered:
 * the record must be read again). DynamoDB Streams delivers each change once and in
 * order per item; the order check costs little and keeps a replay (TRIM_HORIZON) from
 * going back in time. Its shard and sequence number do order changes. */
static int apply_change(ddbs_source *d, shard *s, json_object *rec, const char *seq)
{
	ddb_change c;
	record_keys out;
	memset(&out, 0, sizeof out);
	char why[256], msg[512];
	ddb_err de = ddb_change_from_json(rec, DDB_SHAPE_STREAMS, &c, why, sizeof why);
	if (de == DDB_ENOMEM)
		return -1;
	scache_err err = SCACHE_ERECORD;
	if (de == DDB_OK)
		err = record_change(&d->dt, d->versions, &c, s->id, seq, &out, why, sizeof why);
	ddb_change_clear(&c);
	if (err == SCACHE_ENOMEM)
		return -1;
	if (err != SCACHE_OK || out.bad) {
		d->cur->bad_records++;
		util_fmt(msg, sizeof msg, "stream %s shard %s sequence %s: %s%s", d->arn, s->id,
		         seq, err != SCACHE_OK ? "malformed record skipped: " : "", why);
		ddbs_log(d, msg);
	}
	if (err == SCACHE_OK && out.n == 1 && out.skip != RECORD_STALE && d->sink) {
		if (out.value && d->sink->value)
			d->sink->value(d->sink->arg, out.keys[0], out.lens[0], out.value,
			               out.value_len);
		else
			d->sink->keys(d->sink->arg, (const char *const *)out.keys, out.lens, 1);
		d->cur->keys++;
	}
	record_keys_clear(&out);
	return 0;
}

/* One GetRecords answer for shard s. */
static void read_answer(ddbs_source *d, shard *s, json_object *body)
{
	char why[400];
	json_object *recs = aws_json_array(body, "Records");
	if (!recs) {
		util_fmt(why, sizeof why,
		         "GetRecords at %s: malformed answer (no Records array) for shard %s",
		         aws_client_endpoint(d->c), s->id);
		ddbs_poll_fail(d, SCACHE_ESERVICE, why);
		free(s->iter);
		s->iter = NULL;
		return;
	}
	size_t n = json_object_array_length(recs);
	for (size_t i = 0; i < n; i++) {
		json_object *rec = json_object_array_get_idx(recs, i);
		const char *seq = aws_json_str(obj_get(rec, "dynamodb"), "SequenceNumber");
		d->cur->records++;
		if (!seq || !seq[0] || strlen(seq) >= sizeof s->last_seq) {
			d->cur->bad_records++;
			util_fmt(
			    why, sizeof why,
			    "stream %s shard %s: record without a usable SequenceNumber skipped",
			    d->arn, s->id);
			ddbs_log(d, why);
			continue;
		}
		if (apply_change(d, s, rec, seq)) {
			d->cur->records--; /* read again from the position before it */
			free(s->iter);
			s->iter = NULL;
			ddbs_poll_fail(d, SCACHE_ENOMEM, "out of memory while reading a record");
			return;
		}
		util_copy_str(s->last_seq, sizeof s->last_seq, seq);
	}
	s->iter_tries = 0;
	s->last_good = util_wall_s();
	free(s->iter);
	s->iter = NULL;
	const char *next = aws_json_str(body, "NextShardIterator");
	if (!next) {
		/* a closed shard read to its end: its children are read next */
		int need_list = d->t.need_list;
		shard_finish(&d->t, s);
		d->t.need_list = need_list; /* children: CHILD_SHARDS (find_children) */
		char(*a)[64] = realloc(d->await, (d->nawait + 1) * sizeof *a);
		if (!a) {
			ddbs_poll_fail(d, SCACHE_ENOMEM, "out of memory");
			return;
		}
		d->await = a;
		util_copy_str(d->await[d->nawait++], 64, s->id);
		return;
	}
	if (!(s->iter = strdup(next))) {
		ddbs_poll_fail(d, SCACHE_ENOMEM, "out of memory");
		return;
	}
	s->more = n > 0; /* an empty page: caught up (see dynamodb.h) */
}

/* One round of GetRecords on every readable shard with an iterator that is not caught
 * up. Returns whether another round is needed. */
static int read_round(ddbs_source *d)
{
	int again = 0;
	shard_batch b;
	if (!shard_batch_init(&b, d->t.n)) {
		ddbs_poll_fail(d, SCACHE_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < d->t.n; i++) {
		shard *s = &d->t.shards[i];
		if (!s->iter || !s->more || !shard_readable(&d->t, s))
			continue;
		json_object *req = json_object_new_object();
		if (!req) {
			ddbs_poll_fail(d, SCACHE_ENOMEM, "out of memory");
			continue;
		}
		json_object_object_add(req, "ShardIterator", json_object_new_string(s->iter));
		json_object_object_add(req, "Limit", json_object_new_int(DDBS_RECORDS_LIMIT));
		b.reqs[b.m] = req;
		b.who[b.m++] = s;
	}
	aws_call_many(d->c, "GetRecords", b.reqs, b.m, b.res);
	for (size_t k = 0; k < b.m; k++) {
		shard *s = b.who[k];
		s->more = 0;
		if (!b.res[k].err) {
			int was = s->finished;
			read_answer(d, s, b.res[k].body);
			again |= s->more || (s->finished && !was);
			continue;
		}
		free(s->iter);
		s->iter = NULL;
		if (b.res[k].fail == AWS_FAIL_EXPIRED) {
			s->more = 1; /* 15 minutes old: a new one from the position */
			again = 1;
			if (!s->last_seq[0] && s->start == START_LATEST) {
				/* nothing read since LATEST: nothing to resume after */
				ddbs_log(
				    d, "an iterator taken at LATEST expired before any record was "
				       "read: resuming from TRIM_HORIZON");
				s->start = START_TRIM_HORIZON;
			}
		} else if (is_trimmed(&b.res[k])) {
			shard_trimmed(d, s, b.res[k].message);
			again = 1;
		} else if (b.res[k].fail == AWS_FAIL_NOTFOUND) {
			s->more = 1;
			d->t.need_list = 1;
			again = 1;
		} else {
			ddbs_poll_fail(d, b.res[k].err, b.res[k].message);
		}
	}
out:
	shard_batch_free(&b);
	return again;
}

/* The sync fails while a finished shard's children are not listed: reporting it caught
 * up could skip their records. */
static void no_child_yet(ddbs_source *d, const char *id)
{
	char why[400];
	util_fmt(why, sizeof why,
	         "shard %s of stream %s was read to its end, and DescribeStream lists no child "
	         "of it yet",
	         id, d->arn);
	ddbs_poll_fail(d, SCACHE_ESERVICE, why);
}

static int has_child(ddbs_source *d, const char *id)
{
	for (size_t j = 0; j < d->t.n; j++)
		if (!strcmp(d->t.shards[j].parent, id))
			return 1;
	return 0;
}

/* Shards read to their end whose children are not known yet: ask with CHILD_SHARDS (at
 * once, then at most once a second while none is listed; the poll fails meanwhile, as
 * records may already wait in a child). Nothing to ask when the stream is disabled. */
static void find_children(ddbs_source *d)
{
	for (size_t i = d->nawait; i-- > 0 && d->cur->err == SCACHE_OK;) {
		char *id = d->await[i];
		if (!has_child(d, id) && !d->disabled) {
			uint64_t now = scache_now_ns(NULL);
			if (d->last_child_ns && now - d->last_child_ns < DDBS_RETRY_NS) {
				no_child_yet(d, id);
				return;
			}
			if (ddbs_list_shards(d, 0, id) != SCACHE_OK)
				return;
			if (!has_child(d, id) && !d->disabled) {
				d->last_child_ns = now;
				no_child_yet(d, id);
				return;
			}
		}
		d->last_child_ns = 0;
		memmove(d->await + i, d->await + i + 1, (d->nawait - i - 1) * sizeof *d->await);
		d->nawait--;
	}
}

static void do_sync(ddbs_source *d)
{
	uint64_t now = scache_now_ns(NULL);
	if (d->t.stream_missing || now - d->t.last_list_ns >= d->describe_every_ns)
		d->t.need_list = 1;
	for (size_t i = 0; i < d->t.n; i++) {
		d->t.shards[i].more = 1;
		d->t.shards[i].iter_tries = 0;
	}
	for (int round = 0;; round++) {
		if (round == DDBS_MAX_ROUNDS) {
			ddbs_poll_fail(
			    d, SCACHE_ESERVICE,
			    "still not caught up after the most rounds of calls one sync makes");
			return;
		}
		if (d->t.need_list) {
			if (ddbs_list_shards(d, 0, NULL) != SCACHE_OK || d->cur->err)
				return;
			for (size_t i = 0; i < d->t.n; i++)
				if (!d->t.shards[i].iter)
					d->t.shards[i].more = 1;
		}
		find_children(d);
		if (d->cur->err)
			return;
		for (size_t i = 0; i < d->t.n; i++)
			if (!d->t.shards[i].iter && d->t.shards[i].listed)
				d->t.shards[i].more = 1; /* new children, shards reset */
		take_iterators(d);
		if (d->cur->err)
			return;
		int again = read_round(d);
		for (size_t i = 0; i < d->t.n && !again; i++)
			again = !d->t.shards[i].iter && d->t.shards[i].more &&
			        shard_readable(&d->t, &d->t.shards[i]);
		if (d->cur->err || (!again && !d->t.need_list && !d->nawait))
			break;
	}
	if (d->disabled && !d->cur->err) {
		char why[400];
		util_fmt(why, sizeof why,
		         "stream %s is disabled: the table's changes are no longer recorded",
		         d->arn);
		ddbs_poll_fail(d, SCACHE_ESERVICE, why);
	}
}

/* ---- the source ------------------------------------------------------------------- */

static scache_err ddbs_sync(void *self, uint64_t since_ns, const scache_sink *sink,
                            scache_poll_info *info)
{
	ddbs_source *d = self;
	(void)since_ns; /* every sync reads every shard until caught up */
	uint64_t calls0 = aws_client_calls(d->c), thr0 = aws_client_throttled(d->c);
	info->started_ns = scache_now_ns(NULL);
	d->sink = sink;
	d->cur = info;
	if (!d->positioned) {
		/* late: at LATEST whatever start said (the owner bypassed its cache meanwhile) */
		d->start = START_LATEST;
		if (d->last_try_ns && info->started_ns - d->last_try_ns < DDBS_RETRY_NS) {
			info->err = SCACHE_ETRANSPORT;
			util_fmt(info->message, sizeof info->message, "%s", d->unavailable);
		} else {
			char why[256] = "";
			scache_err err = ddbs_position(d, why, sizeof why);
			if (err) {
				info->err = err;
				util_copy_str(d->unavailable, sizeof d->unavailable, why);
				util_copy_str(info->message, sizeof info->message, why);
			} else {
				take_iterators(d); /* positioned at LATEST now */
			}
		}
	} else {
		do_sync(d);
	}
	info->calls = aws_client_calls(d->c) - calls0;
	info->throttled = aws_client_throttled(d->c) > thr0;
	info->finished_ns = scache_now_ns(NULL);
	pthread_mutex_lock(&d->mu);
	d->stats.syncs++;
	d->stats.errors += info->err != SCACHE_OK;
	d->stats.calls += info->calls;
	d->stats.throttled += aws_client_throttled(d->c) - thr0;
	d->stats.records += info->records;
	d->stats.bad_records += info->bad_records;
	d->stats.keys += info->keys;
	d->stats.partitions = d->t.n;
	pthread_mutex_unlock(&d->mu);
	d->sink = NULL;
	d->cur = NULL;
	return info->err;
}

static scache_err ddbs_publish(void *self, const char *const *keys, const size_t *lens, size_t n,
                               char *errbuf, size_t errlen)
{
	(void)self;
	(void)keys;
	(void)lens;
	if (!n)
		return SCACHE_OK;
	util_fmt(errbuf, errlen,
	         "the DynamoDB Streams source publishes nothing: the table's writes are its "
	         "invalidations");
	return SCACHE_ECONFIG;
}

static const char *ddbs_unavailable(void *self)
{
	ddbs_source *d = self;
	return d->positioned ? NULL : d->unavailable;
}

static void ddbs_stats(void *self, scache_source_stats *out)
{
	ddbs_source *d = self;
	pthread_mutex_lock(&d->mu);
	*out = d->stats;
	pthread_mutex_unlock(&d->mu);
}

static void ddbs_destroy(void *self)
{
	ddbs_source *d = self;
	if (!d)
		return;
	shards_free(&d->t);
	aws_client_free(d->c);
	ddb_versions_free(d->versions);
	for (size_t i = 0; i < sizeof d->names / sizeof d->names[0]; i++)
		free(d->names[i]);
	free(d->arn);
	free(d->await);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

static const scache_source_ops ddbs_ops = {
    .name = "dynamodb-streams",
    .sync = ddbs_sync,
    .publish = ddbs_publish,
    .unavailable = ddbs_unavailable,
    .stats = ddbs_stats,
    .destroy = ddbs_destroy,
};

static const char *env_set(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Settings: as aws_settings_resolve, but the default host is streams.dynamodb.<region>
 * while SigV4 signs as "dynamodb" (aws_service.name is both elsewhere). */
static scache_err resolve_settings(const scache_dynamodb_streams_config *cfg, aws_settings *out,
                                   char *errbuf, size_t errlen)
{
	char defendpoint[160];
	const char *endpoint = cfg->endpoint && *cfg->endpoint ? cfg->endpoint : NULL;
	if (!endpoint)
		endpoint = env_set(ddbs_service.endpoint_env);
	if (!endpoint)
		endpoint = env_set("AWS_ENDPOINT_URL");
	const char *region = cfg->region && *cfg->region ? cfg->region : env_set("AWS_REGION");
	if (!region)
		region = env_set("AWS_DEFAULT_REGION");
	if (!endpoint && region) {
		util_fmt(defendpoint, sizeof defendpoint,
		         "https://streams.dynamodb.%s.amazonaws.com%s", region,
		         strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
		endpoint = defendpoint;
	}
	aws_config ac = {.region = cfg->region,
	                 .endpoint = endpoint,
	                 .access_key_id = cfg->access_key_id,
	                 .secret_access_key = cfg->secret_access_key,
	                 .session_token = cfg->session_token,
	                 .connect_timeout_ms = cfg->connect_timeout_ms,
	                 .timeout_ms = cfg->timeout_ms,
	                 .max_retries = cfg->max_retries};
	return aws_settings_resolve(&ddbs_service, &ac, out, errbuf, errlen);
}

/* Errors of positioning no later try fixes. */
static int error_is_final(scache_err err)
{
	return err == SCACHE_ECONFIG || err == SCACHE_EINVAL || err == SCACHE_ENOMEM;
}

scache_err scache_dynamodb_streams_source_new(const scache_dynamodb_streams_config *config,
                                              scache_source **out, char *errbuf, size_t errlen)
{
	if (!config || !out) {
		util_fmt(errbuf, errlen, "dynamodb streams source: NULL argument");
		return SCACHE_EINVAL;
	}
	*out = NULL;
	const scache_dynamodb_table *t = &config->table;
	if (!t->table || !*t->table || !t->partition_key || !*t->partition_key) {
		util_fmt(errbuf, errlen,
		         "dynamodb streams source: the table needs a name and a partition key");
		return SCACHE_ECONFIG;
	}
	if (config->start != SCACHE_START_LATEST && config->start != SCACHE_START_TRIM_HORIZON) {
		util_fmt(errbuf, errlen, "dynamodb streams source: unknown start %d",
		         (int)config->start);
		return SCACHE_ECONFIG;
	}
	ddbs_source *d = calloc(1, sizeof *d);
	if (!d)
		return SCACHE_ENOMEM;
	pthread_mutex_init(&d->mu, NULL);
	const char *src[4] = {t->table, t->partition_key, t->sort_key, t->source};
	for (size_t i = 0; i < 4; i++)
		if (src[i] && *src[i] && !(d->names[i] = strdup(src[i]))) {
			ddbs_destroy(d);
			return SCACHE_ENOMEM;
		}
	d->table = (scache_dynamodb_table){.table = d->names[0],
	                                   .partition_key = d->names[1],
	                                   .sort_key = d->names[2],
	                                   .source = d->names[3],
	                                   .mode = t->mode};
	d->dt = (ddb_table){
	    .table = d->names[0], .source = d->names[3], .key = {d->names[1], d->names[2]}};
	if (t->mode == SCACHE_DYNAMODB_REFRESH && !(d->versions = ddb_versions_new(0, 0))) {
		ddbs_destroy(d);
		return SCACHE_ENOMEM;
	}
	if (config->stream_arn && *config->stream_arn && !(d->arn = strdup(config->stream_arn))) {
		ddbs_destroy(d);
		return SCACHE_ENOMEM;
	}
	d->start = config->start == SCACHE_START_TRIM_HORIZON ? START_TRIM_HORIZON : START_LATEST;
	d->describe_every_ns =
	    (uint64_t)(config->describe_interval_ms ? config->describe_interval_ms : 60000) *
	    1000000u;
	aws_settings s;
	scache_err err = resolve_settings(config, &s, errbuf, errlen);
	if (err) {
		ddbs_destroy(d);
		return err;
	}
	err = aws_client_new(&ddbs_service, &s, &d->c, errbuf, errlen);
	aws_settings_clear(&s);
	if (err) {
		ddbs_destroy(d);
		return err;
	}
	shards_events ev = {.gap = on_lineage_gap, .fail = on_lineage_fail, .arg = d};
	shards_init(&d->t, d->c, d->arn ? d->arn : "", &ev, 0);
	char why[256] = "";
	scache_poll_info info;
	memset(&info, 0, sizeof info);
	d->cur = &info;
	err = ddbs_position(d, why, sizeof why);
	if (!err) {
		take_iterators(d);
		err = info.err;
		util_copy_str(why, sizeof why, info.message);
		if (err) {
			shards_clear(&d->t);
			d->positioned = 0;
		}
	}
	d->cur = NULL;
	if (err && error_is_final(err)) {
		util_fmt(errbuf, errlen, "%s", why);
		ddbs_destroy(d);
		return err;
	}
	if (err) /* unreachable, throttled, no stream yet: each sync tries again */
		util_copy_str(d->unavailable, sizeof d->unavailable,
		              why[0] ? why : scache_strerror(err));
	pthread_mutex_lock(&d->mu);
	d->stats.calls = aws_client_calls(d->c);
	d->stats.partitions = d->t.n;
	pthread_mutex_unlock(&d->mu);
	return scache_source_new(&ddbs_ops, d, out);
}
