#!/usr/bin/env python3
"""Integration tests of the users example server in DynamoDB mode, on real parts: dynalite
(the local DynamoDB) and kinesalite (the local Kinesis) on 127.0.0.1, two users_server
processes with --dynamodb-table, real HTTP.

  integration_dynamodb.py BUILD_DIR

Locally nothing writes DynamoDB's change records (Kinesis Data Streams for DynamoDB), so
after each write a scenario puts the record on kinesalite itself, in AWS's exact shape
(tests/test_ddb_stream_live.c, wire-formats.md section 5). Outcomes are exact (status,
X-Cache, body, counters); waits are for states, never timed assertions. Every process
started here is stopped at the end, also when a scenario fails or the test is interrupted.
The last line has Criterion's "Synthesis" shape (scripts/count-results.py counts it).
Helpers (kinesalite, the server's HTTP calls, cleanup) come from integration_server.py.
"""
import base64, json, os, shutil, subprocess, sys, tempfile, time, traceback, urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import integration_server as it  # noqa: E402 (its main() runs only as a script)
from integration_server import eq, expect, wait_until  # noqa: E402

DYNALITE = os.path.join(it.ROOT, ".deps", "node_modules", "dynalite")
TABLE = "users"
# Nothing from the environment may send the servers elsewhere than the local services.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("AWS_", "SCACHE_")) or k == "SCACHE_SOURCE_ROOT"}
AWS_ENV = dict(CLEAN_ENV, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
               AWS_REGION="us-east-1")


class Dynamo:
    """dynalite on 127.0.0.1 with the table 'users' (key "id", a string)."""

    def __init__(self):
        self.port = it.free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        js = ("require(process.argv[1])({createTableMs: 0, deleteTableMs: 0, "
              "updateTableMs: 0}).listen(+process.argv[2], '127.0.0.1')")
        self.proc = subprocess.Popen(["node", "-e", js, DYNALITE, str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        it.procs.append(self.proc)
        wait_until("dynalite to listen", self.listening)
        self.call("CreateTable", {
            "TableName": TABLE,
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}})
        wait_until("the table to be active", lambda: self.call(
            "DescribeTable", {"TableName": TABLE})["Table"]["TableStatus"] == "ACTIVE")

    def listening(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"dynalite exited with {self.proc.returncode}")
        return it.Kinesis.listening(self)

    def call(self, op, body):
        req = urllib.request.Request(
            self.endpoint + "/", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/x-amz-json-1.0",
                     "X-Amz-Target": "DynamoDB_20120810." + op,
                     "X-Amz-Date": "20261124T000000Z",
                     "Authorization": "AWS4-HMAC-SHA256 Credential=local/20261124/us-east-1/"
                                      "dynamodb/aws4_request, SignedHeaders=host, Signature=0"})
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
            return json.loads(data) if data else {}

    def item(self, i):
        """The item as DynamoDB JSON, or None."""
        return self.call("GetItem", {"TableName": TABLE, "Key": {"id": {"S": str(i)}},
                                     "ConsistentRead": True}).get("Item")

    def put(self, i, name, email=None):
        """A write made outside the servers; returns (old image or None, new image)."""
        new = {"id": {"S": str(i)}, "name": {"S": name},
               "email": {"S": email or f"{name.split()[0].lower()}@example.com"}}
        old = self.call("PutItem", {"TableName": TABLE, "Item": new,
                                    "ReturnValues": "ALL_OLD"}).get("Attributes")
        return old, new


def user(i, name, email=None):
    """The body a GET answers: the SQLite mode's shape."""
    return {"id": str(i), "name": name, "email": email or f"{name.split()[0].lower()}@example.com"}


_last_ms = [0]


def change(event, i, new=None, old=None):
    """A change record as Kinesis Data Streams for DynamoDB writes it (creation times
    strictly increasing, as they are for successive changes of one item)."""
    ms = max(int(time.time() * 1000), _last_ms[0] + 1)
    _last_ms[0] = ms
    d = {"ApproximateCreationDateTime": ms, "Keys": {"id": {"S": str(i)}}}
    if new is not None:
        d["NewImage"] = new
    if old is not None:
        d["OldImage"] = old
    d["SizeBytes"] = len(json.dumps(d)) - 40
    return {"awsRegion": "us-east-1", "eventID": str(uuid.uuid4()), "eventName": event,
            "userIdentity": None, "recordFormat": "application/json", "tableName": TABLE,
            "dynamodb": d, "eventSource": "aws:dynamodb"}


