/*
 * push_source.c: the Kinesis push source (scache/source.h, scache_kinesis_push_source_new
 * in stream.h): records received by enhanced fan-out subscriptions, behind the same
 * interface as the polling source, so the middleware never knows which one feeds it.
 *
 * Two threads. The pusher (this file's thread) owns the consumer, the shard table and
 * one curl multi handle carrying a SubscribeToShard transfer per readable shard (each
 * on a connection of its own: see kinesis_push.c). It decodes events as they arrive
 * and appends them to one FIFO queue, in arrival order across shards, so a parent's
 * last records always precede its children's first. The owner's poller thread, in sync, takes the queue and
 * applies it to the sink (the sink may only be called from sync), then decides
 * freshness: every live shard must have an applied event received at or after `since`
 * (less the MillisBehindLatest it carried and event_lag_ms), else sync waits on a
 * condition variable the pusher signals per event, up to sync_wait_ms. Startup waits
 * (up to opts.startup_ms) until every shard is positioned: a call accepted, or a start
 * at TRIM_HORIZON.
 *
 * Positions. Each shard keeps the ContinuationSequenceNumber of its last event; a new
 * subscription starts AT_SEQUENCE_NUMBER of it (AFTER would skip a record if the
 * service's continuation were the next record rather than the last one read: AT at
 * worst repeats one, and sync drops records at or before the last sequence number it
 * applied for the shard). A shard with no event yet starts where the source started it
 * (LATEST, TRIM_HORIZON), and, once a LATEST call has been accepted, from AT_TIMESTAMP
 * of that call less 330 s (propagation and clock skew, as the polling reader does).
 *
 * Renewals and drops. A subscription is renewed (closed and called again from its
 * position) when it is subscription_ms old, before AWS's 5 minutes end, or when the
 * service ends it. A drop (transport error, a cut mid-message, silence for silence_ms)
 * or an error answer resubscribes with full-jitter backoff; ResourceInUseException (a
 * call within 5 s of a successful one) waits out the 5 s. Nothing is lost across either:
 * the position is only advanced by events received whole.
 *
 * Shards. ListShards at start, every list_shards_interval_ms, and when a call says a
 * resource is missing. A shard ends on ChildShards, or when ListShards says it is closed
 * and an event reports it empty and caught up (kinesis-mock 0.6.2 sends no ChildShards);
 * children are subscribed once every parent they have has ended. The stream gone is a
 * gap (sync fails until it is back); a position the service refuses
 * (InvalidArgumentException) is a gap for that shard, read again from TRIM_HORIZON.
 *
 * Lock order: p->mu only (the publisher and the fallback polling source have their own,
 * never taken under p->mu).
 */
#include "push_source.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kinesis.h"
#include "publish.h"
#include "reader_log.h"
#include "record.h"
#include "scache/cache.h"
#include "source_internal.h"
#include "util.h"

#define AT_TIMESTAMP_MARGIN_S 330.0
#define BACKOFF_BASE_MS       100u
#define BACKOFF_MAX_MS        5000u
#define CALL_SPACING_NS       1000000000ull /* one SubscribeToShard a second per shard */
#define SETUP_RETRY_MS        1000u
#define CONSUMER_WAIT_MS      10000u

typedef enum pstart { PS_LATEST, PS_TRIM_HORIZON, PS_AT_TIMESTAMP } pstart;

typedef struct pshard {
	char id[64], parent[64], adjacent[64];
	/* pusher thread only */
	char ending[130]; /* EndingSequenceNumber per ListShards, "" while open */
	char pos[130];    /* the last ContinuationSequenceNumber */
	pstart start;
	double start_ts;
	push_sub sub;
	int subscribed;      /* sub is in the multi handle */
	uint64_t call_ns;    /* when the current (or last) call began */
	uint64_t ok_call_ns; /* when the last call answered 200 began */
	uint64_t next_ns;    /* no call before */
	unsigned failures;
	int ended;  /* its end was seen: no more subscriptions */
	int gone;   /* of a stream deleted since: never read again */
	int listed; /* seen by the last listing */
	/* sync thread only */
	char applied_seq[130]; /* the last record applied */
	/* under mu */
	uint64_t fresh_ns; /* received - MillisBehindLatest - event_lag_ms of the newest
	                      applied event */
	int finished;      /* its end was applied */
	int positioned;    /* a call was accepted (200), or the shard is finished */
	int64_t behind_ms;
	char why[200]; /* the last error of its subscriptions */
} pshard;

typedef struct pevent {
	struct pevent *next;
	pshard *shard;   /* NULL for a message */
	json_object *ev; /* owned */
	uint64_t received_ns;
	int64_t behind_ms;
	int end;    /* the shard ended with this event */
	int gap;    /* text is a gap's reason */
	char *text; /* a gap or a log message */
} pevent;

typedef struct push_src {
	kinesis_settings settings;
	scache_push_config cfg;
	char consumer_name[129];
	int generated_name;
	push_opts opts;
	scache_start_at start;
	aws_client *c; /* the pusher's calls */
	scache_publisher *publisher;
	record_ddb ddb; /* sync thread only */
	log_limit log;  /* sync thread only */
	scache_source *self_source;

	/* pusher thread only */
	CURLM *multi;
	pshard **shards;
	size_t n, cap;
	push_consumer consumer;
	int have_consumer;
	int listed_once;
	uint64_t last_list_ns;
	int need_list;
	uint64_t next_setup_ns;
	unsigned setup_failures;
	int http_checked; /* an h2 answer was seen, or the fallback taken */

	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* an event was queued, or the state changed */
	/* under mu */
	int stop;
	int cut_all;
	pevent *head, **tail;
	char fatal[256];    /* why syncs fail now (the stream missing), "" when fine */
	int gap_unsaid;     /* a gap whose event could not be allocated: sync reports it */
	char fallback[256]; /* the reason to fall back to polling, set once */
	int ever_positioned;
	char state[256]; /* what startup waits for, for unavailable() */
	char unavailable[256];
	scache_push_stats stats;
	scache_source_stats sstats;
	scache_source *poll; /* the fallback polling source (set by sync; atomic reads) */
	uint64_t positioned_gen;
} push_src;

