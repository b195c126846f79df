/* DynamoDB building blocks (lib/ddb.c): attribute values to JSON, numbers, key IDs,
 * change records (shared/reference/wire-formats.md, section 5), the order of changes, and
 * a deterministic fuzz loop of mutated records and images. AWS facts pinned here:
 * AttributeValue types S N B BOOL NULL M L SS NS BS (API_streams_AttributeValue); numbers
 * of up to 38 significant digits from 1E-130 to 9.99...E+125 (developer guide, data
 * types); StreamRecord.ApproximateCreationDateTime in epoch seconds (DynamoDB Streams);
 * ApproximateCreationDateTimePrecision MILLISECOND | MICROSECOND (Kinesis destination). */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddb.h"
#include "scache/id.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static json_object *parse(const char *text)
{
	json_tokener *tok = json_tokener_new_ex(200);
	json_object *o = json_tokener_parse_ex(tok, text, (int)strlen(text));
	cr_assert(o && json_tokener_get_error(tok) == json_tokener_success, "bad test JSON: %s",
	          text);
	json_tokener_free(tok);
	return o;
}

/* Convert the image text; returns the error, *out the JSON text (NULL on error). */
static ddb_err convert(const char *image, size_t max, char **out, char *why, size_t whylen)
{
	json_object *o = parse(image);
	size_t len = 99;
	ddb_err err = ddb_image_to_json(o, max, out, &len, why, whylen);
	if (err == DDB_OK)
		cr_assert_eq(len, strlen(*out));
	else
		cr_assert_null(*out);
	json_object_put(o);
	return err;
}

/* ---- attribute values ------------------------------------------------------------ */

struct conv_case {
	const char *in, *out;
};

static const struct conv_case conv_cases[] = {
    /* the example */
    {"{\"id\":{\"S\":\"7\"},\"name\":{\"S\":\"Ada\"},\"age\":{\"N\":\"36\"}}",
     "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}"},
    /* every type */
    {"{\"s\":{\"S\":\"x\"},\"n\":{\"N\":\"-1.5\"},\"b\":{\"B\":\"AAEC\"},\"t\":{\"BOOL\":true},"
     "\"f\":{\"BOOL\":false},\"z\":{\"NULL\":true},\"m\":{\"M\":{\"k\":{\"S\":\"v\"},\"a\":{"
     "\"N\":\"1\"}}},\"l\":{\"L\":[{\"S\":\"a\"},{\"N\":\"2\"},{\"NULL\":true}]},\"ss\":{\"SS\":"
     "[\"a\",\"b\"]},\"ns\":{\"NS\":[\"1\",\"0.5\",\"12345678901234567890\"]},\"bs\":{\"BS\":["
     "\"AA==\",\"AQ==\"]}}",
     "{\"s\":\"x\",\"n\":-1.5,\"b\":\"AAEC\",\"t\":true,\"f\":false,\"z\":null,\"m\":{\"k\":"
     "\"v\",\"a\":1},\"l\":[\"a\",2,null],\"ss\":[\"a\",\"b\"],\"ns\":[1,0.5,"
     "\"12345678901234567890\"],\"bs\":[\"AA==\",\"AQ==\"]}"},
    /* empty item, empty string, empty map and list, empty binary */
    {"{}", "{}"},
    {"{\"e\":{\"S\":\"\"},\"m\":{\"M\":{}},\"l\":{\"L\":[]},\"b\":{\"B\":\"\"}}",
     "{\"e\":\"\",\"m\":{},\"l\":[],\"b\":\"\"}"},
    /* keys keep the input's order */
    {"{\"z\":{\"N\":\"1\"},\"a\":{\"N\":\"2\"},\"m\":{\"N\":\"3\"}}", "{\"z\":1,\"a\":2,\"m\":3}"},
    /* NULL false is read as null too (DynamoDB only ever writes true) */
    {"{\"z\":{\"NULL\":false}}", "{\"z\":null}"},
    /* escaping: quote, backslash, control characters, NUL; UTF-8 and '/' stay */
    {"{\"q\\\"k\":{\"S\":\"a\\\"b\\\\c\\nd\\u0001\\u0000\xc3\xa9/<\"}}",
     "{\"q\\\"k\":\"a\\\"b\\\\c\\u000ad\\u0001\\u0000\xc3\xa9/<\"}"},
    /* numbers: exact ones as numbers, the rest as strings, all canonical */
    {"{\"a\":{\"N\":\"36.0\"},\"b\":{\"N\":\"3.6E1\"},\"c\":{\"N\":\"-0\"},\"d\":{\"N\":\"1E+2\"},"
     "\"e\":{\"N\":\"0.000001\"},\"f\":{\"N\":\"0.1000000000000000055511151231257827\"},\"g\":{"
     "\"N\":\"9007199254740991\"},\"h\":{\"N\":\"9007199254740992\"},\"i\":{\"N\":\"1E+20\"}}",
     "{\"a\":36,\"b\":36,\"c\":0,\"d\":100,\"e\":0.000001,\"f\":"
     "\"0.1000000000000000055511151231257827\",\"g\":9007199254740991,\"h\":"
     "\"9007199254740992\",\"i\":\"100000000000000000000\"}"},
    /* nesting */
    {"{\"o\":{\"M\":{\"l\":{\"L\":[{\"M\":{\"x\":{\"L\":[{\"SS\":[\"p\"]},{\"BOOL\":false}]}}}]}}}"
     "}",
     "{\"o\":{\"l\":[{\"x\":[[\"p\"],false]}]}}"},
};

Test(ddb_json, converts_every_attribute_type_exactly)
{
	for (size_t i = 0; i < N_OF(conv_cases); i++) {
		char *out = NULL, why[256];
		ddb_err err = convert(conv_cases[i].in, 0, &out, why, sizeof why);
		cr_assert_eq(err, DDB_OK, "case %zu: %s (%s)", i, ddb_strerror(err), why);
		cr_assert_str_eq(out, conv_cases[i].out, "case %zu", i);
		json_object *check = parse(out); /* and it is JSON */
		json_object_put(check);
		free(out);
	}
}

Test(ddb_json, binary_is_written_as_canonical_base64)
{
	char *out = NULL;
	cr_assert_eq(convert("{\"b\":{\"B\":\"3q2+7w==\"}}", 0, &out, NULL, 0), DDB_OK);
	cr_assert_str_eq(out, "{\"b\":\"3q2+7w==\"}");
	free(out);
	/* unused trailing bits are dropped: "QR==" and "QQ==" are both the byte 'A' */
	cr_assert_eq(
	    convert("{\"b\":{\"B\":\"QR==\"},\"s\":{\"BS\":[\"QUJ=\"]}}", 0, &out, NULL, 0),
	    DDB_OK);
	cr_assert_str_eq(out, "{\"b\":\"QQ==\",\"s\":[\"QUI=\"]}");
	free(out);
}

struct err_case {
	const char *in;
	ddb_err err;
	const char *why;
};

