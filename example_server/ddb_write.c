/*
 * ddb_write.c: PutItem and DeleteItem on the users table, for the example server's
 * DynamoDB mode. One libcurl handle per call (writes are rare next to reads, and a
 * handle per call needs no lock), signed with libcurl's own SigV4
 * ("aws:amz:<region>:dynamodb"), JSON 1.0 with X-Amz-Target DynamoDB_20120810.<op>.
 * Throttling, 5xx and connection errors are tried up to 3 times; both writes are
 * idempotent (a repeated DeleteItem may report an item deleted by its first attempt as
 * absent). Nothing here touches the cache: the table's change records on the stream
 * tell every instance.
 */
#include "ddb_write.h"

#include <curl/curl.h>
#include <json-c/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ANSWER (1024 * 1024)
#define ATTEMPTS   3

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

int ddb_writer_init(ddb_writer *w, const char *endpoint, const char *region, const char *table,
                    const char *access_key_id, const char *secret_access_key,
                    const char *session_token)
{
	memset(w, 0, sizeof *w);
	w->endpoint = dup_or_null(endpoint);
	w->region = dup_or_null(region);
	w->table = dup_or_null(table);
	w->access_key_id = dup_or_null(access_key_id);
	w->secret_access_key = dup_or_null(secret_access_key);
	w->session_token = dup_or_null(session_token);
	if (!w->endpoint || !w->region || !w->table || !w->access_key_id || !w->secret_access_key ||
	    (session_token && *session_token && !w->session_token)) {
		ddb_writer_free(w);
		return -1;
	}
	return 0;
}

void ddb_writer_free(ddb_writer *w)
{
	free(w->endpoint);
	free(w->region);
	free(w->table);
	free(w->access_key_id);
	free(w->secret_access_key);
	free(w->session_token);
	memset(w, 0, sizeof *w);
}

typedef struct answer {
	char *data;
	size_t len;
	int too_big;
} answer;

static size_t gather(char *p, size_t size, size_t n, void *arg)
{
	answer *a = arg;
	size_t k = size * n;
	if (a->too_big || a->len + k > MAX_ANSWER) {
		a->too_big = 1;
		return k; /* read on, keep nothing more */
	}
	char *d = realloc(a->data, a->len + k + 1);
	if (!d)
		return 0; /* libcurl fails the transfer: CURLE_WRITE_ERROR */
	memcpy(d + a->len, p, k);
	a->data = d;
	a->len += k;
	a->data[a->len] = '\0';
	return k;
}

/* Replaces every copy of the access key ID in s (an AWS message may quote the
 * credential scope) with asterisks. */
static void mask_key(char *s, const char *key)
{
	size_t n = strlen(key);
	for (char *p = n ? strstr(s, key) : NULL; p; p = strstr(p + n, key))
		memset(p, '*', n);
}

/* AWS's error type without its namespace ("com.amazonaws...#ResourceNotFoundException"),
 * and its message, from an error answer. */
static void describe_error(const answer *a, long status, const char *key, char *out, size_t out_len)
{
	json_object *o = a->data ? json_tokener_parse(a->data) : NULL, *t = NULL, *m = NULL;
	if (o && !json_object_object_get_ex(o, "message", &m))
		json_object_object_get_ex(o, "Message", &m);
	if (o)
		json_object_object_get_ex(o, "__type", &t);
	const char *type = t ? json_object_get_string(t) : NULL;
	const char *hash = type ? strrchr(type, '#') : NULL;
	snprintf(out, out_len, "HTTP %ld %s: %.300s", status,
	         hash   ? hash + 1
	         : type ? type
	                : "(no error type)",
	         m ? json_object_get_string(m) : "(no message)");
	mask_key(out, key);
	json_object_put(o);
}

static int retryable(long status, const char *what)
{
	return status >= 500 || strstr(what, "Throttling") ||
	       strstr(what, "ProvisionedThroughputExceeded") ||
	       strstr(what, "RequestLimitExceeded");
}

