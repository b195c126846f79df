/*
 * loads.c: the handler helpers: scache_get, scache_add, scache_get_or_load and the
 * invalidate calls, over the request context.
 *
 * scache_add uses a token taken when the handler started (after the drain), so data
 * read in the handler is protected by the cache's stale-add guard. scache_get_or_load
 * takes its own token just before its loader runs and lets one loader run per key (a
 * flight); waiters share its result only when it cannot be stale for them, and wait at
 * most load_wait_ms for it. Invalidations remove locally first, then publish.
 */

/* A flight that cannot be added to the table (out of memory) fails the call with
 * SCACHE_ENOMEM; uthash's default would end the process. Defined before uthash.h. */
static _Thread_local int flights_oomed;
#define HASH_NONFATAL_OOM        1
#define uthash_nonfatal_oom(obj) ((void)(obj), flights_oomed = 1)

#include "middleware_internal.h"

#include "echoes.h"

#include "scache/id.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct flight {
	char *key;
	UT_hash_handle hh;
	pthread_cond_t cv;
	int done;
	unsigned refs;
	uint64_t token; /* taken before the load */
	int added;      /* the result went into the cache */
	scache_err err;
	void *val; /* copy for waiters */
	size_t len;
} flight;

/* ---- Handler helpers ------------------------------------------------------------- */

/* Whether the request may read the cache: it waited for its poll, or went on without
 * waiting (empty cache) and that poll has since succeeded. */
static int request_synced(scache_request *req)
{
	if (!req->unsynced)
		return 1;
	scache_middleware *mw = req->mw;
	pthread_mutex_lock(&mw->mu);
	int ok = mw->last_ok_ns >= req->since_ns;
	pthread_mutex_unlock(&mw->mu);
	if (ok)
		req->unsynced = 0;
	return ok;
}

static scache_err encode_key(const char *source, const char *id, char **key, size_t *len)
{
	if (!source || !id)
		return SCACHE_EINVAL;
	return scache_id_encode_alloc(source, strlen(source), id, strlen(id), key, len);
}

scache_err scache_get(scache_request *req, const char *source, const char *id, scache_value *out)
{
	if (!req || !out) {
		if (out)
			memset(out, 0, sizeof *out);
		return out ? SCACHE_ENOREQUEST : SCACHE_EINVAL;
	}
	memset(out, 0, sizeof *out);
	mw_drain_now(req);
	if (req->bypass) {
		req->misses++;
		return SCACHE_EBYPASS;
	}
	char *key;
	size_t len;
	scache_err err = encode_key(source, id, &key, &len);
	if (err)
		return err;
	err = request_synced(req) ? scache_cache_get(req->mw->cfg.cache, key, len, out)
	                          : SCACHE_ENOTFOUND;
	free(key);
	if (err == SCACHE_OK) {
		req->hits++;
		req->saved_ns += out->saved_ns;
	} else if (err == SCACHE_ENOTFOUND) {
		req->misses++;
	}
	return err;
}

scache_err scache_add(scache_request *req, const char *source, const char *id, const void *value,
                      size_t len, uint64_t saved_ns)
{
	return scache_add_ttl(req, source, id, value, len, saved_ns, 0, 0);
}

scache_err scache_add_ttl(scache_request *req, const char *source, const char *id,
                          const void *value, size_t len, uint64_t saved_ns, uint64_t min_ttl_ms,
                          uint64_t max_ttl_ms)
{
	if (!req)
		return SCACHE_ENOREQUEST;
	mw_drain_now(req); /* strict: a request that could not see the stream does not add */
	if (req->bypass)
		return SCACHE_EBYPASS;
	char *key;
	size_t klen;
	scache_err err = encode_key(source, id, &key, &klen);
	if (err)
		return err;
	scache_add_opts opts = {.token = req->token,
	                        .saved_ns = saved_ns,
	                        .min_ttl_ms = min_ttl_ms,
	                        .max_ttl_ms = max_ttl_ms};
	err = scache_cache_add(req->mw->cfg.cache, key, klen, value, len, &opts);
	free(key);
	return err;
}

static void *copy_bytes(const void *p, size_t n)
{
	void *c = malloc(n ? n : 1);
	if (c && n)
		memcpy(c, p, n);
	return c;
}

