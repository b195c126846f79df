/*
 * Unit tests of the event-stream decoder (lib/eventstream.c) against hand-built frames:
 * reference vectors made by another implementation (the Elixir event_stream package's
 * documented examples), frames captured from kinesis-mock's SubscribeToShard answer
 * (an event and an exception sent in the body of an HTTP 200), and frames built here
 * byte by byte: split across reads at every byte, bad prelude and message CRCs,
 * truncated streams, contradicting lengths, every header value type, unknown event
 * types and value types.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "eventstream.h"

/* {"foo": "bar"} without headers, and with content-type: application/json: the
 * documented output of EventStream.encode! (hex.pm event_stream 0.1.0). */
static const unsigned char elixir_plain[] = {0,   0,   0,   30,  0,   0,   0,   0,   186, 242,
                                             246, 138, 123, 34,  102, 111, 111, 34,  58,  32,
                                             34,  98,  97,  114, 34,  125, 174, 114, 88,  228};
static const unsigned char elixir_ct[] = {
    0,   0,   0,   62,  0,   0,   0,   32,  64,  93,  249, 70,  12,  99,  111, 110,
    116, 101, 110, 116, 45,  116, 121, 112, 101, 7,   0,   16,  97,  112, 112, 108,
    105, 99,  97,  116, 105, 111, 110, 47,  106, 115, 111, 110, 123, 34,  102, 111,
    111, 34,  58,  32,  34,  98,  97,  114, 34,  125, 111, 162, 191, 59};

/* kinesis-mock 0.6.2 over h2c: a SubscribeToShard within 5 s of another, answered
 * HTTP 200 with this exception message as the body. */
static const unsigned char kinesis_mock_exception[] = {
    0x00, 0x00, 0x01, 0x17, 0x00, 0x00, 0x00, 0x64, 0x36, 0x61, 0xe2, 0x1f, 0x0d, 0x3a, 0x6d, 0x65,
    0x73, 0x73, 0x61, 0x67, 0x65, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x07, 0x00, 0x09, 0x65, 0x78, 0x63,
    0x65, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x0f, 0x3a, 0x65, 0x78, 0x63, 0x65, 0x70, 0x74, 0x69, 0x6f,
    0x6e, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x07, 0x00, 0x16, 0x52, 0x65, 0x73, 0x6f, 0x75, 0x72, 0x63,
    0x65, 0x49, 0x6e, 0x55, 0x73, 0x65, 0x45, 0x78, 0x63, 0x65, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x0d,
    0x3a, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x07, 0x00, 0x10,
    0x61, 0x70, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2f, 0x6a, 0x73, 0x6f, 0x6e,
    0x7b, 0x22, 0x6d, 0x65, 0x73, 0x73, 0x61, 0x67, 0x65, 0x22, 0x3a, 0x22, 0x41, 0x6e, 0x6f, 0x74,
    0x68, 0x65, 0x72, 0x20, 0x61, 0x63, 0x74, 0x69, 0x76, 0x65, 0x20, 0x73, 0x75, 0x62, 0x73, 0x63,
    0x72, 0x69, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x20, 0x65, 0x78, 0x69, 0x73, 0x74, 0x73, 0x20, 0x66,
    0x6f, 0x72, 0x20, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d, 0x65, 0x72, 0x20, 0x61, 0x72, 0x6e, 0x3a,
    0x61, 0x77, 0x73, 0x3a, 0x6b, 0x69, 0x6e, 0x65, 0x73, 0x69, 0x73, 0x3a, 0x75, 0x73, 0x2d, 0x65,
    0x61, 0x73, 0x74, 0x2d, 0x31, 0x3a, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
    0x30, 0x30, 0x3a, 0x73, 0x74, 0x72, 0x65, 0x61, 0x6d, 0x2f, 0x73, 0x31, 0x2f, 0x63, 0x6f, 0x6e,
    0x73, 0x75, 0x6d, 0x65, 0x72, 0x2f, 0x63, 0x31, 0x3a, 0x31, 0x37, 0x39, 0x36, 0x31, 0x31, 0x35,
    0x36, 0x33, 0x30, 0x20, 0x6f, 0x6e, 0x20, 0x73, 0x68, 0x61, 0x72, 0x64, 0x20, 0x73, 0x68, 0x61,
    0x72, 0x64, 0x49, 0x64, 0x2d, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
    0x30, 0x22, 0x7d, 0xe6, 0x40, 0x1b, 0x31,
};