class DServer(it.Server):
    """users_server in DynamoDB mode."""

    def __init__(self, name, tmp, kinesis, stream, dynamo, mode):
        self.name = name
        self.port = it.free_port()
        self.log = os.path.join(tmp, f"{name}.log")
        args = [it.SERVER, "--port", str(self.port), "--stream", stream, "--endpoint",
                kinesis.endpoint, "--dynamodb-table", TABLE, "--dynamodb-endpoint",
                dynamo.endpoint, "--log", self.log]
        if mode:
            args += ["--dynamodb-mode", mode]
        self.stderr_path = os.path.join(tmp, f"{name}.stderr")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(args, env=AWS_ENV, stdout=self.stderr, stderr=self.stderr)
        it.procs.append(self.proc)
        wait_until(f"server {name} to answer /healthz", self.healthy)


class Env:
    """dynalite + kinesalite + a stream + servers in DynamoDB mode. modes: {name: mode}
    (None: the flag is not given, the default)."""

    def __init__(self, servers=None):
        self.tmp = tempfile.mkdtemp(prefix="scache-itd-")
        self.dynamo = Dynamo()
        self.kinesis = it.Kinesis(self.tmp)
        self.stream = "changes-" + os.path.basename(self.tmp).replace("_", "-")
        self.kinesis.create_stream(self.stream, 2)
        self.servers = {n: DServer(n, self.tmp, self.kinesis, self.stream, self.dynamo, m)
                        for n, m in (servers or {}).items()}

    def record(self, event, i, new=None, old=None):
        """Puts the change record on the stream, as DynamoDB would."""
        rec = json.dumps(change(event, i, new, old), separators=(",", ":"))
        self.kinesis.call("PutRecord", {"StreamName": self.stream, "PartitionKey": f"users/{i}",
                                        "Data": base64.b64encode(rec.encode()).decode()})

    def close(self):
        it.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)


def cache_both(env, i, body):
    """GET user i on every server: a MISS from DynamoDB, then a HIT."""
    for s in env.servers.values():
        eq(s.get_user(i), (200, "MISS", body), f"first GET of {i} on {s.name}")
        eq(s.get_user(i), (200, "HIT", body), f"second GET of {i} on {s.name}")


# ---- Scenarios ---------------------------------------------------------------------


def refresh_mode_a_change_record_refreshes_both_instances(env):
    a, b = env.servers["A"], env.servers["B"]
    env.dynamo.put(1, "Ada")
    cache_both(env, 1, user(1, "Ada"))
    old, new = env.dynamo.put(1, "Ada Lovelace", "ada@example.com")
    # no record yet: the servers cannot know (this is why the table must stream changes)
    eq(a.get_user(1), (200, "HIT", user(1, "Ada")), "A before the change record")
    env.record("MODIFY", 1, new, old)
    for s in (a, b):  # a cache with entries waits for a poll begun after the request
        eq(s.get_user(1), (200, "HIT", user(1, "Ada Lovelace", "ada@example.com")),
           f"GET on {s.name} after the MODIFY record")
        m = s.metrics()
        eq((m["scache_refreshed_total"], m["scache_published_keys_total"]), (1, 0),
           f"{s.name}: refreshed, published")
    # an INSERT of a user no server read: stored from its NewImage, the first GET hits
    _, new = env.dynamo.put(2, "Grace")
    env.record("INSERT", 2, new)
    for s in (a, b):
        eq(s.get_user(2), (200, "HIT", user(2, "Grace")), f"GET of 2 on {s.name}")


def invalidate_mode_a_change_record_removes_the_copy(env):
    a, b = env.servers["A"], env.servers["B"]
    env.dynamo.put(1, "Ada")
    cache_both(env, 1, user(1, "Ada"))
    old, new = env.dynamo.put(1, "Ada Lovelace", "ada@example.com")
    env.record("MODIFY", 1, new, old)
    for s in (a, b):
        eq(s.get_user(1), (200, "MISS", user(1, "Ada Lovelace", "ada@example.com")),
           f"GET on {s.name} after the MODIFY record")
        eq(s.get_user(1)[1], "HIT", f"{s.name} caches the new value")
        m = s.metrics()
        eq((m["scache_refreshed_total"], m["scache_stream_keys_total"]), (0, 1),
           f"{s.name}: refreshed, keys from the stream")