static const struct err_case err_cases[] = {
    {"{\"a\":{\"X\":\"1\"}}", DDB_ETYPE, "a: unknown type \"X\""},
    {"{\"a\":{}}", DDB_ETYPE, "a: an attribute value needs exactly one type key, not 0"},
    {"{\"a\":{\"S\":\"x\",\"N\":\"1\"}}", DDB_ETYPE,
     "a: an attribute value needs exactly one type key, not 2"},
    {"{\"a\":\"x\"}", DDB_ETYPE, "a: an attribute value must be an object like {\"S\":\"x\"}"},
    {"{\"a\":null}", DDB_ETYPE, "a: an attribute value must be an object like {\"S\":\"x\"}"},
    {"{\"a\":{\"S\":1}}", DDB_ETYPE, "a: S must be a string"},
    {"{\"a\":{\"N\":1}}", DDB_ETYPE, "a: N must be a string"},
    {"{\"a\":{\"N\":\"1x\"}}", DDB_ENUMBER,
     "a: N \"1x\" has a character that is not part of a number"},
    {"{\"a\":{\"B\":\"!!!!\"}}", DDB_EBASE64, "a: B \"!!!!\" is not base64"},
    {"{\"a\":{\"B\":\"AAE\"}}", DDB_EBASE64, "a: B \"AAE\" is not base64"},
    {"{\"a\":{\"B\":7}}", DDB_ETYPE, "a: B must be a string"},
    {"{\"a\":{\"BOOL\":\"true\"}}", DDB_ETYPE, "a: BOOL must be true or false"},
    {"{\"a\":{\"NULL\":1}}", DDB_ETYPE, "a: NULL must be true or false"},
    {"{\"a\":{\"M\":[]}}", DDB_ETYPE, "a: M must be an object"},
    {"{\"a\":{\"L\":{}}}", DDB_ETYPE, "a: L must be an array"},
    {"{\"a\":{\"SS\":[]}}", DDB_ETYPE, "a: SS is empty (DynamoDB has no empty sets)"},
    {"{\"a\":{\"SS\":\"x\"}}", DDB_ETYPE, "a: SS must be an array"},
    {"{\"a\":{\"SS\":[\"x\",1]}}", DDB_ETYPE, "a[1]: SS must hold strings"},
    {"{\"a\":{\"NS\":[\"1\",\"x\"]}}", DDB_ENUMBER, "a[1]: NS \"x\" has no digits"},
    {"{\"a\":{\"BS\":[\"*\"]}}", DDB_EBASE64, "a[0]: BS \"*\" is not base64"},
    {"{\"a\":{\"L\":[{\"S\":\"x\"},{\"M\":{\"b\":{\"N\":\"z\"}}}]}}", DDB_ENUMBER,
     "a.L[1].M.b: N \"z\" has no digits"},
    {"{\"a\":{\"N\":\"1E+126\"}}", DDB_ENUMBER,
     "a: N \"1E+126\" is larger than DynamoDB's 9.99...E+125"},
};

Test(ddb_json, rejects_malformed_values_with_a_code_and_a_path)
{
	for (size_t i = 0; i < N_OF(err_cases); i++) {
		char *out = (char *)1, why[256] = "";
		ddb_err err = convert(err_cases[i].in, 0, &out, why, sizeof why);
		cr_assert_eq(err, err_cases[i].err, "case %zu: %s (%s)", i, ddb_strerror(err), why);
		cr_assert_str_eq(why, err_cases[i].why, "case %zu", i);
	}
}

Test(ddb_json, rejects_a_non_object_item)
{
	json_object *a = parse("[1]");
	char *out = (char *)1;
	cr_assert_eq(ddb_image_to_json(a, 0, &out, NULL, NULL, 0), DDB_EINVAL);
	cr_assert_null(out);
	cr_assert_eq(ddb_image_to_json(NULL, 0, &out, NULL, NULL, 0), DDB_EINVAL);
	json_object_put(a);
}

/* {"a": L nested depth times around {"S":"x"}} */
static char *nested(int depth, char **expect)
{
	size_t cap = 32 + (size_t)depth * 16;
	char *in = malloc(cap), *ex = malloc(cap);
	size_t i = (size_t)snprintf(in, cap, "{\"a\":"), e = (size_t)snprintf(ex, cap, "{\"a\":");
	for (int d = 0; d < depth; d++) {
		i += (size_t)snprintf(in + i, cap - i, "{\"L\":[");
		e += (size_t)snprintf(ex + e, cap - e, "[");
	}
	i += (size_t)snprintf(in + i, cap - i, "{\"S\":\"x\"}");
	e += (size_t)snprintf(ex + e, cap - e, "\"x\"");
	for (int d = 0; d < depth; d++) {
		i += (size_t)snprintf(in + i, cap - i, "]}");
		e += (size_t)snprintf(ex + e, cap - e, "]");
	}
	snprintf(in + i, cap - i, "}");
	snprintf(ex + e, cap - e, "}");
	*expect = ex;
	return in;
}

Test(ddb_json, nests_32_levels_and_refuses_33)
{
	char *expect, *in = nested(DDB_MAX_DEPTH, &expect), *out = NULL, why[256];
	cr_assert_eq(convert(in, 0, &out, why, sizeof why), DDB_OK, "%s", why);
	cr_assert_str_eq(out, expect);
	free(out);
	free(in);
	free(expect);
	in = nested(DDB_MAX_DEPTH + 1, &expect);
	cr_assert_eq(convert(in, 0, &out, why, sizeof why), DDB_EDEPTH);
	cr_assert(strstr(why, "maps and lists nest deeper than 32 levels"), "%s", why);
	free(in);
	free(expect);
}

Test(ddb_json, stops_at_the_callers_size_bound)
{
	const char *in = "{\"id\":{\"S\":\"7\"},\"name\":{\"S\":\"Ada\"},\"age\":{\"N\":\"36\"}}";
	const char *want = "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}";
	char *out = NULL, why[256];
	cr_assert_eq(convert(in, strlen(want), &out, why, sizeof why), DDB_OK);
	cr_assert_str_eq(out, want);
	free(out);
	cr_assert_eq(convert(in, strlen(want) - 1, &out, why, sizeof why), DDB_ETOOBIG);
	cr_assert(strstr(why, "the JSON text exceeds 31 bytes"), "%s", why);
	cr_assert_eq(convert(in, 5, &out, why, sizeof why), DDB_ETOOBIG);
}

/* ---- numbers ---------------------------------------------------------------------- */

struct num_case {
	const char *in, *canonical;
	int exact;
};

static const struct num_case num_cases[] = {
    {"36", "36", 1},
    {"36.0", "36", 1},
    {"3.6E1", "36", 1},
    {"360e-1", "36", 1},
    {"-0", "0", 1},
    {"0", "0", 1},
    {"-0.000", "0", 1},
    {"0e999999999999999999999", "0", 1},
    {"1E+2", "100", 1},
    {"1e2", "100", 1},
    {"1e0000000000000000000002", "100", 1},
    {"0.000001", "0.000001", 1},
    {"1E-7", "0.0000001", 1},
    {".5", "0.5", 1},
    {"5.", "5", 1},
    {"-.50", "-0.5", 1},
    {"00012.3400", "12.34", 1},
    {"123.456e-2", "1.23456", 1},
    {"0.1", "0.1", 1},
    {"0.30000000000000004", "0.30000000000000004", 1}, /* the shortest form of 0.1 + 0.2 */
    {"0.10000000000000001", "0.10000000000000001", 0}, /* reads as 0.1: not exact */
    {"0.1000000000000000055511151231257827", "0.1000000000000000055511151231257827", 0},
    {"9007199254740991", "9007199254740991", 1},
    {"-9007199254740991", "-9007199254740991", 1},
    {"9007199254740992", "9007199254740992", 0},
    {"12345678901234567890", "12345678901234567890", 0},
    {"1E+20", "100000000000000000000", 0},
    {"12345678901234567890123456789012345678", "12345678901234567890123456789012345678", 0},
    {"-0.12345678901234567890123456789012345678", "-0.12345678901234567890123456789012345678", 0},
    {"1000000000000000000000000000000000000000000", "1000000000000000000000000000000000000000000",
     0}, /* 43 digits, one significant */
    {"1E-130",
     "0.0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000001",
     1},
    {"-9.9999999999999999999999999999999999999E+125",
     "-99999999999999999999999999999999999999000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000",
     0},
};