/* ---- the registry of push sources (for scache_kinesis_push_stats) ------------------ */

typedef struct reg_entry {
	struct reg_entry *next;
	scache_source *source;
	push_src *p;
} reg_entry;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static reg_entry *reg_head;

static void registry_add(scache_source *s, push_src *p, reg_entry *e)
{
	e->source = s;
	e->p = p;
	pthread_mutex_lock(&reg_mu);
	e->next = reg_head;
	reg_head = e;
	pthread_mutex_unlock(&reg_mu);
}

static void registry_remove(push_src *p)
{
	pthread_mutex_lock(&reg_mu);
	for (reg_entry **e = &reg_head; *e; e = &(*e)->next)
		if ((*e)->p == p) {
			reg_entry *dead = *e;
			*e = dead->next;
			free(dead);
			break;
		}
	pthread_mutex_unlock(&reg_mu);
}

/* ---- queue (under mu) ---------------------------------------------------------------- */

static void queue_put(push_src *p, pevent *e)
{
	e->next = NULL;
	*p->tail = e;
	p->tail = &e->next;
	pthread_cond_broadcast(&p->cv);
}

static void event_free(pevent *e)
{
	json_object_put(e->ev);
	free(e->text);
	free(e);
}

/* A message (or a gap) for the sink, from the pusher. */
__attribute__((format(printf, 3, 4))) static void pusher_say(push_src *p, int gap, const char *fmt,
                                                             ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	pevent *e = calloc(1, sizeof *e);
	if (!e || !(e->text = strdup(msg))) {
		free(e);
		if (gap) { /* a gap is never lost: sync reports it without its words */
			pthread_mutex_lock(&p->mu);
			p->sstats.gaps++;
			p->gap_unsaid = 1;
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
		}
		return;
	}
	e->gap = gap;
	pthread_mutex_lock(&p->mu);
	if (gap)
		p->sstats.gaps++;
	queue_put(p, e);
	pthread_mutex_unlock(&p->mu);
}

/* ---- shards (pusher) ------------------------------------------------------------------ */

static pshard *shard_find(push_src *p, const char *id)
{
	for (size_t i = 0; i < p->n; i++)
		if (!p->shards[i]->gone && !strcmp(p->shards[i]->id, id))
			return p->shards[i];
	return NULL;
}

/* A new shard (under mu: sync reads the table). */
static pshard *shard_add(push_src *p, const char *id, const char *parent, const char *adjacent,
                         pstart start)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		pshard **a = realloc(p->shards, cap * sizeof *a);
		if (!a)
			return NULL;
		p->shards = a;
		p->cap = cap;
	}
	pshard *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	util_copy_str(s->id, sizeof s->id, id);
	util_copy_str(s->parent, sizeof s->parent, parent);
	util_copy_str(s->adjacent, sizeof s->adjacent, adjacent);
	s->start = start;
	s->positioned = start == PS_TRIM_HORIZON; /* reading from the start loses nothing */
	p->shards[p->n++] = s;
	return s;
}

/* Every parent s has (that is still known) has ended. */
static int parents_ended(push_src *p, const pshard *s)
{
	const char *ps[2] = {s->parent, s->adjacent};
	for (int i = 0; i < 2; i++) {
		if (!ps[i][0])
			continue;
		pshard *q = shard_find(p, ps[i]);
		if (q && !q->ended)
			return 0;
	}
	return 1;
}

/* The shard's end was seen: no subscription after this one. */
static void shard_end(push_src *p, pshard *s)
{
	(void)p;
	s->ended = 1;
}

static void sub_over(push_src *p, pshard *s, int cut, int renewal, CURLcode cc);

/* The stream is gone (deleted): a gap, once; syncs fail until it is back, then its new
 * shards are read from TRIM_HORIZON. */
static void stream_gone(push_src *p, const char *why)
{
	pthread_mutex_lock(&p->mu);
	int first = !p->fatal[0]; /* fatal is written by the pusher only: this thread */
	pthread_mutex_unlock(&p->mu);
	/* the gap before the failure, so a sync that fails for it has applied the gap */
	if (first && p->listed_once)
		pusher_say(p, 1, "stream '%s' was deleted: %s", p->settings.stream_name, why);
	pthread_mutex_lock(&p->mu);
	util_fmt(p->fatal, sizeof p->fatal, "stream '%s' not found at %s (deleted?)",
	         p->settings.stream_name, p->settings.aws.endpoint);
	for (size_t i = 0; i < p->n; i++)
		p->shards[i]->gone = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	p->have_consumer = 0; /* deleted with the stream */
	p->listed_once = 0;
	p->need_list = 1;
}

/* List the shards and reconcile. initial: the first listing of this stream. Returns 0,
 * or -1 (the stream missing: p->fatal set and a gap reported; or another failure). */
