/*
 * Unit tests of the Kinesis layer without a network: request building, headers, error
 * parsing and classification, backoff bounds, base64, settings resolution, record
 * parsing and building, and packing within Kinesis' limits.
 */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis.h"
#include "publish.h"
#include "record.h"

static const char *plain(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                             JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ---- requests and headers ---------------------------------------------------------- */

Test(request, list_shards_names_the_stream_or_only_the_token)
{
	json_object *a = kinesis_req_list_shards("orders", NULL);
	json_object *b = kinesis_req_list_shards("orders", "tok==");
	cr_assert_str_eq(plain(a), "{\"StreamName\":\"orders\",\"MaxResults\":10000}");
	cr_assert_str_eq(plain(b), "{\"NextToken\":\"tok==\",\"MaxResults\":10000}");
	json_object_put(a);
	json_object_put(b);
}

Test(request, get_shard_iterator_types)
{
	json_object *a =
	    kinesis_req_get_shard_iterator("s", "shardId-000000000001", "LATEST", NULL, 0);
	json_object *b = kinesis_req_get_shard_iterator("s", "shardId-000000000001",
	                                                "AFTER_SEQUENCE_NUMBER", "4959", 0);
	json_object *c = kinesis_req_get_shard_iterator("s", "shardId-000000000001", "AT_TIMESTAMP",
	                                                NULL, 1732451186.5);
	json_object *d =
	    kinesis_req_get_shard_iterator("s", "shardId-000000000001", "TRIM_HORIZON", "4959", 0);
	cr_assert_str_eq(plain(a), "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000001\","
	                           "\"ShardIteratorType\":\"LATEST\"}");
	cr_assert_str_eq(plain(b), "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000001\","
	                           "\"ShardIteratorType\":\"AFTER_SEQUENCE_NUMBER\","
	                           "\"StartingSequenceNumber\":\"4959\"}");
	cr_assert_str_eq(plain(c),
	                 "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000001\","
	                 "\"ShardIteratorType\":\"AT_TIMESTAMP\",\"Timestamp\":1732451186.5}");
	/* TRIM_HORIZON never carries a sequence number (the service rejects it) */
	cr_assert_str_eq(plain(d), "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000001\","
	                           "\"ShardIteratorType\":\"TRIM_HORIZON\"}");
	json_object_put(a);
	json_object_put(b);
	json_object_put(c);
	json_object_put(d);
}

Test(request, get_records_with_limit)
{
	json_object *a = kinesis_req_get_records("AAAA/+==", 10000);
	cr_assert_str_eq(plain(a), "{\"ShardIterator\":\"AAAA/+==\",\"Limit\":10000}");
	json_object_put(a);
}

Test(request, headers_name_the_operation_and_carry_the_token)
{
	struct curl_slist *h = aws_headers(&kinesis_service, "GetRecords", NULL), *t;
	const char *want[] = {"Content-Type: application/x-amz-json-1.1",
	                      "X-Amz-Target: Kinesis_20131202.GetRecords", "Expect:"};
	size_t i = 0;
	for (t = h; t; t = t->next, i++) {
		cr_assert_lt(i, 3);
		cr_assert_str_eq(t->data, want[i]);
	}
	cr_assert_eq(i, 3);
	curl_slist_free_all(h);
	h = aws_headers(&kinesis_service, "PutRecords", "tok123");
	for (t = h, i = 0; t->next; t = t->next)
		i++;
	cr_assert_eq(i, 3);
	cr_assert_str_eq(t->data, "X-Amz-Security-Token: tok123");
	curl_slist_free_all(h);
}

Test(request, endpoint_in_messages_never_shows_userinfo)
{
	char b[128];
	cr_assert_str_eq(aws_endpoint_shown("https://AKID:secret@host.example/x", b, sizeof b),
	                 "https://host.example/x");
	cr_assert_str_eq(aws_endpoint_shown("http://127.0.0.1:4567", b, sizeof b),
	                 "http://127.0.0.1:4567");
	cr_assert_str_eq(aws_endpoint_shown("http://h/p@q", b, sizeof b), "http://h/p@q");
	/* a password with an unencoded '@' (or '?', '#') still shows nothing of itself */
	cr_assert_str_eq(aws_endpoint_shown("https://AKID:se@cr@host/x", b, sizeof b),
	                 "https://host/x");
	cr_assert_str_eq(aws_endpoint_shown("https://AKID:s?e#c@host", b, sizeof b),
	                 "https://host");
}

Test(request, sigv4_parameter)
{
	char b[64];
	cr_assert_str_eq(aws_sigv4_param(&kinesis_service, "eu-west-1", b, sizeof b),
	                 "aws:amz:eu-west-1:kinesis");
}

/* ---- answers ------------------------------------------------------------------------ */

Test(answers, list_shards_with_parents_ranges_and_token)
{
	json_object *o = json_tokener_parse(
	    "{\"Shards\":[{\"ShardId\":\"shardId-000000000000\",\"HashKeyRange\":{},"
	    "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"100\","
	    "\"EndingSequenceNumber\":\"200\"}},"
	    "{\"ShardId\":\"shardId-000000000003\",\"ParentShardId\":\"shardId-000000000001\","
	    "\"AdjacentParentShardId\":\"shardId-000000000002\","
	    "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"300\"}}],"
	    "\"NextToken\":\"next==\"}");
	kinesis_shard *s;
	size_t n;
	const char *token;
	cr_assert_eq(kinesis_parse_shards(o, &s, &n, &token), SCACHE_OK);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(token, "next==");
	cr_assert_str_eq(s[0].id, "shardId-000000000000");
	cr_assert_null(s[0].parent);
	cr_assert_str_eq(s[0].starting_seq, "100");
	cr_assert_str_eq(s[0].ending_seq, "200");
	cr_assert_str_eq(s[1].parent, "shardId-000000000001");
	cr_assert_str_eq(s[1].adjacent_parent, "shardId-000000000002");
	cr_assert_null(s[1].ending_seq);
	free(s);
	json_object_put(o);
}

Test(answers, malformed_list_shards_is_refused)
{
	const char *bad[] = {"{}", "{\"Shards\":{}}", "{\"Shards\":[{\"ParentShardId\":\"x\"}]}",
	                     "{\"Shards\":[{\"ShardId\":\"\"}]}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_object *o = json_tokener_parse(bad[i]);
		kinesis_shard *s = (kinesis_shard *)1;
		size_t n = 9;
		cr_assert_eq(kinesis_parse_shards(o, &s, &n, NULL), SCACHE_ESERVICE, "%s", bad[i]);
		cr_assert_null(s);
		cr_assert_eq(n, 0);
		json_object_put(o);
	}
	json_object *o = json_tokener_parse("{\"Shards\":[]}");
	kinesis_shard *s;
	size_t n;
	cr_assert_eq(kinesis_parse_shards(o, &s, &n, NULL), SCACHE_OK);
	cr_assert_eq(n, 0);
	free(s);
	json_object_put(o);
}

/* ---- errors ------------------------------------------------------------------------- */

Test(errors, type_with_namespace_and_message)
{
	char name[64], msg[200];
	const char *body = "{\"__type\":\"com.amazonaws.kinesis.v20131202#"
	                   "ResourceNotFoundException\",\"message\":\"Stream x not found.\"}";
	aws_parse_error(body, strlen(body), name, sizeof name, msg, sizeof msg);
	cr_assert_str_eq(name, "ResourceNotFoundException");
	cr_assert_str_eq(msg, "Stream x not found.");
}

Test(errors, capital_message_and_plain_type)
{
	char name[64], msg[200];
	const char *body = "{\"__type\":\"ExpiredIteratorException\",\"Message\":\"old\"}";
	aws_parse_error(body, strlen(body), name, sizeof name, msg, sizeof msg);
	cr_assert_str_eq(name, "ExpiredIteratorException");
	cr_assert_str_eq(msg, "old");
}

Test(errors, body_that_is_not_json_is_kept_as_printable_text)
{
	char name[64], msg[200];
	const char *body = "<html>\nBad Gateway</html>";
	aws_parse_error(body, strlen(body), name, sizeof name, msg, sizeof msg);
	cr_assert_str_eq(name, "");
	cr_assert_str_eq(msg, "<html>?Bad Gateway</html>");
	aws_parse_error(NULL, 0, name, sizeof name, msg, sizeof msg);
	cr_assert_str_eq(name, "");
	cr_assert_str_eq(msg, "");
}

Test(errors, credentials_are_masked_before_a_message_is_cut)
{
	const char *key = "AKIDEXAMPLE12345", *secret = "wJalrXUtnFEMIbPxRfiCY",
	           *token = "FQoGZXIvYXdzEJr";
	const char *echo =
	    "refused; headers: X-Amz-Security-Token: FQoGZXIvYXdzEJr; Authorization: "
	    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE12345/20261201/us-east-1/"
	    "kinesis/aws4_request, with secret wJalrXUtnFEMIbPxRfiCY\tend";
	char out[512];
	aws_redact(out, sizeof out, echo, strlen(echo), key, secret, token);
	cr_assert_str_eq(out, "refused; headers: X-Amz-Security-Token: ****; Authorization: "
	                      "AWS4-HMAC-SHA256 Credential=****2345/20261201/us-east-1/"
	                      "kinesis/aws4_request, with secret ****?end");

	/* cut after masking: never a start of a credential at the cut */
	char small[40];
	aws_redact(small, sizeof small, "Credential=AKIDEXAMPLE12345/x", 29, key, secret, token);
	cr_assert_str_eq(small, "Credential=****2345/x");
	aws_redact(small, 16, "Credential=AKIDEXAMPLE12345/x", 29, key, secret, token);
	cr_assert_str_eq(small, "Credential=****");

	/* a credential cut off at the end of the text (4 characters or more) */
	aws_redact(out, sizeof out, "Credential=AKIDEXAM", 19, key, secret, token);
	cr_assert_str_eq(out, "Credential=****");
	aws_redact(out, sizeof out, "secret wJalrX", 13, key, secret, token);
	cr_assert_str_eq(out, "secret ****");
	aws_redact(out, sizeof out, "ends in AKI", 11, key, secret, token);
	cr_assert_str_eq(out, "ends in AKI"); /* 3 characters tell nothing */

	/* a short key ID is masked whole; absent credentials mask nothing */
	aws_redact(out, sizeof out, "Credential=AKID1234/", 20, "AKID1234", NULL, NULL);
	cr_assert_str_eq(out, "Credential=****/");
	aws_redact(out, sizeof out, "plain", 5, NULL, NULL, NULL);
	cr_assert_str_eq(out, "plain");
}

Test(errors, a_credential_too_short_to_be_real_garbles_no_word)
{
	/* the README's placeholders: secret "y", key ID "x" */
	const char *text = "DescribeStreamSummary at http://127.0.0.1:4567: Failure when "
	                   "receiving data from the peer, 0 bytes received (yyyy)";
	char out[512];
	aws_redact(out, sizeof out, text, strlen(text), "x", "y", "yy");
	cr_assert_str_eq(out, text);
	/* 7 characters are not enough either; 8 are */
	aws_redact(out, sizeof out, "key secret7 and secret88", 24, NULL, "secret7", NULL);
	cr_assert_str_eq(out, "key secret7 and secret88");
	aws_redact(out, sizeof out, "key secret88 and secret7", 24, NULL, "secret88", NULL);
	cr_assert_str_eq(out, "key **** and secret7");
}

Test(errors, a_real_length_secret_in_a_quoted_header_is_masked_wherever_it_stands)
{
	const char *secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"; /* 40, AWS's example */
	const char *token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6";
	char text[512], out[512];
	snprintf(text, sizeof text,
	         "{\"echo\":\"X-Secret: \\\"%s\\\"; X-Amz-Security-Token: %s\"} glued%sglued",
	         secret, token, secret);
	aws_redact(out, sizeof out, text, strlen(text), "AKIAIOSFODNN7EXAMPLE", secret, token);
	cr_assert_str_eq(out, "{\"echo\":\"X-Secret: \\\"****\\\"; X-Amz-Security-Token: ****\"} "
	                      "glued****glued");
	/* JSON may escape its slashes */
	const char *escaped = "secret wJalrXUtnFEMI\\/K7MDENG\\/bPxRfiCYEXAMPLEKEY.";
	aws_redact(out, sizeof out, escaped, strlen(escaped), NULL, secret, NULL);
	cr_assert_str_eq(out, "secret ****.");
	/* cut off at the end: masked where a word starts, not inside another word */
	aws_redact(out, sizeof out, "secret=wJalrXUt", 15, NULL, secret, NULL);
	cr_assert_str_eq(out, "secret=****");
	aws_redact(out, sizeof out, "rawJalr", 7, NULL, secret, NULL);
	cr_assert_str_eq(out, "rawJalr");
}

Test(errors, a_key_id_shows_at_most_its_last_4_characters)
{
	const char *key = "AKIAIOSFODNN7EXAMPLE";
	const char *text = "Credential=AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/kinesis, "
	                   "key AKIAIOSFODNN7EXAMPLE.";
	char out[512];
	aws_redact(out, sizeof out, text, strlen(text), key, NULL, NULL);
	cr_assert_str_eq(out, "Credential=****MPLE/20261201/us-east-1/kinesis, key ****MPLE.");
	cr_assert_null(strstr(out, "AKIAIOSF"));
	/* cut: nothing of it but the mask */
	aws_redact(out, sizeof out, "Credential=AKIAIOSFOD", 21, key, NULL, NULL);
	cr_assert_str_eq(out, "Credential=****");
}

Test(errors, classification)
{
	cr_assert_eq(aws_classify(200, ""), AWS_FAIL_NONE);
	cr_assert_eq(aws_classify(400, "ProvisionedThroughputExceededException"),
	             AWS_FAIL_THROTTLE);
	cr_assert_eq(aws_classify(400, "LimitExceededException"), AWS_FAIL_THROTTLE);
	cr_assert_eq(aws_classify(400, "KMSThrottlingException"), AWS_FAIL_THROTTLE);
	cr_assert_eq(aws_classify(400, "ExpiredIteratorException"), AWS_FAIL_EXPIRED);
	cr_assert_eq(aws_classify(400, "ResourceNotFoundException"), AWS_FAIL_NOTFOUND);
	cr_assert_eq(aws_classify(400, "InvalidArgumentException"), AWS_FAIL_INVALID);
	cr_assert_eq(aws_classify(400, "ResourceInUseException"), AWS_FAIL_OTHER);
	cr_assert_eq(aws_classify(500, "InternalFailure"), AWS_FAIL_SERVER);
	cr_assert_eq(aws_classify(503, "ServiceUnavailable"), AWS_FAIL_SERVER);
	cr_assert_eq(aws_classify(502, ""), AWS_FAIL_SERVER);
	cr_assert_eq(aws_classify(403, "AccessDeniedException"), AWS_FAIL_OTHER);
}

/* ---- backoff ------------------------------------------------------------------------ */

Test(backoff, full_jitter_within_the_doubling_cap)
{
	/* attempt k: [0, min(max, base * 2^k)] */
	cr_assert_eq(aws_backoff_ms(50, 2000, 0, UINT64_MAX - 0), UINT64_MAX % 51);
	cr_assert_eq(aws_backoff_ms(50, 2000, 0, 50), 50);
	cr_assert_eq(aws_backoff_ms(50, 2000, 0, 51), 0);
	cr_assert_eq(aws_backoff_ms(50, 2000, 3, 400), 400);
	cr_assert_eq(aws_backoff_ms(50, 2000, 3, 401), 0);
	cr_assert_eq(aws_backoff_ms(50, 2000, 10, 2000), 2000);
	cr_assert_eq(aws_backoff_ms(50, 2000, 10, 2001), 0);
	cr_assert_eq(aws_backoff_ms(50, 2000, 200, 2000), 2000); /* no overflow */
	for (unsigned a = 0; a < 40; a++)
		for (int i = 0; i < 200; i++)
			cr_assert_leq(aws_backoff_ms(50, 2000, a, aws_random()), 2000u);
}

Test(backoff, jitter_spreads)
{
	unsigned lo = 2000, hi = 0;
	for (int i = 0; i < 2000; i++) {
		unsigned v = aws_backoff_ms(50, 2000, 6, aws_random());
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	cr_assert_lt(lo, 200u);
	cr_assert_gt(hi, 1800u);
}

/* ---- base64 and sequence numbers ------------------------------------------------------ */

Test(base64, round_trip_and_padding)
{
	const char *cases[][2] = {{"", ""},        {"f", "Zg=="},        {"fo", "Zm8="},
	                          {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"\xff\xfe\x00z", NULL}};
	for (size_t i = 0; i < 5; i++) {
		size_t n;
		char *e =
		    util_b64_encode((const unsigned char *)cases[i][0], strlen(cases[i][0]), &n);
		cr_assert_str_eq(e, cases[i][1]);
		unsigned char *d = util_b64_decode(e, n, &n);
		cr_assert_eq(n, strlen(cases[i][0]));
		cr_assert_eq(memcmp(d, cases[i][0], n), 0);
		free(e);
		free(d);
	}
	unsigned char bin[] = {0xff, 0xfe, 0x00, 0x7a};
	size_t n;
	char *e = util_b64_encode(bin, 4, &n);
	unsigned char *d = util_b64_decode(e, n, &n);
	cr_assert_eq(n, 4);
	cr_assert_eq(memcmp(d, bin, 4), 0);
	free(e);
	free(d);
}

Test(base64, invalid_input_is_refused)
{
	size_t n;
	cr_assert_null(util_b64_decode("Zg=", 3, &n));
	cr_assert_null(util_b64_decode("Z!==", 4, &n));
	cr_assert_null(util_b64_decode("Z=g=", 4, &n));
	cr_assert_null(util_b64_decode("Zg==Zg==", 8, &n));
}

Test(sequence, numeric_comparison)
{
	cr_assert_lt(kinesis_seq_cmp("9", "10"), 0);
	cr_assert_gt(kinesis_seq_cmp("49590338271490256608559692538361571095921575989136588898",
	                             "49590338271490256608559692538361571095921575989136588897"),
	             0);
	cr_assert_eq(kinesis_seq_cmp("007", "7"), 0);
}

/* ---- settings ------------------------------------------------------------------------ */

static void clear_env(void)
{
	const char *v[] = {"AWS_REGION",        "AWS_DEFAULT_REGION",
	                   "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
	                   "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_KINESIS",
	                   "AWS_ENDPOINT_URL"};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		unsetenv(v[i]);
}

Test(settings, environment_fallbacks_in_order, .init = clear_env)
{
	scache_stream_config cfg = {.stream_name = "orders"};
	kinesis_settings s;
	char err[256];

	setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secretenv", 1);
	setenv("AWS_SESSION_TOKEN", "tokenenv", 1);
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_OK);
	cr_assert_str_eq(s.aws.region, "eu-west-1");
	cr_assert_str_eq(s.aws.endpoint, "https://kinesis.eu-west-1.amazonaws.com");
	cr_assert_str_eq(s.aws.access_key_id, "AKIDENV");
	cr_assert_str_eq(s.aws.session_token, "tokenenv");
	cr_assert_eq(s.aws.connect_timeout_ms, 2000);
	cr_assert_eq(s.aws.timeout_ms, 10000);
	cr_assert_eq(s.aws.max_retries, 5u);
	cr_assert_eq(s.aws.backoff_base_ms, 50u);
	cr_assert_eq(s.aws.backoff_max_ms, 2000u);
	cr_assert_eq(s.list_shards_interval_ms, 60000u);
	kinesis_settings_clear(&s);

	setenv("AWS_REGION", "us-west-2", 1);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1/", 1);
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_OK);
	cr_assert_str_eq(s.aws.region, "us-west-2");
	cr_assert_str_eq(s.aws.endpoint, "http://127.0.0.1:1");
	kinesis_settings_clear(&s);

	setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:2", 1);
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_OK);
	cr_assert_str_eq(s.aws.endpoint, "http://127.0.0.1:2");
	kinesis_settings_clear(&s);

	/* explicit settings win, and explicit keys never pick up the environment's token */
	cfg.region = "ap-south-1";
	cfg.endpoint = "https://example.invalid";
	cfg.access_key_id = "AKIDCFG";
	cfg.secret_access_key = "secretcfg";
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_OK);
	cr_assert_str_eq(s.aws.region, "ap-south-1");
	cr_assert_str_eq(s.aws.endpoint, "https://example.invalid");
	cr_assert_str_eq(s.aws.access_key_id, "AKIDCFG");
	cr_assert_null(s.aws.session_token);
	kinesis_settings_clear(&s);
}

