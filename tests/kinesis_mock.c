/*
 * kinesis_mock.c: run kinesis-mock on free loopback ports for a test, and stop it. See
 * kinesis_mock.h. Administrative calls go through kinesalite_call (the library's own
 * signed client), which takes any endpoint.
 */
#include "kinesis_mock.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aws.h"
#include "kinesalite.h"
#include "node_service.h"
#include "util.h"

static void say(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		util_fmt(err, errlen, "%s", msg);
}

int kinesis_mock_start(kinesis_mock *k, char *err, size_t errlen)
{
	char main_js[1024], cert[1024], loopback[1024], port_s[16], tls_s[16];
	memset(k, 0, sizeof *k);
	if (node_service_find("kinesis-local/main.js", main_js, sizeof main_js) ||
	    node_service_find("kinesis-local/server.json", cert, sizeof cert)) {
		say(err, errlen,
		    "kinesis-mock not found: run scripts/install-deps.sh (or set "
		    "SCACHE_SOURCE_ROOT to the source tree)");
		return -1;
	}
	/* it binds every interface: preloaded, this binds its servers to 127.0.0.1 */
	if (node_service_find_source("tests/node_loopback.js", loopback, sizeof loopback)) {
		say(err, errlen,
		    "tests/node_loopback.js not found: set SCACHE_SOURCE_ROOT to the source tree");
		return -1;
	}
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	for (int attempt = 0; attempt < 3; attempt++) {
		/* The TLS port (unused) is the next one; if it is taken, node exits and the
		 * next attempt draws again. */
		int port = node_service_free_port(), tls = port + 1;
		if (port <= 0)
			continue;
		snprintf(port_s, sizeof port_s, "%d", port);
		snprintf(tls_s, sizeof tls_s, "%d", tls);
		snprintf(k->log, sizeof k->log, "%s/kinesis-mock-%d-%d.log", tmp, (int)getpid(),
		         port);
		int fd = open(k->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			say(err, errlen, "cannot create kinesis-mock's log file");
			return -1;
		}
		/* the child inherits the environment: set its settings here */
		setenv("KINESIS_MOCK_PLAIN_PORT", port_s, 1);
		setenv("KINESIS_MOCK_TLS_PORT", tls_s, 1);
		setenv("KINESIS_MOCK_CERT_PATH", cert, 1);
		setenv("CREATE_STREAM_DURATION", "0ms", 1);
		setenv("DELETE_STREAM_DURATION", "0ms", 1);
		setenv("REGISTER_STREAM_CONSUMER_DURATION", "0ms", 1);
		setenv("DEREGISTER_STREAM_CONSUMER_DURATION", "0ms", 1);
		setenv("SPLIT_SHARD_DURATION", "0ms", 1);
		setenv("MERGE_SHARDS_DURATION", "0ms", 1);
		setenv("UPDATE_SHARD_COUNT_DURATION", "0ms", 1);
		setenv("SHOULD_PERSIST_DATA", "false", 1);
		setenv("LOG_LEVEL", "WARN", 1);
		char *argv[] = {"node", "-r", loopback, main_js, NULL};
		pid_t pid = node_service_spawn(argv, fd, -1, "KINESIS_MOCK_LOG");
		close(fd);
		if (pid < 0) {
			say(err, errlen, "fork failed");
			return -1;
		}
		k->pid = pid;
		k->port = port;
		k->tls_port = tls;
		snprintf(k->endpoint, sizeof k->endpoint, "http://127.0.0.1:%d", port);
		for (int i = 0; i < 6000; i++) {
			int status;
			if (waitpid(pid, &status, WNOHANG) == pid) {
				k->pid = 0;
				break; /* it died: a port was taken, or node is missing */
			}
			char e2[256];
			if (node_service_port_open(port) &&
			    kinesis_mock_call(k, "ListStreams", "{}", NULL, e2, sizeof e2) == 0)
				return 0;
			util_sleep_ms(10);
		}
		kinesis_mock_stop(k);
	}
	say(err, errlen, "kinesis-mock did not start (is node installed?)");
	return -1;
}

void kinesis_mock_stop(kinesis_mock *k)
{
	if (!k)
		return;
	node_service_stop(&k->pid);
	if (k->log[0] && !getenv("KINESIS_MOCK_LOG"))
		unlink(k->log);
	else if (k->log[0])
		fprintf(stderr, "kinesis-mock's log: %s\n", k->log);
	k->log[0] = '\0';
}

