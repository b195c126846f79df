/*
 * bench_http: libscache's middleware measured against bare libmicrohttpd.
 *
 * By default: the hit path, one Markdown table per connection count. GET /users/1
 * answered by one handler, bare (the strongest configuration we found on a 2-core
 * machine: internal polling thread, MHD_USE_AUTO picking epoll, a thread pool of 2 or 4
 * (--pools), the faster kept, the response created once and queued on the second call),
 * bare with the daemon of the wrapped rows (the same pool plus MHD_ALLOW_SUSPEND_RESUME,
 * which scache_mhd_start adds for .suspend: the server's own thread mode), and the same
 * handler and daemon through the middleware (scache_mhd_start, .suspend as the README
 * deploys it, every request a hit on the same key: scache_get, a response made from the
 * cached bytes): over kinesalite (a 1-shard stream on loopback) strict, bounded staleness
 * 200 ms with the efficiency log on (config.log_file, as deployed) and off
 * (quiet_requests); and over the in-memory source (scache_memory_source_new, no Kinesis
 * on the hit path) bounded with the log on and off (--no-memory leaves these out). At 1,
 * 16 and 64 keep-alive connections (--conns), load from wrk -t2 (-t1 at 1 connection;
 * Debian package wrk), --warmup (default 1) s of warm-up then --seconds (default 3)
 * measured, --runs (default 3) turns of every row; each figure is divided by the bare
 * epoll run of the same turn. Prints req/s, p50, p99 (wrk's), the ratios, the hit ratio,
 * Kinesis calls per 1000 requests (the middleware's counters over the measured window),
 * bytes of log per request and errors, then whether the target (bounded over kinesalite,
 * or with --no-kinesis over the memory source, log on, at 16 and 64 connections: >= 0.9x
 * bare req/s, p99 within 1.5x) is met.
 * --json FILE writes every run's figures (bench/run reads them).
 *
 * With --sqlite, the older table: GET /users/{id} answered from a real SQLite file (1000
 * users in a temporary database) as JSON, over loopback HTTP, driven by libcurl.
 *
 * Rows, each on a fresh daemon (and a fresh cache and 1-shard kinesalite stream):
 *   bare            the handler reads SQLite on every request, no middleware;
 *   bounded 200ms   the same handler through the middleware, reading via
 *                   scache_get_or_load (read-aside), poll_interval_ms = 200;
 *   strict          the same, poll_interval_ms = 0 (every request waits for a poll that
 *                   began after it arrived), polls capped at the default 5 a second
 *                   (AWS's per-shard GetRecords limit) unless --max-polls says;
 *   bounded+churn   bounded, while a background writer invalidates 1% of the IDs a
 *                   second (10 IDs/s) through scache_middleware_invalidate.
 * All rows are run twice (once with --load-us 0): with no load delay, and with --load-us
 * (default 1000) microseconds of usleep() added to every database read. This SQLite read
 * takes a few microseconds; the delay is a stand-in for the round trip of a remote database
 * (PostgreSQL, MySQL, a service), which is what a cache usually saves.
 *
 * Every --sqlite daemon is MHD_USE_THREAD_PER_CONNECTION (with its internal polling thread): each
 * connection gets a thread, so with C connections C database reads may wait at once, as
 * in a real service. A thread pool of 2 was tried first: libmicrohttpd 0.9.75 let one
 * worker accept all C keep-alive connections, so the pool served on one thread and the
 * bare row measured that artefact rather than libmicrohttpd. With a thread per connection
 * the strict row needs no .suspend (middleware.h). SQLite: one connection and
 * one prepared statement per thread (a pthread key; closed when the thread exits), so no
 * lock is shared.
 *
 * The load generator is libcurl multi on its own thread in this process: C keep-alive
 * connections (default 16) to 127.0.0.1, each with one request in flight; IDs uniform
 * over the 1000 from a fixed seed; --warmup (default 1) s of warm-up (not measured),
 * then D seconds (default 5). Columns: requests/s, p50/p99 latency seen by the client,
 * the hit ratio and the misses (loads) of scache_get_or_load, Kinesis HTTP calls, and
 * the totals (seconds, summed over requests) of time spent waiting for the stream and
 * time saved by hits, all over the measured window (scache_middleware_stats_get
 * deltas); then the failed requests (non-200 or transport errors, warm-up included).
 *
 * kinesalite is started here (tests/kinesalite.c) and stopped at exit, failures
 * included (atexit; the kernel kills node if this process dies outright). The
 * middleware's log goes to a sink that drops summaries (per-request lines are off with
 * quiet_requests) and forwards warnings to stderr.
 * Usage: bench_http [--seconds D] [--runs R] [--conns C,...] [--pools P,...] [--warmup S]
 *                   [--max-polls N] [--no-kinesis] [--no-memory] [--wrk PATH] [--json FILE]
 *        bench_http --sqlite [--seconds D] [--conns C] [--load-us US] [--warmup S]
 *                   [--max-polls N] [--json FILE]
 * (--max-polls: the middleware's max_polls_per_second; 0, the default, keeps the library's
 * default of 5, which bounds a strict row to about C x 5 requests a second.)
 * Client, server and node share the machine's CPUs: read the figures as relative.
 */
#include <curl/curl.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinesalite.h"
#include "scache/scache.h"

#define USERS    1000
#define SOURCE   "db.users.id"
#define SEED_IDS 0x5eed1d5ULL

/* ---- Failure and cleanup ------------------------------------------------------- */

static kinesalite K;
static sqlite3 *keeper; /* held open so that the WAL files exist for every reader */
static char tmp_dir[64], db_path[128];