static void flight_release(flight *f)
{
	/* flight_mu held */
	if (--f->refs == 0) {
		pthread_cond_destroy(&f->cv);
		free(f->val);
		free(f->key);
		free(f);
	}
}

/* Run the loader and add its result under a token taken just before it. Sets *added. */
static scache_err load_and_add(scache_request *req, const char *key, size_t klen,
                               scache_loader_fn loader, void *loader_arg, const uint64_t *ttl_ms,
                               void **value, size_t *len, uint64_t *token, int *added)
{
	scache_middleware *mw = req->mw;
	*token = scache_cache_begin_load(mw->cfg.cache);
	*value = NULL;
	*len = 0;
	uint64_t t0 = scache_now_ns(NULL);
	scache_err err = loader(loader_arg, value, len);
	uint64_t took = scache_now_ns(NULL) - t0;
	*added = 0;
	if (err == SCACHE_OK && !req->bypass) {
		scache_add_opts opts = {.token = *token, .saved_ns = took};
		if (ttl_ms && *ttl_ms) /* read after the loader: it may choose the lifetime */
			opts.min_ttl_ms = opts.max_ttl_ms = *ttl_ms;
		*added =
		    scache_cache_add(mw->cfg.cache, key, klen, *value, *len, &opts) == SCACHE_OK;
	}
	return err;
}

/* Lead a load of key: run the loader, add its result, publish it to waiters. */
static scache_err lead_load(scache_request *req, flight *f, const char *key, size_t klen,
                            scache_loader_fn loader, void *loader_arg, const uint64_t *ttl_ms,
                            void **value, size_t *len)
{
	scache_middleware *mw = req->mw;
	void *v;
	size_t n;
	uint64_t token;
	int added;
	scache_err err =
	    load_and_add(req, key, klen, loader, loader_arg, ttl_ms, &v, &n, &token, &added);

	pthread_mutex_lock(&mw->flight_mu);
	f->done = 1;
	f->token = token;
	f->added = added;
	f->err = err;
	if (err == SCACHE_OK && f->refs > 1) {
		f->val = copy_bytes(v, n);
		f->len = n;
		if (!f->val)
			f->err = SCACHE_ENOMEM; /* waiters load themselves */
	}
	HASH_DEL(mw->flights, f);
	pthread_cond_broadcast(&f->cv);
	flight_release(f);
	pthread_mutex_unlock(&mw->flight_mu);

	if (err == SCACHE_OK) {
		*value = v;
		*len = n;
	} else {
		free(v);
	}
	return err;
}

scache_err scache_get_or_load(scache_request *req, const char *source, const char *id,
                              scache_loader_fn loader, void *loader_arg, void **value, size_t *len,
                              scache_outcome *outcome)
{
	return mw_get_or_load(req, source, id, loader, loader_arg, NULL, value, len, outcome);
}