Test(ddb_number, canonical_text_and_exactness)
{
	for (size_t i = 0; i < N_OF(num_cases); i++) {
		char buf[DDB_NUMBER_MAX], why[128];
		int exact = -1;
		const char *in = num_cases[i].in;
		ddb_err err = ddb_number_canonical(in, strlen(in), buf, &exact, why, sizeof why);
		cr_assert_eq(err, DDB_OK, "%s: %s", in, why);
		cr_assert_str_eq(buf, num_cases[i].canonical, "%s", in);
		cr_assert_eq(exact, num_cases[i].exact, "%s", in);
	}
}

struct bad_num {
	const char *in, *why;
};

static const struct bad_num bad_nums[] = {
    {"", "\"\" is empty"},
    {"-", "\"-\" has no digits"},
    {".", "\".\" has no digits"},
    {"+5", "\"+5\" has no digits"},
    {" 5", "\" 5\" has no digits"},
    {"5 ", "\"5 \" has a character that is not part of a number"},
    {"1e", "\"1e\" has an exponent without digits"},
    {"1e+", "\"1e+\" has an exponent without digits"},
    {"1.2.3", "\"1.2.3\" has a character that is not part of a number"},
    {"--1", "\"--1\" has no digits"},
    {"0x10", "\"0x10\" has a character that is not part of a number"},
    {"Infinity", "\"Infinity\" has no digits"},
    {"NaN", "\"NaN\" has no digits"},
    {"1e5.5", "\"1e5.5\" has a character that is not part of a number"},
    {"1E+126", "\"1E+126\" is larger than DynamoDB's 9.99...E+125"},
    {"10E+125", "\"10E+125\" is larger than DynamoDB's 9.99...E+125"},
    {"1E-131", "\"1E-131\" is smaller than DynamoDB's 1E-130"},
    {"0.01E-129", "\"0.01E-129\" is smaller than DynamoDB's 1E-130"},
    {"1e99999999999999999999", "\"1e99999999999999999999\" is larger than DynamoDB's 9.99...E+125"},
    {"123456789012345678901234567890123456789",
     "\"123456789012345678901234567890123456789\" has more than 38 significant digits"},
    {"1.00000000000000000000000000000000000001",
     "\"1.00000000000000000000000000000000000001\" has more than 38 significant digits"},
};

Test(ddb_number, rejects_what_dynamodb_rejects)
{
	for (size_t i = 0; i < N_OF(bad_nums); i++) {
		char buf[DDB_NUMBER_MAX], why[128] = "";
		const char *in = bad_nums[i].in;
		cr_assert_eq(ddb_number_canonical(in, strlen(in), buf, NULL, why, sizeof why),
		             DDB_ENUMBER, "%s", in);
		cr_assert_str_eq(why, bad_nums[i].why);
	}
	char buf[DDB_NUMBER_MAX];
	cr_assert_eq(ddb_number_canonical("1\0"
	                                  "2",
	                                  3, buf, NULL, NULL, 0),
	             DDB_ENUMBER);
}

/* ---- key IDs ---------------------------------------------------------------------- */

static ddb_err key_id(const ddb_table *t, const char *keys, char **out, char *why)
{
	json_object *k = parse(keys);
	ddb_err err = ddb_key_id(t, k, out, NULL, why, 256);
	json_object_put(k);
	return err;
}

struct key_case {
	const char *keys, *id;
};

Test(ddb_key, single_keys_name_the_item_by_value)
{
	const ddb_table users = {.table = "users", .key = {"id"}};
	static const struct key_case cases[] = {
	    {"{\"id\":{\"S\":\"7\"}}", "id=7&s=dynamodb.users&t=data.ID"},
	    {"{\"id\":{\"S\":\"a b/c|d\\\\e\"}}", "id=a+b%2Fc%7Cd%5Ce&s=dynamodb.users&t=data.ID"},
	    {"{\"id\":{\"N\":\"36\"}}", "id=36&s=dynamodb.users&t=data.ID"},
	    {"{\"id\":{\"N\":\"36.0\"}}", "id=36&s=dynamodb.users&t=data.ID"},
	    {"{\"id\":{\"N\":\"3.6E1\"}}", "id=36&s=dynamodb.users&t=data.ID"},
	    {"{\"id\":{\"N\":\"-0.50\"}}", "id=-0.5&s=dynamodb.users&t=data.ID"},
	    {"{\"id\":{\"N\":\"12345678901234567890123456789012345678\"}}",
	     "id=12345678901234567890123456789012345678&s=dynamodb.users&t=data.ID"},
	    {"{\"id\":{\"B\":\"3q2+7w==\"}}", "id=3q2%2B7w%3D%3D&s=dynamodb.users&t=data.ID"},
	    {"{\"id\":{\"B\":\"QR==\"}}", "id=QQ%3D%3D&s=dynamodb.users&t=data.ID"},
	};
	for (size_t i = 0; i < N_OF(cases); i++) {
		char *out = NULL, why[256];
		cr_assert_eq(key_id(&users, cases[i].keys, &out, why), DDB_OK, "%zu: %s", i, why);
		cr_assert_str_eq(out, cases[i].id, "%zu", i);
		free(out);
	}
	/* the source is configurable */
	const ddb_table custom = {.table = "users", .source = "db.users.id", .key = {"id"}};
	char *out = NULL, why[256];
	cr_assert_eq(key_id(&custom, "{\"id\":{\"S\":\"12345\"}}", &out, why), DDB_OK);
	cr_assert_str_eq(out, "id=12345&s=db.users.id&t=data.ID"); /* wire-formats.md, 1 */
	free(out);
}

