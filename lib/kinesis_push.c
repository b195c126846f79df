/*
 * kinesis_push.c: Kinesis enhanced fan-out's calls: the consumer's lifecycle over the
 * AWS client core (aws_call_until, so each step is bounded by the caller's deadline)
 * and SubscribeToShard as a streaming libcurl transfer. See kinesis_push.h for the API
 * facts followed.
 *
 * A subscription's body is fed to an event-stream decoder as it arrives; each
 * SubscribeToShardEvent is parsed and handed to the caller at once (the push source
 * queues it for its next sync). An exception or error message in the stream (an HTTP
 * 200 whose body says ResourceInUseException, as kinesis-mock does, and as AWS does for
 * a subscription taken over) ends the transfer, and push_sub_end reports its name like
 * an error answer's. The transfer has no total timeout (a subscription lasts minutes);
 * the push source watches for silence itself.
 *
 * HTTP/2 is what AWS requires for SubscribeToShard: over https libcurl negotiates it
 * (ALPN, CURL_HTTP_VERSION_2TLS); over plain http (emulators on loopback) it is spoken
 * with prior knowledge (h2c, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE). PUSH_HTTP1 is the
 * fallback for endpoints that speak only HTTP/1.1 (the body is then chunked). Each
 * subscription has a connection of its own (see push_sub_init): one per shard.
 */
#include "kinesis_push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis.h"
#include "scache/cache.h"
#include "util.h"

#define ANSWER_MAX       (16u << 10)
#define DESCRIBE_WAIT_MS 200 /* between DescribeStreamConsumer calls while CREATING */

/* ---- consumer ------------------------------------------------------------------------ */

static void copy_consumer(json_object *o, push_consumer *out)
{
	const char *v;
	if ((v = aws_json_str(o, "ConsumerName")))
		util_copy_str(out->name, sizeof out->name, v);
	if ((v = aws_json_str(o, "ConsumerARN")))
		util_copy_str(out->arn, sizeof out->arn, v);
	if ((v = aws_json_str(o, "ConsumerStatus")))
		util_copy_str(out->status, sizeof out->status, v);
	if ((v = aws_json_str(o, "StreamARN")))
		util_copy_str(out->stream_arn, sizeof out->stream_arn, v);
}

/* One call; on failure its name and message go to the caller. */
static scache_err call(aws_client *c, const char *op, json_object *req, uint64_t deadline_ns,
                       aws_result *res, char *res_name, size_t res_name_len, char *errbuf,
                       size_t errlen)
{
	if (!req) {
		memset(res, 0, sizeof *res);
		res->err = SCACHE_ENOMEM;
		return SCACHE_ENOMEM;
	}
	aws_call_until(c, op, req, res, deadline_ns);
	json_object_put(req);
	if (res->err) {
		util_copy_str(res_name, res_name_len, res->name);
		util_copy_str(errbuf, errlen, res->message);
	}
	return res->err;
}

static json_object *req_consumer(const char *stream_arn, const char *name)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "StreamARN", json_object_new_string(stream_arn));
	json_object_object_add(o, "ConsumerName", json_object_new_string(name));
	return o;
}

scache_err push_consumer_get(aws_client *c, const char *stream, const char *name,
                             uint64_t deadline_ns, push_consumer *out, char *res_name,
                             size_t res_name_len, char *errbuf, size_t errlen)
{
	aws_result res;
	scache_err err;
	json_object *sum;
	memset(out, 0, sizeof *out);
	util_copy_str(res_name, res_name_len, "");
	util_copy_str(out->name, sizeof out->name, name);

	err = call(c, "DescribeStreamSummary", kinesis_req_stream(stream), deadline_ns, &res,
	           res_name, res_name_len, errbuf, errlen);
	if (err)
		return err;
	const char *arn = NULL;
	if (json_object_object_get_ex(res.body, "StreamDescriptionSummary", &sum))
		arn = aws_json_str(sum, "StreamARN");
	if (!arn) {
		aws_result_clear(&res);
		util_fmt(errbuf, errlen, "DescribeStreamSummary: answer without StreamARN");
		return SCACHE_ESERVICE;
	}
	util_copy_str(out->stream_arn, sizeof out->stream_arn, arn);
	aws_result_clear(&res);

	int registered = 0;
	for (;;) {
		json_object *d;
		err = call(c, "DescribeStreamConsumer", req_consumer(out->stream_arn, name),
		           deadline_ns, &res, res_name, res_name_len, errbuf, errlen);
		if (err == SCACHE_OK &&
		    json_object_object_get_ex(res.body, "ConsumerDescription", &d)) {
			copy_consumer(d, out);
		} else if (res.fail == AWS_FAIL_NOTFOUND && !registered) {
			aws_result_clear(&res);
			err = call(c, "RegisterStreamConsumer", req_consumer(out->stream_arn, name),
			           deadline_ns, &res, res_name, res_name_len, errbuf, errlen);
			if (err == SCACHE_OK && json_object_object_get_ex(res.body, "Consumer", &d))
				copy_consumer(d, out);
			else if (err == SCACHE_OK)
				err = SCACHE_ESERVICE;
			registered = 1;
			/* another instance registering the same name at once: describe it */
			if (err && !strcmp(res.name, "ResourceInUseException"))
				err = SCACHE_OK;
		} else if (err == SCACHE_OK) {
			err = SCACHE_ESERVICE;
			util_fmt(errbuf, errlen,
			         "DescribeStreamConsumer: answer without "
			         "ConsumerDescription");
		}
		aws_result_clear(&res);
		if (err)
			return err;
		if (!strcmp(out->status, "ACTIVE"))
			return SCACHE_OK;
		if (!strcmp(out->status, "DELETING"))
			registered = 0; /* being deregistered: register it again once gone */
		if (scache_now_ns(NULL) + DESCRIBE_WAIT_MS * 1000000ull >= deadline_ns) {
			util_fmt(errbuf, errlen, "consumer '%s' of stream '%s' is still %s", name,
			         stream, out->status[0] ? out->status : "not ACTIVE");
			return SCACHE_ETIMEOUT;
		}
		util_sleep_ms(DESCRIBE_WAIT_MS);
	}
}

