/*
 * source.c: the invalidation source interface (scache/source.h), a table of functions
 * and the state it works on, and its simplest implementation, the in-memory source: a
 * queue of what the program pushed, delivered by the next sync, with failures and gaps
 * on demand. Kinesis polling is the other implementation (kinesis_source.c).
 */
#include "source_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scache_source {
	const scache_source_ops *ops;
	void *self;
};

scache_err scache_source_new(const scache_source_ops *ops, void *self, scache_source **out)
{
	if (!ops || !ops->sync || !ops->publish || !out) {
		if (ops && ops->destroy)
			ops->destroy(self);
		return SCACHE_EINVAL;
	}
	scache_source *s = malloc(sizeof *s);
	if (!s) {
		if (ops->destroy)
			ops->destroy(self);
		return SCACHE_ENOMEM;
	}
	s->ops = ops;
	s->self = self;
	*out = s;
	return SCACHE_OK;
}

void scache_source_free(scache_source *source)
{
	if (!source)
		return;
	if (source->ops->destroy)
		source->ops->destroy(source->self);
	free(source);
}

scache_err scache_source_sync(scache_source *source, uint64_t since_ns, const scache_sink *sink,
                              scache_poll_info *info)
{
	scache_poll_info scratch;
	if (!info)
		info = &scratch;
	memset(info, 0, sizeof *info);
	if (!source || !sink || !sink->keys || !sink->gap)
		return SCACHE_EINVAL;
	scache_err err = source->ops->sync(source->self, since_ns, sink, info);
	if (err == SCACHE_OK && info->err != SCACHE_OK)
		err = info->err;
	if (err != SCACHE_OK && info->err == SCACHE_OK)
		info->err = err;
	return err;
}

scache_err source_publish(scache_source *source, const char *const *keys, const size_t *lens,
                          size_t n, char *errbuf, size_t errlen)
{
	if (errbuf && errlen)
		errbuf[0] = '\0';
	return source->ops->publish(source->self, keys, lens, n, errbuf, errlen);
}

const char *source_unavailable(scache_source *source)
{
	return source->ops->unavailable ? source->ops->unavailable(source->self) : NULL;
}

void scache_source_stats_get(scache_source *source, scache_source_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof *out);
	if (source && source->ops->stats)
		source->ops->stats(source->self, out);
}

const char *scache_source_name(const scache_source *source)
{
	return source && source->ops->name ? source->ops->name : "source";
}

/* ---- The in-memory source ----------------------------------------------------------- */

typedef struct pushed {
	char *key;
	size_t key_len;
	void *value; /* a refresh when has_value */
	size_t len;
	int has_value;
} pushed;

typedef struct memory {
	pthread_mutex_t mu;
	pushed *queue;
	size_t n, cap;
	scache_err fail;
	char fail_why[200];
	int gap;
	char gap_why[200];
	scache_source_stats stats;
} memory;

static void pushed_clear(pushed *p)
{
	free(p->key);
	free(p->value);
}

/* Append one item; mu held. */
static scache_err memory_append(memory *m, const char *key, size_t key_len, const void *value,
                                size_t len, int has_value)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 16;
		pushed *q = realloc(m->queue, cap * sizeof *q);
		if (!q)
			return SCACHE_ENOMEM;
		m->queue = q;
		m->cap = cap;
	}
	pushed p = {.key = malloc(key_len + 1), .key_len = key_len, .has_value = has_value};
	if (has_value)
		p.value = malloc(len ? len : 1);
	if (!p.key || (has_value && !p.value)) {
		pushed_clear(&p);
		return SCACHE_ENOMEM;
	}
	memcpy(p.key, key, key_len);
	p.key[key_len] = '\0';
	if (has_value && len)
		memcpy(p.value, value, len);
	p.len = len;
	m->queue[m->n++] = p;
	return SCACHE_OK;
}

