#!/usr/bin/env python3
"""Integration tests of the users example server on real parts: kinesalite (the local
Kinesis) on 127.0.0.1, two users_server processes over one SQLite file, real HTTP.

  integration_server.py BUILD_DIR

Each scenario names the behaviour it pins and asserts exact outcomes (status codes,
X-Cache values, bodies, counters); waits are for states, never timed assertions. Every
process started here is stopped at the end, also when a scenario fails or the test is
interrupted. The last line has Criterion's "Synthesis" shape so scripts/count-results.py
counts each scenario.
"""
import base64, json, os, random, re, shutil, signal, socket, subprocess, sys, tempfile, threading
import time, traceback, urllib.error, urllib.request

ROOT = os.environ.get("SCACHE_SOURCE_ROOT") or os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
SERVER = os.path.join(BUILD, "example_server", "users_server")
SCACHECTL = os.path.join(BUILD, "tools", "scachectl")
KINESALITE = os.path.join(ROOT, ".deps", "node_modules", "kinesalite")
SOURCE = "db.users.id"

procs = []  # every process we started, stopped in cleanup()


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    procs.clear()


def on_signal(signum, frame):
    raise SystemExit(f"interrupted by signal {signum}")


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A free loopback port below the kernel's ephemeral range. A port the kernel hands
    out (bind to 0) can be taken again as the source port of any outgoing connection,
    or a client connecting to it while nothing listens can connect to itself; either
    keeps a service started there later (kinesalite after an outage) from listening."""
    rnd = random.Random()
    low = ephemeral_low()
    for _ in range(200):
        port = rnd.randrange(10000, low) if low > 10001 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise AssertionError("no free loopback port below the ephemeral range")


def wait_until(what, cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def data_id(i):
    return f"id={i}&s={SOURCE}&t=data.ID"


# ---- kinesalite ------------------------------------------------------------------


class Kinesis:
    """kinesalite on 127.0.0.1, persisted under a directory so it can be restarted."""

    def __init__(self, tmp, running=True):
        self.port = free_port()
        self.path = os.path.join(tmp, "kinesalite")
        self.stderr_path = os.path.join(tmp, "kinesalite.stderr")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = None
        if running:
            self.start()

    def start(self):
        js = ("require(process.argv[1])({path: process.argv[2], createStreamMs: 0, "
              "deleteStreamMs: 0, updateStreamMs: 0}).listen(+process.argv[3], '127.0.0.1')")
        with open(self.stderr_path, "a") as err:
            self.proc = subprocess.Popen(["node", "-e", js, KINESALITE, self.path,
                                          str(self.port)], stdout=subprocess.DEVNULL, stderr=err)
        procs.append(self.proc)
        wait_until("kinesalite to listen", self.answering)

    def answering(self):
        """kinesalite itself answers on the port (a TCP connect alone could reach
        something else); a kinesalite that exited fails at once with its stderr."""
        if self.proc.poll() is not None:
            with open(self.stderr_path) as f:
                raise AssertionError(f"kinesalite exited with {self.proc.returncode} on port "
                                     f"{self.port}: {f.read()[-2000:]!r}")
        if not self.listening():
            return False
        try:
            self.call("ListStreams", {})
            return True
        except OSError:
            return False

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def settle(self, keys):
        """Wait until this server has read `keys` invalidated IDs from the stream. Needed
        after a write when the cache was empty: such requests do not wait for the stream
        (nothing to evict), so the write's own record may otherwise arrive after the next
        load and evict it (correct, but a MISS where the test wants a HIT)."""
        wait_until(f"{self.name} to read {keys} keys from the stream",
                   lambda: self.metrics()["scache_stream_keys_total"] >= keys)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        procs.remove(self.proc)

    def call(self, op, body):
        req = urllib.request.Request(
            self.endpoint + "/", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/x-amz-json-1.1",
                     "X-Amz-Target": "Kinesis_20131202." + op,
                     "X-Amz-Date": "20261124T000000Z",
                     "Authorization": "AWS4-HMAC-SHA256 Credential=local/20261124/us-east-1/"
                                      "kinesis/aws4_request, SignedHeaders=host, Signature=0"})
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
            return json.loads(data) if data else {}

    def create_stream(self, name, shards=2):
        self.call("CreateStream", {"StreamName": name, "ShardCount": shards})
        wait_until("the stream to be active", lambda: self.call(
            "DescribeStreamSummary", {"StreamName": name})
            ["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE")


# ---- the example server -------------------------------------------------------------


class Server:
    def __init__(self, name, tmp, kinesis, stream, db, extra=(), env=None):
        self.name = name
        self.port = free_port()
        self.log = os.path.join(tmp, f"{name}.log")
        self.hold_dir = os.path.join(tmp, f"hold-{name}")
        os.makedirs(self.hold_dir, exist_ok=True)
        e = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
                 AWS_REGION="us-east-1", SCACHE_TEST_HOLD_DIR=self.hold_dir)
        e.update(env or {})
        args = [SERVER, "--port", str(self.port), "--db", db, "--stream", stream,
                "--endpoint", kinesis.endpoint, "--log", self.log, *extra]
        self.stderr_path = os.path.join(tmp, f"{name}.stderr")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(args, env=e, stdout=self.stderr, stderr=self.stderr)
        procs.append(self.proc)
        wait_until(f"server {name} to answer /healthz", self.healthy)

    def healthy(self):
        if self.proc.poll() is not None:
            with open(self.stderr_path) as f:
                raise AssertionError(f"server {self.name} exited with {self.proc.returncode}: "
                                     f"{f.read()[-2000:]}")
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def request(self, method, path, body=None, headers=None):
        """(status, X-Cache or None, body bytes)"""
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get("X-Cache"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("X-Cache"), e.read()

    def get_user(self, i):
        st, xc, body = self.request("GET", f"/users/{i}")
        return st, xc, (json.loads(body) if st == 200 else None)

    def put_user(self, i, name, email=None):
        st, _, body = self.request("PUT", f"/users/{i}", json.dumps(
            {"name": name, "email": email or f"{name.lower()}@example.com"}))
        eq(st, 200, f"PUT /users/{i} on {self.name} ({body!r})")

    def metrics(self):
        st, _, body = self.request("GET", "/metrics")
        eq(st, 200, "GET /metrics")
        return parse_prometheus(body.decode())

    def settle(self, keys):
        """Wait until this server has read `keys` invalidated IDs from the stream. Needed
        after a write when the cache was empty: such requests do not wait for the stream
        (nothing to evict), so the write's own record may otherwise arrive after the next
        load and evict it (correct, but a MISS where the test wants a HIT)."""
        wait_until(f"{self.name} to read {keys} keys from the stream",
                   lambda: self.metrics()["scache_stream_keys_total"] >= keys)

    def stop(self):
        self.proc.terminate()
        eq(self.proc.wait(timeout=20), 0, f"exit status of server {self.name}")
        procs.remove(self.proc)
        self.stderr.close()


PROM_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$")


def parse_prometheus(text):
    """Checks every line against the text exposition format; returns {name: value}."""
    expect(text.endswith("\n"), "metrics end with a newline")
    values, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            expect(kind in ("counter", "gauge", "untyped", "summary", "histogram"),
                   f"metric type {kind}")
            typed.add(name)
            continue
        m = PROM_LINE.match(line)
        expect(m, f"not a Prometheus sample line: {line!r}")
        expect(m.group(1) in typed, f"{m.group(1)} has no TYPE line")
        values[m.group(1)] = float(m.group(3))
    return values


class Env:
    """kinesalite + a stream + servers A and B over one SQLite file. stream_down: the
    servers start while kinesalite is not running yet (its port is chosen, nothing
    listens there); the scenario starts it and creates the stream with start_stream()."""

    def __init__(self, extra=(), servers=("A", "B"), stream_down=False):
        self.tmp = tempfile.mkdtemp(prefix="scache-it-")
        self.kinesis = Kinesis(self.tmp, running=not stream_down)
        self.stream = "users-" + os.path.basename(self.tmp).replace("_", "-")
        if not stream_down:
            self.start_stream()
        self.db = os.path.join(self.tmp, "users.db")
        self.servers = {n: Server(n, self.tmp, self.kinesis, self.stream, self.db, extra)
                        for n in servers}

    def start_stream(self):
        self.kinesis.create_stream(self.stream, int(os.environ.get("SCACHE_IT_SHARDS", "2")))

    def close(self):
        cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)


def log_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


REQUEST_FIELDS = {"type", "time", "method", "path", "status", "request_ms", "stream_ms",
                  "saved_ms", "hits", "misses", "evicted", "bypass"}
SUMMARY_FIELDS = {"type", "time", "period_s", "requests", "hits", "misses", "hit_ratio",
                  "bypass_requests", "stream_ms", "saved_ms", "saved_per_stream", "polls",
                  "source_calls", "source_errors", "staleness_ms", "bypassing", "entries",
                  "refreshed"}

# ---- Scenarios ---------------------------------------------------------------------


def cross_instance_invalidation_keeps_a_correct(env):
    a, b = env.servers["A"], env.servers["B"]
    a.put_user(1, "Ada")
    a.settle(1)
    eq(a.get_user(1), (200, "MISS", {"id": "1", "name": "Ada", "email": "ada@example.com"}),
       "first GET on A")
    eq(a.get_user(1)[:2], (200, "HIT"), "second GET on A")
    b.put_user(1, "Grace")
    st, xc, user = a.get_user(1)
    eq((st, xc, user["name"]), (200, "MISS", "Grace"), "GET on A after B's PUT")
    eq(a.get_user(1)[:2], (200, "HIT"), "A caches the new value")
    eq(b.request("DELETE", "/users/1")[0], 200, "DELETE on B")
    eq(a.get_user(1)[:2], (404, "MISS"), "GET on A after B's DELETE")
    eq(b.request("DELETE", "/users/1")[0], 404, "DELETE of an absent user")


def scachectl_publish_invalidates_both_instances(env):
    a, b = env.servers["A"], env.servers["B"]
    a.put_user(7, "Linus")
    for s in (a, b):
        s.settle(1)
        s.get_user(7)
        eq(s.get_user(7)[1], "HIT", f"{s.name} caches user 7")
    # the row changes behind both servers' backs, then someone announces it
    subprocess.run(["sqlite3", env.db, "UPDATE users SET name = 'Torvalds' WHERE id = '7'"],
                   check=True)
    eq(a.get_user(7)[2]["name"], "Linus", "A still serves its cached copy")
    out = subprocess.run([SCACHECTL, "publish", "--stream", env.stream, SOURCE, "7"],
                         env=dict(os.environ, AWS_ACCESS_KEY_ID="local",
                                  AWS_SECRET_ACCESS_KEY="local", AWS_REGION="us-east-1",
                                  AWS_ENDPOINT_URL_KINESIS=env.kinesis.endpoint),
                         capture_output=True, text=True, timeout=60)
    eq(out.returncode, 0, f"scachectl publish ({out.stderr.strip()})")
    for s in (a, b):
        st, xc, user = s.get_user(7)
        eq((st, xc, user["name"]), (200, "MISS", "Torvalds"), f"GET on {s.name} after publish")


def a_go_scache_record_invalidates_too(env):
    """A record as Go's scache writes it (with & escaped as \\u0026), put directly."""
    a = env.servers["A"]
    a.put_user(8, "Ken")
    a.settle(1)
    a.get_user(8)
    eq(a.get_user(8)[1], "HIT", "A caches user 8")
    subprocess.run(["sqlite3", env.db, "UPDATE users SET name = 'Thompson' WHERE id = '8'"],
                   check=True)
    rec = ('{"keys":["' + data_id(8).replace("&", "\\u0026") +
           '"],"ts":"2026-11-24T13:26:26.241701753Z"}')
    env.kinesis.call("PutRecords", {"StreamName": env.stream, "Records": [
        {"Data": base64.b64encode(rec.encode()).decode(), "PartitionKey": "ab" * 32}]})
    st, xc, user = a.get_user(8)
    eq((st, xc, user["name"]), (200, "MISS", "Thompson"), "GET on A after the Go record")