static int list_shards(push_src *p, int initial)
{
	char *token = NULL;
	int rc = 0;
	for (size_t i = 0; i < p->n; i++)
		p->shards[i]->listed = 0;
	for (int page = 0; page < 100; page++) {
		json_object *req = kinesis_req_list_shards(p->settings.stream_name, token);
		free(token);
		token = NULL;
		if (!req)
			return -1;
		aws_result res;
		aws_call(p->c, "ListShards", req, &res);
		json_object_put(req);
		pthread_mutex_lock(&p->mu);
		p->sstats.calls += res.attempts;
		p->sstats.throttled += res.throttled;
		pthread_mutex_unlock(&p->mu);
		if (res.err) {
			if (res.fail == AWS_FAIL_NOTFOUND)
				stream_gone(p, res.message);
			aws_result_clear(&res);
			return -1;
		}
		kinesis_shard *ks = NULL;
		size_t nks = 0;
		const char *next = NULL;
		if (kinesis_parse_shards(res.body, &ks, &nks, &next)) {
			aws_result_clear(&res);
			return -1;
		}
		for (size_t i = 0; i < nks; i++) {
			pshard *s = shard_find(p, ks[i].id);
			if (!s) {
				pstart start = !initial                          ? PS_TRIM_HORIZON
				               : p->start == SCACHE_START_LATEST ? PS_LATEST
				                                                 : PS_TRIM_HORIZON;
				pthread_mutex_lock(&p->mu);
				s = shard_add(p, ks[i].id, ks[i].parent, ks[i].adjacent_parent,
				              start);
				pthread_mutex_unlock(&p->mu);
				if (!s) {
					rc = -1;
					continue;
				}
				/* closed before a start at LATEST: nothing more comes from it */
				if (initial && ks[i].ending_seq &&
				    p->start == SCACHE_START_LATEST) {
					shard_end(p, s);
					pthread_mutex_lock(&p->mu);
					s->finished = 1;
					s->positioned = 1;
					pthread_mutex_unlock(&p->mu);
				}
			}
			s->listed = 1;
			if (ks[i].ending_seq)
				util_copy_str(s->ending, sizeof s->ending, ks[i].ending_seq);
		}
		free(ks);
		if (next && !(token = strdup(next)))
			rc = -1;
		aws_result_clear(&res);
		if (!token)
			break;
	}
	free(token);
	for (size_t i = 0; i < p->n && rc == 0; i++) {
		pshard *s = p->shards[i];
		if (s->listed || s->gone || s->ended)
			continue;
		/* gone before it was read to its end (trimmed): what it held is unknown */
		pusher_say(p, 1, "shard %s vanished before it was read to its end", s->id);
		pthread_mutex_lock(&p->mu);
		s->gone = 1;
		pthread_mutex_unlock(&p->mu);
		if (s->subscribed)
			sub_over(p, s, 1, 0, CURLE_OK);
	}
	p->last_list_ns = scache_now_ns(NULL);
	p->listed_once = 1;
	p->need_list = 0;
	pthread_mutex_lock(&p->mu);
	p->fatal[0] = '\0';
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* ---- subscriptions (pusher) ------------------------------------------------------------ */

/* The sub's arg is this: the source and the shard. */
typedef struct sub_ctx {
	push_src *p;
	pshard *s;
} sub_ctx;

static void shard_event(void *arg, json_object *ev, uint64_t received_ns)
{
	sub_ctx *x = arg;
	push_src *p = x->p;
	pshard *s = x->s;
	json_object *v, *recs = aws_json_array(ev, "Records");
	const char *cont = aws_json_str(ev, "ContinuationSequenceNumber");
	int64_t behind =
	    json_object_object_get_ex(ev, "MillisBehindLatest", &v) ? json_object_get_int64(v) : 0;
	size_t nrec = recs ? json_object_array_length(recs) : 0;
	int end = 0;
	json_object *children = aws_json_array(ev, "ChildShards");
	if (children && json_object_array_length(children) > 0) {
		/* the shard's end: its children, parents before them */
		for (size_t i = 0; i < json_object_array_length(children); i++) {
			json_object *ch = json_object_array_get_idx(children, i);
			const char *id = aws_json_str(ch, "ShardId");
			json_object *parents = aws_json_array(ch, "ParentShards");
			const char *p0 =
			    parents && json_object_array_length(parents) > 0
			        ? json_object_get_string(json_object_array_get_idx(parents, 0))
			        : s->id;
			const char *p1 =
			    parents && json_object_array_length(parents) > 1
			        ? json_object_get_string(json_object_array_get_idx(parents, 1))
			        : "";
			if (id && !shard_find(p, id)) {
				pthread_mutex_lock(&p->mu);
				shard_add(p, id, p0 ? p0 : "", p1 ? p1 : "", PS_TRIM_HORIZON);
				pthread_mutex_unlock(&p->mu);
			}
		}
		end = 1;
	} else if (s->ending[0] && nrec == 0 && behind == 0) {
		end = 1; /* closed per ListShards, and read to its end */
	}
	if (cont)
		util_copy_str(s->pos, sizeof s->pos, cont);
	if (end)
		shard_end(p, s);
	pevent *e = calloc(1, sizeof *e);
	pthread_mutex_lock(&p->mu);
	p->stats.events++;
	p->stats.records += nrec;
	s->behind_ms = behind;
	if (e) {
		e->shard = s;
		e->ev = json_object_get(ev);
		e->received_ns = received_ns;
		e->behind_ms = behind;
		e->end = end;
		queue_put(p, e);
	}
	pthread_mutex_unlock(&p->mu);
	s->failures = 0; /* healthy */
}

static void subscribe(push_src *p, pshard *s, uint64_t now)
{
	const char *type;
	const char *seq = NULL;
	double ts = 0;
	if (s->pos[0]) {
		type = "AT_SEQUENCE_NUMBER";
		seq = s->pos;
	} else if (s->start == PS_TRIM_HORIZON) {
		type = "TRIM_HORIZON";
	} else if (s->start == PS_AT_TIMESTAMP) {
		type = "AT_TIMESTAMP";
		ts = s->start_ts;
	} else {
		type = "LATEST";
	}
	sub_ctx *x = malloc(sizeof *x);
	if (!x) {
		s->next_ns = now + CALL_SPACING_NS;
		return;
	}
	x->p = p;
	x->s = s;
	if (push_sub_init(&s->sub, p->c, p->consumer.arn, s->id, type, seq, ts, p->opts.http,
	                  shard_event, x) ||
	    curl_multi_add_handle(p->multi, s->sub.h) != CURLM_OK) {
		free(x);
		push_sub_free(&s->sub);
		s->next_ns = now + CALL_SPACING_NS;
		return;
	}
	if (s->start == PS_LATEST && !s->pos[0]) {
		/* from now on a time: LATEST again would skip what came meanwhile */
		s->start = PS_AT_TIMESTAMP;
		s->start_ts = util_wall_s() - AT_TIMESTAMP_MARGIN_S;
	}
	s->subscribed = 1;
	s->call_ns = now;
	pthread_mutex_lock(&p->mu);
	p->stats.subscribes++;
	p->sstats.calls++;
	pthread_mutex_unlock(&p->mu);
}

static unsigned backoff_ms(unsigned failures)
{
	return aws_backoff_ms(BACKOFF_BASE_MS, BACKOFF_MAX_MS, failures ? failures - 1 : 0,
	                      aws_random());
}

/* A subscription is over: cut by us (renewal 1: its time is up; 2: the shard ended;
 * 0: silence or a test) or done (cc). */
static void sub_over(push_src *p, pshard *s, int cut, int renewal, CURLcode cc)
{
	char name[64], msg[300];
	uint64_t now = scache_now_ns(NULL);
	push_end how =
	    cut ? PUSH_END_CLEAN : push_sub_end(&s->sub, cc, name, sizeof name, msg, sizeof msg);
	long status = s->sub.status;
	uint64_t events = s->sub.events, bytes = s->sub.bytes;
	int stream = s->sub.stream;
	sub_ctx *x = s->sub.arg;
	curl_multi_remove_handle(p->multi, s->sub.h);
	push_sub_free(&s->sub);
	free(x);
	s->subscribed = 0;
	if (status == 200 && stream)
		s->ok_call_ns = s->call_ns;
	if (stream || events)
		p->http_checked = 1;
	uint64_t spaced = s->call_ns + CALL_SPACING_NS;
	uint64_t after_ok = s->ok_call_ns + (uint64_t)p->opts.resource_in_use_ms * 1000000u;
	if (cut && renewal == 2)
		return; /* the shard ended: nothing more to read */
	if (cut) {
		if (renewal) {
			pthread_mutex_lock(&p->mu);
			p->stats.renewals++;
			pthread_mutex_unlock(&p->mu);
		} else {
			pthread_mutex_lock(&p->mu);
			p->stats.reconnects++;
			util_copy_str(s->why, sizeof s->why, "subscription cut");
			pthread_mutex_unlock(&p->mu);
		}
		/* the call we cut was accepted: the next one waits out the 5 s */
		s->next_ns = after_ok > now ? after_ok : now;
		return;
	}
	if (how == PUSH_END_CLEAN) {
		pthread_mutex_lock(&p->mu);
		p->stats.renewals++;
		pthread_mutex_unlock(&p->mu);
		s->next_ns = spaced > now ? spaced : now;
		if (after_ok > s->next_ns && s->ok_call_ns + 60000000000ull > now)
			s->next_ns = after_ok; /* ended early: the service still counts it */
		return;
	}
	/* h2c refused by an endpoint that speaks HTTP/1.1 only: fall back, once */
	if (how == PUSH_END_TRANSPORT && !p->http_checked && p->opts.http == PUSH_HTTP2 &&
	    !strncmp(p->settings.aws.endpoint, "http:", 5) && status == 0 &&
	    (cc == CURLE_HTTP2 || cc == CURLE_WEIRD_SERVER_REPLY || cc == CURLE_GOT_NOTHING ||
	     cc == CURLE_RECV_ERROR || cc == CURLE_HTTP2_STREAM || cc == CURLE_PARTIAL_FILE)) {
		p->opts.http = PUSH_HTTP1;
		p->http_checked = 1;
		pusher_say(p, 0,
		           "stream '%s': %s does not speak HTTP/2 without TLS (%s): subscribing "
		           "over HTTP/1.1",
		           p->settings.stream_name, p->settings.aws.endpoint, msg);
		s->next_ns = now;
		return;
	}
	s->failures++;
	uint64_t next = now + (uint64_t)backoff_ms(s->failures) * 1000000u;
	if (events || bytes > 0)
		s->failures = 0; /* it had worked: a drop, retried at once (spaced) */
	if (events || bytes > 0)
		next = now;
	if (next < spaced)
		next = spaced;
	pthread_mutex_lock(&p->mu);
	util_copy_str(s->why, sizeof s->why, msg);
	if (how == PUSH_END_REFUSED)
		p->stats.refused++;
	else
		p->stats.reconnects++;
	if (how == PUSH_END_REFUSED && (!strcmp(name, "LimitExceededException") ||
	                                !strcmp(name, "ProvisionedThroughputExceededException")))
		p->sstats.throttled++;
	pthread_mutex_unlock(&p->mu);
	if (how == PUSH_END_REFUSED && !strcmp(name, "ResourceInUseException")) {
		/* within 5 s of a successful call (ours, before a drop): wait them out. Past
		 * them, the service has not yet noticed the end of the last subscription
		 * (kinesis-mock notices a closed one at its next event): the backoff. */
		if (after_ok > next)
			next = after_ok;
	} else if (how == PUSH_END_REFUSED && !strcmp(name, "ResourceNotFoundException")) {
		/* the stream, the shard or the consumer is gone: listing and setup tell */
		p->need_list = 1;
		p->have_consumer = 0;
	} else if (how == PUSH_END_REFUSED && !strcmp(name, "InvalidArgumentException") &&
	           s->pos[0]) {
		pusher_say(p, 1, "shard %s: cannot resume at sequence number %s: %s", s->id, s->pos,
		           msg);
		s->pos[0] = '\0';
		s->start = PS_TRIM_HORIZON;
	}
	s->next_ns = next;
}

/* Set up the consumer (and the first listing). 0 when ready. */
static int setup(push_src *p)
{
	char name[64], why[256];
	uint64_t now = scache_now_ns(NULL);
	if (now < p->next_setup_ns)
		return -1;
	if (!p->have_consumer) {
		scache_err err =
		    push_consumer_get(p->c, p->settings.stream_name, p->consumer_name,
		                      now + (uint64_t)CONSUMER_WAIT_MS * 1000000u, &p->consumer,
		                      name, sizeof name, why, sizeof why);
		pthread_mutex_lock(&p->mu);
		p->sstats.calls++;
		if (err) {
			util_fmt(p->state, sizeof p->state, "consumer '%s': %s", p->consumer_name,
			         why);
			if (!strcmp(name, "LimitExceededException") ||
			    !strcmp(name, "AccessDeniedException")) {
				if (!p->fallback[0])
					util_fmt(
					    p->fallback, sizeof p->fallback,
					    "no enhanced fan-out consumer for stream '%s' (%s)",
					    p->settings.stream_name, why);
			}
			pthread_cond_broadcast(&p->cv);
		} else {
			util_copy_str(p->stats.consumer_arn, sizeof p->stats.consumer_arn,
			              p->consumer.arn);
		}
		pthread_mutex_unlock(&p->mu);
		if (err && !strcmp(name, "ResourceNotFoundException"))
			stream_gone(p, why);
		if (err) {
			p->setup_failures++;
			unsigned ms =
			    SETUP_RETRY_MS * (p->setup_failures < 5 ? p->setup_failures : 5);
			p->next_setup_ns = scache_now_ns(NULL) + (uint64_t)ms * 1000000u;
			return -1;
		}
		p->have_consumer = 1;
		p->setup_failures = 0;
	}
	if (!p->listed_once || p->need_list ||
	    now - p->last_list_ns >= (uint64_t)p->settings.list_shards_interval_ms * 1000000u) {
		int initial = !p->listed_once;
		/* a stream recreated: the old shards are gone, the new read from the start */
		if (list_shards(p, initial && p->n == 0 ? 1 : 0) && !p->listed_once) {
			p->next_setup_ns = scache_now_ns(NULL) + SETUP_RETRY_MS * 1000000ull;
			return -1;
		}
	}
	return 0;
}

/* Whether every live shard is positioned (startup waits for it). Under mu. */
static int all_positioned(push_src *p)
{
	if (!p->listed_once)
		return 0;
	for (size_t i = 0; i < p->n; i++) {
		pshard *s = p->shards[i];
		if (!s->gone && !s->finished && !s->positioned)
			return 0;
	}
	return p->n > 0;
}

static void *pusher_main(void *arg)
{
	push_src *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		int stop = p->stop, cut = p->cut_all;
		p->cut_all = 0;
		int fellback = p->fallback[0] != '\0';
		pthread_mutex_unlock(&p->mu);
		if (stop)
			break;
		if (fellback) { /* the polling source reads now: idle until freed */
			pthread_mutex_lock(&p->mu);
			if (!p->stop)
				pthread_cond_wait(&p->cv, &p->mu);
			pthread_mutex_unlock(&p->mu);
			continue;
		}
		uint64_t now = scache_now_ns(NULL);
		int ready = setup(p) == 0;
		now = scache_now_ns(NULL);
		for (size_t i = 0; i < p->n; i++) {
			pshard *s = p->shards[i];
			if (s->subscribed) {
				int renew = now - s->call_ns >=
				            (uint64_t)p->opts.subscription_ms * 1000000u;
				uint64_t last =
				    s->sub.last_byte_ns ? s->sub.last_byte_ns : s->call_ns;
				int silent = now - last >= (uint64_t)p->opts.silence_ms * 1000000u;
				if (s->ended)
					sub_over(p, s, 1, 2, CURLE_OK);
				else if (cut || renew || silent || s->gone)
					sub_over(p, s, 1, renew && !cut && !silent, CURLE_OK);
				continue;
			}
			if (!ready || s->ended || s->gone || now < s->next_ns ||
			    !parents_ended(p, s))
				continue;
			subscribe(p, s, now);
		}
		int running = 0;
		curl_multi_perform(p->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(p->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			push_sub *sub = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sub);
			CURLcode cc = m->data.result;
			sub_ctx *x = sub ? sub->arg : NULL;
			if (x)
				sub_over(p, x->s, 0, 0, cc);
		}
		/* positioned: a call accepted */
		pthread_mutex_lock(&p->mu);
		size_t subscribed = 0;
		int64_t behind = 0;
		for (size_t i = 0; i < p->n; i++) {
			pshard *s = p->shards[i];
			if (s->subscribed && s->sub.status == 200 && !s->positioned) {
				s->positioned = 1;
				pthread_cond_broadcast(&p->cv);
			}
			if (s->subscribed)
				subscribed++;
			if (!s->gone && !s->finished && s->behind_ms > behind)
				behind = s->behind_ms;
		}
		p->stats.shards = subscribed;
		p->stats.millis_behind = behind;
		p->sstats.partitions = subscribed;
		if (all_positioned(p) && !p->ever_positioned) {
			p->ever_positioned = 1;
			pthread_cond_broadcast(&p->cv);
		}
		pthread_mutex_unlock(&p->mu);
		curl_multi_poll(p->multi, NULL, 0, 100, NULL);
	}
	for (size_t i = 0; i < p->n; i++)
		if (p->shards[i]->subscribed)
			sub_over(p, p->shards[i], 1, 0, CURLE_OK);
	return NULL;
}

