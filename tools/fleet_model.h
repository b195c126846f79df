/* fleet_model: the simulation behind fleet_sim, N instances x S shards reading a Kinesis
 * stream by polling or push (tools/fleet_model.c states the model and its sources). */
#ifndef SCACHE_TOOLS_FLEET_MODEL_H
#define SCACHE_TOOLS_FLEET_MODEL_H

#include <stdint.h>

#define US_PER_MS 1000ll
#define US_PER_S  1000000ll

enum fleet_mode {
	FLEET_POLL, /* every instance polls, the budget split across them */
	FLEET_PUSH, /* a consumer each, up to kn->consumers; the others poll, split */
	FLEET_NAIVE /* every instance polls at one instance's settings: 200 ms, 5/s */
};

/* What a run assumes (times in microseconds; fleet_sim's options set them). */
typedef struct fleet_knobs {
	uint64_t seed;
	int64_t duration_us;      /* simulated time of one fleet */
	int64_t rtt_lo, rtt_hi;   /* a GetRecords round trip, uniform in [lo, hi] */
	int64_t push_lo, push_hi; /* put to pushed (enhanced fan-out), uniform */
	int64_t event_us;         /* push: cadence of events without records */
	int64_t subscribe_us;     /* push: a subscription's renewal under way */
	unsigned consumers;       /* enhanced fan-out consumers a stream allows */
	unsigned puts_per_s;      /* invalidations put a second per shard */
	unsigned record_bytes;    /* size of one invalidation record */
	unsigned fleets;          /* fleets (independent draws) pooled into a row */
	int window;               /* count the 5 reads a second in a sliding window */
	int even;                 /* instances start evenly spread, not at random */
} fleet_knobs;

/* What one polling instance is configured with (scache_middleware_config). */
typedef struct fleet_cfg {
	int64_t interval_ms;  /* poll_interval_ms */
	int64_t staleness_ms; /* max_staleness_ms */
	unsigned budget;      /* max_polls_per_second */
} fleet_cfg;

/* One row: what fleet_simulate measured. Latencies are -1 when that percentile falls on
 * a put some instance never applied within the run. */
typedef struct fleet_outcome {
	fleet_cfg cfg; /* of the polling instances */
	unsigned pushers, pollers, shards;
	int64_t limit_ms;          /* pollers x 200 ms: their polls fill 5 reads/s */
	int64_t floor_ms;          /* the bound to promise: limit, or push's cadence */
	int64_t p50_us, p99_us;    /* put to applied on every instance */
	uint64_t calls, throttled; /* GetRecords attempts, and those throttled */
	uint64_t polls, failed;    /* polls, and those that failed */
	uint64_t puts, unapplied;  /* puts, and those not applied everywhere */
	uint64_t cap;              /* puts a second a shard the readers can take */
} fleet_outcome;

/* pollers x 1000 / 5 ms, rounded up: the interval at which their calls fill a shard. */
int64_t fleet_limit_ms(unsigned pollers);

/* The settings of an instance polling every interval_ms: the smallest
 * max_polls_per_second the middleware accepts with it, and max_staleness_ms of three
 * intervals (at least the default 10 s). All zero for interval_ms 0. */
fleet_cfg fleet_split_cfg(int64_t interval_ms);

/* Puts a second a shard can take when `pollers` instances read every record. */
uint64_t fleet_reads_cap(unsigned pollers, unsigned bytes);

/* kn->fleets fleets of n instances x s shards in `mode`, the polling ones every
 * interval_ms (FLEET_NAIVE: 200), pooled into *o. Deterministic for kn->seed. */
void fleet_simulate(const fleet_knobs *kn, unsigned n, unsigned s, enum fleet_mode mode,
                    int64_t interval_ms, fleet_outcome *o);

/* Whether a run kept its promise: no failed poll, at most 1% of calls throttled. */
int fleet_sustained(const fleet_outcome *o);

/* The settings to pick: the polling instances' interval from the limit up, in steps of
 * 10% (rounded up to 100 ms), until fleet_sustained. *at_limit (may be NULL) gets the run
 * at the limit, *o the run picked (or the last tried). */
void fleet_find_settings(const fleet_knobs *kn, unsigned n, unsigned s, enum fleet_mode mode,
                         fleet_outcome *at_limit, fleet_outcome *o);

#endif
