/*
 * users_server: a users service over SQLite that caches with libscache, the way a real
 * service would. Read it as the usage guide; the lines marked "scache:" are the whole
 * integration.
 *
 *   GET    /users/{id}   the user as JSON (404 if absent)     X-Cache: HIT | MISS | BYPASS
 *   PUT    /users/{id}   {"name":...,"email":...}: upsert, then announce the change
 *   DELETE /users/{id}   delete, then announce the change
 *   GET    /metrics      Prometheus text
 *   GET    /healthz      {"status":"ok",...}
 *
 * Run two of these over one database file and one stream: a PUT on one instance
 * invalidates the other's copy before its next request is served.
 *
 * DynamoDB mode (--dynamodb-table users): the users are items of a DynamoDB table (key
 * "id", a string). GET reads through scache_dynamodb_get_item; PUT and DELETE write with
 * PutItem and DeleteItem (ddb_write.c) and publish nothing: the table's change records
 * (Kinesis Data Streams for DynamoDB, on the stream this server reads) invalidate or
 * refresh every instance's copy, writes made behind the servers' backs included.
 */
#include <scache/scache.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ddb_write.h"
#include "users_body.h"

#include <curl/curl.h>

#define SOURCE   "db.users.id" /* scache: the data source of every cached user */
#define MAX_BODY (64 * 1024)

typedef struct server {
	sqlite3 *db;
	pthread_mutex_t db_mu;
	scache_middleware *mw;
	const char *hold_dir; /* test hook: see hold_load() */
	FILE *log;
	pthread_mutex_t log_mu;
	/* DynamoDB mode (ddb != NULL): */
	scache_dynamodb *ddb;        /* scache: read-aside GetItem */
	scache_dynamodb_table table; /* scache: the users table, key "id" */
	scache_cache *cache;         /* to drop this instance's own copy after a write */
	ddb_writer writer;           /* PutItem, DeleteItem */
} server;

/* ---- Settings: flags, each with an environment variable ---------------------- */

typedef struct settings {
	const char *port, *db, *stream, *endpoint, *region, *min_ttl, *max_ttl, *poll_interval,
	    *max_staleness, *max_bytes, *threads, *log;
	const char *max_connections, *connection_timeout;
	const char *publish_timeout;
	const char *dynamodb_table, *dynamodb_endpoint, *dynamodb_mode;
	const char *push, *push_lag;
} settings;

static const struct flag {
	const char *name, *env, *help;
	size_t offset;
} flags[] = {
    {"--port", "SCACHE_PORT", "port on 127.0.0.1 [8080]", offsetof(settings, port)},
    {"--db", "SCACHE_DB", "SQLite file, created when missing [users.db]", offsetof(settings, db)},
    {"--stream", "SCACHE_STREAM", "Kinesis stream name (required)", offsetof(settings, stream)},
    {"--endpoint", "SCACHE_ENDPOINT", "Kinesis endpoint [AWS_ENDPOINT_URL_KINESIS, ...]",
     offsetof(settings, endpoint)},
    {"--region", "SCACHE_REGION", "AWS region [AWS_REGION]", offsetof(settings, region)},
    {"--min-ttl", "SCACHE_MIN_TTL", "shortest entry lifetime, e.g. 60s [60s]",
     offsetof(settings, min_ttl)},
    {"--max-ttl", "SCACHE_MAX_TTL", "longest entry lifetime [5m]", offsetof(settings, max_ttl)},
    {"--poll-interval", "SCACHE_POLL_INTERVAL",
     "0 = strict; > 0 = bounded staleness, e.g. 400ms [0]", offsetof(settings, poll_interval)},
    {"--max-staleness", "SCACHE_MAX_STALENESS",
     "bypass the cache after this long without "
     "a successful poll [10s]",
     offsetof(settings, max_staleness)},
    {"--max-bytes", "SCACHE_MAX_BYTES", "memory bound of the cache [67108864]",
     offsetof(settings, max_bytes)},
    {"--threads", "SCACHE_THREADS",
     "libmicrohttpd thread pool size; 0 = a thread per "
     "connection [4]",
     offsetof(settings, threads)},
    {"--log", "SCACHE_LOG", "efficiency log file (appended) [stderr]", offsetof(settings, log)},
    {"--publish-timeout", "SCACHE_PUBLISH_TIMEOUT",
     "bound of one invalidation's publish, retries included [5s]",
     offsetof(settings, publish_timeout)},
    {"--max-connections", "SCACHE_MAX_CONNECTIONS",
     "connections held at once [4096, or fewer to fit the fd limit]",
     offsetof(settings, max_connections)},
    {"--connection-timeout", "SCACHE_CONNECTION_TIMEOUT",
     "close a connection silent this long, in whole seconds; 0 = never [30s]",
     offsetof(settings, connection_timeout)},
    {"--dynamodb-table", "SCACHE_DYNAMODB_TABLE",
     "users are items of this DynamoDB table (key \"id\", a string) [none: SQLite]",
     offsetof(settings, dynamodb_table)},
    {"--dynamodb-endpoint", "SCACHE_DYNAMODB_ENDPOINT",
     "DynamoDB endpoint [AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, AWS]",
     offsetof(settings, dynamodb_endpoint)},
    {"--dynamodb-mode", "SCACHE_DYNAMODB_MODE",
     "what a change record does to a cached user: invalidate or refresh [invalidate]",
     offsetof(settings, dynamodb_mode)},
    {"--push", "SCACHE_PUSH",
     "receive the stream by push (enhanced fan-out) as this consumer, a name unique per "
     "instance [none: polling]",
     offsetof(settings, push)},
    {"--push-lag", "SCACHE_PUSH_LAG",
     "with --push: how stale an event may be on arrival; 2500ms for kinesis-mock [250ms]",
     offsetof(settings, push_lag)},
};
#define NFLAGS (sizeof flags / sizeof flags[0])

