/* Data IDs: pinned to the reference table of scache's data.ID encoding
 * (shared/reference/wire-formats.md, section 1). */
#include <criterion/criterion.h>
#include <scache/id.h>

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

struct vector {
	const char *source, *id, *encoded;
};

static const struct vector reference[] = {
	{"db.table.id", "12345", "id=12345&s=db.table.id&t=data.ID"},
	{"db.users.id", "a b/c~d*e&\xc3\xa9", "id=a+b%2Fc~d%2Ae%26%C3%A9&s=db.users.id&t=data.ID"},
	{"", "x", "id=x&s=&t=data.ID"},
};

Test(id, encodes_the_reference_table_byte_for_byte)
{
	for (size_t i = 0; i < sizeof reference / sizeof reference[0]; i++) {
		const struct vector *v = &reference[i];
		char buf[256];
		size_t n = scache_id_encode(v->source, strlen(v->source), v->id, strlen(v->id), buf,
		                            sizeof buf);
		cr_assert_eq(n, strlen(v->encoded));
		cr_assert_str_eq(buf, v->encoded);
	}
}

Test(id, parses_the_reference_table)
{
	for (size_t i = 0; i < sizeof reference / sizeof reference[0]; i++) {
		const struct vector *v = &reference[i];
		scache_id id;
		cr_assert_eq(scache_id_parse(v->encoded, strlen(v->encoded), &id), SCACHE_OK);
		cr_assert_str_eq(id.source, v->source);
		cr_assert_eq(id.source_len, strlen(v->source));
		cr_assert_str_eq(id.id, v->id);
		cr_assert_eq(id.id_len, strlen(v->id));
		scache_id_clear(&id);
	}
}

Test(id, encode_reports_the_size_like_snprintf_and_truncates_safely)
{
	const char *want = "id=12345&s=db.table.id&t=data.ID";
	cr_assert_eq(scache_id_encode("db.table.id", 11, "12345", 5, NULL, 0), strlen(want));
	char small[8];
	memset(small, 'X', sizeof small);
	cr_assert_eq(scache_id_encode("db.table.id", 11, "12345", 5, small, sizeof small),
	             strlen(want));
	cr_assert_str_eq(small, "id=1234");
}

Test(id, encode_alloc_returns_an_owned_string)
{
	char *s = NULL;
	size_t n = 0;
	cr_assert_eq(scache_id_encode_alloc("src", 3, "a b", 3, &s, &n), SCACHE_OK);
	cr_assert_str_eq(s, "id=a+b&s=src&t=data.ID");
	cr_assert_eq(n, strlen(s));
	free(s);
	cr_assert_eq(scache_id_encode_alloc(NULL, 1, "x", 1, &s, NULL), SCACHE_EINVAL);
	cr_assert_eq(scache_id_encode_alloc("x", 1, "x", 1, NULL, NULL), SCACHE_EINVAL);
}

Test(id, parse_accepts_any_order_and_ignores_unknown_pairs)
{
	const char *s = "t=data.ID&x=1&s=db.users.id&&id=7%20b+c";
	scache_id id;
	cr_assert_eq(scache_id_parse(s, strlen(s), &id), SCACHE_OK);
	cr_assert_str_eq(id.source, "db.users.id");
	cr_assert_str_eq(id.id, "7 b c");
	scache_id_clear(&id);
}

Test(id, parse_keeps_the_first_of_repeated_pairs_and_lowercase_hex)
{
	const char *s = "id=%2f1&id=2&s=a&t=data.ID";
	scache_id id;
	cr_assert_eq(scache_id_parse(s, strlen(s), &id), SCACHE_OK);
	cr_assert_str_eq(id.id, "/1");
	scache_id_clear(&id);
}

Test(id, a_missing_s_or_id_reads_as_empty)
{
	scache_id id;
	cr_assert_eq(scache_id_parse("t=data.ID", 9, &id), SCACHE_OK);
	cr_assert_str_eq(id.source, "");
	cr_assert_str_eq(id.id, "");
	scache_id_clear(&id);
}