def a_put_through_a_reaches_b_by_its_change_record(env):
    a, b = env.servers["A"], env.servers["B"]  # A: refresh, B: invalidate
    env.dynamo.put(3, "Linus")
    cache_both(env, 3, user(3, "Linus"))
    old = env.dynamo.item(3)
    st, _, body = a.request("PUT", "/users/3", json.dumps(
        {"name": "Linus Torvalds", "email": "lt@example.com"}))
    eq((st, json.loads(body)), (200, user(3, "Linus Torvalds", "lt@example.com")), "PUT on A")
    new = env.dynamo.item(3)
    eq(new, {"id": {"S": "3"}, "name": {"S": "Linus Torvalds"}, "email": {"S": "lt@example.com"}},
       "the item A wrote with PutItem")
    # A dropped its own copy (nothing published): it reads its write at once
    eq(a.get_user(3), (200, "MISS", user(3, "Linus Torvalds", "lt@example.com")),
       "GET on A after its own PUT")
    eq(a.metrics()["scache_published_keys_total"], 0, "A published nothing")
    eq(b.get_user(3), (200, "HIT", user(3, "Linus")), "B before the change record")
    env.record("MODIFY", 3, new, old)
    eq(b.get_user(3), (200, "MISS", user(3, "Linus Torvalds", "lt@example.com")),
       "GET on B after the record of A's PUT")
    # and the other way: a PUT through B refreshes A
    old = new
    eq(b.request("PUT", "/users/3", json.dumps({"name": "Tux", "email": "t@example.com"}))[0],
       200, "PUT on B")
    env.record("MODIFY", 3, env.dynamo.item(3), old)
    eq(a.get_user(3), (200, "HIT", user(3, "Tux", "t@example.com")),
       "GET on A (refresh) after the record of B's PUT")


def a_delete_is_404_everywhere_after_its_remove_record(env):
    a, b = env.servers["A"], env.servers["B"]
    env.dynamo.put(4, "Ken")
    env.dynamo.put(5, "Dennis")
    cache_both(env, 4, user(4, "Ken"))
    cache_both(env, 5, user(5, "Dennis"))  # keeps B's cache from emptying
    old = env.dynamo.item(4)
    st, _, body = a.request("DELETE", "/users/4")
    eq((st, json.loads(body)), (200, {"deleted": True}), "DELETE on A")
    eq(env.dynamo.item(4), None, "the item is gone from the table")
    eq(b.get_user(4), (200, "HIT", user(4, "Ken")), "B before the REMOVE record")
    env.record("REMOVE", 4, None, old)
    for s in (b, a):
        eq(s.get_user(4), (404, "MISS", None),
           f"GET on {s.name} after the REMOVE record")
    st, _, body = a.request("DELETE", "/users/4")
    eq((st, json.loads(body)), (404, {"error": "no such user"}), "DELETE of an absent user")
    eq(b.get_user(5)[:2], (200, "HIT"), "user 5 is untouched")


