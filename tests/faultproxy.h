/*
 * faultproxy.h: a small HTTP proxy on 127.0.0.1 in front of kinesalite that injects
 * faults, for the stream tests. Point a scache_stream_config's endpoint at
 * faultproxy_endpoint(); every request passes through unchanged unless a queued fault
 * matches its operation (X-Amz-Target), in which case the proxy answers for kinesalite:
 *
 *   FAULT_THROTTLE  400 {"__type":"ProvisionedThroughputExceededException",...}
 *   FAULT_500       500 {"__type":"InternalFailure",...}
 *   FAULT_EXPIRED   400 {"__type":"ExpiredIteratorException",...}
 *   FAULT_DROP      closes the connection without answering
 *   FAULT_CANNED    the given status and body
 *   FAULT_DELAY     waits `status` milliseconds, then passes the request through
 *
 * Thread-safe; one thread per client connection (keep-alive honoured), each request
 * forwarded on a fresh upstream connection.
 */
#ifndef SCACHE_TEST_FAULTPROXY_H
#define SCACHE_TEST_FAULTPROXY_H

typedef enum fault_kind {
	FAULT_THROTTLE = 1,
	FAULT_500,
	FAULT_EXPIRED,
	FAULT_DROP,
	FAULT_CANNED,
	FAULT_DELAY
} fault_kind;

typedef struct faultproxy faultproxy;

/* Start on a free loopback port in front of 127.0.0.1:upstream_port. NULL on failure. */
faultproxy *faultproxy_start(int upstream_port);

/* "http://127.0.0.1:<port>" */
const char *faultproxy_endpoint(const faultproxy *p);

/* Queue `count` faults for operation op ("GetRecords"; NULL: any). Faults are used in
 * the order queued. status and body only matter for FAULT_CANNED (body copied); status
 * is the delay in milliseconds for FAULT_DELAY. */
void faultproxy_add(faultproxy *p, const char *op, fault_kind kind, int count, int status,
                    const char *body);

/* Requests seen for op (NULL: all), and faults injected so far. */
unsigned faultproxy_requests(faultproxy *p, const char *op);
unsigned faultproxy_injected(faultproxy *p);

/* FAULT_DELAY requests held now. */
unsigned faultproxy_delaying(faultproxy *p);

/* The most FAULT_DELAY requests held at the same time so far (calls made concurrently). */
unsigned faultproxy_peak_delayed(faultproxy *p);

/* Stop: close every socket and join every thread. Accepts NULL. */
void faultproxy_stop(faultproxy *p);

#endif