Test(ddb_key, composite_keys_escape_and_join_unambiguously)
{
	const ddb_table orders = {.table = "orders", .key = {"pk", "sk"}};
	static const struct key_case cases[] = {
	    {"{\"pk\":{\"S\":\"u1\"},\"sk\":{\"N\":\"2.50\"}}", "u1|2.5"},
	    {"{\"sk\":{\"S\":\"c\"},\"pk\":{\"S\":\"a|b\"}}", "a\\|b|c"},
	    {"{\"pk\":{\"S\":\"a\"},\"sk\":{\"S\":\"b|c\"}}", "a|b\\|c"},
	    {"{\"pk\":{\"S\":\"a|\"},\"sk\":{\"S\":\"b\"}}", "a\\||b"},
	    {"{\"pk\":{\"S\":\"a\"},\"sk\":{\"S\":\"|b\"}}", "a|\\|b"},
	    {"{\"pk\":{\"S\":\"a\\\\\"},\"sk\":{\"S\":\"b\"}}", "a\\\\|b"},
	    {"{\"pk\":{\"S\":\"a\"},\"sk\":{\"S\":\"\\\\b\"}}", "a|\\\\b"},
	    {"{\"pk\":{\"S\":\"\"},\"sk\":{\"S\":\"\"}}", "|"},
	    {"{\"pk\":{\"B\":\"AQ==\"},\"sk\":{\"N\":\"1E+2\"}}", "AQ==|100"},
	};
	for (size_t i = 0; i < N_OF(cases); i++) {
		char *out = NULL, why[256];
		cr_assert_eq(key_id(&orders, cases[i].keys, &out, why), DDB_OK, "%zu: %s", i, why);
		scache_id id;
		cr_assert_eq(scache_id_parse(out, strlen(out), &id), SCACHE_OK);
		cr_assert_str_eq(id.source, "dynamodb.orders");
		cr_assert_str_eq(id.id, cases[i].id, "%zu", i);
		scache_id_clear(&id);
		free(out);
	}
	char *out = NULL, why[256];
	cr_assert_eq(key_id(&orders, "{\"pk\":{\"S\":\"a|b\"},\"sk\":{\"S\":\"c\"}}", &out, why),
	             DDB_OK);
	cr_assert_str_eq(out, "id=a%5C%7Cb%7Cc&s=dynamodb.orders&t=data.ID");
	free(out);
}

Test(ddb_key, refuses_keys_that_do_not_match_the_table)
{
	const ddb_table users = {.table = "users", .key = {"id"}};
	const ddb_table orders = {.table = "orders", .key = {"pk", "sk"}};
	static const struct {
		int composite;
		const char *keys;
		ddb_err err;
		const char *why;
	} cases[] = {
	    {0, "{\"ID\":{\"S\":\"7\"}}", DDB_EKEY, "key id is missing"},
	    {0, "{}", DDB_EKEY, "key id is missing"},
	    {0, "{\"id\":{\"S\":\"7\"},\"name\":{\"S\":\"x\"}}", DDB_EKEY,
	     "the key has 2 attributes, table users has 1 key attribute"},
	    {1, "{\"pk\":{\"S\":\"7\"}}", DDB_EKEY, "key sk is missing"},
	    {0, "{\"id\":{\"BOOL\":true}}", DDB_EKEY,
	     "key id: of type BOOL, a key is of type S, N or B"},
	    {0, "{\"id\":{\"SS\":[\"a\"]}}", DDB_EKEY,
	     "key id: of type SS, a key is of type S, N or B"},
	    {0, "{\"id\":{\"N\":\"1..2\"}}", DDB_ENUMBER,
	     "key id: N \"1..2\" has a character that is not part of a number"},
	    {0, "{\"id\":{\"B\":\"A\"}}", DDB_EBASE64, "key id: B \"A\" is not base64"},
	    {0, "{\"id\":{\"S\":7}}", DDB_ETYPE, "key id: S must be a string"},
	    {0, "{\"id\":\"7\"}", DDB_ETYPE, "key id: not an attribute value with one type key"},
	    {0, "{\"id\":{\"S\":\"7\",\"N\":\"7\"}}", DDB_ETYPE,
	     "key id: not an attribute value with one type key"},
	    {0, "[]", DDB_EINVAL, "the key must be a JSON object"},
	};
	for (size_t i = 0; i < N_OF(cases); i++) {
		char *out = (char *)1, why[256] = "";
		ddb_err err =
		    key_id(cases[i].composite ? &orders : &users, cases[i].keys, &out, why);
		cr_assert_eq(err, cases[i].err, "%zu: %s", i, why);
		cr_assert_str_eq(why, cases[i].why, "%zu", i);
		cr_assert_null(out);
	}
	const ddb_table nameless = {.key = {"id"}}, keyless = {.table = "t"};
	char *out = NULL, why[256];
	cr_assert_eq(key_id(&nameless, "{\"id\":{\"S\":\"7\"}}", &out, why), DDB_EINVAL);
	cr_assert_eq(key_id(&keyless, "{\"id\":{\"S\":\"7\"}}", &out, why), DDB_EINVAL);
	cr_assert_eq(ddb_key_id(&users, NULL, &out, NULL, NULL, 0), DDB_EINVAL);
}

/* ---- change records ---------------------------------------------------------------- */

/* wire-formats.md, section 5, as it is */
static const char section5[] =
    "{\"awsRegion\":\"us-east-1\",\"eventID\":\"...\",\"eventName\":\"MODIFY\","
    "\"userIdentity\":null,\n \"recordFormat\":\"application/json\",\"tableName\":\"users\","
    "\"eventSource\":\"aws:dynamodb\",\n \"dynamodb\":{\"ApproximateCreationDateTime\":"
    "1732451186412,\n   \"Keys\":{\"id\":{\"S\":\"123\"}},\n   \"NewImage\":{\"id\":{\"S\":"
    "\"123\"},\"name\":{\"S\":\"Ada\"},\"age\":{\"N\":\"36\"}},\n   \"OldImage\":{\"id\":{\"S\":"
    "\"123\"},\"name\":{\"S\":\"Ada L.\"},\"age\":{\"N\":\"36\"}},\n   \"SizeBytes\":83}}";

static ddb_err parse_change(const char *text, ddb_shape shape, ddb_change *c, char *why)
{
	return ddb_change_parse(text, strlen(text), shape, c, why, 256);
}

static void assert_image(json_object *image, const char *want)
{
	char *out = NULL, why[256];
	cr_assert_eq(ddb_image_to_json(image, 0, &out, NULL, why, sizeof why), DDB_OK, "%s", why);
	cr_assert_str_eq(out, want);
	free(out);
}

static void assert_key(json_object *keys, const ddb_table *t, const char *want)
{
	char *out = NULL, why[256];
	cr_assert_eq(ddb_key_id(t, keys, &out, NULL, why, sizeof why), DDB_OK, "%s", why);
	cr_assert_str_eq(out, want);
	free(out);
}

Test(ddb_change, parses_the_aws_record_of_section_5)
{
	ddb_change c;
	char why[256];
	cr_assert_eq(parse_change(section5, DDB_SHAPE_KINESIS, &c, why), DDB_OK, "%s", why);
	cr_assert_str_eq(c.table, "users");
	cr_assert_eq(c.event, DDB_EVENT_MODIFY);
	cr_assert_eq(c.created_us, 1732451186412000LL); /* milliseconds, by magnitude */
	cr_assert_null(c.sequence_number);
	assert_image(c.new_image, "{\"id\":\"123\",\"name\":\"Ada\",\"age\":36}");
	const ddb_table users = {.table = "users", .key = {"id"}};
	assert_key(c.keys, &users, "id=123&s=dynamodb.users&t=data.ID");
	ddb_change_clear(&c);
	cr_assert_null(c.root);
	ddb_change_clear(&c); /* twice is fine */
	ddb_change_clear(NULL);
}

