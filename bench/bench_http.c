/*
 * bench_http: libscache's middleware measured against bare libmicrohttpd, for the same
 * application on real parts: GET /users/{id} answered from a real SQLite file (1000
 * users in a temporary database) as JSON, over loopback HTTP.
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
 * Every daemon is MHD_USE_THREAD_PER_CONNECTION (with its internal polling thread): each
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
 * over the 1000 from a fixed seed; 1 s of warm-up (not measured), then D seconds
 * (default 5). Columns: requests/s, p50/p99 latency seen by the client, the hit ratio
 * and the misses (loads) of scache_get_or_load, Kinesis HTTP calls, and the totals
 * (seconds, summed over requests) of time spent waiting for the stream and time saved
 * by hits, all over the measured window (scache_middleware_stats_get deltas); then the
 * failed requests (non-200 or transport errors, warm-up included).
 *
 * kinesalite is started here (tests/kinesalite.c) and stopped at exit, failures
 * included (atexit; the kernel kills node if this process dies outright). The
 * middleware's log goes to a sink that drops summaries (per-request lines are off with
 * quiet_requests) and forwards warnings to stderr.
 * Usage: bench_http [--seconds D] [--conns C] [--load-us US] [--max-polls N]
 * (--max-polls: the middleware's max_polls_per_second; 0, the default, keeps the library's
 * default of 5, which bounds the strict row to about C x 5 requests a second.)
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

static void db_create(void)
{
	sqlite3 *db;
	char *err = NULL;
	snprintf(tmp_dir, sizeof tmp_dir, "/tmp/bench_http-XXXXXX");
	if (!mkdtemp(tmp_dir)) {
		tmp_dir[0] = '\0';
		die("mkdtemp", "cannot create a directory in /tmp");
	}
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
	unsigned conns, seconds;
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
	uint64_t warm_end = t0 + 1000000000ULL;
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

/* ---- One row ------------------------------------------------------------------ */

typedef enum mode { BARE, BOUNDED, STRICT, CHURN } mode;
static const char *const mode_names[] = {"bare", "bounded 200ms", "strict", "bounded+churn"};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static void run_row(mode md, unsigned load_us, unsigned seconds, unsigned conns, unsigned max_polls,
                    int row)
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
	loadgen g = {.port = info->port, .conns = conns, .seconds = seconds, .mw = ap.mw};
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
	printf("%-14s %7u %9.0f %8.2f %8.2f", mode_names[md], load_us,
	       (double)g.n / (double)seconds, (double)g.lat_us[g.n / 2] / 1000.0,
	       (double)g.lat_us[g.n * 99 / 100] / 1000.0);
	if (ap.mw) {
		const scache_middleware_stats *b = &g.before, *a = &g.after;
		uint64_t hits = a->request_hits - b->request_hits;
		uint64_t misses = a->request_misses - b->request_misses;
		printf(" %7.2f%% %7llu %8llu %9.3f %9.3f",
		       hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0.0,
		       (unsigned long long)misses,
		       (unsigned long long)(a->source_calls - b->source_calls),
		       (double)(a->stream_ns - b->stream_ns) / 1e9,
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
	free(g.lat_us);
	scache_middleware_free(ap.mw);
	scache_cache_free(cache);
}

/* ---- main ----------------------------------------------------------------------- */

static unsigned parse_uint(const char *flag, const char *v, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long n = v ? strtoul(v, &end, 10) : 0;
	if (!v || *end || end == v || n < lo || n > hi) {
		fprintf(stderr, "bench_http: %s takes a number from %u to %u\n", flag, lo, hi);
		fprintf(
		    stderr,
		    "usage: bench_http [--seconds D] [--conns C] [--load-us US] [--max-polls N]\n");
		exit(2);
	}
	return (unsigned)n;
}

int main(int argc, char **argv)
{
	unsigned seconds = 5, conns = 16, load_us = 1000, max_polls = 0;
	char err[256];

	for (int a = 1; a < argc; a++) {
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;
		if (!strcmp(argv[a], "--seconds"))
			seconds = parse_uint(argv[a++], v, 1, 3600);
		else if (!strcmp(argv[a], "--conns"))
			conns = parse_uint(argv[a++], v, 1, 1000);
		else if (!strcmp(argv[a], "--load-us"))
			load_us = parse_uint(argv[a++], v, 0, 1000000);
		else if (!strcmp(argv[a], "--max-polls"))
			max_polls = parse_uint(argv[a++], v, 0, 100000);
		else
			parse_uint(argv[a], NULL, 0, 0); /* prints the usage, exits */
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		die("curl_global_init", "failed");
	if (pthread_key_create(&db_key, thread_db_close))
		die("pthread_key_create", "failed");
	atexit(cleanup);
	db_create();
	if (kinesalite_start(&K, err, sizeof err))
		die("kinesalite", err);

	printf("GET /users/{id} over SQLite (%d users), libmicrohttpd thread per connection,\n"
	       "%u keep-alive connections, %u s per row after 1 s of warm-up; kinesalite at %s;\n"
	       "middleware polls at most %u a second%s\n"
	       "load us: artificial delay per database read (a stand-in for a remote database)\n\n",
	       USERS, conns, seconds, K.endpoint, max_polls ? max_polls : 5,
	       max_polls ? "" : " (the default)");
	printf("%-14s %7s %9s %8s %8s %8s %7s %8s %9s %9s %6s\n", "row", "load us", "req/s",
	       "p50 ms", "p99 ms", "hits", "misses", "Kinesis", "stream s", "saved s", "errors");
	unsigned loads[2] = {0, load_us};
	int row = 0;
	for (int l = 0; l < (load_us ? 2 : 1); l++)
		for (int md = BARE; md <= CHURN; md++)
			run_row((mode)md, loads[l], seconds, conns, max_polls, row++);
	curl_global_cleanup();
	return 0; /* cleanup() stops kinesalite */
}