scache_err mw_get_or_load(scache_request *req, const char *source, const char *id,
                          scache_loader_fn loader, void *loader_arg, const uint64_t *ttl_ms,
                          void **value, size_t *len, scache_outcome *outcome)
{
	if (!loader || !value || !len)
		return SCACHE_EINVAL;
	if (!req)
		return SCACHE_ENOREQUEST;
	*value = NULL;
	*len = 0;
	scache_outcome oc = SCACHE_OUTCOME_MISS;
	if (outcome)
		*outcome = oc;
	scache_middleware *mw = req->mw;
	mw_drain_now(req);
	if (req->bypass) {
		req->misses++;
		if (outcome)
			*outcome = SCACHE_OUTCOME_BYPASS;
		return loader(loader_arg, value, len);
	}
	char *key;
	size_t klen;
	scache_err err = encode_key(source, id, &key, &klen);
	if (err)
		return err;

	for (;;) {
		scache_value v;
		int synced = request_synced(req);
		err = synced ? scache_cache_get(mw->cfg.cache, key, klen, &v) : SCACHE_ENOTFOUND;
		if (err == SCACHE_OK) {
			*value = copy_bytes(v.data, v.len);
			*len = v.len;
			uint64_t saved = v.saved_ns;
			scache_value_release(&v);
			if (!*value) {
				err = SCACHE_ENOMEM;
				break;
			}
			req->hits++;
			req->saved_ns += saved;
			oc = SCACHE_OUTCOME_HIT;
			break;
		}
		if (err != SCACHE_ENOTFOUND)
			break;

		pthread_mutex_lock(&mw->flight_mu);
		flight *f = NULL;
		HASH_FIND(hh, mw->flights, key, klen, f);
		if (!f) {
			f = calloc(1, sizeof *f);
			if (!f || mw_init_cond(&f->cv)) {
				pthread_mutex_unlock(&mw->flight_mu);
				free(f);
				err = SCACHE_ENOMEM;
				break;
			}
			f->key = key; /* the flight owns the key from here */
			f->refs = 1;
			flights_oomed = 0;
			HASH_ADD_KEYPTR(hh, mw->flights, f->key, klen, f);
			if (flights_oomed) {
				pthread_mutex_unlock(&mw->flight_mu);
				pthread_cond_destroy(&f->cv);
				free(f); /* not the key: freed below */
				err = SCACHE_ENOMEM;
				break;
			}
			pthread_mutex_unlock(&mw->flight_mu);
			req->misses++;
			/* lead_load uses the key only before it drops the flight's reference */
			err = lead_load(req, f, key, klen, loader, loader_arg, ttl_ms, value, len);
			if (outcome)
				*outcome = oc;
			return err;
		}
		f->refs++;
		/* Wait for the leader, but not forever: a hung loader must not block every
		 * request for its ID. Past load_wait_ms, load alone (not as a flight). */
		struct timespec until =
		    mw_timespec(scache_now_ns(NULL) + mw->cfg.load_wait_ms * NS_PER_MS);
		while (!f->done)
			if (pthread_cond_timedwait(&f->cv, &mw->flight_mu, &until) == ETIMEDOUT)
				break;
		if (!f->done) {
			flight_release(f);
			pthread_mutex_unlock(&mw->flight_mu);
			req->misses++;
			uint64_t token;
			int added;
			err = load_and_add(req, key, klen, loader, loader_arg, ttl_ms, value, len,
			                   &token, &added);
			break;
		}
		/* Its load is good for us if it began after our drain, or if no invalidation of
		 * the key was applied after it began (the add was accepted) and we are synced. */
		int usable = (f->added && synced) || f->token > req->token;
		scache_err ferr = f->err;
		if (usable && ferr == SCACHE_OK) {
			*value = copy_bytes(f->val, f->len);
			*len = f->len;
			if (!*value)
				ferr = SCACHE_ENOMEM;
		}
		flight_release(f);
		pthread_mutex_unlock(&mw->flight_mu);
		if (usable && ferr != SCACHE_ENOMEM) {
			req->misses++;
			err = ferr;
			break;
		}
		/* else: load again, ourselves or behind a newer leader */
	}
	free(key);
	if (outcome)
		*outcome = oc;
	if (err && *value) {
		free(*value);
		*value = NULL;
		*len = 0;
	}
	return err;
}

scache_err scache_middleware_invalidate(scache_middleware *mw, const char *const *sources,
                                        const char *const *ids, size_t n)
{
	return scache_middleware_invalidate_why(mw, sources, ids, n, NULL, 0);
}

scache_err scache_middleware_invalidate_why(scache_middleware *mw, const char *const *sources,
                                            const char *const *ids, size_t n, char *errbuf,
                                            size_t errlen)
{
	mw_set_err(errbuf, errlen, "");
	if (!mw || (n > 0 && (!sources || !ids))) {
		mw_set_err(errbuf, errlen, "invalidate: NULL argument");
		return SCACHE_EINVAL;
	}
	if (n == 0)
		return SCACHE_OK;
	char **keys = calloc(n, sizeof *keys);
	size_t *lens = calloc(n, sizeof *lens);
	scache_err err = keys && lens ? SCACHE_OK : SCACHE_ENOMEM;
	for (size_t i = 0; i < n && !err; i++)
		err = encode_key(sources[i], ids[i], &keys[i], &lens[i]);
	if (err && errbuf && errlen > 0)
		snprintf(errbuf, errlen, "invalidate: an ID cannot be encoded: %s",
		         scache_strerror(err));
	if (!err) {
		/* Remove locally first, whatever the publish will do: this instance must not
		 * serve the old data during a slow or failing publish (its tombstones also
		 * refuse adds of loads that began before now). */
		err = scache_cache_invalidate_many(mw->cfg.cache, (const void *const *)keys, lens,
		                                   n, NULL);
		/* Their echo (this publish read back) is expected: what is cached then was
		 * loaded after this removal (echoes.c), so the echo must not evict it. Noted
		 * before publishing: a poll may read the record before the publish returns. */
		if (!err)
			echoes_note(mw->echoes, (const char *const *)keys, lens, n,
			            scache_now_ns(NULL));
		char why[256] = "";
		scache_err perr =
		    source_publish(mw->src, (const char *const *)keys, lens, n, why, sizeof why);
		pthread_mutex_lock(&mw->stats_mu);
		if (perr)
			mw->totals.publish_errors++;
		else
			mw->totals.published_keys += n;
		pthread_mutex_unlock(&mw->stats_mu);
		if (perr) {
			char msg[400];
			snprintf(msg, sizeof msg,
			         "%zu invalidation(s) could not be published (%s); removed here "
			         "only, other instances keep them until they expire",
			         n, why[0] ? why : scache_strerror(perr));
			efficiency_warning(mw, msg);
			mw_publish_failed(mw);
			mw_set_err(errbuf, errlen, why[0] ? why : scache_strerror(perr));
			err = perr;
		}
	}
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	free(lens);
	return err;
}

