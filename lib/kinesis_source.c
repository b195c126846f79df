/*
 * kinesis_source.c: the Kinesis polling source (scache/source.h): the reader of every
 * shard (reader.c) and the publisher (publish.c) behind the source interface, so the
 * middleware reads a Kinesis stream without knowing it is one.
 *
 * Startup never depends on the stream being up. The publisher makes no call when it is
 * created, so it checks the configuration (stream name, region, credentials) and a
 * mistake there fails at once. Creating the reader lists the shards; when that fails
 * for any other reason (stream unreachable, throttled, not yet created), the source says
 * so through unavailable() (the middleware starts with its cache bypassed) and each
 * sync tries to create the reader again, positioned at LATEST, until it succeeds.
 *
 * Startup is also bounded in time: the reader's calls have their own timeouts and
 * retries (10 s a call and 5 retries by default, two minutes against an endpoint that
 * accepts connections and never answers), so the first reader is created in a thread of
 * its own (the connector), waited for at most the startup bound (3 s by default). When
 * it is not done by then the source is unavailable ("no answer within ...") and the first
 * sync joins the connector, adopts its reader and reads from it (the reader was
 * positioned before that sync began, so the sync reads what came since), or reports its
 * error. The connector touches only its own fields until it is joined.
 *
 * The stream configuration (DynamoDB tables included) is copied once, into the resolved
 * settings (kinesis_settings_resolve), from which every later reader is made.
 */
#include "kinesis.h"
#include "publish.h"
#include "reader.h"
#include "scache/cache.h"
#include "scache/source.h"
#include "scache/stream.h"
#include "source_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The reader's callbacks go to the sink of the sync in progress (syncs run one at a
 * time, from the owner's poller thread). */
typedef struct kinesis_source {
	scache_reader *reader;       /* NULL until the stream could be reached */
	scache_publisher *publisher; /* created at startup, any thread */
	const scache_sink *sink;     /* during a sync */
	kinesis_settings settings;   /* resolved at startup, to create the reader later */
	char unavailable[256];       /* why the reader could not be created at startup */

	/* The connector: the startup creation, while `connecting` (until joined). */
	pthread_t connector;
	int connecting;
	int mu_ready; /* mu and cv initialised */
	scache_start_at start;
	pthread_mutex_t mu; /* guards the four below between the connector and startup */
	pthread_cond_t cv;
	int connected; /* the connector is done */
	scache_reader *connected_reader;
	scache_err connect_err;
	char connect_why[256];
} kinesis_source;

static void on_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	kinesis_source *ks = arg;
	if (ks->sink)
		ks->sink->keys(ks->sink->arg, keys, lens, n);
}

/* Keys with their record's origin: the echo of this source's own publishes goes to
 * sink->keys_own when the sink has one; an unknown origin (0) or another's is foreign. */
static void on_keys_origin(void *arg, const char *const *keys, const size_t *lens, size_t n,
                           uint64_t origin)
{
	kinesis_source *ks = arg;
	if (!ks->sink)
		return;
	if (origin && ks->sink->keys_own && origin == scache_publisher_origin(ks->publisher))
		ks->sink->keys_own(ks->sink->arg, keys, lens, n);
	else
		ks->sink->keys(ks->sink->arg, keys, lens, n);
}

/* A refresh (a DynamoDB change record in refresh mode): to sink->value, or, for a sink
 * without one, to sink->keys as an invalidation. */
static void on_value(void *arg, const char *key, size_t key_len, const void *value, size_t len)
{
	kinesis_source *ks = arg;
	if (!ks->sink)
		return;
	if (ks->sink->value)
		ks->sink->value(ks->sink->arg, key, key_len, value, len);
	else
		ks->sink->keys(ks->sink->arg, &key, &key_len, 1);
}

static void on_gap(void *arg, const char *why)
{
	kinesis_source *ks = arg;
	if (ks->sink)
		ks->sink->gap(ks->sink->arg, why);
}

/* The reader's messages (already rate-limited by it) go to the sink's log, which
 * escapes them. Outside a sync (the reader created at startup) they go to stderr,
 * control bytes shown as '?'. */