/* ---- sync (the owner's poller thread) ---------------------------------------------- */

static void sink_log(push_src *p, const scache_sink *sink, const char *key, const char *text)
{
	char msg[768];
	util_copy_str(msg, sizeof msg, text);
	if (!log_limit_pass(&p->log, key, scache_now_ns(NULL), msg, strlen(msg), sizeof msg))
		return;
	if (sink && sink->log)
		sink->log(sink->arg, msg);
	else
		log_stderr(msg);
}

/* Apply one record of shard s. Returns -1 when out of memory (then the rest of the
 * event is not applied: sync fails, and the position is behind it). */
static int apply_record(push_src *p, pshard *s, json_object *r, const scache_sink *sink,
                        scache_poll_info *info)
{
	const char *seq = aws_json_str(r, "SequenceNumber"), *data = aws_json_str(r, "Data");
	char why[160], msg[400], key[128];
	if (seq && s->applied_seq[0] && kinesis_seq_cmp(seq, s->applied_seq) <= 0)
		return 0; /* a repeat (AT_SEQUENCE_NUMBER after a renewal) */
	info->records++;
	util_fmt(key, sizeof key, "malformed record in shard %s", s->id);
	size_t rawlen = 0;
	unsigned char *raw = data ? util_b64_decode(data, strlen(data), &rawlen) : NULL;
	record_keys k;
	scache_err err = SCACHE_ERECORD;
	if (!raw)
		util_copy_str(why, sizeof why, data ? "Data is not base64" : "no Data");
	else
		err = record_read(&p->ddb, p->settings.format, raw, rawlen, &k, why, sizeof why);
	free(raw);
	if (err == SCACHE_ENOMEM)
		return -1;
	if (err == SCACHE_OK && k.skip == RECORD_APPLY && k.n) {
		if (k.bad) {
			info->bad_records++;
			util_fmt(msg, sizeof msg,
			         "stream '%s' shard %s sequence %s: malformed record (%s): its %zu "
			         "valid keys still invalidate",
			         p->settings.stream_name, s->id, seq ? seq : "?", why, k.n);
			sink_log(p, sink, key, msg);
		}
		if (k.value && sink->value) {
			sink->value(sink->arg, k.keys[0], k.lens[0], k.value, k.value_len);
		} else if (k.origin && sink->keys_own &&
		           k.origin == scache_publisher_origin(p->publisher)) {
			sink->keys_own(sink->arg, (const char *const *)k.keys, k.lens, k.n);
		} else {
			sink->keys(sink->arg, (const char *const *)k.keys, k.lens, k.n);
		}
		info->keys += k.n;
	} else if (err != SCACHE_OK) {
		info->bad_records++;
		util_fmt(msg, sizeof msg,
		         "stream '%s' shard %s sequence %s: malformed record skipped: %s",
		         p->settings.stream_name, s->id, seq ? seq : "?", why);
		sink_log(p, sink, key, msg);
	}
	if (err == SCACHE_OK)
		record_keys_clear(&k);
	if (seq)
		util_copy_str(s->applied_seq, sizeof s->applied_seq, seq);
	return 0;
}