Test(id, rejects_strings_that_are_not_data_ids)
{
	const char *not_ids[] = {"", "id=1&s=x", "id=1&s=x&t=other", "hello", "t=data.IDx"};
	for (size_t i = 0; i < sizeof not_ids / sizeof not_ids[0]; i++) {
		scache_id id = {.source = (char *)1};
		cr_assert_eq(scache_id_parse(not_ids[i], strlen(not_ids[i]), &id), SCACHE_ENOTID,
		             "%s", not_ids[i]);
		cr_assert_null(id.source);
		cr_assert_null(id.id);
	}
}

Test(id, rejects_malformed_escapes_with_a_clear_code)
{
	const char *bad[] = {"id=%&s=x&t=data.ID", "id=%4&s=x&t=data.ID", "id=%zz&s=x&t=data.ID",
	                     "id=1;s=x&t=data.ID", "id=1&s=x&t=data.ID%"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		scache_id id;
		cr_assert_eq(scache_id_parse(bad[i], strlen(bad[i]), &id), SCACHE_EMALFORMED, "%s",
		             bad[i]);
		cr_assert_null(id.source);
	}
	cr_assert_eq(scache_id_parse(NULL, 3, &(scache_id){0}), SCACHE_EINVAL);
	cr_assert_eq(scache_id_parse("t=data.ID", 9, NULL), SCACHE_EINVAL);
}

Test(id, strerror_names_the_parse_errors)
{
	cr_assert_str_eq(scache_strerror(SCACHE_ENOTID), "not a data ID (no t=data.ID pair)");
	cr_assert_str_eq(scache_strerror(SCACHE_EMALFORMED), "malformed data ID (bad escaping)");
	cr_assert_str_eq(scache_strerror((scache_err)9999), "unknown error");
}

/* Escapes only A-Z a-z 0-9 - _ . ~ pass unchanged; checked byte by byte over all 256. */
Test(id, escapes_every_byte_as_go_query_escape)
{
	for (int b = 0; b < 256; b++) {
		char in = (char)b, out[64];
		scache_id_encode("", 0, &in, 1, out, sizeof out);
		const char *val = out + 3; /* after "id=" */
		size_t vlen = strcspn(val, "&");
		int unreserved = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') ||
		                 (b >= '0' && b <= '9') || b == '-' || b == '_' || b == '.' || b == '~';
		if (unreserved) {
			cr_assert_eq(vlen, 1);
			cr_assert_eq(val[0], (char)b);
		} else if (b == ' ') {
			cr_assert_eq(vlen, 1);
			cr_assert_eq(val[0], '+');
		} else {
			char want[4];
			snprintf(want, sizeof want, "%%%02X", b);
			cr_assert_eq(vlen, 3, "byte %d", b);
			cr_assert_eq(memcmp(val, want, 3), 0, "byte %d", b);
		}
	}
}

Test(id, round_trips_random_byte_strings)
{
	unsigned seed = 12345;
	for (int round = 0; round < 2000; round++) {
		char src[40], idb[40];
		size_t sl = (size_t)(rand_r(&seed) % 40), il = (size_t)(rand_r(&seed) % 40);
		for (size_t i = 0; i < sl; i++)
			src[i] = (char)(rand_r(&seed) & 0xff);
		for (size_t i = 0; i < il; i++)
			idb[i] = (char)(rand_r(&seed) & 0xff);
		char *enc;
		size_t elen;
		cr_assert_eq(scache_id_encode_alloc(src, sl, idb, il, &enc, &elen), SCACHE_OK);
		scache_id id;
		cr_assert_eq(scache_id_parse(enc, elen, &id), SCACHE_OK, "%s", enc);
		cr_assert_eq(id.source_len, sl);
		cr_assert_eq(id.id_len, il);
		cr_assert_eq(memcmp(id.source, src, sl), 0);
		cr_assert_eq(memcmp(id.id, idb, il), 0);
		scache_id_clear(&id);
		free(enc);
	}
}
