/*
 * aws_answer.c: what an AWS answer may put into our messages, and how: the endpoint shown
 * without user:password@, the error name and message of an error answer, its failure
 * class (which decides retries), and the credentials masked wherever they appear.
 *
 * Only credentials of AWS_REDACT_MIN characters or more are masked: real ones are longer
 * (secret keys 40, session tokens hundreds, key IDs 16 to 128), and masking a short
 * placeholder such as "y" would garble every word holding that letter. A credential is
 * masked wherever it appears whole (a string that long is the credential, whatever
 * surrounds it); its start cut off by the end of the text only where a word begins.
 *
 * Masking comes before cutting: a message is masked whole and only then cut to fit, so a
 * cut never shows part of a credential, and a credential cut off at the end of a text is
 * masked too. An answer may quote the signed request's headers; none of it is trusted.
 */
#include "aws.h"

#include <stdint.h>
#include <string.h>

#include "util.h"

const char *aws_endpoint_shown(const char *endpoint, char *buf, size_t len)
{
	const char *rest = strstr(endpoint, "://");
	size_t scheme = rest ? (size_t)(rest - endpoint) + 3 : 0;
	const char *host = endpoint + scheme;
	/* the user info ends at the last '@' before the path (a password may hold an
	 * unencoded '@', '?' or '#': hide more rather than part of it) */
	const char *slash = strchr(host, '/'), *at = NULL;
	for (const char *p = host; *p && (!slash || p < slash); p++)
		if (*p == '@')
			at = p;
	if (at)
		util_fmt(buf, len, "%.*s%s", (int)scheme, endpoint, at + 1);
	else
		util_fmt(buf, len, "%s", endpoint);
	return buf;
}

const char *aws_json_str(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

json_object *aws_json_array(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

/* Copy a printable excerpt of s (control bytes become '?'). */
static void printable(char *dst, size_t dstlen, const char *s, size_t len)
{
	size_t j = 0;
	if (!dstlen)
		return;
	for (size_t i = 0; i < len && j + 1 < dstlen; i++) {
		unsigned char ch = (unsigned char)s[i];
		char out = (char)ch;
		if (ch < 0x20 || ch == 0x7f)
			out = '?';
		dst[j++] = out;
	}
	dst[j] = '\0';
}

/* Whether ch is a letter or digit: a cut-off credential is masked only where a word
 * starts, never in the middle of another word. */
static int word_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* Does the credential cred (cl bytes) start at text[i..len)? A '/' of it also matches a
 * JSON-escaped "\/". Returns the bytes of text it covers, 0 when it does not start
 * here; *whole says whether all of it is there (else it is cut off by the end of text,
 * after at least 4 of its characters, at the start of a word). */
static size_t credential_at(const char *text, size_t len, size_t i, const char *cred, size_t cl,
                            int *whole)
{
	size_t t = i, k = 0;
	*whole = 0;
	if (cl < AWS_REDACT_MIN)
		return 0; /* not a real credential: masking it would garble words */
	while (k < cl && t < len) {
		if (text[t] == cred[k])
			t++;
		else if (cred[k] == '/' && text[t] == '\\' && t + 1 < len && text[t + 1] == '/')
			t += 2;
		else
			return 0;
		k++;
	}
	if (k == cl) {
		*whole = 1;
		return t - i;
	}
	if (k >= 4 && (i == 0 || !word_char((unsigned char)text[i - 1])))
		return t - i;
	return 0;
}

char *aws_redact(char *dst, size_t dstlen, const char *text, size_t len, const char *key_id,
                 const char *secret, const char *token)
{
	const char *creds[] = {secret, token, key_id};
	size_t j = 0;

	if (!dstlen)
		return dst;
	for (size_t i = 0; i < len && j + 1 < dstlen;) {
		char mask[16] = "";
		size_t n = 0;
		for (size_t k = 0; k < 3 && !n; k++) {
			size_t cl = creds[k] ? strlen(creds[k]) : 0;
			int whole;
			n = credential_at(text, len, i, creds[k], cl, &whole);
			if (n && k == 2 && whole && cl > 8) /* the key ID keeps its last 4 */
				util_fmt(mask, sizeof mask, "****%s", creds[k] + cl - 4);
			else if (n)
				util_fmt(mask, sizeof mask, "****");
		}
		if (n) {
			for (const char *m = mask; *m && j + 1 < dstlen; m++)
				dst[j++] = *m;
			i += n;
			continue;
		}
		unsigned char ch = (unsigned char)text[i++];
		dst[j++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	dst[j] = '\0';
	return dst;
}

/* See aws.h. The error name of an answer into name, and its message text, uncut:
 * *text points into the returned object (put it), or into body when the answer is not
 * a JSON object (then at most excerpt bytes of it). */
json_object *aws_parse_error_text(const char *body, size_t len, char *name, size_t namelen,
                                  size_t excerpt, const char **text, size_t *textlen)
{
	json_tokener *tok;
	json_object *o = NULL;
	const char *type;

	if (namelen)
		name[0] = '\0';
	*text = "";
	*textlen = 0;
	if (!body || !len)
		return NULL;
	tok = json_tokener_new();
	if (tok && len <= (size_t)INT32_MAX)
		o = json_tokener_parse_ex(tok, body, (int)len);
	if (tok)
		json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		*text = body;
		*textlen = len < excerpt ? len : excerpt;
		return NULL;
	}
	type = aws_json_str(o, "__type");
	if (!type)
		type = aws_json_str(o, "code");
	if (type) {
		const char *hash = strrchr(type, '#');
		const char *colon;
		if (hash)
			type = hash + 1;
		colon = strchr(type, ':'); /* "Name:http://internal.amazon.com/..." forms */
		size_t tl = colon ? (size_t)(colon - type) : strlen(type);
		printable(name, namelen, type, tl);
	}
	const char *t = aws_json_str(o, "message");
	if (!t)
		t = aws_json_str(o, "Message");
	if (t) {
		*text = t;
		*textlen = strlen(t);
	}
	return o;
}

void aws_parse_error(const char *body, size_t len, char *name, size_t namelen, char *msg,
                     size_t msglen)
{
	const char *text;
	size_t tl;
	json_object *o = aws_parse_error_text(body, len, name, namelen, 200, &text, &tl);
	printable(msg, msglen, text, tl);
	json_object_put(o);
}

aws_fail aws_classify(long http_status, const char *name)
{
	if (http_status >= 200 && http_status < 300)
		return AWS_FAIL_NONE;
	if (name && *name) {
		if (!strcmp(name, "ProvisionedThroughputExceededException") ||
		    !strcmp(name, "LimitExceededException") ||
		    !strcmp(name, "KMSThrottlingException") ||
		    !strcmp(name, "ThrottlingException") ||
		    !strcmp(name, "RequestLimitExceeded")) /* DynamoDB: the account's limit */
			return AWS_FAIL_THROTTLE;
		if (!strcmp(name, "ExpiredIteratorException"))
			return AWS_FAIL_EXPIRED;
		if (!strcmp(name, "ResourceNotFoundException"))
			return AWS_FAIL_NOTFOUND;
		if (!strcmp(name, "InvalidArgumentException"))
			return AWS_FAIL_INVALID;
	}
	if (http_status >= 500 ||
	    (name && (!strcmp(name, "InternalFailure") || !strcmp(name, "ServiceUnavailable"))))
		return AWS_FAIL_SERVER;
	if (http_status == 429)
		return AWS_FAIL_THROTTLE;
	return AWS_FAIL_OTHER;
}