Test(settings, missing_pieces_are_named_and_secrets_never_shown, .init = clear_env)
{
	scache_stream_config cfg = {0};
	kinesis_settings s;
	char err[256];

	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "stream name"), "%s", err);
	cfg.stream_name = "orders";
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "AWS_REGION"), "%s", err);
	cfg.region = "us-east-1";
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "AWS_ACCESS_KEY_ID"), "%s", err);
	cfg.access_key_id = "AKIDX";
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "AWS_SECRET_ACCESS_KEY"), "%s", err);
	cfg.secret_access_key = "s3cr3t-value";
	cfg.endpoint = "ftp://s3cr3t-value@host";
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "https://"), "%s", err);
	cr_assert_null(strstr(err, "s3cr3t"), "%s", err); /* the user info is not shown */
	cr_assert(strstr(err, "ftp://host"), "%s", err);
	cfg.endpoint = NULL;
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, err, sizeof err), SCACHE_OK);
	kinesis_settings_clear(&s);
}

Test(settings, transport_errors_do_not_show_credentials, .init = clear_env)
{
	/* nothing listens on port 1 of loopback: a connection error, retried, then reported */
	scache_stream_config cfg = {.stream_name = "s",
	                            .region = "us-east-1",
	                            .endpoint = "http://127.0.0.1:1",
	                            .access_key_id = "AKIDSHOWN",
	                            .secret_access_key = "never-in-messages",
	                            .session_token = "tok-never",
	                            .max_retries = 2,
	                            .backoff_base_ms = 1,
	                            .backoff_max_ms = 2};
	kinesis_settings s;
	aws_client *c;
	aws_result r;
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, NULL, 0), SCACHE_OK);
	cr_assert_eq(kinesis_client_new(&s, &c, NULL, 0), SCACHE_OK);
	kinesis_settings_clear(&s);
	json_object *req = kinesis_req_stream("s");
	aws_call(c, "ListShards", req, &r);
	cr_assert_eq(r.err, SCACHE_ETRANSPORT);
	cr_assert_eq(r.fail, AWS_FAIL_TRANSPORT);
	cr_assert_eq(r.attempts, 3u); /* one call and two retries */
	cr_assert_eq(aws_client_calls(c), 3u);
	cr_assert(strstr(r.message, "ListShards at http://127.0.0.1:1"), "%s", r.message);
	cr_assert_null(strstr(r.message, "never"), "%s", r.message);
	aws_result_clear(&r);
	json_object_put(req);
	aws_client_free(c);
}

