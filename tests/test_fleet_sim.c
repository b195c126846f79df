/*
 * fleet_sim's model (tools/fleet_model.c) on small cases whose outcome is known: the
 * floor N x 200 ms and the settings the middleware accepts with it, one instance polling
 * every 200 ms, ten spread evenly at their floor (never throttled) and at twice their
 * share (throttled), push at a fixed delay, the fallback beyond the consumer limit, and
 * the command's exact output for one row. The runs use a fixed seed and, where the bounds
 * are exact, no round-trip jitter; the pinned figures are what that seed gives.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <string.h>

#include "../tools/fleet_model.h"

/* The command itself, its main renamed (fleet_model.c is linked beside it). */
int fleet_sim_main(int argc, char **argv);
#define main fleet_sim_main
#include "../tools/fleet_sim.c"
#undef main

/* Seed 1, one fleet of 120 s, no round-trip jitter, pushes exactly 70 ms after the put,
 * renewals that take no time. */
static fleet_knobs exact(void)
{
	fleet_knobs kn = {.seed = 1,
	                  .duration_us = 120 * US_PER_S,
	                  .push_lo = 70 * US_PER_MS,
	                  .push_hi = 70 * US_PER_MS,
	                  .event_us = 1000 * US_PER_MS,
	                  .consumers = 20,
	                  .puts_per_s = 2,
	                  .record_bytes = 200,
	                  .fleets = 1};
	return kn;
}

Test(fleet_sim, floor_is_200_ms_per_instance)
{
	cr_assert_eq(fleet_limit_ms(1), 200);
	cr_assert_eq(fleet_limit_ms(2), 400);
	cr_assert_eq(fleet_limit_ms(10), 2000);
	cr_assert_eq(fleet_limit_ms(100), 20000);
	cr_assert_eq(fleet_limit_ms(0), 0);
}

Test(fleet_sim, settings_are_the_smallest_budget_the_middleware_accepts)
{
	fleet_cfg c = fleet_split_cfg(200);
	cr_assert_eq(c.interval_ms, 200);
	cr_assert_eq(c.budget, 5);
	cr_assert_eq(c.staleness_ms, 10000);
	cr_assert_eq(fleet_split_cfg(400).budget, 3);
	cr_assert_eq(fleet_split_cfg(1000).budget, 1);
	c = fleet_split_cfg(20000);
	cr_assert_eq(c.budget, 1);
	cr_assert_eq(c.staleness_ms, 60000); /* above the default: three intervals */
	c = fleet_split_cfg(0);
	cr_assert_eq(c.interval_ms + c.staleness_ms + c.budget, 0);
	/* scache_middleware_new refuses interval x budget < 1000; one less would be refused */
	for (int64_t iv = 200; iv <= 5000; iv += 100) {
		c = fleet_split_cfg(iv);
		cr_assert_geq(iv * c.budget, 1000, "interval %lld", (long long)iv);
		cr_assert_lt(iv * (c.budget - 1), 1000, "interval %lld", (long long)iv);
	}
}

Test(fleet_sim, reads_cap_is_the_shared_2_mib_over_the_readers)
{
	cr_assert_eq(fleet_reads_cap(1, 200), 1000);  /* the shard's 1000 records/s of writes */
	cr_assert_eq(fleet_reads_cap(20, 200), 524);  /* 2 MiB / (20 x 200 B) */
	cr_assert_eq(fleet_reads_cap(100, 200), 104); /* 2 MiB / (100 x 200 B) */
	cr_assert_eq(fleet_reads_cap(0, 2000), 524);  /* push: 1 MiB/s of writes, 2000 B each */
}

Test(fleet_sim, one_instance_polling_every_200_ms)
{
	fleet_knobs kn = exact();
	fleet_outcome o;
	fleet_simulate(&kn, 1, 1, FLEET_POLL, 200, &o);
	cr_assert_eq(o.floor_ms, 200);
	cr_assert_eq(o.cfg.budget, 5);
	cr_assert_eq(o.throttled, 0);
	cr_assert_eq(o.failed, 0);
	cr_assert_eq(o.calls, 600); /* 120 s at 5 a second */
	cr_assert_eq(o.polls, 601); /* the last one started, not answered */
	cr_assert_eq(o.puts, 116);
	cr_assert_eq(o.unapplied, 0);
	/* without round trips a put waits for the next poll: less than 200 ms */
	cr_assert_eq(o.p50_us, 104305);
	cr_assert_eq(o.p99_us, 193900);
}

