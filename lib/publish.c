/*
 * publish.c: announcing invalidations with PutRecords.
 *
 * Keys are packed into scache records (each record's data plus its partition key within
 * 1 MiB), records into calls (at most 500 records and 5 MiB, partition keys included).
 * Every record gets a random 64-hex-digit partition key, as scache does, so records
 * spread over all shards. A call that partly fails is retried for its failed entries
 * only, with full-jitter backoff, up to max_retries; a whole call that fails was already
 * retried by aws_call. Each key's result names the record's shard and sequence number
 * or the AWS error; a key is reported stored only if Kinesis returned a sequence number
 * for its record.
 *
 * Every record names its publisher: "origin", a random 64-bit ID drawn at creation (16
 * hex digits after "ts"; Go scache ignores the field), so the instance that published a
 * record knows its echo when it reads it back (see kinesis_source.c and the middleware's
 * sink). Two publishers drawing the same ID is a 2^-64 event per pair, and its only
 * effect is an echo treated as one's own, which the middleware checks against what it
 * invalidated itself.
 *
 * Keys are checked to be data IDs first (scache_id_parse): a reader would skip anything
 * else, so publishing it would only look like success.
 *
 * A publish is bounded by publish_timeout_ms, retries and backoff included: each HTTP
 * attempt's timeout is cut to the time left, and no retry starts after it; calls not
 * yet made then fail as not attempted. A hung endpoint costs a writer that long, not
 * timeout_ms times max_retries. Publishes never wait for each other: each takes a
 * client (aws_client) of its own (one curl multi handle and its connections) from a small
 * pool, under a mutex held only to take or give back one, never across the network. The
 * pool keeps up to PUBLISH_IDLE_MAX idle clients (their connections stay alive); more
 * concurrent publishes create clients that are freed when they end. The trade-off: up to
 * one connection per concurrent publish instead of one shared queue.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis.h"
#include "publish.h"
#include "record.h"
#include "scache/cache.h"
#include "scache/id.h"
#include "scache/stream.h"
#include "util.h"

/* Idle clients kept for later publishes (each keeps its connections alive); a client
 * returned beyond this is freed. */
#define PUBLISH_IDLE_MAX 8

struct scache_publisher {
	kinesis_settings s;
	pthread_mutex_t mu; /* guards idle, nidle and calls_freed; never held over a call */
	aws_client *idle[PUBLISH_IDLE_MAX];
	size_t nidle;
	uint64_t calls_freed; /* HTTP calls of clients freed meanwhile */
	uint64_t origin;      /* random, never 0: written into every record ("origin") */
};

typedef struct prec {
	char *data; /* the record's JSON */
	size_t len;
	char pk[PUBLISH_PARTITION_KEY_LEN + 1];
	size_t first, end; /* its keys: valid[first..end) */
	scache_err err;
	char shard[64];
	char seq[128];
	char msg[160];
} prec;

scache_err publisher_new(const kinesis_settings *s, scache_publisher **out, char *errbuf,
                         size_t errlen)
{
	scache_err err;
	scache_publisher *p;

	if (!s || !out)
		return SCACHE_EINVAL;
	*out = NULL;
	p = calloc(1, sizeof *p);
	if (!p)
		return SCACHE_ENOMEM;
	if (kinesis_settings_copy(&p->s, s)) {
		free(p);
		return SCACHE_ENOMEM;
	}
	/* the first client now: its errors are errors of the configuration */
	err = kinesis_client_new(&p->s, &p->idle[0], errbuf, errlen);
	if (err) {
		kinesis_settings_clear(&p->s);
		free(p);
		return err;
	}
	p->nidle = 1;
	while (!p->origin)
		p->origin = aws_random();
	pthread_mutex_init(&p->mu, NULL);
	*out = p;
	return SCACHE_OK;
}

scache_err scache_publisher_new(const scache_stream_config *config, scache_publisher **out,
                                char *errbuf, size_t errlen)
{
	kinesis_settings s;

	if (!out)
		return SCACHE_EINVAL;
	*out = NULL;
	scache_err err = kinesis_settings_resolve(config, 1, &s, errbuf, errlen);
	if (err)
		return err;
	err = publisher_new(&s, out, errbuf, errlen);
	kinesis_settings_clear(&s);
	return err;
}

