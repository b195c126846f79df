/*
 * fleet_model: how fresh N instances x S shards can be kept over Kinesis, by polling (the
 * poll budget split across instances) and by push (enhanced fan-out): the simulation
 * behind fleet_sim's fleet-sizing table. A discrete-event simulation in integer
 * microseconds, deterministic for a seed: each fleet draws from its own generator,
 * seeded from the seed, the fleet's size, its shards, its index and the mode, so a row
 * comes out the same whichever others are run.
 *
 * Kinesis, as AWS documents it (API reference of GetRecords, SubscribeToShard and
 * RegisterStreamConsumer; Developer Guide, "Develop enhanced fan-out consumers" and
 * "Improve low-latency processing"):
 *  - a shard allows 5 GetRecords calls a second for all its readers together, and 2 MiB/s
 *    read; one answer holds at most 10 MiB / 10,000 records. How the 5 are counted is not
 *    documented: here a token bucket of 5 refilled at 5/s (--limiter window: at most 5 in
 *    any second), and a throttled call takes no token.
 *  - records can be read as soon as they are written; the propagation delay AWS gives
 *    for GetRecords (about 200 ms on average with one consumer) is the polling interval,
 *    which is simulated, not added.
 *  - enhanced fan-out: 20 consumers a stream (50 with On-demand Advantage: --consumers),
 *    each with its own 2 MiB/s a shard; records pushed 70 ms after the put on average
 *    (typically, AWS says), drawn here uniform in --push-ms (35:105). A subscription lasts 5
 *    minutes; SubscribeToShard is allowed once a second per consumer and shard (renewals
 *    are far below that).
 *  - invalidation records are small (--record-bytes, 200), so one call per shard per poll
 *    reads them all; the byte limits only cap the put rate a fleet can read (column
 *    "reads cap": pollers share 2 MiB/s a shard, every shard takes 1 MiB/s and 1000
 *    records/s of writes).
 * The library (lib/poller.c, lib/reader.c, lib/aws.c), with bounded staleness:
 *  - an instance starts a poll poll_interval_ms after the previous start, never sooner
 *    than 1000 / max_polls_per_second ms plus the poll backoff, never while one runs;
 *    the first at a random phase (--stagger even: spread evenly), as instances start
 *    at different times. Requests add no polls: under bounded staleness a poll is due
 *    before a request finds the last one too old.
 *  - a poll sends one GetRecords per shard at once (curl multi); a call's round trip is
 *    uniform in --rtt-ms (20:50) and the service counts it halfway. Throttled calls are
 *    retried together after the longest of their full-jitter waits (uniform in
 *    [0, min(2000, 50 x 2^attempt)] ms), 5 retries at most; every shard's keys are
 *    applied when the poll's last call has answered.
 *  - a poll with a throttled call doubles the poll backoff (from the budget period, up
 *    to 5 s), a clean one clears it; after a failed poll (a call throttled 6 times) the
 *    next starts the budget period plus the backoff after it.
 * Push, as issue 10 specifies the push source: each instance registers its own consumer
 * and subscribes to every shard; each subscription is renewed every 5 minutes (at a
 * random phase) from its ContinuationSequenceNumber, so no record is lost, and a record
 * due while a renewal is under way (--subscribe-ms, 200) arrives when it is done.
 * Instances beyond the consumer limit fall back to polling with the budget split among
 * them (the fallback; they cannot share a consumer: a second SubscribeToShard of
 * one consumer and shard takes the subscription over).
 *
 * Measured: puts at uniformly random times (--puts a second per shard) after a warm-up,
 * the run going on 3 intervals and 60 s after the last; a put's invalidation latency is
 * the time until every instance applied it, p50 and p99 nearest-rank over the puts of all
 * fleets of a row, a put not applied everywhere by the end counting as never. The floor,
 * the smallest bound a configuration can promise without throttling: polling N x 200 ms
 * (each instance one call a shard each poll, 5 calls a second), where the simulation then
 * shows whether fleets sustain it; push the cadence of events without records
 * (--event-ms, 1000: kinesis-mock's; AWS does not document it), since a bounded read
 * counts from the last event received. fleet_find_settings looks for the shortest
 * interval, from the floor up, that every fleet sustains.
 */
