/*
 * scachectl: the operator's tool for the invalidation stream.
 *
 *   scachectl publish [--stream NAME] SOURCE ID [ID...]
 *   scachectl tail [--stream NAME] [--from latest|trim-horizon] [--interval MS]
 *   scachectl create-stream NAME [--shards N] [--timeout S]
 *   scachectl delete-stream NAME [--timeout S]
 *   scachectl report [FILE...]
 *
 * Connection settings come from the AWS environment (see include/scache/stream.h); the
 * stream name from --stream or SCACHE_STREAM. Exit status: 0 success, 1 failure (the
 * reason on stderr), 2 bad usage (report: 3 for a WARNING verdict). Subcommands sit in one table: a
 * new one is a function and a row.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws.h"
#include "kinesis.h"
#include "report.h"
#include "scache/scache.h"

#define EXIT_USAGE 2

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} command;

static int cmd_publish(int argc, char **argv);
static int cmd_tail(int argc, char **argv);
static int cmd_create_stream(int argc, char **argv);
static int cmd_delete_stream(int argc, char **argv);

static const command commands[] = {
    {"publish", cmd_publish, "publish one invalidation of SOURCE's IDs"},
    {"tail", cmd_tail, "print every invalidated ID as it arrives"},
    {"report", scachectl_report, "summarize efficiency logs: scachectl report [FILE...]"},
    {"create-stream", cmd_create_stream, "create a stream and wait until it is ACTIVE"},
    {"delete-stream", cmd_delete_stream, "delete a stream and wait until it is gone"},
};

static const char publish_usage[] =
    "usage: scachectl publish [--stream NAME] SOURCE ID [ID...]\n"
    "\n"
    "Publish one invalidation record for the data IDs (SOURCE, ID) and print, for each\n"
    "record written, its shard and sequence number: SHARD<TAB>SEQUENCE.\n"
    "\n"
    "  -s, --stream NAME   Kinesis stream (default: $SCACHE_STREAM)\n"
    "  -h, --help          this help\n";

static const char tail_usage[] =
    "usage: scachectl tail [--stream NAME] [--from latest|trim-horizon] [--interval MS]\n"
    "                      [--push CONSUMER]\n"
    "\n"
    "Print every invalidated data ID as it arrives, one line each:\n"
    "SOURCE<TAB>ID<TAB>SHARD<TAB>SEQUENCE, until interrupted (SIGINT or SIGTERM, exit 0).\n"
    "With --push the records come by enhanced fan-out as consumer CONSUMER (registered\n"
    "if missing, deregistered at exit): lines are SOURCE<TAB>ID<TAB>push<TAB>-, and\n"
    "every interval one line on stderr counts the push source's events, records,\n"
    "renewals, reconnects and how far behind the stream it is.\n"
    "\n"
    "  -s, --stream NAME   Kinesis stream (default: $SCACHE_STREAM)\n"
    "  -f, --from WHERE    latest (default) or trim-horizon\n"
    "  -i, --interval MS   pause between polls when caught up (default 1000; the service\n"
    "                      allows 5 reads per second per shard for all readers together)\n"
    "  -p, --push NAME     receive by push as consumer NAME instead of polling\n"
    "  -h, --help          this help\n";

static void usage(FILE *f)
{
	fprintf(f, "usage: scachectl COMMAND [options] (scachectl COMMAND --help for more)\n\n"
	           "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nConnection: AWS_REGION / AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID,\n"
	           "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_KINESIS or\n"
	           "AWS_ENDPOINT_URL; stream: --stream or SCACHE_STREAM.\n");
}

static void config_from_env(scache_stream_config *cfg, const char *stream)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->stream_name = stream ? stream : getenv("SCACHE_STREAM");
}

/* ---- publish ---------------------------------------------------------------------- */

