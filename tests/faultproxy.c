/*
 * faultproxy.c: a fault-injecting HTTP/1.1 proxy on loopback (see faultproxy.h).
 *
 * Deliberately small: it understands just enough HTTP for the Kinesis JSON API (a
 * request head, a Content-Length body; an answer head with Content-Length). Sockets use
 * poll() with short timeouts so faultproxy_stop() ends every thread promptly.
 */
#include "faultproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 64
#define MAX_CONNS 64
#define MAX_MSG   ((size_t)32 << 20)

typedef struct rule {
	char op[64];
	fault_kind kind;
	int count;
	int status;
	char *body;
} rule;

typedef struct conn {
	faultproxy *p;
	int fd;
	pthread_t thread;
	int used;
} conn;

typedef struct opcount {
	char op[64];
	unsigned n;
} opcount;

struct faultproxy {
	int listen_fd;
	int upstream_port;
	char endpoint[64];
	volatile int stopping;
	pthread_t acceptor;
	pthread_mutex_t mu;
	rule rules[MAX_RULES];
	size_t nrules;
	conn conns[MAX_CONNS];
	opcount counts[32];
	size_t ncounts;
	unsigned total, injected;
	unsigned delaying, peak_delaying; /* FAULT_DELAY requests held now, and at most */
};

typedef struct buf {
	char *d;
	size_t len, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > MAX_MSG)
			return -1;
		char *d = realloc(b->d, cap);
		if (!d)
			return -1;
		b->d = d;
		b->cap = cap;
	}
	memcpy(b->d + b->len, s, n);
	b->len += n;
	b->d[b->len] = '\0';
	return 0;
}

/* Read more bytes into b, waiting in slices so `stopping` is seen. 0 on EOF/error. */
static ssize_t read_some(faultproxy *p, int fd, buf *b)
{
	char tmp[65536];
	for (;;) {
		struct pollfd pf = {fd, POLLIN, 0};
		int r = poll(&pf, 1, 100);
		if (p->stopping)
			return 0;
		if (r < 0 && errno != EINTR)
			return 0;
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, tmp, sizeof tmp, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || buf_add(b, tmp, (size_t)n))
			return 0;
		return n;
	}
}

static int send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Header value (case-insensitive name) within head [0, head_len); copied into out. */
static int header(const char *head, size_t head_len, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = head, *end = head + head_len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl + 1 && !strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (v < eol && *v == ' ')
				v++;
			size_t vl = (size_t)(eol - v);
			while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
				vl--;
			if (vl >= len)
				vl = len - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return 0;
		}
		p = eol + 1;
	}
	return -1;
}

/* Read one whole HTTP message (head + Content-Length body) from fd into b. Returns the
 * head length (through the blank line), or 0 when the peer closed / on error. */
static size_t read_message(faultproxy *p, int fd, buf *b)
{
	char *blank;
	while (!b->d || !(blank = strstr(b->d, "\r\n\r\n")))
		if (read_some(p, fd, b) <= 0)
			return 0;
	size_t head = (size_t)(blank - b->d) + 4;
	char cl[32];
	size_t body = 0;
	if (header(b->d, head, "Content-Length", cl, sizeof cl) == 0)
		body = (size_t)strtoull(cl, NULL, 10);
	while (b->len < head + body)
		if (read_some(p, fd, b) <= 0)
			return 0;
	return head;
}

static int answer(int fd, int status, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof head,
	                 "HTTP/1.1 %d Fault\r\nContent-Type: application/x-amz-json-1.1\r\n"
	                 "Content-Length: %zu\r\n\r\n",
	                 status, strlen(body));
	return send_all(fd, head, (size_t)n) || send_all(fd, body, strlen(body));
}

static int forward(faultproxy *p, int client, const char *req, size_t len)
{
	struct sockaddr_in a;
	buf resp = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc = -1;
	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)p->upstream_port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && send_all(fd, req, len) == 0) {
		size_t head = read_message(p, fd, &resp);
		if (head)
			rc = send_all(client, resp.d, resp.len);
	}
	close(fd);
	free(resp.d);
	return rc;
}

