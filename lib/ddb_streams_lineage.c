/*
 * ddb_streams_lineage.c: which shards a table's DynamoDB Stream has, and which stream:
 * DescribeStream paged by ExclusiveStartShardId / LastEvaluatedShardId (100 shards a page,
 * its maximum; a LastEvaluatedShardId handed back twice or more than DDBS_MAX_PAGES pages
 * refuse the listing), one closed shard's children by ShardFilter CHILD_SHARDS, the
 * reconciliation of a listing with the shard table (shards.c's), and ListStreams by table
 * name for the newest enabled stream. DescribeStream allows 10 calls a second: it runs at
 * creation, when a shard ends, when a shard or the stream goes missing, and on the slow
 * timer, never on every sync.
 */
#include <stdlib.h>
#include <string.h>

#include "ddb_streams.h"
#include "scache/cache.h"
#include "util.h"

const aws_service ddbs_service = {
    .name = "dynamodb", /* SigV4 signs DynamoDB Streams as "dynamodb" */
    .label = "DynamoDB Streams",
    .target_prefix = "DynamoDBStreams_20120810",
    .content_type = "application/x-amz-json-1.0",
    .endpoint_env = "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
};

/* ---- DescribeStream --------------------------------------------------------------- */

static json_object *obj_get(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/*
 * One listing: every page of DescribeStream (children of `parent` only, with ShardFilter
 * CHILD_SHARDS, when parent is not NULL) into *all; the answers that hold their strings
 * are kept in *bodies. *status receives StreamStatus (a string in the last body, or
 * NULL). A page handing back a LastEvaluatedShardId seen before, more than
 * DDBS_MAX_PAGES pages, or a malformed page refuses the listing.
 */
static scache_err describe_pages(ddbs_source *d, const char *parent, kinesis_shard **all,
                                 size_t *total, json_object ***bodies, size_t *nbodies,
                                 const char **status, aws_result *fail)
{
	const char *last = NULL;
	char why[400];
	*status = NULL;
	do {
		if (*nbodies >= DDBS_MAX_PAGES) {
			util_fmt(why, sizeof why,
			         "DescribeStream: stream %s still has a LastEvaluatedShardId after "
			         "%zu pages: the listing is refused",
			         d->arn, *nbodies);
			ddbs_poll_fail(d, SCACHE_ESERVICE, why);
			return SCACHE_ESERVICE;
		}
		json_object *req = json_object_new_object();
		if (!req)
			return SCACHE_ENOMEM;
		json_object_object_add(req, "StreamArn", json_object_new_string(d->arn));
		json_object_object_add(req, "Limit", json_object_new_int(DDBS_DESCRIBE_LIMIT));
		if (last)
			json_object_object_add(req, "ExclusiveStartShardId",
			                       json_object_new_string(last));
		if (parent) {
			json_object *f = json_object_new_object();
			json_object_object_add(f, "Type", json_object_new_string("CHILD_SHARDS"));
			json_object_object_add(f, "ShardId", json_object_new_string(parent));
			json_object_object_add(req, "ShardFilter", f);
		}
		aws_call(d->c, "DescribeStream", req, fail);
		json_object_put(req);
		if (fail->err)
			return fail->err; /* the caller tells (a missing stream is a gap) */
		json_object **nb = realloc(*bodies, (*nbodies + 1) * sizeof *nb); /* NOLINT */
		if (!nb) {
			aws_result_clear(fail);
			return SCACHE_ENOMEM;
		}
		*bodies = nb;
		json_object *body = fail->body;
		(*bodies)[(*nbodies)++] = body;
		fail->body = NULL;
		json_object *desc = obj_get(body, "StreamDescription");
		json_object *shards = aws_json_array(desc, "Shards");
		if (!shards) {
			util_fmt(why, sizeof why,
			         "DescribeStream at %s: malformed answer (no "
			         "StreamDescription.Shards array) for stream %s",
			         aws_client_endpoint(d->c), d->arn);
			ddbs_poll_fail(d, SCACHE_ESERVICE, why);
			return SCACHE_ESERVICE;
		}
		*status = aws_json_str(desc, "StreamStatus");
		size_t n = json_object_array_length(shards);
		kinesis_shard *na = realloc(*all, (*total + n + 1) * sizeof *na);
		if (!na)
			return SCACHE_ENOMEM;
		*all = na;
		for (size_t i = 0; i < n; i++) {
			json_object *s = json_object_array_get_idx(shards, i);
			json_object *range = obj_get(s, "SequenceNumberRange");
			kinesis_shard ks = {
			    .id = aws_json_str(s, "ShardId"),
			    .parent = aws_json_str(s, "ParentShardId"),
			    .starting_seq = aws_json_str(range, "StartingSequenceNumber"),
			    .ending_seq = aws_json_str(range, "EndingSequenceNumber"),
			};
			if (!ks.id || !ks.id[0] || strlen(ks.id) >= 64) {
				util_fmt(why, sizeof why,
				         "DescribeStream: malformed answer: a shard of stream %s "
				         "without a valid ShardId",
				         d->arn);
				ddbs_poll_fail(d, SCACHE_ESERVICE, why);
				return SCACHE_ESERVICE;
			}
			(*all)[(*total)++] = ks;
		}
		const char *next = aws_json_str(desc, "LastEvaluatedShardId");
		for (size_t k = 0; next && k + 1 < *nbodies; k++) {
			const char *seen = aws_json_str(obj_get((*bodies)[k], "StreamDescription"),
			                                "LastEvaluatedShardId");
			if (seen && !strcmp(seen, next)) {
				util_fmt(
				    why, sizeof why,
				    "DescribeStream: malformed answer: page %zu of stream %s hands "
				    "back the LastEvaluatedShardId %.64s of page %zu (a cycle): "
				    "the listing is refused",
				    *nbodies, d->arn, next, k + 1);
				ddbs_poll_fail(d, SCACHE_ESERVICE, why);
				return SCACHE_ESERVICE;
			}
		}
		last = next;
	} while (last);
	return SCACHE_OK;
}

/* A stream no longer readable: a gap once (when it was read), and the poll fails. */
static void stream_lost(ddbs_source *d, const char *what)
{
	char why[400];
	if (!d->t.stream_missing && d->t.n) {
		util_fmt(why, sizeof why, "stream %s %s", d->arn, what);
		ddbs_report_gap(d, why);
		shards_clear(&d->t);
	}
	d->t.stream_missing = 1;
}

/*
 * List the shards (all of them, or parent's children) and reconcile: new shards start at
 * `start` on the first listing (closed ones finished when starting at LATEST), at
 * TRIM_HORIZON after it; a shard no longer listed (full listings only) is dropped, a gap
 * if it was not read to its end.
 */
scache_err ddbs_list_shards(ddbs_source *d, int initial, const char *parent)
{
	kinesis_shard *all = NULL;
	size_t total = 0, nbodies = 0;
	json_object **bodies = NULL;
	const char *status = NULL;
	aws_result res;
	char why[400];
	memset(&res, 0, sizeof res);
	scache_err err = describe_pages(d, parent, &all, &total, &bodies, &nbodies, &status, &res);
	if (err == SCACHE_ENOMEM)
		ddbs_poll_fail(d, err, "out of memory");
	if (res.err) {
		if (res.fail == AWS_FAIL_NOTFOUND && !initial)
			stream_lost(d, "was not found (deleted, or expired 24 hours after it was "
			               "disabled)");
		ddbs_poll_fail(d, res.err, res.message);
		aws_result_clear(&res);
	}
	if (err)
		goto out;
	start_kind start = initial ? d->start : START_TRIM_HORIZON;
	if (d->t.stream_missing) {
		initial = 1; /* back: everything in it is newer than the gap */
		start = START_TRIM_HORIZON;
		d->t.stream_missing = 0;
	}
	if (!parent)
		for (size_t i = 0; i < d->t.n; i++)
			d->t.shards[i].listed = 0;
	for (size_t i = 0; i < total; i++) {
		shard *s = shards_find(&d->t, all[i].id);
		if (s) {
			s->listed = 1;
			if (all[i].ending_seq && !s->end_seq[0])
				util_copy_str(s->end_seq, sizeof s->end_seq, all[i].ending_seq);
			continue;
		}
		if (parent && all[i].parent && strcmp(all[i].parent, parent) != 0)
			continue; /* not a child of it: a filter the service ignored */
		s = shards_add(&d->t, &all[i], start);
		if (!s) {
			err = SCACHE_ENOMEM;
			ddbs_poll_fail(d, err, "out of memory");
			goto out;
		}
		if (initial && start == START_LATEST && all[i].ending_seq)
			s->finished = 1; /* nothing new arrives in a shard closed before we began */
	}
	for (size_t i = d->t.n; !parent && i-- > 0;) {
		shard *s = &d->t.shards[i];
		if (s->listed)
			continue;
		if (!s->finished) {
			util_fmt(why, sizeof why,
			         "shard %s of stream %s vanished before it was read to its end",
			         s->id, d->arn);
			ddbs_report_gap(d, why);
		}
		shards_remove(&d->t, i);
	}
	if (status && (!strcmp(status, "DISABLED") || !strcmp(status, "DISABLING"))) {
		if (!d->disabled && !initial) {
			util_fmt(why, sizeof why,
			         "stream %s is %s: the table's changes are no longer recorded",
			         d->arn, status);
			ddbs_report_gap(d, why);
		}
		d->disabled = 1;
	}
	if (!parent) {
		d->t.need_list = 0;
		d->t.last_list_ns = scache_now_ns(NULL);
	}
out:
	for (size_t i = 0; i < nbodies; i++)
		json_object_put(bodies[i]);
	free(bodies);
	free(all);
	return err;
}

/* ---- finding the stream ----------------------------------------------------------- */

/* The newest ENABLED (or ENABLING) stream of the table: ListStreams with TableName, then
 * DescribeStream of each, newest StreamLabel first (labels are ISO 8601 times). */
static scache_err resolve_arn(ddbs_source *d, char *errbuf, size_t errlen)
{
	json_object *pages[DDBS_MAX_LIST_STREAMS];
	size_t np = 0;
	const char *last = NULL;
	scache_err err = SCACHE_OK;
	aws_result res;
	do {
		json_object *req = json_object_new_object();
		if (!req) {
			err = SCACHE_ENOMEM;
			goto out;
		}
		json_object_object_add(req, "TableName", json_object_new_string(d->table.table));
		if (last)
			json_object_object_add(req, "ExclusiveStartStreamArn",
			                       json_object_new_string(last));
		aws_call(d->c, "ListStreams", req, &res);
		json_object_put(req);
		if (res.err) {
			util_fmt(errbuf, errlen, "%s", res.message);
			err = res.err;
			aws_result_clear(&res);
			goto out;
		}
		pages[np++] = res.body;
		if (!aws_json_array(res.body, "Streams")) {
			util_fmt(errbuf, errlen,
			         "ListStreams at %s: malformed answer (no Streams array) for table "
			         "'%s'",
			         aws_client_endpoint(d->c), d->table.table);
			err = SCACHE_ESERVICE;
			goto out;
		}
		const char *next = aws_json_str(res.body, "LastEvaluatedStreamArn");
		if (next && last && !strcmp(next, last)) {
			util_fmt(errbuf, errlen,
			         "ListStreams: malformed answer: a repeated "
			         "LastEvaluatedStreamArn");
			err = SCACHE_ESERVICE;
			goto out;
		}
		last = next;
	} while (last && np < DDBS_MAX_LIST_STREAMS);
	/* try candidates newest first until one is enabled */
	for (;;) {
		const char *best = NULL, *best_label = NULL;
		for (size_t p = 0; p < np; p++) {
			json_object *a = aws_json_array(pages[p], "Streams");
			for (size_t i = 0; i < json_object_array_length(a); i++) {
				json_object *s = json_object_array_get_idx(a, i);
				const char *arn = aws_json_str(s, "StreamArn");
				const char *label = aws_json_str(s, "StreamLabel");
				const char *tn = aws_json_str(s, "TableName");
				if (!arn || (tn && strcmp(tn, d->table.table) != 0))
					continue;
				if (!label)
					label = "";
				if (!best || strcmp(label, best_label) > 0) {
					best = arn;
					best_label = label;
				}
			}
		}
		if (!best) {
			util_fmt(errbuf, errlen,
			         "table '%s' has no enabled DynamoDB stream at %s (enable one with "
			         "a StreamViewType)",
			         d->table.table, aws_client_endpoint(d->c));
			err = SCACHE_ESERVICE;
			goto out;
		}
		json_object *req = json_object_new_object();
		if (!req) {
			err = SCACHE_ENOMEM;
			goto out;
		}
		json_object_object_add(req, "StreamArn", json_object_new_string(best));
		json_object_object_add(req, "Limit", json_object_new_int(1));
		aws_call(d->c, "DescribeStream", req, &res);
		json_object_put(req);
		const char *st =
		    res.err ? NULL
		            : aws_json_str(obj_get(res.body, "StreamDescription"), "StreamStatus");
		int usable = st && (!strcmp(st, "ENABLED") || !strcmp(st, "ENABLING"));
		if (res.err && res.fail != AWS_FAIL_NOTFOUND) {
			util_fmt(errbuf, errlen, "%s", res.message);
			err = res.err;
			aws_result_clear(&res);
			goto out;
		}
		aws_result_clear(&res);
		if (usable) {
			d->arn = strdup(best);
			err = d->arn ? SCACHE_OK : SCACHE_ENOMEM;
			d->t.stream = d->arn;
			goto out;
		}
		/* not enabled: drop it from the candidates (its label no longer wins) */
		for (size_t p = 0; p < np; p++) {
			json_object *a = aws_json_array(pages[p], "Streams");
			for (size_t i = 0; i < json_object_array_length(a); i++)
				if (aws_json_str(json_object_array_get_idx(a, i), "StreamArn") ==
				    best)
					json_object_array_put_idx(a, i, json_object_new_object());
		}
	}
out:
	for (size_t p = 0; p < np; p++)
		json_object_put(pages[p]);
	return err;
}

/* Find (when named by table) and list the stream: the source is then positioned. */
scache_err ddbs_position(ddbs_source *d, char *errbuf, size_t errlen)
{
	scache_poll_info info;
	memset(&info, 0, sizeof info);
	d->last_try_ns = scache_now_ns(NULL);
	if (!d->arn) {
		scache_err err = resolve_arn(d, errbuf, errlen);
		if (err)
			return err;
	}
	scache_poll_info *saved = d->cur;
	d->cur = &info;
	scache_err err = ddbs_list_shards(d, 1, NULL);
	d->cur = saved;
	if (err || info.err) {
		util_fmt(errbuf, errlen, "%s",
		         info.message[0] ? info.message : scache_strerror(err));
		return err ? err : info.err;
	}
	d->positioned = 1;
	return SCACHE_OK;
}