def bad_flags_exit_2_with_a_message(env):
    def run(args, extra_env=None):
        p = subprocess.run([it.SERVER, "--stream", "s", "--port", str(it.free_port()), *args],
                           env=dict(AWS_ENV, **(extra_env or {})), capture_output=True,
                           text=True, timeout=30)
        return p.returncode, p.stderr

    rc, err = run(["--dynamodb-table", TABLE, "--dynamodb-mode", "sometimes"])
    eq(rc, 2, "exit status of an unknown mode")
    expect("bad --dynamodb-mode 'sometimes'" in err and "invalidate" in err and "refresh" in err,
           f"the message names the mode and the choices: {err!r}")
    rc, err = run(["--dynamodb-table", TABLE], {"SCACHE_DYNAMODB_MODE": "Refresh"})
    eq((rc, "bad --dynamodb-mode 'Refresh'" in err), (2, True),
       f"an unknown mode from SCACHE_DYNAMODB_MODE ({err!r})")
    rc, err = run(["--dynamodb-mode", "refresh"])
    eq((rc, "need --dynamodb-table" in err), (2, True), f"a mode without a table ({err!r})")
    rc, err = run(["--dynamodb-table", TABLE, "--dynamodb-endpoint", "http://127.0.0.1:9"],
                  {"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    eq((rc, "no AWS region" in err), (2, True), f"no region ({err!r})")
    rc, err = run(["--dynamodb-table", TABLE, "--dynamodb-endpoint", "http://127.0.0.1:9"],
                  {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    eq(rc, 2, f"no credentials ({err!r})")
    rc, err = run(["--dynamodb-table", TABLE, "--dynamodb-mod", "refresh"])
    eq((rc, "unknown or incomplete option '--dynamodb-mod'" in err), (2, True),
       f"a misspelt flag ({err!r})")


def dynamodb_unreachable_is_502_naming_the_table(env):
    a = env.servers["A"]
    env.dynamo.proc.terminate()
    env.dynamo.proc.wait(timeout=10)
    st, xc, body = a.request("GET", "/users/1")
    msg = json.loads(body)["error"]
    eq((st, xc), (502, None), "GET with DynamoDB down (no X-Cache on errors, as in SQLite mode)")
    expect("'users'" in msg, f"the error names the table: {msg!r}")
    st, _, body = a.request("PUT", "/users/1", json.dumps({"name": "A", "email": "a@b"}))
    msg = json.loads(body)["error"]
    eq(st, 502, "PUT with DynamoDB down")
    expect("'users'" in msg and "PutItem" in msg and env.dynamo.endpoint in msg,
           f"the error names the table, the call and the endpoint: {msg!r}")
    st, _, body = a.request("PUT", "/users/1", '{"name":"no email"}')
    eq(st, 400, "a bad body is refused before any call")


def the_demo_script_runs_to_the_end(env):
    p = subprocess.run([os.path.join(it.ROOT, "scripts", "demo-dynamodb.sh")],
                       env=dict(CLEAN_ENV, SCACHE_BUILD_DIR=it.BUILD), capture_output=True,
                       text=True, timeout=300)
    out = p.stdout
    eq(p.returncode, 0, f"exit status of scripts/demo-dynamodb.sh ({p.stderr[-2000:]!r})")
    for line in ('-> 200  X-Cache: MISS  {"id":"1","name":"Ada","email":"ada@example.com"}',
                 '-> 200  X-Cache: HIT  {"id":"1","name":"Ada","email":"ada@example.com"}',
                 '-> 200  X-Cache: HIT  {"id":"1","name":"Ada Lovelace","email":"ada@example.com"}',
                 '-> 200  X-Cache: MISS  {"id":"1","name":"Ada Lovelace",'
                 '"email":"ada@example.com"}',
                 '-> 404  X-Cache: MISS  {"error":"no such user"}',
                 "[stand-in for AWS] DynamoDB would put this MODIFY change record",
                 "demo: done (every process stopped"):
        expect(line in out, f"the demo prints {line!r}:\n{out[-4000:]}")
    # in order: A (refresh) hits the new value before B (invalidate) misses it
    expect(out.index("X-Cache: HIT  {\"id\":\"1\",\"name\":\"Ada Lovelace\"") <
           out.index("X-Cache: MISS  {\"id\":\"1\",\"name\":\"Ada Lovelace\""), out[-4000:])


SCENARIOS = [
    (refresh_mode_a_change_record_refreshes_both_instances, {"A": "refresh", "B": "refresh"}),
    (invalidate_mode_a_change_record_removes_the_copy, {"A": "invalidate", "B": None}),
    (a_put_through_a_reaches_b_by_its_change_record, {"A": "refresh", "B": "invalidate"}),
    (a_delete_is_404_everywhere_after_its_remove_record, {"A": "invalidate", "B": "invalidate"}),
    (bad_flags_exit_2_with_a_message, {}),
    (dynamodb_unreachable_is_502_naming_the_table, {"A": None}),
    (the_demo_script_runs_to_the_end, None),
]


def stop_servers(env):
    for srv in (env.servers.values() if env else ()):
        srv.stop()  # exit status 0: a clean shutdown (and no sanitizer report)


def main():
    return it.run_scenarios("server_dynamodb", SCENARIOS,
                            lambda servers: Env(servers) if servers is not None else None,
                            after=stop_servers)


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        it.cleanup()
