/*
 * scache_middleware_new over the real stream: plugs the Kinesis reader (its keys and
 * gaps go to the middleware) and the publisher into the middleware's stream interface.
 * Kept apart from middleware.c so the middleware can be built and unit-tested with a
 * stand-in stream.
 *
 * Startup never depends on the stream being up. The publisher makes no call when it is
 * created, so it checks the configuration (stream name, region, credentials) and a
 * mistake there fails scache_middleware_new at once. Creating the reader lists the
 * shards; when that fails for any other reason (stream unreachable, throttled, not yet
 * created), the middleware starts with the cache bypassed and the poller thread retries
 * creating the reader on each poll, at the failure back-off pace, until it succeeds.
 */
#include "middleware_internal.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The reader's callbacks need the middleware, which exists only after the reader is
 * created. Only the middleware's poller thread polls, through stream_drain, which hands
 * the middleware to the callbacks through the box before each poll. */
typedef struct stream_box {
	scache_reader *reader;       /* NULL until the stream could be reached; poller only */
	scache_publisher *publisher; /* created at startup, any thread */
	scache_middleware *mw;       /* written and read by the poller thread only */
	scache_stream_config config; /* a copy with copied strings, to create it later */
} stream_box;

static void box_keys(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	stream_box *box = arg;
	if (box->mw)
		scache_middleware_apply_keys(box->mw, keys, lens, n);
}

static void box_gap(void *arg, const char *why)
{
	stream_box *box = arg;
	if (box->mw)
		scache_middleware_apply_gap(box->mw, why);
}

/* The reader's messages (already rate-limited by it) become the middleware's warnings,
 * in its log sink, which escapes them. The reader created in scache_middleware_new runs
 * before the middleware exists: it polls only later, through stream_drain, but should
 * it speak before, the message goes to stderr, control bytes shown as '?'. */