/* One operation: POST body, *out the parsed answer (json_object_put it). 0, or -1 with
 * why. */
static int call(const ddb_writer *w, const char *op, json_object *body, json_object **out,
                char *why, size_t why_len)
{
	const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	char sigv4[128], target[96], token[2048], fault[512] = "";
	snprintf(sigv4, sizeof sigv4, "aws:amz:%s:dynamodb", w->region);
	snprintf(target, sizeof target, "X-Amz-Target: DynamoDB_20120810.%s", op);
	*out = NULL;
	for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
		if (attempt > 1) {
			struct timespec ts = {0, 50000000L << (attempt - 2)}; /* 50, 100 ms */
			nanosleep(&ts, NULL);
		}
		CURL *h = curl_easy_init();
		struct curl_slist *hdrs =
		    curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.0");
		struct curl_slist *more = hdrs ? curl_slist_append(hdrs, target) : NULL;
		if (more && w->session_token) {
			snprintf(token, sizeof token, "X-Amz-Security-Token: %s", w->session_token);
			more = curl_slist_append(more, token);
		}
		if (!h || !more) {
			curl_easy_cleanup(h);
			curl_slist_free_all(hdrs);
			snprintf(why, why_len, "DynamoDB table '%s': %s: out of memory", w->table,
			         op);
			return -1;
		}
		answer a = {0};
		curl_easy_setopt(h, CURLOPT_URL, w->endpoint);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, w->access_key_id);
		curl_easy_setopt(h, CURLOPT_PASSWORD, w->secret_access_key);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, gather);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		CURLcode rc = curl_easy_perform(h);
		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(h);
		curl_slist_free_all(hdrs);
		int again;
		if (rc != CURLE_OK) {
			snprintf(fault, sizeof fault, "%s", curl_easy_strerror(rc));
			again = 1;
		} else if (status == 200 && !a.too_big && a.data &&
		           (*out = json_tokener_parse(a.data)) != NULL) {
			free(a.data);
			return 0;
		} else if (status == 200) {
			snprintf(fault, sizeof fault, "an answer that is not JSON (%zu bytes)",
			         a.len);
			again = 0;
		} else {
			describe_error(&a, status, w->access_key_id, fault, sizeof fault);
			again = retryable(status, fault);
		}
		free(a.data);
		if (!again)
			break;
	}
	snprintf(why, why_len, "DynamoDB table '%s': %s at %s: %s", w->table, op, w->endpoint,
	         fault);
	return -1;
}

/* {"S": s} */
static json_object *string_value(const char *s)
{
	json_object *v = json_object_new_object();
	json_object_object_add(v, "S", json_object_new_string(s));
	return v;
}

int ddb_put_user(const ddb_writer *w, const char *id, const char *name, const char *email,
                 char *why, size_t why_len)
{
	json_object *body = json_object_new_object(), *item = json_object_new_object(), *ans;
	json_object_object_add(item, "id", string_value(id));
	json_object_object_add(item, "name", string_value(name));
	json_object_object_add(item, "email", string_value(email));
	json_object_object_add(body, "TableName", json_object_new_string(w->table));
	json_object_object_add(body, "Item", item);
	int r = call(w, "PutItem", body, &ans, why, why_len);
	json_object_put(body);
	json_object_put(ans);
	return r;
}

int ddb_delete_user(const ddb_writer *w, const char *id, int *existed, char *why, size_t why_len)
{
	json_object *body = json_object_new_object(), *key = json_object_new_object(), *ans;
	json_object_object_add(key, "id", string_value(id));
	json_object_object_add(body, "TableName", json_object_new_string(w->table));
	json_object_object_add(body, "Key", key);
	/* the old item comes back only if there was one: 404 for an absent user */
	json_object_object_add(body, "ReturnValues", json_object_new_string("ALL_OLD"));
	int r = call(w, "DeleteItem", body, &ans, why, why_len);
	json_object_put(body);
	*existed = r == 0 && json_object_object_get_ex(ans, "Attributes", NULL);
	json_object_put(ans);
	return r;
}
