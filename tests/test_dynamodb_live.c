/*
 * Read-aside GetItem (scache/dynamodb.h) against dynalite, through a real libmicrohttpd
 * daemon on 127.0.0.1 and the middleware over the public in-memory source. Each test
 * starts its own dynalite (suite fixture: stopped in .fini, after a failure too), creates
 * its tables and items with plain DynamoDB calls, and reads them over HTTP through a
 * handler that calls scache_dynamodb_get_item. GetItem calls are counted by the client;
 * outcomes are exact, nothing asserts a duration, and the cache's expiry runs on a clock
 * the test moves.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>

#include <scache/scache.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "aws.h"
#include "dynalite.h"
#include "dynamodb_internal.h"

static dynalite D;
static scache_cache *cache;
static scache_source *source;
static scache_middleware *mw;
static scache_dynamodb *db;
static struct MHD_Daemon *daemon_;
static unsigned short port;
static _Atomic uint64_t clock_ns = 1000000000000ull;

static const scache_dynamodb_table users = {.table = "users", .partition_key = "id"};
static const scache_dynamodb_table orders = {
    .table = "orders", .partition_key = "customer", .sort_key = "order"};

static uint64_t test_clock(void *arg)
{
	(void)arg;
	return atomic_load(&clock_ns);
}

static void up(void)
{
	char err[256] = "";
	cr_assert_eq(dynalite_start(&D, err, sizeof err), 0, "%s", err);
}

static void down(void)
{
	if (daemon_)
		MHD_stop_daemon(daemon_);
	scache_middleware_free(mw); /* frees the source too */
	scache_dynamodb_free(db);
	scache_cache_free(cache);
	daemon_ = NULL, mw = NULL, db = NULL, cache = NULL, source = NULL;
	dynalite_stop(&D);
}

TestSuite(dynamodb, .init = up, .fini = down);

/* ---- The service under test -------------------------------------------------------- */

static const char *outcome_name(scache_outcome oc)
{
	return oc == SCACHE_OUTCOME_HIT ? "HIT" : oc == SCACHE_OUTCOME_BYPASS ? "BYPASS" : "MISS";
}

/* GET /?table=T&key=K: {"code":<scache_err>,"outcome":"HIT","item":"<json>"|null,
 * "message":"<errbuf>"} */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **req_cls)
{
	(void)cls, (void)url, (void)method, (void)version, (void)data, (void)size;
	if (!*req_cls) {
		*req_cls = c;
		return MHD_YES;
	}
	const char *table = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "table");
	const char *key = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key");
	char *item = NULL, msg[512];
	size_t len = 0;
	scache_outcome oc;
	scache_err err = scache_dynamodb_get_item(scache_request_current(), db, table, key, &item,
	                                          &len, &oc, msg, sizeof msg);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "code", json_object_new_int((int)err));
	json_object_object_add(o, "outcome", json_object_new_string(outcome_name(oc)));
	json_object_object_add(o, "item", item ? json_object_new_string_len(item, (int)len) : NULL);
	json_object_object_add(o, "message", json_object_new_string(msg));
	free(item);
	const char *body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	json_object_put(o);
	enum MHD_Result ret = scache_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static void quiet(void *arg, const char *line, size_t len)
{
	(void)arg, (void)line, (void)len;
}

/* Start the client (with cfg's connection settings, or dynalite's), the cache, the
 * middleware over a memory source, and the daemon. */
