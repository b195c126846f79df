/*
 * scache_middleware_new over the real stream: plugs the Kinesis reader (its keys and
 * gaps go to the middleware) and the publisher into the middleware's stream interface.
 * Kept apart from middleware.c so the middleware can be built and unit-tested with a
 * stand-in stream.
 */
#include "middleware_internal.h"

#include <stdlib.h>
#include <string.h>

/* The reader's callbacks need the middleware, which exists only after the reader is
 * created. Only the middleware's poller thread polls, through stream_drain, which hands
 * the middleware to the callbacks through the box before each poll. */
typedef struct stream_box {
	scache_reader *reader;
	scache_publisher *publisher;
	scache_middleware *mw; /* written and read by the poller thread only */
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

static scache_err stream_drain(void *arg, scache_middleware *mw, uint64_t since_ns,
                               scache_poll_info *info)
{
	stream_box *box = arg;
	box->mw = mw;
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

static void stream_destroy(void *arg)
{
	stream_box *box = arg;
	if (!box)
		return;
	scache_reader_free(box->reader);
	scache_publisher_free(box->publisher);
	free(box);
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
	scache_reader_callbacks cb = {.on_keys = box_keys, .on_gap = box_gap, .arg = box};
	scache_err err =
	    scache_reader_new(config->stream, config->start_at, &cb, &box->reader, errbuf, errlen);
	if (!err)
		err = scache_publisher_new(config->stream, &box->publisher, errbuf, errlen);
	if (err) {
		stream_destroy(box);
		return err;
	}
	scache_stream_ops ops = {.drain = stream_drain,
	                         .publish = stream_publish,
	                         .destroy = stream_destroy,
	                         .arg = box};
	return scache_middleware_new_with_ops(config, &ops, out, errbuf, errlen);
}