static void on_log(void *arg, const char *message)
{
	kinesis_source *ks = arg;
	if (ks->sink && ks->sink->log) {
		ks->sink->log(ks->sink->arg, message);
		return;
	}
	fputs("libscache: ", stderr);
	for (const char *p = message; *p; p++)
		fputc((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p, stderr);
	fputc('\n', stderr);
}

static scache_err reader_create(kinesis_source *ks, scache_start_at start, scache_reader **out,
                                char *errbuf, size_t errlen)
{
	scache_reader_callbacks cb = {.on_keys = on_keys,
	                              .on_gap = on_gap,
	                              .arg = ks,
	                              .on_log = on_log,
	                              .on_value = on_value,
	                              .on_keys_origin = on_keys_origin};
	return reader_new(&ks->settings, start, &cb, out, errbuf, errlen);
}

static void *connector_main(void *arg)
{
	kinesis_source *ks = arg;
	scache_reader *r = NULL;
	char why[256] = "";
	scache_err err = reader_create(ks, ks->start, &r, why, sizeof why);
	pthread_mutex_lock(&ks->mu);
	ks->connected_reader = r;
	ks->connect_err = err;
	memcpy(ks->connect_why, why, sizeof why);
	ks->connected = 1;
	pthread_cond_broadcast(&ks->cv);
	pthread_mutex_unlock(&ks->mu);
	return NULL;
}

/* Join the connector and take its outcome: its reader into ks->reader, or its error. */
static scache_err connector_join(kinesis_source *ks, char *errbuf, size_t errlen)
{
	pthread_join(ks->connector, NULL);
	ks->connecting = 0;
	ks->reader = ks->connected_reader;
	ks->connected_reader = NULL;
	if (ks->connect_err)
		util_fmt(errbuf, errlen, "%s", ks->connect_why);
	return ks->connect_err;
}

/* Create the first reader within bound_ms: SCACHE_ETIMEOUT when the connector is still
 * at it then (it goes on; connecting stays set), else its outcome (the reader in
 * ks->reader). Without a thread, the creation runs here, unbounded. */
static scache_err reader_create_within(kinesis_source *ks, scache_start_at start, uint64_t bound_ms,
                                       char *errbuf, size_t errlen)
{
	ks->start = start;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int cv_err = pthread_cond_init(&ks->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&ks->mu, NULL);
	if (cv_err || pthread_create(&ks->connector, NULL, connector_main, ks)) {
		if (!cv_err)
			pthread_cond_destroy(&ks->cv);
		pthread_mutex_destroy(&ks->mu);
		return reader_create(ks, start, &ks->reader, errbuf, errlen);
	}
	ks->connecting = 1;
	ks->mu_ready = 1;
	uint64_t deadline = scache_now_ns(NULL) + bound_ms * 1000000u;
	struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
	pthread_mutex_lock(&ks->mu);
	while (!ks->connected)
		if (pthread_cond_timedwait(&ks->cv, &ks->mu, &ts) == ETIMEDOUT)
			break;
	int done = ks->connected;
	pthread_mutex_unlock(&ks->mu);
	if (!done)
		return SCACHE_ETIMEOUT;
	return connector_join(ks, errbuf, errlen);
}

static scache_err kinesis_sync(void *self, uint64_t since_ns, const scache_sink *sink,
                               scache_poll_info *info)
{
	kinesis_source *ks = self;
	scache_err err;
	if (ks->connecting) {
		/* the startup creation, still running when startup gave up waiting: its reader
		 * was positioned before this sync began, so reading it now delivers what was
		 * published since; its error counts as this sync's */
		err = connector_join(ks, info->message, sizeof info->message);
		if (err) {
			info->err = err;
			return err;
		}
	}
	ks->sink = sink;
	if (!ks->reader) {
		/* Late: positioned at LATEST whatever start_at said. While there was no reader
		 * the owner bypassed its cache, so nothing cached can be concerned by older
		 * records. Being positioned counts as caught up. */
		err = reader_create(ks, SCACHE_START_LATEST, &ks->reader, info->message,
		                    sizeof info->message);
		scache_reader_stats st;
		scache_reader_stats_get(ks->reader, &st); /* zeroed when the reader is NULL */
		info->calls = st.calls;
		info->err = err;
		if (!err)
			info->message[0] = '\0';
	} else {
		scache_reader_stats before, after;
		scache_reader_stats_get(ks->reader, &before);
		err = scache_reader_sync(ks->reader, since_ns, 0, info);
		scache_reader_stats_get(ks->reader, &after);
		info->throttled = after.throttled > before.throttled;
	}
	ks->sink = NULL;
	return err;
}

static scache_err kinesis_publish(void *self, const char *const *keys, const size_t *lens, size_t n,
                                  char *errbuf, size_t errlen)
{
	kinesis_source *ks = self;
	return publish_keys_why(ks->publisher, keys, lens, n, errbuf, errlen);
}

static const char *kinesis_unavailable(void *self)
{
	kinesis_source *ks = self;
	return ks->reader ? NULL : ks->unavailable;
}

static void kinesis_stats(void *self, scache_source_stats *out)
{
	kinesis_source *ks = self;
	if (!ks->reader)
		return;
	scache_reader_stats st;
	scache_reader_stats_get(ks->reader, &st);
	out->syncs = st.polls;
	out->errors = st.poll_errors;
	out->calls = st.calls;
	out->throttled = st.throttled;
	out->records = st.records;
	out->bad_records = st.bad_records;
	out->keys = st.keys;
	out->gaps = st.gaps;
	out->partitions = st.shards;
}

static void kinesis_destroy(void *self)
{
	kinesis_source *ks = self;
	if (!ks)
		return;
	if (ks->connecting) /* bounded by the stream's own timeouts and retries */
		connector_join(ks, NULL, 0);
	if (ks->mu_ready) {
		pthread_cond_destroy(&ks->cv);
		pthread_mutex_destroy(&ks->mu);
	}
	scache_reader_free(ks->reader);
	scache_publisher_free(ks->publisher);
	kinesis_settings_clear(&ks->settings);
	free(ks);
}

static const scache_source_ops kinesis_ops = {
    .name = "kinesis",
    .sync = kinesis_sync,
    .publish = kinesis_publish,
    .unavailable = kinesis_unavailable,
    .stats = kinesis_stats,
    .destroy = kinesis_destroy,
};

/* Errors of scache_reader_new that a later attempt cannot fix: fail at startup. */
static int reader_error_is_final(scache_err err)
{
	return err == SCACHE_ECONFIG || err == SCACHE_EINVAL || err == SCACHE_ENOMEM;
}

/* Whether a reader's error says the stream does not exist (the AWS error name, which
 * the message carries as "<Op> at <endpoint>: ResourceNotFoundException: ..."). */
static int stream_not_found(scache_err err, const char *why)
{
	return err == SCACHE_ESERVICE && strstr(why, ": ResourceNotFoundException") != NULL;
}

scache_err kinesis_source_create(const scache_stream_config *config, scache_start_at start,
                                 uint64_t startup_ms, int require_stream, scache_source **out,
                                 char *errbuf, size_t errlen)
{
	if (!config || !out) {
		util_fmt(errbuf, errlen, "kinesis source: NULL argument");
		return SCACHE_EINVAL;
	}
	*out = NULL;
	kinesis_source *ks = calloc(1, sizeof *ks);
	if (!ks)
		return SCACHE_ENOMEM;
	/* First the settings and the publisher: the publisher makes no call, so these errors
	 * are configuration errors (no stream name, region or credentials, a bad endpoint),
	 * which no retry fixes. */
	scache_err err = kinesis_settings_resolve(config, 1, &ks->settings, errbuf, errlen);
	if (err) {
		free(ks);
		return err;
	}
	err = publisher_new(&ks->settings, &ks->publisher, errbuf, errlen);
	if (err) {
		kinesis_destroy(ks);
		return err;
	}
	char why[256] = "";
	err = reader_create_within(ks, start, startup_ms, why, sizeof why);
	if (err == SCACHE_ETIMEOUT) {
		/* no answer within the bound: the connector goes on, the first sync adopts it */
		util_fmt(ks->unavailable, sizeof ks->unavailable,
		         "no answer from stream '%s' at %s within %llu ms (startup_timeout_ms); "
		         "still connecting in the background",
		         ks->settings.stream_name, ks->settings.aws.endpoint,
		         (unsigned long long)startup_ms);
		return scache_source_new(&kinesis_ops, ks, out);
	}
	if (err && (reader_error_is_final(err) || (require_stream && stream_not_found(err, why)))) {
		util_fmt(errbuf, errlen, "%s", why[0] ? why : scache_strerror(err));
		kinesis_destroy(ks);
		return err;
	}
	/* Any other failure (unreachable, throttled, ResourceNotFoundException: the stream
	 * may be created later) leaves the reader NULL until a sync creates it. */
	if (err)
		util_fmt(ks->unavailable, sizeof ks->unavailable, "%s",
		         why[0] ? why : scache_strerror(err));
	return scache_source_new(&kinesis_ops, ks, out);
}

scache_err scache_kinesis_source_new(const scache_stream_config *config, scache_start_at start,
                                     scache_source **out, char *errbuf, size_t errlen)
{
	return kinesis_source_create(config, start, 3000, 0, out, errbuf, errlen);
}