static int first_result_out_of_memory(int curl_code)
{
	static int done;
	return done++ ? curl_code : (int)CURLE_OUT_OF_MEMORY;
}

Test(client, a_transfer_that_ends_out_of_memory_leaves_its_slot_usable, .init = clear_env)
{
	/* nothing listens on port 1: every transfer ends with a connection error, the first
	 * one turned into CURLE_OUT_OF_MEMORY as libcurl may end a transfer */
	scache_stream_config cfg = {.stream_name = "s",
	                            .region = "us-east-1",
	                            .endpoint = "http://127.0.0.1:1",
	                            .access_key_id = "AKID",
	                            .secret_access_key = "secret",
	                            .max_retries = 1,
	                            .backoff_base_ms = 1,
	                            .backoff_max_ms = 2};
	kinesis_settings s;
	aws_client *c;
	aws_result r;
	cr_assert_eq(kinesis_settings_resolve(&cfg, 1, &s, NULL, 0), SCACHE_OK);
	cr_assert_eq(kinesis_client_new(&s, &c, NULL, 0), SCACHE_OK);
	kinesis_settings_clear(&s);
	json_object *req = kinesis_req_stream("s");
	aws_test_transfer_result = first_result_out_of_memory;
	aws_call(c, "ListShards", req, &r);
	cr_assert_eq(r.err, SCACHE_ETRANSPORT, "%s", r.message);
	cr_assert(strstr(r.message, curl_easy_strerror(CURLE_OUT_OF_MEMORY)), "%s", r.message);
	aws_result_clear(&r);
	/* the same slot runs the next calls: they reach the network again */
	for (int i = 0; i < 2; i++) {
		aws_call(c, "ListShards", req, &r);
		cr_assert_eq(r.fail, AWS_FAIL_TRANSPORT, "%s", r.message);
		cr_assert(strstr(r.message, curl_easy_strerror(CURLE_COULDNT_CONNECT)), "%s",
		          r.message);
		aws_result_clear(&r);
	}
	aws_test_transfer_result = NULL;
	cr_assert_eq(aws_client_calls(c), 5u); /* 1 (not retried), then 2 and 2 */
	json_object_put(req);
	aws_client_free(c);
}

