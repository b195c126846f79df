/*
 * libscache error codes.
 *
 * Every fallible function of libscache returns an scache_err. SCACHE_OK is zero,
 * every failure is a positive code; scache_strerror() turns a code into words.
 * Functions that can say more (the Kinesis stream names the AWS error and the
 * endpoint) also fill a message buffer; see their own documentation.
 */
#ifndef SCACHE_ERROR_H
#define SCACHE_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum scache_err {
	SCACHE_OK = 0,
	SCACHE_EINVAL,     /* an argument is invalid (NULL, zero, out of range) */
	SCACHE_ENOMEM,     /* an allocation failed; nothing was changed */
	SCACHE_ENOTFOUND,  /* no such entry (or it has expired) */
	SCACHE_ENOTID,     /* the string is a query string but not a data ID (no t=data.ID) */
	SCACHE_EMALFORMED, /* the string is not a well-formed data ID (bad escaping) */
	SCACHE_ESTALE,     /* add refused: the ID was invalidated after its load began */
	SCACHE_ETOOBIG,    /* the entry alone is larger than the memory bound allows */
	SCACHE_EBYPASS,    /* the cache is bypassed: the stream is staler than its bound */
	SCACHE_ECONFIG,    /* configuration is missing or inconsistent */
	SCACHE_ETRANSPORT, /* HTTP transport failed (connect, TLS, timeout, reset) */
	SCACHE_ESERVICE,   /* the service answered with an error */
	SCACHE_ETHROTTLED, /* the service throttled us beyond the retry bound */
	SCACHE_ERECORD,    /* a record is malformed */
	SCACHE_EPUBLISH,   /* some invalidations could not be published */
	SCACHE_EIO,        /* a file or socket operation failed */
	SCACHE_ETIMEOUT,   /* waited as long as the caller allowed, without an outcome */
	SCACHE_ENOREQUEST, /* a request helper got no request (NULL: scache_request_current()
	                      outside a handler the middleware called) */
	SCACHE_ERR_COUNT_  /* not an error: the number of codes */
} scache_err;

/*
 * scache_strerror: a static, human-readable description of `err`.
 * Never NULL; unknown codes yield "unknown error". Thread-safe.
 */
SCACHE_EXTERN const char *scache_strerror(scache_err err);

#ifdef __cplusplus
}
#endif
#endif