void scache_publisher_free(scache_publisher *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nidle; i++)
		aws_client_free(p->idle[i]);
	kinesis_settings_clear(&p->s);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* An idle client, or a new one (NULL when out of memory): one per publish in flight, so
 * no publish waits for another's network waits. */
static aws_client *client_take(scache_publisher *p)
{
	aws_client *c = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->nidle)
		c = p->idle[--p->nidle];
	pthread_mutex_unlock(&p->mu);
	if (!c && kinesis_client_new(&p->s, &c, NULL, 0) != SCACHE_OK)
		c = NULL;
	return c;
}

static void client_give_back(scache_publisher *p, aws_client *c)
{
	pthread_mutex_lock(&p->mu);
	if (p->nidle < PUBLISH_IDLE_MAX) {
		p->idle[p->nidle++] = c;
		c = NULL;
	} else {
		p->calls_freed += aws_client_calls(c);
	}
	pthread_mutex_unlock(&p->mu);
	aws_client_free(c);
}

void publish_partition_key(char out[PUBLISH_PARTITION_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < PUBLISH_PARTITION_KEY_LEN; i += 16) {
		uint64_t r = aws_random();
		for (size_t j = 0; j < 16; j++, r >>= 4)
			out[i + j] = hex[r & 15];
	}
	out[PUBLISH_PARTITION_KEY_LEN] = '\0';
}

size_t publish_pack_calls(const size_t *record_sizes, size_t n, size_t *starts)
{
	size_t calls = 0, count = 0, bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (calls == 0 || count == PUBLISH_CALL_MAX_RECORDS ||
		    bytes + record_sizes[i] > PUBLISH_CALL_MAX_BYTES) {
			starts[calls++] = i;
			count = 0;
			bytes = 0;
		}
		count++;
		bytes += record_sizes[i];
	}
	return calls;
}

/* The PutRecords request of recs[0..n), or NULL when out of memory. */
static json_object *put_records_request(const char *stream, prec *const *recs, size_t n)
{
	kinesis_put_entry *e = calloc(n ? n : 1, sizeof *e);
	if (!e)
		return NULL;
	for (size_t i = 0; i < n; i++)
		e[i] = (kinesis_put_entry){recs[i]->data, recs[i]->len, recs[i]->pk};
	json_object *o = kinesis_req_put_records(stream, e, n);
	free(e);
	return o;
}

/* Put recs[0..n) (one call's worth), retrying failed entries only, until deadline_ns. */
static void put_call(aws_client *c, const char *stream, prec **recs, size_t n, uint64_t deadline_ns)
{
	const aws_settings *s = aws_client_settings(c);
	prec **pending = malloc(n * sizeof *pending); /* NOLINT(bugprone-sizeof-expression) */
	kinesis_put_outcome *out = calloc(n, sizeof *out);
	size_t m = n;

	if (!pending || !out) {
		free(pending);
		free(out);
		for (size_t i = 0; i < n; i++) {
			recs[i]->err = SCACHE_ENOMEM;
			util_fmt(recs[i]->msg, sizeof recs[i]->msg, "out of memory");
		}
		return;
	}
	memcpy(pending, recs, n * sizeof *pending); /* NOLINT(bugprone-sizeof-expression) */
	for (unsigned attempt = 0; m; attempt++) {
		aws_result res;
		json_object *req = put_records_request(stream, pending, m);
		if (!req) {
			for (size_t i = 0; i < m; i++) {
				pending[i]->err = SCACHE_ENOMEM;
				util_fmt(pending[i]->msg, sizeof pending[i]->msg, "out of memory");
			}
			break;
		}
		aws_call_until(c, "PutRecords", req, &res, deadline_ns);
		json_object_put(req);
		if (res.err || kinesis_parse_put_records(res.body, m, out)) {
			for (size_t i = 0; i < m; i++) {
				pending[i]->err = res.err ? res.err : SCACHE_ESERVICE;
				util_fmt(pending[i]->msg, sizeof pending[i]->msg, "%s",
				         res.err
				             ? res.message
				             : "PutRecords: answer without one entry per record");
			}
			aws_result_clear(&res);
			break;
		}
		size_t keep = 0;
		for (size_t i = 0; i < m; i++) {
			const char *seq = out[i].seq, *shard = out[i].shard, *code = out[i].code;
			if (seq && !code) {
				pending[i]->err = SCACHE_OK;
				util_fmt(pending[i]->seq, sizeof pending[i]->seq, "%s", seq);
				util_fmt(pending[i]->shard, sizeof pending[i]->shard, "%s",
				         shard ? shard : "");
				pending[i]->msg[0] = '\0';
				continue;
			}
			char shown[sizeof pending[i]->msg];
			pending[i]->err = SCACHE_EPUBLISH;
			aws_client_redact(c, shown, sizeof shown,
			                  out[i].message); /* before cutting */
			util_fmt(pending[i]->msg, sizeof pending[i]->msg,
			         "PutRecords at %s: %s: %s", aws_client_endpoint(c),
			         code ? code : "no SequenceNumber", shown);
			pending[keep++] = pending[i];
		}
		aws_result_clear(&res);
		m = keep;
		if (!m || attempt >= s->max_retries)
			break;
		unsigned wait =
		    aws_backoff_ms(s->backoff_base_ms, s->backoff_max_ms, attempt, aws_random());
		uint64_t now = scache_now_ns(NULL);
		if (now >= deadline_ns || (uint64_t)wait * 1000000u >= deadline_ns - now)
			break; /* the publish timeout: these entries keep their error */
		util_sleep_ms(wait);
	}
	free(pending);
	free(out);
}