/* ---- records ------------------------------------------------------------------------ */

static scache_err parse(const char *s, record_keys *k, char *why)
{
	return record_parse(SCACHE_RECORD_SCACHE, (const unsigned char *)s, strlen(s), k, why, 128);
}

Test(records, scache_record_of_go_with_escaped_ampersands)
{
	record_keys k;
	char why[128];
	const char *go =
	    "{\"keys\":[\"id=12345\\u0026s=db.table.id\\u0026t=data.ID\","
	    "\"id=9&s=db.table.id&t=data.ID\"],\"ts\":\"2026-11-24T13:26:26.241701753Z\"}";
	cr_assert_eq(parse(go, &k, why), SCACHE_OK);
	cr_assert_eq(k.n, 2);
	cr_assert_eq(k.bad, 0);
	cr_assert_str_eq(k.keys[0], "id=12345&s=db.table.id&t=data.ID");
	cr_assert_eq(k.lens[0], strlen("id=12345&s=db.table.id&t=data.ID"));
	cr_assert_str_eq(k.keys[1], "id=9&s=db.table.id&t=data.ID");
	record_keys_clear(&k);
	cr_assert_eq(parse("{\"keys\":[],\"ts\":\"2026-11-24T13:26:26+01:00\"}", &k, why),
	             SCACHE_OK);
	cr_assert_eq(k.n, 0);
	record_keys_clear(&k);
}