static void serve_with(const scache_dynamodb_config *cfg)
{
	char err[256];
	cr_assert_eq(scache_dynamodb_new(cfg, &db, err, sizeof err), SCACHE_OK, "%s", err);
	scache_cache_config cc = {.clock = test_clock};
	cr_assert_eq(scache_cache_new(&cc, &cache), SCACHE_OK);
	cr_assert_eq(scache_memory_source_new(&source), SCACHE_OK);
	scache_middleware_config mc = {.cache = cache,
	                               .source = source,
	                               .handler = handler,
	                               .log = quiet,
	                               .max_staleness_ms = 60000,
	                               .max_polls_per_second = 1000};
	cr_assert_eq(scache_middleware_new(&mc, &mw, err, sizeof err), SCACHE_OK, "%s", err);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	daemon_ = scache_mhd_start(mw, MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0,
	                           MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE, 2u,
	                           MHD_OPTION_END);
	cr_assert_not_null(daemon_);
	port = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void serve(uint64_t negative_ttl_ms)
{
	static const scache_dynamodb_table tables[] = {
	    {.table = "users", .partition_key = "id"},
	    {.table = "orders", .partition_key = "customer", .sort_key = "order"},
	    /* named as the real table, with another key name: DynamoDB refuses the key */
	    {.table = "people", .partition_key = "uid"},
	    {.table = "missing", .partition_key = "id"},
	};
	scache_dynamodb_config cfg;
	dynalite_config(&D, &cfg);
	cfg.tables = tables;
	cfg.ntables = sizeof tables / sizeof tables[0];
	cfg.negative_ttl_ms = negative_ttl_ms;
	serve_with(&cfg);
}

static void create_users(void)
{
	char err[512];
	cr_assert_eq(dynalite_create_table(&D, "users", "id", "S", NULL, NULL, err, sizeof err), 0,
	             "%s", err);
}

static void put(const char *table, const char *item)
{
	char err[512];
	cr_assert_eq(dynalite_put_item(&D, table, item, err, sizeof err), 0, "%s", err);
}

/* ---- The client side --------------------------------------------------------------- */

typedef struct got {
	int code;
	char outcome[8];
	int has_item;
	char item[512];
	char message[512];
} got;

static size_t collect_body(char *p, size_t size, size_t n, void *arg)
{
	size_t k = size * n, have = strlen(arg);
	if (have + k < 4096)
		memcpy((char *)arg + have, p, k), ((char *)arg)[have + k] = '\0';
	return k;
}

static got get(const char *table, const char *key)
{
	got g;
	memset(&g, 0, sizeof g);
	char url[1024], body[4096] = "";
	CURL *c = curl_easy_init();
	cr_assert_not_null(c);
	char *k = curl_easy_escape(c, key, 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%u/?table=%s&key=%s", port, table, k);
	curl_free(k);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
	json_object *o = json_tokener_parse(body), *item;
	cr_assert_not_null(o, "answer: %s", body);
	g.code = json_object_get_int(json_object_object_get(o, "code"));
	snprintf(g.outcome, sizeof g.outcome, "%s", aws_json_str(o, "outcome"));
	snprintf(g.message, sizeof g.message, "%s", aws_json_str(o, "message"));
	if (json_object_object_get_ex(o, "item", &item) && item) {
		g.has_item = 1;
		snprintf(g.item, sizeof g.item, "%s", json_object_get_string(item));
	}
	json_object_put(o);
	return g;
}

/* The item equals the JSON text want (members in any order). */
static int same_json(const char *item, const char *want)
{
	json_object *a = json_tokener_parse(item), *b = json_tokener_parse(want);
	int same = a && b && json_object_equal(a, b);
	json_object_put(a);
	json_object_put(b);
	return same;
}

/* Push an invalidation of the item with this key, as another instance would publish. */
static void push(const scache_dynamodb_table *t, const char *key)
{
	char *id;
	size_t len;
	cr_assert_eq(scache_dynamodb_item_id(t, key, &id, &len), SCACHE_OK);
	const char *k = id;
	cr_assert_eq(scache_memory_source_push(source, &k, &len, 1), SCACHE_OK);
	free(id);
}

/* ---- Tests ------------------------------------------------------------------------- */

#define ADA "{\"id\":{\"S\":\"7\"},\"name\":{\"S\":\"Ada\"},\"age\":{\"N\":\"36\"}}"

Test(dynamodb, a_miss_reads_the_item_as_plain_json_and_a_hit_makes_no_getitem_call)
{
	create_users();
	put("users", ADA);
	serve(0);

	got g = get("users", "{\"id\":{\"S\":\"7\"}}");
	cr_assert_eq(g.code, SCACHE_OK, "%s", g.message);
	cr_assert_str_eq(g.outcome, "MISS");
	cr_assert(same_json(g.item, "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}"), "%s", g.item);
	cr_assert_eq(dynamodb_calls(db), 1);

	got h = get("users", "{\"id\":{\"S\":\"7\"}}");
	cr_assert_eq(h.code, SCACHE_OK, "%s", h.message);
	cr_assert_str_eq(h.outcome, "HIT");
	cr_assert_str_eq(h.item, g.item, "the cached bytes are the loaded bytes");
	cr_assert_eq(dynamodb_calls(db), 1, "a hit makes no GetItem call");

	/* the cache's counters move before the answer leaves (the request's, after it) */
	scache_cache_stats st;
	scache_cache_stats_get(cache, &st);
	cr_assert_eq(st.adds, 1);
	cr_assert_eq(st.hits, 1);
}

Test(dynamodb, an_absent_item_is_not_cached_by_default)
{
	create_users();
	serve(0);
	got g = get("users", "{\"id\":{\"S\":\"8\"}}");
	cr_assert_eq(g.code, SCACHE_ENOTFOUND, "%s", g.message);
	cr_assert_str_eq(g.outcome, "MISS");
	cr_assert_eq(g.has_item, 0);
	cr_assert_str_eq(g.message, "", "no such item is not an error to explain");
	g = get("users", "{\"id\":{\"S\":\"8\"}}");
	cr_assert_eq(g.code, SCACHE_ENOTFOUND);
	cr_assert_str_eq(g.outcome, "MISS");
	cr_assert_eq(dynamodb_calls(db), 2, "each read of an absent item asks DynamoDB");

	put("users", "{\"id\":{\"S\":\"8\"},\"name\":{\"S\":\"Bob\"}}");
	g = get("users", "{\"id\":{\"S\":\"8\"}}");
	cr_assert_eq(g.code, SCACHE_OK, "%s", g.message);
	cr_assert_str_eq(g.outcome, "MISS");
	cr_assert(same_json(g.item, "{\"id\":\"8\",\"name\":\"Bob\"}"), "%s", g.item);
}

Test(dynamodb, with_negative_ttl_ms_an_absent_item_is_cached_for_exactly_that_long)
{
	create_users();
	put("users", ADA);
	serve(1000);

	got g = get("users", "{\"id\":{\"S\":\"8\"}}");
	cr_assert_eq(g.code, SCACHE_ENOTFOUND, "%s", g.message);
	cr_assert_str_eq(g.outcome, "MISS");
	cr_assert_eq(get("users", "{\"id\":{\"S\":\"7\"}}").code, SCACHE_OK);
	cr_assert_eq(dynamodb_calls(db), 2);

	g = get("users", "{\"id\":{\"S\":\"8\"}}");
	cr_assert_eq(g.code, SCACHE_ENOTFOUND);
	cr_assert_str_eq(g.outcome, "HIT", "the marker is a hit");
	cr_assert_eq(g.has_item, 0);
	cr_assert_eq(dynamodb_calls(db), 2);

	/* the marker lives negative_ttl_ms; the item, the cache's window (60 s or more) */
	atomic_fetch_add(&clock_ns, 1001ull * 1000000u);
	g = get("users", "{\"id\":{\"S\":\"8\"}}");
	cr_assert_eq(g.code, SCACHE_ENOTFOUND);
	cr_assert_str_eq(g.outcome, "MISS", "the marker expired");
	cr_assert_eq(dynamodb_calls(db), 3);
	g = get("users", "{\"id\":{\"S\":\"7\"}}");
	cr_assert_eq(g.code, SCACHE_OK);
	cr_assert_str_eq(g.outcome, "HIT", "the item did not");
	cr_assert_eq(dynamodb_calls(db), 3);

	/* an invalidation removes a marker as it removes an item */
	put("users", "{\"id\":{\"S\":\"8\"},\"name\":{\"S\":\"Bob\"}}");
	cr_assert_str_eq(get("users", "{\"id\":{\"S\":\"8\"}}").outcome, "HIT");
	push(&users, "{\"id\":{\"S\":\"8\"}}");
	g = get("users", "{\"id\":{\"S\":\"8\"}}");
	cr_assert_eq(g.code, SCACHE_OK, "%s", g.message);
	cr_assert_str_eq(g.outcome, "MISS");
	cr_assert(same_json(g.item, "{\"id\":\"8\",\"name\":\"Bob\"}"), "%s", g.item);
}

Test(dynamodb, a_composite_key_names_one_item_whatever_the_number_form_or_member_order)
{
	char err[512];
	cr_assert_eq(
	    dynalite_create_table(&D, "orders", "customer", "S", "order", "N", err, sizeof err), 0,
	    "%s", err);
	put("orders", "{\"customer\":{\"S\":\"a|b\"},\"order\":{\"N\":\"36\"},"
	              "\"total\":{\"N\":\"9.5\"},\"tags\":{\"SS\":[\"x\"]}}");
	put("orders", "{\"customer\":{\"S\":\"a|b\"},\"order\":{\"N\":\"37\"}}");
	serve(0);

	got g = get("orders", "{\"customer\":{\"S\":\"a|b\"},\"order\":{\"N\":\"3.6E1\"}}");
	cr_assert_eq(g.code, SCACHE_OK, "%s", g.message);
	cr_assert_str_eq(g.outcome, "MISS");
	cr_assert(same_json(g.item, "{\"customer\":\"a|b\",\"order\":36,\"total\":9.5,"
	                            "\"tags\":[\"x\"]}"),
	          "%s", g.item);
	g = get("orders", "{\"order\":{\"N\":\"36.0\"},\"customer\":{\"S\":\"a|b\"}}");
	cr_assert_eq(g.code, SCACHE_OK, "%s", g.message);
	cr_assert_str_eq(g.outcome, "HIT");
	g = get("orders", "{\"customer\":{\"S\":\"a|b\"},\"order\":{\"N\":\"37\"}}");
	cr_assert_eq(g.code, SCACHE_OK, "%s", g.message);
	cr_assert_str_eq(g.outcome, "MISS", "another sort key, another item");
	cr_assert_eq(dynamodb_calls(db), 2);

	char *id;
	size_t len;
	cr_assert_eq(
	    scache_dynamodb_item_id(
	        &orders, "{\"customer\":{\"S\":\"a|b\"},\"order\":{\"N\":\"36\"}}", &id, &len),
	    SCACHE_OK);
	cr_assert_str_eq(id, "id=a%5C%7Cb%7C36&s=dynamodb.orders&t=data.ID");
	cr_assert_eq(len, strlen(id));
	free(id);
}

Test(dynamodb, a_key_that_does_not_match_the_table_is_einval_and_makes_no_call)
{
	create_users();
	serve(0);
	struct {
		const char *table, *key, *says;
	} bad[] = {
	    {"users", "{\"uid\":{\"S\":\"7\"}}", "key id is missing"},
	    {"users", "{\"id\":{\"S\":\"7\"},\"x\":{\"S\":\"1\"}}", "has 2 attributes"},
	    {"users", "{\"id\":{\"BOOL\":true}}", "a key is of type S, N or B"},
	    {"users", "{\"id\":{\"N\":\"7x\"}}", "N "},
	    {"users", "{\"id\":", "not a JSON object"},
	    {"users", "[1]", "not a JSON object"},
	    {"orders", "{\"customer\":{\"S\":\"a\"}}", "key order is missing"},
	    {"nope", "{\"id\":{\"S\":\"7\"}}", "'nope' is not one of the client's tables"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		got g = get(bad[i].table, bad[i].key);
		cr_assert_eq(g.code, SCACHE_EINVAL, "%s %s", bad[i].table, bad[i].key);
		cr_assert(strstr(g.message, bad[i].says), "%s: %s", bad[i].key, g.message);
	}
	cr_assert_eq(dynamodb_calls(db), 0);

	/* the configured key schema is wrong: DynamoDB refuses the key (ValidationException) */
	cr_assert_eq(dynalite_create_table(&D, "people", "id", "S", NULL, NULL, NULL, 0), 0);
	got g = get("people", "{\"uid\":{\"S\":\"7\"}}");
	cr_assert_eq(g.code, SCACHE_EINVAL, "%s", g.message);
	cr_assert(strstr(g.message, "DynamoDB table 'people'"), "%s", g.message);
	cr_assert(strstr(g.message, "ValidationException"), "%s", g.message);
	cr_assert_eq(dynamodb_calls(db), 1, "a ValidationException is not retried");
}

Test(dynamodb, a_table_that_does_not_exist_is_eservice_naming_the_aws_error)
{
	serve(0);
	got g = get("missing", "{\"id\":{\"S\":\"7\"}}");
	cr_assert_eq(g.code, SCACHE_ESERVICE, "%s", g.message);
	cr_assert(strstr(g.message, "DynamoDB table 'missing': GetItem at http://127.0.0.1:"), "%s",
	          g.message);
	cr_assert(strstr(g.message, "ResourceNotFoundException"), "%s", g.message);
	cr_assert(strstr(g.message, "(HTTP 400)"), "%s", g.message);
}

Test(dynamodb, dynalite_stopped_is_etransport_with_a_clear_message_and_no_credential)
{
	create_users();
	serve(0);
	dynalite_stop(&D);
	got g = get("users", "{\"id\":{\"S\":\"7\"}}");
	cr_assert_eq(g.code, SCACHE_ETRANSPORT, "%s", g.message);
	char want[128];
	snprintf(want, sizeof want, "DynamoDB table 'users': GetItem at %s: ", D.endpoint);
	cr_assert(strstr(g.message, want), "%s", g.message);
	cr_assert(strstr(g.message, "onnect"), "%s", g.message); /* couldn't connect */
	cr_assert_null(strstr(g.message, "test-secret"), "%s", g.message);
	cr_assert_null(strstr(g.message, "AKIDTESTDYNALITE"), "%s", g.message);
	cr_assert_eq(dynamodb_calls(db), 2, "the call and its one retry");
	cr_assert_str_eq(get("users", "{\"id\":{\"S\":\"7\"}}").outcome, "MISS", "nothing cached");
}

Test(dynamodb, an_invalidation_through_the_source_makes_the_next_read_load_the_new_value)
{
	create_users();
	put("users", ADA);
	serve(0);
	cr_assert_str_eq(get("users", "{\"id\":{\"S\":\"7\"}}").outcome, "MISS");

	put("users", "{\"id\":{\"S\":\"7\"},\"name\":{\"S\":\"Ada L.\"},\"age\":{\"N\":\"37\"}}");
	got g = get("users", "{\"id\":{\"S\":\"7\"}}");
	cr_assert_str_eq(g.outcome, "HIT", "nothing announced the change yet");
	cr_assert(same_json(g.item, "{\"id\":\"7\",\"name\":\"Ada\",\"age\":36}"), "%s", g.item);

	push(&users, "{\"id\":{\"S\":\"7\"}}");
	g = get("users", "{\"id\":{\"S\":\"7\"}}");
	cr_assert_eq(g.code, SCACHE_OK, "%s", g.message);
	cr_assert_str_eq(g.outcome, "MISS");
	cr_assert(same_json(g.item, "{\"id\":\"7\",\"name\":\"Ada L.\",\"age\":37}"), "%s", g.item);
	cr_assert_str_eq(get("users", "{\"id\":{\"S\":\"7\"}}").outcome, "HIT");
	cr_assert_eq(dynamodb_calls(db), 2);
}

Test(dynamodb, the_endpoint_is_the_configs_then_aws_endpoint_url_dynamodb_then_aws_endpoint_url)
{
	create_users();
	put("users", ADA);
	static const scache_dynamodb_table tables[] = {{.table = "users", .partition_key = "id"}};
	scache_dynamodb_config cfg;
	dynalite_config(&D, &cfg);
	cfg.tables = tables;
	cfg.ntables = 1;
	scache_dynamodb *other;
	char err[256];

	/* Criterion runs each test in a process of its own: the environment is ours. It is
	 * changed before any thread starts (libcurl reads it during transfers). */
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_DYNAMODB");
	cfg.endpoint = NULL;
	cfg.region = "eu-west-3";
	cr_assert_eq(scache_dynamodb_new(&cfg, &other, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_str_eq(dynamodb_endpoint(other), "https://dynamodb.eu-west-3.amazonaws.com");
	scache_dynamodb_free(other);
	cfg.region = "us-east-1";
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
	cr_assert_eq(scache_dynamodb_new(&cfg, &other, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_str_eq(dynamodb_endpoint(other), "http://127.0.0.1:1");
	scache_dynamodb_free(other);
	setenv("AWS_ENDPOINT_URL_DYNAMODB", D.endpoint, 1);
	cfg.endpoint = "http://127.0.0.1:2/";
	cr_assert_eq(scache_dynamodb_new(&cfg, &other, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_str_eq(dynamodb_endpoint(other), "http://127.0.0.1:2", "the config's first");
	scache_dynamodb_free(other);

	cfg.endpoint = NULL;
	serve_with(&cfg);
	cr_assert_str_eq(dynamodb_endpoint(db), D.endpoint, "then AWS_ENDPOINT_URL_DYNAMODB");
	got g = get("users", "{\"id\":{\"S\":\"7\"}}");
	cr_assert_eq(g.code, SCACHE_OK, "%s", g.message);
	cr_assert_str_eq(g.outcome, "MISS");
}

/* ---- Configuration, no dynalite ---------------------------------------------------- */

static scache_err try_new(const scache_dynamodb_config *cfg, char *err, size_t errlen)
{
	scache_dynamodb *c = NULL;
	scache_err e = scache_dynamodb_new(cfg, &c, err, errlen);
	cr_assert_eq(c == NULL, e != SCACHE_OK);
	scache_dynamodb_free(c);
	return e;
}

Test(dynamodb_config, a_configuration_error_is_econfig_naming_what_is_wrong)
{
	scache_dynamodb_table t[2] = {{.table = "users", .partition_key = "id"},
	                              {.table = "users", .partition_key = "id"}};
	scache_dynamodb_config cfg = {.region = "us-east-1",
	                              .endpoint = "http://127.0.0.1:1",
	                              .access_key_id = "AKIDTESTDYNALITE",
	                              .secret_access_key = "test-secret-dynalite",
	                              .tables = t,
	                              .ntables = 1};
	char err[256];
	cr_assert_eq(try_new(&cfg, err, sizeof err), SCACHE_OK, "%s", err);
	cr_assert_eq(scache_dynamodb_new(&cfg, NULL, err, sizeof err), SCACHE_EINVAL);
	cr_assert_eq(try_new(NULL, err, sizeof err), SCACHE_ECONFIG);

	cfg.ntables = 2;
	cr_assert_eq(try_new(&cfg, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_str_eq(err, "DynamoDB table 'users' is configured twice");
	cfg.ntables = 0;
	cr_assert_eq(try_new(&cfg, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_str_eq(err, "no DynamoDB tables: set tables and ntables");
	cfg.ntables = 1;
	t[0].partition_key = "";
	cr_assert_eq(try_new(&cfg, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_str_eq(err, "DynamoDB table 'users' has no partition_key");
	t[0].partition_key = "id";
	t[0].table = NULL;
	cr_assert_eq(try_new(&cfg, err, sizeof err), SCACHE_ECONFIG);
	cr_assert_str_eq(err, "DynamoDB table 0 has no name");
	t[0].table = "users";
	cfg.endpoint = "ftp://127.0.0.1:1";
	cr_assert_eq(try_new(&cfg, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "DynamoDB endpoint 'ftp://127.0.0.1:1' must start with https://"),
	          "%s", err);
	cfg.endpoint = NULL;
	cfg.secret_access_key = NULL;
	unsetenv("AWS_SECRET_ACCESS_KEY");
	cr_assert_eq(try_new(&cfg, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "no AWS secret key"), "%s", err);
	cfg.secret_access_key = "test-secret-dynalite";
	cfg.region = NULL;
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	cr_assert_eq(try_new(&cfg, err, sizeof err), SCACHE_ECONFIG);
	cr_assert(strstr(err, "no AWS region"), "%s", err);
}

Test(dynamodb_config, item_id_refuses_a_key_that_does_not_match_the_table)
{
	char *id = (char *)"x";
	size_t len = 1;
	cr_assert_eq(scache_dynamodb_item_id(&users, "{\"id\":{\"N\":\"3.6E1\"}}", &id, &len),
	             SCACHE_OK);
	cr_assert_str_eq(id, "id=36&s=dynamodb.users&t=data.ID");
	free(id);
	scache_dynamodb_table custom = {
	    .table = "users", .partition_key = "id", .source = "db.users.id"};
	cr_assert_eq(scache_dynamodb_item_id(&custom, "{\"id\":{\"S\":\"7\"}}", &id, &len),
	             SCACHE_OK);
	cr_assert_str_eq(id, "id=7&s=db.users.id&t=data.ID");
	free(id);
	cr_assert_eq(scache_dynamodb_item_id(&users, "{\"uid\":{\"S\":\"7\"}}", &id, &len),
	             SCACHE_EINVAL);
	cr_assert_null(id);
	cr_assert_eq(len, 0);
	cr_assert_eq(scache_dynamodb_item_id(&orders, "{\"customer\":{\"S\":\"7\"}}", &id, &len),
	             SCACHE_EINVAL);
	cr_assert_eq(scache_dynamodb_item_id(&users, "not json", &id, &len), SCACHE_EINVAL);
	cr_assert_eq(scache_dynamodb_item_id(NULL, "{}", &id, &len), SCACHE_EINVAL);
}

Test(dynamodb_config, dynamodb_throttling_names_are_throttling)
{
	cr_assert_eq(aws_classify(400, "RequestLimitExceeded"), AWS_FAIL_THROTTLE);
	cr_assert_eq(aws_classify(400, "ProvisionedThroughputExceededException"),
	             AWS_FAIL_THROTTLE);
	cr_assert_eq(aws_classify(400, "ThrottlingException"), AWS_FAIL_THROTTLE);
	cr_assert_eq(aws_classify(400, "ValidationException"), AWS_FAIL_OTHER);
}