static void cleanup(void)
{
	kinesalite_stop(&K);
	sqlite3_close(keeper);
	if (db_path[0]) {
		char wal[160];
		unlink(db_path);
		snprintf(wal, sizeof wal, "%s-wal", db_path);
		unlink(wal);
		snprintf(wal, sizeof wal, "%s-shm", db_path);
		unlink(wal);
	}
	if (tmp_dir[0])
		rmdir(tmp_dir);
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_http: %s: %s\n", what, why);
	exit(1); /* cleanup() runs */
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ---- The database: a temp file of USERS users, a connection per thread ---------- */

static void make_tmp_dir(void)
{
	if (tmp_dir[0])
		return;
	snprintf(tmp_dir, sizeof tmp_dir, "/tmp/bench_http-XXXXXX");
	if (!mkdtemp(tmp_dir)) {
		tmp_dir[0] = '\0';
		die("mkdtemp", "cannot create a directory in /tmp");
	}
}

static void db_create(void)
{
	sqlite3 *db;
	char *err = NULL;
	make_tmp_dir();
	snprintf(db_path, sizeof db_path, "%s/users.db", tmp_dir);
	if (sqlite3_open(db_path, &db) != SQLITE_OK)
		die("sqlite3_open", db ? sqlite3_errmsg(db) : "out of memory");
	if (sqlite3_exec(db,
	                 "PRAGMA journal_mode=WAL;"
	                 "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
	                 " email TEXT NOT NULL);"
	                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
	                 " WHERE i < 1000)"
	                 " INSERT INTO users SELECT i, 'User ' || i, 'user' || i || '@example.com'"
	                 " FROM n;",
	                 NULL, NULL, &err) != SQLITE_OK)
		die("create the users table", err ? err : "?");
	keeper = db;
}

typedef struct thread_db {
	sqlite3 *db;
	sqlite3_stmt *st;
} thread_db;

static pthread_key_t db_key;

static void thread_db_close(void *p)
{
	thread_db *t = p;
	sqlite3_finalize(t->st);
	sqlite3_close(t->db);
	free(t);
}

/* This thread's connection and statement, opened on first use; NULL on failure. */
static thread_db *thread_db_get(void)
{
	thread_db *t = pthread_getspecific(db_key);
	if (t)
		return t;
	t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	if (sqlite3_open_v2(db_path, &t->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	        SQLITE_OK ||
	    sqlite3_busy_timeout(t->db, 5000) != SQLITE_OK ||
	    sqlite3_prepare_v3(t->db, "SELECT name, email FROM users WHERE id = ?1", -1,
	                       SQLITE_PREPARE_PERSISTENT, &t->st, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench_http: sqlite: %s\n",
		        t->db ? sqlite3_errmsg(t->db) : "out of memory");
		thread_db_close(t);
		return NULL;
	}
	pthread_setspecific(db_key, t);
	return t;
}

/* ---- The application: GET /users/{id} ---------------------------------------- */

typedef struct app {
	scache_middleware *mw; /* NULL: bare libmicrohttpd */
	unsigned load_us;      /* artificial latency of each database read */
} app;

typedef struct load_arg {
	const app *ap;
	int id;
} load_arg;

/* Reads the user as JSON; the loader scache_get_or_load times on a miss. */
static scache_err load_user(void *arg, void **value, size_t *len)
{
	const load_arg *la = arg;
	thread_db *t = thread_db_get();
	if (!t)
		return SCACHE_EIO;
	sqlite3_bind_int(t->st, 1, la->id);
	int rc = sqlite3_step(t->st);
	scache_err err = SCACHE_OK;
	if (rc == SQLITE_ROW) {
		char buf[256];
		int n = snprintf(buf, sizeof buf, "{\"id\":%d,\"name\":\"%s\",\"email\":\"%s\"}",
		                 la->id, (const char *)sqlite3_column_text(t->st, 0),
		                 (const char *)sqlite3_column_text(t->st, 1));
		*value = n > 0 && (size_t)n < sizeof buf ? strdup(buf) : NULL;
		*len = *value ? (size_t)n : 0;
		err = *value ? SCACHE_OK : SCACHE_ENOMEM;
	} else {
		err = rc == SQLITE_DONE ? SCACHE_ENOTFOUND : SCACHE_EIO;
	}
	sqlite3_reset(t->st);
	if (la->ap->load_us)
		usleep(la->ap->load_us); /* stand-in for a remote database's round trip */
	return err;
}

static enum MHD_Result respond(const app *ap, struct MHD_Connection *c, unsigned status, void *body,
                               size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret =
	    ap->mw ? scache_queue_response(c, status, r) : MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_text(const app *ap, struct MHD_Connection *c, unsigned status,
                                    const char *text)
{
	char *body = strdup(text);
	return body ? respond(ap, c, status, body, strlen(body)) : MHD_NO;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_size, void **req_cls)
{
	static int seen;
	const app *ap = cls;
	(void)version;
	(void)upload_data;
	(void)upload_size;
	if (!*req_cls) { /* first call: headers only */
		*req_cls = &seen;
		return MHD_YES;
	}
	if (strcmp(method, "GET") || strncmp(url, "/users/", 7))
		return respond_text(ap, c, 404, "{\"error\":\"no such route\"}");
	char *end;
	long id = strtol(url + 7, &end, 10);
	if (*end || end == url + 7 || id < 1 || id > 1000000)
		return respond_text(ap, c, 400, "{\"error\":\"bad id\"}");
	if (!thread_db_get()) /* opened here, so that no load's timing includes the open */
		return respond_text(ap, c, 500, "{\"error\":\"no database\"}");
	load_arg la = {ap, (int)id};
	void *value = NULL;
	size_t len = 0;
	scache_err err;
	if (ap->mw) {
		const char *key = url + 7;
		err = scache_get_or_load(scache_request_current(), SOURCE, key, load_user, &la,
		                         &value, &len, NULL);
	} else {
		err = load_user(&la, &value, &len);
	}
	if (err == SCACHE_ENOTFOUND)
		return respond_text(ap, c, 404, "{\"error\":\"no such user\"}");
	if (err)
		return respond_text(ap, c, 500, "{\"error\":\"load failed\"}");
	return respond(ap, c, 200, value, len);
}

/* Drops summaries; warnings (stream trouble, bypass) go to stderr. */
static void log_sink(void *arg, const char *line, size_t len)
{
	(void)arg;
	if (!strncmp(line, "{\"type\":\"warning\"", 17))
		fprintf(stderr, "%.*s\n", (int)len, line);
}

/* ---- The load generator: libcurl multi, C keep-alive connections ---------------- */

typedef struct slot {
	CURL *e;
	uint64_t start_ns;
	char url[64];
} slot;

typedef struct loadgen {
	int port;
	unsigned conns, seconds, warmup_ms;
	scache_middleware *mw; /* stats snapshots at the window's edges (may be NULL) */
	scache_middleware_stats before, after;
	uint32_t *lat_us;
	size_t n, cap;
	uint64_t errors;
	char why[CURL_ERROR_SIZE + 64];
} loadgen;

static size_t discard(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

static void slot_next(loadgen *g, slot *s, uint64_t *seed)
{
	unsigned id = 1 + (unsigned)(splitmix64(seed) % USERS);
	snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/users/%u", g->port, id);
	curl_easy_setopt(s->e, CURLOPT_URL, s->url);
	s->start_ns = scache_now_ns(NULL);
}

static int record(loadgen *g, uint64_t ns)
{
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 65536;
		uint32_t *p = realloc(g->lat_us, cap * sizeof *p);
		if (!p)
			return -1;
		g->lat_us = p;
		g->cap = cap;
	}
	g->lat_us[g->n++] = (uint32_t)(ns / 1000);
	return 0;
}

static void *loadgen_run(void *arg)
{
	loadgen *g = arg;
	CURLM *m = curl_multi_init();
	slot *slots = calloc(g->conns, sizeof *slots);
	uint64_t seed = SEED_IDS;
	if (!m || !slots) {
		snprintf(g->why, sizeof g->why, "out of memory");
		free(slots);
		curl_multi_cleanup(m);
		return NULL;
	}
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)g->conns);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)g->conns);
	for (unsigned i = 0; i < g->conns; i++) {
		slot *s = &slots[i];
		s->e = curl_easy_init();
		if (!s->e) {
			snprintf(g->why, sizeof g->why, "curl_easy_init failed");
			break;
		}
		curl_easy_setopt(s->e, CURLOPT_PRIVATE, s);
		curl_easy_setopt(s->e, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(s->e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(s->e, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(s->e, CURLOPT_PROXY, ""); /* loopback only, whatever the env */
		curl_easy_setopt(s->e, CURLOPT_TIMEOUT_MS, 15000L);
		slot_next(g, s, &seed);
		curl_multi_add_handle(m, s->e);
	}
	uint64_t t0 = scache_now_ns(NULL);
	uint64_t warm_end = t0 + (uint64_t)g->warmup_ms * 1000000ULL;
	uint64_t end = warm_end + (uint64_t)g->seconds * 1000000000ULL;
	int recording = 0, stopping = 0, running = 1;
	while (!g->why[0] && (running || !stopping)) {
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			slot *s;
			long status = 0;
			uint64_t now = scache_now_ns(NULL);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			CURLcode rc = msg->data.result;
			if (rc != CURLE_OK || status != 200)
				g->errors++; /* counted in warm-up too */
			else if (recording && !stopping && now < end &&
			         record(g, now - s->start_ns))
				snprintf(g->why, sizeof g->why, "out of memory");
			curl_multi_remove_handle(m, s->e);
			if (!stopping) {
				slot_next(g, s, &seed);
				curl_multi_add_handle(m, s->e);
			}
		}
		uint64_t now = scache_now_ns(NULL);
		if (!recording && now >= warm_end) {
			if (g->mw)
				scache_middleware_stats_get(g->mw, &g->before);
			recording = 1;
		}
		if (recording && !stopping && now >= end) {
			if (g->mw)
				scache_middleware_stats_get(g->mw, &g->after);
			stopping = 1; /* let the requests in flight finish, unmeasured */
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 50, NULL);
	}
	for (unsigned i = 0; i < g->conns; i++) {
		if (slots[i].e) {
			curl_multi_remove_handle(m, slots[i].e);
			curl_easy_cleanup(slots[i].e);
		}
	}
	free(slots);
	curl_multi_cleanup(m);
	return NULL;
}

/* ---- The churn writer: invalidates 1% of the IDs a second --------------------- */

typedef struct churn {
	scache_middleware *mw;
	atomic_int stop;
	uint64_t sent, failed;
} churn;

static void *churn_run(void *arg)
{
	churn *ch = arg;
	uint64_t seed = 0xc427ULL;
	const char *src = SOURCE;
	while (!atomic_load(&ch->stop)) {
		char id[16];
		const char *idp = id;
		snprintf(id, sizeof id, "%u", 1 + (unsigned)(splitmix64(&seed) % USERS));
		if (scache_middleware_invalidate(ch->mw, &src, &idp, 1) == SCACHE_OK)
			ch->sent++;
		else
			ch->failed++;
		usleep(1000000 / (USERS / 100)); /* USERS/100 IDs a second */
	}
	return NULL;
}

/* ---- Raw figures as JSON (--json FILE) ------------------------------------------ */

static FILE *jf; /* NULL: no --json */

/* A number for JSON: finite, else null (a figure that could not be computed). */
static void jnum(const char *name, double v, int comma)
{
	if (!jf)
		return;
	if (v != v || v > 1e300 || v < -1e300)
		fprintf(jf, "\"%s\":null%s", name, comma ? "," : "");
	else
		fprintf(jf, "\"%s\":%.6g%s", name, v, comma ? "," : "");
}

/* ---- One row ------------------------------------------------------------------ */

typedef enum mode { BARE, BOUNDED, STRICT, CHURN } mode;
static const char *const mode_names[] = {"bare", "bounded 200ms", "strict", "bounded+churn"};
static const char *const mode_keys[] = {"no_cache", "bounded_200ms", "strict", "bounded_churn"};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static void run_row(mode md, unsigned load_us, unsigned seconds, unsigned warmup_ms, unsigned conns,
                    unsigned max_polls, int row)
{
	app ap = {.load_us = load_us};
	scache_cache *cache = NULL;
	char err[512];
	scache_stream_config sc;
	char stream[32];

	if (md != BARE) {
		snprintf(stream, sizeof stream, "bench-http-%d", row);
		kinesalite_config(&K, stream, &sc);
		if (kinesalite_create_stream(&K, stream, 1, err, sizeof err))
			die("CreateStream", err);
		if (scache_cache_new(NULL, &cache))
			die("scache_cache_new", "out of memory");
		scache_middleware_config mc = {.cache = cache,
		                               .stream = &sc,
		                               .handler = handle,
		                               .handler_cls = &ap,
		                               .poll_interval_ms = md == STRICT ? 0 : 200,
		                               .max_polls_per_second = max_polls,
		                               .log = log_sink,
		                               .quiet_requests = 1};
		if (scache_middleware_new(&mc, &ap.mw, err, sizeof err))
			die("scache_middleware_new", err);
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d;
	unsigned flags =
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (ap.mw)
		d = MHD_start_daemon(flags, 0, NULL, NULL, scache_access_handler, ap.mw,
		                     MHD_OPTION_NOTIFY_COMPLETED, scache_request_completed, ap.mw,
		                     MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
		                     MHD_OPTION_END);
	else
		d = MHD_start_daemon(flags, 0, NULL, NULL, handle, &ap, MHD_OPTION_SOCK_ADDR, &sa,
		                     MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	if (!d)
		die("MHD_start_daemon", "cannot listen on 127.0.0.1");
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port)
		die("MHD_get_daemon_info", "no port");

	churn ch = {.mw = ap.mw};
	pthread_t churn_thread, gen_thread;
	if (md == CHURN && pthread_create(&churn_thread, NULL, churn_run, &ch))
		die("pthread_create", "churn writer");
	loadgen g = {.port = info->port,
	             .conns = conns,
	             .seconds = seconds,
	             .warmup_ms = warmup_ms,
	             .mw = ap.mw};
	if (pthread_create(&gen_thread, NULL, loadgen_run, &g))
		die("pthread_create", "load generator");
	pthread_join(gen_thread, NULL);
	if (md == CHURN) {
		atomic_store(&ch.stop, 1);
		pthread_join(churn_thread, NULL);
	}
	if (ap.mw)
		scache_middleware_shutdown(ap.mw); /* harmless without .suspend */
	MHD_stop_daemon(d);
	if (g.why[0])
		die("load generator", g.why);
	if (!g.n)
		die("load generator", "no request completed in the measured window");

	qsort(g.lat_us, g.n, sizeof *g.lat_us, cmp_u32);
	double rps = (double)g.n / (double)seconds, p50 = (double)g.lat_us[g.n / 2] / 1000.0,
	       p99 = (double)g.lat_us[g.n * 99 / 100] / 1000.0;
	printf("%-14s %7u %9.0f %8.2f %8.2f", mode_names[md], load_us, rps, p50, p99);
	const scache_middleware_stats *b = &g.before, *a = &g.after;
	uint64_t hits = a->request_hits - b->request_hits;
	uint64_t misses = a->request_misses - b->request_misses;
	uint64_t calls = a->source_calls - b->source_calls;
	double hit_pct = hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0.0;
	if (ap.mw) {
		printf(" %7.2f%% %7llu %8llu %9.3f %9.3f", hit_pct, (unsigned long long)misses,
		       (unsigned long long)calls, (double)(a->stream_ns - b->stream_ns) / 1e9,
		       (double)(a->saved_ns - b->saved_ns) / 1e9);
	} else {
		printf(" %8s %7s %8s %9s %9s", "-", "-", "-", "-", "-");
	}
	printf(" %6llu", (unsigned long long)g.errors);
	if (md == CHURN)
		printf("  (%llu IDs invalidated, %llu failed)", (unsigned long long)ch.sent,
		       (unsigned long long)ch.failed);
	printf("\n");
	fflush(stdout);
	if (jf) {
		fprintf(jf, "%s{\"mode\":\"%s\",\"name\":\"%s\",\"load_us\":%u,\"requests\":%zu,",
		        row ? "," : "", mode_keys[md], mode_names[md], load_us, g.n);
		jnum("rps", rps, 1);
		jnum("p50_ms", p50, 1);
		jnum("p99_ms", p99, 1);
		if (ap.mw) {
			jnum("hit_pct", hit_pct, 1);
			fprintf(jf, "\"misses\":%llu,\"kinesis_calls\":%llu,\"polls\":%llu,",
			        (unsigned long long)misses, (unsigned long long)calls,
			        (unsigned long long)(a->polls - b->polls));
			jnum("kinesis_calls_per_1000", 1000.0 * (double)calls / (double)g.n, 1);
			jnum("stream_s", (double)(a->stream_ns - b->stream_ns) / 1e9, 1);
			jnum("saved_s", (double)(a->saved_ns - b->saved_ns) / 1e9, 1);
		}
		if (md == CHURN)
			fprintf(jf, "\"churn_invalidated\":%llu,\"churn_failed\":%llu,",
			        (unsigned long long)ch.sent, (unsigned long long)ch.failed);
		fprintf(jf, "\"errors\":%llu}\n", (unsigned long long)g.errors);
	}
	free(g.lat_us);
	scache_middleware_free(ap.mw);
	scache_cache_free(cache);
}

/* ---- The hit path: every request a hit on one key, against the best bare server ---- */

/* The body of GET /users/1, as the SQLite rows above build it. */
static const char HIT_BODY[] = "{\"id\":1,\"name\":\"User 1\",\"email\":\"user1@example.com\"}";

typedef struct hit_app {
	int wrapped;               /* 0: bare, the response below is queued every time */
	struct MHD_Response *resp; /* HIT_BODY, created once (bare) */
	struct MHD_Response *nf;   /* 404, created once */
} hit_app;

/* The one handler of every hit row. Bare: queue the response created at startup, on the
 * second call. Wrapped: scache_get of the same key and a response made
 * from the cached bytes (MHD copies them); the first request of a row misses and adds. */
static enum MHD_Result hit_handle(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
	const hit_app *ha = cls;
	(void)method;
	(void)version;
	(void)upload_data;
	(void)upload_size;
	static int seen;
	if (!*req_cls) { /* first call: headers only. A response queued now makes libmicrohttpd
		            0.9.75 answer "Connection: close" (a new TCP connection a request) */
		*req_cls = &seen;
		return MHD_YES;
	}
	if (strcmp(url, "/users/1"))
		return MHD_queue_response(c, 404, ha->nf);
	if (!ha->wrapped)
		return MHD_queue_response(c, 200, ha->resp);
	scache_request *req = scache_request_current();
	scache_value v;
	const void *data = HIT_BODY;
	size_t len = sizeof HIT_BODY - 1;
	scache_err err = scache_get(req, SOURCE, "1", &v);
	if (err == SCACHE_OK) {
		data = v.data;
		len = v.len;
	} else {
		scache_add(req, SOURCE, "1", HIT_BODY, len, 1000000);
	}
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
	scache_value_release(&v);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* The rows of the hit table, in the order they run in each turn. */
typedef enum hit_kind {
	H_BARE,    /* bare, epoll pool (the best pool size): the baseline of the ratios */
	H_BARE_SR, /* bare, the wrapped rows' daemon: the same pool + MHD_ALLOW_SUSPEND_RESUME */
	H_STRICT,  /* middleware over kinesalite, strict, log on */
	H_BOUNDED, /* middleware over kinesalite, bounded 200 ms, log on */
	H_BOUNDED_OFF, /* the same, log off */
	H_MEM_LOG,     /* middleware over the in-memory source, bounded 200 ms, log on */
	H_MEM_OFF,     /* the same, log off */
	HIT_KINDS
} hit_kind;
static const char *const hit_names[HIT_KINDS] = {
    "bare libmicrohttpd, epoll pool",
    "bare, the server's thread mode (+ suspend/resume)",
    "strict, kinesalite, log on",
    "bounded 200 ms, kinesalite, log on",
    "bounded 200 ms, kinesalite, log off",
    "bounded 200 ms, memory source, log on",
    "bounded 200 ms, memory source, log off"};
static const char *const hit_keys[HIT_KINDS] = {"bare_epoll",
                                                "bare_server_mode",
                                                "strict",
                                                "bounded_200ms",
                                                "bounded_200ms_log_off",
                                                "memory_bounded_log_on",
                                                "memory_bounded_log_off"};

static int hit_kinesis(hit_kind k)
{
	return k == H_STRICT || k == H_BOUNDED || k == H_BOUNDED_OFF;
}

typedef struct hit_result {
	double rps, p50_ms, p99_ms;
	double hit_pct;     /* hits / (hits + misses) in the measured window; -1: bare */
	double log_bytes;   /* bytes written to the log file per request; 0: none */
	unsigned long errs; /* wrk's socket errors and non-2xx answers */
	uint64_t requests;  /* completed in the measured window (the middleware's count) */
	uint64_t calls;     /* Kinesis HTTP calls in the measured window */
	uint64_t polls;     /* polls completed in the measured window */
} hit_result;

static char wrk_path[256];

/* wrk's latency figure ("68.00us", "1.23ms", "2.00s") in milliseconds. */
static double wrk_ms(double v, const char *unit)
{
	if (!strcmp(unit, "us"))
		return v / 1000.0;
	if (!strcmp(unit, "ms"))
		return v;
	if (!strcmp(unit, "s"))
		return v * 1000.0;
	return v / 1e6; /* "ns" */
}

/* Runs wrk with 2 threads (1 for 1 connection) and C keep-alive connections for D seconds
 * on port; 0 and the figures, or -1 (output unreadable). */
static int wrk_run(int port, unsigned conns, unsigned seconds, hit_result *out)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "'%s' -t%u -c%u -d%us --latency http://127.0.0.1:%d/users/1 2>&1",
	         wrk_path, conns > 1 ? 2u : 1u, conns, seconds, port);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	char line[512];
	int got = 0;
	while (fgets(line, sizeof line, p)) {
		double v;
		char unit[8];
		unsigned long a, b, c, d;
		if (sscanf(line, " 50%% %lf%7s", &v, unit) == 2) {
			out->p50_ms = wrk_ms(v, unit);
			got |= 1;
		} else if (sscanf(line, " 99%% %lf%7s", &v, unit) == 2) {
			out->p99_ms = wrk_ms(v, unit);
			got |= 2;
		} else if (sscanf(line, "Requests/sec: %lf", &v) == 1) {
			out->rps = v;
			got |= 4;
		} else if (sscanf(line,
		                  " Socket errors: connect %lu, read %lu, write %lu, timeout %lu",
		                  &a, &b, &c, &d) == 4) {
			out->errs += a + b + c + d;
		} else if (sscanf(line, " Non-2xx or 3xx responses: %lu", &a) == 1) {
			out->errs += a;
		}
	}
	int rc = pclose(p);
	return got == 7 && rc == 0 ? 0 : -1;
}

/* One hit row: a fresh daemon (and middleware), warmup_s of wrk (none if 0), then D s
 * measured. */
static hit_result hit_row(hit_kind kind, unsigned pool, unsigned conns, unsigned seconds,
                          unsigned warmup_s, unsigned max_polls, int row)
{
	hit_app ha = {.wrapped = kind != H_BARE && kind != H_BARE_SR};
	hit_result res = {.hit_pct = -1};
	scache_cache *cache = NULL;
	scache_middleware *mw = NULL;
	char err[512], log_path[192] = "", stream[32];
	scache_stream_config sc;

	ha.resp = MHD_create_response_from_buffer(sizeof HIT_BODY - 1, (void *)HIT_BODY,
	                                          MHD_RESPMEM_PERSISTENT);
	ha.nf = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!ha.resp || !ha.nf)
		die("MHD_create_response_from_buffer", "out of memory");
	MHD_add_response_header(ha.resp, "Content-Type", "application/json");
	if (ha.wrapped) {
		scache_middleware_config mc = {.handler = hit_handle,
		                               .handler_cls = &ha,
		                               .suspend = 1, /* as deployed (README) */
		                               .poll_interval_ms = kind == H_STRICT ? 0 : 200,
		                               .max_polls_per_second = max_polls,
		                               .quiet_requests =
		                                   kind == H_BOUNDED_OFF || kind == H_MEM_OFF};
		if (scache_cache_new(NULL, &cache))
			die("scache_cache_new", "out of memory");
		mc.cache = cache;
		if (hit_kinesis(kind)) {
			snprintf(stream, sizeof stream, "bench-hit-%d", row);
			kinesalite_config(&K, stream, &sc);
			if (kinesalite_create_stream(&K, stream, 1, err, sizeof err))
				die("CreateStream", err);
			mc.stream = &sc;
		} else if (scache_memory_source_new(&mc.source)) {
			die("scache_memory_source_new", "out of memory");
		}
		snprintf(log_path, sizeof log_path, "%s/scache-%d.log", tmp_dir, row);
		mc.log_file = log_path; /* summaries (and, log on, request lines) */
		if (scache_middleware_new(&mc, &mw, err, sizeof err))
			die("scache_middleware_new", err);
		if (scache_middleware_wait_ready(mw, 10000, err, sizeof err))
			die("scache_middleware_wait_ready", err);
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	if (kind == H_BARE_SR)
		flags |= MHD_ALLOW_SUSPEND_RESUME; /* what scache_mhd_start adds with .suspend */
	struct MHD_Daemon *d;
	if (mw)
		d = scache_mhd_start(mw, flags, 0, MHD_OPTION_THREAD_POOL_SIZE, pool,
		                     MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
		                     MHD_OPTION_END);
	else
		d = MHD_start_daemon(flags, 0, NULL, NULL, hit_handle, &ha,
		                     MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_SOCK_ADDR, &sa,
		                     MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	if (!d)
		die("MHD_start_daemon", "cannot listen on 127.0.0.1");
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port)
		die("MHD_get_daemon_info", "no port");
	int port = info->port;
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_FLAGS);
	if (!info || !(info->flags & MHD_USE_EPOLL))
		die("MHD_start_daemon", "MHD_USE_AUTO did not pick epoll");

	hit_result warm = {0};
	scache_middleware_stats before, after;
	if (warmup_s && wrk_run(port, conns, warmup_s, &warm))
		die("wrk", "warm-up run failed (no figures)");
	if (mw)
		scache_middleware_stats_get(mw, &before);
	if (wrk_run(port, conns, seconds, &res))
		die("wrk", "run failed (no figures)");
	res.errs += warm.errs;
	if (mw) {
		scache_middleware_stats_get(mw, &after);
		uint64_t hits = after.request_hits - before.request_hits;
		uint64_t misses = after.request_misses - before.request_misses;
		res.hit_pct = hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0;
		res.requests = after.requests - before.requests;
		res.calls = after.source_calls - before.source_calls;
		res.polls = after.polls - before.polls;
		scache_middleware_shutdown(mw);
	}
	MHD_stop_daemon(d);
	scache_middleware_free(mw);
	scache_cache_free(cache);
	MHD_destroy_response(ha.resp);
	MHD_destroy_response(ha.nf);
	if (log_path[0]) {
		struct stat st;
		if (kind != H_BOUNDED_OFF && kind != H_MEM_OFF && !stat(log_path, &st) &&
		    after.requests > before.requests)
			res.log_bytes = (double)st.st_size / (double)after.requests;
		unlink(log_path);
	}
	return res;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* "median (min-max)" of n figures, with the given format for each. */
static const char *spread(char *buf, size_t size, const double *v, unsigned n, const char *fmt)
{
	double s[16];
	char a[32], b[32], m[32];
	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp_double);
	snprintf(m, sizeof m, fmt, s[n / 2]);
	if (n == 1) {
		snprintf(buf, size, "%s", m);
		return buf;
	}
	snprintf(a, sizeof a, fmt, s[0]);
	snprintf(b, sizeof b, fmt, s[n - 1]);
	snprintf(buf, size, "%s (%s-%s)", m, a, b);
	return buf;
}