/* kinesis-mock 0.6.2: the first SubscribeToShardEvent of a subscription at TRIM_HORIZON
 * of a shard holding one record. */
static const unsigned char kinesis_mock_event[] = {
    0x00, 0x00, 0x01, 0xb6, 0x00, 0x00, 0x00, 0x5b, 0xcd, 0x40, 0x79, 0x04, 0x0d, 0x3a, 0x6d, 0x65,
    0x73, 0x73, 0x61, 0x67, 0x65, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x07, 0x00, 0x05, 0x65, 0x76, 0x65,
    0x6e, 0x74, 0x0b, 0x3a, 0x65, 0x76, 0x65, 0x6e, 0x74, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x07, 0x00,
    0x15, 0x53, 0x75, 0x62, 0x73, 0x63, 0x72, 0x69, 0x62, 0x65, 0x54, 0x6f, 0x53, 0x68, 0x61, 0x72,
    0x64, 0x45, 0x76, 0x65, 0x6e, 0x74, 0x0d, 0x3a, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d,
    0x74, 0x79, 0x70, 0x65, 0x07, 0x00, 0x10, 0x61, 0x70, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69,
    0x6f, 0x6e, 0x2f, 0x6a, 0x73, 0x6f, 0x6e, 0x7b, 0x22, 0x52, 0x65, 0x63, 0x6f, 0x72, 0x64, 0x73,
    0x22, 0x3a, 0x5b, 0x7b, 0x22, 0x41, 0x70, 0x70, 0x72, 0x6f, 0x78, 0x69, 0x6d, 0x61, 0x74, 0x65,
    0x41, 0x72, 0x72, 0x69, 0x76, 0x61, 0x6c, 0x54, 0x69, 0x6d, 0x65, 0x73, 0x74, 0x61, 0x6d, 0x70,
    0x22, 0x3a, 0x31, 0x37, 0x39, 0x36, 0x31, 0x31, 0x35, 0x36, 0x33, 0x37, 0x2e, 0x31, 0x31, 0x32,
    0x2c, 0x22, 0x44, 0x61, 0x74, 0x61, 0x22, 0x3a, 0x22, 0x59, 0x55, 0x64, 0x57, 0x63, 0x32, 0x4a,
    0x48, 0x4f, 0x44, 0x30, 0x3d, 0x22, 0x2c, 0x22, 0x45, 0x6e, 0x63, 0x72, 0x79, 0x70, 0x74, 0x69,
    0x6f, 0x6e, 0x54, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x4e, 0x4f, 0x4e, 0x45, 0x22, 0x2c, 0x22,
    0x50, 0x61, 0x72, 0x74, 0x69, 0x74, 0x69, 0x6f, 0x6e, 0x4b, 0x65, 0x79, 0x22, 0x3a, 0x22, 0x61,
    0x22, 0x2c, 0x22, 0x53, 0x65, 0x71, 0x75, 0x65, 0x6e, 0x63, 0x65, 0x4e, 0x75, 0x6d, 0x62, 0x65,
    0x72, 0x22, 0x3a, 0x22, 0x34, 0x39, 0x36, 0x38, 0x30, 0x37, 0x33, 0x32, 0x37, 0x37, 0x39, 0x31,
    0x38, 0x32, 0x34, 0x37, 0x32, 0x35, 0x30, 0x35, 0x32, 0x34, 0x34, 0x35, 0x35, 0x37, 0x30, 0x32,
    0x30, 0x39, 0x36, 0x36, 0x34, 0x34, 0x35, 0x31, 0x31, 0x37, 0x38, 0x33, 0x39, 0x31, 0x35, 0x33,
    0x39, 0x32, 0x31, 0x32, 0x36, 0x39, 0x39, 0x35, 0x36, 0x36, 0x31, 0x30, 0x22, 0x7d, 0x5d, 0x2c,
    0x22, 0x43, 0x6f, 0x6e, 0x74, 0x69, 0x6e, 0x75, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x53, 0x65, 0x71,
    0x75, 0x65, 0x6e, 0x63, 0x65, 0x4e, 0x75, 0x6d, 0x62, 0x65, 0x72, 0x22, 0x3a, 0x22, 0x34, 0x39,
    0x36, 0x38, 0x30, 0x37, 0x33, 0x32, 0x37, 0x37, 0x39, 0x31, 0x38, 0x32, 0x34, 0x37, 0x32, 0x35,
    0x30, 0x35, 0x32, 0x34, 0x34, 0x35, 0x35, 0x37, 0x30, 0x32, 0x30, 0x39, 0x36, 0x36, 0x34, 0x34,
    0x35, 0x31, 0x31, 0x37, 0x38, 0x33, 0x39, 0x31, 0x35, 0x33, 0x39, 0x32, 0x31, 0x32, 0x36, 0x39,
    0x39, 0x35, 0x36, 0x36, 0x31, 0x30, 0x22, 0x2c, 0x22, 0x4d, 0x69, 0x6c, 0x6c, 0x69, 0x73, 0x42,
    0x65, 0x68, 0x69, 0x6e, 0x64, 0x4c, 0x61, 0x74, 0x65, 0x73, 0x74, 0x22, 0x3a, 0x30, 0x2c, 0x22,
    0x43, 0x68, 0x69, 0x6c, 0x64, 0x53, 0x68, 0x61, 0x72, 0x64, 0x73, 0x22, 0x3a, 0x6e, 0x75, 0x6c,
    0x6c, 0x7d, 0xb6, 0x1a, 0xf5, 0xe7,
};