#include "fleet_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_READS     5                  /* GetRecords a second per shard */
#define MAX_RETRIES     5                  /* stream.h: max_retries */
#define BACKOFF_BASE_MS 50                 /* stream.h: backoff_base_ms */
#define BACKOFF_MAX_MS  2000               /* stream.h: backoff_max_ms */
#define POLL_BACKOFF_US (5000 * US_PER_MS) /* poller.c: BACKOFF_MAX_NS */
#define SUBSCRIPTION_US (300 * US_PER_S)   /* SubscribeToShard: 5 minutes */
#define READ_BYTES_S    (2u << 20)         /* shared read per shard */
#define WRITE_BYTES_S   (1u << 20)         /* write per shard */
#define WRITE_RECORDS_S 1000u

enum ev { EV_ROUND, EV_ARRIVE, EV_ROUND_END };

typedef struct reads { /* one instance's successful reads of one shard */
	int64_t *at, *applied;
	size_t n, cap;
} reads;

typedef struct inst {
	int64_t interval, min_int, backoff, last_start, round_end;
	unsigned attempt, pending;
	int throttled;
	unsigned char *todo; /* per shard: not yet read in this poll */
	int64_t *got;        /* per shard: when the service served its read, -1 if not */
	reads *r;            /* per shard */
} inst;

typedef struct limit {
	int64_t tokens, last, recent[SHARD_READS]; /* bucket; window: last accepted calls */
	unsigned head;
} limit;

typedef struct event {
	int64_t t;
	uint64_t seq;
	int kind;
	unsigned i, k;
} event;

typedef struct sim {
	const fleet_knobs *kn;
	unsigned s, n;
	inst *in;
	limit *lim;
	event *h;
	size_t hn, hcap;
	uint64_t seq, rng;
	fleet_outcome *o;
} sim;