static double median(const double *v, unsigned n)
{
	double s[16];
	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp_double);
	return s[n / 2];
}

/* A JSON array of n figures. */
static void jarray(const char *name, const double *v, unsigned n, int comma)
{
	if (!jf)
		return;
	fprintf(jf, "\"%s\":[", name);
	for (unsigned i = 0; i < n; i++)
		fprintf(jf, "%.6g%s", v[i], i + 1 < n ? "," : "");
	fprintf(jf, "]%s", comma ? "," : "");
}

/* The settings of the hit table. */
typedef struct hit_opts {
	unsigned seconds, runs, warmup_s, max_polls;
	const unsigned *conns;
	unsigned nconns;
	const unsigned *pools; /* bare pool sizes tried; the fastest is kept */
	unsigned npools;
	int kinesis; /* 0: no kinesalite rows (--no-kinesis) */
	int memory;  /* 0: no memory-source rows (--no-memory) */
} hit_opts;

static int hit_wanted(const hit_opts *o, hit_kind k)
{
	if (k == H_MEM_LOG || k == H_MEM_OFF)
		return o->memory;
	return o->kinesis || !hit_kinesis(k);
}

/* The whole hit-path table: for each connection count, the bare server with each pool
 * size (the faster by median req/s is kept), then runs x (bare, wrapped rows) in turn,
 * each wrapped figure divided by the bare one of the same turn. */