/* Count the request and take the first matching fault (kind 0 when none). */
static rule take_fault(faultproxy *p, const char *op)
{
	rule r = {0};
	pthread_mutex_lock(&p->mu);
	p->total++;
	size_t i;
	for (i = 0; i < p->ncounts && strcmp(p->counts[i].op, op); i++)
		;
	if (i == p->ncounts && i < sizeof p->counts / sizeof p->counts[0]) {
		snprintf(p->counts[i].op, sizeof p->counts[i].op, "%s", op);
		p->ncounts++;
	}
	if (i < p->ncounts)
		p->counts[i].n++;
	for (size_t k = 0; k < p->nrules; k++) {
		rule *x = &p->rules[k];
		if (x->count <= 0 || (x->op[0] && strcmp(x->op, op)))
			continue;
		x->count--;
		p->injected++;
		r = *x;
		r.body = x->body ? strdup(x->body) : NULL;
		break;
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

static void *serve(void *arg)
{
	conn *c = arg;
	faultproxy *p = c->p;
	buf b = {0};

	for (;;) {
		b.len = 0;
		if (b.d)
			b.d[0] = '\0';
		size_t head = read_message(p, c->fd, &b);
		if (!head)
			break;
		char target[128] = "", *op = target;
		header(b.d, head, "X-Amz-Target", target, sizeof target);
		char *dot = strchr(target, '.');
		if (dot)
			op = dot + 1;
		rule f = take_fault(p, op);
		int rc = 0;
		switch (f.kind) {
		case FAULT_THROTTLE:
			rc = answer(c->fd, 400,
			            "{\"__type\":\"ProvisionedThroughputExceededException\","
			            "\"message\":\"Rate exceeded for shard (faultproxy)\"}");
			break;
		case FAULT_500:
			rc = answer(c->fd, 500,
			            "{\"__type\":\"InternalFailure\",\"message\":\"faultproxy\"}");
			break;
		case FAULT_EXPIRED:
			rc = answer(c->fd, 400,
			            "{\"__type\":\"ExpiredIteratorException\","
			            "\"message\":\"Iterator expired (faultproxy)\"}");
			break;
		case FAULT_DROP:
			rc = -1;
			break;
		case FAULT_CANNED:
			rc = answer(c->fd, f.status, f.body ? f.body : "");
			break;
		case FAULT_DELAY: {
			struct timespec ts = {f.status / 1000, (long)(f.status % 1000) * 1000000L};
			pthread_mutex_lock(&p->mu);
			if (++p->delaying > p->peak_delaying)
				p->peak_delaying = p->delaying;
			pthread_mutex_unlock(&p->mu);
			nanosleep(&ts, NULL);
			pthread_mutex_lock(&p->mu);
			p->delaying--;
			pthread_mutex_unlock(&p->mu);
			rc = forward(p, c->fd, b.d, b.len);
			break;
		}
		default:
			rc = forward(p, c->fd, b.d, b.len);
			break;
		}
		free(f.body);
		if (rc)
			break;
	}
	free(b.d);
	shutdown(c->fd, SHUT_RDWR);
	return NULL;
}

static void *acceptor(void *arg)
{
	faultproxy *p = arg;
	while (!p->stopping) {
		struct pollfd pf = {p->listen_fd, POLLIN, 0};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		int fd = accept(p->listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&p->mu);
		conn *c = NULL;
		for (size_t i = 0; i < MAX_CONNS && !c; i++)
			if (!p->conns[i].used)
				c = &p->conns[i];
		if (c) {
			c->used = 1;
			c->fd = fd;
			c->p = p;
			if (pthread_create(&c->thread, NULL, serve, c)) {
				c->used = 0;
				c = NULL;
			}
		}
		pthread_mutex_unlock(&p->mu);
		if (!c)
			close(fd);
	}
	return NULL;
}

faultproxy *faultproxy_start(int upstream_port)
{
	faultproxy *p = calloc(1, sizeof *p);
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	if (!p)
		return NULL;
	p->upstream_port = upstream_port;
	pthread_mutex_init(&p->mu, NULL);
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) ||
	    listen(p->listen_fd, 64) || getsockname(p->listen_fd, (struct sockaddr *)&a, &al) ||
	    pthread_create(&p->acceptor, NULL, acceptor, p)) {
		if (p->listen_fd >= 0)
			close(p->listen_fd);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return NULL;
	}
	snprintf(p->endpoint, sizeof p->endpoint, "http://127.0.0.1:%d", ntohs(a.sin_port));
	return p;
}

const char *faultproxy_endpoint(const faultproxy *p)
{
	return p->endpoint;
}

void faultproxy_add(faultproxy *p, const char *op, fault_kind kind, int count, int status,
                    const char *body)
{
	pthread_mutex_lock(&p->mu);
	if (p->nrules < MAX_RULES) {
		rule *r = &p->rules[p->nrules++];
		snprintf(r->op, sizeof r->op, "%s", op ? op : "");
		r->kind = kind;
		r->count = count;
		r->status = status;
		r->body = body ? strdup(body) : NULL;
	}
	pthread_mutex_unlock(&p->mu);
}

unsigned faultproxy_requests(faultproxy *p, const char *op)
{
	unsigned n = 0;
	pthread_mutex_lock(&p->mu);
	if (!op)
		n = p->total;
	for (size_t i = 0; op && i < p->ncounts; i++)
		if (!strcmp(p->counts[i].op, op))
			n = p->counts[i].n;
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* One of p's counters, read under its lock. */
static unsigned counter(faultproxy *p, const unsigned *field)
{
	pthread_mutex_lock(&p->mu);
	unsigned n = *field;
	pthread_mutex_unlock(&p->mu);
	return n;
}

unsigned faultproxy_delaying(faultproxy *p)
{
	return counter(p, &p->delaying);
}

unsigned faultproxy_peak_delayed(faultproxy *p)
{
	return counter(p, &p->peak_delaying);
}

unsigned faultproxy_injected(faultproxy *p)
{
	return counter(p, &p->injected);
}

void faultproxy_stop(faultproxy *p)
{
	if (!p)
		return;
	p->stopping = 1;
	pthread_join(p->acceptor, NULL);
	for (size_t i = 0; i < MAX_CONNS; i++) {
		if (!p->conns[i].used)
			continue;
		pthread_join(p->conns[i].thread, NULL);
		close(p->conns[i].fd);
	}
	close(p->listen_fd);
	for (size_t i = 0; i < p->nrules; i++)
		free(p->rules[i].body);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