static void result_set(scache_publish_result *r, scache_err err, const char *shard, const char *seq,
                       const char *msg)
{
	if (!r)
		return;
	r->err = err;
	util_fmt(r->shard_id, sizeof r->shard_id, "%s", shard ? shard : "");
	util_fmt(r->sequence, sizeof r->sequence, "%s", seq ? seq : "");
	util_fmt(r->message, sizeof r->message, "%s", msg ? msg : "");
}

static scache_err publish_with(const scache_publisher *p, aws_client *c, const char *const *keys,
                               const size_t *lens, size_t n, scache_publish_result *results,
                               uint64_t deadline_ns)
{
	size_t *valid = malloc(n * sizeof *valid), *sizes = malloc(n * sizeof *sizes);
	size_t *starts = malloc(n * sizeof *starts), m = 0, nrec = 0;
	prec *recs = NULL, **order = NULL;
	scache_err ret = SCACHE_OK;

	if (!valid || !sizes || !starts) {
		ret = SCACHE_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		scache_id id;
		scache_err e = keys[i] ? scache_id_parse(keys[i], lens[i], &id) : SCACHE_EINVAL;
		if (e == SCACHE_OK) {
			scache_id_clear(&id);
			sizes[m] = record_key_size(keys[i], lens[i]);
			valid[m++] = i;
		} else {
			result_set(&results[i], e, NULL, NULL, "not a data ID: not published");
			ret = SCACHE_EPUBLISH;
		}
	}
	nrec = record_pack(sizes, m, PUBLISH_RECORD_MAX_BYTES, PUBLISH_PARTITION_KEY_LEN, starts);
	recs = calloc(nrec ? nrec : 1, sizeof *recs);
	order = calloc(nrec ? nrec : 1, sizeof *order); /* NOLINT(bugprone-sizeof-expression) */
	if (!recs || !order) {
		ret = SCACHE_ENOMEM;
		goto out;
	}
	int64_t ts = (int64_t)util_wall_ns();
	const char **rk = malloc((m ? m : 1) * sizeof *rk);
	size_t *rl = malloc((m ? m : 1) * sizeof *rl);
	if (!rk || !rl) {
		free(rk);
		free(rl);
		ret = SCACHE_ENOMEM;
		goto out;
	}
	for (size_t j = 0; j < m; j++) {
		rk[j] = keys[valid[j]];
		rl[j] = lens[valid[j]];
	}
	size_t nput = 0;
	for (size_t r = 0; r < nrec; r++) {
		prec *x = &recs[r];
		x->first = starts[r];
		x->end = r + 1 < nrec ? starts[r + 1] : m;
		publish_partition_key(x->pk);
		if (record_build_scache(rk + x->first, rl + x->first, x->end - x->first, ts,
		                        p->origin, &x->data, &x->len)) {
			x->err = SCACHE_ENOMEM;
			util_fmt(x->msg, sizeof x->msg, "out of memory");
		} else if (x->len + PUBLISH_PARTITION_KEY_LEN > PUBLISH_RECORD_MAX_BYTES) {
			x->err = SCACHE_ETOOBIG;
			util_fmt(x->msg, sizeof x->msg,
			         "key too large for one Kinesis record (%zu bytes, limit %zu)",
			         x->len, (size_t)PUBLISH_RECORD_MAX_BYTES);
		} else {
			x->err = SCACHE_EPUBLISH;
			util_fmt(x->msg, sizeof x->msg, "not attempted");
			order[nput] = x;
			sizes[nput++] = x->len + PUBLISH_PARTITION_KEY_LEN;
		}
	}
	free(rk);
	free(rl);
	/* sizes[] now holds record sizes; starts[] the calls */
	size_t ncalls = publish_pack_calls(sizes, nput, starts);
	for (size_t k = 0; k < ncalls; k++) {
		size_t end = k + 1 < ncalls ? starts[k + 1] : nput;
		if (k && scache_now_ns(NULL) >= deadline_ns) {
			for (size_t i = starts[k]; i < end; i++) {
				order[i]->err = SCACHE_ETRANSPORT;
				util_fmt(order[i]->msg, sizeof order[i]->msg,
				         "PutRecords at %s: not attempted: the publish timeout "
				         "(%ld ms) was reached",
				         aws_client_endpoint(c), p->s.publish_timeout_ms);
			}
			continue;
		}
		put_call(c, p->s.stream_name, order + starts[k], end - starts[k], deadline_ns);
	}
	for (size_t r = 0; r < nrec; r++) {
		prec *x = &recs[r];
		if (x->err != SCACHE_OK)
			ret = SCACHE_EPUBLISH;
		for (size_t j = x->first; j < x->end; j++)
			result_set(results ? &results[valid[j]] : NULL,
			           x->err == SCACHE_OK ? SCACHE_OK : x->err, x->shard, x->seq,
			           x->msg);
	}
out:
	if (ret == SCACHE_ENOMEM)
		for (size_t i = 0; i < n; i++)
			result_set(results ? &results[i] : NULL, SCACHE_ENOMEM, NULL, NULL,
			           "out of memory");
	for (size_t r = 0; recs && r < nrec; r++)
		free(recs[r].data);
	free(recs);
	free(order);
	free(valid);
	free(sizes);
	free(starts);
	return ret;
}