static void hit_section(const hit_opts *o)
{
	int row = 0, verdict = 1, judged = 0;
	/* The target's row: bounded over kinesalite, log on; without kinesalite, the same over
	 * the memory source. */
	hit_kind target = o->kinesis ? H_BOUNDED : H_MEM_LOG;
	unsigned runs = o->runs;
	char b1[128], b2[128], b3[128], b4[128], b5[128];
	printf("## Hit path: GET /users/1, every request a hit, against bare libmicrohttpd\n\n"
	       "libmicrohttpd %s, MHD_USE_AUTO_INTERNAL_THREAD (epoll) + thread pool, keep-alive\n"
	       "loopback; load from wrk -t2 (-t1 at 1 connection; %s), %u s warm-up then %u s\n"
	       "measured per run, %u runs per row in turn; figures are median (min-max) over the\n"
	       "runs. Middleware rows: .suspend 1, scache_mhd_start, the same handler, daemon "
	       "flags\n"
	       "and pool; \"kinesalite\" polls a 1-shard stream on loopback, \"memory source\" is\n"
	       "scache_memory_source_new (no Kinesis); log on: the efficiency log to a file, as\n"
	       "deployed. Ratios are to the bare epoll run of the same turn.\n\n",
	       MHD_get_version(), wrk_path, o->warmup_s, o->seconds, runs);
	if (jf)
		fprintf(
		    jf,
		    "{\"program\":\"bench_http\",\"section\":\"hit_path\",\"mhd_version\":\"%s\","
		    "\"seconds\":%u,\"warmup_s\":%u,\"runs\":%u,\"tables\":[\n",
		    MHD_get_version(), o->seconds, o->warmup_s, runs);
	for (unsigned ci = 0; ci < o->nconns; ci++) {
		unsigned conns = o->conns[ci];
		double pr[8][16];
		unsigned best = 0;
		if (o->npools > 1) {
			for (unsigned r = 0; r < runs; r++)
				for (unsigned p = 0; p < o->npools; p++)
					pr[p][r] = hit_row(H_BARE, o->pools[p], conns, o->seconds,
					                   o->warmup_s, o->max_polls, row++)
					               .rps;
			printf("%u connections, bare req/s by pool size:", conns);
			for (unsigned p = 0; p < o->npools; p++) {
				printf(" %u: %s;", o->pools[p],
				       spread(b1, sizeof b1, pr[p], runs, "%.0f"));
				if (median(pr[p], runs) > median(pr[best], runs))
					best = p;
			}
			printf(" pool of %u kept\n\n", o->pools[best]);
		}
		unsigned pool = o->pools[best];
		fflush(stdout);

		static hit_result res[HIT_KINDS][16];
		for (unsigned r = 0; r < runs; r++)
			for (int k = 0; k < HIT_KINDS; k++)
				if (hit_wanted(o, (hit_kind)k))
					res[k][r] = hit_row((hit_kind)k, pool, conns, o->seconds,
					                    o->warmup_s, o->max_polls, row++);
		printf(
		    "| %u conns, pool %u | req/s | p50 ms | p99 ms | req/s vs bare | p99 vs bare "
		    "| hits | Kinesis calls / 1000 req | log B/req | errors |\n",
		    conns, pool);
		printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
		if (jf) {
			fprintf(jf, "%s{\"conns\":%u,\"pool\":%u,\"pools_tried\":[", ci ? "," : "",
			        conns, pool);
			for (unsigned p = 0; p < o->npools; p++) {
				fprintf(jf, "%s{\"pool\":%u,", p ? "," : "", o->pools[p]);
				jarray("bare_rps", pr[p], o->npools > 1 ? runs : 0, 0);
				fprintf(jf, "}");
			}
			fprintf(jf, "],\"rows\":[\n");
		}
		int first = 1;
		for (int k = 0; k < HIT_KINDS; k++) {
			if (!hit_wanted(o, (hit_kind)k))
				continue;
			double rps[16], p50[16], p99[16], rr[16], pr99[16], cpk[16] = {0};
			double hit_min = 100, logb = 0;
			unsigned long errs = 0;
			for (unsigned r = 0; r < runs; r++) {
				const hit_result *x = &res[k][r], *bare = &res[H_BARE][r];
				rps[r] = x->rps;
				p50[r] = x->p50_ms;
				p99[r] = x->p99_ms;
				rr[r] = x->rps / bare->rps;
				pr99[r] = x->p99_ms / bare->p99_ms;
				if (x->requests)
					cpk[r] = 1000.0 * (double)x->calls / (double)x->requests;
				if (x->hit_pct >= 0 && x->hit_pct < hit_min)
					hit_min = x->hit_pct;
				if (x->log_bytes > logb)
					logb = x->log_bytes;
				errs += x->errs;
			}
			if (k == (int)target && conns >= 16) {
				judged++;
				if (median(rr, runs) < 0.9 || median(pr99, runs) > 1.5)
					verdict = 0;
			}
			int wrapped = k != H_BARE && k != H_BARE_SR;
			char hits[16] = "-", lb[16] = "-", calls[128] = "-";
			if (wrapped) {
				snprintf(hits, sizeof hits, "%.2f%%", hit_min);
				spread(calls, sizeof calls, cpk, runs, "%.1f");
			}
			if (logb > 0)
				snprintf(lb, sizeof lb, "%.0f", logb);
			printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %lu |\n",
			       hit_names[k], spread(b1, sizeof b1, rps, runs, "%.0f"),
			       spread(b2, sizeof b2, p50, runs, "%.3f"),
			       spread(b3, sizeof b3, p99, runs, "%.2f"),
			       k == H_BARE ? "1" : spread(b4, sizeof b4, rr, runs, "%.2fx"),
			       k == H_BARE ? "1" : spread(b5, sizeof b5, pr99, runs, "%.2fx"), hits,
			       calls, lb, errs);
			if (jf) {
				fprintf(jf, "%s{\"kind\":\"%s\",\"name\":\"%s\",\"median\":{",
				        first ? "" : ",", hit_keys[k], hit_names[k]);
				jnum("rps", median(rps, runs), 1);
				jnum("p50_ms", median(p50, runs), 1);
				jnum("p99_ms", median(p99, runs), 1);
				jnum("rps_vs_bare", median(rr, runs), 1);
				jnum("p99_vs_bare", median(pr99, runs), wrapped);
				if (wrapped) {
					jnum("hit_pct_min", hit_min, 1);
					jnum("kinesis_calls_per_1000", median(cpk, runs), 0);
				}
				fprintf(jf, "},\"runs\":[");
				for (unsigned r = 0; r < runs; r++) {
					const hit_result *x = &res[k][r];
					fprintf(jf, "%s{", r ? "," : "");
					jnum("rps", x->rps, 1);
					jnum("p50_ms", x->p50_ms, 1);
					jnum("p99_ms", x->p99_ms, 1);
					jnum("rps_vs_bare", rr[r], 1);
					jnum("p99_vs_bare", pr99[r], 1);
					if (wrapped)
						fprintf(jf,
						        "\"requests\":%llu,\"kinesis_calls\":%llu,"
						        "\"polls\":%llu,",
						        (unsigned long long)x->requests,
						        (unsigned long long)x->calls,
						        (unsigned long long)x->polls);
					if (wrapped)
						jnum("hit_pct", x->hit_pct, 1);
					jnum("log_bytes_per_req", x->log_bytes, 1);
					fprintf(jf, "\"errors\":%lu}", x->errs);
				}
				fprintf(jf, "]}\n");
			}
			first = 0;
		}
		if (jf)
			fprintf(jf, "]}\n");
		printf("\n");
		fflush(stdout);
	}
	printf("Target (%s: median >= 0.9x bare req/s and p99 <= 1.5x bare, at 16 and 64 "
	       "connections): %s\n\n",
	       hit_names[target],
	       !judged   ? "not measured (no row at 16 or more connections)"
	       : verdict ? "met"
	                 : "NOT met");
	if (jf)
		fprintf(jf, "],\"target_row\":\"%s\",\"target_met\":%s}\n", hit_keys[target],
		        !judged   ? "null"
		        : verdict ? "true"
		                  : "false");
}

