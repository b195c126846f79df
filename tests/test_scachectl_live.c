/* scachectl create-stream and delete-stream against kinesalite (started per test on a free
 * loopback port, stopped in .fini also after a failed assertion): exit codes, output, and
 * errors that name the AWS error. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kinesalite.h"

static kinesalite K;

static void up(void)
{
	char err[256];
	cr_assert_eq(kinesalite_start(&K, err, sizeof err), 0, "%s", err);
}

static void down(void)
{
	kinesalite_stop(&K);
}

TestSuite(scachectl, .init = up, .fini = down);

/* Runs scachectl (of this build, or $SCACHECTL) with args against K; its stdout and
 * stderr into out; returns its exit status. */
static int ctl(const char *args, char *out, size_t outlen)
{
	char self[1024], bin[1100], cmd[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	cr_assert_gt(sl, 0);
	self[sl] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(bin, sizeof bin, "%s/../tools/scachectl", self);
	const char *path = getenv("SCACHECTL") ? getenv("SCACHECTL") : bin;
	cr_assert_eq(access(path, X_OK), 0, "scachectl not found");
	snprintf(cmd, sizeof cmd,
	         "env -u AWS_ENDPOINT_URL_KINESIS -u SCACHE_STREAM AWS_ENDPOINT_URL=%s "
	         "AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIDSCACHECTLTEST "
	         "AWS_SECRET_ACCESS_KEY=scachectl-test-secret %s %s 2>&1",
	         K.endpoint, path, args);
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f);
	size_t n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(scachectl, create_stream_waits_until_active_and_delete_stream_until_gone)
{
	char out[4096], *answer = NULL, err[256];
	cr_assert_eq(ctl("create-stream orders --shards 3", out, sizeof out), 0, "%s", out);
	cr_assert_str_eq(out, "orders\tACTIVE\t3 shards\n");
	cr_assert_eq(kinesalite_call(K.endpoint, "DescribeStreamSummary",
	                             "{\"StreamName\":\"orders\"}", &answer, err, sizeof err),
	             0, "%s", err);
	cr_assert(strstr(answer, "\"StreamStatus\":\"ACTIVE\""), "%s", answer);
	cr_assert(strstr(answer, "\"OpenShardCount\":3"), "%s", answer);
	free(answer);

	/* creating it again fails with the AWS error named */
	cr_assert_eq(ctl("create-stream orders", out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "ResourceInUseException"), "%s", out);

	cr_assert_eq(ctl("delete-stream orders", out, sizeof out), 0, "%s", out);
	cr_assert_str_eq(out, "orders\tDELETED\n");
	cr_assert_neq(kinesalite_call(K.endpoint, "DescribeStreamSummary",
	                              "{\"StreamName\":\"orders\"}", NULL, err, sizeof err),
	              0);
	cr_assert_eq(ctl("delete-stream orders", out, sizeof out), 1, "%s", out);
	cr_assert(strstr(out, "ResourceNotFoundException"), "%s", out);

	/* the default is one shard */
	cr_assert_eq(ctl("create-stream one", out, sizeof out), 0, "%s", out);
	cr_assert_str_eq(out, "one\tACTIVE\t1 shard\n");
}

Test(scachectl, create_and_delete_stream_usage)
{
	char out[4096];
	cr_assert_eq(ctl("create-stream --help", out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "usage: scachectl create-stream NAME [--shards N]"), "%s", out);
	cr_assert_eq(ctl("delete-stream --help", out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "usage: scachectl delete-stream NAME"), "%s", out);
	cr_assert_eq(ctl("create-stream", out, sizeof out), 2, "%s", out);
	cr_assert_eq(ctl("create-stream a b", out, sizeof out), 2, "%s", out);
	cr_assert_eq(ctl("create-stream s --shards 0", out, sizeof out), 2, "%s", out);
	cr_assert_eq(ctl("create-stream s --shards x", out, sizeof out), 2, "%s", out);
	cr_assert_eq(ctl("delete-stream s --shards 2", out, sizeof out), 2, "%s", out);
	cr_assert_eq(ctl("delete-stream", out, sizeof out), 2, "%s", out);
	cr_assert_eq(ctl("--help", out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "create-stream") && strstr(out, "delete-stream"), "%s", out);
}
