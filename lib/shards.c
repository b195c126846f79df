/*
 * shards.c: the shard lineage of a Kinesis stream: which shards exist, which were read to
 * their end, and which may be read now (a child waits until every parent it has, two
 * after a merge, is finished).
 *
 * ListShards runs when the reader is created, when a shard closes (or a shard or the
 * stream goes missing), and on a slow timer; never on every poll. A listing is reconciled
 * with the table: new shards with parents are children (read from TRIM_HORIZON), shards
 * no longer listed are dropped (a gap if one was not read to its end), and the signs of a
 * stream recreated under the same name (a shard new and without parent, a starting
 * sequence number changed) restart every shard at TRIM_HORIZON after a gap.
 *
 * A listing is refused, failing the poll and keeping the shards known, when it names a
 * shard twice, hands back a NextToken it gave before, or runs past max_list_pages pages or
 * max_list_shards shards: a malformed answer must not loop.
 *
 * Recreation. AWS fails the old iterators of a recreated stream, but kinesalite keeps them
 * working on the new one, and either way what was put to the old stream after our last
 * read is lost. So every check interval (at most once a second: DescribeStreamSummary
 * allows 20 calls a second per account, for all readers), and in the first poll after a
 * failed one, a poll first compares the stream's creation time and open shard count (see
 * shards_check_stream).
 */
#include "shards.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "scache/cache.h"
#include "util.h"

void shards_init(shard_table *t, aws_client *c, const char *stream, const shards_events *ev,
                 unsigned check_interval_ms)
{
	memset(t, 0, sizeof *t);
	t->c = c;
	t->stream = stream;
	t->ev = *ev;
	t->max_list_pages = 1000;    /* MaxResults is 10000 a page: any real stream */
	t->max_list_shards = 100000; /* the bounds keep a malformed answer from looping */
	t->check_interval_ns = (uint64_t)check_interval_ms * 1000000u;
	t->last_check_ns = scache_now_ns(NULL);
}

void shards_free(shard_table *t)
{
	shards_clear(t);
	free(t->shards);
	t->shards = NULL;
	t->cap = 0;
}

shard *shards_find(shard_table *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->shards[i].id, id))
			return &t->shards[i];
	return NULL;
}

void shard_reset(shard *s, start_kind start)
{
	free(s->iter);
	s->iter = NULL;
	s->last_seq[0] = '\0';
	s->start = start;
	s->start_ts = 0;
	s->last_good = util_wall_s();
	s->finished = 0;
}

void shards_clear(shard_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->shards[i].iter);
	t->n = 0;
}

shard *shards_add(shard_table *t, const kinesis_shard *ks, start_kind start)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		shard *p = realloc(t->shards, cap * sizeof *p);
		if (!p)
			return NULL;
		t->shards = p;
		t->cap = cap;
	}
	shard *s = &t->shards[t->n++];
	memset(s, 0, sizeof *s);
	util_copy_str(s->id, sizeof s->id, ks->id);
	util_copy_str(s->parent, sizeof s->parent, ks->parent);
	util_copy_str(s->adjacent, sizeof s->adjacent, ks->adjacent_parent);
	util_copy_str(s->start_seq, sizeof s->start_seq, ks->starting_seq);
	util_copy_str(s->end_seq, sizeof s->end_seq, ks->ending_seq);
	s->start = start;
	s->last_good = util_wall_s();
	s->listed = 1;
	return s;
}

void shards_remove(shard_table *t, size_t i)
{
	free(t->shards[i].iter);
	t->shards[i] = t->shards[--t->n];
}

/* A parent we do not track (expired, or older than our start) counts as finished. */
static int parents_done(shard_table *t, const shard *s)
{
	const char *ps[2] = {s->parent, s->adjacent};
	for (int k = 0; k < 2; k++) {
		if (!ps[k][0])
			continue;
		shard *p = shards_find(t, ps[k]);
		if (p && !p->finished)
			return 0;
	}
	return 1;
}