/* Apply a list of events taken from the queue, in order. */
static int apply_events(push_src *p, pevent *e, const scache_sink *sink, scache_poll_info *info)
{
	int rc = 0;
	while (e) {
		pevent *next = e->next;
		if (!e->shard) {
			if (e->gap) {
				info->gap = 1;
				sink->gap(sink->arg, e->text);
			} else {
				sink_log(p, sink, NULL, e->text);
			}
		} else if (!rc) {
			json_object *recs = aws_json_array(e->ev, "Records");
			for (size_t i = 0; recs && i < json_object_array_length(recs) && !rc; i++)
				rc = apply_record(p, e->shard, json_object_array_get_idx(recs, i),
				                  sink, info);
			if (!rc) {
				pthread_mutex_lock(&p->mu);
				uint64_t b =
				    e->behind_ms > 0 ? (uint64_t)e->behind_ms * 1000000u : 0;
				b += (uint64_t)p->cfg.event_lag_ms * 1000000u;
				uint64_t fresh = e->received_ns > b ? e->received_ns - b : 0;
				if (fresh > e->shard->fresh_ns)
					e->shard->fresh_ns = fresh;
				if (e->end)
					e->shard->finished = 1;
				pthread_mutex_unlock(&p->mu);
			}
		}
		event_free(e);
		e = next;
	}
	return rc;
}