static char *with_time(const char *time_field)
{
	/* the record of section 5 with another "ApproximateCreationDateTime":... */
	static const char *marker = "\"ApproximateCreationDateTime\":1732451186412";
	const char *at = strstr(section5, marker);
	size_t cap = sizeof section5 + strlen(time_field) + 1;
	char *s = malloc(cap);
	snprintf(s, cap, "%.*s%s%s", (int)(at - section5), section5, time_field,
	         at + strlen(marker));
	return s;
}

Test(ddb_change, reads_both_time_precisions)
{
	static const struct {
		const char *field;
		int64_t us;
	} cases[] = {
	    /* the precision field, where records carry it, decides */
	    {"\"ApproximateCreationDateTime\":1732451186412345,"
	     "\"ApproximateCreationDateTimePrecision\":\"MICROSECOND\"",
	     1732451186412345LL},
	    {"\"ApproximateCreationDateTimePrecision\":\"MILLISECOND\","
	     "\"ApproximateCreationDateTime\":1732451186412",
	     1732451186412000LL},
	    {"\"ApproximateCreationDateTimePrecision\":\"MICROSECOND\","
	     "\"ApproximateCreationDateTime\":1732451186412",
	     1732451186412LL},
	    /* without it, the magnitude: 16 digits are microseconds, 13 milliseconds */
	    {"\"ApproximateCreationDateTime\":1732451186412345", 1732451186412345LL},
	    {"\"ApproximateCreationDateTime\":99999999999999", 99999999999999000LL},
	    {"\"ApproximateCreationDateTime\":100000000000000", 100000000000000LL},
	    {"\"ApproximateCreationDateTime\":1.732451186412E12", 1732451186412000LL},
	    {"\"ApproximateCreationDateTime\":0", 0},
	};
	for (size_t i = 0; i < N_OF(cases); i++) {
		char *rec = with_time(cases[i].field), why[256];
		ddb_change c;
		cr_assert_eq(parse_change(rec, DDB_SHAPE_KINESIS, &c, why), DDB_OK, "%zu: %s", i,
		             why);
		cr_assert_eq(c.created_us, cases[i].us, "%zu: %" PRId64, i, c.created_us);
		ddb_change_clear(&c);
		free(rec);
	}
	/* the precision field at the top level of the record, as seen in the wild */
	const char *top =
	    "{\"eventName\":\"INSERT\",\"tableName\":\"t\",\"eventSource\":\"aws:dynamodb\","
	    "\"ApproximateCreationDateTimePrecision\":\"MICROSECOND\",\"dynamodb\":{"
	    "\"ApproximateCreationDateTime\":1732451186412,\"Keys\":{\"id\":{\"N\":\"1\"}}}}";
	ddb_change c;
	char why[256];
	cr_assert_eq(parse_change(top, DDB_SHAPE_KINESIS, &c, why), DDB_OK, "%s", why);
	cr_assert_eq(c.created_us, 1732451186412LL);
	ddb_change_clear(&c);
}

Test(ddb_change, keys_only_and_remove_records_carry_no_image)
{
	const char *keys_only =
	    "{\"eventName\":\"INSERT\",\"tableName\":\"users\",\"eventSource\":\"aws:dynamodb\","
	    "\"dynamodb\":{\"ApproximateCreationDateTime\":1732451186412,\"Keys\":{\"id\":{\"S\":"
	    "\"9\"}},\"SizeBytes\":12}}\n";
	const char *remove =
	    "{\"eventName\":\"REMOVE\",\"tableName\":\"users\",\"eventSource\":\"aws:dynamodb\","
	    "\"dynamodb\":{\"ApproximateCreationDateTime\":1732451186413,\"Keys\":{\"id\":{\"S\":"
	    "\"9\"}},\"OldImage\":{\"id\":{\"S\":\"9\"}},\"NewImage\":{\"id\":{\"S\":\"9\"}}}}";
	const char *null_image =
	    "{\"eventName\":\"MODIFY\",\"tableName\":\"users\",\"eventSource\":\"aws:dynamodb\","
	    "\"dynamodb\":{\"ApproximateCreationDateTime\":1732451186413,\"Keys\":{\"id\":{\"S\":"
	    "\"9\"}},\"NewImage\":null}}";
	ddb_change c;
	char why[256];
	cr_assert_eq(parse_change(keys_only, DDB_SHAPE_KINESIS, &c, why), DDB_OK, "%s", why);
	cr_assert_eq(c.event, DDB_EVENT_INSERT);
	cr_assert_null(c.new_image);
	ddb_change_clear(&c);
	cr_assert_eq(parse_change(remove, DDB_SHAPE_KINESIS, &c, why), DDB_OK, "%s", why);
	cr_assert_eq(c.event, DDB_EVENT_REMOVE);
	cr_assert_null(c.new_image); /* a REMOVE never refreshes */
	ddb_change_clear(&c);
	cr_assert_eq(parse_change(null_image, DDB_SHAPE_KINESIS, &c, why), DDB_OK, "%s", why);
	cr_assert_null(c.new_image);
	ddb_change_clear(&c);
}

Test(ddb_change, tells_other_records_apart)
{
	static const char *cases[] = {
	    "{\"keys\":[\"id=12345&s=db.table.id&t=data.ID\"],\"ts\":\"2026-11-24T13:26:26.241Z\"}",
	    "not json",
	    "",
	    "[1,2]",
	    "\"aws:dynamodb\"",
	    "{\"eventSource\":\"aws:kinesis\",\"eventName\":\"INSERT\"}",
	    "{\"eventSource\":7}",
	    "{\"eventName\":\"INSERT\",\"dynamodb\":{}}",
	    "{\"eventSource\":\"aws:dynamodb\"} trailing",
	};
	for (size_t i = 0; i < N_OF(cases); i++) {
		ddb_change c;
		char why[256];
		cr_assert_eq(parse_change(cases[i], DDB_SHAPE_KINESIS, &c, why), DDB_ENOTDDB, "%zu",
		             i);
		cr_assert_null(c.root);
	}
}