static scache_err memory_sync(void *self, uint64_t since_ns, const scache_sink *sink,
                              scache_poll_info *info)
{
	(void)since_ns; /* everything pushed so far was pushed before this sync began */
	memory *m = self;
	pthread_mutex_lock(&m->mu);
	m->stats.syncs++;
	if (m->fail != SCACHE_OK) {
		scache_err err = m->fail;
		info->err = err;
		snprintf(info->message, sizeof info->message, "%s",
		         m->fail_why[0] ? m->fail_why : scache_strerror(err));
		m->stats.errors++;
		pthread_mutex_unlock(&m->mu);
		return err;
	}
	pushed *q = m->queue;
	size_t n = m->n;
	int gap = m->gap;
	char why[200];
	memcpy(why, m->gap_why, sizeof why);
	m->queue = NULL;
	m->n = m->cap = 0;
	m->gap = 0;
	m->stats.records += n;
	m->stats.gaps += (uint64_t)gap;
	pthread_mutex_unlock(&m->mu);

	/* deliver in the order pushed, outside the lock (pushes may go on meanwhile) */
	if (gap) {
		info->gap = 1;
		sink->gap(sink->arg, why[0] ? why : "gap reported by the in-memory source");
	}
	uint64_t keys = 0;
	for (size_t i = 0; i < n; i++) {
		pushed *p = &q[i];
		if (p->has_value && sink->value) {
			sink->value(sink->arg, p->key, p->key_len, p->value, p->len);
		} else {
			const char *k = p->key;
			sink->keys(sink->arg, &k, &p->key_len, 1);
		}
		keys++;
		pushed_clear(p);
	}
	free(q);
	info->records = n;
	info->keys = keys;
	pthread_mutex_lock(&m->mu);
	m->stats.keys += keys;
	pthread_mutex_unlock(&m->mu);
	return SCACHE_OK;
}

static scache_err memory_publish(void *self, const char *const *keys, const size_t *lens, size_t n,
                                 char *errbuf, size_t errlen)
{
	memory *m = self;
	scache_err err = SCACHE_OK;
	pthread_mutex_lock(&m->mu);
	if (m->fail != SCACHE_OK) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "%s",
			         m->fail_why[0] ? m->fail_why : scache_strerror(m->fail));
		err = SCACHE_EPUBLISH;
	}
	for (size_t i = 0; i < n && err == SCACHE_OK; i++)
		err = memory_append(m, keys[i], lens[i], NULL, 0, 0);
	pthread_mutex_unlock(&m->mu);
	return err;
}

static void memory_stats(void *self, scache_source_stats *out)
{
	memory *m = self;
	pthread_mutex_lock(&m->mu);
	*out = m->stats;
	pthread_mutex_unlock(&m->mu);
}

static void memory_destroy(void *self)
{
	memory *m = self;
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		pushed_clear(&m->queue[i]);
	free(m->queue);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static const scache_source_ops memory_ops = {
    .name = "memory",
    .sync = memory_sync,
    .publish = memory_publish,
    .stats = memory_stats,
    .destroy = memory_destroy,
};

scache_err scache_memory_source_new(scache_source **out)
{
	if (!out)
		return SCACHE_EINVAL;
	*out = NULL;
	memory *m = calloc(1, sizeof *m);
	if (!m)
		return SCACHE_ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	return scache_source_new(&memory_ops, m, out);
}

static memory *memory_of(scache_source *source)
{
	return source && source->ops == &memory_ops ? source->self : NULL;
}

scache_err scache_memory_source_push(scache_source *source, const char *const *keys,
                                     const size_t *lens, size_t n)
{
	memory *m = memory_of(source);
	if (!m || (n && (!keys || !lens)))
		return SCACHE_EINVAL;
	scache_err err = SCACHE_OK;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < n && err == SCACHE_OK; i++)
		err = keys[i] ? memory_append(m, keys[i], lens[i], NULL, 0, 0) : SCACHE_EINVAL;
	pthread_mutex_unlock(&m->mu);
	return err;
}

scache_err scache_memory_source_push_value(scache_source *source, const char *key, size_t key_len,
                                           const void *value, size_t len)
{
	memory *m = memory_of(source);
	if (!m || !key || (len && !value))
		return SCACHE_EINVAL;
	pthread_mutex_lock(&m->mu);
	scache_err err = memory_append(m, key, key_len, value, len, 1);
	pthread_mutex_unlock(&m->mu);
	return err;
}

void scache_memory_source_fail(scache_source *source, scache_err err, const char *why)
{
	memory *m = memory_of(source);
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->fail = err;
	snprintf(m->fail_why, sizeof m->fail_why, "%s", why ? why : "");
	pthread_mutex_unlock(&m->mu);
}

void scache_memory_source_gap(scache_source *source, const char *why)
{
	memory *m = memory_of(source);
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->gap = 1;
	snprintf(m->gap_why, sizeof m->gap_why, "%s", why ? why : "");
	pthread_mutex_unlock(&m->mu);
}
