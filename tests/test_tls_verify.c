/* TLS verification stays on (issue 9): the Kinesis client refuses a TLS server whose
 * certificate no trusted authority signed, with an error that says so, and accepts it
 * once the user trusts that certificate (scache_stream_config.ca_file, or the AWS
 * CLI's AWS_CA_BUNDLE). A certificate for another name is refused even when trusted. An
 * unreadable ca_file is a configuration error naming it.
 *
 * The server is ours, on 127.0.0.1, in a thread: OpenSSL's API over a self-signed
 * certificate that `openssl req -x509` makes at the start of each test in a fresh
 * directory (removed at the end). It answers every HTTP request with a PutRecords
 * answer storing one record, and counts the requests it read: a refused handshake
 * reads none. The client side is the public API: scache_publisher_new and
 * scache_publish_keys. Outcomes are exact; nothing is timed. */
#include <criterion/criterion.h>

#include <scache/scache.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KEY_ID "AKIDTLSTESTKEY000001"
#define SECRET "tlsTestSecretKey/0123456789abcdefghijklmn"

static char dir[64];
static char cert_path[128], key_path[128];
static int listen_fd = -1;
static unsigned short port;
static SSL_CTX *ctx;
static pthread_t server;
static int server_started;
static volatile int stopping;
static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned requests_read; /* HTTP requests the server read (after a handshake) */

static void make_cert(const char *subject, const char *san)
{
	snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
	snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
	         "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -keyout '%s' -out '%s' "
	         "-subj '%s' -addext 'subjectAltName=%s' >'%s/openssl.log' 2>&1",
	         key_path, cert_path, subject, san, dir);
	cr_assert_eq(system(cmd), 0, "openssl req -x509 failed (see %s/openssl.log)", dir);
}

/* Read one HTTP request (headers and Content-Length body); 1 if one was read. */
static int read_request(SSL *ssl)
{
	char buf[16384];
	size_t len = 0;
	for (;;) {
		int n = SSL_read(ssl, buf + len, (int)(sizeof buf - 1 - len));
		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end) {
			const char *cl = strstr(buf, "\r\nContent-Length:"); /* curl's case */
			size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0;
			if (len >= (size_t)(end + 4 - buf) + body)
				return 1;
		}
		if (len == sizeof buf - 1)
			return 0;
	}
}

static void *serve(void *arg)
{
	(void)arg;
	static const char answer[] =
	    "{\"FailedRecordCount\":0,\"Records\":[{\"SequenceNumber\":\"4960000000000000000000000"
	    "0000000000000000000000001\",\"ShardId\":\"shardId-000000000000\"}]}";
	while (!stopping) {
		struct pollfd p = {.fd = listen_fd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		SSL *ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1) {
			while (read_request(ssl)) {
				pthread_mutex_lock(&count_mu);
				requests_read++;
				pthread_mutex_unlock(&count_mu);
				char head[256];
				int hl = snprintf(head, sizeof head,
				                  "HTTP/1.1 200 OK\r\nContent-Type: "
				                  "application/x-amz-json-1.1\r\nContent-Length: "
				                  "%zu\r\n\r\n",
				                  sizeof answer - 1);
				SSL_write(ssl, head, hl);
				SSL_write(ssl, answer, (int)sizeof answer - 1);
			}
		}
		ERR_clear_error();
		SSL_free(ssl);
		close(fd);
	}
	return NULL;
}