Test(ddb_change, reports_malformed_dynamodb_records)
{
	static const struct {
		const char *rec, *why;
	} cases[] = {
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"UPSERT\"}",
	     "unknown eventName \"UPSERT\""},
	    {"{\"eventSource\":\"aws:dynamodb\"}", "no eventName string"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"dynamodb\":{}}",
	     "no tableName string"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\"}",
	     "no \"dynamodb\" object"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"dynamodb\":{\"ApproximateCreationDateTime\":1732451186412}}",
	     "no dynamodb.Keys object with a key"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"dynamodb\":{\"Keys\":{},\"ApproximateCreationDateTime\":1732451186412}}",
	     "no dynamodb.Keys object with a key"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"dynamodb\":{\"Keys\":{\"id\":{\"S\":\"1\"}},\"NewImage\":[]}}",
	     "dynamodb.NewImage is not an object"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"dynamodb\":{\"Keys\":{\"id\":{\"S\":\"1\"}}}}",
	     "no dynamodb.ApproximateCreationDateTime"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"dynamodb\":{\"Keys\":{\"id\":{\"S\":\"1\"}},\"ApproximateCreationDateTime\":"
	     "\"1732451186412\"}}",
	     "dynamodb.ApproximateCreationDateTime is not a time (milliseconds or microseconds)"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"dynamodb\":{\"Keys\":{\"id\":{\"S\":\"1\"}},\"ApproximateCreationDateTime\":-5}}",
	     "dynamodb.ApproximateCreationDateTime is not a time (milliseconds or microseconds)"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"dynamodb\":{\"Keys\":{\"id\":{\"S\":\"1\"}},\"ApproximateCreationDateTime\":"
	     "99999999999999999999}}",
	     "dynamodb.ApproximateCreationDateTime is not a time (milliseconds or microseconds)"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"ApproximateCreationDateTimePrecision\":\"MICROSECOND\",\"dynamodb\":{\"Keys\":{"
	     "\"id\":{\"S\":\"1\"}},\"ApproximateCreationDateTime\":9223372036854775807}}",
	     "dynamodb.ApproximateCreationDateTime is not a time (microseconds)"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"ApproximateCreationDateTimePrecision\":\"MILLISECOND\",\"dynamodb\":{\"Keys\":{"
	     "\"id\":{\"S\":\"1\"}},\"ApproximateCreationDateTime\":1732451186412345}}",
	     "dynamodb.ApproximateCreationDateTime is not a time (milliseconds)"},
	    {"{\"eventSource\":\"aws:dynamodb\",\"eventName\":\"INSERT\",\"tableName\":\"t\","
	     "\"ApproximateCreationDateTimePrecision\":\"NANOSECOND\",\"dynamodb\":{\"Keys\":{"
	     "\"id\":{\"S\":\"1\"}},\"ApproximateCreationDateTime\":1}}",
	     "ApproximateCreationDateTimePrecision is neither MILLISECOND nor MICROSECOND"},
	};
	for (size_t i = 0; i < N_OF(cases); i++) {
		ddb_change c;
		char why[256] = "";
		cr_assert_eq(parse_change(cases[i].rec, DDB_SHAPE_KINESIS, &c, why), DDB_ERECORD,
		             "%zu: %s", i, why);
		cr_assert_str_eq(why, cases[i].why, "%zu", i);
		cr_assert_null(c.root);
		cr_assert_null(c.keys);
	}
}

Test(ddb_change, reads_dynamodb_streams_records_in_seconds)
{
	const char *rec =
	    "{\"eventID\":\"a14537b9b153d5e7dece6e5587d71b75\",\"eventName\":\"INSERT\","
	    "\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\",\"awsRegion\":"
	    "\"ap-southeast-1\",\"dynamodb\":{\"ApproximateCreationDateTime\":1568013979.0,"
	    "\"Keys\":{"
	    "\"ID\":{\"S\":\"2\"},\"Title\":{\"S\":\"aaa\"}},\"NewImage\":{\"ID\":{\"S\":\"2\"},"
	    "\"Title\":{\"S\":\"aaa\"}},\"SequenceNumber\":\"21258800000000008186106757\","
	    "\"SizeBytes\":22,\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}";
	ddb_change c;
	char why[256];
	cr_assert_eq(parse_change(rec, DDB_SHAPE_STREAMS, &c, why), DDB_OK, "%s", why);
	cr_assert_null(c.table);
	cr_assert_eq(c.event, DDB_EVENT_INSERT);
	cr_assert_eq(c.created_us, 1568013979000000LL);
	cr_assert_str_eq(c.sequence_number, "21258800000000008186106757");
	assert_image(c.new_image, "{\"ID\":\"2\",\"Title\":\"aaa\"}");
	const ddb_table t = {.table = "nxkhan", .key = {"ID", "Title"}};
	assert_key(c.keys, &t, "id=2%7Caaa&s=dynamodb.nxkhan&t=data.ID");
	ddb_change_clear(&c);

	/* from an already parsed GetRecords element, integer seconds, no eventSource */
	json_object *o = parse("{\"eventName\":\"REMOVE\",\"dynamodb\":{"
	                       "\"ApproximateCreationDateTime\":1479499740,\"Keys\":{\"ID\":{"
	                       "\"N\":\"1\"}},\"SequenceNumber\":\"111\"}}");
	cr_assert_eq(ddb_change_from_json(o, DDB_SHAPE_STREAMS, &c, why, sizeof why), DDB_OK, "%s",
	             why);
	json_object_put(o); /* c holds its own reference */
	cr_assert_eq(c.created_us, 1479499740000000LL);
	cr_assert_eq(c.event, DDB_EVENT_REMOVE);
	cr_assert_str_eq(c.sequence_number, "111");
	ddb_change_clear(&c);

	/* the Kinesis shape insists on eventSource and tableName; Streams on seconds */
	cr_assert_eq(parse_change("{\"eventName\":\"REMOVE\",\"dynamodb\":{\"Keys\":{\"I\":{\"N\":"
	                          "\"1\"}},\"ApproximateCreationDateTime\":1}}",
	                          DDB_SHAPE_KINESIS, &c, why),
	             DDB_ENOTDDB);
	cr_assert_eq(parse_change("{\"eventSource\":\"aws:kinesis\",\"eventName\":\"REMOVE\"}",
	                          DDB_SHAPE_STREAMS, &c, why),
	             DDB_ENOTDDB);
	cr_assert_eq(parse_change("{\"eventName\":\"REMOVE\",\"dynamodb\":{\"Keys\":{\"I\":{\"N\":"
	                          "\"1\"}},\"ApproximateCreationDateTime\":1.0e300}}",
	                          DDB_SHAPE_STREAMS, &c, why),
	             DDB_ERECORD);
	cr_assert_str_eq(why, "dynamodb.ApproximateCreationDateTime is not a time (seconds)");
}

Test(ddb_change, parses_images_nested_32_levels)
{
	char *expect, *image = nested(DDB_MAX_DEPTH, &expect);
	size_t cap = strlen(image) + 256;
	char *rec = malloc(cap), why[256];
	snprintf(rec, cap,
	         "{\"eventName\":\"INSERT\",\"tableName\":\"t\",\"eventSource\":\"aws:dynamodb\","
	         "\"dynamodb\":{\"ApproximateCreationDateTime\":1732451186412,\"Keys\":{\"a\":{"
	         "\"S\":\"x\"}},\"NewImage\":%s}}",
	         image);
	ddb_change c;
	cr_assert_eq(parse_change(rec, DDB_SHAPE_KINESIS, &c, why), DDB_OK, "%s", why);
	assert_image(c.new_image, expect);
	ddb_change_clear(&c);
	free(rec);
	free(image);
	free(expect);
}

/* ---- ordering ---------------------------------------------------------------------- */

static ddb_order rec(ddb_versions *v, const char *id, int64_t t, const char *shard, const char *seq)
{
	ddb_order o = DDB_ORDER_UNKNOWN,
	          before = ddb_versions_check(v, id, strlen(id), t, shard, seq);
	cr_assert_eq(ddb_versions_record(v, id, strlen(id), t, shard, seq, &o), DDB_OK);
	cr_assert_eq(o, before, "check and record agree");
	return o;
}