/* The first live shard not fresh for since (under mu), or NULL when all are. */
static pshard *stale_shard(push_src *p, uint64_t since)
{
	for (size_t i = 0; i < p->n; i++) {
		pshard *s = p->shards[i];
		if (s->gone || s->finished)
			continue;
		if (!s->positioned || s->fresh_ns < since || (since && !s->fresh_ns))
			return s;
	}
	return NULL;
}

static scache_err fallback_start(push_src *p, const scache_sink *sink, scache_poll_info *info);

static scache_err push_sync(void *self, uint64_t since_ns, const scache_sink *sink,
                            scache_poll_info *info)
{
	push_src *p = self;
	scache_source *poll = __atomic_load_n(&p->poll, __ATOMIC_ACQUIRE);
	if (poll)
		return scache_source_sync(poll, since_ns, sink, info);
	info->started_ns = scache_now_ns(NULL);
	uint64_t deadline = info->started_ns + (uint64_t)p->cfg.sync_wait_ms * 1000000u;
	struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
	scache_err err = SCACHE_OK;
	int waited = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		pevent *q = p->head;
		p->head = NULL;
		p->tail = &p->head;
		if (p->gap_unsaid) {
			p->gap_unsaid = 0;
			pthread_mutex_unlock(&p->mu);
			info->gap = 1;
			sink->gap(sink->arg, "push: a gap (out of memory for its description)");
			pthread_mutex_lock(&p->mu);
		}
		if (q) {
			pthread_mutex_unlock(&p->mu);
			int rc = apply_events(p, q, sink, info);
			pthread_mutex_lock(&p->mu);
			if (rc) {
				err = SCACHE_ENOMEM;
				util_fmt(info->message, sizeof info->message,
				         "out of memory while applying records");
				break;
			}
			continue;
		}
		if (p->fallback[0]) {
			pthread_mutex_unlock(&p->mu);
			err = fallback_start(p, sink, info);
			if (!err)
				return scache_source_sync(p->poll, since_ns, sink, info);
			pthread_mutex_lock(&p->mu);
			break;
		}
		if (p->fatal[0]) {
			err = SCACHE_ESERVICE;
			util_copy_str(info->message, sizeof info->message, p->fatal);
			break;
		}
		pshard *s = stale_shard(p, since_ns);
		if (!s && p->ever_positioned)
			break; /* fresh */
		if (scache_now_ns(NULL) >= deadline) {
			err = SCACHE_ETIMEOUT;
			if (s)
				util_fmt(
				    info->message, sizeof info->message,
				    "stream '%s' shard %s: no event since the sync began within "
				    "%u ms%s%s",
				    p->settings.stream_name, s->id, p->cfg.sync_wait_ms,
				    s->why[0] ? ": " : "", s->why);
			else
				util_fmt(info->message, sizeof info->message,
				         "stream '%s': not subscribed yet%s%s",
				         p->settings.stream_name, p->state[0] ? ": " : "",
				         p->state);
			break;
		}
		waited = 1;
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	p->stats.sync_waits += (uint64_t)waited;
	info->err = err;
	info->finished_ns = scache_now_ns(NULL);
	p->sstats.syncs++;
	if (err)
		p->sstats.errors++;
	p->sstats.records += info->records;
	p->sstats.bad_records += info->bad_records;
	p->sstats.keys += info->keys;
	pthread_mutex_unlock(&p->mu);
	return err;
}

