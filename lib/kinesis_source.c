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
 * The stream configuration (DynamoDB tables included) is copied once, into the resolved
 * settings (kinesis_settings_resolve), from which every later reader is made.
 */
#include "kinesis.h"
#include "publish.h"
#include "reader.h"
#include "scache/source.h"
#include "scache/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reader's callbacks go to the sink of the sync in progress (syncs run one at a
 * time, from the owner's poller thread). */
typedef struct kinesis_source {
	scache_reader *reader;       /* NULL until the stream could be reached */
	scache_publisher *publisher; /* created at startup, any thread */
	const scache_sink *sink;     /* during a sync */
	kinesis_settings settings;   /* resolved at startup, to create the reader later */
	char unavailable[256];       /* why the reader could not be created at startup */
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

static scache_err reader_create(kinesis_source *ks, scache_start_at start, char *errbuf,
                                size_t errlen)
{
	scache_reader_callbacks cb = {.on_keys = on_keys,
	                              .on_gap = on_gap,
	                              .arg = ks,
	                              .on_log = on_log,
	                              .on_value = on_value,
	                              .on_keys_origin = on_keys_origin};
	return reader_new(&ks->settings, start, &cb, &ks->reader, errbuf, errlen);
}

static scache_err kinesis_sync(void *self, uint64_t since_ns, const scache_sink *sink,
                               scache_poll_info *info)
{
	kinesis_source *ks = self;
	ks->sink = sink;
	scache_err err;
	if (!ks->reader) {
		/* Late: positioned at LATEST whatever start_at said. While there was no reader
		 * the owner bypassed its cache, so nothing cached can be concerned by older
		 * records. Being positioned counts as caught up. */
		err = reader_create(ks, SCACHE_START_LATEST, info->message, sizeof info->message);
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
	scache_publish_result *res = calloc(n ? n : 1, sizeof *res);
	scache_err err = scache_publish_keys(ks->publisher, keys, lens, n, res);
	if (err) {
		/* the first key's reason tells the story (the AWS error name and message) */
		const char *why = NULL;
		for (size_t i = 0; res && i < n && !why; i++)
			if (res[i].err && res[i].message[0])
				why = res[i].message;
		util_fmt(errbuf, errlen, "%s", why ? why : scache_strerror(err));
	}
	free(res);
	return err;
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

scache_err scache_kinesis_source_new(const scache_stream_config *config, scache_start_at start,
                                     scache_source **out, char *errbuf, size_t errlen)
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
	err = reader_create(ks, start, why, sizeof why);
	if (err && reader_error_is_final(err)) {
		util_fmt(errbuf, errlen, "%s", why);
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