Test(records, malformed_records_are_refused_with_a_reason)
{
	record_keys k;
	char why[128];
	cr_assert_eq(parse("not json", &k, why), SCACHE_ERECORD);
	cr_assert_str_eq(why, "not valid JSON");
	cr_assert_eq(parse("{\"keys\":[]", &k, why), SCACHE_ERECORD);
	cr_assert_str_eq(why, "not valid JSON");
	cr_assert_eq(parse("{\"keys\":[],\"ts\":\"2026-11-24T13:26:26Z\"} x", &k, why),
	             SCACHE_ERECORD);
	cr_assert_eq(parse("[1,2]", &k, why), SCACHE_ERECORD);
	cr_assert_str_eq(why, "not a JSON object");
	cr_assert_eq(
	    parse("{\"keys\":\"id=1&s=a&t=data.ID\",\"ts\":\"2026-11-24T13:26:26Z\"}", &k, why),
	    SCACHE_ERECORD);
	cr_assert_str_eq(why, "no \"keys\" array");
	cr_assert_eq(parse("{\"keys\":[]}", &k, why), SCACHE_ERECORD);
	cr_assert_str_eq(why, "no RFC 3339 \"ts\" string");
	cr_assert_eq(parse("{\"keys\":[],\"ts\":\"yesterday\"}", &k, why), SCACHE_ERECORD);
	cr_assert_eq(k.n, 0);
	cr_assert_null(k.keys);
}