/* What the callback saw: copies of every message. */
typedef struct seen {
	size_t n;
	char types[8][64]; /* ":event-type" or ":exception-type" */
	es_kind kinds[8];
	char payloads[8][512];
	size_t payload_lens[8];
	int stop_after; /* stop after this many (0: never) */
} seen;

static int on_msg(void *arg, const es_message *m)
{
	seen *s = arg;
	const char *t;
	size_t tl;
	cr_assert_lt(s->n, 8);
	s->kinds[s->n] = es_classify(m, &t, &tl);
	cr_assert_lt(tl, sizeof s->types[0]);
	memcpy(s->types[s->n], t, tl);
	s->types[s->n][tl] = '\0';
	size_t pl = m->payload_len < 511 ? m->payload_len : 511;
	memcpy(s->payloads[s->n], m->payload, pl);
	s->payloads[s->n][pl] = '\0';
	s->payload_lens[s->n] = m->payload_len;
	s->n++;
	return s->stop_after && s->n >= (size_t)s->stop_after;
}

static es_err decode_all(const void *b, size_t len, seen *s)
{
	es_decoder d;
	es_decoder_init(&d, 0);
	es_err err = es_decoder_feed(&d, b, len, on_msg, s);
	if (!err)
		err = es_decoder_finish(&d);
	es_decoder_free(&d);
	return err;
}