scache_err push_consumer_deregister(aws_client *c, const char *consumer_arn, char *errbuf,
                                    size_t errlen)
{
	aws_result res;
	char name[64];
	json_object *o = json_object_new_object();
	if (o)
		json_object_object_add(o, "ConsumerARN", json_object_new_string(consumer_arn));
	scache_err err =
	    call(c, "DeregisterStreamConsumer", o, 0, &res, name, sizeof name, errbuf, errlen);
	aws_result_clear(&res);
	return err;
}

/* ---- subscription ---------------------------------------------------------------------- */

char *push_sub_request(const char *consumer_arn, const char *shard, const char *type,
                       const char *seq, double ts)
{
	json_object *o = json_object_new_object(), *pos = json_object_new_object();
	char *text = NULL;
	if (o && pos) {
		json_object_object_add(o, "ConsumerARN", json_object_new_string(consumer_arn));
		json_object_object_add(o, "ShardId", json_object_new_string(shard));
		json_object_object_add(pos, "Type", json_object_new_string(type));
		if (seq &&
		    (!strcmp(type, "AT_SEQUENCE_NUMBER") || !strcmp(type, "AFTER_SEQUENCE_NUMBER")))
			json_object_object_add(pos, "SequenceNumber", json_object_new_string(seq));
		if (!strcmp(type, "AT_TIMESTAMP"))
			json_object_object_add(pos, "Timestamp", json_object_new_double(ts));
		json_object_object_add(o, "StartingPosition", pos);
		pos = NULL;
		const char *t = json_object_to_json_string_ext(
		    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		text = t ? strdup(t) : NULL;
	}
	json_object_put(pos);
	json_object_put(o);
	return text;
}

static int on_message(void *arg, const es_message *m)
{
	push_sub *s = arg;
	const char *type;
	size_t tl;
	es_kind kind = es_classify(m, &type, &tl);
	if (kind == ES_KIND_EXCEPTION || kind == ES_KIND_ERROR) {
		util_fmt(s->exc, sizeof s->exc, "%.*s", (int)tl, type);
		size_t ml = 0;
		const char *msg =
		    kind == ES_KIND_ERROR ? es_header_str(m, ":error-message", &ml) : NULL;
		char name[64], text[256];
		if (!msg) {
			aws_parse_error((const char *)m->payload, m->payload_len, name, sizeof name,
			                text, sizeof text);
			util_copy_str(s->exc_msg, sizeof s->exc_msg, text);
		} else {
			util_fmt(s->exc_msg, sizeof s->exc_msg, "%.*s", (int)ml, msg);
		}
		return 1; /* the subscription is over */
	}
	if (kind != ES_KIND_EVENT)
		return 0; /* not ours to read: skipped */
	if (tl == 16 && !memcmp(type, "initial-response", 16)) {
		s->initial_response = 1;
		return 0;
	}
	if (!(tl == 21 && !memcmp(type, "SubscribeToShardEvent", 21)))
		return 0; /* an event type added later: skipped */
	json_tokener *tok = json_tokener_new();
	json_object *ev =
	    tok ? json_tokener_parse_ex(tok, (const char *)m->payload, (int)m->payload_len) : NULL;
	int complete = tok && json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	if (!ev || !complete || !json_object_is_type(ev, json_type_object)) {
		json_object_put(ev);
		util_fmt(s->bad, sizeof s->bad, "SubscribeToShardEvent is not a JSON object");
		return 1;
	}
	s->events++;
	if (s->on_event)
		s->on_event(s->arg, ev, scache_now_ns(NULL));
	json_object_put(ev);
	return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	push_sub *s = arg;
	size_t n = size * nmemb;
	if (!s->status) {
		char *ct = NULL;
		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
		curl_easy_getinfo(s->h, CURLINFO_CONTENT_TYPE, &ct);
		s->stream = s->status == 200 && ct &&
		            !strncmp(ct, "application/vnd.amazon.eventstream", 34);
	}
	s->bytes += n;
	s->last_byte_ns = scache_now_ns(NULL);
	if (!s->stream) {
		if (s->answer.len + n > ANSWER_MAX)
			return 0;
		strbuf_append(&s->answer, ptr, n);
		return s->answer.failed ? 0 : n;
	}
	es_err e = es_decoder_feed(&s->dec, ptr, n, on_message, s);
	if (e == ES_OK)
		return n;
	if (e != ES_ESTOPPED)
		util_fmt(s->bad, sizeof s->bad, "event stream: %s", s->dec.why);
	return 0; /* ends the transfer */
}

int push_sub_init(push_sub *s, aws_client *c, const char *consumer_arn, const char *shard,
                  const char *type, const char *seq, double ts, push_http http, push_event_fn fn,
                  void *arg)
{
	const aws_settings *st = aws_client_settings(c);
	char sigv4[128];
	memset(s, 0, sizeof *s);
	es_decoder_init(&s->dec, 0);
	s->on_event = fn;
	s->arg = arg;
	s->body = push_sub_request(consumer_arn, shard, type, seq, ts);
	s->hdrs = aws_headers(&kinesis_service, "SubscribeToShard", st->session_token);
	s->h = curl_easy_init();
	if (!s->body || !s->hdrs || !s->h) {
		push_sub_free(s);
		return -1;
	}
	CURL *h = s->h;
	long version = http == PUSH_HTTP1                    ? CURL_HTTP_VERSION_1_1
	               : !strncmp(st->endpoint, "https:", 6) ? CURL_HTTP_VERSION_2TLS
	                                                     : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
	int bad = 0;
	bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_URL, st->endpoint) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) !=
	       CURLE_OK;
