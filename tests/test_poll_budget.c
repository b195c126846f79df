/*
 * A poll interval the poll budget cannot keep (issue 8, defect 2): with poll_interval_ms
 * shorter than 1000 / max_polls_per_second, polls cannot start often enough and requests
 * wait for them. The middleware refuses such a configuration, naming both settings.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "scache/scache.h"

static enum MHD_Result no_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
	(void)cls, (void)connection, (void)url, (void)method, (void)version;
	(void)upload_data, (void)upload_data_size, (void)req_cls;
	return MHD_NO;
}

/* scache_middleware_new's outcome for (interval, budget), its message into err. */
static scache_err create(uint64_t interval_ms, unsigned budget, uint64_t staleness_ms, char *err,
                         size_t errlen)
{
	scache_cache *cache;
	scache_source *src;
	scache_middleware *mw = NULL;
	cr_assert_eq(scache_cache_new(NULL, &cache), SCACHE_OK);
	cr_assert_eq(scache_memory_source_new(&src), SCACHE_OK);
	scache_middleware_config mc = {.cache = cache,
	                               .source = src,
	                               .handler = no_handler,
	                               .poll_interval_ms = interval_ms,
	                               .max_polls_per_second = budget,
	                               .max_staleness_ms = staleness_ms,
	                               .quiet_requests = 1};
	err[0] = '\0';
	scache_err e = scache_middleware_new(&mc, &mw, err, errlen);
	cr_assert_eq(e != SCACHE_OK, mw == NULL);
	scache_middleware_free(mw);
	scache_cache_free(cache);
	return e;
}

Test(poll_budget, an_interval_shorter_than_the_budget_period_is_refused_naming_both)
{
	char err[512];
	cr_assert_eq(create(100, 0, 0, err, sizeof err), SCACHE_ECONFIG); /* default 5/s */
	cr_assert_str_eq(err, "middleware: poll_interval_ms 100 is shorter than the poll budget "
	                      "allows (max_polls_per_second 5: one poll every 200 ms), so "
	                      "requests would wait for polls: set poll_interval_ms to at least 200 "
	                      "or max_polls_per_second to at least 10");
	cr_assert_eq(create(199, 5, 0, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_eq(create(60, 0, 30, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "poll_interval_ms 30 (capped by max_staleness_ms)"), "%s", err);
	cr_assert(strstr(err, "max_polls_per_second to at least 34"), "%s", err);
}

Test(poll_budget, an_interval_the_budget_can_keep_is_accepted)
{
	char err[512];
	cr_assert_eq(create(200, 5, 0, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_eq(create(100, 10, 0, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_eq(create(0, 5, 0, err, sizeof err), SCACHE_OK, "strict: %s", err);
	cr_assert_eq(create(1, 1000, 0, err, sizeof err), SCACHE_OK, "%s", err);
}