/* splitmix64: small, good enough, and the same everywhere */
static uint64_t rnd(uint64_t *st)
{
	uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int64_t rnd_in(uint64_t *st, int64_t lo, int64_t hi) /* uniform in [lo, hi] */
{
	return lo + (int64_t)(rnd(st) % (uint64_t)(hi - lo + 1));
}

static void die_oom(void)
{
	fputs("fleet_sim: out of memory\n", stderr);
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		die_oom();
	return p;
}

/* ---- Settings and floors ---------------------------------------------------------- */

/* The budget split across `pollers` instances: N x 200 ms, the interval at which their
 * calls fill a shard's 5 reads a second exactly. */
int64_t fleet_limit_ms(unsigned pollers)
{
	return ((int64_t)pollers * 1000 + SHARD_READS - 1) / SHARD_READS;
}

/* An instance polling every interval_ms: the smallest max_polls_per_second the middleware
 * accepts with it, and a staleness bound that a failed poll or two does not exhaust. */
fleet_cfg fleet_split_cfg(int64_t interval_ms)
{
	fleet_cfg c = {0, 0, 0};
	if (interval_ms <= 0)
		return c;
	c.interval_ms = interval_ms;
	c.budget = (unsigned)((1000 + interval_ms - 1) / interval_ms);
	c.staleness_ms = 3 * interval_ms > 10000 ? 3 * interval_ms : 10000;
	return c;
}

/* Puts a second a shard can take when `pollers` instances read every record. */
uint64_t fleet_reads_cap(unsigned pollers, unsigned bytes)
{
	uint64_t cap = WRITE_RECORDS_S;
	if (WRITE_BYTES_S / bytes < cap)
		cap = WRITE_BYTES_S / bytes;
	if (pollers && READ_BYTES_S / ((uint64_t)pollers * bytes) < cap)
		cap = READ_BYTES_S / ((uint64_t)pollers * bytes);
	return cap;
}

/* ---- Events ----------------------------------------------------------------------- */

static void push_event(sim *m, int64_t t, int kind, unsigned i, unsigned k)
{
	if (m->hn == m->hcap) {
		m->hcap = m->hcap ? 2 * m->hcap : 256;
		m->h = realloc(m->h, m->hcap * sizeof *m->h);
		if (!m->h)
			die_oom();
	}
	event e = {t, m->seq++, kind, i, k};
	size_t j = m->hn++;
	while (j > 0) {
		event *p = &m->h[(j - 1) / 2];
		if (p->t < e.t || (p->t == e.t && p->seq < e.seq))
			break;
		m->h[j] = *p;
		j = (j - 1) / 2;
	}
	m->h[j] = e;
}

static event pop_event(sim *m)
{
	event top = m->h[0], last = m->h[--m->hn];
	size_t j = 0;
	for (;;) {
		size_t c = 2 * j + 1;
		if (c >= m->hn)
			break;
		if (c + 1 < m->hn && (m->h[c + 1].t < m->h[c].t || (m->h[c + 1].t == m->h[c].t &&
		                                                    m->h[c + 1].seq < m->h[c].seq)))
			c++;
		if (last.t < m->h[c].t || (last.t == m->h[c].t && last.seq < m->h[c].seq))
			break;
		m->h[j] = m->h[c];
		j = c;
	}
	m->h[j] = last;
	return top;
}

/* ---- The service ------------------------------------------------------------------ */

/* Whether shard k serves a GetRecords arriving at t (1) or throttles it (0). */
static int limit_take(sim *m, unsigned k, int64_t t)
{
	limit *l = &m->lim[k];
	if (m->kn->window) {
		int64_t oldest = l->recent[l->head]; /* the 5th most recent accepted call */
		if (oldest && t - oldest < US_PER_S)
			return 0;
		l->recent[l->head] = t ? t : 1;
		l->head = (l->head + 1) % SHARD_READS;
		return 1;
	}
	/* tokens in millionths: SHARD_READS tokens a second is SHARD_READS a microsecond */
	l->tokens += (t - l->last) * SHARD_READS;
	if (l->tokens > SHARD_READS * US_PER_S)
		l->tokens = SHARD_READS * US_PER_S;
	l->last = t;
	if (l->tokens < US_PER_S)
		return 0;
	l->tokens -= US_PER_S;
	return 1;
}

/* ---- The polling instance (poller.c, reader.c, aws.c) ------------------------------ */

static void poll_start(sim *m, unsigned i, int64_t t)
{
	inst *p = &m->in[i];
	p->last_start = t;
	p->attempt = 0;
	p->throttled = 0;
	for (unsigned k = 0; k < m->s; k++) {
		p->todo[k] = 1;
		p->got[k] = -1;
	}
	m->o->polls++;
	push_event(m, t, EV_ROUND, i, 0);
}

/* One round of calls (aws.c call_many): every shard still to read, at once. */
static void on_round(sim *m, unsigned i, int64_t t)
{
	inst *p = &m->in[i];
	p->pending = 0;
	p->round_end = t;
	for (unsigned k = 0; k < m->s; k++) {
		if (!p->todo[k])
			continue;
		int64_t rtt = rnd_in(&m->rng, m->kn->rtt_lo, m->kn->rtt_hi);
		if (t + rtt > p->round_end)
			p->round_end = t + rtt;
		p->pending++;
		m->o->calls++;
		push_event(m, t + rtt / 2, EV_ARRIVE, i, k);
	}
}

static void on_arrive(sim *m, unsigned i, unsigned k, int64_t t)
{
	inst *p = &m->in[i];
	if (limit_take(m, k, t)) {
		p->todo[k] = 0;
		p->got[k] = t;
	} else {
		p->throttled = 1;
		m->o->throttled++;
	}
	if (--p->pending == 0)
		push_event(m, p->round_end, EV_ROUND_END, i, 0);
}

static void reads_add(reads *r, int64_t at, int64_t applied)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 64;
		r->at = realloc(r->at, r->cap * sizeof *r->at);
		r->applied = realloc(r->applied, r->cap * sizeof *r->applied);
		if (!r->at || !r->applied)
			die_oom();
	}
	r->at[r->n] = at;
	r->applied[r->n++] = applied;
}

/* A round answered: retry the throttled calls, or end the poll and schedule the next. */
static void on_round_end(sim *m, unsigned i, int64_t t)
{
	inst *p = &m->in[i];
	int64_t wait = -1;
	for (unsigned k = 0; k < m->s && p->attempt < MAX_RETRIES; k++) {
		if (!p->todo[k])
			continue;
		int64_t cap = BACKOFF_BASE_MS;
		for (unsigned a = 0; a < p->attempt && cap < BACKOFF_MAX_MS; a++)
			cap *= 2;
		cap = cap > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : cap;
		int64_t w = (int64_t)(rnd(&m->rng) % (uint64_t)(cap + 1)) * US_PER_MS;
		wait = w > wait ? w : wait;
	}
	if (wait >= 0) {
		p->attempt++;
		push_event(m, t + wait, EV_ROUND, i, 0);
		return;
	}
	int failed = 0;
	for (unsigned k = 0; k < m->s; k++) {
		if (p->got[k] >= 0)
			reads_add(&p->r[k], p->got[k], t);
		failed |= p->todo[k];
	}
	m->o->failed += (uint64_t)failed;
	if (!failed && !p->throttled)
		p->backoff = 0;
	else if (p->backoff < POLL_BACKOFF_US)
		p->backoff = p->backoff ? 2 * p->backoff : p->min_int;
	if (p->backoff > POLL_BACKOFF_US)
		p->backoff = POLL_BACKOFF_US;
	int64_t period = p->min_int + p->backoff;
	if (!failed && p->interval > period)
		period = p->interval;
	int64_t due = p->last_start + period;
	poll_start(m, i, due > t ? due : t);
}