static void usage(FILE *f)
{
	fprintf(f, "usage: users_server --stream NAME [options]\n");
	for (size_t i = 0; i < NFLAGS; i++)
		fprintf(f, "  %-20s %-25s %s\n", flags[i].name, flags[i].env, flags[i].help);
	fprintf(f, "With --dynamodb-table the stream must carry the table's change records "
	           "(Kinesis Data Streams for DynamoDB); --db is not used.\n");
}

static int parse_args(int argc, char **argv, settings *s)
{
	for (size_t i = 0; i < NFLAGS; i++)
		*(const char **)((char *)s + flags[i].offset) = getenv(flags[i].env);
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
			usage(stdout);
			exit(0);
		}
		size_t i;
		for (i = 0; i < NFLAGS; i++) {
			size_t n = strlen(flags[i].name);
			const char **slot = (const char **)((char *)s + flags[i].offset);
			if (!strcmp(argv[a], flags[i].name) && a + 1 < argc) {
				*slot = argv[++a];
				break;
			}
			if (!strncmp(argv[a], flags[i].name, n) && argv[a][n] == '=') {
				*slot = argv[a] + n + 1;
				break;
			}
		}
		if (i == NFLAGS) {
			fprintf(stderr, "users_server: unknown or incomplete option '%s'\n",
			        argv[a]);
			usage(stderr);
			return -1;
		}
	}
	return 0;
}

/* "250ms", "10s", "5m" or a number of milliseconds; -1 if malformed. */
static long long parse_ms(const char *v, long long dflt)
{
	if (!v || !*v)
		return dflt;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno || n < 0 || end == v)
		return -1;
	long long unit = !*end || !strcmp(end, "ms") ? 1
	                 : !strcmp(end, "s")         ? 1000
	                 : !strcmp(end, "m")         ? 60000
	                                             : -1;
	if (unit < 0 || n > LLONG_MAX / unit)
		return -1; /* unknown unit, or too large to count in milliseconds */
	return n * unit;
}

static long long parse_count(const char *v, long long dflt)
{
	if (!v || !*v)
		return dflt;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	return errno || *end || n < 0 ? -1 : n;
}

/* ---- Connections: how many fit, and for how long ------------------------------ */

/* Each connection holds a file descriptor; the rest of the process needs some too (stdio,
 * SQLite's files, the log, connections to Kinesis, MHD's own: 2 per thread). */
#define FD_RESERVE       64
#define MAX_CONN_DEFAULT 4096

/* Raises the soft limit on open files to the hard one (without that, an ulimit -n of 1024
 * lets ~1,000 idle clients take every descriptor) and returns the limit in force. */
static long long raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit raised = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl = raised; /* RLIM_INFINITY fails (above nr_open): soft one kept */
	}
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX ? INT_MAX
	                                                             : (long long)rl.rlim_cur;
}

/* --max-connections (checked against the fd limit) and --connection-timeout (seconds);
 * -1 after saying which is wrong. */