static void start_server(void)
{
	ctx = SSL_CTX_new(TLS_server_method());
	cr_assert_not_null(ctx);
	cr_assert_eq(SSL_CTX_use_certificate_file(ctx, cert_path, SSL_FILETYPE_PEM), 1);
	cr_assert_eq(SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM), 1);
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(listen_fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	cr_assert_eq(bind(listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(listen_fd, 16), 0);
	cr_assert_eq(getsockname(listen_fd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	cr_assert_eq(pthread_create(&server, NULL, serve, NULL), 0);
	server_started = 1;
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/scache-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	unsetenv("AWS_CA_BUNDLE");
	signal(SIGPIPE, SIG_IGN); /* a client that hung up on the handshake: EPIPE, not death */
}

static void teardown(void)
{
	stopping = 1;
	if (server_started)
		pthread_join(server, NULL);
	server_started = 0;
	if (listen_fd >= 0)
		close(listen_fd);
	listen_fd = -1;
	SSL_CTX_free(ctx);
	ctx = NULL;
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
}

static unsigned served(void)
{
	pthread_mutex_lock(&count_mu);
	unsigned n = requests_read;
	pthread_mutex_unlock(&count_mu);
	return n;
}

/* One publish of one key over https://host:port with ca_file (NULL: none): its error,
 * the key's message into msg. */
static scache_err publish_once(const char *host, const char *ca_file, char *msg, size_t msglen)
{
	char endpoint[96];
	snprintf(endpoint, sizeof endpoint, "https://%s:%u", host, port);
	scache_stream_config sc = {.stream_name = "orders",
	                           .region = "us-east-1",
	                           .endpoint = endpoint,
	                           .access_key_id = KEY_ID,
	                           .secret_access_key = SECRET,
	                           .ca_file = ca_file,
	                           .timeout_ms = 5000,
	                           .max_retries = 1,
	                           .backoff_base_ms = 1};
	scache_publisher *p = NULL;
	char err[256] = "";
	scache_err e = scache_publisher_new(&sc, &p, err, sizeof err);
	if (e != SCACHE_OK) {
		snprintf(msg, msglen, "%s", err);
		return e;
	}
	const char *key = "id=1&s=db.t.id&t=data.ID";
	size_t len = strlen(key);
	scache_publish_result r;
	e = scache_publish_keys(p, &key, &len, 1, &r);
	snprintf(msg, msglen, "%s", r.message);
	scache_publisher_free(p);
	return e;
}

static void assert_no_credentials(const char *msg)
{
	cr_assert_null(strstr(msg, KEY_ID), "the key ID is in: %s", msg);
	cr_assert_null(strstr(msg, SECRET), "the secret is in: %s", msg);
}

TestSuite(tls_verify, .init = setup, .fini = teardown, .timeout = 60);

Test(tls_verify, a_self_signed_server_is_refused_with_a_certificate_error)
{
	make_cert("/CN=127.0.0.1", "IP:127.0.0.1");
	start_server();
	char msg[256];
	scache_err e = publish_once("127.0.0.1", NULL, msg, sizeof msg);
	cr_assert_neq(e, SCACHE_OK, "published to an untrusted server");
	cr_log_info("refused: %s", msg);
	cr_assert_not_null(strstr(msg, "certificate"), "the error names the certificate: %s", msg);
	char where[64];
	snprintf(where, sizeof where, "127.0.0.1:%u", port);
	cr_assert_not_null(strstr(msg, where), "the error names the endpoint: %s", msg);
	assert_no_credentials(msg);
	cr_assert_eq(served(), 0, "no request went over the refused connection");
}

Test(tls_verify, the_same_server_is_accepted_when_its_certificate_is_the_configured_ca_file)
{
	make_cert("/CN=127.0.0.1", "IP:127.0.0.1");
	start_server();
	char msg[256];
	cr_assert_eq(publish_once("127.0.0.1", cert_path, msg, sizeof msg), SCACHE_OK, "%s", msg);
	cr_assert_eq(served(), 1, "one PutRecords");
}

Test(tls_verify, AWS_CA_BUNDLE_is_the_ca_file_when_none_is_configured)
{
	make_cert("/CN=127.0.0.1", "IP:127.0.0.1");
	start_server();
	setenv("AWS_CA_BUNDLE", cert_path, 1);
	char msg[256];
	cr_assert_eq(publish_once("127.0.0.1", NULL, msg, sizeof msg), SCACHE_OK, "%s", msg);
	cr_assert_eq(served(), 1, "one PutRecords");
}

Test(tls_verify, a_trusted_certificate_for_another_name_is_refused)
{
	make_cert("/CN=kinesis.example", "DNS:kinesis.example");
	start_server();
	char msg[256];
	scache_err e = publish_once("127.0.0.1", cert_path, msg, sizeof msg);
	cr_assert_neq(e, SCACHE_OK, "published to a server named otherwise");
	cr_log_info("refused: %s", msg);
	cr_assert_not_null(strstr(msg, "certificate"), "the error names the certificate: %s", msg);
	assert_no_credentials(msg);
	cr_assert_eq(served(), 0, "no request went over the refused connection");
}

Test(tls_verify, an_unreadable_ca_file_is_a_configuration_error_naming_it)
{
	char missing[128];
	snprintf(missing, sizeof missing, "%s/no-such-ca.pem", dir);
	char msg[256];
	port = 9; /* never reached */
	cr_assert_eq(publish_once("127.0.0.1", missing, msg, sizeof msg), SCACHE_ECONFIG, "%s",
	             msg);
	cr_assert_not_null(strstr(msg, missing), "the error names the file: %s", msg);
}
