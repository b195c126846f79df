/*
 * kinesalite.c: run kinesalite on a free loopback port for a test, and stop it.
 * See kinesalite.h. Administrative calls go through the library's own Kinesis client
 * (lib/kinesis.h), so they are signed and parsed exactly as the code under test does.
 */
#include "kinesalite.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kinesis.h"
#include "aws_call.h"
#include "node_service.h"
#include "util.h"

static void say(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		util_fmt(err, errlen, "%s", msg);
}

int kinesalite_start(kinesalite *k, char *err, size_t errlen)
{
	char cli[1024], port_s[16]; /* cli: kinesalite's index.js */
	memset(k, 0, sizeof *k);
	if (node_service_find("kinesalite/index.js", cli, sizeof cli)) {
		say(err, errlen,
		    "kinesalite not found: run scripts/install-deps.sh (or set "
		    "SCACHE_SOURCE_ROOT to the source tree)");
		return -1;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		int port = node_service_free_port();
		if (port <= 0)
			continue;
		snprintf(port_s, sizeof port_s, "%d", port);
		/* cli.js listens on every interface: start it on loopback only */
		char *argv[] = {"node",
		                "-e",
		                "require(process.argv[1])({createStreamMs: 0, deleteStreamMs: 0, "
		                "updateStreamMs: 0, shardLimit: 100}).listen(+process.argv[2], "
		                "'127.0.0.1')",
		                cli,
		                port_s,
		                NULL};
		pid_t pid = node_service_spawn(argv, -1, -1, "KINESALITE_LOG");
		if (pid < 0) {
			say(err, errlen, "fork failed");
			return -1;
		}
		k->pid = pid;
		k->port = port;
		snprintf(k->endpoint, sizeof k->endpoint, "http://127.0.0.1:%d", port);
		for (int i = 0; i < 1500; i++) {
			int status;
			if (waitpid(pid, &status, WNOHANG) == pid) {
				k->pid = 0;
				break; /* it died: the port was taken, or node is missing */
			}
			if (node_service_port_open(port))
				return 0;
			util_sleep_ms(10);
		}
		kinesalite_stop(k);
	}
	say(err, errlen, "kinesalite did not start (is node installed?)");
	return -1;
}

void kinesalite_stop(kinesalite *k)
{
	if (k)
		node_service_stop(&k->pid);
}

void kinesalite_config(const kinesalite *k, const char *stream, scache_stream_config *cfg)
{
	local_kinesis_config(k->endpoint, stream, cfg);
}

void local_kinesis_config(const char *endpoint, const char *stream, scache_stream_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->stream_name = stream;
	cfg->region = "us-east-1";
	cfg->endpoint = endpoint;
	cfg->access_key_id = "AKIDTEST";
	cfg->secret_access_key = "test-secret";
	cfg->connect_timeout_ms = 1000;
	cfg->timeout_ms = 5000;
	cfg->max_retries = 3;
	cfg->backoff_base_ms = 5;
	cfg->backoff_max_ms = 50;
}

int kinesalite_call(const char *endpoint, const char *op, const char *json, char **answer,
                    char *err, size_t errlen)
{
	scache_stream_config cfg;
	kinesis_settings s;
	aws_client *c = NULL;

	memset(&cfg, 0, sizeof cfg);
	cfg.region = "us-east-1";
	cfg.endpoint = endpoint;
	cfg.access_key_id = "AKIDTEST";
	cfg.secret_access_key = "test-secret";
	cfg.backoff_base_ms = 5;
	cfg.backoff_max_ms = 50;
	if (answer)
		*answer = NULL;
	if (kinesis_settings_resolve(&cfg, 0, &s, err, errlen))
		return -1;
	if (kinesis_client_new(&s, &c, err, errlen)) {
		kinesis_settings_clear(&s);
		return -1;
	}
	kinesis_settings_clear(&s);
	return aws_call_json(c, op, json, answer, err, errlen);
}

static int stream_status(const kinesalite *k, const char *stream, char *status, size_t len,
                         char *err, size_t errlen)
{
	char body[256], *answer;
	snprintf(body, sizeof body, "{\"StreamName\":\"%s\"}", stream);
	if (kinesalite_call(k->endpoint, "DescribeStreamSummary", body, &answer, err, errlen))
		return -1;
	json_object *o = json_tokener_parse(answer), *sum;
	free(answer);
	const char *st = NULL;
	if (o && json_object_object_get_ex(o, "StreamDescriptionSummary", &sum))
		st = aws_json_str(sum, "StreamStatus");
	util_fmt(status, len, "%s", st ? st : "");
	json_object_put(o);
	return 0;
}

int kinesalite_wait_active(const kinesalite *k, const char *stream, char *err, size_t errlen)
{
	char status[32];
	for (int i = 0; i < 1000; i++) {
		if (stream_status(k, stream, status, sizeof status, err, errlen) == 0 &&
		    !strcmp(status, "ACTIVE"))
			return 0;
		util_sleep_ms(10);
	}
	say(err, errlen, "stream did not become ACTIVE");
	return -1;
}

int kinesalite_create_stream(const kinesalite *k, const char *stream, int shards, char *err,
                             size_t errlen)
{
	char body[256];
	snprintf(body, sizeof body, "{\"StreamName\":\"%s\",\"ShardCount\":%d}", stream, shards);
	if (kinesalite_call(k->endpoint, "CreateStream", body, NULL, err, errlen))
		return -1;
	return kinesalite_wait_active(k, stream, err, errlen);
}

int kinesalite_delete_stream(const kinesalite *k, const char *stream, char *err, size_t errlen)
{
	char body[256], status[32], e2[256];
	snprintf(body, sizeof body, "{\"StreamName\":\"%s\"}", stream);
	if (kinesalite_call(k->endpoint, "DeleteStream", body, NULL, err, errlen))
		return -1;
	for (int i = 0; i < 1000; i++) {
		if (stream_status(k, stream, status, sizeof status, e2, sizeof e2) != 0)
			return 0; /* ResourceNotFoundException: gone */
		util_sleep_ms(10);
	}
	say(err, errlen, "stream was not deleted");
	return -1;
}

int kinesalite_put_raw(const kinesalite *k, const char *stream, const void *data, size_t len,
                       char *seq, size_t seqlen, char *err, size_t errlen)
{
	size_t bl;
	char *b64 = util_b64_encode(data, len, &bl), *answer = NULL;
	char pk[32];
	int rc = -1;
	if (!b64)
		return -1;
	snprintf(pk, sizeof pk, "%016llx", (unsigned long long)aws_random());
	size_t n = bl + strlen(stream) + 128;
	char *body = malloc(n);
	if (body) {
		snprintf(body, n, "{\"StreamName\":\"%s\",\"Data\":\"%s\",\"PartitionKey\":\"%s\"}",
		         stream, b64, pk);
		rc = kinesalite_call(k->endpoint, "PutRecord", body, &answer, err, errlen);
	}
	if (rc == 0 && seq && seqlen) {
		json_object *o = json_tokener_parse(answer);
		const char *s = aws_json_str(o, "SequenceNumber");
		util_fmt(seq, seqlen, "%s", s ? s : "");
		json_object_put(o);
	}
	free(answer);
	free(body);
	free(b64);
	return rc;
}