static int connection_settings(const settings *s, long long threads, unsigned *limit,
                               unsigned *timeout_s)
{
	long long fds = raise_fd_limit(), fit = fds - FD_RESERVE - 2 * threads;
	long long n =
	    parse_count(s->max_connections, fit < MAX_CONN_DEFAULT ? fit : MAX_CONN_DEFAULT);
	long long ms = parse_ms(s->connection_timeout, 30000);
	if (n < 1 || n > UINT_MAX || n < threads) {
		fprintf(stderr,
		        "users_server: bad --max-connections '%s': a number of connections, "
		        "at least 1 and at least --threads\n",
		        s->max_connections ? s->max_connections : "");
		return -1;
	}
	if (n > fit) {
		fprintf(stderr,
		        "users_server: --max-connections %lld needs %lld open files, but the "
		        "limit is %lld (ulimit -n, raised to its hard limit): at most %lld here\n",
		        n, n + FD_RESERVE + 2 * threads, fds, fit > 0 ? fit : 0);
		return -1;
	}
	if (ms < 0 || ms % 1000 || ms / 1000 > UINT_MAX) {
		fprintf(stderr,
		        "users_server: bad --connection-timeout '%s': whole seconds, e.g. "
		        "30s or 2m; 0 = never\n",
		        s->connection_timeout ? s->connection_timeout : "");
		return -1;
	}
	*limit = (unsigned)n;
	*timeout_s = (unsigned)(ms / 1000);
	return 0;
}

/* ---- The database ----------------------------------------------------------- */

static int db_open(server *sv, const char *path)
{
	if (sqlite3_open_v2(path, &sv->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
	                    NULL) != SQLITE_OK) {
		fprintf(stderr, "users_server: cannot open database '%s': %s\n", path,
		        sv->db ? sqlite3_errmsg(sv->db) : "out of memory");
		return -1;
	}
	sqlite3_busy_timeout(sv->db, 5000); /* two servers share the file */
	char *err = NULL;
	int rc;
	/* Two servers starting at once contend for the file: switching to WAL does not wait
	 * on the busy timeout, so retry for up to 10 s. */
	for (int attempt = 0;; attempt++) {
		rc = sqlite3_exec(sv->db,
		                  "PRAGMA journal_mode=WAL;"
		                  "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, "
		                  "name TEXT NOT NULL, email TEXT NOT NULL);",
		                  NULL, NULL, &err);
		if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || attempt == 100)
			break;
		sqlite3_free(err);
		err = NULL;
		usleep(100000);
	}
	if (rc != SQLITE_OK) {
		fprintf(stderr, "users_server: cannot create the schema in '%s': %s\n", path, err);
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/* The user's JSON, or NULL with *found = 0 when absent. */
static char *db_get_user(server *sv, const char *id, int *found, int *failed)
{
	*found = 0;
	*failed = 0;
	sqlite3_stmt *st;
	char *out = NULL;
	pthread_mutex_lock(&sv->db_mu);
	if (sqlite3_prepare_v2(sv->db, "SELECT name, email FROM users WHERE id = ?", -1, &st,
	                       NULL) != SQLITE_OK) {
		*failed = 1;
		pthread_mutex_unlock(&sv->db_mu);
		return NULL;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(
		    o, "name", json_object_new_string((const char *)sqlite3_column_text(st, 0)));
		json_object_object_add(
		    o, "email", json_object_new_string((const char *)sqlite3_column_text(st, 1)));
		out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		*found = 1;
		*failed = out == NULL;
	} else if (rc != SQLITE_DONE) {
		*failed = 1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&sv->db_mu);
	return out;
}

/* Runs one statement with (a, b, c) bound; returns rows changed, or -1. */
static int db_exec(server *sv, const char *sql, const char *a, const char *b, const char *c)
{
	sqlite3_stmt *st;
	int changed = -1;
	pthread_mutex_lock(&sv->db_mu);
	if (sqlite3_prepare_v2(sv->db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
		if (b)
			sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
		if (c)
			sqlite3_bind_text(st, 3, c, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_DONE)
			changed = sqlite3_changes(sv->db);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&sv->db_mu);
	return changed;
}

/* ---- Test hook: hold a load open --------------------------------------------- */

/* With SCACHE_TEST_HOLD_DIR set and a file "hold-<id>" in it, a load of <id> reads the
 * database, creates "loaded-<id>", then waits (at most 30 s) until "hold-<id>" is
 * removed before handing its (now old) data to the cache. The integration tests use it
 * to stage the stale-add race across two servers. */
static void hold_load(server *sv, const char *id)
{
	if (!sv->hold_dir)
		return;
	char hold[4096], loaded[4096];
	struct stat stt;
	snprintf(hold, sizeof hold, "%s/hold-%s", sv->hold_dir, id);
	if (stat(hold, &stt) != 0)
		return;
	snprintf(loaded, sizeof loaded, "%s/loaded-%s", sv->hold_dir, id);
	FILE *f = fopen(loaded, "w");
	if (f)
		fclose(f);
	for (int i = 0; i < 3000 && stat(hold, &stt) == 0; i++)
		usleep(10000);
}

/* ---- Responses ----------------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
                               const char *body, const char *xcache)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	if (xcache)
		MHD_add_response_header(r, "X-Cache", xcache);
	if (status == 405)
		MHD_add_response_header(r, "Allow",
		                        strstr(type, "json") ? "GET, PUT, DELETE" : "GET");
	enum MHD_Result ret = scache_queue_response(c, status, r); /* scache: logs the status */
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(msg));
	enum MHD_Result r =
	    respond(c, status, "application/json",
	            json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), NULL);
	json_object_put(o);
	return r;
}