Test(records, malformed_ids_are_counted_and_good_ones_kept)
{
	record_keys k;
	char why[128];
	const char *r = "{\"keys\":[\"id=1&s=a&t=data.ID\",\"id=%zz&s=a&t=data.ID\",\"s=a&id=2\","
	                "7,\"t=data.ID&s=a&id=3\"],\"ts\":\"2026-11-24T13:26:26Z\"}";
	cr_assert_eq(parse(r, &k, why), SCACHE_OK);
	cr_assert_eq(k.n, 2);
	cr_assert_eq(k.bad, 3);
	cr_assert_str_eq(k.keys[0], "id=1&s=a&t=data.ID");
	cr_assert_str_eq(k.keys[1], "t=data.ID&s=a&id=3");
	cr_assert_str_eq(why, "3 of 5 keys are not data IDs");
	record_keys_clear(&k);
}

Test(records, build_matches_go_byte_for_byte)
{
	const char *keys[] = {"id=12345&s=db.table.id&t=data.ID", "id=a+b%2Fc&s=x&t=data.ID"};
	size_t lens[] = {strlen(keys[0]), strlen(keys[1])};
	char *out;
	size_t len;
	/* 2026-11-24T13:26:26.241701753Z */
	cr_assert_eq(record_build_scache(keys, lens, 2, 1795526786241701753LL, 0, &out, &len),
	             SCACHE_OK);
	cr_assert_str_eq(out, "{\"keys\":[\"id=12345\\u0026s=db.table.id\\u0026t=data.ID\","
	                      "\"id=a+b%2Fc\\u0026s=x\\u0026t=data.ID\"],"
	                      "\"ts\":\"2026-11-24T13:26:26.241701753Z\"}");
	cr_assert_eq(len, strlen(out));
	free(out);
	/* record_key_size counts exactly what the builder writes */
	size_t want = 9 + 8 + 20 + 2 + 1 + record_key_size(keys[0], lens[0]) +
	              record_key_size(keys[1], lens[1]);
	cr_assert_eq(record_build_scache(keys, lens, 2, 1795526786000000000LL, 0, &out, &len),
	             SCACHE_OK);
	cr_assert_eq(len, want);
	cr_assert(strstr(out, "\"ts\":\"2026-11-24T13:26:26Z\""), "%s", out);
	free(out);
}