static int cmd_publish(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"stream", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *stream = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			stream = optarg;
			break;
		case 'h':
			fputs(publish_usage, stdout);
			return 0;
		default:
			fputs(publish_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind < 2) {
		fprintf(stderr, "scachectl publish: need SOURCE and at least one ID\n");
		fputs(publish_usage, stderr);
		return EXIT_USAGE;
	}
	const char *source = argv[optind];
	size_t n = (size_t)(argc - optind - 1);
	char **keys = calloc(n, sizeof *keys);
	size_t *lens = calloc(n, sizeof *lens);
	scache_publish_result *res = calloc(n, sizeof *res);
	scache_publisher *pub = NULL;
	scache_stream_config cfg;
	char err[512];
	int status = 1;

	if (!keys || !lens || !res) {
		fprintf(stderr, "scachectl publish: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *id = argv[optind + 1 + (int)i];
		if (scache_id_encode_alloc(source, strlen(source), id, strlen(id), &keys[i],
		                           &lens[i])) {
			fprintf(stderr, "scachectl publish: out of memory\n");
			goto out;
		}
	}
	config_from_env(&cfg, stream);
	scache_err e = scache_publisher_new(&cfg, &pub, err, sizeof err);
	if (e) {
		fprintf(stderr, "scachectl publish: %s\n", err[0] ? err : scache_strerror(e));
		status = e == SCACHE_ECONFIG && !cfg.stream_name ? EXIT_USAGE : 1;
		goto out;
	}
	e = scache_publish_keys(pub, (const char *const *)keys, lens, n, res);
	status = e == SCACHE_OK ? 0 : 1;
	for (size_t i = 0; i < n; i++) {
		if (res[i].err != SCACHE_OK) {
			fprintf(stderr, "scachectl publish: %s %s: %s (%s)\n", source,
			        argv[optind + 1 + (int)i], scache_strerror(res[i].err),
			        res[i].message);
			continue;
		}
		/* one line per record: keys of one record share its sequence number */
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = res[j].err == SCACHE_OK &&
			       !strcmp(res[j].sequence, res[i].sequence) &&
			       !strcmp(res[j].shard_id, res[i].shard_id);
		if (!seen)
			printf("%s\t%s\n", res[i].shard_id, res[i].sequence);
	}
	fflush(stdout);
out:
	scache_publisher_free(pub);
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	free(lens);
	free(res);
	return status;
}

/* ---- tail ------------------------------------------------------------------------- */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void print_escaped(const char *s, size_t len)
{
	/* keep one line per ID: tabs, newlines and other controls become \xHH */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
}

static void tail_record(void *arg, const char *shard, const char *seq, const char *const *keys,
                        const size_t *lens, size_t n)
{
	(void)arg;
	for (size_t i = 0; i < n; i++) {
		scache_id id;
		if (scache_id_parse(keys[i], lens[i], &id) == SCACHE_OK) {
			print_escaped(id.source, id.source_len);
			putchar('\t');
			print_escaped(id.id, id.id_len);
			scache_id_clear(&id);
		} else {
			print_escaped(keys[i], lens[i]);
			putchar('\t');
		}
		/* shard and sequence come from the service's answer: escaped as well */
		putchar('\t');
		print_escaped(shard, strlen(shard));
		putchar('\t');
		print_escaped(seq, strlen(seq));
		putchar('\n');
		fflush(stdout);
	}
}

static void tail_gap(void *arg, const char *why)
{
	(void)arg;
	fprintf(stderr, "scachectl tail: gap: %s\n", why);
}

/* --push: the push source's sink (it names no shard or sequence per key). */
static void tail_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	(void)arg;
	for (size_t i = 0; i < n; i++)
		tail_record(NULL, "push", "-", &keys[i], &lens[i], 1);
}

static void tail_log(void *arg, const char *message)
{
	(void)arg;
	fprintf(stderr, "scachectl tail: ");
	print_escaped(message, strlen(message)); /* from the service: escaped */
	fputc('\n', stderr);
}