/* ---- Routes -------------------------------------------------------------------- */


static int valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return 0;
	}
	return 1;
}

typedef struct load_arg {
	server *sv;
	const char *id;
} load_arg;

/* scache: the loader scache_get_or_load runs (and times) on a miss. */
static scache_err load_user(void *arg, void **value, size_t *len)
{
	load_arg *la = arg;
	int found, failed;
	char *json = db_get_user(la->sv, la->id, &found, &failed);
	if (failed)
		return SCACHE_EIO;
	if (!found)
		return SCACHE_ENOTFOUND;
	hold_load(la->sv, la->id);
	*value = json;
	*len = strlen(json);
	return SCACHE_OK;
}

/* scache: the X-Cache header of a read's outcome. */
static const char *xcache_of(scache_outcome how)
{
	return how == SCACHE_OUTCOME_HIT ? "HIT" : how == SCACHE_OUTCOME_BYPASS ? "BYPASS" : "MISS";
}

static enum MHD_Result respond_no_such_user(struct MHD_Connection *c, const char *xcache)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string("no such user"));
	enum MHD_Result r =
	    respond(c, 404, "application/json",
	            json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), xcache);
	json_object_put(o);
	return r;
}

static enum MHD_Result get_user(server *sv, struct MHD_Connection *c, const char *id)
{
	scache_request *req = scache_request_current(); /* scache: this request's context */
	load_arg la = {sv, id};
	void *value;
	size_t len;
	scache_outcome how;
	/* scache: read-aside in one call; one load per ID at a time */
	scache_err err = scache_get_or_load(req, SOURCE, id, load_user, &la, &value, &len, &how);
	const char *xcache = xcache_of(how);
	if (err == SCACHE_ENOTFOUND)
		return respond_no_such_user(c, xcache);
	if (err)
		return respond_error(c, 500, scache_strerror(err));
	char *body = malloc(len + 1);
	if (!body) {
		free(value);
		return MHD_NO;
	}
	memcpy(body, value, len);
	body[len] = '\0';
	free(value);
	enum MHD_Result r = respond(c, 200, "application/json", body, xcache);
	free(body);
	return r;
}

/* After a change is committed: scache: announce it to every instance. */
static enum MHD_Result announce(struct MHD_Connection *c, const char *id, unsigned status,
                                const char *body)
{
	scache_err err = scache_invalidate(scache_request_current(), SOURCE, id);
	if (err) {
		char msg[256];
		snprintf(msg, sizeof msg, "saved, but other instances were not told: %s",
		         scache_strerror(err));
		return respond_error(c, 503, msg);
	}
	return respond(c, status, "application/json", body, NULL);
}

/* ---- DynamoDB mode -------------------------------------------------------------- */

static enum MHD_Result get_user_ddb(server *sv, struct MHD_Connection *c, const char *id)
{
	char key[128], why[512], *item = NULL;
	snprintf(key, sizeof key, "{\"id\":{\"S\":\"%s\"}}", id); /* ids need no escaping */
	size_t len;
	scache_outcome how = SCACHE_OUTCOME_MISS;
	/* scache: a hit, or a strongly consistent GetItem cached under the item's data ID */
	scache_err err =
	    scache_dynamodb_get_item(scache_request_current(), sv->ddb, sv->table.table, key, &item,
	                             &len, &how, why, sizeof why);
	const char *xcache = xcache_of(how);
	if (err == SCACHE_ENOTFOUND)
		return respond_no_such_user(c, xcache);
	if (err)
		return respond_error(c, 502, why);
	char *body = user_json(item, len);
	free(item);
	if (!body)
		return respond_error(c, 502, "the item is not a JSON object");
	enum MHD_Result r = respond(c, 200, "application/json", body, xcache);
	free(body);
	return r;
}

/* After a write: this instance drops its own copy at once, so its next read loads what
 * was written (a load begun before is refused: the stale-add guard). Nothing is
 * published: the table's change record tells every instance, this one included. */