def stale_add_is_refused_through_http(env):
    a, b = env.servers["A"], env.servers["B"]
    b.put_user(1, "Old")
    b.put_user(2, "Other")
    a.settle(2)
    a.get_user(2)
    eq(a.get_user(2)[1], "HIT", "A's cache is not empty (so its requests drain)")
    hold = os.path.join(a.hold_dir, "hold-1")
    open(hold, "w").close()
    held = {}
    t = threading.Thread(target=lambda: held.update(r=a.get_user(1)))
    t.start()
    try:
        wait_until("A's slow load to read the old row",
                   lambda: os.path.exists(os.path.join(a.hold_dir, "loaded-1")))
        b.put_user(1, "New")                    # the row changes while A's load is held
        eq(a.get_user(2)[1], "HIT", "a request on A drains the stream")
    finally:
        os.remove(hold)                         # the slow load finishes, with old data
        t.join(60)
    eq((held["r"][0], held["r"][1], held["r"][2]["name"]), (200, "MISS", "Old"),
       "the slow request answers what it read")
    eq(a.metrics()["scache_refused_adds_total"], 1.0, "the stale add was refused")
    st, xc, user = a.get_user(1)
    eq((st, xc, user["name"]), (200, "MISS", "New"), "A does not serve the stale load")


def bad_input_gets_exact_errors(env):
    a = env.servers["A"]

    def err(method, path, body, status, headers=None):
        st, _, data = a.request(method, path, body, headers)
        eq(st, status, f"{method} {path}")
        return data

    for body in ("{not json", "[1,2]", '"x"', "", '{"name":"a"} trailing'):
        data = err("PUT", "/users/5", body, 400)
        expect("error" in json.loads(data), f"400 has a JSON error: {data!r}")
    # JSON text is UTF-8; a NUL inside a string or after the object is not a name
    for body in (b'{"name":"\xff\xfe","email":"e"}', '{"name":"a\\u0000b","email":"e"}',
                 '{"name":"a","email":"e"}\x00', '{"name":"a","email":"e"}\x00junk'):
        data = err("PUT", "/users/5", body, 400)
        expect("error" in json.loads(data), f"400 has a JSON error: {data!r}")
    for body in ('{"name":"a"}', '{"email":"a@b"}', '{"name":1,"email":"a@b"}',
                 '{"name":"a","email":null}'):
        data = err("PUT", "/users/5", body, 400)
        expect("error" in json.loads(data), "missing fields: a JSON error")
    err("PUT", "/users/5", "x" * (64 * 1024 + 1), 413)
    # chunked, so the size is only known while reading
    big = iter([b'{"name":"' + b"a" * 70000 + b'","email":"e"}'])
    err("PUT", "/users/5", big, 413, {"Transfer-Encoding": "chunked"})
    err("GET", "/nope", None, 404)
    err("GET", "/users", None, 404)
    err("POST", "/users/5", "{}", 405)
    err("PATCH", "/users/5", "{}", 405)
    err("POST", "/metrics", "", 405)
    a.put_user("a", "Ada")  # what an ID cut short at a %00 would name
    for bad in ("a%20b", "a.b", "%C3%A9", "x" * 65, "a%2Fb", "", "a%00b", "a%00"):
        err("GET", "/users/" + bad, None, 400 if bad else 400)
    eq(a.request("GET", "/users/5")[0], 404, "nothing was half-written")
    eq(a.request("GET", "/healthz")[0], 200, "the server still serves")
    # a missing stream name is a clear error and exit status 2
    e = {k: v for k, v in os.environ.items() if k != "SCACHE_STREAM"}
    out = subprocess.run([SERVER, "--port", str(free_port()), "--db", env.db], env=e,
                         capture_output=True, text=True, timeout=30)
    eq(out.returncode, 2, "exit status without a stream")
    expect("--stream" in out.stderr, f"the error names the flag: {out.stderr!r}")
    out = subprocess.run([SERVER, "--stream", "s", "--port", "notaport"],
                         capture_output=True, text=True, timeout=30)
    eq(out.returncode, 2, "exit status with a bad flag value")
    # 18446744073709552 s is 384 ms once the multiplication wraps: a bad value, not 384 ms
    for flag in ("--max-staleness", "--min-ttl", "--poll-interval"):
        out = subprocess.run([SERVER, "--stream", "s", flag, "18446744073709552s"],
                             capture_output=True, text=True, timeout=30)
        eq(out.returncode, 2, f"exit status with an overflowing {flag}")
        expect("bad value" in out.stderr, f"{flag}: {out.stderr!r}")