void kinesis_mock_config(const kinesis_mock *k, const char *stream, scache_stream_config *cfg)
{
	local_kinesis_config(k->endpoint, stream, cfg);
}

int kinesis_mock_call(const kinesis_mock *k, const char *op, const char *json, char **answer,
                      char *err, size_t errlen)
{
	return kinesalite_call(k->endpoint, op, json, answer, err, errlen);
}

static int stream_field(const kinesis_mock *k, const char *stream, const char *field, char *out,
                        size_t len, char *err, size_t errlen)
{
	char body[256], *answer;
	snprintf(body, sizeof body, "{\"StreamName\":\"%s\"}", stream);
	if (kinesis_mock_call(k, "DescribeStreamSummary", body, &answer, err, errlen))
		return -1;
	json_object *o = json_tokener_parse(answer), *sum;
	free(answer);
	const char *v = NULL;
	if (o && json_object_object_get_ex(o, "StreamDescriptionSummary", &sum))
		v = aws_json_str(sum, field);
	util_fmt(out, len, "%s", v ? v : "");
	json_object_put(o);
	return v ? 0 : -1;
}

int kinesis_mock_wait_active(const kinesis_mock *k, const char *stream, char *err, size_t errlen)
{
	char status[32];
	for (int i = 0; i < 1000; i++) {
		if (stream_field(k, stream, "StreamStatus", status, sizeof status, err, errlen) ==
		        0 &&
		    !strcmp(status, "ACTIVE"))
			return 0;
		util_sleep_ms(10);
	}
	say(err, errlen, "stream did not become ACTIVE");
	return -1;
}

int kinesis_mock_create_stream(const kinesis_mock *k, const char *stream, int shards, char *err,
                               size_t errlen)
{
	char body[256];
	snprintf(body, sizeof body, "{\"StreamName\":\"%s\",\"ShardCount\":%d}", stream, shards);
	if (kinesis_mock_call(k, "CreateStream", body, NULL, err, errlen))
		return -1;
	return kinesis_mock_wait_active(k, stream, err, errlen);
}

int kinesis_mock_delete_stream(const kinesis_mock *k, const char *stream, char *err, size_t errlen)
{
	char body[256], status[32], e2[256];
	snprintf(body, sizeof body, "{\"StreamName\":\"%s\",\"EnforceConsumerDeletion\":true}",
	         stream);
	if (kinesis_mock_call(k, "DeleteStream", body, NULL, err, errlen))
		return -1;
	for (int i = 0; i < 1000; i++) {
		if (stream_field(k, stream, "StreamStatus", status, sizeof status, e2, sizeof e2) !=
		    0)
			return 0; /* ResourceNotFoundException: gone */
		util_sleep_ms(10);
	}
	say(err, errlen, "stream was not deleted");
	return -1;
}

int kinesis_mock_stream_arn(const kinesis_mock *k, const char *stream, char *arn, size_t len,
                            char *err, size_t errlen)
{
	return stream_field(k, stream, "StreamARN", arn, len, err, errlen);
}

int kinesis_mock_put(const kinesis_mock *k, const char *stream, const void *data, size_t len,
                     const char *pk, char *seq, size_t seqlen, char *shard, size_t shardlen,
                     char *err, size_t errlen)
{
	size_t bl;
	char *b64 = util_b64_encode(data, len, &bl), *answer = NULL;
	char rnd[32];
	int rc = -1;
	if (!b64)
		return -1;
	if (!pk) {
		snprintf(rnd, sizeof rnd, "%016llx", (unsigned long long)aws_random());
		pk = rnd;
	}
	size_t n = bl + strlen(stream) + strlen(pk) + 128;
	char *body = malloc(n);
	if (body) {
		snprintf(body, n, "{\"StreamName\":\"%s\",\"Data\":\"%s\",\"PartitionKey\":\"%s\"}",
		         stream, b64, pk);
		rc = kinesis_mock_call(k, "PutRecord", body, &answer, err, errlen);
	}
	if (rc == 0) {
		json_object *o = json_tokener_parse(answer);
		const char *s = aws_json_str(o, "SequenceNumber"), *sh = aws_json_str(o, "ShardId");
		if (seq && seqlen)
			util_fmt(seq, seqlen, "%s", s ? s : "");
		if (shard && shardlen)
			util_fmt(shard, shardlen, "%s", sh ? sh : "");
		json_object_put(o);
	}
	free(answer);
	free(body);
	free(b64);
	return rc;
}
