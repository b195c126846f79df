#!/usr/bin/env python3
"""Integration scenarios of the users example server in push mode (--push: Kinesis
enhanced fan-out) over kinesis-mock on 127.0.0.1: two users_server processes, each its own
consumer, over one SQLite file, keep each other fresh; an invalidation put with the AWS
command line is seen on both. The harness (servers, waits, cleanup, the Synthesis line)
is tests/integration_server.py's, imported as a module; only the Kinesis service differs.

  integration_push.py BUILD_DIR

kinesis-mock listens on every interface and has no setting for it: node is started with a
preamble binding its servers to 127.0.0.1. It delivers a record with its second event
after the put (one event a second, so 1.1 s of lag on a quiet machine; its ticks stretch
on a busy one), so the servers run with --push-lag 2500ms.
"""
import base64, json, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import integration_server as it  # noqa: E402  (its argv[1] is ours: the build directory)

# awscli v2 (scripts/install-deps.sh puts it at /usr/bin/aws; a v1 earlier on PATH lacks
# --cli-binary-format)
AWS = "/usr/bin/aws" if os.path.exists("/usr/bin/aws") else (shutil.which("aws") or "aws")
KMOCK = os.path.join(it.ROOT, ".deps", "node_modules", "kinesis-local")
LOOPBACK = os.path.join(it.ROOT, "tests", "node_loopback.js")  # binds it to 127.0.0.1


class KinesisMock(it.Kinesis):
    """kinesis-mock on 127.0.0.1 (plain port; its TLS port is the next one, unused)."""

    def __init__(self, tmp):
        self.port = it.free_port()
        self.stderr_path = os.path.join(tmp, "kinesis-mock.log")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.start()

    def start(self):
        env = dict(os.environ, KINESIS_MOCK_PLAIN_PORT=str(self.port),
                   KINESIS_MOCK_TLS_PORT=str(self.port + 1),
                   KINESIS_MOCK_CERT_PATH=os.path.join(KMOCK, "server.json"),
                   CREATE_STREAM_DURATION="0ms", DELETE_STREAM_DURATION="0ms",
                   REGISTER_STREAM_CONSUMER_DURATION="0ms",
                   DEREGISTER_STREAM_CONSUMER_DURATION="0ms", LOG_LEVEL="WARN")
        with open(self.stderr_path, "a") as log:
            self.proc = subprocess.Popen(["node", "-r", LOOPBACK, os.path.join(KMOCK, "main.js")],
                                         env=env, stdout=log, stderr=log)
        it.procs.append(self.proc)
        it.wait_until("kinesis-mock to answer", self.answering, timeout=60)


class PushEnv(it.Env):
    """kinesis-mock + a stream + servers A and B in push mode, each its own consumer."""

    def __init__(self, shards=2, servers=("A", "B")):
        self.tmp = tempfile.mkdtemp(prefix="scache-push-")
        self.kinesis = KinesisMock(self.tmp)
        self.stream = "users-push"
        self.kinesis.create_stream(self.stream, shards)
        self.db = os.path.join(self.tmp, "users.db")
        self.servers = {n: it.Server(n, self.tmp, self.kinesis, self.stream, self.db,
                                     ("--push", f"push-{n}", "--push-lag", "2500ms"))
                        for n in servers}


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def two_push_servers_keep_each_other_fresh(env):
    """A write on one server is seen by the other's next read (strict mode): the read
    waits for an event received after it arrived, on every shard."""
    a, b = env.servers["A"], env.servers["B"]
    a.put_user(1, "Ada")
    b.settle(1)  # B's cache was empty: its read would not wait for A's record
    it.eq(b.get_user(1)[2]["name"], "Ada", "B reads A's new user")
    st, xc, user = b.get_user(1)
    it.eq((st, xc, user["name"]), (200, "HIT", "Ada"), "B's second read")
    waits = []
    for round_ in range(5):
        name = f"Name{round_}"
        a.put_user(1, name)
        t0 = time.monotonic()
        st, xc, user = b.get_user(1)
        waits.append((time.monotonic() - t0) * 1000)
        it.eq((st, xc, user["name"]), (200, "MISS", name), f"B after A's write {round_}")
        it.eq(b.get_user(1)[1], "HIT", f"B caches the new value {round_}")
    it.eq(a.get_user(1)[2]["name"], "Name4", "A reads its own write")
    print(f"B's strict read after A's write, over kinesis-mock (push, 5 writes): "
          f"p50 {percentile(waits, 0.5):.0f} ms, max {max(waits):.0f} ms", flush=True)
    m = b.metrics()
    it.expect(m["scache_stream_keys_total"] >= 5, f"B read the 5 invalidations: {m}")


