/* The request helpers outside a request, and the X-Cache helper: what a handler gets when
 * it has no request (SCACHE_ENOREQUEST, not SCACHE_EINVAL), and the header it sets. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "scache/scache.h"

static scache_err never_called(void *arg, void **value, size_t *len)
{
	(void)arg;
	(void)value;
	(void)len;
	cr_assert_fail("the loader ran without a request");
	return SCACHE_OK;
}

Test(helpers, without_a_request_every_helper_says_so)
{
	scache_value v;
	void *val = (void *)1;
	size_t len = 1;
	const char *src = "s", *id = "1";
	scache_value vals[1];
	scache_err errs[1];
	cr_assert_eq(scache_get(NULL, "s", "1", &v), SCACHE_ENOREQUEST);
	cr_assert_null(v.data);
	cr_assert_eq(scache_add(NULL, "s", "1", "v", 1, 0), SCACHE_ENOREQUEST);
	cr_assert_eq(scache_add_ttl(NULL, "s", "1", "v", 1, 0, 5, 5), SCACHE_ENOREQUEST);
	cr_assert_eq(scache_get_or_load(NULL, "s", "1", never_called, NULL, &val, &len, NULL),
	             SCACHE_ENOREQUEST);
	cr_assert_eq(
	    scache_get_or_load_ttl(NULL, "s", "1", never_called, NULL, NULL, &val, &len, NULL),
	    SCACHE_ENOREQUEST);
	cr_assert_eq(scache_get_many(NULL, &src, &id, 1, vals, errs), SCACHE_ENOREQUEST);
	cr_assert_eq(errs[0], SCACHE_ENOTFOUND);
	cr_assert_eq(scache_invalidate(NULL, "s", "1"), SCACHE_ENOREQUEST);
	cr_assert_eq(scache_invalidate_many(NULL, &src, &id, 1), SCACHE_ENOREQUEST);
	cr_assert_eq(scache_invalidate(scache_request_current(), "s", "1"), SCACHE_ENOREQUEST);
	/* a missing output is still an invalid argument */
	cr_assert_eq(scache_get(NULL, "s", "1", NULL), SCACHE_EINVAL);
	cr_assert_eq(scache_get_or_load(NULL, "s", "1", NULL, NULL, &val, &len, NULL),
	             SCACHE_EINVAL);
	cr_assert_str_eq(scache_strerror(SCACHE_ENOREQUEST),
	                 "no current request (called outside a handler the middleware runs?)");
	cr_assert_eq(SCACHE_ENOREQUEST + 1, SCACHE_ERR_COUNT_);
}

Test(helpers, x_cache_names_the_outcome)
{
	static const struct {
		scache_outcome oc;
		const char *want;
	} cases[] = {{SCACHE_OUTCOME_HIT, "HIT"},
	             {SCACHE_OUTCOME_MISS, "MISS"},
	             {SCACHE_OUTCOME_BYPASS, "BYPASS"}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct MHD_Response *r =
		    MHD_create_response_from_buffer(2, (void *)"{}", MHD_RESPMEM_PERSISTENT);
		cr_assert_not_null(r);
		cr_assert_eq(scache_response_add_xcache(r, cases[i].oc), MHD_YES);
		const char *got = MHD_get_response_header(r, "X-Cache");
		cr_assert_not_null(got);
		cr_assert_str_eq(got, cases[i].want);
		cr_assert_eq(scache_response_add_xcache(r, (scache_outcome)7), MHD_NO);
		MHD_destroy_response(r);
	}
	cr_assert_eq(scache_response_add_xcache(NULL, SCACHE_OUTCOME_HIT), MHD_NO);
}

const char *metrics_number(char *buf, size_t len, double v); /* lib/metrics.c */

Test(helpers, metrics_print_the_shortest_number_that_reads_back)
{
	char buf[32];
	cr_assert_str_eq(metrics_number(buf, sizeof buf, 10470414 / 1e9), "0.010470414");
	cr_assert_str_eq(metrics_number(buf, sizeof buf, 0.1 + 0.2), "0.30000000000000004");
	cr_assert_str_eq(metrics_number(buf, sizeof buf, 12345.0), "12345");
	cr_assert_str_eq(metrics_number(buf, sizeof buf, 0.0), "0");
	cr_assert_str_eq(metrics_number(buf, sizeof buf, 18446744073709551615.0),
	                 "1.8446744073709552e+19");
	/* whatever the value, the text reads back exactly */
	double vs[] = {1.0 / 3, 2.0 / 3, 1e-300, 123456789.123456789, 5e-324};
	for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
		cr_assert_eq(strtod(metrics_number(buf, sizeof buf, vs[i]), NULL), vs[i]);
}