Test(crc, is_gzip_crc32)
{
	/* the CRC-32 check value of "123456789" */
	cr_assert_eq(es_crc32(0, "123456789", 9), 0xCBF43926u);
	cr_assert_eq(es_crc32(es_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
	cr_assert_eq(es_crc32(0, "", 0), 0u);
}

Test(decode, reference_vectors_of_another_implementation)
{
	seen s = {0};
	cr_assert_eq(decode_all(elixir_plain, sizeof elixir_plain, &s), ES_OK);
	cr_assert_eq(decode_all(elixir_ct, sizeof elixir_ct, &s), ES_OK);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.payloads[0], "{\"foo\": \"bar\"}");
	cr_assert_str_eq(s.payloads[1], "{\"foo\": \"bar\"}");
	cr_assert_eq(s.kinds[0], ES_KIND_UNKNOWN);
}

/* What check_headers copied of a message. */
typedef struct header_copy {
	char value[32];
	size_t len;
	size_t n;
} header_copy;

static int check_headers(void *arg, const es_message *m)
{
	header_copy *out = arg;
	size_t len;
	const char *v = es_header_str(m, "content-type", &len);
	cr_assert_not_null(v);
	cr_assert_eq(m->nheaders, 1);
	cr_assert_eq(m->headers[0].type, ES_STRING);
	cr_assert_eq(m->headers[0].name_len, 12);
	cr_assert_lt(len, sizeof out->value);
	memcpy(out->value, v, len);
	out->len = len;
	out->n++;
	cr_assert(es_header_is(m, "content-type", "application/json"));
	cr_assert_not(es_header_is(m, "content-type", "application/jso"));
	cr_assert_null(es_header_str(m, ":content-type", NULL));
	return 0;
}

Test(decode, headers_point_at_their_values)
{
	es_decoder d;
	header_copy out = {0};
	es_decoder_init(&d, 0);
	cr_assert_eq(es_decoder_feed(&d, elixir_ct, sizeof elixir_ct, check_headers, &out), ES_OK);
	cr_assert_eq(out.n, 1);
	cr_assert_eq(out.len, 16);
	cr_assert_eq(memcmp(out.value, "application/json", 16), 0);
	es_decoder_free(&d);
}

Test(decode, kinesis_mock_event_and_exception)
{
	seen s = {0};
	cr_assert_eq(decode_all(kinesis_mock_event, sizeof kinesis_mock_event, &s), ES_OK);
	cr_assert_eq(decode_all(kinesis_mock_exception, sizeof kinesis_mock_exception, &s), ES_OK);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.kinds[0], ES_KIND_EVENT);
	cr_assert_str_eq(s.types[0], "SubscribeToShardEvent");
	cr_assert_eq(s.payload_lens[0], 438 - 16 - 0x5b);
	cr_assert_eq(strncmp(s.payloads[0], "{\"Records\":[{\"ApproximateArrivalTimestamp\"", 42),
	             0);
	cr_assert(strstr(s.payloads[0], "\"MillisBehindLatest\":0,\"ChildShards\":null}"));
	cr_assert_eq(s.kinds[1], ES_KIND_EXCEPTION);
	cr_assert_str_eq(s.types[1], "ResourceInUseException");
	cr_assert_eq(
	    strncmp(s.payloads[1], "{\"message\":\"Another active subscription exists", 46), 0);
}

/* Both kinesis-mock frames back to back, as one body. */
static unsigned char *two_frames(size_t *len)
{
	*len = sizeof kinesis_mock_event + sizeof kinesis_mock_exception;
	unsigned char *b = malloc(*len);
	memcpy(b, kinesis_mock_event, sizeof kinesis_mock_event);
	memcpy(b + sizeof kinesis_mock_event, kinesis_mock_exception,
	       sizeof kinesis_mock_exception);
	return b;
}