/* ---- main ----------------------------------------------------------------------- */

#define USAGE                                                                                      \
	"usage: bench_http [--seconds D] [--runs R] [--conns C,...] [--pools P,...] [--warmup "    \
	"S]\n"                                                                                     \
	"                  [--max-polls N] [--no-kinesis] [--no-memory] [--wrk PATH]\n"            \
	"                  [--json FILE]\n"                                                        \
	"       bench_http --sqlite [--seconds D] [--conns C] [--load-us US] [--warmup S]\n"       \
	"                  [--max-polls N] [--json FILE]\n"

static unsigned parse_uint(const char *flag, const char *v, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long n = v ? strtoul(v, &end, 10) : 0;
	if (!v || *end || end == v || n < lo || n > hi) {
		fprintf(stderr, "bench_http: %s takes a number from %u to %u\n%s", flag, lo, hi,
		        USAGE);
		exit(2);
	}
	return (unsigned)n;
}

/* A comma-separated list of up to max numbers from lo to hi into out; their count. */
static unsigned parse_list(const char *flag, const char *v, unsigned lo, unsigned hi, unsigned *out,
                           unsigned max)
{
	char buf[128], *save = NULL;
	unsigned n = 0;
	snprintf(buf, sizeof buf, "%s", v ? v : "");
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == max)
			parse_uint(flag, NULL, lo, hi); /* too many: the usage */
		out[n++] = parse_uint(flag, t, lo, hi);
	}
	if (!n)
		parse_uint(flag, NULL, lo, hi);
	return n;
}