void shard_finish(shard_table *t, shard *s)
{
	s->finished = 1;
	free(s->iter);
	s->iter = NULL;
	t->need_list = 1; /* learn its children */
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
static scache_err list_pages(shard_table *t, int initial, kinesis_shard **all, size_t *total,
                             json_object ***bodies, size_t *nbodies)
{
	kinesis_shard *ks;
	size_t nks;
	const char *token = NULL;
	const char **tokens = NULL; /* asked so far, in bodies */
	scache_err err = SCACHE_OK;
	char why[320];

	do {
		aws_result res;
		if (*nbodies >= t->max_list_pages) {
			err = SCACHE_ESERVICE;
			util_fmt(why, sizeof why,
			         "ListShards: stream '%s' still has a NextToken after %zu pages: "
			         "the listing is refused",
			         t->stream, *nbodies);
			t->ev.fail(t->ev.arg, err, why);
			goto out;
		}
		json_object *req = kinesis_req_list_shards(t->stream, token);
		if (!req) {
			err = SCACHE_ENOMEM;
			t->ev.fail(t->ev.arg, err, "out of memory");
			goto out;
		}
		aws_call(t->c, "ListShards", req, &res);
		json_object_put(req);
		if (res.err) {
			if (res.fail == AWS_FAIL_NOTFOUND && !initial && *nbodies == 0) {
				if (!t->stream_missing) {
					util_fmt(why, sizeof why,
					         "stream '%s' not found (deleted?): %s", t->stream,
					         res.message);
					t->ev.gap(t->ev.arg, why);
					shards_clear(t);
					t->stream_missing = 1;
				}
			}
			err = res.err;
			t->ev.fail(t->ev.arg, err, res.message);
			aws_result_clear(&res);
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
			aws_result_clear(&res);
			err = SCACHE_ENOMEM;
			t->ev.fail(t->ev.arg, err, "out of memory");
			goto out;
		}
		tokens[*nbodies] = token; /* NULL for the first page */
		if (kinesis_parse_shards(res.body, &ks, &nks, &token)) {
			aws_result_clear(&res);
			err = SCACHE_ESERVICE;
			t->ev.fail(t->ev.arg, err, "ListShards: malformed answer");
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
			util_fmt(why, sizeof why,
			         "ListShards: malformed answer: page %zu of stream '%s' hands back "
			         "the NextToken '%.40s%s' of page %zu (a cycle): the listing is "
			         "refused",
			         *nbodies, t->stream, token, strlen(token) > 40 ? "..." : "",
			         k + 1);
			t->ev.fail(t->ev.arg, err, why);
			goto out;
		}
		if (nks > t->max_list_shards - *total) {
			free(ks);
			err = SCACHE_ESERVICE;
			util_fmt(why, sizeof why,
			         "ListShards: stream '%s' lists more than %zu shards: the listing "
			         "is refused",
			         t->stream, t->max_list_shards);
			t->ev.fail(t->ev.arg, err, why);
			goto out;
		}
		kinesis_shard *na = realloc(*all, (*total + nks + 1) * sizeof *na);
		if (!na) {
			free(ks);
			err = SCACHE_ENOMEM;
			t->ev.fail(t->ev.arg, err, "out of memory");
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
scache_err shards_list(shard_table *t, int initial, start_kind start)
{
	kinesis_shard *all = NULL;
	size_t total = 0;
	json_object **bodies = NULL;
	size_t nbodies = 0;
	scache_err err;
	char why[320];
	int restarted = 0, oom;

	err = list_pages(t, initial, &all, &total, &bodies, &nbodies);
	if (err)
		goto out;
	const char *dup = listed_twice(all, total, &oom);
	if (oom || dup) {
		err = oom ? SCACHE_ENOMEM : SCACHE_ESERVICE;
		util_fmt(why, sizeof why,
		         "ListShards: malformed answer: stream '%s' lists shard %s twice: the "
		         "listing is refused",
		         t->stream, dup ? dup : "");
		t->ev.fail(t->ev.arg, err, oom ? "out of memory" : why);
		goto out;
	}
	if (total == 0) {
		/* An ACTIVE stream has at least one open shard. None: a stream being created
		 * (kinesalite lists none then; AWS answers ResourceInUseException) or a bad
		 * answer. Taken as "every shard vanished", the reader would go on reading no
		 * shard, and its polls would succeed without seeing what the stream gets. */
		err = SCACHE_ESERVICE;
		util_fmt(why, sizeof why,
		         "ListShards: stream '%s' lists no shards (being created?): the listing "
		         "is refused",
		         t->stream);
		t->ev.fail(t->ev.arg, err, why);
		goto out;
	}

	if (t->stream_missing) {
		/* the stream is back: everything in it is newer than the gap reported */
		t->stream_missing = 0;
		t->created_ts = 0; /* the next check learns the new stream's */
		initial = 1;
		start = START_TRIM_HORIZON;
	}
	for (size_t i = 0; i < t->n; i++)
		t->shards[i].listed = 0;
	for (size_t i = 0; i < total; i++) {
		shard *s = shards_find(t, all[i].id);
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
				t->ev.fail(t->ev.arg, err,
				           "ListShards: the listing contradicts itself");
				goto out;
			}
			restarted = 1;
			util_fmt(why, sizeof why, "stream '%s' was recreated (shard %s %s)",
			         t->stream, all[i].id, sign);
			t->ev.gap(t->ev.arg, why);
			shards_clear(t);
			t->created_ts = 0; /* the next check learns the new stream's */
			initial = 1;
			start = START_TRIM_HORIZON;
			i = (size_t)-1; /* start over: every shard is new */
			continue;
		}
		if (s) {
			s->listed = 1;
			if (all[i].ending_seq && !s->end_seq[0])
				util_copy_str(s->end_seq, sizeof s->end_seq, all[i].ending_seq);
			continue;
		}
		s = shards_add(t, &all[i], initial ? start : START_TRIM_HORIZON);
		if (!s) {
			err = SCACHE_ENOMEM;
			t->ev.fail(t->ev.arg, err, "out of memory");
			goto out;
		}
		/* nothing new arrives in a shard closed before we started at LATEST */
		if (initial && start == START_LATEST && all[i].ending_seq)
			s->finished = 1;
	}
	for (size_t i = t->n; i-- > 0;) {
		shard *s = &t->shards[i];
		if (s->listed)
			continue;
		if (!s->finished) {
			util_fmt(why, sizeof why,
			         "shard %s of stream '%s' vanished before it was read "
			         "to its end",
			         s->id, t->stream);
			t->ev.gap(t->ev.arg, why);
		}
		shards_remove(t, i);
	}
	t->need_list = 0;
	t->last_list_ns = scache_now_ns(NULL);
out:
	for (size_t i = 0; i < nbodies; i++)
		json_object_put(bodies[i]);
	free(bodies);
	free(all);
	return err;
}

int shard_readable(shard_table *t, const shard *s)
{
	return !s->finished && parents_done(t, s);
}

static size_t open_shards(const shard_table *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		n += !t->shards[i].finished && !t->shards[i].end_seq[0];
	return n;
}

/* Read StreamCreationTimestamp (0 when absent) and OpenShardCount (-1 when absent) from a

 * iterators and positions fail, but kinesalite keeps them working on the new stream, and
 * either way the records put to the old one after our last read are lost. So, every
 * check_interval_ns, one DescribeStreamSummary: a new StreamCreationTimestamp is a gap;
 * an OpenShardCount unlike ours lists the shards, which tells a reshard (children with
 * parents) from a recreation (shards without parents, or new starting sequence numbers:
 * kinesalite's creation times are whole seconds, so a quick recreation can keep its
 * timestamp). Any failure lists the shards too: ListShards tells a deleted stream, and
 * it allows 1000 calls a second per stream where this allows 20 per account.
 */
void shards_check_soon(shard_table *t)
{
	t->last_check_ns = 0;
}

void shards_check_stream(shard_table *t)
{
	uint64_t now = scache_now_ns(NULL);
	aws_result res;
	kinesis_summary sum;
	char why[320];

	if ((t->last_check_ns && now - t->last_check_ns < t->check_interval_ns) ||
	    t->stream_missing)
		return;
	t->last_check_ns = now;
	json_object *req = kinesis_req_stream(t->stream);
	if (!req) {
		t->need_list = 1;
		return;
	}
	aws_call(t->c, "DescribeStreamSummary", req, &res);
	json_object_put(req);
	kinesis_parse_summary(res.err ? NULL : res.body, &sum);
	aws_result_clear(&res);
	if (sum.created <= 0 || sum.open_shards < 0) { /* failed (or an odd answer) */
		t->need_list = 1;
		return;
	}
	if (t->created_ts > 0 && sum.created != t->created_ts) {
		util_fmt(why, sizeof why,
		         "stream '%s' was recreated (created at %.3f, not %.3f as when it was "
		         "read before)",
		         t->stream, sum.created, t->created_ts);
		t->ev.gap(t->ev.arg, why);
		shards_clear(t);
		t->stream_missing = 1; /* the next listing starts every shard at TRIM_HORIZON */
		t->need_list = 1;
	} else if ((size_t)sum.open_shards != open_shards(t)) {
		t->need_list = 1;
	}
	t->created_ts = sum.created;
}

int shard_batch_init(shard_batch *b, size_t nshards)
{
	size_t n = nshards ? nshards : 1;
	b->m = 0;
	b->who = calloc(n, sizeof *b->who);   /* NOLINT(bugprone-sizeof-expression) */
	b->reqs = calloc(n, sizeof *b->reqs); /* NOLINT(bugprone-sizeof-expression) */
	b->res = calloc(n, sizeof *b->res);
	return b->who && b->reqs && b->res;
}

void shard_batch_free(shard_batch *b)
{
	for (size_t k = 0; k < b->m; k++) {
		aws_result_clear(&b->res[k]);
		json_object_put(b->reqs[k]);
	}
	free(b->who);
	free(b->reqs);
	free(b->res);
}
