/*
 * dynalite.c: run dynalite on a free loopback port for a test, and stop it. See
 * dynalite.h. Readiness is dynalite's own "listening" line on its stdout, so no port is
 * probed. Administrative calls go through the library's AWS client core with the
 * DynamoDB service (lib/dynamodb_internal.h), signed as the code under test signs.
 */
#include "dynalite.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

#include "dynamodb_internal.h"
#include "aws_call.h"
#include "node_service.h"
#include "util.h"

/* Wait up to 15 s for node's "listening" line on fd: 0 when it came, -1 when node
 * exited (the port was taken) or stayed silent. */
static int wait_listening(int fd)
{
	char buf[512];
	size_t n = 0;
	for (int waited = 0; waited < 15000;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, 100);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0) {
			waited += 100;
			continue;
		}
		ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
		if (k <= 0)
			return -1; /* EOF: node exited */
		n += (size_t)k;
		buf[n] = '\0';
		if (strstr(buf, "listening"))
			return 0;
		if (n == sizeof buf - 1)
			n = 0;
	}
	return -1;
}

static pid_t spawn(const char *cli, int port, int out_w, int out_r)
{
	char port_s[16];
	snprintf(port_s, sizeof port_s, "%d", port);
	char *argv[] = {"node",
	                (char *)cli,
	                "--host",
	                "127.0.0.1",
	                "--port",
	                port_s,
	                "--createTableMs",
	                "0",
	                "--deleteTableMs",
	                "0",
	                "--updateTableMs",
	                "0",
	                NULL};
	return node_service_spawn(argv, out_w, out_r, "DYNALITE_LOG");
}

int dynalite_start(dynalite *d, char *err, size_t errlen)
{
	char cli[1024];
	memset(d, 0, sizeof *d);
	d->out = -1;
	if (node_service_find("dynalite/cli.js", cli, sizeof cli)) {
		util_fmt(err, errlen,
		         "dynalite not found: run scripts/install-deps.sh (or set "
		         "SCACHE_SOURCE_ROOT to the source tree)");
		return -1;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		int port = node_service_free_port(), fds[2];
		if (port <= 0 || pipe(fds))
			continue;
		pid_t pid = spawn(cli, port, fds[1], fds[0]);
		close(fds[1]);
		if (pid < 0) {
			close(fds[0]);
			util_fmt(err, errlen, "fork failed");
			return -1;
		}
		d->pid = pid;
		d->out = fds[0];
		d->port = port;
		snprintf(d->endpoint, sizeof d->endpoint, "http://127.0.0.1:%d", port);
		if (wait_listening(d->out) == 0)
			return 0;
		dynalite_stop(d);
	}
	util_fmt(err, errlen, "dynalite did not start (is node installed?)");
	return -1;
}

void dynalite_stop(dynalite *d)
{
	if (!d)
		return;
	node_service_stop(&d->pid);
	if (d->out >= 0)
		close(d->out);
	d->out = -1;
}

void dynalite_config(const dynalite *d, scache_dynamodb_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->region = "us-east-1";
	cfg->endpoint = d->endpoint;
	cfg->access_key_id = "AKIDTESTDYNALITE";
	cfg->secret_access_key = "test-secret-dynalite";
	cfg->connect_timeout_ms = 1000;
	cfg->timeout_ms = 5000;
	cfg->max_retries = 1;
}

int dynalite_call(const char *endpoint, const char *op, const char *json, char **answer, char *err,
                  size_t errlen)
{
	aws_config ac = {.region = "us-east-1",
	                 .endpoint = endpoint,
	                 .access_key_id = "AKIDTESTDYNALITE",
	                 .secret_access_key = "test-secret-dynalite",
	                 .max_retries = 1,
	                 .backoff_base_ms = 5,
	                 .backoff_max_ms = 50};
	aws_settings s;
	aws_client *c = NULL;

	if (answer)
		*answer = NULL;
	if (aws_settings_resolve(&dynamodb_service, &ac, &s, err, errlen))
		return -1;
	scache_err e = aws_client_new(&dynamodb_service, &s, &c, err, errlen);
	aws_settings_clear(&s);
	if (e)
		return -1;
	return aws_call_json(c, op, json, answer, err, errlen);
}

static int table_active(const dynalite *d, const char *table, char *err, size_t errlen)
{
	char body[256], *answer;
	snprintf(body, sizeof body, "{\"TableName\":\"%s\"}", table);
	if (dynalite_call(d->endpoint, "DescribeTable", body, &answer, err, errlen))
		return 0;
	json_object *o = json_tokener_parse(answer), *t;
	free(answer);
	const char *st = NULL;
	if (o && json_object_object_get_ex(o, "Table", &t))
		st = aws_json_str(t, "TableStatus");
	int active = st && !strcmp(st, "ACTIVE");
	json_object_put(o);
	return active;
}

int dynalite_create_table(const dynalite *d, const char *table, const char *pk, const char *pk_type,
                          const char *sk, const char *sk_type, char *err, size_t errlen)
{
	char body[1024];
	if (sk)
		snprintf(body, sizeof body,
		         "{\"TableName\":\"%s\",\"BillingMode\":\"PAY_PER_REQUEST\","
		         "\"AttributeDefinitions\":[{\"AttributeName\":\"%s\",\"AttributeType\":"
		         "\"%s\"},{\"AttributeName\":\"%s\",\"AttributeType\":\"%s\"}],"
		         "\"KeySchema\":[{\"AttributeName\":\"%s\",\"KeyType\":\"HASH\"},"
		         "{\"AttributeName\":\"%s\",\"KeyType\":\"RANGE\"}]}",
		         table, pk, pk_type, sk, sk_type, pk, sk);
	else
		snprintf(body, sizeof body,
		         "{\"TableName\":\"%s\",\"BillingMode\":\"PAY_PER_REQUEST\","
		         "\"AttributeDefinitions\":[{\"AttributeName\":\"%s\",\"AttributeType\":"
		         "\"%s\"}],"
		         "\"KeySchema\":[{\"AttributeName\":\"%s\",\"KeyType\":\"HASH\"}]}",
		         table, pk, pk_type, pk);
	if (dynalite_call(d->endpoint, "CreateTable", body, NULL, err, errlen))
		return -1;
	for (int i = 0; i < 1000; i++) {
		if (table_active(d, table, err, errlen))
			return 0;
		util_sleep_ms(10);
	}
	util_fmt(err, errlen, "table %s did not become ACTIVE", table);
	return -1;
}

int dynalite_put_item(const dynalite *d, const char *table, const char *item, char *err,
                      size_t errlen)
{
	size_t n = strlen(table) + strlen(item) + 64;
	char *body = malloc(n);
	if (!body)
		return -1;
	snprintf(body, n, "{\"TableName\":\"%s\",\"Item\":%s}", table, item);
	int rc = dynalite_call(d->endpoint, "PutItem", body, NULL, err, errlen);
	free(body);
	return rc;
}