/* When instance p applied a put at t on shard k: the end of its first poll whose call
 * the service served at or after t; -1 if none within the run. */
static int64_t applied_at(const inst *p, unsigned k, int64_t t)
{
	const reads *r = &p->r[k];
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->at[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->n ? r->applied[lo] : -1;
}

/* ---- One row ---------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of v (sorted) and `never` more values that are infinite (puts
 * some instance never applied): -1 when it falls among those, or when there is none. */
static int64_t nearest_rank(const int64_t *v, size_t n, size_t never, unsigned pct)
{
	size_t rank = ((n + never) * pct + 99) / 100;
	if (rank == 0 || rank > n)
		return -1;
	return v[rank - 1];
}

typedef struct lats { /* invalidation latencies, pooled over a row's fleets */
	int64_t *v;
	size_t n, cap;
} lats;

static void lats_add(lats *l, int64_t v)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		if (!l->v)
			die_oom();
	}
	l->v[l->n++] = v;
}

/* When a pushing instance applies a put on shard k: pushed after the push delay, or when
 * the subscription's renewal under way then is done (renewals every 5 min from phase). */
static int64_t pushed_at(const fleet_knobs *kn, int64_t t, int64_t delay, int64_t phase)
{
	int64_t a = t + delay;
	int64_t g = a < phase ? phase - SUBSCRIPTION_US
	                      : phase + (a - phase) / SUBSCRIPTION_US * SUBSCRIPTION_US;
	return a < g + kn->subscribe_us ? g + kn->subscribe_us : a;
}

/* One fleet (its own phases and draws) of o->pushers + o->pollers instances x s shards:
 * counts into *o, latencies into *l. */
static void simulate_fleet(const fleet_knobs *kn, unsigned s, enum fleet_mode mode, unsigned fleet,
                           fleet_outcome *o, lats *l)
{
	unsigned n = o->pushers + o->pollers;
	sim m = {.kn = kn, .s = s, .n = n, .o = o};
	uint64_t st = kn->seed ^ ((uint64_t)n << 40) ^ ((uint64_t)s << 20) ^
	              ((uint64_t)fleet << 8) ^ (uint64_t)mode;
	m.rng = rnd(&st);
	int64_t iv = o->cfg.interval_ms * US_PER_MS;
	m.in = xcalloc(n, sizeof *m.in);
	m.lim = xcalloc(s, sizeof *m.lim);
	for (unsigned k = 0; k < s; k++)
		m.lim[k].tokens = SHARD_READS * US_PER_S;
	for (unsigned i = o->pushers; i < n; i++) {
		inst *p = &m.in[i];
		p->interval = iv;
		p->min_int = US_PER_S / o->cfg.budget;
		p->todo = xcalloc(s, 1);
		p->got = xcalloc(s, sizeof *p->got);
		p->r = xcalloc(s, sizeof *p->r);
		int64_t phase =
		    kn->even ? iv * (i - o->pushers) / o->pollers : rnd_in(&m.rng, 0, iv - 1);
		poll_start(&m, i, phase);
	}
	/* puts after every instance polled once, and early enough to be applied */
	int64_t warm = iv + US_PER_S, tail = 3 * iv + 60 * US_PER_S;
	int64_t end =
	    kn->duration_us > warm + tail + US_PER_S ? kn->duration_us : warm + tail + US_PER_S;
	while (m.hn && m.h[0].t <= end) {
		event e = pop_event(&m);
		if (e.kind == EV_ROUND)
			on_round(&m, e.i, e.t);
		else if (e.kind == EV_ARRIVE)
			on_arrive(&m, e.i, e.k, e.t);
		else
			on_round_end(&m, e.i, e.t);
	}

	int64_t *renew = xcalloc((size_t)o->pushers * s, sizeof *renew);
	for (size_t j = 0; j < (size_t)o->pushers * s; j++)
		renew[j] = rnd_in(&m.rng, 0, SUBSCRIPTION_US - 1);
	uint64_t nputs = (uint64_t)kn->puts_per_s * s * (uint64_t)(end - tail - warm) / US_PER_S;
	for (uint64_t j = 0; j < nputs; j++) {
		int64_t t = rnd_in(&m.rng, warm, end - tail - 1);
		unsigned k = (unsigned)(rnd(&m.rng) % s);
		int64_t last = t;
		for (unsigned i = 0; i < n && last >= 0; i++) {
			int64_t a = i < o->pushers
			                ? pushed_at(kn, t, rnd_in(&m.rng, kn->push_lo, kn->push_hi),
			                            renew[(size_t)i * s + k])
			                : applied_at(&m.in[i], k, t);
			last = a < 0 ? -1 : a > last ? a : last;
		}
		if (last < 0)
			o->unapplied++;
		else
			lats_add(l, last - t);
	}
	o->puts += nputs;

	free(renew);
	for (unsigned i = 0; i < n; i++) {
		for (unsigned k = 0; m.in[i].r && k < s; k++) {
			free(m.in[i].r[k].at);
			free(m.in[i].r[k].applied);
		}
		free(m.in[i].r);
		free(m.in[i].todo);
		free(m.in[i].got);
	}
	free(m.in);
	free(m.lim);
	free(m.h);
}

