/*
 * kinesis.c: the Kinesis Data Streams JSON 1.1 API: the service's parameters for the AWS
 * client core (aws.c), the settings of one stream, and every request this library sends
 * and every answer it reads, so the reader, the shard lineage and the publisher never
 * touch the wire format themselves.
 *
 * Answers are read leniently where the service varies (kinesalite leaves out fields AWS
 * sends) and strictly where a wrong guess would lose invalidations: a ListShards answer
 * without Shards, or a shard without an ID, is malformed; a PutRecords answer without one
 * entry per record is too.
 */
#include "kinesis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const aws_service kinesis_service = {
    .name = "kinesis",
    .label = "Kinesis",
    .target_prefix = "Kinesis_20131202",
    .content_type = "application/x-amz-json-1.1",
    .endpoint_env = "AWS_ENDPOINT_URL_KINESIS",
};

/* The stream check (DescribeStreamSummary: 20 calls a second per account, for all
 * readers): every 10 s unless configured, at most once a second whatever is configured. */
#define STREAM_CHECK_DEFAULT_MS 10000u
#define STREAM_CHECK_MIN_MS     1000u

/* ---- settings ------------------------------------------------------------------ */

static void tables_free(scache_dynamodb_table *t, size_t n)
{
	for (size_t i = 0; t && i < n; i++) {
		free((char *)t[i].table);
		free((char *)t[i].partition_key);
		free((char *)t[i].sort_key);
		free((char *)t[i].source);
	}
	free(t);
}

/* A deep copy of n tables into *out (NULL when n is 0). SCACHE_ENOMEM. */
static scache_err tables_copy(const scache_dynamodb_table *src, size_t n,
                              scache_dynamodb_table **out)
{
	*out = NULL;
	if (!n)
		return SCACHE_OK;
	scache_dynamodb_table *t = calloc(n, sizeof *t);
	if (!t)
		return SCACHE_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *in[4] = {src[i].table, src[i].partition_key, src[i].sort_key,
		                     src[i].source};
		char *copy[4] = {NULL, NULL, NULL, NULL};
		for (int j = 0; j < 4; j++)
			if (in[j] && !(copy[j] = strdup(in[j]))) {
				for (int k = 0; k < j; k++)
					free(copy[k]);
				tables_free(t, i);
				return SCACHE_ENOMEM;
			}
		t[i] = (scache_dynamodb_table){.table = copy[0],
		                               .partition_key = copy[1],
		                               .sort_key = copy[2],
		                               .source = copy[3],
		                               .mode = src[i].mode};
	}
	*out = t;
	return SCACHE_OK;
}

/* The mistakes in a list of tables that no retry fixes. */
static scache_err tables_check(const scache_dynamodb_table *t, size_t n, char *errbuf,
                               size_t errlen)
{
	if (n && !t) {
		util_fmt(errbuf, errlen, "dynamodb_ntables is %zu but dynamodb_tables is NULL", n);
		return SCACHE_ECONFIG;
	}
	for (size_t i = 0; i < n; i++) {
		if (!t[i].table || !t[i].table[0]) {
			util_fmt(errbuf, errlen, "dynamodb_tables[%zu]: no table name", i);
			return SCACHE_ECONFIG;
		}
		if (!t[i].partition_key || !t[i].partition_key[0]) {
			util_fmt(errbuf, errlen, "DynamoDB table '%s': no partition_key",
			         t[i].table);
			return SCACHE_ECONFIG;
		}
		if (t[i].mode != SCACHE_DYNAMODB_INVALIDATE &&
		    t[i].mode != SCACHE_DYNAMODB_REFRESH) {
			util_fmt(errbuf, errlen, "DynamoDB table '%s': unknown mode %d", t[i].table,
			         (int)t[i].mode);
			return SCACHE_ECONFIG;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(t[i].table, t[j].table) == 0) {
				util_fmt(errbuf, errlen, "DynamoDB table '%s' is named twice",
				         t[i].table);
				return SCACHE_ECONFIG;
			}
	}
	return SCACHE_OK;
}

void kinesis_settings_clear(kinesis_settings *s)
{
	if (!s)
		return;
	aws_settings_clear(&s->aws);
	free(s->stream_name);
	tables_free(s->dynamodb_tables, s->dynamodb_ntables);
	memset(s, 0, sizeof *s);
}