Test(decode, split_across_two_reads_at_every_byte)
{
	size_t len;
	unsigned char *b = two_frames(&len);
	for (size_t cut = 0; cut <= len; cut++) {
		seen s = {0};
		es_decoder d;
		es_decoder_init(&d, 0);
		cr_assert_eq(es_decoder_feed(&d, b, cut, on_msg, &s), ES_OK);
		cr_assert_eq(s.n,
		             cut >= sizeof kinesis_mock_event + sizeof kinesis_mock_exception ? 2
		             : cut >= sizeof kinesis_mock_event                               ? 1
		                                                                              : 0,
		             "cut at %zu", cut);
		cr_assert_eq(es_decoder_feed(&d, b + cut, len - cut, on_msg, &s), ES_OK);
		cr_assert_eq(es_decoder_finish(&d), ES_OK);
		cr_assert_eq(s.n, 2, "cut at %zu", cut);
		cr_assert_str_eq(s.types[0], "SubscribeToShardEvent");
		cr_assert_str_eq(s.types[1], "ResourceInUseException");
		cr_assert_eq(d.messages, 2);
		es_decoder_free(&d);
	}
	free(b);
}

Test(decode, one_byte_at_a_time)
{
	size_t len;
	unsigned char *b = two_frames(&len);
	seen s = {0};
	es_decoder d;
	es_decoder_init(&d, 0);
	for (size_t i = 0; i < len; i++) {
		cr_assert_eq(es_decoder_feed(&d, b + i, 1, on_msg, &s), ES_OK);
		cr_assert_eq(es_decoder_pending(&d), i + 1 < sizeof kinesis_mock_event
		                                         ? i + 1
		                                         : (i + 1 - sizeof kinesis_mock_event) %
		                                               sizeof kinesis_mock_exception);
	}
	cr_assert_eq(s.n, 2);
	cr_assert_eq(es_decoder_finish(&d), ES_OK);
	es_decoder_free(&d);
	free(b);
}

Test(decode, bad_prelude_crc_is_refused_before_the_body)
{
	unsigned char b[sizeof elixir_ct];
	memcpy(b, elixir_ct, sizeof b);
	b[9] ^= 0x01; /* the prelude CRC itself */
	seen s = {0};
	es_decoder d;
	es_decoder_init(&d, 0);
	/* refused as soon as the 12-byte prelude is in */
	cr_assert_eq(es_decoder_feed(&d, b, 12, on_msg, &s), ES_EPRELUDE_CRC);
	cr_assert_eq(s.n, 0);
	es_decoder_free(&d);

	memcpy(b, elixir_ct, sizeof b);
	b[3] ^= 0x40; /* a corrupt total length: the CRC covers it */
	cr_assert_eq(decode_all(b, sizeof b, &s), ES_EPRELUDE_CRC);
	memcpy(b, elixir_ct, sizeof b);
	b[7] ^= 0x02; /* a corrupt headers length */
	cr_assert_eq(decode_all(b, sizeof b, &s), ES_EPRELUDE_CRC);
	cr_assert_eq(s.n, 0);
}

Test(decode, bad_message_crc_delivers_nothing_and_sticks)
{
	unsigned char b[sizeof elixir_ct];
	memcpy(b, elixir_ct, sizeof b);
	b[50] ^= 0x20; /* a payload byte */
	seen s = {0};
	es_decoder d;
	es_decoder_init(&d, 0);
	cr_assert_eq(es_decoder_feed(&d, b, sizeof b, on_msg, &s), ES_EMESSAGE_CRC);
	cr_assert_eq(s.n, 0);
	cr_assert_str_eq(d.why, "message CRC does not match");
	/* the framing is lost: a good message after it is not read */
	cr_assert_eq(es_decoder_feed(&d, elixir_ct, sizeof elixir_ct, on_msg, &s), ES_EMESSAGE_CRC);
	cr_assert_eq(s.n, 0);
	es_decoder_free(&d);

	memcpy(b, elixir_ct, sizeof b);
	b[sizeof b - 1] ^= 0x80; /* the message CRC itself */
	cr_assert_eq(decode_all(b, sizeof b, &s), ES_EMESSAGE_CRC);
	memcpy(b, elixir_ct, sizeof b);
	b[20] ^= 0x01; /* a header name byte */
	cr_assert_eq(decode_all(b, sizeof b, &s), ES_EMESSAGE_CRC);
	cr_assert_eq(s.n, 0);
}