#endif
	bad |= curl_easy_setopt(h, CURLOPT_HTTP_VERSION, version) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, st->connect_timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	/* a connection of its own, closed with it: a subscription cut while the service
	 * streams (a renewal, silence) leaves its HTTP/2 connection unusable for the next
	 * streams (seen with kinesis-mock 0.6.2 and libcurl 7.88: "Error in the HTTP2
	 * framing layer" on every later call over it) */
	bad |= curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(
	           h, CURLOPT_AWS_SIGV4,
	           aws_sigv4_param(&kinesis_service, st->region, sigv4, sizeof sigv4)) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USERNAME, st->access_key_id) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_PASSWORD, st->secret_access_key) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->hdrs) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->body) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, s) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "libscache/0.1") != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)s) != CURLE_OK;
	if (bad) {
		push_sub_free(s);
		return -1;
	}
	return 0;
}

push_end push_sub_end(push_sub *s, CURLcode cc, char *name, size_t namelen, char *msg,
                      size_t msglen)
{
	util_copy_str(name, namelen, "");
	if (s->exc[0]) {
		util_copy_str(name, namelen, s->exc);
		util_fmt(msg, msglen, "SubscribeToShard: %s: %s", s->exc, s->exc_msg);
		return PUSH_END_REFUSED;
	}
	if (s->bad[0]) {
		util_fmt(msg, msglen, "SubscribeToShard: %s", s->bad);
		return PUSH_END_BAD;
	}
	if (s->status == 0 && cc == CURLE_OK)
		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status && !s->stream) {
		char text[200];
		aws_parse_error(s->answer.data ? s->answer.data : "", s->answer.len, name, namelen,
		                text, sizeof text);
		util_fmt(msg, msglen, "SubscribeToShard: %s: %s (HTTP %ld)",
		         name[0] ? name : "error", text, s->status);
		if (!name[0] && s->status >= 500)
			return PUSH_END_TRANSPORT;
		return PUSH_END_REFUSED;
	}
	if (cc != CURLE_OK) {
		util_fmt(msg, msglen, "SubscribeToShard: %s%s%s", curl_easy_strerror(cc),
		         s->errbuf[0] ? ": " : "", s->errbuf);
		return PUSH_END_TRANSPORT;
	}
	if (es_decoder_pending(&s->dec)) {
		util_fmt(msg, msglen, "SubscribeToShard: the stream ended inside a message");
		return PUSH_END_TRANSPORT;
	}
	util_fmt(msg, msglen, "SubscribeToShard: the service ended the subscription");
	return PUSH_END_CLEAN;
}

void push_sub_free(push_sub *s)
{
	if (s->h)
		curl_easy_cleanup(s->h);
	if (s->hdrs) {
		for (struct curl_slist *t = s->hdrs; t; t = t->next)
			explicit_bzero(t->data, strlen(t->data));
		curl_slist_free_all(s->hdrs);
	}
	free(s->body);
	free(s->answer.data);
	es_decoder_free(&s->dec);
	memset(s, 0, sizeof *s);
}
