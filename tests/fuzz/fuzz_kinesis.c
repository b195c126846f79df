/*
 * fuzz_kinesis.c: every Kinesis answer the library reads (lib/kinesis.c, lib/aws_answer.c,
 * lib/shards.c). The input is one HTTP answer body. Read as an error answer
 * (aws_parse_error, aws_parse_error_text, aws_classify) and masked (aws_redact: a
 * credential never shows whole in the result); parsed as JSON and read as ListShards
 * (kinesis_parse_shards, then each shard added to a shard table as the lineage does),
 * DescribeStreamSummary, GetShardIterator, GetRecords (each record's Data decoded from
 * base64 and read as an scache record, as the reader does; sequence numbers compared)
 * and PutRecords (the entry count right and wrong).
 */
#include "fuzz.h"

#include <string.h>

#include "aws.h"
#include "kinesis.h"
#include "record.h"
#include "shards.h"
#include "util.h"

static const char secret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
static const char key_id[] = "AKIAIOSFODNN7EXAMPLE";

static void errors(const char *body, size_t len)
{
	char name[128], msg[256], red[512];
	aws_parse_error(body, len, name, sizeof name, msg, sizeof msg);
	FUZZ_CHECK(strlen(name) < sizeof name && strlen(msg) < sizeof msg);
	const char *text;
	size_t tl;
	json_object *o = aws_parse_error_text(body, len, name, sizeof name, 300, &text, &tl);
	FUZZ_CHECK(tl == 0 || text != NULL);
	json_object_put(o);
	aws_fail f = aws_classify(len ? 400 + (unsigned char)body[0] % 200 : 500, name);
	FUZZ_CHECK(f >= AWS_FAIL_NONE && f <= AWS_FAIL_OTHER);
	aws_redact(red, sizeof red, body, len, key_id, secret, NULL);
	FUZZ_CHECK(strlen(red) < sizeof red);
	FUZZ_CHECK(!strstr(red, secret) && !strstr(red, key_id));
	aws_redact(red, 17, body, len, key_id, secret, secret); /* cut short */
	FUZZ_CHECK(strlen(red) < 17);
}

static void no_event(void *arg, const char *why)
{
	(void)arg;
	(void)why;
}

static void no_fail(void *arg, scache_err err, const char *msg)
{
	(void)arg;
	(void)err;
	(void)msg;
}

static void list_shards(json_object *body)
{
	kinesis_shard *ks;
	size_t n;
	const char *next;
	scache_err err = kinesis_parse_shards(body, &ks, &n, &next);
	FUZZ_CHECK(err == SCACHE_OK || err == SCACHE_ESERVICE || err == SCACHE_ENOMEM);
	if (err != SCACHE_OK) {
		FUZZ_CHECK(ks == NULL && n == 0);
		return;
	}
	shard_table t;
	shards_events ev = {.gap = no_event, .fail = no_fail};
	shards_init(&t, NULL, "stream", &ev, 10000);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(ks[i].id && ks[i].id[0] && strlen(ks[i].id) < 64);
		if (shards_find(&t, ks[i].id))
			continue;
		shard *s = shards_add(&t, &ks[i], START_TRIM_HORIZON);
		if (!s)
			break;
		FUZZ_CHECK(strcmp(s->id, ks[i].id) == 0 && shards_find(&t, ks[i].id) == s);
	}
	for (size_t i = 0; i < t.n; i++) {
		if (shard_readable(&t, &t.shards[i]))
			shard_finish(&t, &t.shards[i]);
	}
	while (t.n)
		shards_remove(&t, 0);
	shards_free(&t);
	free(ks);
}

static void get_records(json_object *body)
{
	kinesis_records r;
	scache_err err = kinesis_parse_records(body, &r);
	FUZZ_CHECK(err == SCACHE_OK || err == SCACHE_ESERVICE);
	if (err)
		return;
	const char *prev = NULL;
	for (size_t i = 0; i < r.n && i < 64; i++) {
		const char *data, *seq;
		kinesis_record_at(&r, i, &data, &seq);
		if (seq && prev) {
			int ab = kinesis_seq_cmp(seq, prev), ba = kinesis_seq_cmp(prev, seq);
			FUZZ_CHECK(ab == -ba && ab >= -1 && ab <= 1);
		}
		if (seq)
			prev = seq;
		if (!data)
			continue;
		size_t rawlen;
		unsigned char *raw = util_b64_decode(data, strlen(data), &rawlen);
		if (!raw)
			continue;
		record_keys k;
		memset(&k, 0, sizeof k);
		char why[200];
		err = record_parse(SCACHE_RECORD_SCACHE, raw, rawlen, &k, why, sizeof why);
		FUZZ_CHECK(err == SCACHE_OK || err == SCACHE_ERECORD || err == SCACHE_ENOMEM);
		record_keys_clear(&k);
		size_t back_len, again_len;
		char *back = util_b64_encode(raw, rawlen, &back_len);
		unsigned char *again = back ? util_b64_decode(back, back_len, &again_len) : NULL;
		if (again) { /* decoded bytes survive encode, decode (the unused bits of a
			        last quantum need not be zero, as most decoders accept) */
			FUZZ_CHECK(again_len == rawlen && memcmp(again, raw, rawlen) == 0);
			FUZZ_CHECK(back_len == strlen(data));
		}
		free(again);
		free(back);
		free(raw);
	}
}

static void put_records(json_object *body)
{
	json_object *arr = aws_json_array(body, "Records");
	size_t n = arr ? json_object_array_length(arr) : 0;
	kinesis_put_outcome *out = calloc(n + 1, sizeof *out);
	if (!out)
		return;
	scache_err err = kinesis_parse_put_records(body, n, out);
	FUZZ_CHECK(arr ? err == SCACHE_OK : err == SCACHE_ESERVICE);
	FUZZ_CHECK(kinesis_parse_put_records(body, n + 1, out) == SCACHE_ESERVICE);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	errors(size ? body : "", size);

	json_tokener *tok = json_tokener_new();
	if (!tok)
		return 0;
	json_object *o =
	    size <= INT32_MAX ? json_tokener_parse_ex(tok, size ? body : "", (int)size) : NULL;
	json_tokener_free(tok);
	list_shards(o);
	kinesis_summary sum;
	kinesis_parse_summary(o, &sum);
	(void)kinesis_parse_iterator(o);
	get_records(o);
	put_records(o);
	json_object_put(o);
	return 0;
}