scache_err kinesis_settings_resolve(const scache_stream_config *config, int need_stream,
                                    kinesis_settings *out, char *errbuf, size_t errlen)
{
	static const scache_stream_config zero;
	const scache_stream_config *cfg = config ? config : &zero;

	if (!out)
		return SCACHE_EINVAL;
	memset(out, 0, sizeof *out);
	util_fmt(errbuf, errlen, "%s", "");
	if (need_stream && !(cfg->stream_name && *cfg->stream_name)) {
		util_fmt(errbuf, errlen,
		         "no Kinesis stream name: set stream_name (scachectl: "
		         "--stream or SCACHE_STREAM)");
		return SCACHE_ECONFIG;
	}
	if (tables_check(cfg->dynamodb_tables, cfg->dynamodb_ntables, errbuf, errlen))
		return SCACHE_ECONFIG;
	aws_config ac = {
	    .region = cfg->region,
	    .endpoint = cfg->endpoint,
	    .access_key_id = cfg->access_key_id,
	    .secret_access_key = cfg->secret_access_key,
	    .session_token = cfg->session_token,
	    .connect_timeout_ms = cfg->connect_timeout_ms,
	    .timeout_ms = cfg->timeout_ms,
	    .max_retries = cfg->max_retries,
	    .backoff_base_ms = cfg->backoff_base_ms,
	    .backoff_max_ms = cfg->backoff_max_ms,
	    .ca_file = cfg->ca_file,
	};
	scache_err err = aws_settings_resolve(&kinesis_service, &ac, &out->aws, errbuf, errlen);
	if (err)
		return err;
	if (cfg->stream_name && !(out->stream_name = strdup(cfg->stream_name))) {
		kinesis_settings_clear(out);
		util_fmt(errbuf, errlen, "out of memory");
		return SCACHE_ENOMEM;
	}
	out->list_shards_interval_ms =
	    cfg->list_shards_interval_ms ? cfg->list_shards_interval_ms : 60000;
	out->stream_check_interval_ms =
	    cfg->stream_check_interval_ms ? cfg->stream_check_interval_ms : STREAM_CHECK_DEFAULT_MS;
	if (out->stream_check_interval_ms < STREAM_CHECK_MIN_MS)
		out->stream_check_interval_ms = STREAM_CHECK_MIN_MS;
	out->format = cfg->format;
	out->publish_timeout_ms = cfg->publish_timeout_ms > 0 ? cfg->publish_timeout_ms : 5000;
	if (tables_copy(cfg->dynamodb_tables, cfg->dynamodb_ntables, &out->dynamodb_tables)) {
		kinesis_settings_clear(out);
		util_fmt(errbuf, errlen, "out of memory");
		return SCACHE_ENOMEM;
	}
	out->dynamodb_ntables = cfg->dynamodb_ntables;
	return SCACHE_OK;
}

scache_err kinesis_settings_copy(kinesis_settings *dst, const kinesis_settings *src)
{
	*dst = *src;
	dst->stream_name = NULL;
	dst->dynamodb_tables = NULL;
	dst->dynamodb_ntables = 0;
	if (aws_settings_copy(&dst->aws, &src->aws)) {
		memset(dst, 0, sizeof *dst);
		return SCACHE_ENOMEM;
	}
	if ((src->stream_name && !(dst->stream_name = strdup(src->stream_name))) ||
	    tables_copy(src->dynamodb_tables, src->dynamodb_ntables, &dst->dynamodb_tables)) {
		kinesis_settings_clear(dst);
		return SCACHE_ENOMEM;
	}
	dst->dynamodb_ntables = src->dynamodb_ntables;
	return SCACHE_OK;
}

scache_err kinesis_client_new(const kinesis_settings *s, aws_client **out, char *errbuf,
                              size_t errlen)
{
	if (!s)
		return SCACHE_EINVAL;
	return aws_client_new(&kinesis_service, &s->aws, out, errbuf, errlen);
}

int kinesis_seq_cmp(const char *a, const char *b)
{
	while (*a == '0' && a[1])
		a++;
	while (*b == '0' && b[1])
		b++;
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	int c = strcmp(a, b);
	return (c > 0) - (c < 0);
}

/* ---- request builders ---------------------------------------------------------- */