Test(fleet_sim, ten_instances_spread_evenly_at_their_floor_are_never_throttled)
{
	fleet_knobs kn = exact();
	kn.even = 1;
	fleet_outcome o;
	fleet_simulate(&kn, 10, 1, FLEET_POLL, 2000, &o);
	cr_assert_eq(o.floor_ms, 2000);
	cr_assert_eq(o.cfg.budget, 1);
	cr_assert_eq(o.throttled, 0);
	cr_assert_eq(o.failed, 0);
	cr_assert_eq(o.calls, 601); /* one every 200 ms: the shard's 5 a second exactly */
	cr_assert_eq(o.unapplied, 0);
	/* the last of ten polls 200 ms apart: between 1800 and 2000 ms after the put */
	cr_assert_geq(o.p50_us, 1800000);
	cr_assert_leq(o.p99_us, 2000000);
	cr_assert_eq(o.p50_us, 1911495);
	cr_assert_eq(o.p99_us, 1997217);
}

Test(fleet_sim, ten_instances_at_twice_their_share_are_throttled)
{
	fleet_knobs kn = exact();
	kn.even = 1;
	fleet_outcome o;
	fleet_simulate(&kn, 10, 1, FLEET_POLL, 1000, &o);
	cr_assert_eq(o.throttled, 656);
	cr_assert_eq(o.failed, 107);
	/* one instance never gets a read in: no put reaches every instance */
	cr_assert_eq(o.unapplied, o.puts);
	cr_assert_eq(o.p99_us, -1);
}

Test(fleet_sim, the_floor_of_ten_instances_is_2_s_and_sustained)
{
	fleet_knobs kn = exact();
	kn.rtt_lo = 20 * US_PER_MS;
	kn.rtt_hi = 50 * US_PER_MS;
	kn.duration_us = 600 * US_PER_S;
	fleet_outcome at, o;
	fleet_find_settings(&kn, 10, 1, FLEET_POLL, &at, &o);
	cr_assert_eq(at.cfg.interval_ms, 2000);
	cr_assert_eq(o.cfg.interval_ms, 2000);
	cr_assert(fleet_sustained(&o));
	cr_assert_eq(o.throttled, 0);
	cr_assert_eq(o.p50_us, 1865230);
	cr_assert_eq(o.p99_us, 2019054);
}

Test(fleet_sim, push_applies_after_the_push_delay)
{
	fleet_knobs kn = exact();
	fleet_outcome o;
	fleet_simulate(&kn, 1, 1, FLEET_PUSH, 0, &o);
	cr_assert_eq(o.pushers, 1);
	cr_assert_eq(o.pollers, 0);
	cr_assert_eq(o.floor_ms, 1000); /* the cadence of events */
	cr_assert_eq(o.calls, 0);
	cr_assert_eq(o.p50_us, 70000);
	cr_assert_eq(o.p99_us, 70000);
}

Test(fleet_sim, beyond_the_consumer_limit_the_rest_poll_with_the_budget_split)
{
	fleet_knobs kn = exact();
	fleet_outcome o;
	fleet_simulate(&kn, 25, 1, FLEET_PUSH, 1000, &o);
	cr_assert_eq(o.pushers, 20);
	cr_assert_eq(o.pollers, 5);
	cr_assert_eq(o.floor_ms, 1000);
	fleet_find_settings(&kn, 30, 1, FLEET_PUSH, NULL, &o);
	cr_assert_eq(o.pollers, 10);
	cr_assert_eq(o.cfg.interval_ms, 2000);
	cr_assert_eq(o.floor_ms, 2000);
	/* the fleet is as fresh as its pollers */
	cr_assert_geq(o.p50_us, 1000000);
}

Test(fleet_sim, same_seed_same_outcome)
{
	fleet_knobs kn = exact();
	kn.rtt_lo = 20 * US_PER_MS;
	kn.rtt_hi = 50 * US_PER_MS;
	fleet_outcome a, b;
	fleet_simulate(&kn, 2, 4, FLEET_NAIVE, 200, &a);
	fleet_simulate(&kn, 2, 4, FLEET_NAIVE, 200, &b);
	cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
	cr_assert_gt(a.throttled, 0); /* two instances at 5 polls a second each */
	kn.seed = 2;
	fleet_simulate(&kn, 2, 4, FLEET_NAIVE, 200, &b);
	cr_assert_neq(a.p50_us, b.p50_us);
}