def metrics_are_prometheus_text(env):
    a = env.servers["A"]
    a.put_user(3, "Barbara")
    a.settle(1)
    a.get_user(3)
    a.get_user(3)
    m = a.metrics()
    for name in ("hits_total", "misses_total", "entries", "bytes", "refused_adds_total",
                 "evictions_total", "invalidations_total", "polls_total", "poll_errors_total",
                 "saved_seconds_total", "stream_seconds_total", "staleness_seconds"):
        expect("scache_" + name in m, f"metric scache_{name} is exposed")
    expect(m["scache_hits_total"] >= 1, "a hit was counted")
    expect(m["scache_entries"] >= 1, "an entry is cached")
    expect(m["scache_saved_seconds_total"] > 0, "hits saved time")


def efficiency_logs_are_json_with_every_field(env):
    a = env.servers["A"]
    a.put_user(4, "Edsger")
    a.settle(1)
    a.get_user(4)
    a.get_user(4)
    a.request("GET", '/users/"x"?q=1')
    a.stop()
    lines = log_lines(a.log)
    reqs = [l for l in lines if l["type"] == "request"]
    for l in reqs:
        eq(set(l), REQUEST_FIELDS, "request line fields")
    n_all = len(reqs)
    reqs = [l for l in reqs if l["path"] not in ("/metrics", "/healthz")]
    eq([(l["method"], l["path"], l["status"]) for l in reqs],
       [("PUT", "/users/4", 200), ("GET", "/users/4", 200), ("GET", "/users/4", 200),
        ("GET", '/users/"x"', 400)], "method, path, status")
    eq((reqs[1]["misses"], reqs[2]["hits"]), (1, 1), "the miss then the hit")
    expect(reqs[2]["saved_ms"] > 0, "the hit saved time")
    summaries = [l for l in lines if l["type"] == "summary"]
    eq(len(summaries), 1, "a last summary at shutdown")
    eq(set(summaries[0]) - {"warning"}, SUMMARY_FIELDS, "summary fields")
    eq(summaries[0]["requests"], n_all, "summary request count")
    out = subprocess.run([SCACHECTL, "report", a.log], capture_output=True, text=True,
                         timeout=30)
    expect(out.returncode in (0, 3), f"scachectl report: 0, or 3 for a WARNING verdict "
           f"(got {out.returncode})")
    expect(f"requests        {n_all} " in out.stdout and "verdict" in out.stdout, out.stdout)


def stream_outage_bypasses_then_recovers(env):
    a = env.servers["A"]
    a.put_user(6, "Barbara")
    a.settle(1)
    a.get_user(6)
    eq(a.get_user(6)[1], "HIT", "cached before the outage")
    env.kinesis.stop()
    seen = []

    def bypassing():
        st, xc, user = a.get_user(6)
        eq(st, 200, "requests keep succeeding during the outage")
        eq(user["name"], "Barbara", "the right data during the outage")
        seen.append(xc)
        return xc == "BYPASS"

    wait_until("BYPASS after max-staleness", bypassing, timeout=60)
    wait_until("a failed poll to be counted",
               lambda: a.metrics()["scache_poll_errors_total"] >= 1, timeout=60)
    eq(a.get_user(6)[1], "BYPASS", "still bypassed while the stream is down")
    h = json.loads(a.request("GET", "/healthz")[2])
    eq(h["bypassing"], True, "/healthz says so")
    env.kinesis.start()
    wait_until("caching to resume", lambda: a.get_user(6)[1] in ("HIT", "MISS"), timeout=60)
    a.get_user(6)
    eq(a.get_user(6)[1], "HIT", "caching resumed by itself")
    m = a.metrics()
    expect(m["scache_poll_errors_total"] >= 1, "poll errors were counted")
    expect(m["scache_bypass_requests_total"] >= 2, "bypassed requests were counted")
    a.stop()
    warnings = [l for l in log_lines(a.log) if l["type"] == "warning"]
    expect(any("bypassing" in w["msg"] for w in warnings), "a bypass warning was logged")
    eq(sum("bypassing the cache" in w["msg"] for w in warnings), 1, "one warning per episode")