/* A row: kn->fleets fleets of n instances x s shards in `mode`, the pollers polling every
 * interval_ms, pooled into *o. */
void fleet_simulate(const fleet_knobs *kn, unsigned n, unsigned s, enum fleet_mode mode,
                    int64_t interval_ms, fleet_outcome *o)
{
	memset(o, 0, sizeof *o);
	o->pushers = mode == FLEET_PUSH ? (n < kn->consumers ? n : kn->consumers) : 0;
	o->pollers = n - o->pushers;
	o->shards = s;
	o->cfg = fleet_split_cfg(o->pollers ? interval_ms : 0);
	if (mode == FLEET_NAIVE)
		o->cfg = (fleet_cfg){.interval_ms = 200, .budget = 5, .staleness_ms = 10000};
	o->limit_ms = fleet_limit_ms(o->pollers);
	o->floor_ms = o->limit_ms;
	if (mode == FLEET_PUSH && kn->event_us / US_PER_MS > o->floor_ms)
		o->floor_ms = kn->event_us / US_PER_MS;
	o->cap = fleet_reads_cap(o->pollers, kn->record_bytes);
	lats l = {0};
	for (unsigned f = 0; f < kn->fleets; f++)
		simulate_fleet(kn, s, mode, f, o, &l);
	if (l.n)
		qsort(l.v, l.n, sizeof *l.v, cmp_i64);
	o->p50_us = nearest_rank(l.v, l.n, o->unapplied, 50);
	o->p99_us = nearest_rank(l.v, l.n, o->unapplied, 99);
	free(l.v);
}

/* Whether a run kept its promise: no poll failed (a failed poll leaves a bounded read
 * without a recent enough poll) and at most 1% of calls were throttled. */
int fleet_sustained(const fleet_outcome *o)
{
	return o->failed == 0 && o->throttled * 100 <= o->calls;
}

/* The settings to pick: the pollers' interval from the floor (N x 200 ms) up in steps of
 * 10% (rounded up to 100 ms), until every fleet sustained it. *at_floor (may be NULL)
 * gets the run at the floor, *o the run picked (or the last tried). */
void fleet_find_settings(const fleet_knobs *kn, unsigned n, unsigned s, enum fleet_mode mode,
                         fleet_outcome *at_floor, fleet_outcome *o)
{
	static const int steps[] = {100, 110, 120, 130, 140, 150, 160, 170,
	                            180, 190, 200, 250, 300, 400, 500};
	unsigned pushers = mode == FLEET_PUSH ? (n < kn->consumers ? n : kn->consumers) : 0;
	int64_t floor = fleet_limit_ms(n - pushers);
	for (size_t j = 0; j < sizeof steps / sizeof steps[0]; j++) {
		int64_t iv = j ? (floor * steps[j] / 100 + 99) / 100 * 100 : floor;
		fleet_simulate(kn, n, s, mode, iv, o);
		if (j == 0 && at_floor)
			*at_floor = *o;
		if (!o->pollers || fleet_sustained(o))
			return;
	}
}