Test(decode, truncated_stream)
{
	seen s = {0};
	for (size_t cut = 1; cut < sizeof kinesis_mock_event; cut++) {
		es_decoder d;
		es_decoder_init(&d, 0);
		cr_assert_eq(es_decoder_feed(&d, kinesis_mock_event, cut, on_msg, &s), ES_OK);
		cr_assert_eq(es_decoder_pending(&d), cut);
		cr_assert_eq(es_decoder_finish(&d), ES_ETRUNCATED);
		es_decoder_free(&d);
	}
	cr_assert_eq(s.n, 0);
	/* an empty stream is not truncated */
	es_decoder d;
	es_decoder_init(&d, 0);
	cr_assert_eq(es_decoder_finish(&d), ES_OK);
	es_decoder_free(&d);
}

/* A prelude of total and hlen with a good CRC, then filler, then a good message CRC. */
static unsigned char *frame_raw(uint32_t total, uint32_t hlen, size_t alloc)
{
	unsigned char *b = calloc(1, alloc < 12 ? 12 : alloc);
	b[0] = (unsigned char)(total >> 24);
	b[1] = (unsigned char)(total >> 16);
	b[2] = (unsigned char)(total >> 8);
	b[3] = (unsigned char)total;
	b[4] = (unsigned char)(hlen >> 24);
	b[5] = (unsigned char)(hlen >> 16);
	b[6] = (unsigned char)(hlen >> 8);
	b[7] = (unsigned char)hlen;
	uint32_t c = es_crc32(0, b, 8);
	b[8] = (unsigned char)(c >> 24);
	b[9] = (unsigned char)(c >> 16);
	b[10] = (unsigned char)(c >> 8);
	b[11] = (unsigned char)c;
	if (alloc >= total && total >= 16) {
		c = es_crc32(0, b, total - 4);
		b[total - 4] = (unsigned char)(c >> 24);
		b[total - 3] = (unsigned char)(c >> 16);
		b[total - 2] = (unsigned char)(c >> 8);
		b[total - 1] = (unsigned char)c;
	}
	return b;
}

Test(decode, contradicting_lengths_and_limits)
{
	seen s = {0};
	unsigned char *b = frame_raw(15, 0, 15); /* shorter than the overhead */
	cr_assert_eq(decode_all(b, 15, &s), ES_ELENGTH);
	free(b);
	b = frame_raw(40, 25, 40); /* headers longer than the message leaves them */
	cr_assert_eq(decode_all(b, 40, &s), ES_ELENGTH);
	free(b);
	b = frame_raw(16, 0, 16); /* the smallest message: no headers, no payload */
	cr_assert_eq(decode_all(b, 16, &s), ES_OK);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.payload_lens[0], 0);
	cr_assert_eq(s.kinds[0], ES_KIND_UNKNOWN);
	free(b);
	/* over the decoder's bound: refused from the prelude, nothing buffered for it */
	b = frame_raw(ES_MAX_MESSAGE + 1, 0, 12);
	es_decoder d;
	es_decoder_init(&d, 0);
	cr_assert_eq(es_decoder_feed(&d, b, 12, on_msg, &s), ES_ELENGTH);
	es_decoder_free(&d);
	free(b);
	es_decoder_init(&d, 64);
	cr_assert_eq(es_decoder_feed(&d, elixir_ct, sizeof elixir_ct, on_msg, &s), ES_OK);
	es_decoder_free(&d);
	es_decoder_init(&d, 61);
	cr_assert_eq(es_decoder_feed(&d, elixir_ct, sizeof elixir_ct, on_msg, &s), ES_ELENGTH);
	es_decoder_free(&d);
	b = frame_raw(16 + ES_MAX_HEADERS + 1, ES_MAX_HEADERS + 1, 12);
	cr_assert_eq(decode_all(b, 12, &s), ES_ELENGTH);
	free(b);
}