static void tail_push_counts(scache_source *src)
{
	scache_push_stats ps;
	if (scache_kinesis_push_stats(src, &ps) != SCACHE_OK)
		return;
	fprintf(stderr,
	        "scachectl tail: push: %llu events, %llu records, %llu renewals, %llu reconnects, "
	        "%llu shards, %lld ms behind%s\n",
	        (unsigned long long)ps.events, (unsigned long long)ps.records,
	        (unsigned long long)ps.renewals, (unsigned long long)ps.reconnects,
	        (unsigned long long)ps.shards, (long long)ps.millis_behind,
	        ps.polling ? " (no consumer: polling)" : "");
}

/* Sleep ms in small steps, so a signal ends the wait quickly. */
static void tail_pause(long ms)
{
	for (long waited = 0; waited < ms && !stop; waited += 50) {
		long step = ms - waited < 50 ? ms - waited : 50;
		struct timespec ts = {0, step * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static int tail_push(scache_stream_config *cfg, const char *consumer, scache_start_at from,
                     long interval)
{
	scache_push_config pc = {.consumer_name = consumer, .deregister_on_free = 1};
	scache_source *src = NULL;
	char err[512] = "";
	scache_err e = scache_kinesis_push_source_new(cfg, &pc, from, &src, err, sizeof err);
	if (e) {
		fprintf(stderr, "scachectl tail: %s\n", err[0] ? err : scache_strerror(e));
		return e == SCACHE_ECONFIG && !cfg->stream_name ? EXIT_USAGE : 1;
	}
	scache_sink sink = {.keys = tail_keys, .gap = tail_gap, .log = tail_log};
	int failures = 0;
	while (!stop) {
		scache_poll_info info;
		e = scache_source_sync(src, scache_now_ns(NULL), &sink, &info);
		if (e && !stop) {
			fprintf(stderr, "scachectl tail: %s\n",
			        info.message[0] ? info.message : scache_strerror(e));
			if (++failures >= 10)
				break;
		} else {
			failures = 0;
		}
		tail_push_counts(src);
		tail_pause(interval);
	}
	scache_source_free(src);
	return failures >= 10 ? 1 : 0;
}

static int cmd_tail(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"stream", required_argument, NULL, 's'},
	    {"from", required_argument, NULL, 'f'},
	    {"interval", required_argument, NULL, 'i'},
	    {"push", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *stream = NULL, *consumer = NULL;
	scache_start_at from = SCACHE_START_LATEST;
	long interval = 1000;
	int c;
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+s:f:i:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			stream = optarg;
			break;
		case 'p':
			consumer = optarg;
			break;
		case 'f':
			if (!strcmp(optarg, "latest")) {
				from = SCACHE_START_LATEST;
			} else if (!strcmp(optarg, "trim-horizon")) {
				from = SCACHE_START_TRIM_HORIZON;
			} else {
				fprintf(stderr,
				        "scachectl tail: --from takes latest or trim-horizon\n");
				return EXIT_USAGE;
			}
			break;
		case 'i':
			errno = 0;
			interval = strtol(optarg, &end, 10);
			if (errno || *end || interval < 0 || interval > 3600000) {
				fprintf(stderr, "scachectl tail: --interval takes milliseconds\n");
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(tail_usage, stdout);
			return 0;
		default:
			fputs(tail_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "scachectl tail: unexpected argument '%s'\n", argv[optind]);
		fputs(tail_usage, stderr);
		return EXIT_USAGE;
	}

	scache_stream_config cfg;
	scache_reader *reader = NULL;
	scache_reader_callbacks cb = {.on_gap = tail_gap, .on_record = tail_record};
	char err[512];
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	config_from_env(&cfg, stream);
	if (consumer)
		return tail_push(&cfg, consumer, from, interval);
	scache_err e = scache_reader_new(&cfg, from, &cb, &reader, err, sizeof err);
	if (e) {
		fprintf(stderr, "scachectl tail: %s\n", err[0] ? err : scache_strerror(e));
		return e == SCACHE_ECONFIG && !cfg.stream_name ? EXIT_USAGE : 1;
	}
	int failures = 0;
	while (!stop) {
		scache_poll_info info;
		e = scache_reader_sync(reader, scache_now_ns(NULL), 0, &info);
		if (e) {
			fprintf(stderr, "scachectl tail: %s\n",
			        info.message[0] ? info.message : scache_strerror(e));
			if (++failures >= 10) {
				scache_reader_free(reader);
				return 1;
			}
		} else {
			failures = 0;
		}
		tail_pause(interval);
	}
	scache_reader_free(reader);
	return 0;
}

/* ---- create-stream, delete-stream -------------------------------------------------- */

static const char create_usage[] =
    "usage: scachectl create-stream NAME [--shards N] [--timeout S]\n"
    "\n"
    "Create the Kinesis stream NAME (CreateStream) and wait until it is ACTIVE, so local\n"
    "setup (kinesalite, LocalStack) needs no signed curl.\n"
    "\n"
    "  -n, --shards N      shards (default 1)\n"
    "  -t, --timeout S     longest wait for ACTIVE, in seconds (default 60)\n"
    "  -h, --help          this help\n";

static const char delete_usage[] =
    "usage: scachectl delete-stream NAME [--timeout S]\n"
    "\n"
    "Delete the Kinesis stream NAME (DeleteStream) and wait until it is gone.\n"
    "\n"
    "  -t, --timeout S     longest wait, in seconds (default 60)\n"
    "  -h, --help          this help\n";

/* Parses the options of create-stream (shards != NULL) or delete-stream. */
static int admin_args(int argc, char **argv, const char *usage_text, const char *what,
                      const char **name, long *shards, long *timeout_s)
{
	static const struct option opts[] = {
	    {"shards", required_argument, NULL, 'n'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	char *end;
	optind = 1;
	while ((c = getopt_long(argc, argv, shards ? "n:t:h" : "t:h", opts, NULL)) != -1) {
		long *into = c == 'n' && shards ? shards : c == 't' ? timeout_s : NULL;
		if (c == 'h') {
			fputs(usage_text, stdout);
			return 0;
		}
		if (!into) {
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
		errno = 0;
		*into = strtol(optarg, &end, 10);
		if (errno || *end || *into < 1 || *into > (c == 'n' ? 10000 : 3600)) {
			fprintf(stderr, "scachectl %s: --%s takes a number from 1 to %d\n", what,
			        c == 'n' ? "shards" : "timeout", c == 'n' ? 10000 : 3600);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "scachectl %s: need exactly one stream NAME\n", what);
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	*name = argv[optind];
	return -1;
}

/* A Kinesis client from the environment, for stream. */
static aws_client *admin_client(const char *what, const char *stream)
{
	scache_stream_config cfg;
	kinesis_settings ks;
	aws_client *c = NULL;
	char err[512] = "";
	config_from_env(&cfg, stream);
	scache_err e = kinesis_settings_resolve(&cfg, 1, &ks, err, sizeof err);
	if (e == SCACHE_OK) {
		e = kinesis_client_new(&ks, &c, err, sizeof err);
		kinesis_settings_clear(&ks);
	}
	if (e)
		fprintf(stderr, "scachectl %s: %s\n", what, err[0] ? err : scache_strerror(e));
	return c;
}

/* The stream's StreamStatus ("ACTIVE", "CREATING"...) into status, or "" when it does
 * not exist. Returns 0, or -1 (the reason printed) when the service cannot tell. */
static int stream_status(aws_client *c, const char *what, const char *stream, char *status,
                         size_t len)
{
	json_object *req = kinesis_req_stream(stream), *sum;
	aws_result r;
	int rc = 0;
	status[0] = '\0';
	if (!req) {
		fprintf(stderr, "scachectl %s: out of memory\n", what);
		return -1;
	}
	aws_call(c, "DescribeStreamSummary", req, &r);
	json_object_put(req);
	if (r.err == SCACHE_OK &&
	    json_object_object_get_ex(r.body, "StreamDescriptionSummary", &sum))
		snprintf(status, len, "%s",
		         aws_json_str(sum, "StreamStatus") ? aws_json_str(sum, "StreamStatus")
		                                           : "?");
	else if (r.fail != AWS_FAIL_NOTFOUND) {
		fprintf(stderr, "scachectl %s: %s\n", what,
		        r.message[0] ? r.message : scache_strerror(r.err));
		rc = -1;
	}
	aws_result_clear(&r);
	return rc;
}

/* Waits (polls every 100 ms, at most timeout_s) until the stream's status is want ("" for
 * gone). 0 when it is, else 1 with the reason printed. */
static int wait_status(aws_client *c, const char *what, const char *stream, const char *want,
                       long timeout_s)
{
	char status[32];
	uint64_t deadline = scache_now_ns(NULL) + (uint64_t)timeout_s * 1000000000u;
	for (;;) {
		if (stream_status(c, what, stream, status, sizeof status))
			return 1;
		if (!strcmp(status, want))
			return 0;
		if (scache_now_ns(NULL) >= deadline) {
			fprintf(stderr, "scachectl %s: stream '%s' is still %s after %ld s\n", what,
			        stream, status[0] ? status : "absent", timeout_s);
			return 1;
		}
		struct timespec ts = {0, 100000000L};
		nanosleep(&ts, NULL);
	}
}

/* Calls op on stream with req; 0, or 1 with the AWS error printed. */
static int admin_call(aws_client *c, const char *what, const char *op, json_object *req)
{
	aws_result r;
	if (!req) {
		fprintf(stderr, "scachectl %s: out of memory\n", what);
		return 1;
	}
	aws_call(c, op, req, &r);
	json_object_put(req);
	int rc = r.err != SCACHE_OK;
	if (rc) /* the message names the AWS error, e.g. ResourceInUseException */
		fprintf(stderr, "scachectl %s: %s\n", what,
		        r.message[0] ? r.message : scache_strerror(r.err));
	aws_result_clear(&r);
	return rc;
}

static int cmd_create_stream(int argc, char **argv)
{
	const char *name = NULL;
	long shards = 1, timeout_s = 60;
	int rc = admin_args(argc, argv, create_usage, "create-stream", &name, &shards, &timeout_s);
	if (rc >= 0)
		return rc;
	aws_client *c = admin_client("create-stream", name);
	if (!c)
		return 1;
	json_object *req = kinesis_req_stream(name);
	if (req && json_object_object_add(req, "ShardCount", json_object_new_int((int)shards))) {
		json_object_put(req);
		req = NULL;
	}
	rc = admin_call(c, "create-stream", "CreateStream", req);
	if (!rc)
		rc = wait_status(c, "create-stream", name, "ACTIVE", timeout_s);
	if (!rc)
		printf("%s\tACTIVE\t%ld shard%s\n", name, shards, shards == 1 ? "" : "s");
	aws_client_free(c);
	return rc;
}

static int cmd_delete_stream(int argc, char **argv)
{
	const char *name = NULL;
	long timeout_s = 60;
	int rc = admin_args(argc, argv, delete_usage, "delete-stream", &name, NULL, &timeout_s);
	if (rc >= 0)
		return rc;
	aws_client *c = admin_client("delete-stream", name);
	if (!c)
		return 1;
	rc = admin_call(c, "delete-stream", "DeleteStream", kinesis_req_stream(name));
	if (!rc)
		rc = wait_status(c, "delete-stream", name, "", timeout_s);
	if (!rc)
		printf("%s\tDELETED\n", name);
	aws_client_free(c);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "scachectl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