scache_err scache_publish_keys(scache_publisher *p, const char *const *keys, const size_t *lens,
                               size_t n, scache_publish_result *results)
{
	scache_publish_result *tmp = NULL;
	scache_err err;

	if (!p || (n && (!keys || !lens)))
		return SCACHE_EINVAL;
	if (!n)
		return SCACHE_OK;
	if (!results) {
		tmp = calloc(n, sizeof *tmp);
		if (!tmp)
			return SCACHE_ENOMEM;
		results = tmp;
	}
	for (size_t i = 0; i < n; i++)
		result_set(&results[i], SCACHE_EPUBLISH, NULL, NULL, "not attempted");
	uint64_t deadline_ns = scache_now_ns(NULL) + (uint64_t)p->s.publish_timeout_ms * 1000000u;
	aws_client *c = client_take(p);
	if (!c) {
		err = SCACHE_ENOMEM;
		for (size_t i = 0; i < n; i++)
			result_set(&results[i], SCACHE_ENOMEM, NULL, NULL, "out of memory");
	} else {
		err = publish_with(p, c, keys, lens, n, results, deadline_ns);
		client_give_back(p, c);
	}
	free(tmp);
	return err;
}

uint64_t publish_calls(scache_publisher *p)
{
	pthread_mutex_lock(&p->mu);
	uint64_t n = p->calls_freed;
	for (size_t i = 0; i < p->nidle; i++)
		n += aws_client_calls(p->idle[i]);
	pthread_mutex_unlock(&p->mu);
	return n;
}

uint64_t scache_publisher_origin(const scache_publisher *p)
{
	return p ? p->origin : 0;
}

scache_err publish_keys_why(scache_publisher *pub, const char *const *keys, const size_t *lens,
                            size_t n, char *errbuf, size_t errlen)
{
	scache_publish_result *res = calloc(n ? n : 1, sizeof *res);
	scache_err err = scache_publish_keys(pub, keys, lens, n, res);
	if (err) {
		const char *why = NULL;
		for (size_t i = 0; res && i < n && !why; i++)
			if (res[i].err && res[i].message[0])
				why = res[i].message;
		util_fmt(errbuf, errlen, "%s", why ? why : scache_strerror(err));
	}
	free(res);
	return err;
}