def a_server_started_before_its_stream_serves_bypassed_then_caches(env):
    a = env.servers["A"]  # started while nothing listens on the Kinesis port
    eq(a.get_user("x")[:2], (404, "BYPASS"), "GET /users/x with the stream unreachable")
    eq(a.request("GET", "/healthz")[0], 200, "/healthz answers")
    h = json.loads(a.request("GET", "/healthz")[2])
    eq(h["bypassing"], True, "/healthz says the cache is bypassed")
    st, _, body = a.request("PUT", "/users/x", json.dumps(
        {"name": "Grace", "email": "grace@example.com"}))
    eq(st, 503, f"PUT saves but says other instances were not told ({body!r})")
    st, xc, user = a.get_user("x")
    eq((st, xc, user["name"]), (200, "BYPASS", "Grace"), "the saved row, bypassed")

    env.kinesis.start()
    # The stream does not exist yet: attempts that began after kinesalite listens get
    # ResourceNotFoundException, and the server keeps trying (and serving).
    errors = a.metrics()["scache_poll_errors_total"]
    wait_until("two more failed attempts against kinesalite without the stream",
               lambda: a.metrics()["scache_poll_errors_total"] >= errors + 2, timeout=60)
    eq(a.get_user("x")[1], "BYPASS", "still bypassed while the stream does not exist")
    env.start_stream()
    seen = []
    wait_until("caching to resume", lambda: seen.append(a.get_user("x")) or
               seen[-1][1] != "BYPASS", timeout=60)
    st, xc, user = seen[-1]
    eq((st, xc, user["name"]), (200, "MISS", "Grace"), "the first GET once the stream is read")
    st, xc, user = a.get_user("x")
    eq((st, xc, user["name"]), (200, "HIT", "Grace"), "the second GET")
    eq(json.loads(a.request("GET", "/healthz")[2])["bypassing"], False, "/healthz")
    a.stop()
    warnings = [l["msg"] for l in log_lines(a.log) if l["type"] == "warning"]
    eq(len(warnings), 3, f"one warning at startup, one for the PUT, one at recovery: {warnings}")
    expect(warnings[0].startswith("the stream cannot be read yet (") and
           env.kinesis.endpoint in warnings[0], f"the startup warning names the cause: "
           f"{warnings[0]}")
    expect(warnings[1].startswith("1 invalidation(s) could not be published (PutRecords at "
                                  + env.kinesis.endpoint), f"the PUT's warning: {warnings[1]}")
    eq(warnings[2], "the stream is read again: the cache was flushed and is back in use", "recovery")


def bounded_staleness_sees_a_change_within_one_interval(env):
    a, b = env.servers["A"], env.servers["B"]
    a.put_user(9, "Alan")
    a.settle(1)
    a.get_user(9)
    eq(a.get_user(9)[1], "HIT", "A caches user 9")
    b.put_user(9, "Turing")
    # A does not wait for the stream within its interval; once a poll that began after
    # the PUT has completed (two more polls), A has dropped its copy.
    polls = a.metrics()["scache_polls_total"]
    wait_until("two more background polls on A",
               lambda: a.metrics()["scache_polls_total"] >= polls + 2)
    st, xc, user = a.get_user(9)
    eq((st, xc, user["name"]), (200, "MISS", "Turing"), "GET on A after the interval")
    eq(a.get_user(9)[1], "HIT", "and caches it again")