Test(fleet_sim, prints_one_row_as_json, .init = cr_redirect_stdout)
{
	char *argv[] = {"fleet_sim", "--instances",    "1",   "--shards", "1",   "--fleets",
	                "1",         "--duration",     "120", "--rtt-ms", "0:0", "--push-ms",
	                "70:70",     "--subscribe-ms", "0",   "--json",   NULL};
	cr_assert_eq(fleet_sim_main((int)(sizeof argv / sizeof argv[0]) - 1, argv), 0);
	fflush(stdout);
	cr_assert_stdout_eq_str(
	    "{\n  \"seed\": 1,\n  \"fleets\": 1,\n  \"rows\": [\n"
	    "    {\"instances\": 1, \"shards\": 1, \"mode\": \"poll_at_floor\", \"consumers\": 0, "
	    "\"pollers\": 1, \"poll_interval_ms\": 200, \"max_polls_per_second\": 5, "
	    "\"max_staleness_ms\": 10000, \"floor_ms\": 200, \"p50_ms\": 104.305, "
	    "\"p99_ms\": 193.900, \"calls\": 600, \"throttled\": 0, \"polls\": 601, "
	    "\"failed_polls\": 0, \"puts\": 116, \"unapplied\": 0, \"reads_cap_per_shard\": "
	    "1000},\n"
	    "    {\"instances\": 1, \"shards\": 1, \"mode\": \"poll\", \"consumers\": 0, "
	    "\"pollers\": 1, \"poll_interval_ms\": 200, \"max_polls_per_second\": 5, "
	    "\"max_staleness_ms\": 10000, \"floor_ms\": 200, \"p50_ms\": 104.305, "
	    "\"p99_ms\": 193.900, \"calls\": 600, \"throttled\": 0, \"polls\": 601, "
	    "\"failed_polls\": 0, \"puts\": 116, \"unapplied\": 0, \"reads_cap_per_shard\": "
	    "1000},\n"
	    "    {\"instances\": 1, \"shards\": 1, \"mode\": \"push\", \"consumers\": 1, "
	    "\"pollers\": 0, \"poll_interval_ms\": 0, \"max_polls_per_second\": 0, "
	    "\"max_staleness_ms\": 0, \"floor_ms\": 1000, \"p50_ms\": 70.000, "
	    "\"p99_ms\": 70.000, \"calls\": 0, \"throttled\": 0, \"polls\": 0, "
	    "\"failed_polls\": 0, \"puts\": 118, \"unapplied\": 0, \"reads_cap_per_shard\": "
	    "1000},\n"
	    "    {\"instances\": 1, \"shards\": 1, \"mode\": \"naive\", \"consumers\": 0, "
	    "\"pollers\": 1, \"poll_interval_ms\": 200, \"max_polls_per_second\": 5, "
	    "\"max_staleness_ms\": 10000, \"floor_ms\": 200, \"p50_ms\": 83.090, "
	    "\"p99_ms\": 196.673, \"calls\": 600, \"throttled\": 0, \"polls\": 601, "
	    "\"failed_polls\": 0, \"puts\": 116, \"unapplied\": 0, \"reads_cap_per_shard\": 1000}\n"
	    "  ]\n}\n");
}

Test(fleet_sim, help_is_not_an_error, .init = cr_redirect_stdout)
{
	char *help[] = {"fleet_sim", "--help", NULL};
	cr_assert_eq(fleet_sim_main(2, help), 0);
	fflush(stdout);
	FILE *f = cr_get_redirected_stdout();
	char line[128] = "";
	cr_assert_not_null(fgets(line, sizeof line, f));
	cr_assert_eq(strncmp(line, "usage: fleet_sim ", 17), 0, "%s", line);
}

Test(fleet_sim, refuses_bad_options, .init = cr_redirect_stderr)
{
	char *zero[] = {"fleet_sim", "--instances", "0", NULL};
	char *range[] = {"fleet_sim", "--rtt-ms", "50:20", NULL};
	char *unknown[] = {"fleet_sim", "--bogus", "1", NULL};
	char *missing[] = {"fleet_sim", "--seed", NULL};
	cr_assert_eq(fleet_sim_main(3, zero), 2);
	cr_assert_eq(fleet_sim_main(3, range), 2);
	cr_assert_eq(fleet_sim_main(3, unknown), 2);
	cr_assert_eq(fleet_sim_main(2, missing), 2);
}