Test(records, go_escapes_of_special_bytes)
{
	const char *k = "a\"b\\c<d>e\n\x01\xe2\x80\xa8";
	size_t l = strlen(k);
	char *out;
	size_t len;
	cr_assert_eq(record_build_scache(&k, &l, 1, 0, 0, &out, &len), SCACHE_OK);
	cr_assert_str_eq(out, "{\"keys\":[\"a\\\"b\\\\c\\u003cd\\u003ee\\n\\u0001\\u2028\"],"
	                      "\"ts\":\"1970-01-01T00:00:00Z\"}");
	free(out);
}

Test(records, built_records_parse_back)
{
	const char *keys[] = {"id=a+b%2Fc~d%2Ae%26%C3%A9&s=db.users.id&t=data.ID"};
	size_t lens[] = {strlen(keys[0])};
	char *out, why[128];
	size_t len;
	record_keys k;
	cr_assert_eq(record_build_scache(keys, lens, 1, 1795526786241701000LL, 0, &out, &len),
	             SCACHE_OK);
	cr_assert(strstr(out, ".241701Z"), "%s", out);
	cr_assert_eq(
	    record_parse(SCACHE_RECORD_SCACHE, (unsigned char *)out, len, &k, why, sizeof why),
	    SCACHE_OK);
	cr_assert_eq(k.n, 1);
	cr_assert_str_eq(k.keys[0], keys[0]);
	record_keys_clear(&k);
	free(out);
}

Test(records, origin_is_written_after_ts_as_16_hex_digits)
{
	const char *keys[] = {"id=12345&s=db.table.id&t=data.ID"};
	size_t lens[] = {strlen(keys[0])};
	char *out, why[128];
	size_t len;
	record_keys k;
	cr_assert_eq(record_build_scache(keys, lens, 1, 1795526786241701753LL,
	                                 0x00c0ffee12345678ull, &out, &len),
	             SCACHE_OK);
	cr_assert_str_eq(out, "{\"keys\":[\"id=12345\\u0026s=db.table.id\\u0026t=data.ID\"],"
	                      "\"ts\":\"2026-11-24T13:26:26.241701753Z\","
	                      "\"origin\":\"00c0ffee12345678\"}");
	cr_assert_eq(len, strlen(out));
	/* within the overhead record_pack reserves (a 30-byte ts) */
	cr_assert_leq(len - record_key_size(keys[0], lens[0]), RECORD_OVERHEAD_MAX);
	cr_assert_eq(
	    record_parse(SCACHE_RECORD_SCACHE, (unsigned char *)out, len, &k, why, sizeof why),
	    SCACHE_OK);
	cr_assert_eq(k.n, 1);
	cr_assert_eq(k.origin, 0x00c0ffee12345678ull);
	record_keys_clear(&k);
	free(out);
}

Test(records, origin_absent_or_malformed_reads_as_unknown)
{
	static const char *const docs[] = {
	    "{\"keys\":[\"id=1\\u0026s=a\\u0026t=data.ID\"],\"ts\":\"2026-11-24T13:26:26Z\"}",
	    "{\"keys\":[\"id=1&s=a&t=data.ID\"],\"ts\":\"2026-11-24T13:26:26Z\",\"origin\":\"12\"}",
	    "{\"keys\":[\"id=1&s=a&t=data.ID\"],\"ts\":\"2026-11-24T13:26:26Z\","
	    "\"origin\":\"00c0ffee1234567g\"}",
	    "{\"keys\":[\"id=1&s=a&t=data.ID\"],\"ts\":\"2026-11-24T13:26:26Z\",\"origin\":7}",
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		record_keys k;
		char why[128];
		cr_assert_eq(record_parse(SCACHE_RECORD_SCACHE, (const unsigned char *)docs[i],
		                          strlen(docs[i]), &k, why, sizeof why),
		             SCACHE_OK, "%zu: %s", i, why);
		cr_assert_eq(k.n, 1, "%zu", i);
		cr_assert_eq(k.bad, 0, "%zu", i);
		cr_assert_eq(k.origin, 0, "%zu", i);
		record_keys_clear(&k);
	}
}