scache_err scache_invalidate(scache_request *req, const char *source, const char *id)
{
	if (!req)
		return SCACHE_ENOREQUEST;
	return scache_middleware_invalidate(req->mw, &source, &id, 1);
}

scache_err scache_invalidate_why(scache_request *req, const char *source, const char *id,
                                 char *errbuf, size_t errlen)
{
	if (!req) {
		mw_set_err(errbuf, errlen, scache_strerror(SCACHE_ENOREQUEST));
		return SCACHE_ENOREQUEST;
	}
	return scache_middleware_invalidate_why(req->mw, &source, &id, 1, errbuf, errlen);
}

scache_err scache_invalidate_many(scache_request *req, const char *const *sources,
                                  const char *const *ids, size_t n)
{
	if (!req)
		return SCACHE_ENOREQUEST;
	return scache_middleware_invalidate(req->mw, sources, ids, n);
}

unsigned mw_test_flight_refs(scache_middleware *mw, const char *key)
{
	pthread_mutex_lock(&mw->flight_mu);
	flight *f = NULL;
	HASH_FIND(hh, mw->flights, key, strlen(key), f);
	unsigned refs = f ? f->refs : 0;
	pthread_mutex_unlock(&mw->flight_mu);
	return refs;
}

/* ---- More helpers: lifetimes, batches, X-Cache --------------------------------------- */

scache_err scache_get_or_load_ttl(scache_request *req, const char *source, const char *id,
                                  scache_loader_fn loader, void *loader_arg, const uint64_t *ttl_ms,
                                  void **value, size_t *len, scache_outcome *outcome)
{
	return mw_get_or_load(req, source, id, loader, loader_arg, ttl_ms, value, len, outcome);
}

scache_err scache_get_many(scache_request *req, const char *const *sources, const char *const *ids,
                           size_t n, scache_value *out, scache_err *errs)
{
	if (n && (!sources || !ids || !out || !errs))
		return SCACHE_EINVAL;
	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof out[i]);
		errs[i] = SCACHE_ENOTFOUND;
	}
	if (!req)
		return SCACHE_ENOREQUEST;
	for (size_t i = 0; i < n; i++) {
		scache_err err = scache_get(req, sources[i], ids[i], &out[i]);
		if (err != SCACHE_OK && err != SCACHE_ENOTFOUND && err != SCACHE_EBYPASS) {
			/* all or nothing: give back what was found */
			for (size_t j = 0; j < i; j++)
				scache_value_release(&out[j]);
			for (size_t j = 0; j < n; j++)
				errs[j] = SCACHE_ENOTFOUND;
			return err;
		}
		errs[i] = err;
	}
	return SCACHE_OK;
}

enum MHD_Result scache_response_add_xcache(struct MHD_Response *response, scache_outcome outcome)
{
	static const char *const names[] = {
	    [SCACHE_OUTCOME_MISS] = "MISS",
	    [SCACHE_OUTCOME_HIT] = "HIT",
	    [SCACHE_OUTCOME_BYPASS] = "BYPASS",
	};
	if (!response || (unsigned)outcome >= sizeof names / sizeof names[0])
		return MHD_NO;
	return MHD_add_response_header(response, "X-Cache", names[outcome]);
}
