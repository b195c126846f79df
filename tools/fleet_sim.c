/*
 * fleet_sim: the README's fleet-sizing table. For each fleet size N and shard count S it
 * simulates (fleet_model.c states the model and its sources) polling with the budget
 * split across instances, at the limit N x 200 ms and at the settings picked (the
 * shortest interval the fleets sustained), push with its fallback, and every instance at
 * one instance's settings; prints Markdown, or --json. The pick: push when every
 * instance can have a consumer and polling cannot promise as tight a bound as push's
 * event cadence; beyond the consumer limit, push for as many as may and polling for the
 * rest.
 */
#include "fleet_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Output ----------------------------------------------------------------------- */

/* A latency in milliseconds, rounded; "never" for a put some instance never applied. */
static const char *ms_text(char *buf, size_t len, int64_t us)
{
	if (us < 0)
		snprintf(buf, len, "never");
	else
		snprintf(buf, len, "%lld ms", (long long)((us + US_PER_MS / 2) / US_PER_MS));
	return buf;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void cfg_text(char *buf, size_t len, const fleet_cfg *c)
{
	int n = snprintf(buf, len, "`poll_interval_ms` %lld, `max_polls_per_second` %u",
	                 (long long)c->interval_ms, c->budget);
	if (c->staleness_ms != 10000 && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", `max_staleness_ms` %lld",
		         (long long)c->staleness_ms);
}

/* The configuration to pick: push when every instance can have a consumer and polling
 * cannot promise as tight a bound as push's event cadence; beyond the consumer limit,
 * push for as many as may, polling for the rest. */
static const char *pick(const fleet_outcome *poll, const fleet_outcome *push)
{
	if (push->pollers)
		return "push + polling";
	return poll->cfg.interval_ms > push->floor_ms ? "push" : "polling";
}

static const char *const mode_names[] = {"poll_at_floor", "poll", "push", "naive"};

static void print_json(const fleet_knobs *kn, const fleet_outcome *o, size_t rows)
{
	printf("{\n  \"seed\": %llu,\n  \"fleets\": %u,\n  \"rows\": [\n",
	       (unsigned long long)kn->seed, kn->fleets);
	for (size_t r = 0; r < 4 * rows; r++) {
		const fleet_outcome *x = &o[r];
		printf("    {\"instances\": %u, \"shards\": %u, \"mode\": \"%s\", "
		       "\"consumers\": %u, \"pollers\": %u, \"poll_interval_ms\": %lld, "
		       "\"max_polls_per_second\": %u, \"max_staleness_ms\": %lld, "
		       "\"floor_ms\": %lld, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
		       "\"calls\": %llu, \"throttled\": %llu, \"polls\": %llu, "
		       "\"failed_polls\": %llu, \"puts\": %llu, \"unapplied\": %llu, "
		       "\"reads_cap_per_shard\": %llu}%s\n",
		       x->pushers + x->pollers, x->shards, mode_names[r % 4], x->pushers,
		       x->pollers, (long long)x->cfg.interval_ms, x->cfg.budget,
		       (long long)x->cfg.staleness_ms, (long long)x->floor_ms,
		       (double)x->p50_us / 1e3, (double)x->p99_us / 1e3,
		       (unsigned long long)x->calls, (unsigned long long)x->throttled,
		       (unsigned long long)x->polls, (unsigned long long)x->failed,
		       (unsigned long long)x->puts, (unsigned long long)x->unapplied,
		       (unsigned long long)x->cap, r + 1 < 4 * rows ? "," : "");
	}
	printf("  ]\n}\n");
}

static void print_markdown(const fleet_knobs *kn, const fleet_outcome *o, size_t rows)
{
	printf("Simulated by `fleet_sim --seed %llu`: %u fleet%s of %lld s a row, %u puts a "
	       "second a shard, GetRecords round trip %lld-%lld ms, push %lld-%lld ms after the "
	       "put, push events every %lld ms, %u consumers a stream, 5 GetRecords a second a "
	       "shard counted by %s.\n\n",
	       (unsigned long long)kn->seed, kn->fleets, kn->fleets == 1 ? "" : "s",
	       (long long)(kn->duration_us / US_PER_S), kn->puts_per_s,
	       (long long)(kn->rtt_lo / US_PER_MS), (long long)(kn->rtt_hi / US_PER_MS),
	       (long long)(kn->push_lo / US_PER_MS), (long long)(kn->push_hi / US_PER_MS),
	       (long long)(kn->event_us / US_PER_MS), kn->consumers,
	       kn->window ? "a sliding window" : "a token bucket");
	printf("| Instances | Shards | Floor | At the floor: throttled, p99 | Polling settings "
	       "| p50 / p99 | Reads cap | Push | Floor | p50 / p99 | Pick |\n");
	printf("| ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | --- |\n");
	for (size_t r = 0; r < rows; r++) {
		const fleet_outcome *fl = &o[4 * r], *pl = &o[4 * r + 1], *pu = &o[4 * r + 2];
		char cfg[160], push[200];
		cfg_text(cfg, sizeof cfg, &pl->cfg);
		if (!fleet_sustained(pl))
			snprintf(cfg + strlen(cfg), sizeof cfg - strlen(cfg), " (not sustained)");
		if (pu->pollers)
			snprintf(push, sizeof push, "%u consumers, %u polling at %lld ms",
			         pu->pushers, pu->pollers, (long long)pu->cfg.interval_ms);
		else
			snprintf(push, sizeof push, "%u consumer%s", pu->pushers,
			         pu->pushers == 1 ? "" : "s");
		char t[6][32];
		printf("| %u | %u | %lld ms | %.2f%%, %s | %s | %s / %s | %llu/s | %s | %lld ms | "
		       "%s / %s | %s |\n",
		       fl->pollers, fl->shards, (long long)fl->floor_ms,
		       pct(fl->throttled, fl->calls), ms_text(t[0], 32, fl->p99_us), cfg,
		       ms_text(t[1], 32, pl->p50_us), ms_text(t[2], 32, pl->p99_us),
		       (unsigned long long)pl->cap, push,
		       (long long)(pu->pollers && pu->cfg.interval_ms > pu->floor_ms
		                       ? pu->cfg.interval_ms
		                       : pu->floor_ms),
		       ms_text(t[3], 32, pu->p50_us), ms_text(t[4], 32, pu->p99_us), pick(pl, pu));
	}
	printf("\nEvery instance at one instance's settings (`poll_interval_ms` 200, "
	       "`max_polls_per_second` 5), the budget not split:\n\n");
	printf("| Instances | Shards | p50 / p99 | Throttled calls | Failed polls |\n");
	printf("| ---: | ---: | ---: | ---: | ---: |\n");
	for (size_t r = 0; r < rows; r++) {
		const fleet_outcome *nv = &o[4 * r + 3];
		char t[2][32];
		printf("| %u | %u | %s / %s | %.2f%% | %.2f%% |\n", nv->pollers, nv->shards,
		       ms_text(t[0], 32, nv->p50_us), ms_text(t[1], 32, nv->p99_us),
		       pct(nv->throttled, nv->calls), pct(nv->failed, nv->polls));
	}
}

/* Every row: the polling fleet at its floor and at the settings picked, push (with its
 * fallback), and every instance at one instance's settings. */
static void print_table(const fleet_knobs *kn, int json, const unsigned *ns, size_t nn,
                        const unsigned *ss, size_t nss)
{
	size_t rows = nn * nss;
	fleet_outcome *o = calloc(4 * rows, sizeof *o);
	if (!o) {
		fputs("fleet_sim: out of memory\n", stderr);
		exit(1);
	}
	for (size_t r = 0; r < rows; r++) {
		unsigned n = ns[r / nss], s = ss[r % nss];
		fleet_find_settings(kn, n, s, FLEET_POLL, &o[4 * r], &o[4 * r + 1]);
		fleet_find_settings(kn, n, s, FLEET_PUSH, NULL, &o[4 * r + 2]);
		fleet_simulate(kn, n, s, FLEET_NAIVE, 200, &o[4 * r + 3]);
	}
	if (json)
		print_json(kn, o, rows);
	else
		print_markdown(kn, o, rows);
	free(o);
}

/* ---- Command line ----------------------------------------------------------------- */

/* A comma-separated list of numbers in [1, maxval]; 0 when malformed. */
static size_t parse_list(const char *arg, unsigned *out, size_t max, unsigned long maxval)
{
	size_t n = 0;
	char *end;
	while (*arg && n < max) {
		unsigned long v = strtoul(arg, &end, 10);
		if (end == arg || v == 0 || v > maxval || (*end && *end != ','))
			return 0;
		out[n++] = (unsigned)v;
		arg = *end ? end + 1 : end;
	}
	return *arg ? 0 : n;
}

static int parse_range(const char *arg, int64_t *lo, int64_t *hi)
{
	long a, b;
	if (sscanf(arg, "%ld:%ld", &a, &b) != 2 || a < 0 || b < a || b > 600000)
		return 0;
	*lo = a * US_PER_MS;
	*hi = b * US_PER_MS;
	return 1;
}

/* The options on `out`; the exit status: 0 when asked for (--help), else 2. */
static int usage(FILE *out)
{
	fputs("usage: fleet_sim [--seed N] [--fleets K] [--duration S] [--instances 1,2,...]\n"
	      "                 [--shards 1,4]"
	      " [--consumers C] [--event-ms E] [--push-ms LO:HI] [--rtt-ms LO:HI]\n"
	      "                 [--subscribe-ms M] [--puts P] [--record-bytes B]\n"
	      "                 [--limiter bucket|window] [--stagger random|even] [--json]\n"
	      "defaults: seed 1, 5 fleets of 600 s, instances 1,2,5,10,20,50,100, shards 1,4,\n"
	      "20 consumers, events every 1000 ms, push 35:105 ms, GetRecords 20:50 ms,\n"
	      "renewals 200 ms, 2 puts/s per shard of 200 bytes, token bucket, random starts\n",
	      out);
	return out == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	fleet_knobs kn = {.seed = 1,
	                  .duration_us = 600 * US_PER_S,
	                  .rtt_lo = 20 * US_PER_MS,
	                  .rtt_hi = 50 * US_PER_MS,
	                  .push_lo = 35 * US_PER_MS,
	                  .push_hi = 105 * US_PER_MS,
	                  .event_us = 1000 * US_PER_MS,
	                  .subscribe_us = 200 * US_PER_MS,
	                  .consumers = 20,
	                  .puts_per_s = 2,
	                  .record_bytes = 200,
	                  .fleets = 5};
	unsigned ns[32] = {1, 2, 5, 10, 20, 50, 100}, ss[32] = {1, 4};
	size_t nn = 7, nss = 2;
	int json = 0;
	for (int a = 1; a < argc; a++) {
		const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
		unsigned long x = v ? strtoul(v, NULL, 10) : 0;
		if (!strcmp(o, "--help"))
			return usage(stdout);
		if (!strcmp(o, "--json")) {
			json = 1;
			continue;
		}
		if (!v)
			return usage(stderr);
		a++;
		if (!strcmp(o, "--seed"))
			kn.seed = strtoull(v, NULL, 10);
		else if (!strcmp(o, "--duration") && x >= 10 && x <= 86400)
			kn.duration_us = (int64_t)x * US_PER_S;
		else if (!strcmp(o, "--instances") && (nn = parse_list(v, ns, 32, 10000)))
			continue;
		else if (!strcmp(o, "--shards") && (nss = parse_list(v, ss, 32, 64)))
			continue;
		else if (!strcmp(o, "--fleets") && x >= 1 && x <= 1000)
			kn.fleets = (unsigned)x;
		else if (!strcmp(o, "--consumers") && x >= 1 && x <= 10000)
			kn.consumers = (unsigned)x;
		else if (!strcmp(o, "--event-ms") && x >= 1 && x <= 600000)
			kn.event_us = (int64_t)x * US_PER_MS;
		else if (!strcmp(o, "--subscribe-ms") && x <= 60000 && *v >= '0' && *v <= '9')
			kn.subscribe_us = (int64_t)x * US_PER_MS;
		else if (!strcmp(o, "--puts") && x >= 1 && x <= 1000)
			kn.puts_per_s = (unsigned)x;
		else if (!strcmp(o, "--record-bytes") && x >= 1 && x <= (1u << 20))
			kn.record_bytes = (unsigned)x;
		else if (!strcmp(o, "--push-ms") && parse_range(v, &kn.push_lo, &kn.push_hi))
			continue;
		else if (!strcmp(o, "--rtt-ms") && parse_range(v, &kn.rtt_lo, &kn.rtt_hi))
			continue;
		else if (!strcmp(o, "--limiter") && (!strcmp(v, "bucket") || !strcmp(v, "window")))
			kn.window = !strcmp(v, "window");
		else if (!strcmp(o, "--stagger") && (!strcmp(v, "random") || !strcmp(v, "even")))
			kn.even = !strcmp(v, "even");
		else
			return usage(stderr);
	}
	print_table(&kn, json, ns, nn, ss, nss);
	return 0;
}