/* wrk: --wrk, else the first executable "wrk" on PATH; 0, or -1. */
static int find_wrk(const char *given)
{
	if (given) {
		snprintf(wrk_path, sizeof wrk_path, "%s", given);
		return access(wrk_path, X_OK);
	}
	const char *path = getenv("PATH");
	while (path && *path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);
		snprintf(wrk_path, sizeof wrk_path, "%.*s/wrk", (int)n, path);
		if (n && !access(wrk_path, X_OK))
			return 0;
		path = colon ? colon + 1 : NULL;
	}
	return -1;
}

/* The SQLite rows (--sqlite): read-aside, strict and churn against bare, thread per
 * connection. */
static void sqlite_section(unsigned seconds, unsigned warmup_s, unsigned conns, unsigned load_us,
                           unsigned max_polls)
{
	printf("GET /users/{id} over SQLite (%d users), libmicrohttpd thread per connection,\n"
	       "%u keep-alive connections, %u s per row after %u s of warm-up; kinesalite at %s;\n"
	       "middleware polls at most %u a second%s\n"
	       "load us: artificial delay per database read (a stand-in for a remote database)\n\n",
	       USERS, conns, seconds, warmup_s, K.endpoint, max_polls ? max_polls : 5,
	       max_polls ? "" : " (the default)");
	printf("%-14s %7s %9s %8s %8s %8s %7s %8s %9s %9s %6s\n", "row", "load us", "req/s",
	       "p50 ms", "p99 ms", "hits", "misses", "Kinesis", "stream s", "saved s", "errors");
	if (jf)
		fprintf(jf,
		        "{\"program\":\"bench_http\",\"section\":\"sqlite\",\"users\":%d,"
		        "\"conns\":%u,\"seconds\":%u,\"warmup_s\":%u,\"rows\":[\n",
		        USERS, conns, seconds, warmup_s);
	unsigned loads[2] = {0, load_us};
	int row = 0;
	for (int l = 0; l < (load_us ? 2 : 1); l++)
		for (int md = BARE; md <= CHURN; md++)
			run_row((mode)md, loads[l], seconds, warmup_s * 1000, conns, max_polls,
			        row++);
	if (jf)
		fprintf(jf, "]}\n");
}