static void forget_user(server *sv, const char *id)
{
	char key[128], *data_id;
	size_t len;
	snprintf(key, sizeof key, "{\"id\":{\"S\":\"%s\"}}", id);
	if (scache_dynamodb_item_id(&sv->table, key, &data_id, &len) == SCACHE_OK) {
		scache_cache_invalidate(sv->cache, data_id, len, NULL);
		free(data_id);
	} else {
		scache_cache_flush(sv->cache, NULL); /* out of memory: drop everything */
	}
}

static enum MHD_Result put_user_ddb(server *sv, struct MHD_Connection *c, const char *id,
                                    const char *name, const char *email)
{
	char why[768];
	if (ddb_put_user(&sv->writer, id, name, email, why, sizeof why))
		return respond_error(c, 502, why);
	forget_user(sv, id);
	json_object *u = json_object_new_object();
	json_object_object_add(u, "id", json_object_new_string(id));
	json_object_object_add(u, "name", json_object_new_string(name));
	json_object_object_add(u, "email", json_object_new_string(email));
	enum MHD_Result r =
	    respond(c, 200, "application/json",
	            json_object_to_json_string_ext(u, JSON_C_TO_STRING_PLAIN), NULL);
	json_object_put(u);
	return r;
}

static enum MHD_Result delete_user_ddb(server *sv, struct MHD_Connection *c, const char *id)
{
	char why[768];
	int existed;
	if (ddb_delete_user(&sv->writer, id, &existed, why, sizeof why))
		return respond_error(c, 502, why);
	forget_user(sv, id);
	if (!existed)
		return respond_error(c, 404, "no such user");
	return respond(c, 200, "application/json", "{\"deleted\":true}", NULL);
}

static enum MHD_Result put_user(server *sv, struct MHD_Connection *c, const char *id,
                                const char *body, size_t len)
{
	char msg[200];
	json_object *o;
	const char *name, *email;
	if (users_body_parse(body, len, &o, &name, &email, msg, sizeof msg))
		return respond_error(c, 400, msg);
	if (sv->ddb) {
		enum MHD_Result r = put_user_ddb(sv, c, id, name, email);
		json_object_put(o);
		return r;
	}
	if (db_exec(sv,
	            "INSERT INTO users (id, name, email) VALUES (?, ?, ?) "
	            "ON CONFLICT(id) DO UPDATE SET name = excluded.name, email = excluded.email",
	            id, name, email) < 0) {
		json_object_put(o);
		return respond_error(c, 500, "the database refused the write");
	}
	json_object *u = json_object_new_object();
	json_object_object_add(u, "id", json_object_new_string(id));
	json_object_object_add(u, "name", json_object_new_string(name));
	json_object_object_add(u, "email", json_object_new_string(email));
	char *out = strdup(json_object_to_json_string_ext(u, JSON_C_TO_STRING_PLAIN));
	json_object_put(u);
	json_object_put(o);
	if (!out)
		return MHD_NO;
	enum MHD_Result r = announce(c, id, 200, out);
	free(out);
	return r;
}

static enum MHD_Result delete_user(server *sv, struct MHD_Connection *c, const char *id)
{
	int n = db_exec(sv, "DELETE FROM users WHERE id = ?", id, NULL, NULL);
	if (n < 0)
		return respond_error(c, 500, "the database refused the delete");
	if (n == 0)
		return respond_error(c, 404, "no such user");
	return announce(c, id, 200, "{\"deleted\":true}");
}

static enum MHD_Result metrics(server *sv, struct MHD_Connection *c)
{
	char *text;
	if (scache_middleware_metrics(sv->mw, &text, NULL) != SCACHE_OK)
		return MHD_NO;
	enum MHD_Result r = respond(c, 200, "text/plain; version=0.0.4", text, NULL);
	free(text);
	return r;
}

static enum MHD_Result healthz(server *sv, struct MHD_Connection *c)
{
	scache_middleware_stats st;
	scache_middleware_stats_get(sv->mw, &st);
	char body[128];
	snprintf(body, sizeof body, "{\"status\":\"ok\",\"staleness_ms\":%llu,\"bypassing\":%s}",
	         (unsigned long long)(st.staleness_ns / 1000000), st.bypassing ? "true" : "false");
	return respond(c, 200, "application/json", body, NULL);
}

/* Decodes %XX in the URL in place, as libmicrohttpd does, except %00: decoded, it would
 * cut the path short ("/users/a%00b" would read as user "a"), so it stays as it is and
 * the ID check refuses it. */