/* ---- packing ---------------------------------------------------------------------- */

Test(packing, keys_into_records_within_one_mebibyte_with_the_partition_key)
{
	size_t n = 3000, *sizes = malloc(n * sizeof *sizes), *starts = malloc(n * sizeof *starts);
	for (size_t i = 0; i < n; i++)
		sizes[i] = 1000;
	size_t r =
	    record_pack(sizes, n, PUBLISH_RECORD_MAX_BYTES, PUBLISH_PARTITION_KEY_LEN, starts);
	/* (1 MiB - 50 - 64) / 1001 = 1047 keys per record */
	cr_assert_eq(r, 3);
	cr_assert_eq(starts[0], 0);
	cr_assert_eq(starts[1], 1047);
	cr_assert_eq(starts[2], 2094);
	for (size_t k = 0; k < r; k++) {
		size_t end = k + 1 < r ? starts[k + 1] : n, total = RECORD_OVERHEAD_MAX + 64;
		for (size_t i = starts[k]; i < end; i++)
			total += sizes[i] + 1;
		cr_assert_leq(total, PUBLISH_RECORD_MAX_BYTES);
	}
	free(sizes);
	free(starts);
}

Test(packing, records_into_calls_within_500_and_five_mebibytes)
{
	size_t n = 1200, sizes[1200], starts[1200];
	for (size_t i = 0; i < n; i++)
		sizes[i] = 100;
	cr_assert_eq(publish_pack_calls(sizes, n, starts), 3);
	cr_assert_eq(starts[1], 500);
	cr_assert_eq(starts[2], 1000);
	for (size_t i = 0; i < 12; i++)
		sizes[i] = PUBLISH_RECORD_MAX_BYTES;
	/* five 1 MiB records fill a call exactly */
	cr_assert_eq(publish_pack_calls(sizes, 12, starts), 3);
	cr_assert_eq(starts[1], 5);
	cr_assert_eq(starts[2], 10);
	cr_assert_eq(publish_pack_calls(sizes, 0, starts), 0);
}

Test(packing, partition_keys_are_64_random_hex_digits)
{
	char a[65], b[65];
	publish_partition_key(a);
	publish_partition_key(b);
	cr_assert_eq(strlen(a), 64);
	cr_assert_eq(strspn(a, "0123456789abcdef"), 64);
	cr_assert_str_neq(a, b);
}

/* ---- allocation failures while building requests ------------------------------------ */

/* json_object_array_add and json_object_object_add, interposed: fail while armed (for
 * object_add, only for the key fail_key), as json-c does when an allocation fails */
static int fail_array_add;
static const char *fail_key;

int json_object_array_add(json_object *arr, json_object *val)
{
	static int (*real)(json_object *, json_object *);
	if (!real) {
		void *sym = dlsym(RTLD_NEXT, "json_object_array_add");
		memcpy(&real, &sym, sizeof real);
	}
	if (fail_array_add)
		return -1;
	return real(arr, val);
}

int json_object_object_add(json_object *o, const char *key, json_object *val)
{
	static int (*real)(json_object *, const char *, json_object *);
	if (!real) {
		void *sym = dlsym(RTLD_NEXT, "json_object_object_add");
		memcpy(&real, &sym, sizeof real);
	}
	if (fail_key && !strcmp(key, fail_key))
		return -1;
	return real(o, key, val);
}

Test(alloc, a_put_records_request_that_cannot_be_built_fails_every_key_without_a_crash)
{
	/* nothing listens there: the request is never sent, it fails while being built */
	scache_stream_config cfg = {.stream_name = "s",
	                            .region = "us-east-1",
	                            .endpoint = "http://127.0.0.1:1",
	                            .access_key_id = "AKID",
	                            .secret_access_key = "secret",
	                            .max_retries = 1};
	scache_publisher *p;
	cr_assert_eq(scache_publisher_new(&cfg, &p, NULL, 0), SCACHE_OK);
	const char *key = "id=1&s=db.t.id&t=data.ID";
	size_t len = strlen(key);
	scache_publish_result res;
	fail_array_add = 1;
	scache_err e = scache_publish_keys(p, &key, &len, 1, &res);
	fail_array_add = 0;
	cr_assert_eq(e, SCACHE_EPUBLISH);
	cr_assert_eq(res.err, SCACHE_ENOMEM);
	cr_assert_eq(publish_calls(p), 0);
	scache_publisher_free(p);
}

Test(alloc, a_get_shard_iterator_request_that_cannot_be_built_leaks_nothing)
{
	fail_key = "Timestamp";
	json_object *o =
	    kinesis_req_get_shard_iterator("s", "shardId-000000000000", "AT_TIMESTAMP", NULL, 1.5);
	fail_key = NULL;
	cr_assert_null(o); /* and LeakSanitizer finds nothing in build-asan */
}