def a_sigterm_during_startup_still_shuts_down_cleanly(env):
    # The signal may arrive while the server is starting, before it waits for signals:
    # no thread may take it with the default action (death by SIGTERM, no last summary).
    e = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
             AWS_REGION="us-east-1")
    for i in range(20):
        p = subprocess.Popen([SERVER, "--stream", env.stream, "--endpoint", env.kinesis.endpoint,
                              "--port", str(free_port()), "--db", env.db],
                             env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        while p.poll() is None:  # as soon as a second thread exists
            try:
                if len(os.listdir(f"/proc/{p.pid}/task")) >= 2:
                    break
            except FileNotFoundError:
                break
        p.send_signal(signal.SIGTERM)
        eq(p.wait(timeout=30), 0, f"exit status after an early SIGTERM (try {i})")
        procs.remove(p)



# ---- Denial of service: idle connections ------------------------------------------


def open_idle_sockets(port, n):
    """n TCP connections to 127.0.0.1:port that send nothing (the caller closes them)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 200), hard))
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def accepted_connections(pid, port, any_state=False):
    """How many established connections to 127.0.0.1:port the process holds open (with
    any_state: its sockets of that port in any state but LISTEN, e.g. CLOSE_WAIT: a
    connection the client closed and the server has not yet let go)."""
    inodes = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in f.readlines()[1:]:
            col = line.split()
            if col[1].endswith(f":{port:04X}") and (
                    col[3] == "01" if not any_state else col[3] != "0A"):  # 01: ESTABLISHED
                inodes.add(col[9])
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        held += link.startswith("socket:[") and link[8:-1] in inodes
    return held


def idle_connections_do_not_deny_service(env, n=1100):
    """With select() (FD_SETSIZE) and MHD's default limit of 1020 connections, ~1,000 idle
    sockets left every later request an empty reply. They are all accepted and held now,
    and a request on a new connection is still answered."""
    a = env.servers["A"]
    a.put_user(1, "Ada")
    socks = open_idle_sockets(a.port, n)
    try:
        held = []
        try:
            wait_until(f"server A to accept all {n} idle connections", lambda: held.append(
                accepted_connections(a.proc.pid, a.port)) or held[-1] >= n)
        except AssertionError:
            raise AssertionError(f"server A accepted {held[-1]} of {n} idle connections")
        st, _, user = a.get_user(1)
        eq((st, user["name"]), (200, "Ada"), f"GET /users/1 beside {n} idle connections")
    finally:
        for s in socks:
            s.close()


def idle_connections_do_not_deny_service_thread_per_connection(env):
    idle_connections_do_not_deny_service(env)


def idle_connections_are_closed_after_the_connection_timeout(env):
    a = env.servers["A"]  # --connection-timeout 1s
    socks = open_idle_sockets(a.port, 30)
    try:
        def closed(s):
            s.settimeout(0)
            try:
                return s.recv(1) == b""
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True
        wait_until("the server to close every idle connection",
                   lambda: all(closed(s) for s in socks))
    finally:
        for s in socks:
            s.close()
    eq(a.get_user(1)[:2], (404, "MISS"), "the server still serves")


def connection_flags_are_checked_against_the_fd_limit(env):
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    e = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
             AWS_REGION="us-east-1")
    base = [SERVER, "--stream", env.stream, "--endpoint", env.kinesis.endpoint, "--db", env.db]
    out = subprocess.run(base + ["--port", str(free_port()), "--max-connections", "1000"],
                         env=e, preexec_fn=limited, capture_output=True, text=True, timeout=30)
    eq(out.returncode, 2, f"exit status with more connections than fds ({out.stderr!r})")
    expect("--max-connections" in out.stderr and "256" in out.stderr,
           f"the error names the flag and the limit: {out.stderr!r}")
    for flag, bad in (("--max-connections", "0"), ("--max-connections", "x"),
                      ("--connection-timeout", "1500ms"), ("--connection-timeout", "-1s")):
        out = subprocess.run(base + ["--port", str(free_port()), flag, bad], env=e,
                             capture_output=True, text=True, timeout=30)
        eq(out.returncode, 2, f"exit status with {flag} {bad}")
        expect(flag in out.stderr, f"{flag} {bad}: {out.stderr!r}")
    # under the same limit, the default fits the connections to it and the server serves
    port = free_port()
    p = subprocess.Popen(base + ["--port", str(port)], env=e, preexec_fn=limited,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    try:
        def answers():
            if p.poll() is not None:
                raise AssertionError(f"the server exited: {p.stderr.read()!r}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                            timeout=10) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_until("the server with 256 fds to serve", answers)
    finally:
        p.terminate()
        eq(p.wait(timeout=20), 0, "exit status")
        procs.remove(p)
        p.stderr.close()


# ---- Invalid UTF-8 ----------------------------------------------------------------


INVALID_UTF8 = [  # (what, bytes inside "name":"a...z" at byte 10, a word of the error)
    ("encoded surrogate U+D800", b"\xed\xa0\x80", "surrogate"),
    ("overlong 2-byte '/'", b"\xc0\xaf", "overlong"),
    ("overlong 3-byte '/'", b"\xe0\x80\xaf", "overlong"),
    ("overlong 4-byte", b"\xf0\x80\x80\xaf", "overlong"),
    ("above U+10FFFF", b"\xf4\x90\x80\x80", "above U+10FFFF"),
    ("lead byte F5", b"\xf5\x80\x80\x80", "above U+10FFFF"),
    ("lone continuation byte", b"\x80", "continuation"),
    ("truncated 3-byte sequence", b"\xe2\x82", "truncated"),
    ("byte FF", b"\xff", "never"),
]


def invalid_utf8_is_refused_and_nothing_is_stored(env):
    a = env.servers["A"]
    for i, (what, raw, word) in enumerate(INVALID_UTF8):
        body = b'{"name":"a' + raw + b'z","email":"e@example.com"}'
        st, _, data = a.request("PUT", f"/users/u{i}", body)
        eq(st, 400, f"PUT with {what}")
        msg = json.loads(data)["error"]
        expect("UTF-8" in msg and "byte 10" in msg and word in msg,
               f"{what}: the error says what and where: {msg!r}")
        eq(a.request("GET", f"/users/u{i}")[0], 404, f"nothing stored for {what}")
    # escapes of lone UTF-16 surrogates (json-c would store U+FFFD in their place)
    prefix = '{"email":"e@example.com","name":"a'
    for i, esc in enumerate((r"\ud800", r"\uDC00", r"\ud83dz", r"\ud83d\u0041",
                             r"\ude00\ud83d", r"\ud83d")):
        st, _, data = a.request("PUT", f"/users/s{i}", prefix + esc + '"}')
        eq(st, 400, f"PUT with {esc}")
        msg = json.loads(data)["error"]
        expect("surrogate" in msg and f"byte {len(prefix)}" in msg, f"{esc}: {msg!r}")
        eq(a.request("GET", f"/users/s{i}")[0], 404, f"nothing stored for {esc}")
    # what is valid stays valid: a surrogate pair, an escaped backslash before "u", the
    # largest code point, U+FFFD itself
    for i, (name, want) in enumerate(((r"\ud83d\ude00", "\U0001F600"),
                                      (r"\\ud800", r"\ud800"),
                                      ("\U0010FFFF\uFFFD\u00e9\u20ac",
                                       "\U0010FFFF\uFFFD\u00e9\u20ac"))):
        body = '{"name":"' + name + '","email":"e"}'
        st, _, data = a.request("PUT", f"/users/v{i}", body.encode())
        eq(st, 200, f"PUT with {name!r} ({data!r})")
        eq(a.get_user(f"v{i}")[2]["name"], want, f"stored {name!r}")


SCENARIOS = [
    (a_sigterm_during_startup_still_shuts_down_cleanly, {"servers": ()}),
    (cross_instance_invalidation_keeps_a_correct, {}),
    (scachectl_publish_invalidates_both_instances, {}),
    (a_go_scache_record_invalidates_too, {"servers": ("A",)}),
    (stale_add_is_refused_through_http, {}),
    (bad_input_gets_exact_errors, {"servers": ("A",)}),
    (metrics_are_prometheus_text, {"servers": ("A",)}),
    (efficiency_logs_are_json_with_every_field, {"servers": ("A",)}),
    (bounded_staleness_sees_a_change_within_one_interval,
     {"extra": ("--poll-interval", "300ms")}),
    (stream_outage_bypasses_then_recovers,
     {"servers": ("A",), "extra": ("--max-staleness", "1s")}),
    (a_server_started_before_its_stream_serves_bypassed_then_caches,
     {"servers": ("A",), "stream_down": True}),
    (idle_connections_do_not_deny_service, {"servers": ("A",)}),
    (idle_connections_do_not_deny_service_thread_per_connection,
     {"servers": ("A",), "extra": ("--threads", "0")}),
    (idle_connections_are_closed_after_the_connection_timeout,
     {"servers": ("A",), "extra": ("--connection-timeout", "1s")}),
    (connection_flags_are_checked_against_the_fd_limit, {"servers": ()}),
    (invalid_utf8_is_refused_and_nothing_is_stored, {"servers": ("A",)}),
]



# ---- The HTTP edge (issue 9): sizes, bytes, slow clients, the connection limit -----
#
# Every answer is read off a raw socket, so what the server does with bytes a client
# library would refuse to send is seen too. After each barrage the server still answers,
# its resident memory stayed within a generous bound, and it exits with status 0 (under
# AddressSanitizer that includes LeakSanitizer's verdict).


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def raw_http(port, data, timeout=30):
    """Send data (a whole request, or part of one) on a new connection, then read until
    the server closes it: the answer's bytes, b"" when it closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused early; its answer may still be there
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except ConnectionResetError:
            pass
        return out


def raw_get(port, target, headers=b""):
    """(status or None, body) of a GET of target (bytes, sent as they are)."""
    answer = raw_http(port, b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                      + headers + b"\r\n")
    if not answer.startswith(b"HTTP/1.1 "):
        return None, answer
    return int(answer[9:12]), answer.partition(b"\r\n\r\n")[2]


RSS_BOUND_KIB = 64 * 1024  # generous: thread stacks, malloc arenas, sanitizer shadow


def long_urls_and_headers_get_414_and_431_and_memory_stays_bounded(env):
    a = env.servers["A"]
    a.put_user("Ada1", "Ada")
    before = rss_kib(a.proc.pid)
    for _ in range(3):  # the same barrage again: nothing may pile up
        eq(raw_get(a.port, b"/users/" + b"a" * 64)[0], 404, "an ID of 64 characters")
        eq(raw_get(a.port, b"/users/" + b"a" * 65)[0], 400, "an ID of 65 characters")
        eq(raw_get(a.port, b"/users/" + b"a" * 16384)[0], 400, "a 16 KiB URL")
        for n in (40 * 1024, 1024 * 1024):
            eq(raw_get(a.port, b"/users/" + b"a" * n)[0], 414, f"a URL of {n} bytes")
            eq(raw_get(a.port, b"/users/Ada1?q=" + b"q" * n)[0], 414,
               f"a query string of {n} bytes")
        st, body = raw_get(a.port, b"/users/Ada1", b"X-Big: " + b"b" * 16384 + b"\r\n")
        eq((st, json.loads(body)["name"]), (200, "Ada"), "a 16 KiB header is served")
        for n in (40 * 1024, 1024 * 1024):
            eq(raw_get(a.port, b"/users/Ada1", b"X-Big: " + b"b" * n + b"\r\n")[0], 431,
               f"a header of {n} bytes")
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
        eq(raw_get(a.port, b"/users/Ada1", many)[0], 431, "5,000 headers")
    after = rss_kib(a.proc.pid)
    print(f"  server resident memory: {before} KiB before, {after} KiB after", flush=True)
    expect(after - before < RSS_BOUND_KIB,
           f"resident memory grew from {before} KiB to {after} KiB")
    eq(a.get_user("Ada1")[2]["name"], "Ada", "the server still serves")
    a.stop()


ID_BYTES = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def every_byte_in_an_id_is_refused_or_read_as_itself(env):
    """Each byte value 0x00-0xff inside an ID, percent-encoded (both hex cases) and raw.
    Encoded, an ID byte reads as itself (a%5Ab is aZb) and any other is a 400 with a JSON
    error, %00 included. Raw, the same, but for two bytes that end the path before it:
    '?' (a query follows) and NUL (libmicrohttpd 0.9.75 keeps the URL as a C string), so
    a<NUL>b and a?b read user a."""
    a = env.servers["A"]
    a.put_user("aZb", "Zed")
    a.put_user("a", "Short")
    for b in range(256):
        for enc in ("%02X" % b, "%02x" % b):
            st, _, body = a.request("GET", f"/users/a%{enc}b")
            if b == ord("Z"):
                eq((st, json.loads(body)["name"]), (200, "Zed"), f"a%{enc}b")
            elif b in ID_BYTES:
                eq(st, 404, f"a%{enc}b")
            else:
                eq(st, 400, f"a%{enc}b")
                expect("error" in json.loads(body), f"a%{enc}b: a JSON error ({body!r})")
        st, body = raw_get(a.port, b"/users/a" + bytes([b]) + b"b")
        what = f"raw byte 0x{b:02x}"
        if b == ord("Z"):
            eq((st, json.loads(body)["name"]), (200, "Zed"), what)
        elif b in (0, ord("?")):
            eq((st, json.loads(body)["name"]), (200, "Short"), what)
        elif b in ID_BYTES:
            eq(st, 404, what)
        else:
            eq(st, 400, what)
    eq(a.request("GET", "/healthz")[0], 200, "the server still serves")
    a.stop()


def slow_clients_are_closed_when_silent_and_do_not_hold_the_server(env):
    """--connection-timeout 1s. Clients that stop halfway (in the headers, in a declared
    body) are closed without an answer once silent that long, and nothing is stored;
    clients that send a byte every 200 ms are never silent that long, so they are served
    at the end; meanwhile every other request is answered."""
    a = env.servers["A"]
    a.put_user("u1", "Ada")
    before = rss_kib(a.proc.pid)
    stalled = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=30)
        s.sendall(b"GET /users/u1 HTTP/1.1\r\nHost: t\r\n")
        stalled.append(s)
    for i in range(5):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=30)
        s.sendall(b"PUT /users/slow%d HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
                  b'{"name":' % i)
        stalled.append(s)
    dribbled = [None] * 8

    def dribble(i):
        req = b"GET /users/u1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", a.port), timeout=30) as s:
            for k in range(0, len(req), 4):
                s.sendall(req[k:k + 4])
                time.sleep(0.2)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            dribbled[i] = out

    threads = [threading.Thread(target=dribble, args=(i,)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        for _ in range(20):
            st, _, user = a.get_user("u1")
            eq((st, user["name"]), (200, "Ada"), "a GET beside the slow clients")
        for s in stalled:
            s.settimeout(30)
            try:
                got = s.recv(65536)
            except ConnectionResetError:
                got = b""
            eq(got, b"", "a stalled client is closed without an answer")
    finally:
        for t in threads:
            t.join(timeout=60)
        for s in stalled:
            s.close()
    for i, out in enumerate(dribbled):
        expect(out is not None and out.startswith(b"HTTP/1.1 200 "),
               f"dribbling client {i} was served: {out!r}"[:200])
    for i in range(5):
        eq(a.request("GET", f"/users/slow{i}")[0], 404, "nothing stored from a stalled body")
    after = rss_kib(a.proc.pid)
    print(f"  server resident memory: {before} KiB before, {after} KiB after", flush=True)
    expect(after - before < RSS_BOUND_KIB,
           f"resident memory grew from {before} KiB to {after} KiB")
    a.stop()


def slow_clients_thread_per_connection(env):
    slow_clients_are_closed_when_silent_and_do_not_hold_the_server(env)


def connections_past_the_limit_wait_in_the_listen_queue(env):
    """Thread pool, --max-connections 10: with 10 connections held, libmicrohttpd stops
    accepting; an 11th connection waits in the kernel's listen queue, unanswered, and is
    served as soon as a slot frees."""
    a = env.servers["A"]
    socks = open_idle_sockets(a.port, 10)
    extra = None
    try:
        wait_until("10 connections held",
                   lambda: accepted_connections(a.proc.pid, a.port) == 10)
        extra = socket.create_connection(("127.0.0.1", a.port), timeout=2)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        try:
            got = extra.recv(65536)
        except TimeoutError:
            got = None
        eq(got, None, "no answer while every slot is held")
        eq(accepted_connections(a.proc.pid, a.port), 10, "the limit holds")
        socks.pop().close()
        extra.settimeout(30)
        got = extra.recv(65536)
        expect(got.startswith(b"HTTP/1.1 200 "), f"served once a slot freed: {got!r}")
    finally:
        for s in socks:
            s.close()
        if extra:
            extra.close()
    eq(a.request("GET", "/healthz")[0], 200, "the server serves")
    a.stop()


def connections_past_the_limit_are_closed_thread_per_connection(env):
    """A thread per connection, --max-connections 10: libmicrohttpd accepts an 11th
    connection and closes it at once, without an answer; once the held ones close, new
    connections are served."""
    a = env.servers["A"]
    # the harness's own requests (is it up?) count against the limit until the server has
    # let their connections go: under ASan one was still held, and the 10th idle socket
    # was the one past the limit
    wait_until("the server to hold no connection",
               lambda: accepted_connections(a.proc.pid, a.port, any_state=True) == 0)
    socks = open_idle_sockets(a.port, 10)
    try:
        wait_until("10 connections held",
                   lambda: accepted_connections(a.proc.pid, a.port) == 10)
        for _ in range(5):
            got = raw_http(a.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            eq(got, b"", "a connection past the limit is closed without an answer")
    finally:
        for s in socks:
            s.close()
    wait_until("the held connections to be released",
               lambda: accepted_connections(a.proc.pid, a.port) == 0)
    eq(a.request("GET", "/healthz")[0], 200, "the server serves again")
    a.stop()


# ---- Credentials never appear (issue 9) --------------------------------------------

FAKE_KEY_ID = "AKIAPARKFAKE7Q3XZ9LM"
FAKE_SECRET = "parkFakeSecret/K7MDENGbPxRfiCYEXAMPLEKEYzz"
FAKE_TOKEN = "FwoGZXIvYXdzEParkFakeSessionToken0123456789abcdefXYZ"
# the whole values and a recognisable piece of each (a mask keeps at most the last 4)
CREDENTIAL_MARKS = (FAKE_KEY_ID, FAKE_SECRET, FAKE_TOKEN, "AKIAPARKFAKE", "parkFakeSecret",
                    "ParkFakeSessionToken", "FwoGZXIvYXdz")


class FakeKinesis:
    """An HTTP endpoint on 127.0.0.1 that fails every call the way .mode says, echoing
    what it received (the Authorization header with the key ID, the session token, the
    body), as some AWS errors quote the request: 403 (AccessDeniedException), signature
    (IncompleteSignatureException), throttle (ProvisionedThroughputExceededException),
    500 (InternalFailure), malformed (200 with cut JSON), close (no answer at all)."""

    def __init__(self):
        import http.server
        fake = self
        self.mode = "403"
        self.seen_credentials = 0  # requests signed with the fake key and token

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization") or ""
                token = self.headers.get("X-Amz-Security-Token") or ""
                if FAKE_KEY_ID in auth and token == FAKE_TOKEN:
                    fake.seen_credentials += 1
                # what a message keeps is cut at a few hundred bytes: the secrets first
                echo = (f"token {token}, secret {FAKE_SECRET}, Authorization: {auth}, "
                        f"body {body.decode(errors='replace')}")
                mode = fake.mode
                if mode == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, kind = {"403": (403, "AccessDeniedException"),
                                "signature": (403, "IncompleteSignatureException"),
                                "throttle": (400, "ProvisionedThroughputExceededException"),
                                "500": (500, "InternalFailure"),
                                "malformed": (200, None)}[mode]
                if kind:
                    out = json.dumps({"__type": kind, "message": echo}).encode()
                else:
                    out = json.dumps({"Shards": [{"ShardId": echo}],
                                      "Records": [echo]}).encode()[:-7]
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def credentials_never_appear_in_logs_errors_metrics_or_scachectl(env):
    """Fake recognisable keys and session token; every failure the Kinesis client can
    meet (an unreachable endpoint, and a fake endpoint answering 403, a signature error,
    throttling, 500, malformed JSON, or nothing), each quoting the signed request back.
    Searched: every line of the efficiency log, the server's stderr, /metrics, /healthz
    and every HTTP answer (a failed publish's 503), and scachectl's output and errors.
    The fake endpoint saw the fake credentials, and the log names each error, so each
    path was taken."""
    creds = {"AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
             "AWS_SESSION_TOKEN": FAKE_TOKEN, "AWS_REGION": "us-east-1"}
    modes = ("unreachable", "403", "signature", "throttle", "500", "malformed", "close")
    fakes = {}
    texts = []  # (where, text)
    failures = []

    def exercise(mode, kinesis):
        srv = Server(f"cred-{mode}", env.tmp, kinesis, "orders",
                     os.path.join(env.tmp, f"{mode}.db"),
                     ("--max-staleness", "1s", "--publish-timeout", "1s"), env=creds)
        for i in range(3):
            st, _, body = srv.request("GET", f"/users/{i}")
            texts.append((f"{mode}: GET answer", body.decode(errors="replace")))
        st, _, body = srv.request("PUT", "/users/1", json.dumps(
            {"name": "Ada", "email": "ada@example.com"}))
        eq(st, 503, f"{mode}: a PUT whose invalidation cannot be published ({body!r})")
        texts.append((f"{mode}: PUT answer", body.decode(errors="replace")))
        wait_until(f"{mode}: failed polls", lambda: srv.metrics()[
            "scache_poll_errors_total"] >= 2, timeout=60)
        texts.append((f"{mode}: /metrics", srv.request("GET", "/metrics")[2].decode()))
        texts.append((f"{mode}: /healthz", srv.request("GET", "/healthz")[2].decode()))
        srv.stop()
        with open(srv.log, errors="replace") as f:
            log = f.read()
        with open(srv.stderr_path, errors="replace") as f:
            texts.append((f"{mode}: stderr", f.read()))
        texts.append((f"{mode}: log", log))
        named = {"unreachable": "127.0.0.1", "403": "AccessDeniedException",
                 "signature": "IncompleteSignatureException",
                 "throttle": "ProvisionedThroughputExceededException",
                 "500": "InternalFailure", "malformed": "JSON", "close": "127.0.0.1"}
        expect(named[mode] in log, f"{mode}: the log names the error: {log[-1500:]}")
        ctl_env = dict(os.environ, AWS_ENDPOINT_URL_KINESIS=kinesis.endpoint, **creds)
        for args in (["publish", "--stream", "orders", SOURCE, "1", "2"],
                     ["create-stream", "orders", "--timeout", "2"],
                     ["delete-stream", "orders", "--timeout", "2"]):
            out = subprocess.run([SCACHECTL, *args], env=ctl_env, capture_output=True,
                                 text=True, errors="replace", timeout=120)
            expect(out.returncode != 0, f"{mode}: scachectl {args[0]} failed")
            texts.append((f"{mode}: scachectl {args[0]}", out.stdout + out.stderr))
        tail = subprocess.Popen([SCACHECTL, "tail", "--stream", "orders", "--interval",
                                 "100"], env=ctl_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        procs.append(tail)
        try:
            tail.wait(timeout=1.5)  # it may give up by itself
        except subprocess.TimeoutExpired:
            tail.terminate()
        texts.append((f"{mode}: scachectl tail", tail.communicate(timeout=30)[0]))
        procs.remove(tail)

    def run(mode, kinesis):
        try:
            exercise(mode, kinesis)
        except BaseException:
            failures.append(f"{mode}: {traceback.format_exc()}")

    try:
        for mode in modes[1:]:
            fakes[mode] = FakeKinesis()
            fakes[mode].mode = mode
        unreachable = type("Unreachable", (), {"endpoint": f"http://127.0.0.1:{free_port()}"})
        # the modes side by side: each mostly waits (retries, backoff, timeouts)
        threads = [threading.Thread(target=run, args=(m, fakes.get(m, unreachable)))
                   for m in modes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        for f in fakes.values():
            f.close()
    expect(not failures, "\n".join(failures))
    for mode, f in fakes.items():
        expect(f.seen_credentials > 0,
               f"{mode}: the fake endpoint received the fake credentials")
    for where, text in texts:
        for n, line in enumerate(text.splitlines(), 1):
            for mark in CREDENTIAL_MARKS:
                expect(mark not in line, f"{where}, line {n} shows a credential: {line!r}")



# ---- A Kinesis that never answers (issue 9) -------------------------------------------


class HangingProxy:
    """A loopback proxy in front of kinesalite. While .hang is set, it reads each request
    and never answers (as an endpoint that accepts connections and then says nothing);
    .release() answers nothing either but closes what it holds, so the client's calls
    fail at once, and forwards again."""

    def __init__(self, upstream_port):
        import http.client
        self.upstream = upstream_port
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.hang = False
        self.held = []  # client sockets holding a request that will not be answered
        self.lock = threading.Lock()
        self.stopping = False
        self.http_client = http.client
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(64)
        self.ls.settimeout(0.2)
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.ls.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def read_request(self, c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = c.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(l.split(":", 1) for l in lines[1:] if ":" in l)
        headers = {k.strip(): v.strip() for k, v in headers.items()}
        n = int(next((v for k, v in headers.items() if k.lower() == "content-length"), 0))
        while len(body) < n:
            chunk = c.recv(65536)
            if not chunk:
                return None
            body += chunk
        return lines[0].split(" ")[1], headers, body

    def serve(self, c):
        try:
            while not self.stopping:
                req = self.read_request(c)
                if req is None:
                    break
                with self.lock:
                    if self.hang:
                        self.held.append(c)
                        return  # never answered; closed by release() or stop()
                path, headers, body = req
                up = self.http_client.HTTPConnection("127.0.0.1", self.upstream, timeout=30)
                headers.pop("Expect", None)
                up.request("POST", path, body, headers)
                r = up.getresponse()
                data = r.read()
                out = [f"HTTP/1.1 {r.status} {r.reason}".encode()]
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        out.append(f"{k}: {v}".encode())
                out.append(f"Content-Length: {len(data)}".encode())
                c.sendall(b"\r\n".join(out) + b"\r\n\r\n" + data)
                up.close()
        except OSError:
            pass
        c.close()

    def holding(self):
        with self.lock:
            return len(self.held)

    def release(self):
        with self.lock:
            self.hang = False
            held, self.held = self.held, []
        for c in held:
            c.close()

    def stop(self):
        self.stopping = True
        self.release()
        self.ls.close()
        self.thread.join(timeout=5)


def a_kinesis_that_never_answers_holds_no_read_past_max_staleness(env, mode_extra=()):
    """--max-staleness 2s, a warm cache, then every Kinesis call hangs (the server's own
    timeouts and retries would take about a minute). A read and /healthz sent together
    are both answered, the read BYPASS, before any hung call has ended; reads after them
    are BYPASS at once; once Kinesis answers again the cache is flushed and used."""
    proxy = HangingProxy(env.kinesis.port)
    try:
        extra = ("--max-staleness", "2s") + tuple(mode_extra)
        a = Server("A", env.tmp, proxy, env.stream, env.db, extra)
        a.put_user("h1", "Ada")
        # until the PUT's own record was read (it evicts what was loaded before it)
        wait_until("a HIT before Kinesis hangs", lambda: a.get_user("h1")[1] == "HIT")
        with proxy.lock:
            proxy.hang = True
        answers = {}

        def timed(path):
            t = time.monotonic()
            try:
                st, xc, _ = a.request("GET", path)  # gives up after 30 s
            except OSError as e:
                st, xc = None, repr(e)
            answers[path] = (st, xc, time.monotonic() - t, proxy.holding())

        ts = [threading.Thread(target=timed, args=(p,)) for p in ("/users/h1", "/healthz")]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=120)
        for path, (st, xc, took, held) in answers.items():
            print(f"  {path}: {st} {xc} in {took:.2f} s, {held} Kinesis call(s) hung",
                  flush=True)
        st, xc, took, held = answers["/users/h1"]
        eq((st, xc), (200, "BYPASS"), "the read while Kinesis hangs")
        expect(held >= 1, "the read was answered while a Kinesis call still hung")
        expect(took < 2 + 5, f"the read took {took:.2f} s, max_staleness is 2 s")
        st, _, took, held = answers["/healthz"]
        eq(st, 200, "/healthz while Kinesis hangs")  # parked like a read with .suspend
        expect(took < 2 + 5, f"/healthz took {took:.2f} s, max_staleness is 2 s")
        eq(a.get_user("h1")[:2], (200, "BYPASS"), "a later read, at once")
        expect(proxy.holding() >= 1, "still hung")
        eq(json.loads(a.request("GET", "/healthz")[2])["bypassing"], True, "/healthz says so")
        proxy.release()
        wait_until("caching to resume", lambda: a.get_user("h1")[1] != "BYPASS", timeout=60)
        a.get_user("h1")
        eq(a.get_user("h1")[:2], (200, "HIT"), "the cache is used again")
        a.stop()
    finally:
        proxy.stop()


def a_kinesis_that_never_answers_thread_per_connection(env):
    a_kinesis_that_never_answers_holds_no_read_past_max_staleness(env, ("--threads", "0"))


SCENARIOS += [
    (long_urls_and_headers_get_414_and_431_and_memory_stays_bounded, {"servers": ("A",)}),
    # bounded staleness: 768 strict reads of a warm cache would each wait for a poll
    (every_byte_in_an_id_is_refused_or_read_as_itself,
     {"servers": ("A",), "extra": ("--poll-interval", "1s")}),
    (slow_clients_are_closed_when_silent_and_do_not_hold_the_server,
     {"servers": ("A",), "extra": ("--connection-timeout", "1s")}),
    (slow_clients_thread_per_connection,
     {"servers": ("A",), "extra": ("--connection-timeout", "1s", "--threads", "0")}),
    (connections_past_the_limit_wait_in_the_listen_queue,
     {"servers": ("A",), "extra": ("--max-connections", "10")}),
    (connections_past_the_limit_are_closed_thread_per_connection,
     {"servers": ("A",), "extra": ("--max-connections", "10", "--threads", "0")}),
    (credentials_never_appear_in_logs_errors_metrics_or_scachectl, {"servers": ()}),
    (a_kinesis_that_never_answers_holds_no_read_past_max_staleness, {"servers": ()}),
    (a_kinesis_that_never_answers_thread_per_connection, {"servers": ()}),
]

def run_scenarios(suite, scenarios, make_env, after=None):
    """Run each (fn, arg) of scenarios with the env make_env(arg) builds (may be None),
    then after(env) when given; print a Criterion-style line per scenario and a synthesis
    line. SCACHE_IT_ONLY=substring runs the matching scenarios only. Returns the exit
    status."""
    only = os.environ.get("SCACHE_IT_ONLY")
    passed = failed = 0
    for fn, arg in scenarios:
        if only and only not in fn.__name__:
            continue
        env = None
        try:
            env = make_env(arg)
            fn(env)
            if after:
                after(env)
            print(f"[PASS] {suite}::{fn.__name__}", flush=True)
            passed += 1
        except Exception:
            print(f"[FAIL] {suite}::{fn.__name__}", flush=True)
            traceback.print_exc()
            if env:
                for n in env.servers:
                    try:
                        with open(os.path.join(env.tmp, f"{n}.stderr")) as f:
                            print(f"--- {n} stderr:\n{f.read()[-3000:]}")
                    except OSError:
                        pass
            failed += 1
        finally:
            if env:
                env.close()
            cleanup()
    print(f"[====] Synthesis: Tested: {passed + failed} | Passing: {passed} | "
          f"Failing: {failed} | Crashing: 0")
    return 1 if failed else 0


def main():
    return run_scenarios("server", SCENARIOS, lambda kw: Env(**kw))


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup()