int main(int argc, char **argv)
{
	unsigned seconds = 0, load_us = 1000, max_polls = 0, runs = 3, warmup_s = 1;
	unsigned conns[8] = {1, 16, 64}, nconns = 0, pools[8] = {2, 4}, npools = 2;
	int sqlite = 0, kinesis = 1, memory = 1;
	const char *wrk = NULL, *json = NULL;
	char err[256];

	for (int a = 1; a < argc; a++) {
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;
		if (!strcmp(argv[a], "--seconds"))
			seconds = parse_uint(argv[a++], v, 1, 3600);
		else if (!strcmp(argv[a], "--conns"))
			nconns = parse_list(argv[a++], v, 1, 1000, conns, 8);
		else if (!strcmp(argv[a], "--pools"))
			npools = parse_list(argv[a++], v, 1, 64, pools, 8);
		else if (!strcmp(argv[a], "--runs"))
			runs = parse_uint(argv[a++], v, 1, 15);
		else if (!strcmp(argv[a], "--warmup"))
			warmup_s = parse_uint(argv[a++], v, 0, 60);
		else if (!strcmp(argv[a], "--load-us"))
			load_us = parse_uint(argv[a++], v, 0, 1000000);
		else if (!strcmp(argv[a], "--max-polls"))
			max_polls = parse_uint(argv[a++], v, 0, 100000);
		else if (!strcmp(argv[a], "--sqlite"))
			sqlite = 1;
		else if (!strcmp(argv[a], "--no-kinesis"))
			kinesis = 0;
		else if (!strcmp(argv[a], "--no-memory"))
			memory = 0;
		else if (!strcmp(argv[a], "--wrk") && v)
			wrk = argv[++a];
		else if (!strcmp(argv[a], "--json") && v)
			json = argv[++a];
		else
			parse_uint(argv[a], NULL, 0, 0); /* prints the usage, exits */
	}
	if (pthread_key_create(&db_key, thread_db_close))
		die("pthread_key_create", "failed");
	atexit(cleanup);
	if (!sqlite && find_wrk(wrk))
		die("wrk", "not found: install it (Debian package wrk; scripts/install-deps.sh "
		           "does) or give --wrk PATH");
	if (json && !(jf = fopen(json, "w")))
		die(json, "cannot write");
	if (sqlite && curl_global_init(CURL_GLOBAL_DEFAULT))
		die("curl_global_init", "failed");
	if (sqlite)
		db_create();
	else
		make_tmp_dir();
	if ((sqlite || kinesis) && kinesalite_start(&K, err, sizeof err))
		die("kinesalite", err);
	if (sqlite) {
		sqlite_section(seconds ? seconds : 5, warmup_s, nconns ? conns[0] : 16, load_us,
		               max_polls);
		curl_global_cleanup();
	} else {
		hit_opts o = {.seconds = seconds ? seconds : 3,
		              .runs = runs,
		              .warmup_s = warmup_s,
		              .max_polls = max_polls,
		              .conns = conns,
		              .nconns = nconns ? nconns : 3,
		              .pools = pools,
		              .npools = npools,
		              .kinesis = kinesis,
		              .memory = memory};
		hit_section(&o);
	}
	if (jf && fclose(jf))
		die(json, "write failed");
	jf = NULL;
	return 0; /* cleanup() stops kinesalite */
}