Test(ddb_versions, duplicates_and_late_arrivals_are_stale)
{
	ddb_versions *v = ddb_versions_new(0, 0);
	cr_assert_not_null(v);
	cr_assert_eq(rec(v, "a", 1000, "shardId-0", "100"), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "a", 1000, "shardId-0", "100"), DDB_ORDER_STALE); /* duplicate */
	cr_assert_eq(rec(v, "a", 2000, "shardId-0", "50"), DDB_ORDER_NEWER);  /* newer time */
	cr_assert_eq(rec(v, "a", 1500, "shardId-1", "999"), DDB_ORDER_STALE); /* late */
	cr_assert_eq(rec(v, "a", 1000, "shardId-0", "100"), DDB_ORDER_STALE); /* late dup */
	cr_assert_eq(rec(v, "b", 500, "shardId-0", "1"), DDB_ORDER_NEWER);    /* another id */
	cr_assert_eq(ddb_versions_count(v), 2);
	ddb_versions_free(v);
	ddb_versions_free(NULL);
}

Test(ddb_versions, same_time_orders_by_sequence_within_a_shard)
{
	ddb_versions *v = ddb_versions_new(0, 0);
	const char *s56a = "49546986683135544286507457936321625675700192471156785154";
	const char *s56b = "49546986683135544286507457936321625675700192471156785155";
	cr_assert_eq(rec(v, "a", 1000, "s", "9"), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "a", 1000, "s", "10"), DDB_ORDER_NEWER); /* 10 > 9: not by text */
	cr_assert_eq(rec(v, "a", 1000, "s", "0009"), DDB_ORDER_STALE);
	cr_assert_eq(rec(v, "a", 1000, "s", "00000000000000000011"), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "a", 1000, "s", s56a), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "a", 1000, "s", s56b), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "a", 1000, "s", s56a), DDB_ORDER_STALE);
	ddb_versions_free(v);
}

Test(ddb_versions, same_time_across_shards_is_a_tie_until_a_newer_time)
{
	ddb_versions *v = ddb_versions_new(0, 0);
	cr_assert_eq(rec(v, "a", 1000, "shardId-0", "5"), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "a", 1000, "shardId-1", "9"), DDB_ORDER_TIE);
	/* once tied, the same time never refreshes, even from the first shard */
	cr_assert_eq(rec(v, "a", 1000, "shardId-0", "7"), DDB_ORDER_TIE);
	cr_assert_eq(rec(v, "a", 999, "shardId-0", "8"), DDB_ORDER_STALE);
	cr_assert_eq(rec(v, "a", 1001, "shardId-1", "1"), DDB_ORDER_NEWER); /* clears the tie */
	cr_assert_eq(rec(v, "a", 1001, "shardId-1", "2"), DDB_ORDER_NEWER);
	/* unknown or odd sequence numbers cannot order a same-time change */
	cr_assert_eq(rec(v, "b", 1000, "s", NULL), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "b", 1000, "s", "1"), DDB_ORDER_TIE);
	cr_assert_eq(rec(v, "c", 1000, "s", "1"), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "c", 1000, "s", "2x"), DDB_ORDER_TIE);
	cr_assert_eq(rec(v, "d", 1000, NULL, NULL), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "d", 1000, NULL, NULL), DDB_ORDER_TIE);
	ddb_versions_free(v);
}

Test(ddb_versions, forgets_past_the_horizon_and_then_invalidates)
{
	ddb_versions *v = ddb_versions_new(1000, 0);
	cr_assert_eq(rec(v, "a", 1000, "s", "1"), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "b", 1800, "s", "2"), DDB_ORDER_NEWER);
	cr_assert_eq(ddb_versions_count(v), 2);
	cr_assert_eq(ddb_versions_floor(v), 0);
	cr_assert_eq(rec(v, "c", 3000, "s", "3"), DDB_ORDER_NEWER); /* cut-off 2000: a, b go */
	cr_assert_eq(ddb_versions_count(v), 1);
	cr_assert_eq(ddb_versions_floor(v), 1800);
	/* a late change of a forgotten item: whatever was applied is unknown */
	cr_assert_eq(ddb_versions_check(v, "a", 1, 900, "s", "0"), DDB_ORDER_UNKNOWN);
	cr_assert_eq(ddb_versions_check(v, "a", 1, 1800, "s", "9"), DDB_ORDER_UNKNOWN);
	cr_assert_eq(ddb_versions_check(v, "zz", 2, 1700, "s", "9"), DDB_ORDER_UNKNOWN);
	/* above the floor, nothing newer can have been forgotten */
	cr_assert_eq(ddb_versions_check(v, "a", 1, 1801, "s", "9"), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "a", 1200, "s", "0"), DDB_ORDER_UNKNOWN); /* no entry is made */
	cr_assert_eq(ddb_versions_count(v), 1);
	ddb_versions_free(v);
}

Test(ddb_versions, keeps_at_most_max_entries)
{
	ddb_versions *v = ddb_versions_new(INT64_MAX / 2, 2);
	cr_assert_eq(rec(v, "a", 10, "s", "1"), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "b", 30, "s", "2"), DDB_ORDER_NEWER);
	cr_assert_eq(rec(v, "a", 20, "s", "3"), DDB_ORDER_NEWER); /* a is now the newest update */
	cr_assert_eq(rec(v, "c", 25, "s", "4"), DDB_ORDER_NEWER); /* b, least recent, goes */
	cr_assert_eq(ddb_versions_count(v), 2);
	cr_assert_eq(ddb_versions_floor(v), 30);
	cr_assert_eq(ddb_versions_check(v, "b", 1, 30, "s", "2"), DDB_ORDER_UNKNOWN);
	cr_assert_eq(ddb_versions_check(v, "a", 1, 20, "s", "3"), DDB_ORDER_STALE);
	cr_assert_eq(ddb_versions_check(v, "new", 3, 31, "s", "3"), DDB_ORDER_NEWER);
	ddb_versions_free(v);
}

Test(ddb_versions, ids_are_byte_strings)
{
	ddb_versions *v = ddb_versions_new(0, 0);
	cr_assert_eq(ddb_versions_record(v, "a\0b", 3, 5, "s", "1", NULL), DDB_OK);
	cr_assert_eq(ddb_versions_check(v, "a\0b", 3, 5, "s", "1"), DDB_ORDER_STALE);
	cr_assert_eq(ddb_versions_check(v, "a\0c", 3, 5, "s", "1"), DDB_ORDER_NEWER);
	cr_assert_eq(ddb_versions_check(v, "a", 1, 5, "s", "1"), DDB_ORDER_NEWER);
	cr_assert_eq(ddb_versions_record(NULL, "a", 1, 5, "s", "1", NULL), DDB_EINVAL);
	ddb_versions_free(v);
}

/* ---- errors ------------------------------------------------------------------------- */

Test(ddb_errors, every_code_has_words_and_a_public_code)
{
	for (int e = 0; e < DDB_ERR_COUNT_; e++) {
		cr_assert_str_neq(ddb_strerror((ddb_err)e), "unknown error");
		cr_assert_lt((int)ddb_err_scache((ddb_err)e), (int)SCACHE_ERR_COUNT_);
	}
	cr_assert_str_eq(ddb_strerror(DDB_ERR_COUNT_), "unknown error");
	cr_assert_eq(ddb_err_scache(DDB_ENOTDDB), SCACHE_ERECORD);
	cr_assert_eq(ddb_err_scache(DDB_ETOOBIG), SCACHE_ETOOBIG);
}