static void box_log(void *arg, const char *message)
{
	stream_box *box = arg;
	if (box->mw) {
		efficiency_warning(box->mw, message);
		return;
	}
	fputs("libscache: ", stderr);
	for (const char *p = message; *p; p++)
		fputc((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p, stderr);
	fputc('\n', stderr);
}

static scache_reader_callbacks box_callbacks(stream_box *box)
{
	scache_reader_callbacks cb = {
	    .on_keys = box_keys, .on_gap = box_gap, .arg = box, .on_log = box_log};
	return cb;
}

/* Create the reader late, from the poller. It starts at LATEST whatever start_at says:
 * while it did not exist the cache was bypassed, so nothing was cached and the cache is
 * empty now; records older than this moment cannot invalidate anything in it. */
static scache_err stream_connect(stream_box *box, scache_poll_info *info)
{
	scache_reader_callbacks cb = box_callbacks(box);
	scache_err err = scache_reader_new(&box->config, SCACHE_START_LATEST, &cb, &box->reader,
	                                   info->message, sizeof info->message);
	scache_reader_stats st;
	scache_reader_stats_get(box->reader, &st); /* zeroed when the reader is NULL */
	info->calls = st.calls;
	info->err = err;
	if (!err)
		info->message[0] = '\0';
	return err;
}

static scache_err stream_drain(void *arg, scache_middleware *mw, uint64_t since_ns,
                               scache_poll_info *info)
{
	stream_box *box = arg;
	box->mw = mw;
	/* Being positioned counts as caught up, as for a reader created at startup. */
	if (!box->reader)
		return stream_connect(box, info);
	scache_reader_stats before, after;
	scache_reader_stats_get(box->reader, &before);
	scache_err err = scache_reader_sync(box->reader, since_ns, 0, info);
	scache_reader_stats_get(box->reader, &after);
	if (after.throttled > before.throttled)
		scache_middleware_note_throttled(mw);
	if (err == SCACHE_OK && info->err != SCACHE_OK)
		err = info->err;
	return err;
}

static scache_err stream_publish(void *arg, const char *const *keys, const size_t *lens, size_t n)
{
	stream_box *box = arg;
	return scache_publish_keys(box->publisher, keys, lens, n, NULL);
}

/* The string fields of a stream config, to copy and free them together. */
static const char **config_field(scache_stream_config *c, size_t i)
{
	const char **fields[] = {&c->stream_name,       &c->region,
	                         &c->endpoint,          &c->access_key_id,
	                         &c->secret_access_key, &c->session_token};
	return i < sizeof fields / sizeof fields[0] ? fields[i] : NULL;
}

static void config_clear(scache_stream_config *c)
{
	const char **f;
	for (size_t i = 0; (f = config_field(c, i)) != NULL; i++) {
		if (*f) {
			char *p = (char *)*f;
			explicit_bzero(p, strlen(p)); /* secrets do not linger in freed memory */
			free(p);
			*f = NULL;
		}
	}
}

static scache_err config_copy(scache_stream_config *dst, const scache_stream_config *src)
{
	*dst = *src;
	const char **f;
	for (size_t i = 0; (f = config_field(dst, i)) != NULL; i++)
		*f = NULL;
	for (size_t i = 0; (f = config_field(dst, i)) != NULL; i++) {
		const char *from = *config_field((scache_stream_config *)src, i);
		if (from && !(*f = strdup(from))) {
			config_clear(dst);
			return SCACHE_ENOMEM;
		}
	}
	return SCACHE_OK;
}

static void stream_destroy(void *arg)
{
	stream_box *box = arg;
	if (!box)
		return;
	scache_reader_free(box->reader);
	scache_publisher_free(box->publisher);
	config_clear(&box->config);
	free(box);
}

/* Errors of scache_reader_new that a later attempt cannot fix: fail at startup. */
static int reader_error_is_final(scache_err err)
{
	return err == SCACHE_ECONFIG || err == SCACHE_EINVAL || err == SCACHE_ENOMEM;
}

scache_err scache_middleware_new(const scache_middleware_config *config, scache_middleware **out,
                                 char *errbuf, size_t errlen)
{
	if (!config || !out) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "middleware: NULL argument");
		return SCACHE_EINVAL;
	}
	*out = NULL;
	if (!config->stream || !config->stream->stream_name || !config->stream->stream_name[0]) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen,
			         "middleware: config.stream with a stream_name is "
			         "required");
		return SCACHE_ECONFIG;
	}
	if (!config->cache || !config->handler) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen,
			         "middleware: config.cache and config.handler are "
			         "required");
		return SCACHE_ECONFIG;
	}
	stream_box *box = calloc(1, sizeof *box);
	if (!box)
		return SCACHE_ENOMEM;
	if (config_copy(&box->config, config->stream)) {
		free(box);
		return SCACHE_ENOMEM;
	}
	/* First the publisher: it makes no call, so its errors are configuration errors
	 * (no region, no credentials, a bad endpoint), which no retry would fix. */
	scache_err err = scache_publisher_new(&box->config, &box->publisher, errbuf, errlen);
	if (err) {
		stream_destroy(box);
		return err;
	}
	/* a stream recreated under the same name is noticed within half the staleness bound
	 * (the reader checks at most once a second) */
	if (!box->config.stream_check_interval_ms) {
		uint64_t bound_ms = config->max_staleness_ms
		                        ? config->max_staleness_ms
		                        : 10000; /* its default (middleware.h) */
		box->config.stream_check_interval_ms =
		    bound_ms / 2 > UINT_MAX ? UINT_MAX : (unsigned)(bound_ms / 2);
	}
	char why[256] = "";
	scache_reader_callbacks cb = box_callbacks(box);
	err = scache_reader_new(&box->config, config->start_at, &cb, &box->reader, why, sizeof why);
	if (err && reader_error_is_final(err)) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "%s", why);
		stream_destroy(box);
		return err;
	}
	/* Any other failure (unreachable, throttled, ResourceNotFoundException: the stream
	 * may be created later) leaves box->reader NULL: the middleware starts bypassed and
	 * stream_drain retries. */
	scache_stream_ops ops = {.drain = stream_drain,
	                         .publish = stream_publish,
	                         .destroy = stream_destroy,
	                         .arg = box,
	                         .unavailable = err ? (why[0] ? why : scache_strerror(err)) : NULL};
	return scache_middleware_new_with_ops(config, &ops, out, errbuf, errlen);
}