/* Fall back to polling: the reader of the polling source, positioned at LATEST. Since
 * the push source had been positioned, what came meanwhile may be lost: a gap. */
static scache_err fallback_start(push_src *p, const scache_sink *sink, scache_poll_info *info)
{
	char why[256];
	scache_source *poll = NULL;
	scache_stream_config sc = {0};
	sc.stream_name = p->settings.stream_name;
	sc.region = p->settings.aws.region;
	sc.endpoint = p->settings.aws.endpoint;
	sc.access_key_id = p->settings.aws.access_key_id;
	sc.secret_access_key = p->settings.aws.secret_access_key;
	sc.session_token = p->settings.aws.session_token;
	sc.connect_timeout_ms = p->settings.aws.connect_timeout_ms;
	sc.timeout_ms = p->settings.aws.timeout_ms;
	sc.max_retries = p->settings.aws.max_retries;
	sc.backoff_base_ms = p->settings.aws.backoff_base_ms;
	sc.backoff_max_ms = p->settings.aws.backoff_max_ms;
	sc.list_shards_interval_ms = p->settings.list_shards_interval_ms;
	sc.stream_check_interval_ms = p->settings.stream_check_interval_ms;
	sc.format = p->settings.format;
	sc.publish_timeout_ms = p->settings.publish_timeout_ms;
	sc.dynamodb_tables = p->settings.dynamodb_tables;
	sc.dynamodb_ntables = p->settings.dynamodb_ntables;
	scache_err err = kinesis_source_create(&sc, SCACHE_START_LATEST, p->opts.startup_ms, 0,
	                                       &poll, why, sizeof why);
	if (err) {
		util_fmt(info->message, sizeof info->message, "%s; polling: %s", p->fallback, why);
		return err;
	}
	char msg[600];
	util_fmt(msg, sizeof msg, "warning: %s: falling back to polling", p->fallback);
	sink_log(p, sink, NULL, msg);
	pthread_mutex_lock(&p->mu);
	int had = p->ever_positioned;
	p->stats.polling = 1;
	pthread_mutex_unlock(&p->mu);
	if (had && sink) {
		info->gap = 1;
		sink->gap(sink->arg, "push source fell back to polling: records may have been "
		                     "missed meanwhile");
	}
	__atomic_store_n(&p->poll, poll, __ATOMIC_RELEASE);
	return SCACHE_OK;
}

/* ---- the other operations ------------------------------------------------------------ */

static scache_err push_publish(void *self, const char *const *keys, const size_t *lens, size_t n,
                               char *errbuf, size_t errlen)
{
	push_src *p = self;
	scache_source *poll = __atomic_load_n(&p->poll, __ATOMIC_ACQUIRE);
	if (poll)
		return source_publish(poll, keys, lens, n, errbuf, errlen);
	return publish_keys_why(p->publisher, keys, lens, n, errbuf, errlen);
}

static const char *push_unavailable(void *self)
{
	push_src *p = self;
	return p->unavailable[0] ? p->unavailable : NULL;
}

static void push_stats(void *self, scache_source_stats *out)
{
	push_src *p = self;
	scache_source *poll = __atomic_load_n(&p->poll, __ATOMIC_ACQUIRE);
	if (poll) {
		scache_source_stats_get(poll, out);
		return;
	}
	pthread_mutex_lock(&p->mu);
	*out = p->sstats;
	pthread_mutex_unlock(&p->mu);
}

static void push_destroy(void *self)
{
	push_src *p = self;
	if (!p)
		return;
	registry_remove(p);
	if (p->thread_started) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		curl_multi_wakeup(p->multi);
		pthread_join(p->thread, NULL);
	}
	if (p->have_consumer && p->c && (p->cfg.deregister_on_free || p->generated_name)) {
		char why[256];
		if (push_consumer_deregister(p->c, p->consumer.arn, why, sizeof why))
			log_stderr(why);
	}
	scache_source_free(p->poll);
	for (size_t i = 0; i < p->n; i++)
		free(p->shards[i]);
	free(p->shards);
	while (p->head) {
		pevent *e = p->head;
		p->head = e->next;
		event_free(e);
	}
	if (p->multi)
		curl_multi_cleanup(p->multi);
	aws_client_free(p->c);
	scache_publisher_free(p->publisher);
	ddb_versions_free(p->ddb.versions);
	kinesis_settings_clear(&p->settings);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static const scache_source_ops push_ops = {
    .name = "kinesis-push",
    .sync = push_sync,
    .publish = push_publish,
    .unavailable = push_unavailable,
    .stats = push_stats,
    .destroy = push_destroy,
};

/* ---- creation ------------------------------------------------------------------------ */

static int name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > 128)
		return 0;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
			return 0;
	return 1;
}