/* A message whose headers section is hdr[0..hlen). */
static unsigned char *frame_with_headers(const unsigned char *hdr, size_t hlen, size_t *total)
{
	*total = 16 + hlen + 2;
	unsigned char *b = frame_raw((uint32_t)*total, (uint32_t)hlen, 0);
	b = realloc(b, *total);
	memcpy(b + 12, hdr, hlen);
	memcpy(b + 12 + hlen, "{}", 2);
	uint32_t c = es_crc32(0, b, *total - 4);
	b[*total - 4] = (unsigned char)(c >> 24);
	b[*total - 3] = (unsigned char)(c >> 16);
	b[*total - 2] = (unsigned char)(c >> 8);
	b[*total - 1] = (unsigned char)c;
	return b;
}

static int check_all_types(void *arg, const es_message *m)
{
	(*(int *)arg)++;
	cr_assert_eq(m->nheaders, 11);
	static const size_t lens[] = {0, 0, 1, 2, 4, 8, 3, 8, 16};
	for (int t = 0; t <= 9; t++)
		if (t != ES_STRING)
			cr_assert_eq(m->headers[t < 7 ? t : t - 1].value_len,
			             lens[t < 7 ? t : t - 1], "type %d", t);
	cr_assert(es_header_is(m, ":message-type", "event"));
	cr_assert(es_header_is(m, ":event-type", "SomethingNew"));
	cr_assert_null(es_header_str(m, "b", NULL), "a bytes header is not a string");
	cr_assert_eq(m->payload_len, 2);
	return 0;
}

Test(decode, every_header_value_type_is_walked)
{
	/* one header of each non-string type, then two strings */
	static const unsigned char hdr[] = {
	    1,   't', 0,                                           /* true */
	    1,   'f', 1,                                           /* false */
	    1,   'y', 2,   0x7f,                                   /* byte */
	    1,   's', 3,   0,    1,                                /* short */
	    1,   'i', 4,   0,    0,   0,   1,                      /* int */
	    1,   'l', 5,   0,    0,   0,   0,    0,   0,   0,   1, /* long */
	    1,   'b', 6,   0,    3,   'a', 'b',  'c',              /* bytes */
	    1,   'T', 8,   0,    0,   1,   0x8c, 0,   0,   0,   0, /* timestamp */
	    1,   'u', 9,   1,    2,   3,   4,    5,   6,   7,   8,   9,   10,  11,  12,  13,  14,
	    15,  16, /* uuid */
	    13,  ':', 'm', 'e',  's', 's', 'a',  'g', 'e', '-', 't', 'y', 'p', 'e', 7,   0,   5,
	    'e', 'v', 'e', 'n',  't', 11,  ':',  'e', 'v', 'e', 'n', 't', '-', 't', 'y', 'p', 'e',
	    7,   0,   12,  'S',  'o', 'm', 'e',  't', 'h', 'i', 'n', 'g', 'N', 'e', 'w'};
	size_t total;
	unsigned char *b = frame_with_headers(hdr, sizeof hdr, &total);
	int n = 0;
	es_decoder d;
	es_decoder_init(&d, 0);
	cr_assert_eq(es_decoder_feed(&d, b, total, check_all_types, &n), ES_OK);
	cr_assert_eq(n, 1);
	es_decoder_free(&d);
	free(b);
	/* an unknown event type is delivered as it is: what to do is the reader's business */
	seen s = {0};
	b = frame_with_headers(hdr, sizeof hdr, &total);
	cr_assert_eq(decode_all(b, total, &s), ES_OK);
	cr_assert_eq(s.kinds[0], ES_KIND_EVENT);
	cr_assert_str_eq(s.types[0], "SomethingNew");
	free(b);
}