def an_invalidation_put_with_the_aws_cli_is_seen_on_both(env):
    """A record put with `aws kinesis put-record` (not by a server) invalidates user 2 on
    both servers: each reloads it from the database, changed behind their backs."""
    a, b = env.servers["A"], env.servers["B"]
    a.put_user(2, "Grace")
    for s in (a, b):
        s.settle(1)
        s.get_user(2)
        it.eq(s.get_user(2)[1], "HIT", f"{s.name} caches user 2")
    subprocess.run(["sqlite3", env.db, "UPDATE users SET name = 'Hopper' WHERE id = '2'"],
                   check=True)
    rec = json.dumps({"keys": [it.data_id(2)], "ts": "2026-12-01T09:00:00Z"})
    cli_env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
                   AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    subprocess.run([AWS, "--endpoint-url", env.kinesis.endpoint, "kinesis", "put-record",
                    "--stream-name", env.stream, "--partition-key", "cli",
                    "--cli-binary-format", "raw-in-base64-out", "--data", rec],
                   check=True, env=cli_env, stdout=subprocess.DEVNULL)
    for s in (a, b):
        st, xc, user = s.get_user(2)
        it.eq((st, xc, user["name"]), (200, "MISS", "Hopper"), f"{s.name} after the CLI's record")


def push_counters_reach_metrics_the_summary_and_scachectl_tail(env):
    """/metrics carries the push source's counters, the efficiency summary its totals, and
    `scachectl tail --push` prints what arrives by push with a counts line on stderr."""
    a = env.servers["A"]
    a.put_user(3, "Linus")
    a.settle(1)
    m = a.metrics()
    it.eq((m["scache_push_shards"], m["scache_push_polling"]), (2.0, 0.0),
          "A subscribed to both shards, no fallback to polling")
    it.expect(m["scache_push_events_total"] >= 1 and m["scache_push_subscribes_total"] >= 2
              and m["scache_push_records_total"] >= 1, f"push counters: {m}")
    ctl_env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
                   AWS_REGION="us-east-1", AWS_ENDPOINT_URL_KINESIS=env.kinesis.endpoint)
    out_path = os.path.join(env.tmp, "tail.out")
    err_path = os.path.join(env.tmp, "tail.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        tail = subprocess.Popen([it.SCACHECTL, "tail", "--stream", env.stream, "--push",
                                 "tail-consumer", "--interval", "200"], env=ctl_env,
                                stdout=out, stderr=err)
    it.procs.append(tail)
    want = f"{it.SOURCE}\t4\tpush\t-\n"
    try:
        it.wait_until("scachectl tail --push to subscribe", lambda: " shards, " in
                      open(err_path).read() and "2 shards" in open(err_path).read(), timeout=60)
        a.put_user(4, "Dennis")
        it.wait_until("scachectl tail --push to print user 4",
                      lambda: want in open(out_path).read(), timeout=60)
    finally:
        tail.terminate()
        it.eq(tail.wait(timeout=30), 0, "scachectl tail --push exits 0 on SIGTERM")
        it.procs.remove(tail)
    counts = [l for l in open(err_path).read().splitlines() if "tail: push: " in l]
    it.expect(counts and " events, " in counts[-1] and " ms behind" in counts[-1],
              f"the counts line: {counts[-1:]}")
    a.stop()
    summaries = [l for l in it.log_lines(a.log) if l["type"] == "summary"]
    it.expect(summaries, "A wrote a summary")
    push = summaries[-1].get("push")
    it.expect(push is not None and set(push) == {"events", "records", "renewals", "reconnects",
                                                 "refused", "millis_behind", "shards",
                                                 "polling"} and push["events"] >= 1,
              f"the summary's push totals: {summaries[-1]}")


SCENARIOS = [
    (two_push_servers_keep_each_other_fresh, {}),
    (an_invalidation_put_with_the_aws_cli_is_seen_on_both, {}),
    (push_counters_reach_metrics_the_summary_and_scachectl_tail, {"servers": ("A",)}),
]


def main():
    if not os.path.exists(AWS):
        print("integration_push: the aws command line is missing (scripts/install-deps.sh "
              "installs it)")
        return 1
    return it.run_scenarios("push", SCENARIOS, lambda kw: PushEnv(**kw))


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        it.cleanup()