/* ---- fuzz --------------------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t pick(size_t n)
{
	return (size_t)(next() % n);
}

static const char *const pieces[] = {"{\"N\":\"1e999\"}",
                                     "{\"S\":1}",
                                     "{\"M\":{}}",
                                     "{\"L\":[",
                                     "]}",
                                     "{\"B\":\"==\"}",
                                     "{\"NS\":[]}",
                                     "\"MICROSECOND\"",
                                     "1732451186412345",
                                     "-1",
                                     "null",
                                     "{\"NULL\":true}",
                                     "\\u0000",
                                     "\"REMOVE\"",
                                     "{\"SS\":[\"a\",{}]}",
                                     "\"",
                                     "{",
                                     "}",
                                     "[",
                                     "]",
                                     ",",
                                     ":",
                                     "9999999999999999999999",
                                     "{\"BS\":[\"AA==\"]}",
                                     "\"aws:dynamodb\"",
                                     "1.5e308"};

/* One random mutation of buf (len bytes, capacity cap); returns the new length. */
static size_t mutate(char *buf, size_t len, size_t cap)
{
	switch (pick(5)) {
	case 0: /* flip a byte */
		if (len)
			buf[pick(len)] = (char)next();
		return len;
	case 1: /* delete a span */
		if (len) {
			size_t at = pick(len), n = 1 + pick(len - at < 16 ? len - at : 16);
			memmove(buf + at, buf + at + n, len - at - n);
			return len - n;
		}
		return len;
	case 2: /* truncate */
		return len ? pick(len) : 0;
	case 3: { /* insert a piece */
		const char *p = pieces[pick(N_OF(pieces))];
		size_t n = strlen(p), at = len ? pick(len + 1) : 0;
		if (len + n >= cap)
			return len;
		memmove(buf + at + n, buf + at, len - at);
		memcpy(buf + at, p, n);
		return len + n;
	}
	default: { /* duplicate a span */
		if (!len)
			return len;
		size_t at = pick(len), n = 1 + pick(len - at < 32 ? len - at : 32), to = pick(len);
		if (len + n >= cap)
			return len;
		char tmp[32];
		memcpy(tmp, buf + at, n);
		memmove(buf + to + n, buf + to, len - to);
		memcpy(buf + to, tmp, n);
		return len + n;
	}
	}
}

static int valid_json(const char *s, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(200);
	json_object *o = json_tokener_parse_ex(tok, s, (int)len);
	int ok = o && json_tokener_get_error(tok) == json_tokener_success &&
	         json_tokener_get_parse_end(tok) == len;
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

Test(ddb_fuzz, mutated_records_and_images_never_crash, .timeout = 300)
{
	const char *image =
	    "{\"id\":{\"S\":\"7\"},\"n\":{\"N\":\"-1.5E3\"},\"b\":{\"B\":\"AAEC\"},"
	    "\"t\":{\"BOOL\":true},\"z\":{\"NULL\":true},\"m\":{\"M\":{\"k\":{\"L\":[{"
	    "\"SS\":[\"a\"]},{\"NS\":[\"1\",\"0.1\"]},{\"BS\":[\"AA==\"]}]}}}}";
	const ddb_table users = {.table = "users", .key = {"id"}};
	enum { CAP = 4096 };
	char *buf = malloc(CAP);
	size_t ok_records = 0, ok_images = 0;
	for (int round = 0; round < 20000; round++) {
		int which = round & 1;
		const char *seed = which ? image : section5;
		size_t len = strlen(seed);
		memcpy(buf, seed, len);
		for (size_t m = 1 + pick(4); m > 0; m--)
			len = mutate(buf, len, CAP);
		char why[256];
		if (!which) {
			ddb_change c;
			ddb_err err = ddb_change_parse(buf, len, round & 2 ? DDB_SHAPE_STREAMS : 0,
			                               &c, why, sizeof why);
			cr_assert(err == DDB_OK || err == DDB_ENOTDDB || err == DDB_ERECORD,
			          "round %d: %d", round, err);
			if (err != DDB_OK) {
				cr_assert_null(c.root);
				continue;
			}
			ok_records++;
			char *out = NULL;
			size_t out_len;
			err = ddb_key_id(&users, c.keys, &out, &out_len, why, sizeof why);
			cr_assert(err == DDB_OK || err == DDB_EKEY || err == DDB_ETYPE ||
			          err == DDB_ENUMBER || err == DDB_EBASE64);
			free(out);
			if (c.new_image) {
				err = ddb_image_to_json(c.new_image, 1024, &out, &out_len, why,
				                        sizeof why);
				cr_assert(err != DDB_EINVAL && err != DDB_ENOMEM, "round %d",
				          round);
				if (err == DDB_OK)
					cr_assert(valid_json(out, out_len), "round %d: %s", round,
					          out);
				free(out);
			}
			ddb_change_clear(&c);
		} else {
			json_tokener *tok = json_tokener_new_ex(200);
			json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
			if (json_tokener_get_error(tok) != json_tokener_success)
				o = (json_object_put(o), NULL);
			json_tokener_free(tok);
			char *out = NULL;
			size_t out_len;
			ddb_err err = ddb_image_to_json(o, 0, &out, &out_len, why, sizeof why);
			if (!json_object_is_type(o, json_type_object))
				cr_assert_eq(err, DDB_EINVAL);
			else
				cr_assert(err != DDB_EINVAL && err != DDB_ENOMEM, "round %d",
				          round);
			if (err == DDB_OK) {
				ok_images++;
				cr_assert(valid_json(out, out_len), "round %d: %s", round, out);
			}
			free(out);
			json_object_put(o);
		}
	}
	free(buf);
	/* the mutations are not all fatal: both paths were exercised on success too */
	cr_assert_gt(ok_records, 100);
	cr_assert_gt(ok_images, 100);
}

Test(ddb, the_same_change_delivered_again_is_stale_and_another_one_at_the_same_time_ties)
{
	ddb_versions *v = ddb_versions_new(0, 0);
	cr_assert_not_null(v);
	/* on Kinesis: no shard, the eventID as seq */
	cr_assert_eq(ddb_versions_record(v, "a", 1, 100, NULL, "ev-1", NULL), DDB_OK);
	cr_assert_eq(ddb_versions_check(v, "a", 1, 100, NULL, "ev-1"), DDB_ORDER_STALE);
	cr_assert_eq(ddb_versions_check(v, "a", 1, 100, NULL, "ev-2"), DDB_ORDER_TIE);
	cr_assert_eq(ddb_versions_check(v, "a", 1, 100, "s", "ev-1"), DDB_ORDER_TIE,
	             "another shard: not known to be the same change");
	ddb_order o;
	cr_assert_eq(ddb_versions_record(v, "a", 1, 100, NULL, "ev-2", &o), DDB_OK);
	cr_assert_eq(o, DDB_ORDER_TIE);
	cr_assert_eq(ddb_versions_check(v, "a", 1, 100, NULL, "ev-1"), DDB_ORDER_TIE,
	             "once tied, a copy of the first change is not the change applied");
	cr_assert_eq(ddb_versions_check(v, "a", 1, 101, NULL, "ev-3"), DDB_ORDER_NEWER);
	ddb_versions_free(v);
}