/* Add v (new, maybe NULL) to o under key; on failure v is put. */
static int add_owned(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -1;
	if (json_object_object_add(o, key, v)) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int add_str(json_object *o, const char *key, const char *val)
{
	return add_owned(o, key, json_object_new_string(val));
}

static int add_int(json_object *o, const char *key, int val)
{
	return add_owned(o, key, json_object_new_int(val));
}

json_object *kinesis_req_stream(const char *stream)
{
	json_object *o = json_object_new_object();
	if (o && add_str(o, "StreamName", stream)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *kinesis_req_list_shards(const char *stream, const char *next_token)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	/* with NextToken the stream name must be left out */
	if ((next_token ? add_str(o, "NextToken", next_token) : add_str(o, "StreamName", stream)) ||
	    add_int(o, "MaxResults", 10000)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *kinesis_req_get_shard_iterator(const char *stream, const char *shard, const char *type,
                                            const char *seq, double timestamp)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	int bad = add_str(o, "StreamName", stream) || add_str(o, "ShardId", shard) ||
	          add_str(o, "ShardIteratorType", type);
	if (!bad && seq &&
	    (!strcmp(type, "AT_SEQUENCE_NUMBER") || !strcmp(type, "AFTER_SEQUENCE_NUMBER")))
		bad = add_str(o, "StartingSequenceNumber", seq);
	if (!bad && !strcmp(type, "AT_TIMESTAMP"))
		bad = add_owned(o, "Timestamp", json_object_new_double(timestamp));
	if (bad) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *kinesis_req_get_records(const char *iterator, int limit)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	if (add_str(o, "ShardIterator", iterator) || (limit > 0 && add_int(o, "Limit", limit))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

scache_err kinesis_parse_shards(json_object *body, kinesis_shard **out, size_t *n,
                                const char **next_token)
{
	json_object *arr = aws_json_array(body, "Shards");
	*out = NULL;
	*n = 0;
	if (next_token)
		*next_token = aws_json_str(body, "NextToken");
	if (!arr)
		return SCACHE_ESERVICE;
	size_t len = json_object_array_length(arr);
	kinesis_shard *s = calloc(len ? len : 1, sizeof *s);
	if (!s)
		return SCACHE_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(arr, i), *range;
		s[i].id = aws_json_str(e, "ShardId");
		s[i].parent = aws_json_str(e, "ParentShardId");
		s[i].adjacent_parent = aws_json_str(e, "AdjacentParentShardId");
		if (json_object_object_get_ex(e, "SequenceNumberRange", &range)) {
			s[i].starting_seq = aws_json_str(range, "StartingSequenceNumber");
			s[i].ending_seq = aws_json_str(range, "EndingSequenceNumber");
		}
		if (!s[i].id || !*s[i].id || strlen(s[i].id) >= 64) {
			free(s);
			return SCACHE_ESERVICE;
		}
	}
	*out = s;
	*n = len;
	return SCACHE_OK;
}

json_object *kinesis_req_put_records(const char *stream, const kinesis_put_entry *e, size_t n)
{
	json_object *o = kinesis_req_stream(stream), *arr = json_object_new_array();
	if (!o || !arr || json_object_object_add(o, "Records", arr)) {
		json_object_put(arr);
		json_object_put(o);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		size_t bl;
		char *b64 = util_b64_encode((const unsigned char *)e[i].data, e[i].len, &bl);
		json_object *rec = json_object_new_object();
		int bad = !rec || json_object_array_add(arr, rec);
		if (bad)
			json_object_put(rec); /* not taken by arr */
		bad = bad || !b64 || bl > (size_t)INT32_MAX;
		bad = bad || add_owned(rec, "Data", json_object_new_string_len(b64, (int)bl));
		free(b64);
		if (bad || add_str(rec, "PartitionKey", e[i].partition_key)) {
			json_object_put(o);
			return NULL;
		}
	}
	return o;
}

/* ---- answers ------------------------------------------------------------------- */

void kinesis_parse_summary(json_object *body, kinesis_summary *out)
{
	json_object *sum, *v;
	out->created = 0;
	out->open_shards = -1;
	out->retention_hours = 0;
	if (!body || !json_object_object_get_ex(body, "StreamDescriptionSummary", &sum))
		return;
	if (json_object_object_get_ex(sum, "StreamCreationTimestamp", &v))
		out->created = json_object_get_double(v);
	if (json_object_object_get_ex(sum, "OpenShardCount", &v))
		out->open_shards = (long)json_object_get_int64(v);
	if (json_object_object_get_ex(sum, "RetentionPeriodHours", &v) &&
	    json_object_get_int(v) > 0)
		out->retention_hours = json_object_get_int(v);
}

const char *kinesis_parse_iterator(json_object *body)
{
	return aws_json_str(body, "ShardIterator");
}

scache_err kinesis_parse_records(json_object *body, kinesis_records *out)
{
	json_object *v;
	memset(out, 0, sizeof *out);
	out->records = aws_json_array(body, "Records");
	if (!out->records)
		return SCACHE_ESERVICE;
	out->n = json_object_array_length(out->records);
	if (json_object_object_get_ex(body, "MillisBehindLatest", &v))
		out->behind = json_object_get_int64(v);
	out->next = aws_json_str(body, "NextShardIterator");
	json_object *children = aws_json_array(body, "ChildShards");
	out->children = children && json_object_array_length(children) > 0;
	return SCACHE_OK;
}

void kinesis_record_at(const kinesis_records *r, size_t i, const char **data, const char **seq)
{
	json_object *rec = json_object_array_get_idx(r->records, i);
	*data = aws_json_str(rec, "Data");
	*seq = aws_json_str(rec, "SequenceNumber");
}

scache_err kinesis_parse_put_records(json_object *body, size_t n, kinesis_put_outcome *out)
{
	json_object *arr = aws_json_array(body, "Records");
	if (!arr || json_object_array_length(arr) != n)
		return SCACHE_ESERVICE;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		out[i].seq = aws_json_str(e, "SequenceNumber");
		out[i].shard = aws_json_str(e, "ShardId");
		out[i].code = aws_json_str(e, "ErrorCode");
		out[i].message = aws_json_str(e, "ErrorMessage");
	}
	return SCACHE_OK;
}