scache_err push_source_create(const scache_stream_config *config, const scache_push_config *push,
                              scache_start_at start, const push_opts *opts, scache_source **out,
                              char *errbuf, size_t errlen)
{
	if (!config || !out ||
	    (start != SCACHE_START_LATEST && start != SCACHE_START_TRIM_HORIZON)) {
		util_fmt(errbuf, errlen, "push source: NULL argument or bad start");
		return SCACHE_EINVAL;
	}
	*out = NULL;
	push_src *p = calloc(1, sizeof *p);
	reg_entry *reg = calloc(1, sizeof *reg);
	if (!p || !reg) {
		free(p);
		free(reg);
		return SCACHE_ENOMEM;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->mu, NULL);
	p->tail = &p->head;
	p->start = start;
	p->log.repeat_s = 30.0;
	if (push)
		p->cfg = *push;
	p->cfg.consumer_name = NULL; /* copied below */
	if (!p->cfg.sync_wait_ms)
		p->cfg.sync_wait_ms = 5000;
	if (!p->cfg.event_lag_ms)
		p->cfg.event_lag_ms = 250;
	if (opts)
		p->opts = *opts;
	if (!p->opts.startup_ms)
		p->opts.startup_ms = 3000;
	if (!p->opts.subscription_ms)
		p->opts.subscription_ms = PUSH_SUBSCRIPTION_MS;
	if (!p->opts.silence_ms)
		p->opts.silence_ms = 30000;
	if (!p->opts.resource_in_use_ms)
		p->opts.resource_in_use_ms = 5200;
	scache_err err = kinesis_settings_resolve(config, 1, &p->settings, errbuf, errlen);
	if (err) {
		free(reg);
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return err;
	}
	if (push && push->consumer_name) {
		if (!name_ok(push->consumer_name)) {
			util_fmt(errbuf, errlen,
			         "push source: consumer name '%s': 1 to 128 of [a-zA-Z0-9_.-]",
			         push->consumer_name);
			free(reg);
			push_destroy(p);
			return SCACHE_ECONFIG;
		}
		util_copy_str(p->consumer_name, sizeof p->consumer_name, push->consumer_name);
	} else {
		char host[64] = "host";
		gethostname(host, sizeof host - 1);
		for (char *c = host; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
				*c = '-';
		util_fmt(p->consumer_name, sizeof p->consumer_name, "scache-%s-%ld", host,
		         (long)getpid());
		p->generated_name = 1;
	}
	p->ddb.tables = p->settings.dynamodb_tables;
	p->ddb.ntables = p->settings.dynamodb_ntables;
	for (size_t i = 0; i < p->ddb.ntables && !p->ddb.versions; i++)
		if (p->ddb.tables[i].mode == SCACHE_DYNAMODB_REFRESH &&
		    !(p->ddb.versions = ddb_versions_new(0, 0))) {
			free(reg);
			push_destroy(p);
			return SCACHE_ENOMEM;
		}
	err = publisher_new(&p->settings, &p->publisher, errbuf, errlen);
	if (!err)
		err = kinesis_client_new(&p->settings, &p->c, errbuf, errlen);
	if (!err && !(p->multi = curl_multi_init()))
		err = SCACHE_ENOMEM;
	if (err) {
		free(reg);
		push_destroy(p);
		return err;
	}
	util_fmt(p->state, sizeof p->state, "consumer '%s' being set up", p->consumer_name);
	if (pthread_create(&p->thread, NULL, pusher_main, p)) {
		free(reg);
		push_destroy(p);
		return SCACHE_ENOMEM;
	}
	p->thread_started = 1;

	/* wait, within the startup bound, until positioned (or a final answer) */
	uint64_t deadline = scache_now_ns(NULL) + p->opts.startup_ms * 1000000u;
	struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
	pthread_mutex_lock(&p->mu);
	while (!p->ever_positioned && !p->fallback[0] && !p->fatal[0])
		if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
			break;
	char fallback[256], fatal[256];
	util_copy_str(fallback, sizeof fallback, p->fallback);
	util_copy_str(fatal, sizeof fatal, p->fatal);
	if (!p->ever_positioned && !fallback[0])
		util_fmt(p->unavailable, sizeof p->unavailable,
		         "push: not subscribed to stream '%s' within %llu ms: %s",
		         p->settings.stream_name, (unsigned long long)p->opts.startup_ms,
		         fatal[0] ? fatal : p->state);
	pthread_mutex_unlock(&p->mu);
	if (fallback[0]) {
		if (p->cfg.no_fallback) {
			util_fmt(errbuf, errlen, "%s", fallback);
			free(reg);
			push_destroy(p);
			return SCACHE_ESERVICE;
		}
		/* fallback_start warns (on stderr: no sink yet) */
		scache_poll_info info;
		memset(&info, 0, sizeof info);
		err = fallback_start(p, NULL, &info);
		if (err) {
			util_fmt(errbuf, errlen, "%s", info.message);
			free(reg);
			push_destroy(p);
			return err;
		}
	}
	err = scache_source_new(&push_ops, p, out);
	if (err) {
		free(reg);
		return err;
	}
	registry_add(*out, p, reg);
	return SCACHE_OK;
}

scache_err scache_kinesis_push_source_new(const scache_stream_config *config,
                                          const scache_push_config *push, scache_start_at start,
                                          scache_source **out, char *errbuf, size_t errlen)
{
	return push_source_create(config, push, start, NULL, out, errbuf, errlen);
}

static push_src *registry_find(scache_source *source)
{
	push_src *p = NULL;
	pthread_mutex_lock(&reg_mu);
	for (reg_entry *e = reg_head; e && !p; e = e->next)
		if (e->source == source)
			p = e->p;
	pthread_mutex_unlock(&reg_mu);
	return p;
}

scache_err scache_kinesis_push_stats(scache_source *source, scache_push_stats *out)
{
	if (!out)
		return SCACHE_EINVAL;
	memset(out, 0, sizeof *out);
	push_src *p = source ? registry_find(source) : NULL;
	if (!p)
		return SCACHE_EINVAL;
	pthread_mutex_lock(&p->mu);
	*out = p->stats;
	pthread_mutex_unlock(&p->mu);
	return SCACHE_OK;
}

unsigned push_test_cut(scache_source *source)
{
	push_src *p = registry_find(source);
	if (!p)
		return 0;
	pthread_mutex_lock(&p->mu);
	p->cut_all = 1;
	unsigned n = (unsigned)p->stats.shards;
	pthread_mutex_unlock(&p->mu);
	curl_multi_wakeup(p->multi);
	return n;
}