Test(decode, malformed_headers)
{
	seen s = {0};
	size_t total;
	static const unsigned char unknown_type[] = {1, 'x', 10, 0};
	unsigned char *b = frame_with_headers(unknown_type, sizeof unknown_type, &total);
	cr_assert_eq(decode_all(b, total, &s), ES_EHEADER);
	free(b);
	static const unsigned char string_too_long[] = {1, 'x', 7, 0, 9, 'a', 'b'};
	b = frame_with_headers(string_too_long, sizeof string_too_long, &total);
	cr_assert_eq(decode_all(b, total, &s), ES_EHEADER);
	free(b);
	static const unsigned char name_too_long[] = {9, 'x', 'y'};
	b = frame_with_headers(name_too_long, sizeof name_too_long, &total);
	cr_assert_eq(decode_all(b, total, &s), ES_EHEADER);
	free(b);
	static const unsigned char int_cut[] = {1, 'x', 4, 0, 0};
	b = frame_with_headers(int_cut, sizeof int_cut, &total);
	cr_assert_eq(decode_all(b, total, &s), ES_EHEADER);
	free(b);
	cr_assert_eq(s.n, 0);
}

Test(classify, kinds_and_their_type_headers)
{
	const char *names[] = {":message-type", ":error-code", ":error-message"};
	const char *values[] = {"error", "InternalFailure", "boom"};
	unsigned char *b;
	size_t len;
	seen s = {0};
	cr_assert_eq(es_encode(names, values, 3, "", 0, &b, &len), 0);
	cr_assert_eq(decode_all(b, len, &s), ES_OK);
	free(b);
	cr_assert_eq(s.kinds[0], ES_KIND_ERROR);
	cr_assert_str_eq(s.types[0], "InternalFailure");
	values[0] = "surprise";
	cr_assert_eq(es_encode(names, values, 1, "", 0, &b, &len), 0);
	cr_assert_eq(decode_all(b, len, &s), ES_OK);
	free(b);
	cr_assert_eq(s.kinds[1], ES_KIND_UNKNOWN);
	/* an event without its type header: an event of type "" */
	values[0] = "event";
	cr_assert_eq(es_encode(names, values, 1, "{}", 2, &b, &len), 0);
	cr_assert_eq(decode_all(b, len, &s), ES_OK);
	free(b);
	cr_assert_eq(s.kinds[2], ES_KIND_EVENT);
	cr_assert_str_eq(s.types[2], "");
}

Test(encode, reproduces_the_reference_vectors)
{
	unsigned char *b;
	size_t len;
	const char *n[] = {"content-type"}, *v[] = {"application/json"};
	cr_assert_eq(es_encode(n, v, 1, "{\"foo\": \"bar\"}", 14, &b, &len), 0);
	cr_assert_eq(len, sizeof elixir_ct);
	cr_assert_eq(memcmp(b, elixir_ct, len), 0);
	free(b);
	cr_assert_eq(es_encode(NULL, NULL, 0, "{\"foo\": \"bar\"}", 14, &b, &len), 0);
	cr_assert_eq(len, sizeof elixir_plain);
	cr_assert_eq(memcmp(b, elixir_plain, len), 0);
	free(b);
	const char *n3[] = {":message-type", ":event-type", ":content-type"};
	const char *v3[] = {"event", "SubscribeToShardEvent", "application/json"};
	/* the kinesis-mock event re-encoded from its parts is byte for byte the same */
	cr_assert_eq(es_encode(n3, v3, 3, kinesis_mock_event + 12 + 0x5b,
	                       sizeof kinesis_mock_event - 16 - 0x5b, &b, &len),
	             0);
	cr_assert_eq(len, sizeof kinesis_mock_event);
	cr_assert_eq(memcmp(b, kinesis_mock_event, len), 0);
	free(b);
}

Test(decode, callback_can_stop)
{
	size_t len;
	unsigned char *b = two_frames(&len);
	seen s = {.stop_after = 1};
	cr_assert_eq(decode_all(b, len, &s), ES_ESTOPPED);
	cr_assert_eq(s.n, 1);
	free(b);
}