static size_t unescape_url(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	char *w = s;
	for (const char *r = s; *r;) {
		int hi = r[0] == '%' ? users_hex_digit(r[1]) : -1;
		int lo = hi >= 0 ? users_hex_digit(r[2]) : -1;
		if (lo >= 0 && (hi | lo) != 0) {
			*w++ = (char)(hi << 4 | lo);
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* The request body, gathered across upload callbacks: the handler's own req_cls. */
typedef struct call {
	char *body;
	size_t len;
	int too_big;
} call;

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **req_cls)
{
	(void)version;
	server *sv = cls;
	call *cl = *req_cls;
	if (!cl) {
		cl = calloc(1, sizeof *cl);
		if (!cl)
			return MHD_NO;
		*req_cls = cl;
		const char *cl_hdr =
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		/* A declared size over the limit is refused before the body is read. */
		if (cl_hdr && strtoull(cl_hdr, NULL, 10) > MAX_BODY)
			return respond_error(c, 413, "the body is larger than 64 KiB");
		return MHD_YES;
	}
	if (*upload_size) {
		if (!cl->too_big && cl->len + *upload_size <= MAX_BODY) {
			char *b = realloc(cl->body, cl->len + *upload_size + 1);
			if (!b)
				return MHD_NO;
			memcpy(b + cl->len, upload_data, *upload_size);
			cl->body = b;
			cl->len += *upload_size;
			cl->body[cl->len] = '\0';
		} else {
			cl->too_big = 1; /* keep reading, discard, answer 413 at the end */
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (cl->too_big)
		return respond_error(c, 413, "the body is larger than 64 KiB");

	if (!strcmp(url, "/metrics") || !strcmp(url, "/healthz")) {
		if (strcmp(method, "GET") && strcmp(method, "HEAD"))
			return respond(c, 405, "text/plain", "method not allowed\n", NULL);
		return url[1] == 'm' ? metrics(sv, c) : healthz(sv, c);
	}
	if (strncmp(url, "/users/", 7) != 0)
		return respond_error(c, 404, "no such route");
	const char *id = url + 7;
	int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	int is_put = !strcmp(method, "PUT"), is_delete = !strcmp(method, "DELETE");
	if (!is_get && !is_put && !is_delete)
		return respond(c, 405, "application/json", "{\"error\":\"method not allowed\"}",
		               NULL);
	if (!valid_id(id))
		return respond_error(c, 400, "an id is 1 to 64 of A-Z a-z 0-9 - _");
	if (is_get)
		return sv->ddb ? get_user_ddb(sv, c, id) : get_user(sv, c, id);
	if (is_put)
		return put_user(sv, c, id, cl->body ? cl->body : "", cl->len);
	return sv->ddb ? delete_user_ddb(sv, c, id) : delete_user(sv, c, id);
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	call *cl = *req_cls;
	if (cl) {
		free(cl->body);
		free(cl);
		*req_cls = NULL;
	}
}

/* The DynamoDB mode's settings: 0 when --dynamodb-table is not given (SQLite mode) or
 * all is well, else -1 after saying what is wrong. Endpoint and region are resolved here
 * as the library resolves them, so reads and writes go to the same place. */
static int dynamodb_settings(const settings *s, server *sv, scache_dynamodb_mode *mode,
                             char *endpoint, size_t endpoint_len, const char **region)
{
	int has_table = s->dynamodb_table && *s->dynamodb_table;
	const char *m = s->dynamodb_mode;
	if (m && *m && strcmp(m, "invalidate") && strcmp(m, "refresh")) {
		fprintf(stderr,
		        "users_server: bad --dynamodb-mode '%s': invalidate (a change record "
		        "removes the cached user) or refresh (it stores the new one)\n",
		        m);
		return -1;
	}
	if (!has_table && ((m && *m) || (s->dynamodb_endpoint && *s->dynamodb_endpoint))) {
		fprintf(stderr, "users_server: --dynamodb-mode and --dynamodb-endpoint need "
		                "--dynamodb-table (or SCACHE_DYNAMODB_TABLE)\n");
		return -1;
	}
	if (!has_table)
		return 0;
	*mode = m && !strcmp(m, "refresh") ? SCACHE_DYNAMODB_REFRESH : SCACHE_DYNAMODB_INVALIDATE;
	const char *r = s->region && *s->region ? s->region : getenv("AWS_REGION");
	if (!r || !*r)
		r = getenv("AWS_DEFAULT_REGION");
	if (!r || !*r) {
		fprintf(stderr, "users_server: no AWS region: give --region or set AWS_REGION\n");
		return -1;
	}
	*region = r;
	const char *e = s->dynamodb_endpoint;
	if (!e || !*e)
		e = getenv("AWS_ENDPOINT_URL_DYNAMODB");
	if (!e || !*e)
		e = getenv("AWS_ENDPOINT_URL");
	if (e && *e)
		snprintf(endpoint, endpoint_len, "%s", e);
	else
		snprintf(endpoint, endpoint_len, "https://dynamodb.%s.amazonaws.com", r);
	sv->table = (scache_dynamodb_table){
	    .table = s->dynamodb_table, .partition_key = "id", .mode = *mode};
	return 0;
}

/* scache: efficiency lines to the --log file. */
static void log_line(void *arg, const char *line, size_t len)
{
	server *sv = arg;
	fwrite(line, 1, len, sv->log);
	fputc('\n', sv->log);
	fflush(sv->log);
}

int main(int argc, char **argv)
{
	settings s;
	if (parse_args(argc, argv, &s))
		return 2;
	if (!s.stream || !*s.stream) {
		fprintf(stderr, "users_server: no stream name: give --stream NAME or set "
		                "SCACHE_STREAM\n");
		return 2;
	}
	long long port = parse_count(s.port, 8080), min_ttl = parse_ms(s.min_ttl, 60000),
	          max_ttl = parse_ms(s.max_ttl, 300000), poll = parse_ms(s.poll_interval, 0),
	          stale = parse_ms(s.max_staleness, 10000),
	          max_bytes = parse_count(s.max_bytes, 64ll << 20),
	          threads = parse_count(s.threads, 4);
	if (port < 0 || port > 65535 || min_ttl <= 0 || max_ttl < min_ttl || poll < 0 ||
	    stale <= 0 || max_bytes <= 0 || threads < 0 || threads > 256) {
		fprintf(stderr, "users_server: bad value among --port --min-ttl --max-ttl "
		                "--poll-interval --max-staleness --max-bytes --threads "
		                "(durations: 250ms, 10s, 5m; min-ttl <= max-ttl)\n");
		return 2;
	}
	unsigned max_conn, conn_timeout_s;
	if (connection_settings(&s, threads, &max_conn, &conn_timeout_s))
		return 2;
	long long publish_timeout = parse_ms(s.publish_timeout, 5000);
	if (publish_timeout <= 0 || publish_timeout > LONG_MAX) {
		fprintf(stderr, "users_server: bad --publish-timeout (a duration > 0: 250ms, "
		                "5s)\n");
		return 2;
	}

	server sv = {.hold_dir = getenv("SCACHE_TEST_HOLD_DIR"), .log = stderr};
	scache_dynamodb_mode ddb_mode = SCACHE_DYNAMODB_INVALIDATE;
	char ddb_endpoint[1024];
	const char *region = NULL;
	if (dynamodb_settings(&s, &sv, &ddb_mode, ddb_endpoint, sizeof ddb_endpoint, &region))
		return 2;
	pthread_mutex_init(&sv.db_mu, NULL);
	if (s.log && *s.log && strcmp(s.log, "-")) {
		sv.log = fopen(s.log, "a");
		if (!sv.log) {
			fprintf(stderr, "users_server: cannot open log '%s': %s\n", s.log,
			        strerror(errno));
			return 1;
		}
	}
	if (sv.table.table) {
		/* scache: the GetItem client; it makes no call yet */
		scache_dynamodb_config dc = {
		    .region = region, .endpoint = ddb_endpoint, .tables = &sv.table, .ntables = 1};
		char why[512];
		scache_err derr = scache_dynamodb_new(&dc, &sv.ddb, why, sizeof why);
		if (derr) {
			fprintf(stderr, "users_server: %s\n", why);
			return derr == SCACHE_ECONFIG ? 2 : 1;
		}
		curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread: ddb_write.c */
		if (ddb_writer_init(&sv.writer, ddb_endpoint, region, sv.table.table,
		                    getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"),
		                    getenv("AWS_SESSION_TOKEN"))) {
			fprintf(stderr, "users_server: out of memory\n");
			return 1;
		}
	} else if (db_open(&sv, s.db && *s.db ? s.db : "users.db")) {
		return 1;
	}

	/* scache: the cache, then the middleware around our handler. */
	scache_cache *cache;
	scache_cache_config cc = {.min_ttl_ms = (uint64_t)min_ttl,
	                          .max_ttl_ms = (uint64_t)max_ttl,
	                          .max_bytes = (size_t)max_bytes};
	scache_err err = scache_cache_new(&cc, &cache);
	if (err) {
		fprintf(stderr, "users_server: cache: %s\n", scache_strerror(err));
		return 1;
	}
	sv.cache = cache;
	scache_stream_config stream = {.stream_name = s.stream,
	                               .endpoint = s.endpoint,
	                               .region = s.region,
	                               .publish_timeout_ms = (long)publish_timeout};
	if (sv.ddb) { /* scache: the table's change records come on this stream */
		stream.dynamodb_tables = &sv.table;
		stream.dynamodb_ntables = 1;
	}
	scache_middleware_config mc = {
	    .cache = cache,
	    .stream = &stream,
	    .handler = handler,
	    .handler_cls = &sv,
	    .completed = completed,
	    .completed_cls = &sv,
	    .poll_interval_ms = (uint64_t)poll,
	    .max_staleness_ms = (uint64_t)stale,
	    .suspend = threads > 0, /* the daemon below allows suspend/resume then */
	    .log = log_line,
	    .log_arg = &sv,
	};
	/* Before the first thread (the middleware's poller; then MHD's), which inherit the
	 * mask: a SIGTERM during startup then waits for sigwait below instead of killing us. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	char msg[512];
	if (s.push && *s.push) { /* scache: the push source instead of the polling one */
		long long lag = parse_ms(s.push_lag, 250);
		if (lag <= 0 || lag > 60000) {
			fprintf(stderr, "users_server: bad --push-lag (1ms to 60s)\n");
			return 2;
		}
		scache_push_config pc = {.consumer_name = s.push, .event_lag_ms = (unsigned)lag};
		err = scache_kinesis_push_source_new(&stream, &pc, SCACHE_START_LATEST, &mc.source,
		                                     msg, sizeof msg);
		if (err) {
			fprintf(stderr, "users_server: --push: %s\n", msg);
			return err == SCACHE_ECONFIG ? 2 : 1;
		}
	}
	err = scache_middleware_new(&mc, &sv.mw, msg, sizeof msg);
	if (err) {
		fprintf(stderr, "users_server: %s\n", msg);
		return err == SCACHE_ECONFIG ? 2 : 1;
	}

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* scache: a request waiting for the stream is parked (MHD_suspend_connection), so a
	 * small thread pool serves many waiting requests; --threads 0 runs a thread per
	 * connection instead, where waiting in place is fine. MHD_USE_AUTO polls with epoll in
	 * the pool (poll() per connection thread, where MHD refuses epoll): select() would stop
	 * at FD_SETSIZE (1024) descriptors. The limit and the idle timeout keep idle clients
	 * from holding every connection; a parked request is not idle (MHD does not time it
	 * out). */
	unsigned mode = threads ? MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME
	                        : MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION;
	struct MHD_Daemon *d = MHD_start_daemon(
	    mode | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, scache_access_handler,
	    sv.mw,                                                        /* scache */
	    MHD_OPTION_NOTIFY_COMPLETED, scache_request_completed, sv.mw, /* scache */
	    MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_UNESCAPE_CALLBACK, unescape_url, NULL,
	    MHD_OPTION_CONNECTION_LIMIT, max_conn, MHD_OPTION_CONNECTION_TIMEOUT, conn_timeout_s,
	    threads ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (unsigned)threads,
	    MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "users_server: cannot listen on 127.0.0.1:%lld\n", port);
		scache_middleware_free(sv.mw);
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_FLAGS);
	unsigned used = info ? (unsigned)info->flags : 0;
	fprintf(stderr,
	        "users_server: listening on http://127.0.0.1:%lld (stream %s, %s; %s, %s; up to "
	        "%u connections, closed after %u s idle)\n",
	        port, s.stream, poll ? "bounded staleness" : "strict",
	        used & MHD_USE_EPOLL  ? "epoll"
	        : used & MHD_USE_POLL ? "poll"
	                              : "select",
	        threads ? "thread pool" : "a thread per connection", max_conn, conn_timeout_s);
	if (sv.ddb)
		fprintf(stderr,
		        "users_server: users in DynamoDB table '%s' at %s, %s mode: kept coherent "
		        "by the table's change records on stream %s (this server publishes none)\n",
		        sv.table.table, ddb_endpoint,
		        ddb_mode == SCACHE_DYNAMODB_REFRESH ? "refresh" : "invalidate", s.stream);

	int sig;
	sigwait(&sigs, &sig);
	scache_middleware_shutdown(sv.mw); /* scache: resume parked requests */
	MHD_stop_daemon(d);                /* then: no request in flight */
	scache_middleware_free(sv.mw);     /* writes the last summary */
	scache_cache_free(cache);
	if (sv.ddb) {
		scache_dynamodb_free(sv.ddb);
		ddb_writer_free(&sv.writer);
		curl_global_cleanup();
	}
	sqlite3_close(sv.db);
	if (sv.log != stderr)
		fclose(sv.log);
	return 0;
}
